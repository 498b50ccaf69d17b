import Testing
@testable import ShuntTraffic

/// The HDR latency recorder: percentiles of known distributions, clamping, merging, the summary's
/// JSON and text, the CDF, and the conversion of the XDP sink's buckets.
@Suite struct LatencyRecorderTests {
    /// A percentile as the recorder reports it: never below the true value, at most one counter
    /// width (1/1024 of it) above.
    func close(_ reported: Double, to truth: Double) -> Bool {
        reported >= truth && reported <= truth + truth / 1024
    }

    func recorder(_ nanoseconds: [UInt64]) -> LatencyRecorder {
        var r = LatencyRecorder()
        for ns in nanoseconds { r.record(nanoseconds: ns) }
        return r
    }

    // MARK: Known distributions

    @Test func uniformOneToThousandMicroseconds() {
        let s = recorder((1...1000).map { UInt64($0) * 1000 }).summary()
        #expect(s.count == 1000 && s.clamped == 0 && s.invalid == 0)
        #expect(s.min == 1 && s.max == 1000)
        #expect(close(s.p50, to: 500), "p50 \(s.p50)")
        #expect(close(s.p90, to: 900), "p90 \(s.p90)")
        #expect(close(s.p99, to: 990), "p99 \(s.p99)")
        #expect(close(s.p999, to: 999), "p999 \(s.p999)")
    }

    @Test func bimodal() {
        // 900 frames at 10 us and 100 at 2 ms: p90 is the last of the fast ones, p99 a slow one.
        let s = recorder([UInt64](repeating: 10_000, count: 900) + [UInt64](repeating: 2_000_000, count: 100)).summary()
        #expect(s.count == 1000)
        #expect(s.min == 10 && s.max == 2000)
        #expect(close(s.p50, to: 10) && close(s.p90, to: 10))
        #expect(s.p99 == 2000 && s.p999 == 2000)
    }

