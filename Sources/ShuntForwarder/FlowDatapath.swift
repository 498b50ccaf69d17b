import CShunt
import ShuntBPF
import ShuntCore
import ShuntPipeline
import ShuntSystem
import Synchronization

/// Which datapath runs the flow tables.
public enum DatapathKind: String, CaseIterable, Sendable {
    /// Pure userspace: the Swift workers run every packet, with a per-worker exact-match cache.
    case afpacket
    /// The XDP fast path executes cached flows in the kernel; misses come up to the Swift
    /// workers (the slow path), which forward them and install the cache entry.
    case xdp
}

public struct FlowDatapathConfig: Sendable {
    public var kind: DatapathKind = .afpacket
    /// Most OpenFlow rules over all tables.
    public var maxFlows = 65536
    /// Most entries in the kernel flow cache (XDP datapath).
    public var cacheSize = 65536
    /// Entries of each worker's exact-match cache.
    public var exactMatchCacheSize = 8192
    /// Kernel cache installs per second; misses beyond it are forwarded by the slow path
    /// without an install and counted as lost upcalls.
    public var upcallBudgetPerSecond = 50_000
    /// A kernel cache entry unused this long is removed.
    public var idleTimeoutMs: UInt64 = 10_000

    public init() {}
}

/// A flow change that was refused; nothing was applied.
public struct FlowEditError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The flow tables and the caches in front of them, shared by the workers, the revalidator and
/// the control socket.
///
/// Workers read the pipeline through `generation` (one atomic load per batch) and take a new
/// snapshot only when it moved; the control side edits a copy of the tables and publishes a new
/// immutable `Pipeline`, so readers never lock and a bad edit changes nothing.
public final class FlowDatapath: @unchecked Sendable {
    public let config: FlowDatapathConfig
    /// The datapath's ports: interfaces, then tunnels.
    public let portNames: PortNames
    public let portCount: Int
    /// The bridges over those ports.
    public let layout: SwitchLayout
    public let macTable: MACLearningTable
    public let ruleCounters: RuleCounters
    /// The kernel flow cache (XDP datapath); nil on the afpacket datapath.
    let kernel: KernelDatapath?
    /// The mirror sessions (Mirrors.swift).
    public let mirrors: MirrorRegistry

    struct ControlState {
        var tables: FlowTables
        var pipeline: Pipeline
        var generation: UInt64
        /// Datapath ports whose link is down (groups' watch ports, bonds).
        var downPorts: Set<UInt32> = []
    }

    private let generationWord: UnsafeMutablePointer<UInt64>
    private let control: Mutex<ControlState>

    /// - Parameters:
    ///   - writers: rule counter rows: one per worker plus one for the revalidator (the last,
    ///     which the kernel datapath credits).
    ///   - kernel: the XDP flow cache program, on the XDP datapath.
    ///   - kernelPortLimit: ports above this are tunnel ports; the kernel outputs to those in
    ///     `kernelTunnelPorts` (bit n: port n) only.
    init(config: FlowDatapathConfig, ports: [String], tables: FlowTables, writers: Int,
         macTable: MACLearningTable, kernel: (any FlowCacheMap)?, kernelPortLimit: UInt32 = .max,
         kernelTunnelPorts: UInt64 = 0, underlays: Set<UInt32> = [], layout: SwitchLayout? = nil) {
        self.config = config
        portNames = PortNames(ports, notSwitched: underlays)
        self.layout = layout ?? .single(portNames)
        portCount = ports.count
        self.macTable = macTable
        let ruleCounters = RuleCounters(writers: writers, maxRules: config.maxFlows)
        self.ruleCounters = ruleCounters
        let mirrors = MirrorRegistry(portCount: ports.count)
        self.mirrors = mirrors
        self.kernel = kernel.map {
            KernelDatapath(map: $0, mirrors: mirrors, ruleCounters: ruleCounters, counterRow: writers - 1, config: config,
                           portLimit: kernelPortLimit, tunnelPorts: kernelTunnelPorts)
        }
        let pipeline = Pipeline(tables, layout: self.layout)
        control = Mutex(ControlState(tables: tables, pipeline: pipeline, generation: 1))
        generationWord = .allocate(capacity: 1)
        generationWord.initialize(to: 1)
    }

    deinit { generationWord.deallocate() }

    /// Moves whenever the flow tables change.
    @inline(__always) public var generation: UInt64 { cshunt_load_acquire_u64(generationWord) }

    /// The current pipeline and its generation.
    public func currentPipeline() -> (pipeline: Pipeline, generation: UInt64) {
        control.withLock { ($0.pipeline, $0.generation) }
    }

    /// Applies `edit` to a copy of the tables; if it throws nothing changes, otherwise the new
    /// tables are published at once (workers and the revalidator pick them up). `edit` returns
    /// the ids of the rules it added or replaced: their counters start from zero.
    public func editFlows<R>(
        _ edit: (inout FlowTables) throws(FlowEditError) -> (result: R, added: [UInt32])
    ) throws(FlowEditError) -> R {
        try control.withLock { (state) throws(FlowEditError) -> R in
            var tables = state.tables
            let (result, added) = try edit(&tables)
            for id in added { ruleCounters.reset(id) }
            state.tables = tables
            publish(&state)
            return result
        }
    }

    private func publish(_ state: inout ControlState) {
        state.pipeline = Pipeline(state.tables, layout: layout, downPorts: state.downPorts)
        state.generation &+= 1
        cshunt_store_release_u64(generationWord, state.generation)
    }

    /// Records which datapath ports are down; a change re-translates everything (buckets that
    /// watch a port choose again), as a flow edit does.
    public func setDownPorts(_ down: Set<UInt32>) {
        control.withLock { state in
            guard state.downPorts != down else { return }
            state.downPorts = down
            publish(&state)
        }
    }

    /// The groups of `bridge` by id, with their counters (group first, then per bucket).
    public func dumpGroups(bridge: Int = 0) -> [(group: FlowGroup, counters: [(packets: UInt64, bytes: UInt64)])] {
        let groups = control.withLock { $0.tables.groups }.filter { Int($0.group.bridge) == bridge }
        return groups.map { entry in
            (entry.group, entry.counterIDs.map { id in
                let c = ruleCounters.read(id)
                return (c.packets, c.bytes)
            })
        }
    }

    /// The rules of `bridge` in dump order, with their counters.
    public func dumpFlows(bridge: Int = 0) -> [(rule: FlowRule, packets: UInt64, bytes: UInt64)] {
        let entries = control.withLock { $0.tables.entries }.filter { Int($0.rule.bridge) == bridge }
        return entries.map { entry in
            let c = ruleCounters.read(entry.id)
            return (entry.rule, c.packets, c.bytes)
        }
    }

    // MARK: The kernel cache (XDP datapath)

    /// The state translations are made from now.
    var basis: TranslationBasis {
        TranslationBasis(flows: generation, macChanges: macTable.changeCount, mirrors: mirrors.generation)
    }

    /// Installs `plan` in the kernel cache, unless the state it was translated from has moved
    /// on (the revalidator may already have passed) or the budget or the cache is exhausted.
    func install(_ plan: InstallPlan, translateNs: UInt64) -> InstallOutcome {
        guard let kernel else { return .failed }
        return kernel.install(plan, translateNs: translateNs) {
            let now = basis
            return plan.basis.flows == now.flows && plan.basis.mirrors == now.mirrors
                && (!plan.translation.usedNormal || plan.basis.macChanges == now.macChanges)
        }
    }
}
