/// What the userspace sink keeps about the frames it receives: totals, per-stream sequence
/// accounting (`StreamTable`, TRex semantics) and one-way latency (`LatencyRecorder`). Pure
/// logic: the receive loop hands it frames and a receive time; no system calls.
///
/// Every frame counts in `received` and `bytes`. A frame with a probe (see `Probe.parse`) also
/// counts in `probes` and in its stream, and its latency is recorded; any other frame counts in
/// `other`. Nothing allocates per frame, except a stream's first frame (its tracker: see
/// `StreamTable`). One writer.
public struct SinkAccounting: Sendable {
    public private(set) var streams: StreamTable
    public private(set) var latency = LatencyRecorder()
    /// Every frame handed to `record` or `recordOther`.
    public private(set) var received: UInt64 = 0
    /// Their lengths as they arrived (without FCS).
    public private(set) var bytes: UInt64 = 0
    /// Frames with a probe.
    public private(set) var probes: UInt64 = 0
    /// Frames without one (not IPv4/UDP from `shunt gen`, or not handed over whole).
    public private(set) var other: UInt64 = 0
    /// The receive times of the first and the last frame (nil before the first).
    public private(set) var firstReceivedNanoseconds: UInt64? = nil
    public private(set) var lastReceivedNanoseconds: UInt64? = nil

    public init(streamCapacity: Int = StreamTable.defaultCapacity, windowBits: Int = StreamTracker.defaultWindowBits) {
        streams = StreamTable(capacity: streamCapacity, windowBits: windowBits)
    }

    /// Accounts one frame: `frame` holds its captured bytes from the Ethernet header, `length`
    /// is its length on arrival (at least `frame.count`), `receivedNanoseconds` the receive time
    /// on the clock of the probes' send times (CLOCK_MONOTONIC).
    public mutating func record(frame: UnsafeRawBufferPointer, length: Int, receivedNanoseconds now: UInt64) {
        received &+= 1
        bytes &+= UInt64(length)
        noteTime(now)
        guard let probe = Probe.parse(frame) else {
            other &+= 1
            return
        }
        probes &+= 1
        streams.record(stream: probe.stream, sequence: probe.sequence, bytes: length)
        latency.record(sentNanoseconds: probe.sentNanoseconds, receivedNanoseconds: now)
    }

    /// Accounts `count` frames whose bytes could not be read (e.g. longer than a ring frame):
    /// they were received, but as `other`.
    public mutating func recordOther(count: UInt64, bytes length: UInt64, receivedNanoseconds now: UInt64) {
        guard count > 0 else { return }
        received &+= count
        bytes &+= length
        other &+= count
        noteTime(now)
    }

    private mutating func noteTime(_ now: UInt64) {
        if firstReceivedNanoseconds == nil { firstReceivedNanoseconds = now }
        lastReceivedNanoseconds = now
    }
}
