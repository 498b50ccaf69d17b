import ArgumentParser
import Foundation
import ShuntCore
import ShuntRuntime
import ShuntTraffic
import ShuntTrafficEngines

// `shunt gen`: the traffic generator of the benchmarks (the receiver, `shunt sink`, is in
// Sink.swift). It prints one JSON line when done, on stdout; errors are one line on stderr.
// The command parses and checks the flags and prints; the engines are `Generator` in
// ShuntTrafficEngines.

struct Gen: ParsableCommand {
    static let name = "gen"
    static let configuration = CommandConfiguration(
        abstract: "Send UDP/IPv4 or UDP/IPv6 test frames out of an interface (XDP live frames, AF_XDP, a TPACKET TX ring, or an in-kernel pump).",
        discussion: """
            Engines (--engine): auto (the default) takes the fastest one this kernel allows, \
            probing XDP live frames first, then AF_XDP, then the ring, and says on stderr which \
            and why; --list-engines prints what each can do. A named engine that cannot run \
            here is one line and exit 2. pump is named only (docs/design/0015).

            The xdp engine: one template frame (src 02:00:00:00:00:01 10.203.0.1:1024, dst --dst-mac \
            10.203.0.2:9, UDP checksum 0) is run through xdp_gen with BPF_PROG_TEST_RUN and \
            BPF_F_TEST_XDP_LIVE_FRAMES: every copy gets the stream id (--stream), a sequence \
            number and a send timestamp (struct shunt_probe) and leaves IF by XDP_TX. On a veth, \
            frames reach the peer only when the peer has GRO on or an XDP program \
            (`ethtool -K PEER gro on`).

            IPv6 (--ipv6, or IPv6 addresses in --src-ip/--dst-ip): UDP/IPv6 frames from \
            fd00:203::1 to fd00:203::2 by default, with a valid UDP checksum per frame (IPv6 \
            requires one); the probe sits at byte 62, so an IPv6 frame has at least 78 bytes. \
            An IPv6 range varies the last 32 bits of the address.

            Flows: frame s uses flow s mod F, F the product of the range sizes of --src-ip, \
            --dst-ip, --src-port and --dst-port (at most 1048576), each field taking its value \
            from that index in mixed radix (source port fastest): a run covers every \
            combination evenly. --flows N is short for --src-port 1024-(1023+N).

            Without --rate frames go out as fast as the kernel takes them. With --rate frames \
            are spaced evenly (xdp: by xdp_gen in the kernel; ring: a busy loop). A sender that \
            falls behind (its CPU was busy) catches up, sending the frames already due at once, \
            so that --rate R --duration S sends R x S frames; only a frame later than --max-lag-us \
            moves the schedule up instead (lag_skips in the JSON). --max-lag-us 50 gives the \
            latency-friendly behaviour: never a burst, fewer frames when late. Rate ceilings \
            (refused above; per thread): xdp and pump 20 Mpps, ring 2 Mpps, about 1.5x what one \
            CPU was measured to reach with xdp and ring (13 and 0.8 Mpps; docs/design/0009); \
            afxdp 3 Mpps, above copy mode's measured 0.95 so that zero-copy drivers are not \
            held back (docs/design/0014).

            --threads N runs N senders, one per CPU at most (more is refused): thread i stamps \
            stream --stream + i, so the sink accounts each separately; --rate and --count are \
            totals, split evenly. xdp: one xdp_gen object (config, state) per thread; ring: one \
            TX ring per thread.

            Runs until --count, --duration, SIGINT or SIGTERM, then prints {"type":"final",\
            "sent":..,"duration_s":..,"pps":..,...,"per_thread":[...]}, duration and rate measured \
            between the first frame sent and the last. "sent" counts the frames handed to the \
            interface: frames it then drops (a veth peer without GRO or XDP, a full queue) are in it.

            --engine ring builds the frames in user space and sends them through a TPACKET TX \
            ring with qdisc bypass instead: slower, but it works on any interface and needs no \
            GRO or XDP on the peer; it also sends --imix and frames beyond the live-frame limit \
            of the xdp engine (\(xdpLiveFrameMaximum) bytes).

            Example: shunt gen --port gen0 --size 60 --duration 5 --rate 1000000 --dst-ip 10.203.0.2-10.203.0.9
            """
    )

    @Option(name: .customLong("port"), help: ArgumentHelp("The interface to send out of.", valueName: "IF"))
    var portOption: String?

