import CShunt
import ShuntBPF
import ShuntCore
import ShuntPipeline
import ShuntSystem
import Synchronization

/// The state a translation was made from. An install from older state is refused as stale:
/// the revalidator may already have passed over the change.
struct TranslationBasis: Equatable, Sendable {
    /// The flow tables' generation.
    var flows: UInt64
    /// The MAC table's change count (matters only to translations that used NORMAL).
    var macChanges: UInt64
    /// The mirror sessions' generation.
    var mirrors: UInt64
}

/// One translation as the kernel cache would run it. Built only by `KernelDatapath.plan`, so
/// the worker's cache flags, the kernel entry and the revalidator's comparison all come from
/// one decision.
struct InstallPlan: Sendable {
    let key: FlowKey
    let translation: Translation
    let mirror: KernelMirrorPlan
    /// The kernel forwards the flow's packets itself; otherwise its entry sends them up
    /// (SHUNT_CACHE_USERSPACE) and the slow path executes them.
    let kernelExecutes: Bool
    let basis: TranslationBasis
}

/// What happened to a kernel cache install a worker asked for.
enum InstallOutcome: Equatable {
    case installed, alreadyInstalled, overBudget, cacheFull, failed
    /// Translated from state that has changed since: not installed; the packet is still
    /// forwarded by the slow path.
    case stale
}

/// Counters of the kernel datapath's control side, guarded by its lock.
struct KernelPathCounters: Equatable {
    var upcalls: UInt64 = 0
    var lostUpcalls: UInt64 = 0
    var cacheFull: UInt64 = 0
    var installErrors: UInt64 = 0
    var upcallNs: UInt64 = 0
    var revalidations: UInt64 = 0
    var revalidationChanges: UInt64 = 0
    var expirations: UInt64 = 0
    /// Lookups, removals and walks of the map that failed with anything but "no such entry":
    /// the entry's bookkeeping is kept and the step is tried again on the next pass.
    var mapErrors: UInt64 = 0
}

/// One entry this process installed in the kernel flow cache.
struct InstalledFlow {
    var translation: Translation
    var mirror: KernelMirrorPlan
    var mirrorGroup: UInt32
    /// Written into the kernel entry (`install_tag`): a counter read belongs to this
    /// installation only if the tags match (a walk outside the lock may see an older one).
    var tag: UInt16
    /// The entry's kernel counters when last read; deltas are credited to the rules.
    var seenPackets: UInt64 = 0
    var seenBytes: UInt64 = 0

    var usedNormal: Bool { translation.usedNormal }

    /// Whether `plan` gives this entry: same actions, drop reason, rules, NORMAL use (an entry
    /// that now goes through NORMAL must follow the MAC table from now on) and mirror copies.
    func matches(_ plan: InstallPlan) -> Bool {
        let t = plan.translation
        return t.actions == translation.actions && t.dropReason == translation.dropReason
            && t.ruleIDs == translation.ruleIDs && t.usedNormal == translation.usedNormal && plan.mirror == mirror
    }
}

/// The kernel flow cache as the rest of the forwarder sees it, as OVS's dpif: the one owner of
/// installs, replacements, removals, expiry and counter credit of kernel entries. Workers ask it
/// to install a plan; the revalidator asks it to revalidate and sweep with a translation it
/// supplies. Map errors other than "no such entry" are counted and retried, never taken for
/// "entry gone": bookkeeping is forgotten only when the kernel says the entry is not there.
final class KernelDatapath: @unchecked Sendable {
    let map: any FlowCacheMap
    let mirrors: MirrorRegistry
    let ruleCounters: RuleCounters
    /// The rule-counter row kernel counts are credited to.
    let counterRow: Int
    /// Ports above this are tunnel ports; the kernel outputs to those in `tunnelPorts` (bit n: port n).
    let portLimit: UInt32
    let tunnelPorts: UInt64
    let upcallBudgetPerSecond: Int
    let cacheSize: Int
    let idleTimeoutNs: UInt64
    /// CLOCK_MONOTONIC nanoseconds, as bpf_ktime_get_ns (a test may give its own).
    let clock: @Sendable () -> UInt64

