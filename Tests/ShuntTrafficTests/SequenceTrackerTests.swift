import Testing
import ShuntTraffic
import ShuntTestSupport

/// Feeds `sequences` to a fresh tracker and returns its counters, after checking the two
/// invariants every state must satisfy.
func track(
    _ sequences: some Sequence<UInt32>, windowBits: Int = StreamTracker.defaultWindowBits, bytes: Int = 64,
    sourceLocation: SourceLocation = #_sourceLocation
) -> SequenceStats {
    var tracker = StreamTracker(windowBits: windowBits)
    for s in sequences { tracker.record(sequence: s, bytes: bytes) }
    let stats = tracker.snapshot()
    expectInvariants(stats, sourceLocation: sourceLocation)
    return stats
}

func expectInvariants(_ s: SequenceStats, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(s.received == s.inOrder + s.outOfOrder + s.duplicated, sourceLocation: sourceLocation)
    #expect(s.expectedTotal == s.inOrder + s.outOfOrder - s.tooLate + s.lost, sourceLocation: sourceLocation)
}

/// 0 ..< n as UInt32 sequences starting at `base`, wrapping.
func run(_ base: UInt32, _ n: Int) -> [UInt32] {
    (0..<n).map { base &+ UInt32(truncatingIfNeeded: $0) }
}

@Suite struct SequenceTrackerTests {
    @Test func empty() {
        let s = StreamTracker().snapshot()
        #expect(s == SequenceStats())
        #expect(s.first == nil && s.highest == nil && s.expectedTotal == 0)
    }

    @Test func inOrder() {
        let s = track(0..<1000, bytes: 100)
        #expect(s.received == 1000 && s.bytes == 100_000)
        #expect(s.inOrder == 1000 && s.outOfOrder == 0 && s.duplicated == 0 && s.lost == 0)
        #expect(s.seqTooHigh == 0 && s.seqTooLow == 0 && s.tooLate == 0)
        #expect(s.first == 0 && s.highest == 999 && s.expectedTotal == 1000)
    }

    @Test func gap() {
        let s = track(Array(0..<10) + Array(20..<30))
        #expect(s.received == 20 && s.inOrder == 20)
        #expect(s.lost == 10 && s.outOfOrder == 0 && s.duplicated == 0)
        #expect(s.seqTooHigh == 1 && s.seqTooLow == 0)
        #expect(s.first == 0 && s.highest == 29 && s.expectedTotal == 30)
    }

    @Test func gapFilledLater() {
        let s = track(Array(0..<10) + Array(20..<30) + Array(10..<20))
        #expect(s.received == 30 && s.inOrder == 20)
        #expect(s.lost == 0 && s.outOfOrder == 10 && s.duplicated == 0)
        #expect(s.seqTooHigh == 1 && s.seqTooLow == 10)
        #expect(s.highest == 29 && s.expectedTotal == 30)
    }

    @Test func swap() {
        var t = StreamTracker()
        for q: UInt32 in [0, 1, 3] { t.record(sequence: q, bytes: 64) }
        #expect(t.snapshot().lost == 1)  // 2 is missing for now
        for q: UInt32 in [2, 4] { t.record(sequence: q, bytes: 64) }
        let s = t.snapshot()
        expectInvariants(s)
        #expect(s.outOfOrder == 1 && s.lost == 0 && s.duplicated == 0 && s.inOrder == 4)
        #expect(s.seqTooHigh == 1 && s.seqTooLow == 1)
    }

    @Test func duplicates() {
        let s = track([0, 1, 1, 2, 2, 2])
        #expect(s.duplicated == 3 && s.inOrder == 3 && s.outOfOrder == 0 && s.lost == 0)
        #expect(s.seqTooLow == 3)
    }

    /// A duplicate of a packet received long ago (but within the window) is a duplicate, not a
    /// reordered packet, and does not lower the loss.
    @Test func lateDuplicateWithinWindow() {
        let sent = Array(0..<UInt32(50_000)).filter { $0 != 30_000 }
        let s = track(sent + [10])
        #expect(s.duplicated == 1 && s.outOfOrder == 0 && s.lost == 1 && s.tooLate == 0)
        // The duplicate of a packet that itself arrived out of order is a duplicate too.
        let t = track([0, 1, 2, 5, 3, 4, 3, 6, 4])
        #expect(t.outOfOrder == 2 && t.duplicated == 2 && t.lost == 0 && t.inOrder == 5)
    }

