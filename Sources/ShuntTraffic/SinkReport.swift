import ShuntCore

/// What `shunt sink` prints: the final report and the periodic statistics, as one JSON line each
/// (the stable interface documented in the README, "shunt gen, shunt sink") or as text.
/// Pure formatting, no system calls.
///
/// A count an engine cannot compute truthfully is nil and prints as JSON `null` (the XDP engine
/// counts in the kernel, per CPU, without per-packet sequence state: it has no `lost`,
/// `duplicated`, `out_of_order`, per-stream counts or ring).
public struct SinkReport: Sendable {
    public enum Engine: String, Sendable {
        case xdp, ring
    }

    public var engine: Engine
    /// The TPACKET version of the ring engine ("v2" or "v3"); nil for the XDP engine.
    public var ring: String?
    /// The V3 block timeout the ring ran with; nil for V2 and XDP.
    public var blockTimeoutMs: Int?
    public var port: String
    /// Every frame the sink got (with a probe or not).
    public var received: UInt64 = 0
    /// Their bytes, frames as received (Ethernet header to the end of the payload, no FCS).
    public var bytes: UInt64 = 0
    /// Frames carrying a `shunt gen` probe.
    public var probes: UInt64 = 0
    /// Frames without one.
    public var other: UInt64 = 0
    /// Sequence accounting summed over the streams; nil when the engine cannot tell.
    public var sequences: SequenceStats? = nil
    /// Per-stream accounting, by stream id; nil when the engine cannot tell.
    public var streams: [(stream: UInt16, stats: SequenceStats)]? = nil
    /// Probes of streams beyond the table's capacity (counted, not sequence-tracked).
    public var untracked: UInt64? = nil
    /// From ready to stop.
    public var durationSeconds: Double = 0
    /// From the first frame to the last one the sink saw (XDP engine: polls that saw the count grow).
    public var activeSeconds: Double = 0
    /// The rate over `activeSeconds`; nil with fewer than two observations.
    public var activePPS: Double? = nil
    /// Frames the kernel dropped because the receive ring was full (PACKET_STATISTICS tp_drops):
    /// they never reached the sink and are not in `received`. nil for the XDP engine (no ring).
    public var ringDropped: UInt64? = nil
    /// XDP engine only: probes whose sequence was not above the highest seen on their CPU.
    public var reordered: UInt64? = nil
    /// `latency_us` object and its one-line text.
    public var latencyJSON: String
    public var latencyText: String

    public init(engine: Engine, port: String, latencyJSON: String, latencyText: String) {
        self.engine = engine
        self.port = port
        self.latencyJSON = latencyJSON
        self.latencyText = latencyText
    }

    public var pps: Double { durationSeconds > 0 ? Double(received) / durationSeconds : 0 }
    public var bps: Double { durationSeconds > 0 ? Double(bytes) * 8 / durationSeconds : 0 }

    /// The `{"type":"final",...}` line. Keys in this order; see the README for each.
    public var json: String {
        var f: [String] = [
            "\"type\":\"final\"", "\"engine\":\"\(engine.rawValue)\"", "\"ring\":\(string(ring))",
        ]
        if let blockTimeoutMs { f.append("\"block_timeout_ms\":\(blockTimeoutMs)") }
        f += [
            "\"port\":\(quoted(port))",
            "\"received\":\(received)", "\"bytes\":\(bytes)", "\"probes\":\(probes)", "\"other\":\(other)",
            "\"lost\":\(number(sequences?.lost))", "\"duplicated\":\(number(sequences?.duplicated))",
            "\"out_of_order\":\(number(sequences?.outOfOrder))", "\"too_late\":\(number(sequences?.tooLate))",
            "\"pps\":\(decimal(pps))", "\"bps\":\(decimal(bps))", "\"duration_s\":\(decimal(durationSeconds))",
            "\"active_s\":\(decimal(activeSeconds))", "\"active_pps\":\(activePPS.map(decimal) ?? "null")",
            "\"ring_dropped\":\(number(ringDropped))",
        ]
        if let reordered { f.append("\"reordered\":\(reordered)") }
        f.append("\"latency_us\":\(latencyJSON)")
        if let streams {
            f.append("\"streams\":[" + streams.map { Self.streamJSON($0.stream, $0.stats) }.joined(separator: ",") + "]")
        } else {
            f.append("\"streams\":null")
        }
        f.append("\"untracked\":\(number(untracked))")
        return "{" + f.joined(separator: ",") + "}"
    }

    static func streamJSON(_ id: UInt16, _ s: SequenceStats) -> String {
        "{\"stream\":\(id),\"received\":\(s.received),\"bytes\":\(s.bytes),\"lost\":\(s.lost),"
            + "\"duplicated\":\(s.duplicated),\"out_of_order\":\(s.outOfOrder),\"too_late\":\(s.tooLate),"
            + "\"first_seq\":\(number(s.first.map(UInt64.init))),\"highest_seq\":\(number(s.highest.map(UInt64.init)))}"
    }

