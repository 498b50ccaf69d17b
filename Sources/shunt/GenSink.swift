import ArgumentParser
import CShunt
import Foundation
import ShuntBPF
import ShuntSystem
import ShuntTraffic

// `shunt gen` and `shunt sink`: the traffic generator and receiver of the benchmarks.
// Both print one JSON line when done, on stdout; errors are one line on stderr.

struct Gen: ParsableCommand {
    static let name = "gen"
    static let configuration = CommandConfiguration(
        abstract: "Send UDP/IPv4 test frames out of an interface through XDP (xdp_gen, live frames).",
        discussion: """
            One template frame (src 02:00:00:00:00:01 10.203.0.1, dst --dst-mac 10.203.0.2, UDP \
            to port 9, UDP checksum 0) is run through xdp_gen with BPF_PROG_TEST_RUN and \
            BPF_F_TEST_XDP_LIVE_FRAMES: every copy gets a sequence number and a send timestamp \
            (struct shunt_probe) and leaves IF by XDP_TX. On a veth, frames reach the peer only \
            when the peer has GRO on or an XDP program (`ethtool -K PEER gro on`).

            Without --rate frames go out as fast as the kernel takes them, in calls of about one \
            second each. With --rate they go out in chunks of rate x --tick-us frames, paced \
            against CLOCK_MONOTONIC. Runs until --count, --duration, SIGINT or SIGTERM, then \
            prints {"type":"final","sent":..,"duration_s":..,"pps":..,...}.

            Example: shunt gen --port gen0 --size 60 --duration 5 --rate 1000000
            """
    )

    @Option(name: .customLong("port"), help: ArgumentHelp("The interface to send out of.", valueName: "IF"))
    var port: String

    @Option(help: "Frame length in bytes without FCS, 60-1514 (60 is 64 on the wire).")
    var size: Int = 60

    @Option(help: "UDP source ports to cycle through (from 1024), so that flow hashing spreads the frames.")
    var flows: Int = 1

    @Option(help: "Stop after this many frames.")
    var count: UInt64?

    @Option(help: "Stop after S seconds.")
    var duration: Double?

    @Option(help: "Frames per second (default: as fast as possible).")
    var rate: Double?

    @Option(help: "Destination MAC address of the frames.")
    var dstMac: String = "02:00:00:00:00:02"

    @Option(help: "Source MAC address of the frames.")
    var srcMac: String = "02:00:00:00:00:01"

    @Option(help: "With --rate: target spacing of chunks, in microseconds (chunks are bursts).")
    var tickUs: Double = 100

    @Option(help: "Frames per XDP batch inside the kernel (1-256).")
    var batchSize: UInt32 = 64

    func validate() throws {
        if !TestFrameSpec.sizes.contains(size) {
            throw oneLineError(Self.name, "--size must be between \(TestFrameSpec.sizes.lowerBound) and \(TestFrameSpec.sizes.upperBound) bytes (the frame without FCS), not \(size)")
        }
        if !(1...(65535 - 1024)).contains(flows) { throw oneLineError(Self.name, "--flows must be between 1 and \(65535 - 1024)") }
        if let count, count == 0 { throw oneLineError(Self.name, "--count must be at least 1") }
        if let duration, !(duration > 0) { throw oneLineError(Self.name, "--duration must be more than 0") }
        if let rate, !(rate > 0) || !rate.isFinite { throw oneLineError(Self.name, "--rate must be more than 0") }
        if !(tickUs >= 1) { throw oneLineError(Self.name, "--tick-us must be at least 1") }
        if !(1...256).contains(batchSize) { throw oneLineError(Self.name, "--batch-size must be between 1 and 256") }
        if parseMAC(dstMac) == nil { throw oneLineError(Self.name, "--dst-mac: not a MAC address: \(dstMac)") }
        if parseMAC(srcMac) == nil { throw oneLineError(Self.name, "--src-mac: not a MAC address: \(srcMac)") }
    }

