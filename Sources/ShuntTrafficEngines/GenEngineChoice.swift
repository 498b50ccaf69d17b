import ShuntBPF
import ShuntCore
import ShuntRing
import ShuntRuntime
import ShuntSystem

/// The engine `shunt gen` runs, and why: asked for by name, or picked by `--engine auto`.
public struct EngineChoice {
    public enum Engine {
        case xdp
        case pump
        /// One AF_XDP socket per thread, already bound (opening them is part of the probe).
        case afxdp([XSKTransmitter])
        case ring

        public var name: GenEngine {
            switch self {
            case .xdp: .xdp
            case .pump: .pump
            case .afxdp: .afxdp
            case .ring: .ring
            }
        }
    }

    public var engine: Engine
    /// "asked", or what auto found ("auto: XDP live frames refused by this kernel (EPERM)").
    public var reason: String
    /// Under auto: which engine and why, for the user (the command prints it on stderr).
    public var note: String? = nil
    public var xskMode: XSKBindMode? = nil
    public var invalidDescriptors: UInt64 = 0
    /// pump: times its circulation stopped and was given new frames.
    public var pumpReinjections = 0
}

extension Generator {
    /// Resolves the engine. A named engine that cannot run here is a failure (status 2), never
    /// a silent fallback; auto takes the fastest engine this kernel allows (xdp, afxdp, ring)
    /// and says which and why in the choice's note.
    static func chooseEngine(_ settings: GeneratorSettings, _ info: InterfaceInfo) throws(CommandFailure) -> EngineChoice {
        let largestFrame = settings.largestFrame
        switch settings.engine {
        case .xdp:
            let support = LiveFrames.probe(ifindex: info.index)
            guard support.isAllowed else {
                throw CommandFailure(status: 2, "--engine xdp: XDP live frames refused by this kernel (\(support.errnoName)); use --engine afxdp or ring, or leave --engine out (auto)")
            }
            return EngineChoice(engine: .xdp, reason: "asked")
        case .afxdp:
            do throws(XSKSetupError) {
                let transmitters = try openTransmitters(info, threads: settings.threads, largestFrame: largestFrame)
                return EngineChoice(engine: .afxdp(transmitters), reason: "asked")
            } catch {
                throw CommandFailure(status: 2, "--engine afxdp: \(error)")
            }
        case .ring:
            return EngineChoice(engine: .ring, reason: "asked")
        case .pump:
            return EngineChoice(engine: .pump, reason: "asked")
        case .auto:
            return chooseAutomatically(settings, info)
        }
    }

    /// `--engine auto`: xdp if the kernel takes live frames, else afxdp if a socket opens, else ring.
    private static func chooseAutomatically(_ settings: GeneratorSettings, _ info: InterfaceInfo) -> EngineChoice {
        let largestFrame = settings.largestFrame
        var why: String
        if settings.sizes.count > 1 {
            why = "--imix is beyond the xdp engine (one template)"
        } else if largestFrame > xdpLiveFrameMaximum {
            why = "\(largestFrame)-byte frames are beyond XDP live frames (\(xdpLiveFrameMaximum))"
        } else {
            let support = LiveFrames.probe(ifindex: info.index)
            if support.isAllowed {
                return EngineChoice(engine: .xdp, reason: "auto: XDP live frames allowed",
                                    note: "XDP live frames allowed by this kernel; using the xdp engine")
            }
            why = "XDP live frames refused by this kernel (\(support.errnoName))"
        }
        if largestFrame <= afxdpFrameMaximum {
            do {
                let transmitters = try openTransmitters(info, threads: settings.threads, largestFrame: largestFrame)
                return EngineChoice(engine: .afxdp(transmitters), reason: "auto: " + why, note: "\(why); using the afxdp engine")
            } catch {
                why += "; AF_XDP: \(error)"
            }
        } else {
            why += "; \(largestFrame)-byte frames are beyond the afxdp engine (\(afxdpFrameMaximum))"
        }
        return EngineChoice(engine: .ring, reason: "auto: " + why, note: "\(why); using the ring engine")
    }

    /// One AF_XDP socket per thread, thread i on queue i.
    static func openTransmitters(_ info: InterfaceInfo, threads: Int, largestFrame: Int) throws(XSKSetupError) -> [XSKTransmitter] {
        let chunk = largestFrame <= 2048 ? 2048 : 4096
        var transmitters: [XSKTransmitter] = []
        for i in 0..<threads {
            transmitters.append(try XSKTransmitter(interface: info, queue: UInt32(i), frameSize: chunk))
        }
        return transmitters
    }

    /// What each engine can do on a port (`shunt gen --list-engines`).
    public struct EngineSupport {
        /// Whether this kernel takes XDP live frames (the xdp and auto engines).
        public var liveFrames: LiveFrames.Support
        /// An AF_XDP socket on queue 0: its bind mode and the port's TX queues, or why not.
        public var afxdp: Result<(mode: XSKBindMode, queues: Int), XSKSetupError>
        /// What `--engine auto` would take (xdp, afxdp or ring).
        public var auto: GenEngine {
            if liveFrames.isAllowed { return .xdp }
            if case .success = afxdp { return .afxdp }
            return .ring
        }
    }

    /// Probes the engines on `port`: live frames, then an AF_XDP socket. Status 2 if there is
    /// no such port.
    public static func probeEngines(port: String) throws(CommandFailure) -> EngineSupport {
        let info: InterfaceInfo
        do throws(RingSetupError) { info = try InterfaceInfo.lookup(port) } catch {
            throw CommandFailure(status: 2, "\(error)")
        }
        let live = LiveFrames.probe(ifindex: info.index)
        do throws(XSKSetupError) {
            let probe = try XSKTransmitter(interface: info, queue: 0, frameSize: 2048, frameCount: 64)
            return EngineSupport(liveFrames: live, afxdp: .success((probe.mode, XSKTransmitter.transmitQueueCount(port))))
        } catch {
            return EngineSupport(liveFrames: live, afxdp: .failure(error))
        }
    }
}