    struct State {
        var installed: [FlowKey: InstalledFlow] = [:]
        /// Entries whose replacement failed: the kernel may still run an old translation.
        var needsRepair: Set<FlowKey> = []
        var tokens: Double
        var lastRefillNs: UInt64
        var counters = KernelPathCounters()
        var nextTag: UInt16 = 1
        /// The fast path's mirror groups: destination set (sorted port numbers) -> group.
        var mirrorGroups: [[UInt32]: UInt32] = [:]
    }

    private let state: Mutex<State>

    init(map: any FlowCacheMap, mirrors: MirrorRegistry, ruleCounters: RuleCounters, counterRow: Int,
         config: FlowDatapathConfig, portLimit: UInt32, tunnelPorts: UInt64,
         clock: @escaping @Sendable () -> UInt64 = { Sys.monotonicNanoseconds() }) {
        self.map = map
        self.mirrors = mirrors
        self.ruleCounters = ruleCounters
        self.counterRow = counterRow
        self.portLimit = portLimit
        self.tunnelPorts = tunnelPorts
        upcallBudgetPerSecond = config.upcallBudgetPerSecond
        cacheSize = config.cacheSize
        idleTimeoutNs = config.idleTimeoutMs * 1_000_000
        self.clock = clock
        state = Mutex(State(tokens: Double(config.upcallBudgetPerSecond), lastRefillNs: clock()))
    }

    // MARK: Plans

    /// The one place that decides how the kernel runs a translation: whether it can execute the
    /// actions itself, and who makes the mirror copies (`mirrors`: the sessions the translation
    /// saw; nil when there are none).
    func plan(_ key: FlowKey, _ translation: Translation, mirrors: MirrorTable?, basis: TranslationBasis) -> InstallPlan {
        let mirror = mirrors?.kernelPlan(flow: key, actions: translation.actions, portLimit: portLimit) ?? .none
        let executes = FlowCacheProgram.kernelCanExecute(translation.actions, portLimit: portLimit, tunnelPorts: tunnelPorts)
            && mirror != .userspace
        return InstallPlan(key: key, translation: translation, mirror: mirror, kernelExecutes: executes, basis: basis)
    }

    // MARK: Installs (workers)

    /// Installs `plan` within the upcall budget and the cache size. `isCurrent` is asked under
    /// the lock whether the plan's basis is still the forwarder's state.
    func install(_ plan: InstallPlan, translateNs: UInt64, isCurrent: () -> Bool) -> InstallOutcome {
        state.withLock { s in
            if s.installed[plan.key] != nil { return .alreadyInstalled }
            guard isCurrent() else { return .stale }
            // Read the clock under the lock: a reading taken before another worker's refill
            // would run the bucket backwards.
            let now = clock()
            refill(&s, now: now)
            guard s.tokens >= 1 else {
                s.counters.lostUpcalls += 1
                return .overBudget
            }
            guard s.installed.count < cacheSize else {
                s.counters.lostUpcalls += 1
                s.counters.cacheFull += 1
                return .cacheFull
            }
            s.tokens -= 1
            guard let flow = write(plan, in: &s) else {
                s.counters.lostUpcalls += 1
                s.counters.installErrors += 1
                return .failed
            }
            s.installed[plan.key] = flow
            s.counters.upcalls += 1
            s.counters.upcallNs &+= translateNs &+ (clock() &- now)
            return .installed
        }
    }

    private func refill(_ s: inout State, now: UInt64) {
        let budget = Double(upcallBudgetPerSecond)
        let elapsed = now > s.lastRefillNs ? now - s.lastRefillNs : 0
        s.tokens = min(budget, s.tokens + Double(elapsed) * budget / 1e9)
        s.lastRefillNs = max(s.lastRefillNs, now)
    }