    func run() throws {
        Sys.blockTerminationSignals()
        guard let ifindex = Sys.interfaceIndex(port) else {
            printError("shunt gen: no interface named \(port) in this network namespace")
            throw ExitCode(2)
        }
        var spec = TestFrameSpec(size: size)
        spec.destinationMAC = parseMAC(dstMac)!
        spec.sourceMAC = parseMAC(srcMac)!
        let frame = spec.bytes()

        let programFD: Int32
        let object: BPFObject
        do {
            let config = shunt_gen_config(stream: 0, flows: UInt32(flows), base_sport: spec.sourcePort, pad: 0)
            object = try BPFObject(embedded: "xdp_gen") { try $0.setReadOnlyData(config) }
            programFD = try object.programFD("xdp_gen")
        } catch {
            printError("shunt gen: \(error)")
            throw ExitCode(2)
        }

        var sender = ChunkSender(programFD: programFD, frame: frame, ifindex: ifindex, batchSize: batchSize)
        let start = Sys.monotonicNanoseconds()
        let deadline = duration.map { start + UInt64($0 * 1e9) }
        var skipped: UInt64 = 0
        do {
            if let rate {
                Sys.setTimerSlack(nanoseconds: 1)
                skipped = try sendPaced(&sender, rate: rate, start: start, deadline: deadline)
            } else {
                try sendFlatOut(&sender, start: start, deadline: deadline)
            }
        } catch {
            printError("shunt gen: \(error)" + (sender.sent == 0 ? " (is \(port) up?)" : ""))
            throw ExitCode(1)
        }
        withExtendedLifetime(object) {}

        let seconds = Double(sender.lastEnd > start ? sender.lastEnd - start : 0) / 1e9
        let pps = seconds > 0 ? Double(sender.sent) / seconds : 0
        var reached = true
        if let rate, pps < rate * 0.995 {
            reached = false
            printError("shunt gen: asked for \(Int(rate)) pps, reached \(Int(pps)) pps")
        }
        var fields = [
            "\"type\":\"final\"", "\"port\":\"\(port)\"", "\"size\":\(size)", "\"flows\":\(flows)",
            "\"sent\":\(sender.sent)", "\"duration_s\":\(json(seconds, 6))", "\"pps\":\(json(pps, 1))",
            "\"bps\":\(json(pps * Double(size + 24) * 8, 0))",  // on the wire: + FCS, preamble, IFG
            "\"calls\":\(sender.calls)",
        ]
        if let rate {
            fields += ["\"rate\":\(json(rate, 1))", "\"rate_reached\":\(reached)", "\"skipped\":\(skipped)"]
        }
        emitLine("{" + fields.joined(separator: ",") + "}")
    }

    /// Flat out: calls of about a second's worth each (the first one calibrates), the last one
    /// sized to end near the deadline. Checks for SIGINT/SIGTERM between calls.
    private func sendFlatOut(_ s: inout ChunkSender, start: UInt64, deadline: UInt64?) throws {
        var chunk: UInt64 = 1 << 16
        while Sys.waitForTerminationSignal(timeoutNs: 0) == nil {
            let now = Sys.monotonicNanoseconds()
            if let deadline, now >= deadline { break }
            var n = chunk
            if let count { n = min(n, count - s.sent) }
            if let deadline, s.sent > 0 {
                let pps = Double(s.sent) / Double(now - start) * 1e9
                n = min(n, max(UInt64(batchSize), UInt64(pps * Double(deadline - now) / 1e9)))
            }
            if n == 0 { break }
            try s.send(n)
            // about one second per call: stops and signals are seen within a second
            let pps = Double(s.sent) / Double(max(1, s.lastEnd - start)) * 1e9
            chunk = UInt64(min(max(pps, 65536), Double(Int32.max)))
        }
    }

