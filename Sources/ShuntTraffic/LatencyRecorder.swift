import Histogram

/// One-way latencies of test frames (send timestamp to receive timestamp, both CLOCK_MONOTONIC
/// nanoseconds), kept in an HDR histogram (hdrhistogram-swift) and summarised in microseconds.
///
/// Range and precision, and why:
/// - Values are nanoseconds, the clock's own unit, and the lowest discernible value is 1 ns. A
///   hop through veth or XDP takes from a few hundred nanoseconds to a few microseconds, so
///   microsecond units would throw away exactly the part being measured. Range costs little
///   in an HDR histogram: each doubling of the range adds 1024 counters.
/// - 3 significant digits: every value up to 2047 ns is kept exactly; above that a value shares
///   its counter with neighbours within 1/1024 of it (under 0.1%): 1 ns at 1 us, 1 us at 1 ms.
///   That is finer than the noise of the timestamps themselves, and makes p99 differences
///   between two runs visible. 2 digits (1%) would blur them; 4 digits would cost 14 times the
///   memory for precision the clock cannot deliver.
/// - The highest value kept is 60 s. No test frame is in flight that long; a longer delta is a
///   stale or corrupt timestamp. Such a value is recorded as 60 s (it still ranks above all the
///   others, so the percentiles below it stay right) and counted in `clamped`.
/// - Counts are 64-bit: at 15 Mpps one counter would pass 2^32 in under five minutes.
///
/// The counters (27,648 of them, 216 KiB) are allocated once, in `init`; recording never
/// allocates. Keep one recorder per worker thread and `merge` them at the end: the type is a
/// value, not shared.
public struct LatencyRecorder: Equatable, Sendable {
    /// The lowest value told apart from 0, in nanoseconds.
    @inlinable public static var lowestNanoseconds: UInt64 { 1 }
    /// The highest value recorded as it is, in nanoseconds (60 s). Longer ones count as this.
    @inlinable public static var highestNanoseconds: UInt64 { 60_000_000_000 }
    @usableFromInline var histogram: Histogram<UInt64>
    @usableFromInline var _clamped: UInt64 = 0
    @usableFromInline var _invalid: UInt64 = 0

    public init() {
        histogram = Histogram(
            lowestDiscernibleValue: Self.lowestNanoseconds, highestTrackableValue: Self.highestNanoseconds,
            numberOfSignificantValueDigits: .three)
    }

    /// Samples recorded, clamped ones included, invalid ones not.
    public var count: UInt64 { histogram.totalCount }

    /// Samples longer than `highestNanoseconds`, recorded as `highestNanoseconds`.
    public var clamped: UInt64 { _clamped }

    /// Deltas of zero or less (received at or before the time it was sent: clock skew, a corrupt
    /// stamp), counted here and not recorded.
    public var invalid: UInt64 { _invalid }

    /// Records one latency. 0 counts as `invalid`: a frame cannot arrive at the instant it was
    /// stamped, so 0 means the caller's delta was not positive.
    @inlinable
    public mutating func record(nanoseconds: UInt64) {
        if nanoseconds == 0 {
            _invalid &+= 1
        } else if nanoseconds > Self.highestNanoseconds {
            _clamped &+= 1
            histogram.record(Self.highestNanoseconds)
        } else {
            histogram.record(nanoseconds)
        }
    }

    /// Records `received - sent`; a receive time at or before the send time counts as `invalid`.
    @inlinable
    public mutating func record(sentNanoseconds sent: UInt64, receivedNanoseconds received: UInt64) {
        record(nanoseconds: received > sent ? received - sent : 0)
    }

    /// Adds everything `other` recorded (counts, `clamped`, `invalid`) to this recorder, as if
    /// it had been recorded here.
    public mutating func merge(_ other: LatencyRecorder) {
        histogram.add(other.histogram)
        _clamped &+= other._clamped
        _invalid &+= other._invalid
    }

    /// min, p50, p90, p99, p99.9 and max in microseconds.
    ///
    /// min and max are the exact extremes recorded. A percentile is the highest value that
    /// shares a counter with the sample at that rank, kept within [min, max]: it is never below
    /// the true value and at most 0.1% above it (exact below 2048 ns).
    public func summary() -> LatencySummary {
        let n = histogram.totalCount
        guard n > 0 else { return LatencySummary(count: 0, clamped: _clamped, invalid: _invalid) }
        func us(_ ns: UInt64) -> Double { Double(ns) / 1000 }
        return LatencySummary(
            min: us(histogram.min), p50: us(histogram.valueAtPercentile(50)),
            p90: us(histogram.valueAtPercentile(90)), p99: us(histogram.valueAtPercentile(99)),
            p999: us(histogram.valueAtPercentile(99.9)), max: us(histogram.maxRecorded),
            count: n, clamped: _clamped, invalid: _invalid)
    }

