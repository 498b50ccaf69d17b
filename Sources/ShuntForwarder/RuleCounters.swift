import CShunt

/// Packet and byte counters of the OpenFlow rules (n_packets / n_bytes), without atomics on the
/// packet path: one row per writer (each worker, and the revalidator that credits what the
/// kernel cache counted), one column per rule id. A row has a single writer; readers sum the
/// rows with relaxed loads. Rule ids are reused after a delete, so a new rule starts from a
/// baseline taken when it was added.
public final class RuleCounters: @unchecked Sendable {
    public let rows: Int
    public let maxRules: Int
    private let storage: UnsafeMutablePointer<UInt64>
    /// Baselines, written only by the control thread.
    private var basePackets: [UInt64]
    private var baseBytes: [UInt64]

    public init(writers: Int, maxRules: Int) {
        rows = writers
        self.maxRules = maxRules
        storage = .allocate(capacity: writers * maxRules * 2)
        storage.initialize(repeating: 0, count: writers * maxRules * 2)
        basePackets = Array(repeating: 0, count: maxRules)
        baseBytes = Array(repeating: 0, count: maxRules)
    }

    deinit { storage.deallocate() }

    /// Credits one packet of `bytes` to `rule`, from writer `row`.
    @inline(__always)
    public func add(row: Int, rule: UInt32, packets: UInt64 = 1, bytes: UInt64) {
        let i = Int(rule)
        guard i < maxRules else { return }
        let p = storage + (row * maxRules + i) * 2
        cshunt_store_relaxed_u64(p, cshunt_load_relaxed_u64(p) &+ packets)
        cshunt_store_relaxed_u64(p + 1, cshunt_load_relaxed_u64(p + 1) &+ bytes)
    }

    private func raw(_ rule: UInt32) -> (packets: UInt64, bytes: UInt64) {
        var packets: UInt64 = 0, bytes: UInt64 = 0
        let i = Int(rule)
        for r in 0..<rows {
            let p = storage + (r * maxRules + i) * 2
            packets &+= cshunt_load_relaxed_u64(p)
            bytes &+= cshunt_load_relaxed_u64(p + 1)
        }
        return (packets, bytes)
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