    /// Paced: whenever at least rate x tick frames are due, one call sends what is due (at most
    /// 20 ticks' worth: anything more is skipped, not sent as one large burst). Returns skipped.
    private func sendPaced(_ s: inout ChunkSender, rate: Double, start: UInt64, deadline: UInt64?) throws -> UInt64 {
        var pacer = Pacer(rate: rate, tickNs: UInt64(tickUs * 1000))
        while true {
            let now = Sys.monotonicNanoseconds()
            if let deadline, now >= deadline { break }
            let left = count.map { $0 - s.sent } ?? .max
            if left == 0 { break }
            let n = pacer.take(elapsedNs: now - start, limit: left)
            if n > 0 {
                try s.send(n)
                if Sys.waitForTerminationSignal(timeoutNs: 0) != nil { break }
                continue
            }
            var wake = start + pacer.nextDueNs
            if let deadline { wake = min(wake, deadline) }
            if wake > now, Sys.waitForTerminationSignal(timeoutNs: wake - now) != nil { break }
        }
        return pacer.skipped
    }
}

/// One BPF_PROG_TEST_RUN (live frames) call per chunk. Signals are blocked, so a call always
/// completes and `sent` is exact (frames the kernel ran xdp_gen on and passed to XDP_TX).
private struct ChunkSender {
    let programFD: Int32
    let frame: [UInt8]
    let ifindex: Int32
    let batchSize: UInt32
    var sent: UInt64 = 0
    var calls: UInt64 = 0
    var lastEnd: UInt64 = 0

    init(programFD: Int32, frame: [UInt8], ifindex: Int32, batchSize: UInt32) {
        self.programFD = programFD
        self.frame = frame
        self.ifindex = ifindex
        self.batchSize = batchSize
    }

    mutating func send(_ n: UInt64) throws {
        var left = n
        while left > 0 {
            let c = UInt32(min(left, UInt64(Int32.max)))
            try ProgramTestRun.xdpLiveFrames(programFD: programFD, packet: frame, ifindex: ifindex,
                                             repeat: c, batchSize: min(batchSize, c))
            left -= UInt64(c)
            sent += UInt64(c)
            calls += 1
        }
        lastEnd = Sys.monotonicNanoseconds()
    }
}

struct Sink: ParsableCommand {
    static let name = "sink"
    static let configuration = CommandConfiguration(
        abstract: "Count and time test frames arriving at an interface (xdp_sink), then drop them.",
        discussion: """
            Attaches xdp_sink to IF (bpf_link: detached when shunt exits), prints \
            {"type":"ready",...} once attached, and runs until --duration, SIGINT or SIGTERM. Then \
            prints {"type":"final","received":..,"bytes":..,"pps":..,"reordered":..,"latency_us":{..}}.

            received counts every frame; probes, those stamped by shunt gen. pps is received over \
            the whole run; active_pps is the rate between the first and the last poll (every \
            --poll-ms) that saw the count grow. latency_us summarizes the one-way latency \
            histogram (send stamp in xdp_gen to arrival in xdp_sink, same clock): every value is \
            the lower bound of its bucket, 1 us wide below 4096 us and a power of two above.
            """
    )

    @Option(name: .customLong("port"), help: ArgumentHelp("The interface to receive on.", valueName: "IF"))
    var port: String

    @Option(help: "Stop after S seconds (default: run until SIGINT or SIGTERM).")
    var duration: Double?

    @Option(help: "How often to sample the packet count for active_pps, in milliseconds.")
    var pollMs: Double = 10

    func validate() throws {
        if let duration, !(duration > 0) { throw oneLineError(Self.name, "--duration must be more than 0") }
        if !(pollMs >= 1) { throw oneLineError(Self.name, "--poll-ms must be at least 1") }
    }

