import CShunt

/// The MAC learning table shared by every worker, without locks.
///
/// Design: set-associative. A MAC hashes to one bucket of `ways` slots (one cache line). A slot
/// is one 64-bit word, MAC << 16 | (port + 1), so readers see a whole entry or none, and writers
/// claim slots with compare-and-swap. A parallel array holds each slot's last-seen time in
/// milliseconds. Learning an already-known MAC on the same port writes only when its timestamp is
/// more than `refreshMs` old, so steady traffic does not bounce cache lines between workers.
/// A full bucket evicts its stalest entry. Aged entries are ignored by lookups and cleared by
/// `sweep`. Racing learners may briefly store a MAC twice; the stale copy ages out.
///
/// Stations are learned per domain (a bridge and a VLAN, `domain(bridge:vlan:)`): the same MAC
/// in two VLANs is two entries. The domain sits in a parallel array, written before the slot's
/// word; a reader racing an eviction may pair a new domain with the old word for a moment,
/// which reads as a station move, as when a host moves ports.
public final class MACLearningTable: @unchecked Sendable {
    public static let ways = 8
    public let bucketCount: Int
    public let agingMs: UInt64
    @usableFromInline let refreshMs: UInt64 = 1000
    @usableFromInline let words: UnsafeMutablePointer<UInt64>
    @usableFromInline let seen: UnsafeMutablePointer<UInt64>
    @usableFromInline let domains: UnsafeMutablePointer<UInt32>
    @usableFromInline let bucketMask: Int
    /// Bumped whenever a station is added, moves or is forgotten: caches that hold results of
    /// NORMAL compare it to know when to re-translate. Racing bumps may merge; it still moves.
    @usableFromInline let changes: UnsafeMutablePointer<UInt64>

    /// - Parameters:
    ///   - capacity: entries to hold (rounded up to whole buckets, a power of two of them).
    ///   - agingMs: an entry not refreshed for this long is forgotten (OVS: 300 s).
    public init(capacity: Int = 8192, agingMs: UInt64 = 300_000) {
        var buckets = 1
        while buckets * Self.ways < capacity { buckets <<= 1 }
        bucketCount = buckets
        bucketMask = buckets - 1
        self.agingMs = agingMs
        words = .allocate(capacity: buckets * Self.ways)
        words.initialize(repeating: 0, count: buckets * Self.ways)
        seen = .allocate(capacity: buckets * Self.ways)
        seen.initialize(repeating: 0, count: buckets * Self.ways)
        domains = .allocate(capacity: buckets * Self.ways)
        domains.initialize(repeating: 0, count: buckets * Self.ways)
        changes = .allocate(capacity: 1)
        changes.initialize(to: 0)
    }

    /// See `changes`.
    @inlinable public var changeCount: UInt64 { cshunt_load_relaxed_u64(changes) }

    @inlinable func noteChange() { cshunt_store_relaxed_u64(changes, cshunt_load_relaxed_u64(changes) &+ 1) }

    deinit {
        words.deallocate()
        seen.deallocate()
        domains.deallocate()
        changes.deallocate()
    }

    /// The learning domain of a VLAN of a bridge (bridge 0, VLAN 0: a switch without VLANs).
    @inlinable public static func domain(bridge: Int, vlan: UInt16) -> UInt32 {
        UInt32(truncatingIfNeeded: bridge) << 12 | UInt32(vlan & 0x0fff)
    }

    @inlinable func bucketStart(_ mac: MACAddress, _ domain: UInt32) -> Int {
        // Fibonacci hashing of the 48-bit address, with the domain above it.
        let h = ((mac.value ^ UInt64(domain) << 48) &* 0x9E37_79B9_7F4A_7C15) >> 40
        return (Int(truncatingIfNeeded: h) & bucketMask) * Self.ways
    }

    @inlinable static func word(_ mac: MACAddress, _ port: UInt16) -> UInt64 { mac.value << 16 | UInt64(port &+ 1) }

    /// The port `mac` was last seen on in `domain`, unless it has aged out.
    @inlinable
    public func lookup(_ mac: MACAddress, domain: UInt32 = 0, nowMs: UInt64) -> UInt16? {
        let start = bucketStart(mac, domain)
        for slot in start..<(start + Self.ways) {
            let w = cshunt_load_acquire_u64(words + slot)
            if w != 0 && w >> 16 == mac.value && domains[slot] == domain {
                let t = cshunt_load_relaxed_u64(seen + slot)
                if nowMs &- t >= agingMs && nowMs > t { return nil }
                return UInt16(truncatingIfNeeded: w & 0xFFFF) &- 1
            }
        }
        return nil
    }

