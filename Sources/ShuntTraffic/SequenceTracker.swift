/// The counters of a `StreamTracker` (or their sum over the streams of a `StreamTable`). The
/// semantics of each are in `StreamTracker`'s documentation.
public struct SequenceStats: Equatable, Sendable {
    /// Packets recorded.
    public var received: UInt64 = 0
    /// Their bytes, as passed to `record`.
    public var bytes: UInt64 = 0
    /// Packets higher than every packet before them (the first packet included).
    public var inOrder: UInt64 = 0
    /// Late packets whose sequence had not arrived yet, plus the `tooLate` ones.
    public var outOfOrder: UInt64 = 0
    /// Late packets whose sequence had already arrived (within the window).
    public var duplicated: UInt64 = 0
    /// Sequences from `first` to `highest` not received (late packets older than the window are
    /// not credited: see `StreamTracker`).
    public var lost: UInt64 = 0
    /// Late packets older than the window, counted in `outOfOrder` without lowering `lost`.
    public var tooLate: UInt64 = 0
    /// Gaps: packets that arrived above the expected sequence (TRex's seq_err_too_big events).
    public var seqTooHigh: UInt64 = 0
    /// Late packets: below the expected sequence (TRex's seq_err_too_low events).
    public var seqTooLow: UInt64 = 0
    /// `highest - first + 1` on the 64-bit line: how many sequences the stream spans so far.
    public var expectedTotal: UInt64 = 0
    /// The lowest sequence known to belong to the stream (see `StreamTracker`); nil
    /// before the first packet, and in totals over several streams.
    public var first: UInt32? = nil
    /// The highest sequence seen; nil before the first packet, and in totals.
    public var highest: UInt32? = nil

    public init() {}

    /// Adds the counters of `other` (totals over streams). `first` and `highest` become nil.
    public mutating func add(_ other: SequenceStats) {
        received += other.received
        bytes += other.bytes
        inOrder += other.inOrder
        outOfOrder += other.outOfOrder
        duplicated += other.duplicated
        lost += other.lost
        tooLate += other.tooLate
        seqTooHigh += other.seqTooHigh
        seqTooLow += other.seqTooLow
        expectedTotal += other.expectedTotal
        first = nil
        highest = nil
    }
}

/// Sequence accounting of one stream for `shunt sink`: packets and bytes received, and, from the
/// 32-bit sequence numbers of the probe (`struct shunt_probe`), how many were lost, duplicated
/// or arrived out of order. Pure logic: no system calls, no Foundation, no allocation per packet.
///
/// # Semantics
///
/// The model is the one TRex applies to its latency / flow-stats streams on receive:
///
/// * The tracker expects one sequence next: one past the highest seen so far. A packet carrying
///   it is **in order**, and the expectation moves up by one.
/// * A packet above the expected sequence opens a gap. Every sequence it skipped is counted as
///   **lost** for now (TRex's "seq too high" event, counted in `seqTooHigh`), and the expectation
///   moves to one past the packet. The packet itself counts as in order: it is higher than
///   everything before it.
/// * A packet below the expected sequence is late (TRex's "seq too low" event, `seqTooLow`). If
///   its sequence was counted as lost, it is **out of order** and lost goes down by one. If it had
///   already arrived, it is a **duplicate**.
///
/// Every packet received is exactly one of in order, out of order or duplicate.
///
/// ## Wrap-around
///
/// Sequences are 32-bit and wrap. The tracker works on a 64-bit line: each sequence is placed at
/// the position nearest the expected one, that is `sequence - expected` modulo 2^32 read as a
/// signed 32-bit number (the comparison TRex makes). A packet up to 2^31 - 1 ahead is ahead, one
/// up to 2^31 behind is late. A generator that restarts from 0 therefore looks like a jump or a
/// burst of late packets; the sink should start a new tracker when the generator restarts.
///
/// ## Telling a duplicate from a late packet
///
/// TRex, outside a diagnostic mode, calls a late packet a duplicate only when it repeats the one
/// just before the expected sequence; any other late packet is out of order and lowers the loss
/// (floored at zero), even when it is a stale duplicate. This tracker instead keeps a bitmap of
/// the last `windowBits` positions (those within `windowBits - 1` of the highest), one bit per
/// sequence, set when the sequence arrives. A late packet within the window is a duplicate if its bit is
/// set, out of order otherwise, however long ago the original arrived and whatever came since.
///
/// ## Packets older than the window
///
/// A late packet at least `windowBits` below the highest cannot be classified: its bit has been
/// reused. The rule: it counts as out of order and as `tooLate`, and `lost` is left alone (as is
/// `first` if the packet is below it). This keeps `lost` conservative: a very late duplicate can
/// never hide a real loss. The cost is that a very late packet that really was missing stays
/// counted as lost. So the true loss lies between `lost - tooLate` and `lost`, and the true
/// number of duplicates between `duplicated` and `duplicated + tooLate`. With the default window
/// of 65536 sequences, a packet must be overtaken by 65536 later ones to fall in this case.
///
/// ## The first packet and packets before it
///
/// A stream need not start at 0: the first packet seen sets `first`, and is in order. A late
/// packet below `first` but within the window means the stream started earlier than the first
/// packet seen (its first packets were reordered). `first` moves down to that packet, which
/// counts as out of order, and the sequences between it and the old `first` count as lost. They
/// may still arrive, and are then out of order like any other. So a swap of the first two packets
/// reads like a swap anywhere else: one out of order, nothing lost. A packet below `first` that is
/// older than the window follows the rule above (out of order, `tooLate`, `first` unchanged).
///
/// ## Invariants
///
/// * `received == inOrder + outOfOrder + duplicated`.
/// * `expectedTotal == inOrder + outOfOrder - tooLate + lost`, where `expectedTotal` is
///   `highest - first + 1` on the 64-bit line. When nothing arrived older than the window
///   (`tooLate == 0`), that reads: every sequence from `first` to `highest` was either received
///   (and counted once, as in order or out of order) or is lost.
///
/// ## Cost
///
/// `record` is O(1) amortised and never allocates: the bitmap is a ring of `windowBits / 64`
/// words allocated in `init`. A forward move of `g` sequences clears `g` bits of the ring (at most
/// the whole ring, `windowBits / 64` word writes, for a jump of a window or more), and each
/// position is cleared once. One writer: take snapshots on the thread that records.
public struct StreamTracker: Sendable {
    /// 65536 sequences: 8 KiB per stream.
    public static let defaultWindowBits = 1 << 16

