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

/// What happened to a kernel cache install a worker asked for.
enum InstallOutcome {
    case installed, alreadyInstalled, overBudget, cacheFull, failed
    /// Translated under flow tables that have changed since: not installed (the revalidator
    /// would have to fix it); the packet is still forwarded.
    case stale
}

/// Counters of the XDP datapath's control side (installs, revalidation), guarded by its lock.
struct KernelPathCounters {
    var upcalls: UInt64 = 0
    var lostUpcalls: UInt64 = 0
    var cacheFull: UInt64 = 0
    var installErrors: UInt64 = 0
    var upcallNs: UInt64 = 0
    var revalidations: UInt64 = 0
    var revalidationChanges: UInt64 = 0
    var expirations: UInt64 = 0
}

/// One entry this process installed in the kernel flow cache.
struct InstalledFlow {
    var actions: [DatapathAction]
    var dropReason: DropReason?
    var ruleIDs: [UInt32]
    var usedNormal: Bool
    /// Who copies this flow's packets for the mirror sessions (the slow path, or the kernel
    /// by a broadcast over `mirrorGroup`).
    var mirror: KernelMirrorPlan = .none
    var mirrorGroup: UInt32 = 0
    /// Written into the kernel entry (`install_tag`): a counter read belongs to this
    /// installation only if the tags match (a walk outside the lock may see an older one).
    var tag: UInt16
    /// The entry's kernel counters when last read; deltas are credited to the rules.
    var seenPackets: UInt64 = 0
    var seenBytes: UInt64 = 0
}

/// The flow tables and the caches in front of them, shared by the workers, the revalidator and
/// the control socket.
///
/// Workers read the pipeline through `generation` (one atomic load per batch) and take a new
/// snapshot only when it moved; the control side edits a copy of the tables and publishes a new
/// immutable `Pipeline`, so readers never lock and a bad edit changes nothing.
public final class FlowDatapath: @unchecked Sendable {
    public let config: FlowDatapathConfig
    public let portNames: PortNames
    public let portCount: Int
    public let macTable: MACLearningTable
    public let ruleCounters: RuleCounters
    let kernel: FlowCacheProgram?
    /// The mirror sessions (Mirrors.swift).
    public let mirrors: MirrorRegistry
    /// The tunnel ports the kernel encapsulates for (bit n: port n); see KernelState.
    let kernelTunnelPorts: UInt64
    /// Ports above this are tunnel ports (see KernelState).
    let kernelPortLimit: UInt32

    struct ControlState {
        var tables: FlowTables
        var pipeline: Pipeline
        var generation: UInt64
    }

    struct KernelState {
        var installed: [FlowKey: InstalledFlow] = [:]
        var tokens: Double
        var lastRefillNs: UInt64
        var counters = KernelPathCounters()
        var nextTag: UInt16 = 1
        /// Outputs to ports above this (tunnel ports) are executed by the kernel only for the
        /// tunnels in `kernelTunnelPorts` (bit n: port n).
        var kernelPortLimit: UInt32 = .max
        var kernelTunnelPorts: UInt64 = 0
        /// The fast path's mirror groups: destination set (sorted port numbers) -> group.
        var mirrorGroups: [[UInt32]: UInt32] = [:]

        /// A kernel entry for `actions`, tagged for this installation, and its mirror group.
        mutating func entry(actions: [DatapathAction], dropReason: DropReason?,
                            mirror: KernelMirrorPlan = .none,
                            kernel: FlowCacheProgram? = nil) -> (shunt_cache_entry, UInt16, UInt32) {
            var flags: UInt32 = 0
            var group: UInt32 = 0
            var sessions: UInt64 = 0
            switch mirror {
            case .none: break
            case .userspace: flags = UInt32(SHUNT_CACHE_USERSPACE)
            case .kernel(let ports, let slots):
                if FlowCacheProgram.kernelCanExecute(actions, portLimit: kernelPortLimit, tunnelPorts: kernelTunnelPorts),
                   let kernel, let g = mirrorGroup(ports, kernel: kernel) {
                    group = g
                    sessions = slots
                } else {
                    flags = UInt32(SHUNT_CACHE_USERSPACE)
                }
            }
            var e = FlowCacheProgram.entry(actions: actions, dropReason: dropReason ?? .flowDrop, flags: flags,
                                           portLimit: kernelPortLimit, tunnelPorts: kernelTunnelPorts,
                                           mirrorGroup: group, mirrorSessions: sessions)
            let tag = nextTag
            nextTag &+= 1
            e.install_tag = tag
            return (e, tag, group)
        }

        /// The group broadcasting to `ports`, filled in the kernel if new; nil when all
        /// SHUNT_MIRROR_GROUPS are in use by installed entries (the flow stays in the slow path).
        mutating func mirrorGroup(_ ports: [UInt32], kernel: FlowCacheProgram) -> UInt32? {
            if let g = mirrorGroups[ports] { return g }
            var used = Set(mirrorGroups.values)
            if used.count >= Int(SHUNT_MIRROR_GROUPS) {
                // Forget the groups no installed entry uses any more.
                let inUse = Set(installed.values.map(\.mirrorGroup))
                mirrorGroups = mirrorGroups.filter { inUse.contains($0.value) }
                used = Set(mirrorGroups.values)
            }
            guard let g = (1...UInt32(SHUNT_MIRROR_GROUPS)).first(where: { !used.contains($0) }) else { return nil }
            do { try kernel.setMirrorGroup(g, ports: ports) } catch { return nil }
            mirrorGroups[ports] = g
            return g
        }
    }

