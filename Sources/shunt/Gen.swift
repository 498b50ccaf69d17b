import ArgumentParser
import CShunt
import Foundation
import ShuntBPF
import ShuntCore
import ShuntRing
import ShuntRuntime
import ShuntSystem
import ShuntTraffic

// `shunt gen`: the traffic generator of the benchmarks (the receiver, `shunt sink`, is in
// Sink.swift). It prints one JSON line when done, on stdout; errors are one line on stderr.

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
    /// The largest frame BPF_PROG_TEST_RUN takes with BPF_F_TEST_XDP_LIVE_FRAMES (EINVAL above):
    /// bpf_prog_test_run_xdp (net/bpf/test_run.c) allows PAGE_SIZE - XDP_PACKET_HEADROOM (256) -
    /// sizeof(struct xdp_page_head) - SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) (320 on
    /// x86-64) and "disallows live data mode for jumbo frames" above: 4096 - 256 - 112 - 320 =
    /// 3408, measured on Linux 6.18 (3408 accepted, 3409 EINVAL).
    static let xdpLiveFrameMaximum = 3408
    /// The largest frame the afxdp engine sends: one aligned UMEM chunk (a page).
    static let afxdpFrameMaximum = 4096
    /// Refused above (per thread): about 1.5x the measured single-CPU maximum of xdp and ring;
    /// afxdp above its copy-mode maximum (0.95 Mpps measured), for zero-copy drivers.
    static func rateCeiling(_ engine: GenEngine) -> Double {
        switch engine {
        case .xdp, .auto, .pump: 20e6
        case .afxdp: 3e6
        case .ring: 2e6
        }
    }

    var frameSize: Int { size ?? (isIPv6 ? TestFrameSpec.minimumSizeIPv6 : 60) }
    var maxLagNs: UInt64 { UInt64((maxLagUs ?? Self.defaultMaxLagUs) * 1000) }

    /// Small batches when paced: at 10 kpps a batch of 64 runs (mostly not yet due) held each
    /// frame back ~3 us on average, a batch of 4 under 1 us; 4 still reaches 2 Mpps, 16 ~4 Mpps.
    private var effectiveBatchSize: UInt32 {
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
        let ceiling = Self.rateCeiling(engine) * Double(threads)
        guard rate > ceiling else { return nil }
        return "--rate \(Int(rate)) is beyond what --engine \(engine.rawValue) can pace with \(threads) thread(s) (at most \(Int(ceiling)) pps)"
    }

    /// What thread `i` sends: its share of --count and of --rate x --duration, and of --rate.
    func share(_ i: Int) -> (limit: UInt64?, rate: Double?) {
        let n = UInt64(threads)
        func split(_ total: UInt64) -> UInt64 { total / n + (UInt64(i) < total % n ? 1 : 0) }
        var limit = count.map(split)
        // Paced for a duration: the frame budget is rate x duration, so that a sender that was
        // late catches up to it rather than stopping short at the deadline.
        if let rate, let duration {
            let budget = split(UInt64((rate * duration).rounded()))
            limit = min(limit ?? budget, budget)
        }
        return (limit, rate.map { $0 / Double(threads) })
    }

    /// When a thread whose first frame went at `first` stops at the latest: --duration after it,
    /// plus, paced, the catch-up allowance (a thread still behind by then would skip anyway).
    func deadline(first: UInt64) -> UInt64? {
        guard let duration else { return nil }
        return first + UInt64(duration * 1e9) + (rate != nil ? maxLagNs : 0)
    }

    func run() throws {
        let supervisor = Supervisor()
        if listEngines { return try printEngines() }
        // Checked here, not in validate(): ArgumentParser validates while it renders --help too.
        if portOption == nil { throw oneLineError(Self.name, "missing --port IF (the interface to send out of)") }
        let info: InterfaceInfo
        do throws(RingSetupError) {
            info = try InterfaceInfo.lookup(self.port)
            // XDP_TX out of a down interface drops every frame without an error: refuse instead.
            guard info.isUp else { throw RingSetupError.interfaceDown(self.port) }
        } catch {
            printError("shunt gen: \(error)")
            throw ExitCode(2)
        }
        // The simple IMIX, as frames without FCS: 7 x 60, 4 x 566, 1 x 1514.
        let sizes = imix ? Array(repeating: 60, count: 7) + Array(repeating: 566, count: 4) + [1514] : [frameSize]
        if let largest = sizes.max(), largest > info.mtu + 14 {
            printError("shunt gen: a \(largest)-byte frame does not fit \(self.port)'s MTU \(info.mtu) (at most \(info.mtu + 14) bytes)")
            throw ExitCode(2)
        }
        var spec = TestFrameSpec(size: frameSize)
        spec.destinationMAC = parseMAC(dstMac)!
        spec.sourceMAC = parseMAC(srcMac)!
        spec.flows = try! flowSpace()  // validated
        var choice = try chooseEngine(info, largestFrame: sizes.max() ?? frameSize)
        if let message = rateBeyondCeiling(choice.engine.name) {
            printError("shunt gen: \(message)")
            throw ExitCode(2)
        }
        let start = Sys.monotonicNanoseconds()
        let results: [ThreadResult]
        switch choice.engine {
        case .xdp: results = try runXDP(info, spec: spec, supervisor)
        case .pump: (results, choice.pumpReinjections) = try runPump(info, spec: spec, supervisor)
        case .afxdp(let transmitters): results = try runGenerators(transmitters, spec: spec, sizes: sizes, supervisor)
        case .ring: results = try runRing(info, spec: spec, sizes: sizes, supervisor)
        }
        let wall = Double(Sys.monotonicNanoseconds() - start) / 1e9
        if case .afxdp(let transmitters) = choice.engine {
            choice.xskMode = transmitters.first?.mode
            choice.invalidDescriptors = transmitters.reduce(0) { $0 + $1.invalidDescriptors() }
        }
        report(results, engine: choice, sizes: sizes, flowCount: spec.flows.flowCount, wall: wall)
    }

    /// One sending thread's outcome.
    struct ThreadResult {
        var sent: UInt64 = 0
        var firstNs: UInt64 = 0
        var lastNs: UInt64 = 0
        var lagSkips: UInt64 = 0
        var skippedNs: UInt64 = 0
        var maxLagSeenNs: UInt64 = 0
        var ringFull: UInt64 = 0

        var seconds: Double { sent > 1 ? Double(lastNs - firstNs) / 1e9 : 0 }
        var pps: Double { seconds > 0 ? Double(sent - 1) / seconds : 0 }
    }

    func report(_ results: [ThreadResult], engine choice: EngineChoice, sizes: [Int], flowCount: UInt64, wall: Double) {
        let engine = choice.engine.name
        let sending = results.filter { $0.sent > 0 }
        let sent = results.reduce(0) { $0 + $1.sent }
        let first = sending.map(\.firstNs).min() ?? 0
        let last = sending.map(\.lastNs).max() ?? 0
        let seconds = sent > 1 ? Double(last - first) / 1e9 : 0
        // One thread: (sent - 1) / (last - first); several: the sum of each thread's rate.
        let pps = results.count == 1 ? results[0].pps : results.reduce(0) { $0 + $1.pps }
        let meanSize = Double(sizes.reduce(0, +)) / Double(sizes.count)
        var fields = [
            "\"type\":\"final\"", "\"engine\":\"\(engine.rawValue)\"", "\"engine_choice\":\(JSONText.string(choice.reason))", "\"port\":\"\(port)\"", "\"ip\":\(isIPv6 ? 6 : 4)",
            imix ? "\"size\":\"imix\"" : "\"size\":\(frameSize)", "\"flows\":\(flowCount)", "\"stream\":\(stream)",
            "\"threads\":\(threads)", "\"sent\":\(sent)", "\"duration_s\":\(json(seconds, 6))", "\"pps\":\(json(pps, 1))",
            "\"bps\":\(json(pps * (meanSize + 24) * 8, 0))",  // on the wire: + FCS, preamble, IFG
            "\"wall_s\":\(json(wall, 3))",
        ]
        if engine == .xdp { fields.append("\"batch_size\":\(effectiveBatchSize)") }
        if engine == .pump { fields += ["\"pump_frames\":\(Self.pumpFrames)", "\"pump_reinjections\":\(choice.pumpReinjections)"] }
        if engine == .afxdp || engine == .ring { fields.append("\"tx_ring_full\":\(results.reduce(0) { $0 + $1.ringFull })") }
        if let mode = choice.xskMode {
            fields += ["\"xsk_mode\":\"\(mode.rawValue)\"", "\"tx_invalid\":\(choice.invalidDescriptors)"]
        }
        if let rate {
            let reached = pps >= rate * 0.995
            if !reached { printError("shunt gen: asked for \(Int(rate)) pps, reached \(Int(pps)) pps") }
            fields += ["\"rate\":\(json(rate, 1))", "\"rate_reached\":\(reached)",
                       "\"lag_skips\":\(results.reduce(0) { $0 + $1.lagSkips })",
                       "\"skipped_us\":\(results.reduce(0) { $0 + $1.skippedNs } / 1000)",
                       "\"max_lag_us\":\((results.map(\.maxLagSeenNs).max() ?? 0) / 1000)"]
        }
        let perThread = results.enumerated().map { i, r in
            "{\"thread\":\(i),\"stream\":\(stream + i),\"sent\":\(r.sent),\"duration_s\":\(json(r.seconds, 6)),\"pps\":\(json(r.pps, 1)),\"lag_skips\":\(r.lagSkips)}"
        }
        fields.append("\"per_thread\":[" + perThread.joined(separator: ",") + "]")
        emitLine("{" + fields.joined(separator: ",") + "}")
    }

    /// Waits until every sender is done, a termination signal comes, or `finished()` says so,
    /// then returns (the caller stops the senders: `supervisor.requestStop()`).
    private func supervise(_ supervisor: Supervisor, done: () -> Bool, finished: () -> Bool) {
        while !done() {
            guard supervisor.wait(atMostNs: 1_000_000) else { return }
            if finished() { return }
        }
    }
}

