import CShunt
import ShuntBPF
import ShuntRuntime
import ShuntSystem
import ShuntTraffic

/// The xdp engine of `shunt sink`: xdp_sink attached to the port counts every frame and times
/// every probe in the kernel, per CPU (fast, no per-packet sequence state); this side polls
/// the counts (for active_pps and the statistics lines) and reads the totals and the latency
/// buckets at the end.
public final class XDPSink {
    /// Why xdp_sink is not running: `fatal` when no engine could help (no such interface).
    public struct AttachError: Error {
        public var message: String
        public var fatal = false
    }

    public let port: String
    private let object: BPFObject
    /// Set to nil to detach.
    private var attachment: XDPAttachment?
    private let countersFD: Int32
    private let latencyFD: Int32

    /// Loads xdp_sink and attaches it to `port`.
    public init(port: String) throws(AttachError) {
        guard let ifindex = Sys.interfaceIndex(port) else {
            throw AttachError(message: "no interface named \(port) in this network namespace", fatal: true)
        }
        do {
            object = try BPFObject(embedded: "xdp_sink")
            attachment = try object.attachXDP(program: "xdp_sink", ifindex: ifindex)
            countersFD = try object.mapFD("sink_counters")
            latencyFD = try object.mapFD("sink_latency")
        } catch {
            throw AttachError(message: "\(error)")
        }
        self.port = port
    }

    /// Polls the counts every `pollNs` until the supervisor says to stop (SIGINT/SIGTERM, the
    /// deadline given to its `begin`), with a statistics line for `stats` whenever a report is
    /// due; then detaches and returns the final report (status 1 if the counters cannot be read).
    public func run(_ supervisor: Supervisor, pollNs: UInt64, stats: (SinkInterval) -> Void) throws(CommandFailure) -> SinkReport {
        let start = supervisor.startNs
        var lastStats = (time: start, packets: UInt64(0), bytes: UInt64(0))
        // (time, packets) at the first poll that saw packets and at the last that saw more
        var first: (UInt64, UInt64)? = nil
        var last: (UInt64, UInt64)? = nil
        var previous: UInt64 = 0
        while supervisor.wait(atMostNs: pollNs) {
            guard let c = try? readCounters() else { continue }
            let t = Sys.monotonicNanoseconds()
            if c.packets > previous {
                if first == nil { first = (t, c.packets) }
                last = (t, c.packets)
                previous = c.packets
            }
            if supervisor.reportDue(at: t) {
                stats(SinkInterval(
                    elapsedSeconds: Double(t - start) / 1e9, intervalSeconds: Double(t - lastStats.time) / 1e9,
                    intervalReceived: c.packets - lastStats.packets, intervalBytes: c.bytes - lastStats.bytes,
                    received: c.packets, bytes: c.bytes, sequences: nil, ringDropped: nil))
                lastStats = (t, c.packets, c.bytes)
            }
        }
        attachment = nil  // detach before the final reads: the counts no longer move
        var report = try finalReport(durationNs: Sys.monotonicNanoseconds() - start)
        if let first, let last, last.0 > first.0 {
            report.activeSeconds = Double(last.0 - first.0) / 1e9
            report.activePPS = Double(last.1 - first.1) / report.activeSeconds
        }
        return report
    }

    /// The totals and the latency buckets, summed over the CPUs.
    private func finalReport(durationNs: UInt64) throws(CommandFailure) -> SinkReport {
        let totals: shunt_sink_counters
        var histogram = LatencyHistogram()
        do {
            totals = try readCounters()
            for bucket in 0..<LatencyHistogram.bucketCount {
                let perCPU = try BPFMap.lookupPerCPU(fd: latencyFD, key: UInt32(bucket), as: UInt64.self)
                histogram.counts[bucket] = perCPU.reduce(0, &+)
            }
        } catch {
            throw CommandFailure(status: 1, "reading the counters: \(error)")
        }
        // The bucket summary (lower bounds of 1 us buckets) as the text line, via the recorder.
        var report = SinkReport(engine: .xdp, port: port, latencyJSON: histogram.summaryJSON(),
                                latencyText: LatencyRecorder(buckets: histogram).summary().text + " (bucket lower bounds)")
        report.received = totals.packets
        report.bytes = totals.bytes
        report.probes = totals.probes
        report.other = totals.packets - totals.probes
        report.reordered = totals.reordered
        report.durationSeconds = Double(durationNs) / 1e9
        return report
    }

    /// The per-CPU counters summed (max_seq: the largest).
    private func readCounters() throws -> shunt_sink_counters {
        var t = shunt_sink_counters()
        for c in try BPFMap.lookupPerCPU(fd: countersFD, key: 0, as: shunt_sink_counters.self) {
            t.packets += c.packets
            t.bytes += c.bytes
            t.probes += c.probes
            t.max_seq = max(t.max_seq, c.max_seq)
            t.reordered += c.reordered
        }
        return t
    }
}
