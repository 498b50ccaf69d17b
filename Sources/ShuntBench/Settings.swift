/// The forwarders `shunt bench` knows, with the tool each needs and the Debian package holding it.
public struct ForwarderInfo: Sendable, Equatable {
    public var name: String
    public var summary: String
    /// Executables that must be on PATH (besides shunt and iproute2's ip).
    public var tools: [String]
    public var package: String?
    /// Mirror sessions the forwarder runs, each to its own analysis port (fwd2, fwd3) whose far
    /// end (mon0, mon1) counts the copies. Forwarders with sessions run only when named.
    public var mirrorSessions = 0
    /// An executable of this package that must be in the shunt binary's directory (SwiftPM
    /// builds it there), not on PATH.
    public var builtWithShunt: String?

    public static let all: [ForwarderInfo] = [
        .init(name: "shunt", summary: "shunt forward, xconnect, 1 worker, the defaults: TPACKET_V2 RX ring, sendmmsg TX", tools: [], package: nil),
        .init(name: "shunt-v3", summary: "shunt forward --ring-version v3 --tx ring (TPACKET_V3 RX blocks, PACKET_TX_RING: the default before issue 14)",
              tools: [], package: nil),
        .init(name: "shunt-xdp", summary: "flow tables on the XDP datapath (kernel cache hits after the first frame)", tools: [], package: nil),
        .init(name: "shunt-flows", summary: "flow tables on the afpacket datapath, 1000-flow table", tools: [], package: nil),
        .init(name: "shunt-mirror1", summary: "shunt-flows plus one SPAN session: fwd0 ingress to fwd2", tools: [], package: nil,
              mirrorSessions: 1),
        .init(name: "shunt-mirror2", summary: "shunt-flows plus two SPAN sessions: fwd0 ingress to fwd2, fwd1 egress to fwd3",
              tools: [], package: nil, mirrorSessions: 2),
        .init(name: "shunt-xdp-mirror1", summary: "shunt-xdp (without its MAC rewrite) plus one SPAN session: fwd0 ingress to fwd2",
              tools: [], package: nil, mirrorSessions: 1),
        .init(name: "shunt-xdp-mirror2",
              summary: "shunt-xdp (without its MAC rewrite) plus two SPAN sessions: fwd0 ingress to fwd2, fwd1 egress to fwd3",
              tools: [], package: nil, mirrorSessions: 2),
        .init(name: "xdp-redirect", summary: "shunt xdp-redirect: a bare XDP redirect, the kernel's ceiling on veths", tools: [], package: nil),
        .init(name: "c-tpacket", summary: "Benchmarks/tpacket-fwd: a minimal C forwarder on TPACKET_V3 RX and TX rings, busy poll (shunt's reference)",
              tools: [], package: nil, builtWithShunt: "tpacket-fwd"),
        .init(name: "c-tpacket-v2", summary: "Benchmarks/tpacket-fwd --ring v2: the same on TPACKET_V2 RX frames (the same RX ring as shunt's)",
              tools: [], package: nil, builtWithShunt: "tpacket-fwd"),
        .init(name: "bridge", summary: "Linux bridge, netfilter off, RPS to the forwarder CPU", tools: ["ip"], package: "iproute2"),
        .init(name: "tc-mirred", summary: "tc ingress qdisc, a match-everything u32 filter, mirred egress redirect fwd0->fwd1", tools: ["tc"], package: "iproute2"),
        .init(name: "testpmd", summary: "dpdk-testpmd io mode over net_af_packet, 1 forwarding lcore", tools: ["dpdk-testpmd"], package: "dpdk-dev"),
        .init(name: "ovs", summary: "Open vSwitch userspace datapath (netdev), system ports, private instance",
              tools: ["ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl"], package: "openvswitch-switch"),
    ]

    /// What runs without --forwarders: every forwarder but the mirror ones, which measure what
    /// mirroring costs shunt and are run when named.
    public static var defaultSet: [ForwarderInfo] { all.filter { $0.mirrorSessions == 0 } }

    /// `NAME@base`: a shunt forwarder run with the `--baseline` binary, for a before/after
    /// measured side by side in one run.
    public static let baselineSuffix = "@base"

