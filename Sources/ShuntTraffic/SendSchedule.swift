/// The pacing of `shunt gen --rate` in user space (the ring engine; xdp_gen keeps the same rule
/// in the kernel): frame k of a schedule is due at start + k * interval. Pure arithmetic, no clock:
/// the caller passes the time.
///
/// A generator that is late (its CPU was elsewhere) catches up: every frame already due may go at
/// once, in batches of the caller's size, so that the average rate holds and a run of S seconds
/// at R pps sends R * S frames. Only a frame later than `maxLagNs` moves the schedule up to now
/// (a lag skip: those frames are not sent), which bounds the burst to maxLagNs worth of frames.
/// A small maxLagNs gives the latency-friendly behaviour (never a burst, fewer frames).
public struct SendSchedule: Equatable, Sendable {
    public let interval: FrameInterval
    public let maxLagNs: UInt64
    /// When the current schedule started (the first frame's due time); nil before the first call.
    public private(set) var startNs: UInt64?
    /// Frames sent on the current schedule.
    public private(set) var sentOnSchedule: UInt64 = 0
    /// How often the schedule moved up, and by how much in total.
    public private(set) var lagSkips: UInt64 = 0
    public private(set) var skippedNs: UInt64 = 0
    /// The largest lateness of a frame sent (or skipped), in nanoseconds.
    public private(set) var maxLagSeenNs: UInt64 = 0

    public init(rate: Double, maxLagNs: UInt64) {
        interval = FrameInterval(rate: rate)
        self.maxLagNs = maxLagNs
    }

    /// How many frames are due at `now`, at most `limit`. Call `sent(_:)` with the number sent.
    public mutating func due(at now: UInt64, limit: Int) -> Int {
        guard limit > 0 else { return 0 }
        guard let start = startNs else {
            startNs = now
            return 1
        }
        let nextDue = start &+ interval.nanoseconds(forFrames: sentOnSchedule)
        if now < nextDue { return 0 }
        let lag = now - nextDue
        if lag > maxLagNs {
            lagSkips += 1
            skippedNs &+= lag
            maxLagSeenNs = max(maxLagSeenNs, lag)
            startNs = now
            sentOnSchedule = 0
            return 1
        }
        maxLagSeenNs = max(maxLagSeenNs, lag)
        let dueCount = interval.frames(within: now - start) + 1 - sentOnSchedule
        return Int(min(dueCount, UInt64(limit)))
    }

    public mutating func sent(_ n: Int) {
        sentOnSchedule += UInt64(n)
    }
}

extension FrameInterval {
    /// k intervals in whole nanoseconds (rounded down), as xdp_gen adds them up.
    public func nanoseconds(forFrames k: UInt64) -> UInt64 {
        let (high, low) = UInt64(fraction).multipliedFullWidth(by: k)
        // k * fraction / 2^32, from the 128-bit product
        let fractional = high << 32 | low >> 32
        return nanoseconds &* k &+ fractional
    }

    /// How many whole intervals fit in `ns` nanoseconds.
    public func frames(within ns: UInt64) -> UInt64 {
        let exact = asNanoseconds
        var k = UInt64((Double(ns) / exact).rounded(.down))
        // Correct the floating-point estimate against the exact fixed-point sum.
        while k > 0 && nanoseconds(forFrames: k) > ns { k -= 1 }
        while nanoseconds(forFrames: k + 1) <= ns { k += 1 }
        return k
    }
}