    @Test(arguments: [UInt32(0xFFFF_FFF0), 0x7FFF_FFF0])
    func wrapInOrder(base: UInt32) {
        let s = track(run(base, 33))  // base ... base + 32 (0xFFFF_FFF0 ... 0x10 across the wrap)
        #expect(s.inOrder == 33 && s.lost == 0 && s.outOfOrder == 0 && s.duplicated == 0)
        #expect(s.first == base && s.highest == base &+ 32 && s.expectedTotal == 33)
    }

    @Test func gapAcrossWrap() {
        var t = StreamTracker()
        for q in run(0xFFFF_FFF0, 14) + run(3, 14) { t.record(sequence: q, bytes: 64) }  // ..FFFD, 3..0x10
        var s = t.snapshot()
        expectInvariants(s)
        #expect(s.lost == 5 && s.seqTooHigh == 1 && s.outOfOrder == 0)  // FFFE, FFFF, 0, 1, 2
        #expect(s.first == 0xFFFF_FFF0 && s.highest == 0x10 && s.expectedTotal == 33)
        for q: UInt32 in [0xFFFF_FFFF, 1] { t.record(sequence: q, bytes: 64) }
        s = t.snapshot()
        expectInvariants(s)
        #expect(s.lost == 3 && s.outOfOrder == 2 && s.duplicated == 0)
        t.record(sequence: 0xFFFF_FFFF, bytes: 64)
        #expect(t.snapshot().duplicated == 1)
    }

    @Test func reorderAcrossWrap() {
        let s = track([0xFFFF_FFFC, 0xFFFF_FFFD, 0xFFFF_FFFE, 0, 0xFFFF_FFFF, 1, 2])
        #expect(s.outOfOrder == 1 && s.lost == 0 && s.duplicated == 0 && s.inOrder == 6)
        #expect(s.first == 0xFFFF_FFFC && s.highest == 2 && s.expectedTotal == 7)
    }

    /// A long in-order run that crosses the wrap and cycles the ring many times, every 1000th
    /// packet dropped.
    @Test func longRunAcrossWrap() {
        let base: UInt32 = 0xFFFF_0000
        let s = track(run(base, 300_000).enumerated().filter { $0.offset % 1000 != 999 }.map(\.element))
        // The last drop (offset 299_999) is past the highest packet: not (yet) a gap.
        #expect(s.lost == 299 && s.outOfOrder == 0 && s.duplicated == 0 && s.seqTooHigh == 299)
        #expect(s.first == base && s.highest == base &+ 299_998 && s.expectedTotal == 299_999)
    }

    @Test func nonZeroStart() {
        var t = StreamTracker()
        for q in run(5000, 1000) { t.record(sequence: q, bytes: 64) }
        var s = t.snapshot()
        #expect(s.first == 5000 && s.highest == 5999 && s.lost == 0 && s.expectedTotal == 1000)
        // Packets before the first: the stream started earlier than the first packet seen.
        t.record(sequence: 4998, bytes: 64)
        s = t.snapshot()
        expectInvariants(s)
        #expect(s.first == 4998 && s.lost == 1 && s.outOfOrder == 1 && s.expectedTotal == 1002)
        t.record(sequence: 4999, bytes: 64)
        t.record(sequence: 4999, bytes: 64)
        s = t.snapshot()
        expectInvariants(s)
        #expect(s.first == 4998 && s.lost == 0 && s.outOfOrder == 2 && s.duplicated == 1)
    }

    /// A swap of the first two packets reads like a swap anywhere else.
    @Test func firstTwoSwapped() {
        let s = track([1, 0, 2, 3])
        #expect(s.first == 0 && s.lost == 0 && s.outOfOrder == 1 && s.inOrder == 3 && s.expectedTotal == 4)
        let w = track([0, 1, 2, 0xFFFF_FFFF])  // before the first, across the wrap
        #expect(w.first == 0xFFFF_FFFF && w.highest == 2 && w.lost == 0 && w.outOfOrder == 1)
    }