    public static func named(_ name: String) -> ForwarderInfo? {
        guard name.hasSuffix(baselineSuffix) else { return all.first { $0.name == name } }
        let kind = String(name.dropLast(baselineSuffix.count))
        guard var info = all.first(where: { $0.name == kind }), info.runsShunt else { return nil }
        info.name = name
        info.summary += " (the --baseline binary)"
        return info
    }

    /// Whether the forwarder is a shunt process (and so can run another shunt binary).
    public var runsShunt: Bool { name.hasPrefix("shunt") || name == "xdp-redirect" }
    /// Whether it runs the `--baseline` binary.
    public var isBaseline: Bool { name.hasSuffix(Self.baselineSuffix) }
    /// The name without `@base`.
    public var kind: String { isBaseline ? String(name.dropLast(Self.baselineSuffix.count)) : name }
}

/// The run's settings, checked before anything is created.
public struct BenchSettings: Sendable, Equatable {
    public var forwarders: [String]?  // nil: every available one of ForwarderInfo.defaultSet
    public var frameSizes: [Int] = [64, 1518]
    public var flows: [Int] = [1, 1024]
    public var repeats = 3
    public var trialSeconds = 2.0
    public var searchSteps = 7
    public var lossTolerancePercent = 0.0
    public var latencyFractions: [Double] = [0.1, 0.5, 0.9]
    /// Latency trials at these fixed rates (pps) as well, the same for every forwarder: a
    /// latency comparison that does not depend on each one's zero-loss rate.
    public var latencyRates: [Double] = []
    /// `shunt gen --engine` for every trial (auto: the fastest the kernel allows).
    public var generatorEngine = "auto"
    /// The shunt binary `NAME@base` forwarders run.
    public var baseline: String?
    public static let generatorEngines = ["auto", "xdp", "afxdp", "ring", "pump"]

    /// Frame sizes on the wire: `shunt gen` builds 60...1514 bytes without FCS.
    public static let frameSizeRange = 64...1518
    public static let flowRange = 1...64511

    public init() {}

    /// The first problem, as the text after "shunt bench: ", or nil.
    public func problem() -> String? {
        if let forwarders {
            if forwarders.isEmpty { return "--forwarders is empty" }
            for f in forwarders where ForwarderInfo.named(f) == nil {
                return "unknown forwarder \"\(f)\" (known: \(ForwarderInfo.all.map(\.name).joined(separator: ", ")); "
                    + "a shunt one with \(ForwarderInfo.baselineSuffix) runs the --baseline binary)"
            }
            if Set(forwarders).count != forwarders.count { return "--forwarders names a forwarder twice" }
            if baseline == nil, let f = forwarders.first(where: { $0.hasSuffix(ForwarderInfo.baselineSuffix) }) {
                return "\(f) runs the --baseline binary: give --baseline PATH"
            }
        }
        if frameSizes.isEmpty { return "--sizes is empty" }
        for s in frameSizes where !Self.frameSizeRange.contains(s) {
            return "frame size \(s) is outside \(Self.frameSizeRange.lowerBound)...\(Self.frameSizeRange.upperBound) "
                + "(bytes on the wire with FCS; shunt gen sends 60 to 1514 bytes)"
        }
        if flows.isEmpty { return "--flows is empty" }
        for n in flows where !Self.flowRange.contains(n) {
            return "flow count \(n) is outside \(Self.flowRange.lowerBound)...\(Self.flowRange.upperBound)"
        }
        if repeats < 1 { return "--repeats must be at least 1" }
        if !(trialSeconds > 0) || !trialSeconds.isFinite { return "--trial-seconds must be more than 0" }
        if trialSeconds > 3600 { return "--trial-seconds must be at most 3600" }
        if searchSteps < 1 || searchSteps > 30 { return "--search-steps must be between 1 and 30" }
        if !(lossTolerancePercent >= 0 && lossTolerancePercent < 100) { return "--loss-tolerance must be at least 0 and below 100 (percent)" }
        if !Self.generatorEngines.contains(generatorEngine) {
            return "--generator-engine must be one of \(Self.generatorEngines.joined(separator: ", ")), not \(generatorEngine)"
        }
        for f in latencyFractions where !(f > 0 && f <= 1) {
            return "latency fraction \(f) is outside (0, 1] (a fraction of the zero-loss rate)"
        }
        for r in latencyRates where !(r >= 1000 && r <= 100_000_000) {
            return "latency rate \(r) is outside 1000...100000000 pps"
        }
        return nil
    }
}