// MARK: the xdp engine

extension Gen {
    func runXDP(_ info: InterfaceInfo, spec: TestFrameSpec, _ supervisor: Supervisor) throws -> [ThreadResult] {
        var objects: [BPFObject] = []
        var runs: [GenRun] = []
        do {
            try Sys.installInterruptHandler(signal: SIGUSR1)
            for i in 0..<threads {
                let object = try BPFObject(embedded: "xdp_gen") { try $0.setReadOnlyData(spec.genConfig(stream: UInt16(stream + i))) }
                let share = share(i)
                let state = initialGenState(share)
                let run = GenRun(programFD: try object.programFD("xdp_gen"), stateFD: try object.mapFD("gen_state"),
                                 frame: spec.bytes(), ifindex: info.index, batchSize: effectiveBatchSize, limit: share.limit,
                                 supervisor: supervisor)
                try BPFMap.update(fd: run.stateFD, key: 0, value: state)
                objects.append(object)
                runs.append(run)
            }
        } catch {
            printError("shunt gen: \(error)")
            throw ExitCode(2)
        }

        // Each thread sits in BPF_PROG_TEST_RUN (xdp_gen paces inside the kernel); this one
        // watches the clock, the counts and the termination signals, and ends the runs with
        // SIGUSR1 (a thread that reached its own limit or deadline alone: `GenRun.stop()`; all of
        // them: `supervisor.requestStop()`). --duration counts from each thread's first frame (first_ns, CLOCK_MONOTONIC
        // like ours), so that the time the kernel takes to start the test run is not taken from
        // the sending time.
        var workers: [WorkerThread] = []
        for (i, run) in runs.enumerated() {
            do { workers.append(try WorkerThread(name: "shunt-gen-\(i)") { run.send() }) } catch {
                supervisor.requestStop()
                stopAndJoin(runs, workers)
                printError("shunt gen: \(error)")
                throw ExitCode(1)
            }
        }
        supervise(supervisor, done: { runs.allSatisfy(\.done) }) {
            let now = Sys.monotonicNanoseconds()
            for run in runs where !run.stopped {
                guard let s = try? run.state(), s.next_seq > 0 else { continue }
                if let limit = run.limit, s.next_seq >= limit { run.stop() }
                if let deadline = deadline(first: s.first_ns), now >= deadline { run.stop() }
            }
            return runs.allSatisfy(\.stopped)
        }
        supervisor.requestStop()
        stopAndJoin(runs, workers)
        if let error = runs.lazy.compactMap(\.error).first {
            printError("shunt gen: \(error)")
            throw ExitCode(1)
        }
        var results: [ThreadResult] = []
        for run in runs {
            guard let s = try? run.state() else {
                printError("shunt gen: reading the state failed")
                throw ExitCode(1)
            }
            results.append(ThreadResult(sent: s.next_seq, firstNs: s.first_ns, lastNs: s.last_ns, lagSkips: s.lag_skips,
                                        skippedNs: s.skipped_ns, maxLagSeenNs: s.max_lag_seen_ns))
        }
        withExtendedLifetime(objects) {}
        return results
    }

