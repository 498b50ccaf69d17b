import CShunt

/// The one layout of the forwarder's software counters: `rows` rows of `columns` 64-bit words,
/// each row written by one thread (a worker, the revalidator) with plain relaxed stores, read by
/// any thread with relaxed loads and summed over rows. No atomic read-modify-write on the packet
/// path, and each row starts on its own 64-byte cache line, so two writers never share one.
///
/// The typed counter sets (WorkerCounters, FlowPathCounters, MirrorCounters, RuleCounters) are
/// thin views naming the columns. A noncopyable struct, stored inline in them: a counter update
/// is one load of the storage pointer from the owner, not a hop through another object.
public struct CounterBlock: ~Copyable, @unchecked Sendable {
    public let rows: Int
    public let columns: Int
    /// Words from one row's start to the next: `columns` rounded up to a cache line.
    private let stride: Int
    private let storage: UnsafeMutablePointer<UInt64>

    public init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
        stride = (columns + 7) & ~7
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, rows * stride) * 8, alignment: 64)
        storage = raw.initializeMemory(as: UInt64.self, repeating: 0, count: max(1, rows * stride))
    }

    deinit { storage.deallocate() }

    /// Adds `n` to a word of `row`; call only from that row's writer.
    @inline(__always) public func add(_ row: Int, _ column: Int, _ n: UInt64 = 1) {
        let p = storage + row * stride + column
        cshunt_store_relaxed_u64(p, cshunt_load_relaxed_u64(p) &+ n)
    }

    /// Sets a word of `row` (a level, not a count); call only from that row's writer.
    @inline(__always) public func set(_ row: Int, _ column: Int, _ v: UInt64) {
        cshunt_store_relaxed_u64(storage + row * stride + column, v)
    }

    @inline(__always) public func value(_ row: Int, _ column: Int) -> UInt64 {
        cshunt_load_relaxed_u64(storage + row * stride + column)
    }

    /// A column summed over every row.
    public func sum(_ column: Int) -> UInt64 { (0..<rows).reduce(0) { $0 &+ value($1, column) } }
}
