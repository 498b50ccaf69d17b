/// The zero-loss throughput search (RFC 2544, section 26.1 style): trials at a paced rate,
/// bisecting between 0 and an upper bound, a trial passing when its loss is within the tolerance.
///
/// The first trial asks for the upper bound itself, so a forwarder that keeps up with the
/// generator is done in one step; later trials bisect. The result is the highest rate the
/// generator actually offered (measured at the generator, not the rate asked) in a passing trial:
/// a generator that falls short of the asked rate must not lend the forwarder its nominal rate.
/// Pure logic: the caller runs the trials.
public struct ZeroLossSearch: Sendable {
    /// The top of the range: at most the overload trial's offered rate, see `upperBound(overload:)`.
    public let upperPPS: Double
    public let steps: Int
    /// Loss still counted as zero loss, in percent of the frames sent.
    public let lossTolerancePercent: Double
    /// Below this rate the search stops (a trial would send too few frames to mean anything).
    public let minimumPPS: Double

    public private(set) var stepsDone = 0
    /// The passing trial with the highest offered rate so far.
    public private(set) var best: Trial?
    private var low = 0.0
    private var high: Double
    private var finished = false

    public init(upperPPS: Double, steps: Int, lossTolerancePercent: Double, minimumPPS: Double = 1000) {
        self.upperPPS = upperPPS
        self.steps = steps
        self.lossTolerancePercent = lossTolerancePercent
        self.minimumPPS = minimumPPS
        high = upperPPS
    }

    /// The search range for a case: the overload trial's offered rate, but no more than 1.1 x what
    /// it delivered (a forwarder that dropped most of a flat-out load will not pass near it, and
    /// halving from there would waste steps); when it delivered nearly everything, the offered rate.
    public static func upperBound(overload: Trial) -> Double {
        min(overload.offeredPPS, overload.deliveredPPS * 1.1)
    }

    /// The rate to ask for next, or nil when the search is over.
    public var nextRate: Double? {
        guard !finished, stepsDone < steps else { return nil }
        let rate = stepsDone == 0 ? high : (low + high) / 2
        return rate >= minimumPPS ? rate.rounded() : nil
    }

    public func passes(_ trial: Trial) -> Bool {
        trial.sent > 0 && trial.lossPercent <= lossTolerancePercent
    }

    /// Records the trial run at `nextRate`; returns whether it passed.
    @discardableResult
    public mutating func record(_ trial: Trial) -> Bool {
        let asked = trial.askedPPS ?? high
        stepsDone += 1
        guard passes(trial) else {
            high = asked
            return false
        }
        if trial.offeredPPS > (best?.offeredPPS ?? -1) { best = trial }
        if stepsDone == 1 { finished = true }  // passed at the top of the range
        low = asked
        return true
    }

    /// The zero-loss rate found (0 when no trial passed).
    public var resultPPS: Double { best?.offeredPPS ?? 0 }

    /// Whether the result is a lower bound: in the best trial the generator fell more than 2 %
    /// short of the rate asked (and the forwarder lost nothing beyond the tolerance).
    public var resultIsGeneratorLimited: Bool { best?.generatorFellShort ?? false }
}