    @Test func singleValue() {
        let s = recorder([12_345]).summary()
        #expect(s == LatencySummary(
            min: 12.345, p50: 12.345, p90: 12.345, p99: 12.345, p999: 12.345, max: 12.345, count: 1))
    }

    @Test func minAndMaxAreExact() {
        // Both extremes fall inside counters wider than 1 ns, yet come back to the nanosecond.
        let s = recorder([1_234_567, 7, 50_001, 59_999_999_999]).summary()
        #expect(s.min == 0.007)
        #expect(s.max == 59_999_999.999)
    }

    @Test func exactBelowTwoMicroseconds() {
        let s = recorder((1...2047).map { UInt64($0) }).summary()
        #expect(s.p50 == 1.024 && s.p90 == 1.843 && s.max == 2.047)
    }

    @Test func footprint() {
        // The documented 27,648 counters of 8 bytes. The package counts the array's capacity, which
        // the allocator may round up a little, plus 512 bytes for itself.
        let counters = (LatencyRecorder().histogram.estimatedFootprintInBytes - 512) / 8
        #expect((27_648..<27_648 + 64).contains(counters), "\(counters) counters")
    }

    @Test func empty() {
        let r = LatencyRecorder()
        #expect(r.count == 0)
        #expect(r.summary() == LatencySummary(count: 0))
        #expect(r.cdf().isEmpty)
    }

    // MARK: Clamping and invalid deltas

    @Test func clampedAndInvalid() {
        var r = LatencyRecorder()
        r.record(nanoseconds: 0)
        r.record(sentNanoseconds: 1000, receivedNanoseconds: 999)  // received before sent
        r.record(sentNanoseconds: 1000, receivedNanoseconds: 1000)
        r.record(sentNanoseconds: 1000, receivedNanoseconds: 3500)  // 2.5 us
        r.record(nanoseconds: LatencyRecorder.highestNanoseconds)  // the edge is still in range
        r.record(nanoseconds: LatencyRecorder.highestNanoseconds + 1)
        r.record(nanoseconds: .max)
        #expect(r.invalid == 3)
        #expect(r.clamped == 2)
        #expect(r.count == 4)
        let s = r.summary()
        #expect(s.count == 4 && s.clamped == 2 && s.invalid == 3)
        #expect(s.min == 2.5 && s.max == 60_000_000 && s.p50 == 60_000_000)
    }

    @Test func onlyInvalid() {
        var r = LatencyRecorder()
        r.record(sentNanoseconds: 5, receivedNanoseconds: 1)
        #expect(r.count == 0 && r.invalid == 1)
        #expect(r.summary().json == #"{"min":null,"p50":null,"p90":null,"p99":null,"p999":null,"max":null,"samples":0}"#)
        #expect(r.summary().text == "latency us: no samples, clamped 0, invalid 1")
    }

    // MARK: Merging

    @Test func mergeEqualsRecordingEverythingInOne() {
        let a: [UInt64] = [0, 1, 999, 2048, 2049, 10_000, 123_456_789, 70_000_000_000]
        let b: [UInt64] = [0, 0, 5, 2049, 4_000_000, 59_999_999_999, .max]
        var merged = recorder(a)
        merged.merge(recorder(b))
        let together = recorder(a + b)
        #expect(merged == together)
        #expect(merged.summary() == together.summary())
        #expect(merged.count == 12 && merged.clamped == 2 && merged.invalid == 3)

        var intoEmpty = LatencyRecorder()
        intoEmpty.merge(together)
        intoEmpty.merge(LatencyRecorder())
        #expect(intoEmpty == together)
    }

    // MARK: Summary output

    @Test func jsonKeysAndOrder() {
        let json = recorder([12_345]).summary().json
        #expect(json == #"{"min":12.345,"p50":12.345,"p90":12.345,"p99":12.345,"p999":12.345,"max":12.345,"samples":1}"#)
        let s = LatencySummary(min: 0, p50: 0.5, p90: 2.25, p99: 1000, p999: 3.1006, max: 0.001, count: 42)
        #expect(s.json == #"{"min":0,"p50":0.5,"p90":2.25,"p99":1000,"p999":3.101,"max":0.001,"samples":42}"#)
    }

    @Test func decimals() {
        #expect(LatencySummary.decimal(0) == "0")
        #expect(LatencySummary.decimal(12) == "12")
        #expect(LatencySummary.decimal(0.1) == "0.1")
        #expect(LatencySummary.decimal(1.05) == "1.05")
        #expect(LatencySummary.decimal(1.0004) == "1")
        #expect(LatencySummary.decimal(0.0996) == "0.1")
        #expect(LatencySummary.decimal(999.9996) == "1000")
        #expect(LatencySummary.decimal(60_000_000) == "60000000")
        #expect(LatencySummary.decimal(-2.5) == "-2.5")
        #expect(LatencySummary.decimal(.nan) == "null")
    }

    @Test func text() {
        var r = recorder([12_345])
        r.record(nanoseconds: 0)
        #expect(r.summary().text
            == "latency us: min 12.345 p50 12.345 p90 12.345 p99 12.345 p99.9 12.345 max 12.345, samples 1, clamped 0, invalid 1")
    }

    // MARK: CDF

    @Test func cdfOfUniform() {
        let r = recorder((1...1000).map { UInt64($0) * 1000 })
        let cdf = r.cdf(points: 10)
        #expect(cdf.count == 10)
        for (previous, point) in zip(cdf, cdf.dropFirst()) {
            #expect(point.microseconds > previous.microseconds && point.fraction > previous.fraction)
        }
        #expect(cdf.last! == (1000, 1.0))
        for (i, point) in cdf.enumerated() {
            #expect(point.fraction == Double(i + 1) / 10)
            #expect(close(point.microseconds, to: Double(i + 1) * 100), "\(point)")
        }
        let fine = r.cdf(points: 5000)  // more points than counters in use: one per counter
        #expect(fine.count == 1000 && fine.first!.fraction == 0.001 && fine.last! == (1000, 1.0))
    }

    @Test func cdfEndsAtOne() {
        let r = recorder([7, 7, 7, 900, 3_000_000, 3_000_001])
        for points in [1, 2, 3, 7, 100] {
            let cdf = r.cdf(points: points)
            #expect(!cdf.isEmpty && cdf.count <= points)
            #expect(cdf.last! == (3000.001, 1.0))
            #expect(zip(cdf, cdf.dropFirst()).allSatisfy { $1.microseconds > $0.microseconds && $1.fraction > $0.fraction })
        }
        #expect(r.cdf(points: 1).count == 1)
        #expect(r.cdf(points: 100).first! == (0.007, 0.5))
    }

    // MARK: The XDP sink's buckets

    @Test func fromBuckets() {
        let linear = LatencyHistogram.linearBuckets
        var buckets = LatencyHistogram()
        buckets.counts[0] = 2  // [0, 1) us
        buckets.counts[3] = 5  // [3, 4) us
        buckets.counts[linear - 1] = 1  // [4095, 4096) us
        buckets.counts[linear] = 1  // [4096, 8192) us
        buckets.counts[linear + 13] = 1  // [2^25, 2^26) us: 33.5 s, in range
        buckets.counts[linear + 14] = 1  // [2^26, 2^27) us: 67 s, clamped
        buckets.counts[LatencyHistogram.bucketCount - 1] = 1  // the last: clamped
        let r = LatencyRecorder(buckets: buckets)
        #expect(r.count == 12 && r.clamped == 2 && r.invalid == 0)

        let s = r.summary()
        #expect(s.min == 0 && s.max == 60_000_000)
        #expect(close(s.p50, to: 3))  // ranks 3 to 7 are the 3 us bucket
        #expect(r.cdf().first! == (0, 2.0 / 12))
        #expect(r.cdf().map(\.fraction) == [2, 7, 8, 9, 10, 12].map { Double($0) / 12 })
        // A CDF point is the upper edge of an HDR counter, within 0.1% of the bucket's lower bound.
        #expect(close(r.cdf()[2].microseconds, to: 4095) && close(r.cdf()[4].microseconds, to: 33_554_432))
    }

    @Test func fromBucketsAgreesWithTheBucketQuantiles() {
        var buckets = LatencyHistogram()
        for (i, bucket) in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 4096, 4100].enumerated() {
            buckets.counts[bucket] = UInt64(i * i + 1)
        }
        let s = LatencyRecorder(buckets: buckets).summary()
        #expect(s.count == buckets.total)
        #expect(s.min == Double(buckets.minimum!) && s.max == Double(buckets.maximum!))
        for (reported, q) in [(s.p50, 0.5), (s.p90, 0.9), (s.p99, 0.99), (s.p999, 0.999)] {
            #expect(close(reported, to: Double(buckets.quantile(q)!)), "q \(q): \(reported)")
        }
    }

    @Test func fromBucketsMergesWithLiveRecorders() {
        var buckets = LatencyHistogram()
        buckets.counts[10] = 4
        var r = recorder([10_000, 10_000, 10_000, 10_000])
        r.merge(LatencyRecorder(buckets: buckets))
        #expect(r == recorder([UInt64](repeating: 10_000, count: 8)))
    }
}