    /// The human-readable report, one line each.
    public var text: [String] {
        var engineText = engine == .xdp ? "XDP engine (xdp_sink)" : "ring engine (TPACKET_\((ring ?? "?").uppercased())"
        if engine == .ring {
            engineText += blockTimeoutMs.map { ", block timeout \($0) ms)" } ?? ")"
        }
        var lines = [
            "shunt sink: \(engineText) on \(port), \(decimal(durationSeconds)) s",
            "received \(received) frames, \(bytes) bytes: \(rate(pps)) pps, \(megabits(bps)) Mbit/s"
                + (activePPS.map { " (\(rate($0)) pps over the \(decimal(activeSeconds)) s with traffic)" } ?? ""),
            "probes \(probes), other \(other)" + (ringDropped.map { ", dropped by the full ring \($0)" } ?? ""),
        ]
        if let s = sequences {
            lines.append("lost \(s.lost), duplicated \(s.duplicated), out of order \(s.outOfOrder) (too late \(s.tooLate))")
        } else {
            lines.append("lost, duplicated, out of order: not counted by the XDP engine"
                + (reordered.map { " (reordered per CPU \($0))" } ?? ""))
        }
        lines.append(latencyText)
        for (id, s) in streams ?? [] {
            let range = s.first.map { f in s.highest.map { "sequences \(f)...\($0)" } ?? "" } ?? ""
            lines.append("stream \(id): received \(s.received), lost \(s.lost), duplicated \(s.duplicated), "
                + "out of order \(s.outOfOrder), \(range)")
        }
        if let untracked, untracked > 0 { lines.append("untracked (stream table full): \(untracked)") }
        return lines
    }
}

/// One periodic statistics line: counts so far, and the rates over the interval just ended.
public struct SinkInterval: Sendable {
    /// Seconds since the sink was ready, and the length of this interval.
    public var elapsedSeconds: Double
    public var intervalSeconds: Double
    /// Frames and bytes received in this interval.
    public var intervalReceived: UInt64
    public var intervalBytes: UInt64
    /// Totals so far (the same meaning as in the final report).
    public var received: UInt64
    public var bytes: UInt64
    public var sequences: SequenceStats?
    public var ringDropped: UInt64?

    public init(elapsedSeconds: Double, intervalSeconds: Double, intervalReceived: UInt64, intervalBytes: UInt64,
                received: UInt64, bytes: UInt64, sequences: SequenceStats?, ringDropped: UInt64?) {
        self.elapsedSeconds = elapsedSeconds
        self.intervalSeconds = intervalSeconds
        self.intervalReceived = intervalReceived
        self.intervalBytes = intervalBytes
        self.received = received
        self.bytes = bytes
        self.sequences = sequences
        self.ringDropped = ringDropped
    }

    public var pps: Double { intervalSeconds > 0 ? Double(intervalReceived) / intervalSeconds : 0 }
    public var bps: Double { intervalSeconds > 0 ? Double(intervalBytes) * 8 / intervalSeconds : 0 }

    /// `{"type":"stats","t_s":..,"interval_s":..,"pps":..,"bps":..,"received":..,"bytes":..,"lost":..,
    /// "duplicated":..,"out_of_order":..,"ring_dropped":..}`.
    public var json: String {
        let f = [
            "\"type\":\"stats\"", "\"t_s\":\(decimal(elapsedSeconds))", "\"interval_s\":\(decimal(intervalSeconds))",
            "\"pps\":\(decimal(pps))", "\"bps\":\(decimal(bps))", "\"received\":\(received)", "\"bytes\":\(bytes)",
            "\"lost\":\(number(sequences?.lost))", "\"duplicated\":\(number(sequences?.duplicated))",
            "\"out_of_order\":\(number(sequences?.outOfOrder))", "\"ring_dropped\":\(number(ringDropped))",
        ]
        return "{" + f.joined(separator: ",") + "}"
    }

    public var text: String {
        var t = "t \(decimal(elapsedSeconds)) s: \(rate(pps)) pps, \(megabits(bps)) Mbit/s, received \(received)"
        if let s = sequences { t += ", lost \(s.lost), duplicated \(s.duplicated), out of order \(s.outOfOrder)" }
        if let ringDropped { t += ", ring dropped \(ringDropped)" }
        return t
    }
}

private func decimal(_ x: Double) -> String { LatencySummary.decimal(x) }
private func rate(_ x: Double) -> String { decimal(x.rounded()) }
private func megabits(_ x: Double) -> String { decimal(x / 1e6) }
private func number(_ x: UInt64?) -> String { x.map { String($0) } ?? "null" }
private func string(_ s: String?) -> String { s.map(quoted) ?? "null" }

private func quoted(_ s: String) -> String { JSONText.string(s) }
