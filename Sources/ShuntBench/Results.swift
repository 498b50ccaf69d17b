import Foundation

/// Latency quantiles of one trial as `shunt sink` reports them (`latency_us`), in microseconds.
/// With the XDP sink these are histogram bucket lower bounds (1 us buckets below 4096 us).
public struct LatencyQuantiles: Codable, Equatable, Sendable {
    public var min: Double?
    public var p50: Double?
    public var p90: Double?
    public var p99: Double?
    public var p999: Double?
    public var max: Double?
    public var samples: UInt64

    public init(min: Double?, p50: Double?, p90: Double?, p99: Double?, p999: Double?, max: Double?, samples: UInt64) {
        self.min = min
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.p999 = p999
        self.max = max
        self.samples = samples
    }

    /// The (fraction, microseconds) points of the empirical CDF these quantiles pin down: min at
    /// 0, p50 at 0.5, ..., max at 1. Quantiles the sink did not report are left out.
    public var cdfPoints: [(fraction: Double, microseconds: Double)] {
        let pairs: [(Double, Double?)] = [(0, min), (0.5, p50), (0.9, p90), (0.99, p99), (0.999, p999), (1, max)]
        return pairs.compactMap { f, v in v.map { (f, $0) } }
    }
}

/// Frames the veths dropped during a trial (their TX `dropped` counters): where a loss happened.
/// gen0 -> fwd0 drops mean fwd0's receive ring (veth NAPI, 256 frames) was full: the forwarder's
/// receive side did not keep up (for XDP forwarders, its NAPI thread did not run in time).
/// fwd1 -> sink0 drops mean the forwarder sent faster than sink0's ring took.
public struct VethDrops: Codable, Equatable, Sendable {
    public var intoForwarder: UInt64
    public var outOfForwarder: UInt64
    public init(intoForwarder: UInt64, outOfForwarder: UInt64) {
        self.intoForwarder = intoForwarder
        self.outOfForwarder = outOfForwarder
    }
    enum CodingKeys: String, CodingKey { case intoForwarder = "gen0_to_fwd0", outOfForwarder = "fwd1_to_sink0" }
}

/// One trial: `shunt gen` into the forwarder, `shunt sink` behind it, both final reports reduced
/// to what the bench uses. Every number here was measured in the trial.
public struct Trial: Codable, Equatable, Sendable {
    /// nil for an overload trial (the generator flat out).
    public var askedPPS: Double?
    /// Frames the generator sent, and probes the sink counted.
    public var sent: UInt64
    public var received: UInt64
    /// The generator's rate, first frame to last (its `pps`).
    public var offeredPPS: Double
    /// The generator's sending time (its `duration_s`).
    public var generatorSeconds: Double
    public var latencyUs: LatencyQuantiles?
    /// Where frames were dropped at the veths; nil when the counters could not be read.
    public var vethDrops: VethDrops?
    /// Mirror forwarders only (nil, and absent from the JSON, for the others): probes counted at
    /// the monitor ports (the far ends of the analysis ports), summed over the sessions' ports.
    public var mirrorReceived: UInt64?
    /// Mirror forwarders only, from `shunt ctl mirror list` before and after the trial, summed
    /// over the sessions: copies made (`mirrored`), of those made by the XDP fast path
    /// (`fast_path_mirrored`; nil on the afpacket datapath), and copies dropped (`dropped`).
    /// nil when the forwarder could not be asked.
    public var mirrorCopied: UInt64?
    public var mirrorFastPath: UInt64?
    public var mirrorDropped: UInt64?
    /// The engine `shunt gen` ran (its JSON "engine"); nil in results of older runs.
    public var generatorEngine: String?

    public init(askedPPS: Double?, sent: UInt64, received: UInt64, offeredPPS: Double, generatorSeconds: Double,
                latencyUs: LatencyQuantiles? = nil, vethDrops: VethDrops? = nil, mirrorReceived: UInt64? = nil,
                mirrorCopied: UInt64? = nil, mirrorFastPath: UInt64? = nil, mirrorDropped: UInt64? = nil,
                generatorEngine: String? = nil) {
        self.generatorEngine = generatorEngine
        self.askedPPS = askedPPS
        self.sent = sent
        self.received = received
        self.offeredPPS = offeredPPS
        self.generatorSeconds = generatorSeconds
        self.latencyUs = latencyUs
        self.vethDrops = vethDrops
        self.mirrorReceived = mirrorReceived
        self.mirrorCopied = mirrorCopied
        self.mirrorFastPath = mirrorFastPath
        self.mirrorDropped = mirrorDropped
    }

