import ArgumentParser
import CShunt
import Foundation
import ShuntBPF
import ShuntRing
import ShuntSystem
import ShuntTraffic

// `shunt gen`: the traffic generator of the benchmarks (the receiver, `shunt sink`, is in
// Sink.swift). It prints one JSON line when done, on stdout; errors are one line on stderr.

struct Gen: ParsableCommand {
    static let name = "gen"
    static let configuration = CommandConfiguration(
        abstract: "Send UDP/IPv4 test frames out of an interface through XDP (xdp_gen, live frames).",
        discussion: """
            One template frame (src 02:00:00:00:00:01 10.203.0.1, dst --dst-mac 10.203.0.2, UDP \
            to port 9, UDP checksum 0) is run through xdp_gen with BPF_PROG_TEST_RUN and \
            BPF_F_TEST_XDP_LIVE_FRAMES: every copy gets the stream id (--stream), a sequence \
            number and a send timestamp (struct shunt_probe) and leaves IF by XDP_TX. On a veth, \
            frames reach the peer only when the peer has GRO on or an XDP program \
            (`ethtool -K PEER gro on`).

            Without --rate frames go out as fast as the kernel takes them. With --rate xdp_gen \
            spaces them evenly itself (CLOCK_MONOTONIC, per frame, no bursts): the test run keeps \
            one CPU busy either way. Runs until --count, --duration, SIGINT or SIGTERM, then \
            prints {"type":"final","sent":..,"duration_s":..,"pps":..,...}, duration and rate \
            measured between the first frame sent and the last. "sent" counts the frames \
            handed to XDP_TX: frames the interface then drops (a veth peer without GRO or XDP, \
            a full queue) are in it.

            --engine ring builds the frames in user space and sends them through a TPACKET TX \
            ring with qdisc bypass instead: slower, but it works on any interface and needs no \
            GRO or XDP on the peer. With --rate it paces in a busy loop on its CPU.

            Example: shunt gen --port gen0 --size 60 --duration 5 --rate 1000000
            """
    )

    @Option(name: .customLong("port"), help: ArgumentHelp("The interface to send out of.", valueName: "IF"))
    var port: String

    @Option(help: "Frame length in bytes without FCS, 60-1514 (60 is 64 on the wire).")
    var size: Int = 60

    @Option(help: "UDP source ports to cycle through (from 1024), so that flow hashing spreads the frames.")
    var flows: Int = 1

    @Flag(help: "Send the simple IMIX (7 x 64, 4 x 570, 1 x 1518 bytes on the wire, in turn) instead of one --size (--engine ring).")
    var imix = false

    @Option(help: "xdp: frames injected in the kernel (BPF_PROG_TEST_RUN live frames, fastest); ring: a TPACKET TX ring (works everywhere).")
    var engine: GenEngine = .xdp

    @Option(help: "Stream id stamped into every frame (0-65535): the sink accounts sequences per stream, so concurrent generators need distinct ids.")
    var stream: Int = 0

    @Option(help: "Stop after this many frames.")
    var count: UInt64?

    @Option(help: "Stop after sending for S seconds (counted from the first frame).")
    var duration: Double?

    @Option(help: "Frames per second (default: as fast as possible).")
    var rate: Double?

    @Option(help: "Destination MAC address of the frames.")
    var dstMac: String = "02:00:00:00:00:02"

    @Option(help: "Source MAC address of the frames.")
    var srcMac: String = "02:00:00:00:00:01"

    @Option(help: "With --rate: a frame later than this (the CPU was busy) moves the schedule up instead of being caught up in a burst, in microseconds. Default: 50, or two frame intervals if longer.")
    var maxLagUs: Double?

    @Option(help: "Frames per XDP batch inside the kernel (1-256). Frames leave at the end of their batch, so a batch adds up to its duration to the measured latency. Default: 64 flat out; with --rate, 4 up to 1.5 Mpps and 16 above.")
    var batchSize: UInt32?

    /// Small batches when paced: at 10 kpps a batch of 64 runs (mostly not yet due) held each
    /// frame back ~3 us on average, a batch of 4 under 1 us; 4 still reaches 2 Mpps, 16 ~4 Mpps.
    private var effectiveBatchSize: UInt32 {
        if let batchSize { return batchSize }
        guard let rate else { return 64 }
        return rate <= 1_500_000 ? 4 : 16
    }

