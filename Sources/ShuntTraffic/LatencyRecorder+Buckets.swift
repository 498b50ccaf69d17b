extension LatencyRecorder {
    /// The XDP sink's bucketed histogram as a recorder, so that its output gets the same summary
    /// and JSON as a recorder fed frame by frame.
    ///
    /// Each bucket's count is recorded at the bucket's lower bound. The values therefore carry
    /// the buckets' resolution, not the recorder's: a reported 3 us means 3 <= latency < 4 us
    /// (buckets are 1 us wide below 4096 us and a power of two above), and the HDR rounding of
    /// at most 0.1% comes on top of that. Two more consequences:
    /// - Bucket 0 ([0, 1) us) is recorded as 0 ns, a valid sample here. xdp_sink also puts
    ///   deltas of zero or less in that bucket and cannot tell them apart, so `invalid` stays 0.
    /// - Buckets whose lower bound is past `highestNanoseconds` (2^26 us and up, and the last
    ///   bucket's overflow) are recorded as `highestNanoseconds` and counted in `clamped`.
    ///
    /// Entries past `LatencyHistogram.bucketCount`, if any, count as the last bucket, which holds
    /// everything longer.
    public init(buckets: LatencyHistogram) {
        self.init()
        let last = LatencyHistogram.bucketCount - 1
        for (bucket, n) in buckets.counts.enumerated() where n > 0 {
            let us = LatencyHistogram.lowerBoundMicroseconds(bucket: Swift.min(bucket, last))
            record(lowerBoundNanoseconds: us * 1000, count: n)
        }
    }

    /// Records `count` samples of `nanoseconds`, 0 included (a bucket's lower bound is not a delta).
    mutating func record(lowerBoundNanoseconds nanoseconds: UInt64, count: UInt64) {
        if nanoseconds > Self.highestNanoseconds {
            _clamped &+= count
            histogram.record(Self.highestNanoseconds, count: count)
        } else {
            histogram.record(nanoseconds, count: count)
        }
    }
}