    /// The interface (validate() requires --port unless --list-engines, which defaults to lo).
    var port: String { portOption ?? "lo" }

    @Option(help: "Frame length in bytes without FCS, 60-9000 (60 is 64 on the wire; IPv6 from 78; at most the port's MTU + 14). Default 60, IPv6 78.")
    var size: Int?

    @Option(help: "UDP source ports to cycle through (from 1024), so that flow hashing spreads the frames; short for --src-port 1024-(1023+N).")
    var flows: Int?

    @Option(help: ArgumentHelp("Source IPv4 or IPv6 address or range A-B (default 10.203.0.1, IPv6 fd00:203::1).", valueName: "A[-B]"))
    var srcIp: String?

    @Option(help: ArgumentHelp("Destination IPv4 or IPv6 address or range A-B (default 10.203.0.2, IPv6 fd00:203::2).", valueName: "A[-B]"))
    var dstIp: String?

    @Flag(help: "Send UDP/IPv6 (implied by IPv6 addresses in --src-ip or --dst-ip).")
    var ipv6 = false

    @Option(help: ArgumentHelp("UDP source port or range P-Q (default 1024).", valueName: "P[-Q]"))
    var srcPort: String?

    @Option(help: ArgumentHelp("UDP destination port or range P-Q (default 9).", valueName: "P[-Q]"))
    var dstPort: String?

    @Flag(help: "Send the simple IMIX (7 x 64, 4 x 570, 1 x 1518 bytes on the wire, in turn) instead of one --size (--engine ring).")
    var imix = false

    @Option(help: "auto: the fastest engine this kernel allows (probed; one line on stderr says which and why); xdp: frames injected in the kernel (BPF_PROG_TEST_RUN live frames, fastest, refused by some kernels); afxdp: an AF_XDP socket per thread (needs AF_XDP, frames up to 4096 bytes); ring: a TPACKET TX ring (works everywhere); pump: frames circulating in the kernel on a veth pair of its own, copied out at the rate (no live frames needed; the peer needs GRO or XDP, as for xdp).")
    var engine: GenEngine = .auto

    @Flag(help: "Print which engines this kernel allows on --port (default lo) as one JSON line, and exit.")
    var listEngines = false

    @Option(help: "Stream id stamped into every frame (0-65535; thread i uses --stream + i): the sink accounts sequences per stream, so concurrent generators need distinct ids.")
    var stream: Int = 0

    @Option(help: "Sending threads (1 up to the number of CPUs), each its own stream; --rate and --count are split evenly.")
    var threads: Int = 1

    @Option(help: "Stop after this many frames (in total).")
    var count: UInt64?

    @Option(help: "Stop after sending for S seconds (counted from the first frame). With --rate R, at most R x S frames.")
    var duration: Double?

    @Option(help: "Frames per second in total (default: as fast as possible).")
    var rate: Double?

    @Option(help: "Destination MAC address of the frames.")
    var dstMac: String = "02:00:00:00:00:02"

    @Option(help: "Source MAC address of the frames.")
    var srcMac: String = "02:00:00:00:00:01"

    @Option(help: "With --rate: a frame later than this (the CPU was busy) moves the schedule up; a frame less late is sent at once, catching up. In microseconds; default 100000 (0.1 s). 50 is latency-friendly (no bursts, fewer frames).")
    var maxLagUs: Double?

    @Option(help: "Frames per XDP batch inside the kernel (1-256). Frames leave at the end of their batch, so a batch adds up to its duration to the measured latency. Default: 64 flat out; with --rate, 4 up to 1.5 Mpps per thread and 16 above.")
    var batchSize: UInt32?

    /// Default --max-lag-us: a tenth of a second of catch-up covers a sender preempted on a
    /// busy machine (scheduler slices are milliseconds) while bounding the burst.
    static let defaultMaxLagUs = 100_000.0
    static let xdpLiveFrameMaximum = Generator.xdpLiveFrameMaximum
    static let afxdpFrameMaximum = Generator.afxdpFrameMaximum

    var frameSize: Int { size ?? (isIPv6 ? TestFrameSpec.minimumSizeIPv6 : 60) }
    var maxLagNs: UInt64 { UInt64((maxLagUs ?? Self.defaultMaxLagUs) * 1000) }