    /// Writes `plan`'s entry into the kernel (new, or replacing), tagged for this installation;
    /// nil when the map refused it.
    private func write(_ plan: InstallPlan, in s: inout State) -> InstalledFlow? {
        var flags: UInt32 = plan.kernelExecutes ? 0 : UInt32(SHUNT_CACHE_USERSPACE)
        var group: UInt32 = 0
        var sessions: UInt64 = 0
        if plan.kernelExecutes, case .kernel(let ports, let slots) = plan.mirror {
            if let g = mirrorGroup(ports, in: &s) {
                group = g
                sessions = slots
            } else {
                flags = UInt32(SHUNT_CACHE_USERSPACE)  // no group free: the slow path copies
            }
        }
        let t = plan.translation
        var entry = FlowCacheProgram.entry(actions: t.actions, dropReason: t.dropReason ?? .flowDrop, flags: flags,
                                           now: clock(), portLimit: portLimit, tunnelPorts: tunnelPorts,
                                           mirrorGroup: group, mirrorSessions: sessions)
        let tag = s.nextTag
        s.nextTag &+= 1
        entry.install_tag = tag
        do throws(BPFError) { try map.install(key: plan.key, entry: entry) } catch { return nil }
        return InstalledFlow(translation: t, mirror: plan.mirror, mirrorGroup: group, tag: tag)
    }

    /// The group broadcasting to `ports`, filled in the kernel if new; nil when all
    /// SHUNT_MIRROR_GROUPS are in use by installed entries.
    private func mirrorGroup(_ ports: [UInt32], in s: inout State) -> UInt32? {
        if let g = s.mirrorGroups[ports] { return g }
        var used = Set(s.mirrorGroups.values)
        if used.count >= Int(SHUNT_MIRROR_GROUPS) {
            // Forget the groups no installed entry uses any more.
            let inUse = Set(s.installed.values.map(\.mirrorGroup))
            s.mirrorGroups = s.mirrorGroups.filter { inUse.contains($0.value) }
            used = Set(s.mirrorGroups.values)
        }
        guard let g = (1...UInt32(SHUNT_MIRROR_GROUPS)).first(where: { !used.contains($0) }) else { return nil }
        do throws(BPFError) { try map.setMirrorGroup(g, ports: ports) } catch {
            s.counters.mapErrors += 1
            return nil
        }
        s.mirrorGroups[ports] = g
        return g
    }

    // MARK: Revalidation (the revalidator)

    /// Whether an earlier replacement failed and the kernel may still run an old translation.
    var needsRepair: Bool { state.withLock { !$0.needsRepair.isEmpty } }

    /// Re-translates the installed entries `select` picks (and every entry awaiting repair)
    /// with `translate`, outside the lock, then replaces those whose plan changed. Workers
    /// offering installs meanwhile wait only for the few kernel updates, not for the pass.
    func revalidate(select: (InstalledFlow) -> Bool, translate: (FlowKey) -> InstallPlan) {
        let (entries, repair) = state.withLock { s in
            (s.installed.filter { s.needsRepair.contains($0.key) || select($0.value) }, s.needsRepair)
        }
        var changed: [(tag: UInt16, plan: InstallPlan)] = []
        for (key, flow) in entries {
            let plan = translate(key)
            if !flow.matches(plan) || repair.contains(key) { changed.append((flow.tag, plan)) }
        }
        state.withLock { s in
            s.counters.revalidations += UInt64(entries.count)
            for c in changed {
                // Replaced or removed since the copy: that newer installation is not ours to fix.
                guard let current = s.installed[c.plan.key], current.tag == c.tag else { continue }
                replace(current, with: c.plan, in: &s)
            }
        }
    }

    /// Replaces an installed entry with `plan`'s, crediting what the old one counted. If the
    /// kernel refuses the new entry, the old one is removed; if that fails too, the key stays
    /// marked for repair and the next pass tries again.
    private func replace(_ flow: InstalledFlow, with plan: InstallPlan, in s: inout State) {
        var kept = flow
        if case .found(let e) = read(plan.key, in: &s), credit(flow, e) {
            // Credited now: if the old entry stays, its next read must start from here.
            kept.seenPackets = e.packets
            kept.seenBytes = e.bytes
        }
        s.counters.revalidationChanges += 1
        if let new = write(plan, in: &s) {
            s.installed[plan.key] = new
            s.needsRepair.remove(plan.key)
        } else if !remove(plan.key, in: &s) {
            s.installed[plan.key] = kept
            s.needsRepair.insert(plan.key)
        }
    }

