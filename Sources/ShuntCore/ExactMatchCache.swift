import CShunt

/// The per-worker exact-match cache of the Swift datapath (OVS's EMC): packet key -> the flat
/// action list the pipeline produced for it. One writer and reader (its worker), no locks.
///
/// Open addressing in buckets of two slots; a full bucket replaces its least recently
/// translated slot. Actions and rule ids are stored inline in preallocated arrays so a hit
/// touches no reference-counted memory. An entry is valid only for the pipeline generation it
/// was translated under: a flow change invalidates every entry at once.
public final class ExactMatchCache: @unchecked Sendable {
    public static let maxActions = 16
    public static let maxRules = 8

    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// The translation used NORMAL: it depends on MAC learning, so it is re-translated
        /// periodically (which also refreshes the learned source).
        public static let usedNormal = Flags(rawValue: 1 << 0)
        /// Installed in the kernel flow cache (XDP datapath).
        public static let inKernel = Flags(rawValue: 1 << 1)
        /// The kernel can execute these actions.
        public static let kernelExecutable = Flags(rawValue: 1 << 2)
    }

    @usableFromInline struct Meta {
        @usableFromInline var generation: UInt64 = 0  // 0: empty
        @usableFromInline var translatedMs: UInt64 = 0
        @usableFromInline var actionCount: UInt8 = 0
        @usableFromInline var ruleCount: UInt8 = 0
        @usableFromInline var dropReason: UInt8 = 0
        @usableFromInline var flags: Flags = []
        @usableFromInline var packets: UInt64 = 0
        @usableFromInline var bytes: UInt64 = 0
        @usableFromInline var lastUsedMs: UInt64 = 0
        @usableFromInline var retryAfterMs: UInt64 = 0
    }

    /// Entries translated under the current generation (as far as inserts tell).
    public private(set) var liveEntries = 0
    @usableFromInline var liveGeneration: UInt64 = 0

    public let capacity: Int
    @usableFromInline let mask: Int
    @usableFromInline let keys: UnsafeMutablePointer<FlowKey>
    @usableFromInline let meta: UnsafeMutablePointer<Meta>
    @usableFromInline let actions: UnsafeMutablePointer<shunt_dp_action>
    @usableFromInline let rules: UnsafeMutablePointer<UInt32>

    /// - Parameter capacity: slots, rounded up to a power of two (at least 2).
    public init(capacity: Int = 8192) {
        var c = 2
        while c < capacity { c <<= 1 }
        self.capacity = c
        mask = c - 1
        keys = .allocate(capacity: c)
        keys.initialize(repeating: FlowKey(), count: c)
        meta = .allocate(capacity: c)
        meta.initialize(repeating: Meta(), count: c)
        actions = .allocate(capacity: c * Self.maxActions)
        actions.initialize(repeating: shunt_dp_action(), count: c * Self.maxActions)
        rules = .allocate(capacity: c * Self.maxRules)
        rules.initialize(repeating: 0, count: c * Self.maxRules)
    }

    deinit {
        keys.deallocate()
        meta.deallocate()
        actions.deallocate()
        rules.deallocate()
    }

    /// The slot holding `key` translated under `generation`, or nil.
    @inlinable
    public func lookup(_ key: FlowKey, hash: UInt64, generation: UInt64) -> Int? {
        let first = Int(truncatingIfNeeded: hash) & mask & ~1
        for slot in first...(first + 1) where meta[slot].generation == generation && keys[slot] == key {
            return slot
        }
        return nil
    }

    /// Stores a translation; returns its slot, or nil when it does not fit inline (too many
    /// actions or rules: the caller executes it uncached).
    @discardableResult
    public func insert(_ key: FlowKey, hash: UInt64, generation: UInt64, nowMs: UInt64,
                       actions list: [DatapathAction], ruleIDs: [UInt32], dropReason: DropReason?,
                       flags: Flags) -> Int? {
        guard list.count <= Self.maxActions, ruleIDs.count <= Self.maxRules else { return nil }
        let first = Int(truncatingIfNeeded: hash) & mask & ~1
        var slot = first
        if meta[first].generation != 0 && !(keys[first] == key) {
            let second = first + 1
            if meta[second].generation == 0 || keys[second] == key
                || meta[second].generation != generation
                || meta[second].translatedMs < meta[first].translatedMs {
                slot = second
            }
        }
        if liveGeneration != generation {
            liveGeneration = generation
            liveEntries = 0
        }
        if meta[slot].generation != generation { liveEntries += 1 }
        keys[slot] = key
        meta[slot] = Meta(generation: generation, translatedMs: nowMs, actionCount: UInt8(list.count),
                          ruleCount: UInt8(ruleIDs.count), dropReason: dropReason?.rawValue ?? 0, flags: flags,
                          packets: 0, bytes: 0, lastUsedMs: nowMs)
        let a = actions + slot * Self.maxActions
        for (i, action) in list.enumerated() { a[i] = action.abi }
        let r = rules + slot * Self.maxRules
        for (i, id) in ruleIDs.enumerated() { r[i] = id }
        return slot
    }


    @inlinable public func actionCount(_ slot: Int) -> Int { Int(meta[slot].actionCount) }
    @inlinable public func action(_ slot: Int, _ i: Int) -> shunt_dp_action { actions[slot * Self.maxActions + i] }
    /// The slot's actions, valid only inside `body` (the next insert may overwrite them).
    @inlinable public func withActions<R>(_ slot: Int, _ body: (UnsafePointer<shunt_dp_action>) -> R) -> R {
        body(UnsafePointer(actions + slot * Self.maxActions))
    }
    @inlinable public func ruleCount(_ slot: Int) -> Int { Int(meta[slot].ruleCount) }
    @inlinable public func ruleID(_ slot: Int, _ i: Int) -> UInt32 { rules[slot * Self.maxRules + i] }
    @inlinable public func dropReason(_ slot: Int) -> DropReason? { DropReason(rawValue: meta[slot].dropReason) }
    @inlinable public func flags(_ slot: Int) -> Flags { meta[slot].flags }
    @inlinable public func translatedMs(_ slot: Int) -> UInt64 { meta[slot].translatedMs }
    @inlinable public func setFlags(_ slot: Int, _ f: Flags) { meta[slot].flags = f }
    @inlinable public func key(_ slot: Int) -> FlowKey { keys[slot] }

    /// Whether a caller may retry something for this slot now (at most once per `everyMs`):
    /// keeps a flow whose kernel install was refused from taking a lock on every packet.
    @inlinable public func takeRetry(_ slot: Int, nowMs: UInt64, everyMs: UInt64 = 10) -> Bool {
        guard nowMs >= meta[slot].retryAfterMs else { return false }
        meta[slot].retryAfterMs = nowMs + everyMs
        return true
    }

    /// Counts one packet of a hit.
    @inlinable public func recordHit(_ slot: Int, bytes: UInt64, nowMs: UInt64) {
        meta[slot].packets &+= 1
        meta[slot].bytes &+= bytes
        meta[slot].lastUsedMs = nowMs
    }

    /// A copy of one valid entry, for `shunt ctl dump-cache`.
    public struct Entry: Sendable {
        public let key: FlowKey
        public let actions: [DatapathAction]
        public let packets: UInt64
        public let bytes: UInt64
        public let lastUsedMs: UInt64
    }

    /// Copies every entry of `generation` (allocates: for the control side, on request).
    public func entries(generation: UInt64) -> [Entry] {
        var out: [Entry] = []
        for i in 0..<capacity where meta[i].generation == generation {
            let actions = (0..<Int(meta[i].actionCount)).compactMap { DatapathAction(abi: self.actions[i * Self.maxActions + $0]) }
            out.append(Entry(key: keys[i], actions: actions, packets: meta[i].packets, bytes: meta[i].bytes,
                             lastUsedMs: meta[i].lastUsedMs))
        }
        return out
    }
}