    public var lost: UInt64 { sent > received ? sent - received : 0 }
    public var lossPercent: Double { sent > 0 ? Double(lost) * 100 / Double(sent) : 0 }
    /// Frames at the sink over the generator's sending time.
    public var deliveredPPS: Double { generatorSeconds > 0 ? Double(received) / generatorSeconds : 0 }
    /// A paced trial whose generator fell more than 2 % short of the rate asked.
    public var generatorFellShort: Bool { askedPPS.map { offeredPPS < $0 * 0.98 } ?? false }
    /// An overload trial whose generator offered less than 1.1x what the forwarder delivered:
    /// the forwarder was not saturated, so the delivered rate is a lower bound of its capacity.
    public var overloadIsGeneratorLimited: Bool { askedPPS == nil && sent > 0 && offeredPPS < 1.1 * deliveredPPS }
    /// Copies at the monitor ports per probe at the sink: N for N sessions when the mirror kept
    /// up; below N when copies were lost; above N when frames were copied on the way in and then
    /// lost on the way out. nil without mirror counts or with nothing delivered.
    public var mirrorCopiesPerDelivered: Double? {
        guard let mirrorReceived, received > 0 else { return nil }
        return Double(mirrorReceived) / Double(received)
    }
    /// The share of the forwarder's copies that the XDP fast path made (nil on afpacket, or with no copies).
    public var mirrorFastPathShare: Double? {
        guard let mirrorFastPath, let mirrorCopied, mirrorCopied > 0 else { return nil }
        return Double(mirrorFastPath) / Double(mirrorCopied)
    }

    enum CodingKeys: String, CodingKey {
        case askedPPS = "asked_pps", sent, received, offeredPPS = "offered_pps", generatorSeconds = "generator_s"
        case latencyUs = "latency_us", lost, lossPercent = "loss_pct", deliveredPPS = "delivered_pps"
        case generatorFellShort = "generator_fell_short", vethDrops = "veth_drops"
        case mirrorReceived = "mirror_received", mirrorCopied = "mirror_copied", mirrorFastPath = "mirror_fast_path"
        case mirrorDropped = "mirror_dropped", generatorEngine = "generator_engine"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        askedPPS = try c.decodeIfPresent(Double.self, forKey: .askedPPS)
        sent = try c.decode(UInt64.self, forKey: .sent)
        received = try c.decode(UInt64.self, forKey: .received)
        offeredPPS = try c.decode(Double.self, forKey: .offeredPPS)
        generatorSeconds = try c.decode(Double.self, forKey: .generatorSeconds)
        latencyUs = try c.decodeIfPresent(LatencyQuantiles.self, forKey: .latencyUs)
        vethDrops = try c.decodeIfPresent(VethDrops.self, forKey: .vethDrops)
        mirrorReceived = try c.decodeIfPresent(UInt64.self, forKey: .mirrorReceived)
        mirrorCopied = try c.decodeIfPresent(UInt64.self, forKey: .mirrorCopied)
        mirrorFastPath = try c.decodeIfPresent(UInt64.self, forKey: .mirrorFastPath)
        mirrorDropped = try c.decodeIfPresent(UInt64.self, forKey: .mirrorDropped)
        generatorEngine = try c.decodeIfPresent(String.self, forKey: .generatorEngine)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(askedPPS, forKey: .askedPPS)
        try c.encode(sent, forKey: .sent)
        try c.encode(received, forKey: .received)
        try c.encode(lost, forKey: .lost)
        try c.encode(lossPercent, forKey: .lossPercent)
        try c.encode(offeredPPS, forKey: .offeredPPS)
        try c.encode(deliveredPPS, forKey: .deliveredPPS)
        try c.encode(generatorSeconds, forKey: .generatorSeconds)
        try c.encode(generatorFellShort, forKey: .generatorFellShort)
        try c.encode(latencyUs, forKey: .latencyUs)
        try c.encode(vethDrops, forKey: .vethDrops)
        // Only mirror forwarders have these: absent otherwise, so other trials read as before.
        try c.encodeIfPresent(mirrorReceived, forKey: .mirrorReceived)
        try c.encodeIfPresent(mirrorCopied, forKey: .mirrorCopied)
        try c.encodeIfPresent(mirrorFastPath, forKey: .mirrorFastPath)
        try c.encodeIfPresent(mirrorDropped, forKey: .mirrorDropped)
        try c.encodeIfPresent(generatorEngine, forKey: .generatorEngine)
    }
}