    /// xdp_gen's starting state for one thread's share: its frame limit and schedule.
    func initialGenState(_ share: (limit: UInt64?, rate: Double?)) -> shunt_gen_state {
        var state = shunt_gen_state()
        state.limit = share.limit ?? 0
        if let rate = share.rate {
            let interval = FrameInterval(rate: rate)
            state.interval_ns = interval.nanoseconds
            state.interval_frac = interval.fraction
        }
        state.max_lag_ns = maxLagNs
        return state
    }

    private func stopAndJoin(_ runs: [GenRun], _ workers: [WorkerThread]) {
        for (run, worker) in zip(runs, workers) {
            while !run.done {
                worker.interrupt(signal: SIGUSR1)
                Sys.sleep(nanoseconds: 1_000_000)
            }
            worker.join()
        }
    }
}

/// One sending thread's side: BPF_PROG_TEST_RUN calls with live frames, as long as the kernel
/// allows (2^31 - 1 runs of xdp_gen each), until this run or the whole generator is stopped. A call interrupted by the stop signal
/// fails with EINTR; the counts are in the gen_state map, not in the call's result.
private final class GenRun: @unchecked Sendable {
    let programFD: Int32
    let stateFD: Int32
    let frame: [UInt8]
    let ifindex: Int32
    let batchSize: UInt32
    let limit: UInt64?
    let supervisor: Supervisor
    private let flags = UnsafeMutablePointer<UInt32>.allocate(capacity: 2)  // [stop this run, done]
    private(set) var error: Error?  // written by the sender, read after done