    private let generationWord: UnsafeMutablePointer<UInt64>
    private let control: Mutex<ControlState>
    let kernelState: Mutex<KernelState>

    /// - Parameters:
    ///   - writers: rule counter rows: one per worker plus one for the revalidator.
    init(config: FlowDatapathConfig, ports: [String], tables: FlowTables, writers: Int,
         macTable: MACLearningTable, kernel: FlowCacheProgram?, kernelPortLimit: UInt32 = .max,
         kernelTunnelPorts: UInt64 = 0, underlays: Set<UInt32> = []) {
        self.config = config
        portNames = PortNames(ports, notSwitched: underlays)
        portCount = ports.count
        self.macTable = macTable
        self.kernel = kernel
        self.kernelTunnelPorts = kernelTunnelPorts
        self.kernelPortLimit = kernelPortLimit
        ruleCounters = RuleCounters(writers: writers, maxRules: config.maxFlows)
        mirrors = MirrorRegistry(portCount: ports.count)
        let pipeline = Pipeline(tables, ports: portNames)
        control = Mutex(ControlState(tables: tables, pipeline: pipeline, generation: 1))
        generationWord = .allocate(capacity: 1)
        generationWord.initialize(to: 1)
        kernelState = Mutex(KernelState(tokens: Double(config.upcallBudgetPerSecond),
                                        lastRefillNs: Sys.monotonicNanoseconds(), kernelPortLimit: kernelPortLimit,
                                        kernelTunnelPorts: kernelTunnelPorts))
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
            state.pipeline = Pipeline(tables, ports: portNames)
            state.generation &+= 1
            cshunt_store_release_u64(generationWord, state.generation)
            return result
        }
    }

    /// The rules in dump order, with their counters.
    public func dumpFlows() -> [(rule: FlowRule, packets: UInt64, bytes: UInt64)] {
        let entries = control.withLock { $0.tables.entries }
        return entries.map { entry in
            let c = ruleCounters.read(entry.id)
            return (entry.rule, c.packets, c.bytes)
        }
    }

    // MARK: The kernel cache (XDP datapath)

    /// Installs the translation of `key` in the kernel cache, within the upcall budget.
    /// `generation` and `macChanges` are the flow tables' generation and the MAC table's change
    /// count the translation used: a translation from older state is not installed, because
    /// the revalidator may already have passed.
    func offerInstall(key: FlowKey, actions: [DatapathAction], dropReason: DropReason?, ruleIDs: [UInt32],
                      usedNormal: Bool, generation: UInt64, macChanges: UInt64, translateNs: UInt64) -> InstallOutcome {
        guard let kernel else { return .failed }
        return kernelState.withLock { state in
            if state.installed[key] != nil { return .alreadyInstalled }
            if generation != self.generation || (usedNormal && macChanges != macTable.changeCount) { return .stale }
            // Read the clock under the lock: a reading taken before another worker's refill
            // would run the bucket backwards.
            let now = Sys.monotonicNanoseconds()
            let budget = Double(config.upcallBudgetPerSecond)
            let elapsed = now > state.lastRefillNs ? now - state.lastRefillNs : 0
            state.tokens = min(budget, state.tokens + Double(elapsed) * budget / 1e9)
            state.lastRefillNs = max(state.lastRefillNs, now)
            guard state.tokens >= 1 else {
                state.counters.lostUpcalls += 1
                return .overBudget
            }
            guard state.installed.count < config.cacheSize else {
                state.counters.lostUpcalls += 1
                state.counters.cacheFull += 1
                return .cacheFull
            }
            state.tokens -= 1
            let mirror = mirrors.kernelPlan(flow: key, actions: actions, portLimit: state.kernelPortLimit)
            let (entry, tag, group) = state.entry(actions: actions, dropReason: dropReason, mirror: mirror, kernel: kernel)
            do {
                try kernel.install(key: key, entry: entry)
            } catch {
                state.counters.lostUpcalls += 1
                state.counters.installErrors += 1
                return .failed
            }
            state.installed[key] = InstalledFlow(actions: actions, dropReason: dropReason, ruleIDs: ruleIDs,
                                                 usedNormal: usedNormal, mirror: mirror, mirrorGroup: group, tag: tag)
            state.counters.upcalls += 1
            state.counters.upcallNs &+= translateNs &+ (Sys.monotonicNanoseconds() &- now)
            return .installed
        }
    }

    /// The kernel cache entries, for `shunt ctl dump-cache`.
    func dumpKernelCache() -> [(key: FlowKey, entry: shunt_cache_entry)] {
        guard let kernel else { return [] }
        var out: [(FlowKey, shunt_cache_entry)] = []
        try? kernel.forEachEntry { key, entry in out.append((key, entry)) }
        return out
    }

    func kernelCounters() -> (KernelPathCounters, entries: Int) {
        kernelState.withLock { ($0.counters, $0.installed.count) }
    }
}