    /// Small batches when paced: at 10 kpps a batch of 64 runs (mostly not yet due) held each
    /// frame back ~3 us on average, a batch of 4 under 1 us; 4 still reaches 2 Mpps, 16 ~4 Mpps.
    var effectiveBatchSize: UInt32 {
        if let batchSize { return batchSize }
        guard let rate else { return 64 }
        return rate / Double(threads) <= 1_500_000 ? 4 : 16
    }

    /// Whether the frames are UDP/IPv6.
    var isIPv6: Bool { ipv6 || srcIp?.contains(":") == true || dstIp?.contains(":") == true }

    /// The flows from the range options (validated by validate()).
    func flowSpace() throws(FlowSpace.ParseError) -> FlowSpace {
        var space = TestFrameSpec(size: 60).flows
        if isIPv6 {
            let source = try FlowSpace.parseIPv6Addresses(srcIp ?? "fd00:203::1")
            let destination = try FlowSpace.parseIPv6Addresses(dstIp ?? "fd00:203::2")
            space.ipv6 = .init(source: source.prefix, destination: destination.prefix)
            space.sourceAddresses = source.range
            space.destinationAddresses = destination.range
        } else {
            if let srcIp { space.sourceAddresses = try FlowSpace.parseIPv4Addresses(srcIp) }
            if let dstIp { space.destinationAddresses = try FlowSpace.parseIPv4Addresses(dstIp) }
        }
        if let srcPort { space.sourcePorts = try FlowSpace.parsePorts(srcPort) }
        if let flows { space.sourcePorts = .init(first: 1024, count: UInt32(flows)) }
        if let dstPort { space.destinationPorts = try FlowSpace.parsePorts(dstPort) }
        return space
    }

    func validate() throws {
        if size != nil && imix { throw oneLineError(Self.name, "--imix sends its own sizes: give --imix or --size, not both") }
        if !TestFrameSpec.sizes.contains(frameSize) {
            throw oneLineError(Self.name, "--size must be between \(TestFrameSpec.sizes.lowerBound) and \(TestFrameSpec.sizes.upperBound) bytes (the frame without FCS), not \(frameSize)")
        }
        if let flows, !(1...(65535 - 1024)).contains(flows) { throw oneLineError(Self.name, "--flows must be between 1 and \(65535 - 1024)") }
        if flows != nil && srcPort != nil { throw oneLineError(Self.name, "--flows N is short for --src-port 1024-(1023+N): give one of them") }
        for (name, text) in [("--src-ip", srcIp), ("--dst-ip", dstIp)] {
            if let text, isIPv6, !text.contains(":") {
                throw oneLineError(Self.name, "\(name) \(text) is IPv4 but the frames are IPv6 (--ipv6 or an IPv6 address): do not mix IPv4 and IPv6")
            }
        }
        if isIPv6 && imix { throw oneLineError(Self.name, "--imix with IPv6: its 64-byte frames cannot hold the probe (an IPv6 frame needs \(TestFrameSpec.minimumSizeIPv6) bytes)") }
        if isIPv6 && frameSize < TestFrameSpec.minimumSizeIPv6 {
            throw oneLineError(Self.name, "--size: an IPv6 frame needs at least \(TestFrameSpec.minimumSizeIPv6) bytes (the probe ends there), not \(frameSize)")
        }
        do {
            let space = try flowSpace()
            if space.flowCount > FlowSpace.maximumFlows {
                throw oneLineError(Self.name, "the ranges make \(space.flowCount) flows; at most \(FlowSpace.maximumFlows) (narrow --src-ip, --dst-ip, --src-port or --dst-port)")
            }
        } catch let error as FlowSpace.ParseError {
            let option = [("--src-ip", srcIp), ("--dst-ip", dstIp), ("--src-port", srcPort), ("--dst-port", dstPort)]
                .first { $0.1.map { error.description.contains($0) } ?? false }?.0 ?? "range"
            throw oneLineError(Self.name, "\(option): \(error)")
        }
        if engine == .pump {
            if imix { throw oneLineError(Self.name, "--imix needs --engine afxdp or ring (the pump circulates one template)") }
            if threads != 1 { throw oneLineError(Self.name, "--engine pump runs one pump (--threads 1)") }
            if frameSize > Self.xdpLiveFrameMaximum {
                throw oneLineError(Self.name, "--engine pump sends frames of at most \(Self.xdpLiveFrameMaximum) bytes; use --engine ring for \(frameSize)")
            }
        }
        if imix && engine == .xdp { throw oneLineError(Self.name, "--imix needs --engine afxdp or ring (xdp_gen sends one template)") }
        if engine == .xdp && frameSize > Self.xdpLiveFrameMaximum {
            throw oneLineError(Self.name, "--engine xdp sends frames of at most \(Self.xdpLiveFrameMaximum) bytes (a live frame lives in one page); use --engine ring for \(frameSize)")
        }
        if engine == .afxdp && frameSize > Self.afxdpFrameMaximum {
            throw oneLineError(Self.name, "--engine afxdp sends frames of at most \(Self.afxdpFrameMaximum) bytes (one UMEM chunk); use --engine ring for \(frameSize)")
        }
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        if !(1...cpus).contains(threads) {
            throw oneLineError(Self.name, "--threads must be between 1 and the number of CPUs (\(cpus)), not \(threads)")
        }
        if !(0...65535).contains(stream) || stream + threads - 1 > 65535 {
            throw oneLineError(Self.name, "--stream must be between 0 and 65535 (with --threads N, up to 65536 - N)")
        }
        if let count, count < UInt64(threads) { throw oneLineError(Self.name, "--count must be at least 1 per thread (\(threads))") }
        if let duration, !(duration > 0) || !duration.isFinite { throw oneLineError(Self.name, "--duration must be more than 0") }
        if let rate {
            if !(rate > 0) || !rate.isFinite { throw oneLineError(Self.name, "--rate must be more than 0") }
            if let message = rateBeyondCeiling(engine) { throw oneLineError(Self.name, message) }
        }
        if let maxLagUs, !(maxLagUs >= 0) || !maxLagUs.isFinite { throw oneLineError(Self.name, "--max-lag-us must be 0 or more") }
        if let batchSize, !(1...256).contains(batchSize) { throw oneLineError(Self.name, "--batch-size must be between 1 and 256") }
        if parseMAC(dstMac) == nil { throw oneLineError(Self.name, "--dst-mac: not a MAC address: \(dstMac)") }
        if parseMAC(srcMac) == nil { throw oneLineError(Self.name, "--src-mac: not a MAC address: \(srcMac)") }
    }