    /// The cumulative distribution as at most `points` (latency in microseconds, fraction of the
    /// samples at or below it) pairs, for plotting.
    ///
    /// The pairs are points of the recorded step function, not interpolations: the latency is
    /// the upper edge of a counter's range (the last one: the exact max) and the fraction counts
    /// every sample up to it. One pair is kept each time the fraction reaches the next multiple
    /// of 1/points, so both coordinates strictly increase and the last pair is (max, 1.0).
    /// Empty when nothing was recorded.
    public func cdf(points: Int = 100) -> [(microseconds: Double, fraction: Double)] {
        precondition(points >= 1, "a CDF needs at least one point")
        let n = histogram.totalCount
        guard n > 0 else { return [] }
        let p = UInt64(points)
        var result: [(microseconds: Double, fraction: Double)] = []
        result.reserveCapacity(points)
        var next: UInt64 = 1  // the next threshold is next/points
        for step in histogram.recordedValues() {
            let seen = step.totalCountToThisValue
            // seen/n >= next/p, in integers (seen * p can pass 64 bits)
            let scaled = seen.multipliedFullWidth(by: p)
            let threshold = next.multipliedFullWidth(by: n)
            guard seen == n || (scaled.high, scaled.low) >= (threshold.high, threshold.low) else { continue }
            let ns = Swift.min(step.value, histogram.maxRecorded)
            result.append((Double(ns) / 1000, seen == n ? 1.0 : Double(seen) / Double(n)))
            if seen == n { break }
            next = n.dividingFullWidth(scaled).quotient + 1  // the first threshold above seen/n
        }
        return result
    }
}

/// A latency distribution in microseconds, as printed by the sink.
public struct LatencySummary: Equatable, Sendable {
    public var min: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double
    public var max: Double
    /// Samples recorded (clamped ones included).
    public var count: UInt64
    /// Samples over the recorder's range, counted as its highest value.
    public var clamped: UInt64
    /// Non-positive deltas, not recorded.
    public var invalid: UInt64

    public init(
        min: Double = 0, p50: Double = 0, p90: Double = 0, p99: Double = 0, p999: Double = 0, max: Double = 0,
        count: UInt64, clamped: UInt64 = 0, invalid: UInt64 = 0
    ) {
        self.min = min
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.p999 = p999
        self.max = max
        self.count = count
        self.clamped = clamped
        self.invalid = invalid
    }

    /// `{"min":..,"p50":..,"p90":..,"p99":..,"p999":..,"max":..,"samples":..}`: these keys in this
    /// order, microseconds with at most 3 decimals and no trailing zeros. With no samples every
    /// latency is null.
    public var json: String {
        let values = [min, p50, p90, p99, p999, max].map { count == 0 ? "null" : Self.decimal($0) }
        let keys = ["min", "p50", "p90", "p99", "p999", "max"]
        let pairs = zip(keys, values).map { "\"\($0)\":\($1)" }
        return "{" + pairs.joined(separator: ",") + ",\"samples\":\(count)}"
    }

    /// One line: `latency us: min 1.2 p50 3 p90 4.5 p99 7 p99.9 9.1 max 12.3, samples 1000, clamped 0, invalid 0`.
    public var text: String {
        let counts = "clamped \(clamped), invalid \(invalid)"
        guard count > 0 else { return "latency us: no samples, \(counts)" }
        let d = Self.decimal
        return "latency us: min \(d(min)) p50 \(d(p50)) p90 \(d(p90)) p99 \(d(p99)) p99.9 \(d(p999)) max \(d(max)), "
            + "samples \(count), \(counts)"
    }

    /// `x` rounded to 3 decimals, without trailing zeros or a trailing point ("12", "0.5",
    /// "1.234"). Not-a-number and infinities, which JSON lacks, become "null".
    static func decimal(_ x: Double) -> String {
        guard x.isFinite else { return "null" }
        let thousandths = (x.magnitude * 1000).rounded()
        guard thousandths < 9e18 else { return "\(x)" }
        let t = UInt64(thousandths)
        let sign = x < 0 && t > 0 ? "-" : ""
        var fraction = String(t % 1000)
        if fraction == "0" { return sign + String(t / 1000) }
        fraction = String(repeating: "0", count: 3 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return sign + String(t / 1000) + "." + fraction
    }
}