    /// The window boundary: `windowBits - 1` below the highest is classified, `windowBits` below
    /// is too late (out of order, lost and duplicated untouched).
    @Test func windowBoundary() {
        var t = StreamTracker(windowBits: 64)
        for q in UInt32(0)..<200 where q != 135 && q != 136 { t.record(sequence: q, bytes: 64) }
        #expect(t.snapshot().lost == 2)
        t.record(sequence: 136, bytes: 64)  // 199 - 136 = 63: in the window
        var s = t.snapshot()
        #expect(s.lost == 1 && s.outOfOrder == 1 && s.tooLate == 0)
        t.record(sequence: 135, bytes: 64)  // 199 - 135 = 64: too late, not credited
        s = t.snapshot()
        expectInvariants(s)
        #expect(s.lost == 1 && s.outOfOrder == 2 && s.tooLate == 1 && s.duplicated == 0)
        t.record(sequence: 10, bytes: 64)  // a very late duplicate: the same rule
        s = t.snapshot()
        expectInvariants(s)
        #expect(s.lost == 1 && s.outOfOrder == 3 && s.tooLate == 2 && s.duplicated == 0)
        #expect(s.seqTooLow == 3)
    }

    @Test func olderThanDefaultWindow() {
        let sent = Array(0..<UInt32(70_000)).filter { $0 != 100 && $0 != 10_000 }
        let s = track(sent + [100, 10_000, 5, 4_464, 4_463])
        // highest 69_999: 100, 5 and 4_463 are 65_536 or more below it (too late); 10_000 and
        // 4_464 (65_535 below) are within the window.
        #expect(s.tooLate == 3 && s.outOfOrder == 4 && s.duplicated == 1 && s.lost == 1)
        // Before the first and older than the window: `first` stays.
        let b = track(run(100_000, 70_000) + [99_990])
        #expect(b.first == 100_000 && b.tooLate == 1 && b.outOfOrder == 1 && b.lost == 0)
    }

    /// Ring slots are shared by positions `windowBits` apart: a slot must be cleared when its new
    /// position enters the window, whether by one step, a gap within the ring or a jump past it.
    @Test func ringSlotsReused() {
        // One step at a time, then a one-packet gap: 64 shares its slot with 0.
        let a = track(Array(0..<64) + [65, 64], windowBits: 64)
        #expect(a.outOfOrder == 1 && a.duplicated == 0 && a.lost == 0)
        // A gap within the ring that wraps around its end: clears slots 100...127 and 0...81.
        var t = StreamTracker(windowBits: 128)
        for q in UInt32(0)..<100 { t.record(sequence: q, bytes: 64) }
        t.record(sequence: 210, bytes: 64)
        #expect(t.snapshot().lost == 110)
        for q: UInt32 in [150, 205, 100, 127, 128, 181] { t.record(sequence: q, bytes: 64) }  // missing: out of order
        for q: UInt32 in [99, 83] { t.record(sequence: q, bytes: 64) }  // received, within the window
        t.record(sequence: 82, bytes: 64)  // 210 - 82 = 128: too late
        var s = t.snapshot()
        expectInvariants(s)
        #expect(s.outOfOrder == 7 && s.duplicated == 2 && s.tooLate == 1 && s.lost == 104)
        // A jump past the whole ring.
        t.record(sequence: 1000, bytes: 64)
        for q: UInt32 in [990, 999, 873] { t.record(sequence: q, bytes: 64) }
        t.record(sequence: 990, bytes: 64)
        s = t.snapshot()
        expectInvariants(s)
        #expect(s.outOfOrder == 10 && s.duplicated == 3 && s.lost == 104 + 789 - 3)
    }

    @Test func streamTableIsolation() throws {
        var table = StreamTable(capacity: 16)
        for q in UInt32(0)..<100 {
            table.record(stream: 1, sequence: q, bytes: 100)
            if q % 10 != 5 { table.record(stream: 0xBEEF, sequence: 1000 + q, bytes: 200) }
        }
        let snap = table.snapshot()
        #expect(table.streamCount == 2 && snap.streams.count == 2)
        let clean = try #require(snap.streams[1])
        let lossy = try #require(snap.streams[0xBEEF])
        #expect(table.snapshot(stream: 1) == clean && table.snapshot(stream: 2) == nil)
        #expect(clean.received == 100 && clean.bytes == 10_000 && clean.lost == 0 && clean.first == 0)
        #expect(lossy.received == 90 && lossy.bytes == 18_000 && lossy.lost == 10 && lossy.first == 1000)
        #expect(lossy.highest == 1099 && lossy.seqTooHigh == 10)
        let total = snap.total
        expectInvariants(total)
        #expect(total.received == 190 && total.bytes == 28_000 && total.lost == 10 && total.inOrder == 190)
        #expect(total.expectedTotal == 200 && total.first == nil && total.highest == nil)
        #expect(snap.untrackedPackets == 0)
    }