    /// Credits counters, expires entries idle longer than the idle timeout (when `expire`),
    /// and re-translates NORMAL entries that carried traffic with `refresh` (which refreshes
    /// their MAC learning).
    func sweep(expire: Bool, refresh: (FlowKey) -> InstallPlan) {
        let walked = walk()
        let now = clock()
        state.withLock { s in
            if walked == nil { s.counters.mapErrors += 1 }
            for (key, var flow) in s.installed {
                // The walk ran outside the lock: an entry installed since is not in it, and an
                // entry replaced since shows its old installation. Read those again.
                var e: shunt_cache_entry
                if let w = walked?[key], w.install_tag == flow.tag {
                    e = w
                } else {
                    switch read(key, in: &s) {
                    case .found(let found): e = found
                    case .gone:
                        s.installed[key] = nil  // really gone (only we remove entries)
                        s.needsRepair.remove(key)
                        continue
                    case .failed: continue  // counted; kept for the next sweep
                    }
                }
                let active = credit(flow, e)
                if active {
                    flow.seenPackets = e.packets
                    flow.seenBytes = e.bytes
                    s.installed[key] = flow
                }
                if expire && now > e.last_used_ns && now &- e.last_used_ns >= idleTimeoutNs {
                    if remove(key, in: &s) { s.counters.expirations += 1 }
                } else if expire && active && flow.usedNormal {
                    // Traffic flowed: re-learning its source is right, and refreshes its age.
                    let plan = refresh(key)
                    if !flow.matches(plan) { replace(flow, with: plan, in: &s) }
                }
            }
        }
    }

    /// Credits what the kernel counted to the rules now (for dump-flows and before a flow edit
    /// resets counters). Safe from any thread.
    func creditCounters() {
        let walked = walk()
        state.withLock { s in
            guard let walked else {
                s.counters.mapErrors += 1
                return
            }
            for (key, var flow) in s.installed {
                guard let e = walked[key], credit(flow, e) else { continue }
                flow.seenPackets = e.packets
                flow.seenBytes = e.bytes
                s.installed[key] = flow
            }
        }
    }

    // MARK: Reading

    /// The kernel's entries, for `shunt ctl dump-cache` (as many as a failed walk got).
    func dump() -> [(key: FlowKey, entry: shunt_cache_entry)] {
        var out: [(FlowKey, shunt_cache_entry)] = []
        do { try map.forEachEntry { key, entry in out.append((key, entry)) } } catch {
            state.withLock { $0.counters.mapErrors += 1 }
        }
        return out
    }

    func counters() -> (KernelPathCounters, entries: Int) {
        state.withLock { ($0.counters, $0.installed.count) }
    }

    /// The installed entry for `key` (tests, dump).
    func installed(_ key: FlowKey) -> InstalledFlow? { state.withLock { $0.installed[key] } }

    // MARK: Map steps

    enum EntryRead {
        case found(shunt_cache_entry)
        case gone
        /// Any error but ENOENT: counted in `mapErrors`.
        case failed
    }

    private func read(_ key: FlowKey, in s: inout State) -> EntryRead {
        do throws(BPFError) {
            guard let e = try map.lookup(key: key) else { return .gone }
            return .found(e)
        } catch {
            s.counters.mapErrors += 1
            return .failed
        }
    }

    /// Removes `key`'s entry and forgets it; false (counted, bookkeeping kept) when the map
    /// failed, so the caller's next pass tries again.
    private func remove(_ key: FlowKey, in s: inout State) -> Bool {
        do throws(BPFError) { _ = try map.remove(key: key) } catch {
            s.counters.mapErrors += 1
            return false
        }
        s.installed[key] = nil
        s.needsRepair.remove(key)
        return true
    }

    /// Every kernel entry by key; nil when the walk failed.
    private func walk() -> [FlowKey: shunt_cache_entry]? {
        var entries: [FlowKey: shunt_cache_entry] = [:]
        do { try map.forEachEntry { key, entry in entries[key] = entry } } catch { return nil }
        return entries
    }

    /// Credits what `e` counted since `flow` was last read, if `e` is a read of this very
    /// installation and newer than the last one (reads may be taken outside the lock).
    @discardableResult
    private func credit(_ flow: InstalledFlow, _ e: shunt_cache_entry) -> Bool {
        guard e.install_tag == flow.tag, e.packets > flow.seenPackets, e.bytes >= flow.seenBytes else { return false }
        let packets = e.packets - flow.seenPackets
        let bytes = e.bytes - flow.seenBytes
        for id in flow.translation.ruleIDs {
            ruleCounters.add(row: counterRow, rule: id, packets: packets, bytes: bytes)
        }
        return true
    }
}