/// What is measured for one forwarder, frame size and flow count.
public struct BenchCase: Codable, Hashable, Sendable {
    public var forwarder: String
    /// Frame size on the wire, with FCS (the generator is given 4 bytes less).
    public var frameSize: Int
    public var flows: Int

    public init(forwarder: String, frameSize: Int, flows: Int) {
        self.forwarder = forwarder
        self.frameSize = frameSize
        self.flows = flows
    }

    enum CodingKeys: String, CodingKey { case forwarder, frameSize = "frame_size", flows }
}

/// A latency trial at a fraction of the zero-loss rate found in the same repeat, or (with
/// `ratePPS`, `fraction` 0) at a fixed rate (`--latency-rates`).
public struct LatencyRun: Codable, Equatable, Sendable {
    public var fraction: Double
    public var ratePPS: Double?
    public var trial: Trial
    public init(fraction: Double, trial: Trial) {
        self.fraction = fraction
        self.trial = trial
    }

    public init(ratePPS: Double, trial: Trial) {
        fraction = 0
        self.ratePPS = ratePPS
        self.trial = trial
    }

    enum CodingKeys: String, CodingKey { case fraction, ratePPS = "rate_pps", trial }
}

/// One repeat of one case: the overload trial, the search's trials, the latency trials.
public struct CaseRun: Codable, Equatable, Sendable {
    public var repeatIndex: Int
    public var overload: Trial
    public var search: [Trial]
    public var zeroLossPPS: Double
    public var zeroLossGeneratorLimited: Bool
    public var latency: [LatencyRun]

    public init(repeatIndex: Int, overload: Trial, search: [Trial], zeroLossPPS: Double, zeroLossGeneratorLimited: Bool,
                latency: [LatencyRun]) {
        self.repeatIndex = repeatIndex
        self.overload = overload
        self.search = search
        self.zeroLossPPS = zeroLossPPS
        self.zeroLossGeneratorLimited = zeroLossGeneratorLimited
        self.latency = latency
    }

    enum CodingKeys: String, CodingKey {
        case repeatIndex = "repeat", overload, search = "zero_loss_trials", zeroLossPPS = "zero_loss_pps"
        case zeroLossGeneratorLimited = "zero_loss_generator_limited", latency
    }
}

/// Latency at one fraction of the zero-loss rate (or at a fixed rate), over the repeats.
public struct LatencySummary: Codable, Equatable, Sendable {
    public var fraction: Double
    /// Fixed-rate trials (`--latency-rates`): the rate asked; `fraction` is 0.
    public var ratePPS: Double?
    public var offeredPPS: Spread?
    public var lossPercent: Spread?
    public var p50Us: Spread?
    public var p90Us: Spread?
    public var p99Us: Spread?
    public var p999Us: Spread?
    public var maxUs: Spread?
    /// The trial with the median p99, whose quantiles the CDF chart draws.
    public var medianTrial: LatencyQuantiles?

    enum CodingKeys: String, CodingKey {
        case fraction, ratePPS = "rate_pps", offeredPPS = "offered_pps", lossPercent = "loss_pct", p50Us = "p50_us", p90Us = "p90_us"
        case p99Us = "p99_us", p999Us = "p999_us", maxUs = "max_us", medianTrial = "median_trial_latency_us"
    }
}

/// One case over all its repeats: medians with min and max.
public struct CaseSummary: Codable, Equatable, Sendable {
    public var benchCase: BenchCase
    public var repeats: Int
    public var overloadDeliveredPPS: Spread?
    public var overloadOfferedPPS: Spread?
    /// Repeats whose overload trial lost under 1 % (the delivered rate is a lower bound).
    public var overloadGeneratorLimited: Int
    public var zeroLossPPS: Spread?
    /// Repeats whose zero-loss result came from a trial where the generator fell short.
    public var zeroLossGeneratorLimited: Int
    public var latency: [LatencySummary]
    /// Mirror forwarders only: copies at the monitor ports per frame delivered in the overload
    /// trials (N for N sessions when the mirror kept up), and the share of the forwarder's copies
    /// the XDP fast path made (absent on afpacket).
    public var overloadMirrorCopiesPerDelivered: Spread?
    public var overloadMirrorFastPathShare: Spread?