    func run() throws {
        Sys.blockTerminationSignals()
        guard let ifindex = Sys.interfaceIndex(port) else {
            printError("shunt sink: no interface named \(port) in this network namespace")
            throw ExitCode(2)
        }
        let object: BPFObject
        var attachment: XDPAttachment?
        let countersFD: Int32, latencyFD: Int32
        do {
            object = try BPFObject(embedded: "xdp_sink")
            countersFD = try object.mapFD("sink_counters")
            latencyFD = try object.mapFD("sink_latency")
            attachment = try object.attachXDP(program: "xdp_sink", ifindex: ifindex)
        } catch {
            printError("shunt sink: \(error)")
            throw ExitCode(2)
        }
        emitLine("{\"type\":\"ready\",\"port\":\"\(port)\"}")

        let start = Sys.monotonicNanoseconds()
        let deadline = duration.map { start + UInt64($0 * 1e9) }
        let pollNs = UInt64(pollMs * 1e6)
        // (time, packets) at the first poll that saw packets and at the last that saw more
        var first: (UInt64, UInt64)? = nil
        var last: (UInt64, UInt64)? = nil
        var previous: UInt64 = 0
        while true {
            let now = Sys.monotonicNanoseconds()
            if let deadline, now >= deadline { break }
            var wait = pollNs
            if let deadline { wait = min(wait, deadline - now) }
            if Sys.waitForTerminationSignal(timeoutNs: wait) != nil { break }
            guard let c = try? readCounters(countersFD) else { continue }
            let t = Sys.monotonicNanoseconds()
            if c.packets > previous {
                if first == nil { first = (t, c.packets) }
                last = (t, c.packets)
                previous = c.packets
            }
        }
        attachment = nil  // detach before the final reads: the counts no longer move
        _ = attachment
        let end = Sys.monotonicNanoseconds()

        let totals: shunt_sink_counters
        var histogram = LatencyHistogram()
        do {
            totals = try readCounters(countersFD)
            for bucket in 0..<LatencyHistogram.bucketCount {
                let perCPU = try BPFMap.lookupPerCPU(fd: latencyFD, key: UInt32(bucket), as: UInt64.self)
                histogram.counts[bucket] = perCPU.reduce(0, &+)
            }
        } catch {
            printError("shunt sink: reading the counters: \(error)")
            throw ExitCode(1)
        }
        withExtendedLifetime(object) {}

        let seconds = Double(end - start) / 1e9
        var activeSeconds = 0.0, activePPS: Double? = nil
        if let first, let last, last.0 > first.0 {
            activeSeconds = Double(last.0 - first.0) / 1e9
            activePPS = Double(last.1 - first.1) / activeSeconds
        }
        let fields = [
            "\"type\":\"final\"", "\"port\":\"\(port)\"",
            "\"received\":\(totals.packets)", "\"bytes\":\(totals.bytes)", "\"probes\":\(totals.probes)",
            "\"duration_s\":\(json(seconds, 6))", "\"pps\":\(json(seconds > 0 ? Double(totals.packets) / seconds : 0, 1))",
            "\"active_s\":\(json(activeSeconds, 3))", "\"active_pps\":\(activePPS.map { json($0, 1) } ?? "null")",
            "\"reordered\":\(totals.reordered)",
            "\"latency_us\":\(histogram.summaryJSON())",
        ]
        emitLine("{" + fields.joined(separator: ",") + "}")
    }

    /// The per-CPU counters summed (max_seq: the largest).
    private func readCounters(_ fd: Int32) throws -> shunt_sink_counters {
        var t = shunt_sink_counters()
        for c in try BPFMap.lookupPerCPU(fd: fd, key: 0, as: shunt_sink_counters.self) {
            t.packets += c.packets
            t.bytes += c.bytes
            t.probes += c.probes
            t.max_seq = max(t.max_seq, c.max_seq)
            t.reordered += c.reordered
        }
        return t
    }
}

/// Prints "shunt CMD: message" as one line on stderr and returns the exit code of a usage error
/// (ArgumentParser's ValidationError would add the usage lines).
private func oneLineError(_ command: String, _ message: String) -> ExitCode {
    printError("shunt \(command): \(message)")
    return ExitCode.validationFailure
}

/// A finite number for JSON with `digits` decimals (non-finite values become 0).
private func json(_ x: Double, _ digits: Int) -> String {
    String(format: "%.\(digits)f", x.isFinite ? x : 0)
}
