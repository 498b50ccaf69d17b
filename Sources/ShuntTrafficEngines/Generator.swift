import CShunt
import ShuntRing
import ShuntRuntime
import ShuntSystem
import ShuntTraffic

// The engines of `shunt gen` (docs/design/0009, 0014, 0015): the command builds the settings
// from its flags, `Generator(settings)` finds the port and picks the engine, `run` sends until
// the count, the duration or a signal, and the command prints the report.

/// How `shunt gen` puts frames on the wire.
public enum GenEngine: String, CaseIterable, Sendable {
    /// The fastest engine this kernel allows, probed: xdp, then afxdp, then ring.
    case auto
    /// xdp_gen through BPF_PROG_TEST_RUN with live frames, in the kernel.
    case xdp
    /// An AF_XDP socket per thread.
    case afxdp
    /// A TPACKET TX ring per thread.
    case ring
    /// Frames circulating in the kernel on a veth pair of its own (docs/design/0015).
    case pump
}

/// What `shunt gen` sends, checked by the command (ranges, engine limits, threads per CPU).
public struct GeneratorSettings: Sendable {
    /// The interface to send out of.
    public var port: String
    /// The template: size, addresses and the flows.
    public var frame: TestFrameSpec
    /// Frame sizes (without FCS) sent in turn: one, or a mix such as the IMIX (ring and afxdp).
    public var sizes: [Int]
    public var engine: GenEngine
    /// The stream id of thread 0; thread i stamps `stream + i`.
    public var stream: Int
    public var threads: Int
    /// Frames to send in total (nil: no limit).
    public var count: UInt64?
    /// Seconds to send for, counted from each thread's first frame (nil: no limit).
    public var duration: Double?
    /// Frames per second in total (nil: as fast as possible).
    public var rate: Double?
    /// With a rate: a frame later than this moves the schedule up instead of being caught up.
    public var maxLagNs: UInt64
    /// Frames per XDP batch inside the kernel (the xdp engine).
    public var batchSize: UInt32

    public init(port: String, frame: TestFrameSpec, sizes: [Int]? = nil, engine: GenEngine = .auto, stream: Int = 0,
                threads: Int = 1, count: UInt64? = nil, duration: Double? = nil, rate: Double? = nil,
                maxLagNs: UInt64, batchSize: UInt32 = 64) {
        self.port = port
        self.frame = frame
        self.sizes = sizes ?? [frame.size]
        self.engine = engine
        self.stream = stream
        self.threads = threads
        self.count = count
        self.duration = duration
        self.rate = rate
        self.maxLagNs = maxLagNs
        self.batchSize = batchSize
    }

    /// The largest frame sent.
    public var largestFrame: Int { sizes.max() ?? frame.size }

    /// What thread `i` sends: its share of the count and of rate x duration, and of the rate.
    public func share(_ i: Int) -> (limit: UInt64?, rate: Double?) {
        let n = UInt64(threads)
        func split(_ total: UInt64) -> UInt64 { total / n + (UInt64(i) < total % n ? 1 : 0) }
        var limit = count.map(split)
        // Paced for a duration: the frame budget is rate x duration, so that a sender that was
        // late catches up to it rather than stopping short at the deadline.
        if let rate, let duration {
            let budget = split(UInt64((rate * duration).rounded()))
            limit = min(limit ?? budget, budget)
        }
        return (limit, rate.map { $0 / Double(threads) })
    }

    /// When a thread whose first frame went at `first` stops at the latest: the duration after
    /// it, plus, paced, the catch-up allowance (a thread still behind by then would skip anyway).
    public func deadline(first: UInt64) -> UInt64? {
        guard let duration else { return nil }
        return first + UInt64(duration * 1e9) + (rate != nil ? maxLagNs : 0)
    }

    /// xdp_gen's starting state for one thread's share: its frame limit and schedule.
    func initialGenState(_ share: (limit: UInt64?, rate: Double?)) -> shunt_gen_state {
        var state = shunt_gen_state()
        state.limit = share.limit ?? 0
        if let rate = share.rate {
            let interval = FrameInterval(rate: rate)
            state.interval_ns = interval.nanoseconds
            state.interval_frac = interval.fraction
        }
        state.max_lag_ns = maxLagNs
        return state
    }
}

/// `shunt gen`'s sender: the port, the engine chosen for it, and the run.
public struct Generator {
    /// The largest frame BPF_PROG_TEST_RUN takes with BPF_F_TEST_XDP_LIVE_FRAMES (EINVAL above):
    /// bpf_prog_test_run_xdp (net/bpf/test_run.c) allows PAGE_SIZE - XDP_PACKET_HEADROOM (256) -
    /// sizeof(struct xdp_page_head) - SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) (320 on
    /// x86-64) and "disallows live data mode for jumbo frames" above: 4096 - 256 - 112 - 320 =
    /// 3408, measured on Linux 6.18 (3408 accepted, 3409 EINVAL).
    public static let xdpLiveFrameMaximum = 3408
    /// The largest frame the afxdp engine sends: one aligned UMEM chunk (a page).
    public static let afxdpFrameMaximum = 4096
    /// Frames the pump keeps circulating: enough that a lap's latency never leaves the schedule waiting.
    public static let pumpFrames = 64