    func validate() throws {
        if !TestFrameSpec.sizes.contains(size) {
            throw oneLineError(Self.name, "--size must be between \(TestFrameSpec.sizes.lowerBound) and \(TestFrameSpec.sizes.upperBound) bytes (the frame without FCS), not \(size)")
        }
        if !(1...(65535 - 1024)).contains(flows) { throw oneLineError(Self.name, "--flows must be between 1 and \(65535 - 1024)") }
        if imix && engine != .ring { throw oneLineError(Self.name, "--imix needs --engine ring (xdp_gen sends one template)") }
        if !(0...65535).contains(stream) { throw oneLineError(Self.name, "--stream must be between 0 and 65535") }
        if let count, count == 0 { throw oneLineError(Self.name, "--count must be at least 1") }
        if let duration, !(duration > 0) { throw oneLineError(Self.name, "--duration must be more than 0") }
        if let rate, !(rate > 0) || !rate.isFinite { throw oneLineError(Self.name, "--rate must be more than 0") }
        if let maxLagUs, !(maxLagUs >= 0) { throw oneLineError(Self.name, "--max-lag-us must be 0 or more") }
        if let batchSize, !(1...256).contains(batchSize) { throw oneLineError(Self.name, "--batch-size must be between 1 and 256") }
        if parseMAC(dstMac) == nil { throw oneLineError(Self.name, "--dst-mac: not a MAC address: \(dstMac)") }
        if parseMAC(srcMac) == nil { throw oneLineError(Self.name, "--src-mac: not a MAC address: \(srcMac)") }
    }