    init(programFD: Int32, stateFD: Int32, frame: [UInt8], ifindex: Int32, batchSize: UInt32, limit: UInt64?,
         supervisor: Supervisor) {
        self.programFD = programFD
        self.stateFD = stateFD
        self.frame = frame
        self.ifindex = ifindex
        self.batchSize = batchSize
        self.limit = limit
        self.supervisor = supervisor
        flags.initialize(repeating: 0, count: 2)
    }

    deinit { flags.deallocate() }

    var done: Bool { cshunt_load_acquire_u32(flags + 1) != 0 }
    var stopped: Bool { cshunt_load_acquire_u32(flags) != 0 || supervisor.isStopping }
    func stop() { cshunt_store_release_u32(flags, 1) }

    func state() throws -> shunt_gen_state {
        try BPFMap.lookup(fd: stateFD, key: 0, as: shunt_gen_state.self)
    }

    func send() {
        while !stopped {
            do {
                try ProgramTestRun.xdpLiveFrames(programFD: programFD, packet: frame, ifindex: ifindex,
                                                 repeat: UInt32(Int32.max), batchSize: batchSize)
            } catch BPFError.libbpf(_, let e) where e == EINTR {
                continue
            } catch {
                self.error = error
                break
            }
        }
        cshunt_store_release_u32(flags + 1, 1)
    }
}

