import Foundation

/// Median, minimum and maximum of one quantity over the repeats, with the values themselves.
public struct Spread: Codable, Equatable, Sendable {
    public var median: Double
    public var min: Double
    public var max: Double
    public var values: [Double]

    /// nil for no values. The median of an even count is the mean of the middle two.
    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let mid = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        min = sorted[0]
        max = sorted[sorted.count - 1]
        self.values = values
    }
}

/// The order the runs go in: every repeat runs every forwarder once (A B C A B C ...), so a slow
/// drift of the machine (thermal, other load) spreads over all forwarders instead of landing on one.
public enum RunOrder {
    public struct Slot: Equatable, Sendable {
        public var repeatIndex: Int  // from 1
        public var forwarder: String
    }

    public static func interleaved(forwarders: [String], repeats: Int) -> [Slot] {
        (1...max(1, repeats)).flatMap { r in forwarders.map { Slot(repeatIndex: r, forwarder: $0) } }
    }
}

/// Elapsed time and an estimate of the rest, for the progress lines.
public struct ProgressClock: Sendable {
    public let total: Int
    public init(total: Int) { self.total = total }

    /// "elapsed 1m05s, ETA 3m10s" after `done` of `total` units took `elapsedSeconds`.
    public func text(done: Int, elapsedSeconds: Double) -> String {
        var t = "elapsed \(Self.duration(elapsedSeconds))"
        if done > 0 && done < total {
            t += ", ETA \(Self.duration(elapsedSeconds / Double(done) * Double(total - done)))"
        }
        return t
    }

    public static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" }
        if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s)s"
    }
}
