import CShunt

/// The sink's latency histogram (map `sink_latency` of xdp_sink, summed over CPUs).
///
/// Buckets 0 ..< SHUNT_LAT_LINEAR_US are 1 us wide: bucket i holds [i, i+1) us. Past that, bucket
/// SHUNT_LAT_LINEAR_US + k holds [2^(12+k), 2^(13+k)) us; the last bucket also holds everything
/// longer. Every value this type reports is the LOWER BOUND of the bucket it falls in, so a
/// latency reported as 3 us means 3 <= latency < 4 us, and one reported as 8192 means
/// 8192 <= latency < 16384 us.
public struct LatencyHistogram: Equatable, Sendable {
    public static let linearBuckets = Int(SHUNT_LAT_LINEAR_US)
    public static let bucketCount = Int(SHUNT_LAT_BUCKETS)

    public var counts: [UInt64]

    public init(counts: [UInt64] = []) {
        var c = counts
        if c.count < Self.bucketCount { c += [UInt64](repeating: 0, count: Self.bucketCount - c.count) }
        self.counts = c
    }

    /// Lower bound, in microseconds, of the latencies in `bucket`.
    public static func lowerBoundMicroseconds(bucket: Int) -> UInt64 {
        if bucket < linearBuckets { return UInt64(bucket) }
        let log2Linear = UInt64(linearBuckets).trailingZeroBitCount  // 12
        return 1 << UInt64(log2Linear + bucket - linearBuckets)
    }

    public var total: UInt64 { counts.reduce(0, &+) }

    /// The lower bound of the bucket holding the sample of rank ceil(q * total) (1-based), i.e.
    /// the smallest bucket below which at least a fraction q of the samples lie. nil when empty.
    public func quantile(_ q: Double) -> UInt64? {
        let n = total
        guard n > 0 else { return nil }
        let rank = max(1, UInt64((q * Double(n)).rounded(.up)))
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() where c > 0 {
            seen += c
            if seen >= rank { return Self.lowerBoundMicroseconds(bucket: i) }
        }
        return Self.lowerBoundMicroseconds(bucket: counts.count - 1)
    }

    public var minimum: UInt64? {
        counts.firstIndex(where: { $0 > 0 }).map { Self.lowerBoundMicroseconds(bucket: $0) }
    }

    public var maximum: UInt64? {
        counts.lastIndex(where: { $0 > 0 }).map { Self.lowerBoundMicroseconds(bucket: $0) }
    }

    /// {"min":..,"p50":..,"p90":..,"p99":..,"p999":..,"max":..} in microseconds (bucket lower
    /// bounds), or null values when there were no samples.
    public func summaryJSON() -> String {
        func v(_ x: UInt64?) -> String { x.map(String.init) ?? "null" }
        return "{\"min\":\(v(minimum)),\"p50\":\(v(quantile(0.5))),\"p90\":\(v(quantile(0.9))),\"p99\":\(v(quantile(0.99))),\"p999\":\(v(quantile(0.999))),\"max\":\(v(maximum)),\"samples\":\(total)}"
    }
}