    @Test func streamTableFull() {
        var table = StreamTable(capacity: 2, windowBits: 64)
        for id: UInt16 in [7, 8, 9, 7, 9] { table.record(stream: id, sequence: 0, bytes: 60) }
        let snap = table.snapshot()
        #expect(table.streamCount == 2 && Set(snap.streams.keys) == [7, 8])
        #expect(snap.streams[7]?.duplicated == 1)
        #expect(snap.untrackedPackets == 2 && snap.untrackedBytes == 120)
        #expect(snap.total.received == 3)
    }
}

// MARK: - Randomized

/// What a receiver sees of the sent positions 0 ..< count: reordered (whole-stream shuffle, or
/// shuffles within blocks of at most `maxBlock`), with bursts of drops, and with duplicates
/// delivered up to `maxDupDelay` packets after the original.
func makeStream(
    count: Int, fullShuffle: Bool, maxBlock: Int = 2000, dropRate: Double = 0.005, dupRate: Double = 0.01,
    maxDupDelay: Int = 20_000, rng: inout SplitMix64
) -> [Int64] {
    var order = (0..<Int64(count)).map { $0 }
    if fullShuffle {
        order.shuffle(using: &rng)
    } else {
        var i = 0
        while i < count {
            let end = min(count, i + Int.random(in: 1...maxBlock, using: &rng))
            if Bool.random(using: &rng) { order[i..<end].shuffle(using: &rng) }
            i = end
        }
    }
    var kept: [Int64] = []
    var dups: [(at: Int, position: Int64)] = []
    var i = 0
    while i < count {
        if Double.random(in: 0..<1, using: &rng) < dropRate {
            i += Int.random(in: 1...50, using: &rng)  // a burst of drops
            continue
        }
        kept.append(order[i])
        if Double.random(in: 0..<1, using: &rng) < dupRate {
            dups.append((kept.count + Int.random(in: 0...maxDupDelay, using: &rng), order[i]))
        }
        i += 1
    }
    dups.sort { $0.at < $1.at }
    var out: [Int64] = []
    out.reserveCapacity(kept.count + dups.count)
    var d = 0
    for (k, p) in kept.enumerated() {
        while d < dups.count && dups[d].at <= k {
            out.append(dups[d].position)
            d += 1
        }
        out.append(p)
    }
    out += dups[d...].map(\.position)
    return out
}

/// The straightforward computation: a set of what arrived.
struct Reference {
    let received: UInt64
    let unique: UInt64
    let duplicated: UInt64
    let low: Int64
    let high: Int64
    let seen: Set<Int64>

    init(_ positions: [Int64]) {
        seen = Set(positions)
        received = UInt64(positions.count)
        unique = UInt64(seen.count)
        duplicated = received - unique
        low = positions.min()!
        high = positions.max()!
    }

    /// Positions in low ... high that never arrived.
    var lost: UInt64 { UInt64(high - low + 1) - unique }

    /// Positions in `range` that never arrived.
    func lost(in range: ClosedRange<Int64>) -> UInt64 {
        UInt64(range.count - range.filter { seen.contains($0) }.count)
    }
}

/// The documented rules, restated on a set instead of a bitmap ring: checks the ring bookkeeping.
struct ModelTracker {
    let windowBits: Int64
    var seen: Set<Int64> = []
    var first: Int64 = 0
    var highest: Int64 = 0
    var s = SequenceStats()

    init(windowBits: Int) { self.windowBits = Int64(windowBits) }

    mutating func record(_ p: Int64) {
        s.received += 1
        s.bytes += 64
        if s.received == 1 {
            first = p
            highest = p
            seen.insert(p)
            s.inOrder += 1
        } else if p > highest {
            if p > highest + 1 {
                s.lost += UInt64(p - highest - 1)
                s.seqTooHigh += 1
            }
            highest = p
            seen.insert(p)
            s.inOrder += 1
        } else if highest - p < windowBits {
            s.seqTooLow += 1
            if seen.contains(p) {
                s.duplicated += 1
            } else {
                seen.insert(p)
                s.outOfOrder += 1
                if p >= first {
                    s.lost -= 1
                } else {
                    s.lost += UInt64(first - p - 1)
                    first = p
                }
            }
        } else {
            s.seqTooLow += 1
            s.outOfOrder += 1
            s.tooLate += 1
        }
    }
}