// MARK: the user-space engines (ring, afxdp)

extension Gen {
    /// `--engine ring`: one TPACKET TX ring per thread.
    func runRing(_ info: InterfaceInfo, spec: TestFrameSpec, sizes: [Int], _ supervisor: Supervisor) throws -> [ThreadResult] {
        let largest = sizes.max() ?? frameSize
        var frameSize = 2048
        while frameSize < largest + 128 { frameSize *= 2 }  // + the TPACKET_V2 header, aligned
        var ports: [RingPort] = []
        do throws(RingSetupError) {
            for _ in 0..<threads {
                // A token RX ring: the generator never reads it.
                let rx = RingGeometry(blockSize: 4096, blockCount: 1, frameSize: 2048, blockTimeoutMs: 0)
                let tx = RingGeometry(blockSize: max(1 << 16, frameSize), blockCount: 16,
                                      frameSize: frameSize, blockTimeoutMs: 0)
                ports.append(try RingPort(interface: info, config: RingPortConfig(version: .v2, rx: rx, tx: tx, qdiscBypass: true),
                                          fanout: nil))
            }
        } catch {
            printError("shunt gen: \(error)")
            throw ExitCode(2)
        }
        return try runGenerators(ports, spec: spec, sizes: sizes, supervisor)
    }

    /// One FrameGenerator per thread, each on its own transmitter (TX ring or AF_XDP socket).
    func runGenerators<T: FrameTransmitter>(_ transmitters: [T], spec: TestFrameSpec, sizes: [Int],
                                            _ supervisor: Supervisor) throws -> [ThreadResult] {
        let templates = sizes.map { s -> FrameGenerator<T>.Template in var t = spec; t.size = s; return .init(t) }
        let box = ResultsBox(count: threads)
        var workers: [WorkerThread] = []
        for i in 0..<threads {
            let share = share(i)
            let generator = FrameGenerator(transmitter: transmitters[i], templates: templates, flows: spec.flows,
                                           stream: UInt16(stream + i), count: share.limit, rate: share.rate, maxLagNs: maxLagNs)
            let command = self
            do {
                workers.append(try WorkerThread(name: "shunt-gen-\(i)") {
                    let r = generator.run(deadline: { command.deadline(first: $0) }) { supervisor.isStopping }
                    box.set(i, ThreadResult(sent: r.sent, firstNs: r.firstNs, lastNs: r.lastNs, lagSkips: r.lagSkips,
                                            skippedNs: r.skippedNs, maxLagSeenNs: r.maxLagSeenNs, ringFull: r.ringFull))
                })
            } catch {
                supervisor.requestStop()
                workers.forEach { $0.join() }
                printError("shunt gen: \(error)")
                throw ExitCode(1)
            }
        }
        supervise(supervisor, done: { box.finished == threads }, finished: { false })
        supervisor.requestStop()
        workers.forEach { $0.join() }
        withExtendedLifetime(transmitters) {}
        return box.results
    }
}

/// The ring threads' results, each written once by its thread before it ends.
private final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Gen.ThreadResult]
    private var done = 0

    init(count: Int) { values = Array(repeating: .init(), count: count) }

    func set(_ i: Int, _ r: Gen.ThreadResult) {
        lock.lock(); defer { lock.unlock() }
        values[i] = r
        done += 1
    }

    var finished: Int { lock.lock(); defer { lock.unlock() }; return done }
    var results: [Gen.ThreadResult] { lock.lock(); defer { lock.unlock() }; return values }
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

enum GenEngine: String, ExpressibleByArgument, CaseIterable {
    case auto, xdp, afxdp, ring, pump
}