    /// How many of the most recent positions the bitmap remembers.
    public let windowBits: Int

    @usableFromInline let slotMask: Int64
    /// Bit `p & slotMask` of the ring is set when position `p` arrived, for the positions
    /// `highestPosition - windowBits + 1 ... highestPosition`.
    @usableFromInline var words: [UInt64]
    @usableFromInline var started = false
    /// Positions on the 64-bit line (the first packet is at its own 32-bit value; a packet before
    /// it may move `firstPosition` below zero).
    @usableFromInline var firstPosition: Int64 = 0
    @usableFromInline var highestPosition: Int64 = 0
    /// The counters; `first`, `highest` and `expectedTotal` are filled in by `snapshot()`.
    @usableFromInline var counts = SequenceStats()

    /// `windowBits` must be a power of two, at least 64.
    public init(windowBits: Int = StreamTracker.defaultWindowBits) {
        precondition(windowBits >= 64 && windowBits & (windowBits - 1) == 0, "windowBits must be a power of two >= 64")
        self.windowBits = windowBits
        slotMask = Int64(windowBits - 1)
        words = [UInt64](repeating: 0, count: windowBits / 64)
    }

    /// Accounts one packet carrying `sequence`, of `bytes` bytes.
    @inlinable
    public mutating func record(sequence: UInt32, bytes: Int) {
        counts.received &+= 1
        counts.bytes &+= UInt64(bytes)
        guard started else {
            start(at: sequence)
            return
        }
        let expected = highestPosition &+ 1
        let delta = Int64(Int32(bitPattern: sequence &- UInt32(truncatingIfNeeded: expected)))
        let position = expected &+ delta
        if delta >= 0 {
            if delta > 0 {
                counts.lost &+= UInt64(delta)
                counts.seqTooHigh &+= 1
                clear(from: expected, count: delta)
            }
            // The slot held position - windowBits, now out of the window: setting it is enough.
            setBit(position)
            highestPosition = position
            counts.inOrder &+= 1
        } else {
            recordLate(position)
        }
    }

    /// The counters, with `first`, `highest` and `expectedTotal` (all three unset before the
    /// first packet).
    public func snapshot() -> SequenceStats {
        var s = counts
        if started {
            s.first = UInt32(truncatingIfNeeded: firstPosition)
            s.highest = UInt32(truncatingIfNeeded: highestPosition)
            s.expectedTotal = UInt64(highestPosition - firstPosition + 1)
        }
        return s
    }

    @inlinable
    mutating func recordLate(_ position: Int64) {
        counts.seqTooLow &+= 1
        guard highestPosition &- position < Int64(windowBits) else {
            counts.outOfOrder &+= 1
            counts.tooLate &+= 1
            return
        }
        let word = Int(truncatingIfNeeded: (position & slotMask) >> 6)
        let bit = UInt64(1) << UInt64(truncatingIfNeeded: position & 63)
        if words[word] & bit != 0 {
            counts.duplicated &+= 1
            return
        }
        words[word] |= bit
        counts.outOfOrder &+= 1
        if position >= firstPosition {
            counts.lost &-= 1  // it was counted as lost when the gap opened
        } else {
            // The stream started earlier: the positions between this one and the old first are
            // lost until they arrive.
            counts.lost &+= UInt64(firstPosition - position - 1)
            firstPosition = position
        }
    }