    /// Refused above (per thread): about 1.5x the measured single-CPU maximum of xdp and ring;
    /// afxdp above its copy-mode maximum (0.95 Mpps measured), for zero-copy drivers.
    public static func rateCeiling(_ engine: GenEngine) -> Double {
        switch engine {
        case .xdp, .auto, .pump: 20e6
        case .afxdp: 3e6
        case .ring: 2e6
        }
    }

    public let settings: GeneratorSettings
    public let interface: InterfaceInfo
    public let choice: EngineChoice

    /// Finds the port, checks that it is up (XDP_TX out of a down interface drops every frame
    /// without an error) and that the frames fit its MTU, and picks the engine. Failures have
    /// status 2.
    public init(_ settings: GeneratorSettings) throws(CommandFailure) {
        let info: InterfaceInfo
        do throws(RingSetupError) {
            info = try InterfaceInfo.lookup(settings.port)
            guard info.isUp else { throw RingSetupError.interfaceDown(settings.port) }
        } catch {
            throw CommandFailure(status: 2, "\(error)")
        }
        if settings.largestFrame > info.mtu + 14 {
            throw CommandFailure(status: 2, "a \(settings.largestFrame)-byte frame does not fit \(settings.port)'s MTU \(info.mtu) (at most \(info.mtu + 14) bytes)")
        }
        self.settings = settings
        interface = info
        choice = try Self.chooseEngine(settings, info)
    }

    /// Sends until the count, the duration, or the supervisor's stop (SIGINT, SIGTERM).
    public func run(_ supervisor: Supervisor) throws(CommandFailure) -> GeneratorReport {
        var choice = self.choice
        let start = Sys.monotonicNanoseconds()
        let results: [ThreadResult]
        switch choice.engine {
        case .xdp: results = try runXDP(supervisor)
        case .pump: (results, choice.pumpReinjections) = try runPump(supervisor)
        case .afxdp(let transmitters): results = try runGenerators(transmitters, supervisor)
        case .ring: results = try runRing(supervisor)
        }
        let wall = Double(Sys.monotonicNanoseconds() - start) / 1e9
        if case .afxdp(let transmitters) = choice.engine {
            choice.xskMode = transmitters.first?.mode
            choice.invalidDescriptors = transmitters.reduce(0) { $0 + $1.invalidDescriptors() }
        }
        return GeneratorReport(threads: results, choice: choice, wallSeconds: wall, flowCount: settings.frame.flows.flowCount)
    }

    /// One sending thread's outcome.
    public struct ThreadResult: Sendable {
        public var sent: UInt64 = 0
        public var firstNs: UInt64 = 0
        public var lastNs: UInt64 = 0
        public var lagSkips: UInt64 = 0
        public var skippedNs: UInt64 = 0
        public var maxLagSeenNs: UInt64 = 0
        public var ringFull: UInt64 = 0

        /// From the first frame to the last.
        public var seconds: Double { sent > 1 ? Double(lastNs - firstNs) / 1e9 : 0 }
        public var pps: Double { seconds > 0 ? Double(sent - 1) / seconds : 0 }
    }
}

/// What a run of `shunt gen` did.
public struct GeneratorReport {
    public var threads: [Generator.ThreadResult]
    /// The engine, why, and what it reported (AF_XDP mode, pump re-injections).
    public var choice: EngineChoice
    /// From the start of the run to its end, setup included.
    public var wallSeconds: Double
    public var flowCount: UInt64

    /// Frames handed to the interface, all threads.
    public var sent: UInt64 { threads.reduce(0) { $0 + $1.sent } }
    /// From the first frame of any thread to the last of any.
    public var seconds: Double {
        let sending = threads.filter { $0.sent > 0 }
        let first = sending.map(\.firstNs).min() ?? 0
        let last = sending.map(\.lastNs).max() ?? 0
        return sent > 1 ? Double(last - first) / 1e9 : 0
    }
    /// One thread: (sent - 1) / (last - first); several: the sum of each thread's rate.
    public var pps: Double { threads.count == 1 ? threads[0].pps : threads.reduce(0) { $0 + $1.pps } }
    public var lagSkips: UInt64 { threads.reduce(0) { $0 + $1.lagSkips } }
    public var skippedNs: UInt64 { threads.reduce(0) { $0 + $1.skippedNs } }
    public var maxLagSeenNs: UInt64 { threads.map(\.maxLagSeenNs).max() ?? 0 }
    public var ringFull: UInt64 { threads.reduce(0) { $0 + $1.ringFull } }
}