    func run() throws {
        Sys.blockTerminationSignals()
        if engine == .ring { return try runRing() }
        guard let ifindex = Sys.interfaceIndex(port) else {
            printError("shunt gen: no interface named \(port) in this network namespace")
            throw ExitCode(2)
        }
        // XDP_TX out of a down interface drops every frame without an error: refuse instead.
        if let sock = try? Sys.socket(domain: AF_INET, type: Int32(SOCK_DGRAM.rawValue), protocol: 0) {
            defer { Sys.close(sock) }
            if let flags = try? Sys.interfaceFlags(port, using: sock), flags & Int32(IFF_UP) == 0 {
                printError("shunt gen: \(port) is down")
                throw ExitCode(2)
            }
        }
        var spec = TestFrameSpec(size: size)
        spec.destinationMAC = parseMAC(dstMac)!
        spec.sourceMAC = parseMAC(srcMac)!

        let object: BPFObject
        let run: GenRun
        do {
            var config = shunt_gen_config()
            config.stream = UInt32(stream)
            config.flows = UInt32(flows)
            config.base_sport = spec.sourcePort
            withUnsafeMutableBytes(of: &config.eth) { $0.copyBytes(from: spec.destinationMAC + spec.sourceMAC) }
            object = try BPFObject(embedded: "xdp_gen") { try $0.setReadOnlyData(config) }
            var state = shunt_gen_state()
            state.limit = count ?? 0
            if let rate {
                let interval = FrameInterval(rate: rate)
                state.interval_ns = interval.nanoseconds
                state.interval_frac = interval.fraction
            }
            state.max_lag_ns = UInt64((maxLagUs ?? max(50, rate.map { 2e6 / $0 } ?? 0)) * 1000)
            run = GenRun(programFD: try object.programFD("xdp_gen"), stateFD: try object.mapFD("gen_state"),
                         frame: spec.bytes(), ifindex: ifindex, batchSize: effectiveBatchSize)
            try BPFMap.update(fd: run.stateFD, key: 0, value: state)
            try Sys.installInterruptHandler(signal: SIGUSR1)
        } catch {
            printError("shunt gen: \(error)")
            throw ExitCode(2)
        }

        // One thread sits in BPF_PROG_TEST_RUN (xdp_gen paces inside the kernel); this one
        // watches the clock, the count and the termination signals, and ends the run with SIGUSR1.
        // --duration counts from the first frame sent (first_ns, CLOCK_MONOTONIC like ours), so
        // that the time the kernel takes to start the test run is not taken from the sending time
        // (at --rate R, --duration S sends R * S frames); until that frame, from now.
        let start = Sys.monotonicNanoseconds()
        let durationNs = duration.map { UInt64($0 * 1e9) }
        var deadline = durationNs.map { start + $0 }
        var sendingSince: UInt64? = nil
        let thread: WorkerThread
        do { thread = try WorkerThread(name: "shunt-gen") { run.send() } } catch {
            printError("shunt gen: \(error)")
            throw ExitCode(1)
        }
        while !run.done {
            if Sys.waitForTerminationSignal(timeoutNs: 1_000_000) != nil { break }
            if count != nil || (durationNs != nil && sendingSince == nil), let s = try? run.state() {
                if let count, s.next_seq >= count { break }
                if let durationNs, sendingSince == nil, s.next_seq > 0 {
                    sendingSince = s.first_ns
                    deadline = s.first_ns + durationNs
                }
            }
            if let deadline, Sys.monotonicNanoseconds() >= deadline { break }
        }
        run.stop()
        while !run.done {
            thread.interrupt(signal: SIGUSR1)
            _ = Sys.waitForTerminationSignal(timeoutNs: 1_000_000)
        }
        thread.join()
        let wall = Double(Sys.monotonicNanoseconds() - start) / 1e9
        if let error = run.error {
            printError("shunt gen: \(error)")
            throw ExitCode(1)
        }
        let state: shunt_gen_state
        do { state = try run.state() } catch {
            printError("shunt gen: reading the state: \(error)")
            throw ExitCode(1)
        }
        withExtendedLifetime(object) {}

        // duration and rate between the first frame and the last
        let sent = state.next_seq
        let seconds = sent > 1 ? Double(state.last_ns - state.first_ns) / 1e9 : 0
        let pps = seconds > 0 ? Double(sent - 1) / seconds : 0
        var fields = [
            "\"type\":\"final\"", "\"port\":\"\(port)\"", "\"size\":\(size)", "\"flows\":\(flows)", "\"stream\":\(stream)",
            "\"sent\":\(sent)", "\"duration_s\":\(json(seconds, 6))", "\"pps\":\(json(pps, 1))",
            "\"bps\":\(json(pps * Double(size + 24) * 8, 0))",  // on the wire: + FCS, preamble, IFG
            "\"wall_s\":\(json(wall, 3))", "\"batch_size\":\(effectiveBatchSize)",
        ]
        if let rate {
            let reached = pps >= rate * 0.995
            if !reached { printError("shunt gen: asked for \(Int(rate)) pps, reached \(Int(pps)) pps") }
            fields += ["\"rate\":\(json(rate, 1))", "\"rate_reached\":\(reached)",
                       "\"lag_skips\":\(state.lag_skips)", "\"skipped_us\":\(state.skipped_ns / 1000)"]
        }
        emitLine("{" + fields.joined(separator: ",") + "}")
    }
}

/// The sending thread's side: BPF_PROG_TEST_RUN calls with live frames, as long as the kernel
/// allows (2^31 - 1 runs of xdp_gen each), until stopped. A call interrupted by the stop signal
/// fails with EINTR; the counts are in the gen_state map, not in the call's result.
private final class GenRun: @unchecked Sendable {
    let programFD: Int32
    let stateFD: Int32
    let frame: [UInt8]
    let ifindex: Int32
    let batchSize: UInt32
    private let flags = UnsafeMutablePointer<UInt32>.allocate(capacity: 2)  // [stop, done]
    private(set) var error: Error?  // written by the sender, read after done

    init(programFD: Int32, stateFD: Int32, frame: [UInt8], ifindex: Int32, batchSize: UInt32) {
        self.programFD = programFD
        self.stateFD = stateFD
        self.frame = frame
        self.ifindex = ifindex
        self.batchSize = batchSize
        flags.initialize(repeating: 0, count: 2)
    }

    deinit { flags.deallocate() }

    var done: Bool { cshunt_load_acquire_u32(flags + 1) != 0 }
    func stop() { cshunt_store_release_u32(flags, 1) }

