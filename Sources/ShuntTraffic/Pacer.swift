/// Token-bucket pacing of `shunt gen --rate`: how many frames are due at a given time.
///
/// Frames go out in chunks (one BPF_PROG_TEST_RUN call each). At time t after the start,
/// floor(t * rate) frames should have been sent; a chunk sends what is due, at most `maxChunk`.
/// Frames due beyond that are forgiven rather than sent later in one large burst (`skipped`
/// counts them, so the caller can report that the rate was not reached).
public struct Pacer: Sendable {
    public let rate: Double
    public let minChunk: UInt64
    public let maxChunk: UInt64
    public private(set) var credited: UInt64 = 0  // frames due so far (sent or skipped)
    public private(set) var skipped: UInt64 = 0

    /// `tickNs`: target spacing of chunks; a chunk is at least rate * tick frames (and 1).
    /// `maxBurstTicks`: how many ticks' worth one chunk may catch up.
    public init(rate: Double, tickNs: UInt64, maxBurstTicks: UInt64 = 20) {
        precondition(rate > 0)
        self.rate = rate
        let perTick = rate * Double(tickNs) / 1e9
        minChunk = max(1, UInt64(perTick.rounded(.down)))
        maxChunk = max(minChunk, UInt64(perTick * Double(maxBurstTicks)))
    }

    /// Frames due `elapsedNs` after the start that have not been credited yet.
    public func due(elapsedNs: UInt64) -> UInt64 {
        let target = UInt64(Double(elapsedNs) * rate / 1e9)
        return target > credited ? target - credited : 0
    }

    /// The chunk to send now, or 0 when fewer than `minChunk` frames are due (then sleep until
    /// `nextDueNs`). Credits the chunk, and forgives what exceeds `maxChunk`.
    public mutating func take(elapsedNs: UInt64, limit: UInt64 = .max) -> UInt64 {
        let d = due(elapsedNs: elapsedNs)
        guard d >= min(minChunk, limit), d > 0 else { return 0 }
        let chunk = min(d, maxChunk, limit)
        if d > maxChunk {
            skipped += d - maxChunk
            credited += d - maxChunk
        }
        credited += chunk
        return chunk
    }

    /// Elapsed time at which `minChunk` more frames will be due.
    public var nextDueNs: UInt64 {
        UInt64((Double(credited + minChunk) / rate * 1e9).rounded(.up))
    }
}