@Suite struct SequenceTrackerPropertyTests {
    static let count = 100_000

    func feed(_ stream: [Int64], base: UInt32, windowBits: Int) -> SequenceStats {
        var t = StreamTracker(windowBits: windowBits)
        for p in stream { t.record(sequence: base &+ UInt32(truncatingIfNeeded: p), bytes: 64) }
        return t.snapshot()
    }

    /// Reordering bounded well inside the window, drops, late duplicates, across the wrap: the
    /// tracker's counts equal the set-based reference exactly.
    @Test(arguments: [UInt64(1), 2, 3])
    func boundedReorderingMatchesReference(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let stream = makeStream(count: Self.count, fullShuffle: false, rng: &rng)
        let base: UInt32 = 0xFFFF_8000
        let s = feed(stream, base: base, windowBits: StreamTracker.defaultWindowBits)
        let r = Reference(stream)
        expectInvariants(s)
        #expect(s.tooLate == 0)
        #expect(s.received == r.received && s.bytes == r.received * 64)
        #expect(s.lost == r.lost)
        #expect(s.duplicated == r.duplicated)
        #expect(s.inOrder + s.outOfOrder == r.unique)
        #expect(s.first == base &+ UInt32(r.low) && s.highest == base &+ UInt32(r.high))
        #expect(s.expectedTotal == UInt64(r.high - r.low + 1))
        #expect(s.outOfOrder > 0 && s.duplicated > 0 && s.lost > 0)  // the stream exercised all three
    }

    /// A random permutation of the whole stream, with drops and duplicates. With a window as large
    /// as the stream, the counts are exact; with the default window, packets overtaken by more
    /// than the window are `tooLate`, and the true loss and duplicates lie within the documented
    /// bounds.
    @Test(arguments: [UInt64(11), 12])
    func fullPermutation(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let stream = makeStream(count: Self.count, fullShuffle: true, rng: &rng)
        let base: UInt32 = 0xFFFF_0000
        let r = Reference(stream)

        let exact = feed(stream, base: base, windowBits: 1 << 17)
        expectInvariants(exact)
        #expect(exact.tooLate == 0)
        #expect(exact.lost == r.lost && exact.duplicated == r.duplicated)
        #expect(exact.inOrder + exact.outOfOrder == r.unique && exact.received == r.received)
        #expect(exact.first == base &+ UInt32(r.low) && exact.highest == base &+ UInt32(r.high))

        let s = feed(stream, base: base, windowBits: StreamTracker.defaultWindowBits)
        expectInvariants(s)
        #expect(s.tooLate > 0)
        #expect(s.received == r.received && s.highest == exact.highest)
        let first = Int64(s.first! &- base)
        let trueLost = r.lost(in: first...r.high)
        #expect(s.lost <= trueLost + s.tooLate && trueLost <= s.lost)
        #expect(s.duplicated <= r.duplicated && r.duplicated <= s.duplicated + s.tooLate)
    }

    /// Small windows, where everything happens often: the ring agrees with the set-based model of
    /// the documented rules, field by field.
    @Test(arguments: [64, 128, 1024])
    func ringMatchesModel(windowBits: Int) {
        var rng = SplitMix64(seed: UInt64(windowBits))
        let stream = makeStream(
            count: 20_000, fullShuffle: false, maxBlock: windowBits * 2, dropRate: 0.02, dupRate: 0.05,
            maxDupDelay: windowBits * 2, rng: &rng)
        var model = ModelTracker(windowBits: windowBits)
        for p in stream { model.record(p) }
        let base: UInt32 = 0xFFFF_FF00
        var s = feed(stream, base: base, windowBits: windowBits)
        expectInvariants(s)
        #expect(s.tooLate > 0 && s.duplicated > 0 && s.outOfOrder > s.tooLate)
        #expect(s.first == base &+ UInt32(truncatingIfNeeded: model.first))
        #expect(s.highest == base &+ UInt32(truncatingIfNeeded: model.highest))
        #expect(s.expectedTotal == UInt64(model.highest - model.first + 1))
        (s.first, s.highest, s.expectedTotal) = (nil, nil, 0)
        #expect(s == model.s)
    }
}