    func state() throws -> shunt_gen_state {
        try BPFMap.lookup(fd: stateFD, key: 0, as: shunt_gen_state.self)
    }

    func send() {
        while cshunt_load_acquire_u32(flags) == 0 {
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
    case xdp, ring
}

extension Gen {
    /// `--engine ring`: see RingGenerator.
    func runRing() throws {
        var spec = TestFrameSpec(size: size)
        spec.destinationMAC = parseMAC(dstMac)!
        spec.sourceMAC = parseMAC(srcMac)!
        let info: InterfaceInfo
        do throws(RingSetupError) {
            info = try InterfaceInfo.lookup(self.port)
            guard info.isUp else { throw RingSetupError.interfaceDown(self.port) }
        } catch {
            printError("shunt gen: \(error)")
            throw ExitCode(2)
        }
        // The simple IMIX, as frames without FCS: 7 x 60, 4 x 566, 1 x 1514.
        let sizes = imix ? Array(repeating: 60, count: 7) + Array(repeating: 566, count: 4) + [1514] : [size]
        if let largest = sizes.max(), largest > info.mtu + 14 {
            printError("shunt gen: a \(largest)-byte frame does not fit \(self.port)'s MTU \(info.mtu) (at most \(info.mtu + 14) bytes)")
            throw ExitCode(2)
        }
        let port: RingPort
        do throws(RingSetupError) {
            // A token RX ring: the generator never reads it.
            let rx = RingGeometry(blockSize: 4096, blockCount: 1, frameSize: 2048, blockTimeoutMs: 0)
            let tx = RingGeometry(blockSize: 1 << 16, blockCount: 16, frameSize: 2048, blockTimeoutMs: 0)
            port = try RingPort(interface: info, config: RingPortConfig(version: .v2, rx: rx, tx: tx, qdiscBypass: true),
                                fanout: nil)
        } catch {
            printError("shunt gen: \(error)")
            throw ExitCode(2)
        }
        let generator = RingGenerator(
            port: port, templates: sizes.map { s -> [UInt8] in var t = spec; t.size = s; return t.bytes() }, flows: flows, baseSourcePort: spec.sourcePort, stream: UInt16(stream),
            count: count, rate: rate, maxLagNs: UInt64((maxLagUs ?? max(50, rate.map { 2e6 / $0 } ?? 0)) * 1000))
        let start = Sys.monotonicNanoseconds()
        var nextSignalCheck = start
        var interrupted = false
        let result = generator.run(deadlineNs: duration.map { start + UInt64($0 * 1e9) }) {
            // Termination signals are blocked: look for one every 10 ms.
            let now = Sys.monotonicNanoseconds()
            guard now >= nextSignalCheck else { return false }
            nextSignalCheck = now + 10_000_000
            if Sys.waitForTerminationSignal(timeoutNs: 0) != nil { interrupted = true }
            return interrupted
        }
        let wall = Double(Sys.monotonicNanoseconds() - start) / 1e9
        let sent = result.sent
        let seconds = sent > 1 ? Double(result.lastNs - result.firstNs) / 1e9 : 0
        let pps = seconds > 0 ? Double(sent - 1) / seconds : 0
        var fields = [
            "\"type\":\"final\"", "\"engine\":\"ring\"", "\"port\":\"\(self.port)\"", imix ? "\"size\":\"imix\"" : "\"size\":\(size)",
            "\"flows\":\(flows)", "\"stream\":\(stream)", "\"sent\":\(sent)", "\"duration_s\":\(json(seconds, 6))",
            "\"pps\":\(json(pps, 1))", "\"bps\":\(json(pps * (Double(sizes.reduce(0, +)) / Double(sizes.count) + 24) * 8, 0))",
            "\"wall_s\":\(json(wall, 3))",
            "\"tx_ring_full\":\(result.ringFull)",
        ]
        if let rate {
            let reached = pps >= rate * 0.995
            if !reached { printError("shunt gen: asked for \(Int(rate)) pps, reached \(Int(pps)) pps") }
            fields += ["\"rate\":\(json(rate, 1))", "\"rate_reached\":\(reached)", "\"lag_skips\":\(result.lagSkips)"]
        }
        emitLine("{" + fields.joined(separator: ",") + "}")
    }
}