    @inlinable
    mutating func setBit(_ position: Int64) {
        let word = Int(truncatingIfNeeded: (position & slotMask) >> 6)
        words[word] |= UInt64(1) << UInt64(truncatingIfNeeded: position & 63)
    }

    @usableFromInline
    mutating func start(at sequence: UInt32) {
        started = true
        firstPosition = Int64(sequence)
        highestPosition = firstPosition
        setBit(firstPosition)
        counts.inOrder &+= 1
    }

    /// Clears the bits of positions `start ..< start + count`, which enter the window.
    @usableFromInline
    mutating func clear(from start: Int64, count: Int64) {
        if count >= Int64(windowBits) {
            words.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            return
        }
        var slot = Int(truncatingIfNeeded: start & slotMask)
        var left = Int(count)
        while left > 0 {
            let bit = slot & 63
            let n = min(64 - bit, left)
            let mask: UInt64 = n == 64 ? ~0 : ((UInt64(1) << UInt64(n)) - 1) << UInt64(bit)
            words[slot >> 6] &= ~mask
            left -= n
            slot = (slot + n) & (windowBits - 1)
        }
    }
}

/// Sequence accounting for many streams, keyed by a 16-bit stream id.
///
/// A stream's tracker (and its bitmap, `windowBits / 8` bytes) is created on the stream's first
/// packet, up to `capacity` streams; packets of further streams are counted only in
/// `untrackedPackets` and `untrackedBytes`. The id → tracker index (256 KiB) and the room for
/// `capacity` trackers are allocated in `init`, so once every stream has been seen, `record`
/// never allocates. One writer, like `StreamTracker`.
public struct StreamTable: Sendable {
    public static let defaultCapacity = 4096

    public let capacity: Int
    public let windowBits: Int

    /// By stream id: 0 when the stream has no tracker yet, else its index in `trackers` plus one.
    @usableFromInline var slots: [UInt32]
    @usableFromInline var trackers: [StreamTracker] = []
    /// The stream id of each tracker.
    @usableFromInline var ids: [UInt16] = []
    /// Packets (and their bytes) of streams that arrived when the table was full.
    public private(set) var untrackedPackets: UInt64 = 0
    public private(set) var untrackedBytes: UInt64 = 0

    public init(capacity: Int = StreamTable.defaultCapacity, windowBits: Int = StreamTracker.defaultWindowBits) {
        precondition(capacity >= 1 && capacity <= 1 << 16, "capacity must be in 1...65536")
        self.capacity = capacity
        self.windowBits = windowBits
        slots = [UInt32](repeating: 0, count: 1 << 16)
        trackers.reserveCapacity(capacity)
        ids.reserveCapacity(capacity)
    }

    /// Accounts one packet of stream `stream` carrying `sequence`, of `bytes` bytes.
    @inlinable
    public mutating func record(stream: UInt16, sequence: UInt32, bytes: Int) {
        let slot = Int(slots[Int(stream)])
        if slot != 0 {
            trackers[slot - 1].record(sequence: sequence, bytes: bytes)
        } else {
            recordFirst(stream: stream, sequence: sequence, bytes: bytes)
        }
    }

    /// The first packet of a stream: creates its tracker, or counts it as untracked when full.
    @usableFromInline
    mutating func recordFirst(stream: UInt16, sequence: UInt32, bytes: Int) {
        guard trackers.count < capacity else {
            untrackedPackets += 1
            untrackedBytes += UInt64(bytes)
            return
        }
        var tracker = StreamTracker(windowBits: windowBits)
        tracker.record(sequence: sequence, bytes: bytes)
        trackers.append(tracker)
        ids.append(stream)
        slots[Int(stream)] = UInt32(trackers.count)
    }

    /// How many streams have a tracker.
    public var streamCount: Int { trackers.count }

    /// One stream's counters, or nil if it has no tracker.
    public func snapshot(stream: UInt16) -> SequenceStats? {
        let slot = Int(slots[Int(stream)])
        return slot == 0 ? nil : trackers[slot - 1].snapshot()
    }

    public struct Snapshot: Equatable, Sendable {
        /// Every tracked stream's counters, by stream id.
        public var streams: [UInt16: SequenceStats]
        /// The counters summed over the tracked streams (`first` and `highest` nil). Untracked
        /// packets are not in it.
        public var total: SequenceStats
        public var untrackedPackets: UInt64
        public var untrackedBytes: UInt64
    }

    /// Every stream's counters and their totals. Allocates: not for the per-packet path.
    public func snapshot() -> Snapshot {
        var streams: [UInt16: SequenceStats] = [:]
        streams.reserveCapacity(trackers.count)
        var total = SequenceStats()
        for (id, tracker) in zip(ids, trackers) {
            let s = tracker.snapshot()
            streams[id] = s
            total.add(s)
        }
        return Snapshot(
            streams: streams, total: total, untrackedPackets: untrackedPackets, untrackedBytes: untrackedBytes)
    }
}
