import ArgumentParser
import ShuntBPF
import ShuntCore
import ShuntRing
import ShuntSystem

/// The engine `shunt gen` runs, and why: asked for by name, or picked by `--engine auto`.
struct EngineChoice {
    enum Engine {
        case xdp
        case pump
        /// One AF_XDP socket per thread, already bound (opening them is part of the probe).
        case afxdp([XSKTransmitter])
        case ring

        var name: GenEngine {
            switch self {
            case .xdp: .xdp
            case .pump: .pump
            case .afxdp: .afxdp
            case .ring: .ring
            }
        }
    }

    var engine: Engine
    /// "asked", or what auto found ("auto: XDP live frames refused by this kernel (EPERM)").
    var reason: String
    var xskMode: XSKBindMode? = nil
    var invalidDescriptors: UInt64 = 0
    /// pump: times its circulation stopped and was given new frames.
    var pumpReinjections = 0
}

extension Gen {
    /// Resolves --engine. A named engine that cannot run here is one line and exit 2, never a
    /// silent fallback; auto takes the fastest engine this kernel allows (xdp, afxdp, ring) and
    /// says on stderr which and why.
    func chooseEngine(_ info: InterfaceInfo, largestFrame: Int) throws -> EngineChoice {
        switch engine {
        case .xdp:
            let support = LiveFrames.probe(ifindex: info.index)
            guard support.isAllowed else {
                printError("shunt gen: --engine xdp: XDP live frames refused by this kernel (\(support.errnoName)); use --engine afxdp or ring, or leave --engine out (auto)")
                throw ExitCode(2)
            }
            return EngineChoice(engine: .xdp, reason: "asked")
        case .afxdp:
            do { return EngineChoice(engine: .afxdp(try openTransmitters(info, largestFrame: largestFrame)), reason: "asked") } catch {
                printError("shunt gen: --engine afxdp: \(error)")
                throw ExitCode(2)
            }
        case .ring:
            return EngineChoice(engine: .ring, reason: "asked")
        case .pump:
            return EngineChoice(engine: .pump, reason: "asked")
        case .auto:
            break
        }
        var why: String
        if imix {
            why = "--imix is beyond the xdp engine (one template)"
        } else if largestFrame > Self.xdpLiveFrameMaximum {
            why = "\(largestFrame)-byte frames are beyond XDP live frames (\(Self.xdpLiveFrameMaximum))"
        } else {
            let support = LiveFrames.probe(ifindex: info.index)
            if support.isAllowed {
                printError("shunt gen: XDP live frames allowed by this kernel; using the xdp engine")
                return EngineChoice(engine: .xdp, reason: "auto: XDP live frames allowed")
            }
            why = "XDP live frames refused by this kernel (\(support.errnoName))"
        }
        if largestFrame <= Self.afxdpFrameMaximum {
            do {
                let transmitters = try openTransmitters(info, largestFrame: largestFrame)
                printError("shunt gen: \(why); using the afxdp engine")
                return EngineChoice(engine: .afxdp(transmitters), reason: "auto: " + why)
            } catch {
                why += "; AF_XDP: \(error)"
            }
        } else {
            why += "; \(largestFrame)-byte frames are beyond the afxdp engine (\(Self.afxdpFrameMaximum))"
        }
        printError("shunt gen: \(why); using the ring engine")
        return EngineChoice(engine: .ring, reason: "auto: " + why)
    }

    /// One AF_XDP socket per thread, thread i on queue i.
    func openTransmitters(_ info: InterfaceInfo, largestFrame: Int) throws(XSKSetupError) -> [XSKTransmitter] {
        let chunk = largestFrame <= 2048 ? 2048 : 4096
        var transmitters: [XSKTransmitter] = []
        for i in 0..<threads {
            transmitters.append(try XSKTransmitter(interface: info, queue: UInt32(i), frameSize: chunk))
        }
        return transmitters
    }

    /// `--list-engines`: what each engine can do on --port (default lo), as one JSON line:
    /// {"type":"engines","port":..,"xdp":{"available":..,"reason":..},"afxdp":{..,"mode":..},
    /// "ring":{"available":true},"auto":"afxdp"}.
    func printEngines() throws {
        let info: InterfaceInfo
        do throws(RingSetupError) { info = try InterfaceInfo.lookup(port) } catch {
            printError("shunt gen: \(error)")
            throw ExitCode(2)
        }
        let live = LiveFrames.probe(ifindex: info.index)
        let xdp = live.isAllowed
            ? "{\"available\":true}"
            : "{\"available\":false,\"reason\":\(JSONText.string("XDP live frames refused by this kernel (\(live.errnoName))"))}"
        var afxdp: String
        var afxdpAvailable = false
        do throws(XSKSetupError) {
            let probe = try XSKTransmitter(interface: info, queue: 0, frameSize: 2048, frameCount: 64)
            afxdp = "{\"available\":true,\"mode\":\"\(probe.mode.rawValue)\",\"queues\":\(XSKTransmitter.transmitQueueCount(port))}"
            afxdpAvailable = true
        } catch {
            afxdp = "{\"available\":false,\"reason\":\(JSONText.string(error.description))}"
        }
        let auto = live.isAllowed ? "xdp" : afxdpAvailable ? "afxdp" : "ring"
        emitLine("{\"type\":\"engines\",\"port\":\"\(port)\",\"xdp\":\(xdp),\"afxdp\":\(afxdp),\"ring\":{\"available\":true},\"auto\":\"\(auto)\"}")
    }
}