    /// The refusal of a --rate above what `engine` can pace, or nil.
    func rateBeyondCeiling(_ engine: GenEngine) -> String? {
        guard let rate else { return nil }
        let ceiling = Generator.rateCeiling(engine) * Double(threads)
        guard rate > ceiling else { return nil }
        return "--rate \(Int(rate)) is beyond what --engine \(engine.rawValue) can pace with \(threads) thread(s) (at most \(Int(ceiling)) pps)"
    }

    /// The simple IMIX, as frames without FCS: 7 x 60, 4 x 566, 1 x 1514; else --size.
    var sizes: [Int] { imix ? Array(repeating: 60, count: 7) + Array(repeating: 566, count: 4) + [1514] : [frameSize] }

    /// The library's input, from the flags (validated by validate()).
    func settings() -> GeneratorSettings {
        var spec = TestFrameSpec(size: frameSize)
        spec.destinationMAC = parseMAC(dstMac)!
        spec.sourceMAC = parseMAC(srcMac)!
        spec.flows = try! flowSpace()  // validated
        return GeneratorSettings(port: port, frame: spec, sizes: sizes, engine: engine, stream: stream, threads: threads,
                                 count: count, duration: duration, rate: rate, maxLagNs: maxLagNs, batchSize: effectiveBatchSize)
    }

    func run() throws {
        let supervisor = Supervisor()
        if listEngines { return try printEngines() }
        // Checked here, not in validate(): ArgumentParser validates while it renders --help too.
        if portOption == nil { throw oneLineError(Self.name, "missing --port IF (the interface to send out of)") }
        do {
            let generator = try Generator(settings())
            if let note = generator.choice.note { printError("shunt gen: \(note)") }
            if let message = rateBeyondCeiling(generator.choice.engine.name) {
                printError("shunt gen: \(message)")
                throw ExitCode(2)
            }
            report(try generator.run(supervisor))
        } catch let failure as CommandFailure {
            printError("shunt gen: \(failure.message)")
            throw ExitCode(failure.status)
        }
    }