    /// Records that `mac` was seen on `port` in `domain` at `nowMs`.
    @inlinable
    public func learn(_ mac: MACAddress, domain: UInt32 = 0, port: UInt16, nowMs: UInt64) {
        let start = bucketStart(mac, domain)
        let wanted = Self.word(mac, port)
        var victim = start
        var victimSeen = UInt64.max
        for slot in start..<(start + Self.ways) {
            let w = cshunt_load_acquire_u64(words + slot)
            if w != 0 && w >> 16 == mac.value && domains[slot] == domain {
                if w != wanted {
                    // The station moved: repoint the entry.
                    cshunt_store_relaxed_u64(seen + slot, nowMs)
                    _ = cshunt_cas_u64(words + slot, w, wanted)
                    noteChange()
                } else if nowMs &- cshunt_load_relaxed_u64(seen + slot) >= refreshMs {
                    cshunt_store_relaxed_u64(seen + slot, nowMs)
                }
                return
            }
            let t = w == 0 ? 0 : cshunt_load_relaxed_u64(seen + slot)
            if t < victimSeen {
                victimSeen = t
                victim = slot
            }
        }
        let old = cshunt_load_acquire_u64(words + victim)
        cshunt_store_relaxed_u64(seen + victim, nowMs)
        domains[victim] = domain
        _ = cshunt_cas_u64(words + victim, old, wanted)
        noteChange()
    }

    /// Clears every entry older than the aging time; returns how many were cleared.
    @discardableResult
    public func sweep(nowMs: UInt64) -> Int {
        var cleared = 0
        for slot in 0..<(bucketCount * Self.ways) {
            let w = cshunt_load_acquire_u64(words + slot)
            if w != 0 && nowMs &- cshunt_load_relaxed_u64(seen + slot) >= agingMs
                && cshunt_cas_u64(words + slot, w, 0) != 0
            {
                cleared += 1
            }
        }
        if cleared > 0 { noteChange() }
        return cleared
    }

    /// Live entries, for display and tests.
    public func entries(nowMs: UInt64) -> [(mac: MACAddress, port: UInt16, ageMs: UInt64, domain: UInt32)] {
        var out: [(MACAddress, UInt16, UInt64, UInt32)] = []
        for slot in 0..<(bucketCount * Self.ways) {
            let w = cshunt_load_acquire_u64(words + slot)
            let t = cshunt_load_relaxed_u64(seen + slot)
            if w != 0 && nowMs &- t < agingMs {
                out.append((MACAddress(value: w >> 16), UInt16(truncatingIfNeeded: w & 0xFFFF) &- 1, nowMs &- t,
                            domains[slot]))
            }
        }
        return out
    }
}

/// Where a learning switch sends a frame, in the table's port indexes.
public enum SwitchDecision: Equatable, Sendable {
    /// The destination was learned on this port.
    case port(UInt16)
    /// Broadcast, multicast, or a destination not known (or aged out): every port but the ingress.
    case flood
    /// The destination was learned on the ingress port: nowhere to send the frame.
    case ingress
}

extension MACLearningTable {
    /// The one MAC-learning switch, run by `--mode normal` (the `LearningSwitch` stage) and by
    /// the flow pipeline's NORMAL action (`LearningNormalSwitch`): learns a unicast `source` on
    /// `inPort`, then decides by `destination`. Allocation-free; inlined into its callers.
    ///
    /// - Parameters:
    ///   - inPort: the ingress port's index, or nil when the table has no index for it (nothing
    ///     is learned then, and no destination is on the ingress port).
    ///   - learns: false to decide without learning (re-translations of idle flows).
    @inlinable
    public func switchFrame(
        source: MACAddress, destination: MACAddress, domain: UInt32 = 0, inPort: UInt16?, learns: Bool = true,
        nowMs: UInt64
    ) -> SwitchDecision {
        if learns, let inPort, !source.isMulticast {
            learn(source, domain: domain, port: inPort, nowMs: nowMs)
        }
        if destination.isMulticast { return .flood }
        guard let port = lookup(destination, domain: domain, nowMs: nowMs) else { return .flood }
        return port == inPort ? .ingress : .port(port)
    }
}
