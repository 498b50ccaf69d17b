import CShunt

/// Packet and byte counters of the OpenFlow rules (n_packets / n_bytes), without atomics on the
/// packet path: one row per writer (each worker, and the revalidator that credits what the
/// kernel cache counted), one column per rule id. A row has a single writer; readers sum the
/// rows with relaxed loads. Rule ids are reused after a delete, so a new rule starts from a
/// baseline taken when it was added.
public final class RuleCounters: @unchecked Sendable {
    public var rows: Int { block.rows }
    public let maxRules: Int
    /// Per writer row: packets and bytes of rule i in columns 2i and 2i + 1.
    private let block: CounterBlock
    /// Baselines, written only by the control thread.
    private var basePackets: [UInt64]
    private var baseBytes: [UInt64]

    public init(writers: Int, maxRules: Int) {
        self.maxRules = maxRules
        block = CounterBlock(rows: writers, columns: maxRules * 2)
        basePackets = Array(repeating: 0, count: maxRules)
        baseBytes = Array(repeating: 0, count: maxRules)
    }

    /// Credits one packet of `bytes` to `rule`, from writer `row`.
    @inline(__always)
    public func add(row: Int, rule: UInt32, packets: UInt64 = 1, bytes: UInt64) {
        let i = Int(rule)
        guard i < maxRules else { return }
        block.add(row, 2 * i, packets)
        block.add(row, 2 * i + 1, bytes)
    }

    private func raw(_ rule: UInt32) -> (packets: UInt64, bytes: UInt64) {
        (block.sum(2 * Int(rule)), block.sum(2 * Int(rule) + 1))
    }

    /// The counters of `rule` since it was (re)started with `reset`.
    public func read(_ rule: UInt32) -> (packets: UInt64, bytes: UInt64) {
        guard Int(rule) < maxRules else { return (0, 0) }
        let r = raw(rule)
        return (r.packets &- basePackets[Int(rule)], r.bytes &- baseBytes[Int(rule)])
    }

    /// Starts `rule` from zero (a new rule, or one replaced by add-flow).
    public func reset(_ rule: UInt32) {
        guard Int(rule) < maxRules else { return }
        let r = raw(rule)
        basePackets[Int(rule)] = r.packets
        baseBytes[Int(rule)] = r.bytes
    }
}