    /// The final report: one JSON line on stdout.
    func report(_ r: GeneratorReport) {
        let engine = r.choice.engine.name
        let pps = r.pps
        let meanSize = Double(sizes.reduce(0, +)) / Double(sizes.count)
        var fields = [
            "\"type\":\"final\"", "\"engine\":\"\(engine.rawValue)\"", "\"engine_choice\":\(JSONText.string(r.choice.reason))", "\"port\":\"\(port)\"", "\"ip\":\(isIPv6 ? 6 : 4)",
            imix ? "\"size\":\"imix\"" : "\"size\":\(frameSize)", "\"flows\":\(r.flowCount)", "\"stream\":\(stream)",
            "\"threads\":\(threads)", "\"sent\":\(r.sent)", "\"duration_s\":\(json(r.seconds, 6))", "\"pps\":\(json(pps, 1))",
            "\"bps\":\(json(pps * (meanSize + 24) * 8, 0))",  // on the wire: + FCS, preamble, IFG
            "\"wall_s\":\(json(r.wallSeconds, 3))",
        ]
        if engine == .xdp { fields.append("\"batch_size\":\(effectiveBatchSize)") }
        if engine == .pump { fields += ["\"pump_frames\":\(Generator.pumpFrames)", "\"pump_reinjections\":\(r.choice.pumpReinjections)"] }
        if engine == .afxdp || engine == .ring { fields.append("\"tx_ring_full\":\(r.ringFull)") }
        if let mode = r.choice.xskMode {
            fields += ["\"xsk_mode\":\"\(mode.rawValue)\"", "\"tx_invalid\":\(r.choice.invalidDescriptors)"]
        }
        if let rate {
            let reached = pps >= rate * 0.995
            if !reached { printError("shunt gen: asked for \(Int(rate)) pps, reached \(Int(pps)) pps") }
            fields += ["\"rate\":\(json(rate, 1))", "\"rate_reached\":\(reached)", "\"lag_skips\":\(r.lagSkips)",
                       "\"skipped_us\":\(r.skippedNs / 1000)", "\"max_lag_us\":\(r.maxLagSeenNs / 1000)"]
        }
        let perThread = r.threads.enumerated().map { i, t in
            "{\"thread\":\(i),\"stream\":\(stream + i),\"sent\":\(t.sent),\"duration_s\":\(json(t.seconds, 6)),\"pps\":\(json(t.pps, 1)),\"lag_skips\":\(t.lagSkips)}"
        }
        fields.append("\"per_thread\":[" + perThread.joined(separator: ",") + "]")
        emitLine("{" + fields.joined(separator: ",") + "}")
    }

    /// `--list-engines`: what each engine can do on --port (default lo), as one JSON line:
    /// {"type":"engines","port":..,"xdp":{"available":..,"reason":..},"afxdp":{..,"mode":..},
    /// "ring":{"available":true},"auto":"afxdp"}.
    func printEngines() throws {
        let support: Generator.EngineSupport
        do throws(CommandFailure) { support = try Generator.probeEngines(port: port) } catch {
            printError("shunt gen: \(error.message)")
            throw ExitCode(error.status)
        }
        let live = support.liveFrames
        let xdp = live.isAllowed
            ? "{\"available\":true}"
            : "{\"available\":false,\"reason\":\(JSONText.string("XDP live frames refused by this kernel (\(live.errnoName))"))}"
        let afxdp = switch support.afxdp {
        case .success(let probe): "{\"available\":true,\"mode\":\"\(probe.mode.rawValue)\",\"queues\":\(probe.queues)}"
        case .failure(let error): "{\"available\":false,\"reason\":\(JSONText.string(error.description))}"
        }
        emitLine("{\"type\":\"engines\",\"port\":\"\(port)\",\"xdp\":\(xdp),\"afxdp\":\(afxdp),\"ring\":{\"available\":true},\"auto\":\"\(support.auto.rawValue)\"}")
    }
}

/// Prints "shunt CMD: message" as one line on stderr and returns the exit code of a usage error
/// (ArgumentParser's ValidationError would add the usage lines).
func oneLineError(_ command: String, _ message: String) -> ExitCode {
    printError("shunt \(command): \(message)")
    return ExitCode.validationFailure
}

/// A finite number for JSON with `digits` decimals (non-finite values become 0).
func json(_ x: Double, _ digits: Int) -> String {
    String(format: "%.\(digits)f", x.isFinite ? x : 0)
}

extension GenEngine: ExpressibleByArgument {}
