import ShuntBPF
import ShuntCore

/// What an engine built for a forwarder: its workers and the shared state behind them.
struct EngineParts {
    var workers: [any WorkerLoop]
    var macTable: MACLearningTable? = nil
    /// Flow mode: the tables and caches.
    var flowDatapath: FlowDatapath? = nil
    /// XDP datapath: the loaded program, its revalidator, its attachments (one per interface).
    var fastPath: FlowCacheProgram? = nil
    var revalidator: Revalidator? = nil
    var xdpAttachments: [XDPAttachment] = []
    var mirrorControl: MirrorControl? = nil
    var tunnelRuntime: TunnelRuntime? = nil
    /// Found while building: said to the user at start.
    var warnings: [String] = []
}

/// A forwarding engine: how frames choose their output. One file per engine, listed in
/// `ForwardingEngines.all` (as testpmd's `fwd_engines[]`): a new engine is a new file and a
/// line there.
protocol ForwardingEngine: Sendable {
    static var mode: ForwardingMode { get }
    /// Builds the workers of `plan` over its open ports.
    static func build(_ plan: ForwarderPlan, ports: PortSet) throws(ForwarderError) -> EngineParts
}

enum ForwardingEngines {
    static let all: [any ForwardingEngine.Type] = [CrossConnectEngine.self, LearningSwitchEngine.self, FlowTableEngine.self]

    static func engine(for mode: ForwardingMode) -> any ForwardingEngine.Type {
        guard let engine = all.first(where: { $0.mode == mode }) else { preconditionFailure("no engine for \(mode)") }
        return engine
    }
}