    enum CodingKeys: String, CodingKey {
        case benchCase = "case", repeats, overloadDeliveredPPS = "overload_delivered_pps"
        case overloadOfferedPPS = "overload_offered_pps", overloadGeneratorLimited = "overload_generator_limited_repeats"
        case zeroLossPPS = "zero_loss_pps", zeroLossGeneratorLimited = "zero_loss_generator_limited_repeats", latency
        case overloadMirrorCopiesPerDelivered = "overload_mirror_copies_per_delivered"
        case overloadMirrorFastPathShare = "overload_mirror_fast_path_share"
    }

    public init(benchCase: BenchCase, runs: [CaseRun], fractions: [Double], rates: [Double] = []) {
        self.benchCase = benchCase
        repeats = runs.count
        overloadDeliveredPPS = Spread(runs.map(\.overload.deliveredPPS))
        overloadOfferedPPS = Spread(runs.map(\.overload.offeredPPS))
        overloadGeneratorLimited = runs.filter(\.overload.overloadIsGeneratorLimited).count
        zeroLossPPS = Spread(runs.map(\.zeroLossPPS))
        zeroLossGeneratorLimited = runs.filter(\.zeroLossGeneratorLimited).count
        overloadMirrorCopiesPerDelivered = Spread(runs.compactMap(\.overload.mirrorCopiesPerDelivered))
        overloadMirrorFastPathShare = Spread(runs.compactMap(\.overload.mirrorFastPathShare))
        func summary(_ trials: [Trial], fraction: Double, ratePPS: Double?) -> LatencySummary {
            func spread(_ key: KeyPath<LatencyQuantiles, Double?>) -> Spread? {
                Spread(trials.compactMap { $0.latencyUs?[keyPath: key] })
            }
            let byP99 = trials.compactMap(\.latencyUs).filter { $0.p99 != nil }.sorted { $0.p99! < $1.p99! }
            return LatencySummary(
                fraction: fraction, ratePPS: ratePPS, offeredPPS: Spread(trials.map(\.offeredPPS)),
                lossPercent: Spread(trials.map(\.lossPercent)),
                p50Us: spread(\.p50), p90Us: spread(\.p90), p99Us: spread(\.p99), p999Us: spread(\.p999), maxUs: spread(\.max),
                medianTrial: byP99.isEmpty ? nil : byP99[(byP99.count - 1) / 2])
        }
        latency = fractions.map { fraction in
            summary(runs.compactMap { $0.latency.first(where: { $0.ratePPS == nil && $0.fraction == fraction })?.trial },
                    fraction: fraction, ratePPS: nil)
        } + rates.map { rate in
            summary(runs.compactMap { $0.latency.first(where: { $0.ratePPS == rate })?.trial }, fraction: 0, ratePPS: rate)
        }
    }
}

/// Where and how the run was made.
public struct Manifest: Codable, Equatable, Sendable {
    public var date: String
    public var kernel: String
    public var cpuModel: String
    public var cpus: Int
    public var generatorCPU: Int
    public var forwarderCPU: Int
    public var settings: [String: String]
    /// Tool name to version text (or "not installed").
    public var tools: [String: String]
    public var shuntBinary: String
    public var shuntReleaseBuild: Bool?
    public var shuntGitCommit: String?
    public var shuntGitDirty: Bool?
    public var wallSeconds: Double
    /// The generator engine and its ceiling measured at the start of the run (nil: not measured).
    public var generator: GeneratorCalibration?

    public init(date: String, kernel: String, cpuModel: String, cpus: Int, generatorCPU: Int, forwarderCPU: Int,
                settings: [String: String], tools: [String: String], shuntBinary: String, shuntReleaseBuild: Bool?,
                shuntGitCommit: String?, shuntGitDirty: Bool?, wallSeconds: Double) {
        self.date = date
        self.kernel = kernel
        self.cpuModel = cpuModel
        self.cpus = cpus
        self.generatorCPU = generatorCPU
        self.forwarderCPU = forwarderCPU
        self.settings = settings
        self.tools = tools
        self.shuntBinary = shuntBinary
        self.shuntReleaseBuild = shuntReleaseBuild
        self.shuntGitCommit = shuntGitCommit
        self.shuntGitDirty = shuntGitDirty
        self.wallSeconds = wallSeconds
    }

    enum CodingKeys: String, CodingKey {
        case date, kernel, cpuModel = "cpu_model", cpus, generatorCPU = "generator_cpu", forwarderCPU = "forwarder_cpu"
        case settings, tools, shuntBinary = "shunt_binary", shuntReleaseBuild = "shunt_release_build"
        case shuntGitCommit = "shunt_git_commit", shuntGitDirty = "shunt_git_dirty", wallSeconds = "wall_s"
        case generator
    }
}

/// What the generator can offer in this run: `shunt gen` (engine auto) flat out for one trial (2 s
/// at most) of 64-byte frames into a sink on the forwarder's input port, with no forwarder. Its rate is
/// the ceiling of every overload trial: a forwarder that delivers close to it is measured by
/// the generator, not the other way round.
public struct GeneratorCalibration: Codable, Equatable, Sendable {
    public var engine: String
    /// Why auto took that engine (the generator's "engine_choice").
    public var choice: String
    /// Frames per second the generator sent, and those the sink counted per second of sending.
    public var ceilingPPS: Double
    public var deliveredPPS: Double

    public init(engine: String, choice: String, ceilingPPS: Double, deliveredPPS: Double) {
        self.engine = engine
        self.choice = choice
        self.ceilingPPS = ceilingPPS
        self.deliveredPPS = deliveredPPS
    }

    enum CodingKeys: String, CodingKey {
        case engine, choice, ceilingPPS = "ceiling_pps", deliveredPPS = "delivered_pps"
    }
}

/// A forwarder the run left out, and why.
public struct SkippedForwarder: Codable, Equatable, Sendable {
    public var forwarder: String
    public var reason: String
    public init(forwarder: String, reason: String) {
        self.forwarder = forwarder
        self.reason = reason
    }
}

/// Everything `shunt bench` writes to results.json.
public struct BenchResults: Codable, Equatable, Sendable {
    public static let schema = "shunt-bench/1"
    public var schema: String = Self.schema
    public var manifest: Manifest
    public var forwarders: [String]
    public var frameSizes: [Int]
    public var flows: [Int]
    public var latencyFractions: [Double]
    /// Fixed rates of latency trials (`--latency-rates`), pps.
    public var latencyRates: [Double]
    public var skipped: [SkippedForwarder]
    public var summary: [CaseSummary]
    public var runs: [CaseRecord]
    /// Set when the run was interrupted: the results hold what was measured before.
    public var incomplete: Bool

    public struct CaseRecord: Codable, Equatable, Sendable {
        public var benchCase: BenchCase
        public var runs: [CaseRun]
        enum CodingKeys: String, CodingKey { case benchCase = "case", runs }
    }

    enum CodingKeys: String, CodingKey {
        case schema, manifest, forwarders, frameSizes = "frame_sizes", flows, latencyFractions = "latency_fractions"
        case latencyRates = "latency_rates_pps", skipped, summary, runs, incomplete
    }

    /// Builds the summary from the runs, in forwarder, size, flows order.
    public init(manifest: Manifest, forwarders: [String], frameSizes: [Int], flows: [Int], latencyFractions: [Double],
                latencyRates: [Double] = [], skipped: [SkippedForwarder], runs: [BenchCase: [CaseRun]], incomplete: Bool) {
        self.manifest = manifest
        self.forwarders = forwarders
        self.frameSizes = frameSizes
        self.flows = flows
        self.latencyFractions = latencyFractions
        self.latencyRates = latencyRates
        self.skipped = skipped
        self.incomplete = incomplete
        var records: [CaseRecord] = []
        for f in forwarders {
            for s in frameSizes {
                for n in flows {
                    let c = BenchCase(forwarder: f, frameSize: s, flows: n)
                    if let r = runs[c], !r.isEmpty { records.append(CaseRecord(benchCase: c, runs: r)) }
                }
            }
        }
        self.runs = records
        summary = records.map { CaseSummary(benchCase: $0.benchCase, runs: $0.runs, fractions: latencyFractions, rates: latencyRates) }
    }

    /// Pretty-printed with sorted keys, so that two runs diff line by line.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}
