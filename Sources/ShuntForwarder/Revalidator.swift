import CShunt
import ShuntBPF
import ShuntCore
import ShuntPipeline
import ShuntSystem

/// Keeps the kernel flow cache consistent with the flow tables, like OVS's revalidator threads:
/// after a flow change it re-translates every entry and updates or removes those whose result
/// changed; after a MAC-table change, the entries that used NORMAL. Every sweep it credits the
/// kernel's per-entry counters to the rules (n_packets/n_bytes), removes entries idle longer
/// than the idle timeout, and re-translates NORMAL entries that carried traffic (which
/// refreshes their MAC learning).
final class Revalidator: @unchecked Sendable {
    let datapath: FlowDatapath
    let kernel: FlowCacheProgram
    /// Its row in the rule counters.
    let counterRow: Int
    private var normal: LearningNormalSwitch
    /// How often it looks for changes: a flow change reaches the kernel cache within this
    /// plus the time of one pass.
    let checkIntervalNs: UInt64 = 5_000_000
    let sweepIntervalNs: UInt64
    /// The fast path's tunnel entries, whose next hops follow the neighbour table.
    let tunnels: TunnelFastPath?

    init(datapath: FlowDatapath, kernel: FlowCacheProgram, counterRow: Int, tunnels: TunnelFastPath? = nil) {
        self.datapath = datapath
        self.tunnels = tunnels
        self.kernel = kernel
        self.counterRow = counterRow
        normal = LearningNormalSwitch(table: datapath.macTable, nowMs: 0)
        // Sweep often enough that an idle entry outlives its timeout by at most a quarter.
        sweepIntervalNs = max(50_000_000, min(1_000_000_000, datapath.config.idleTimeoutMs * 1_000_000 / 4))
    }

    func run(stop: StopFlag) {
        var lastGeneration = datapath.generation
        var lastMACChanges = datapath.macTable.changeCount
        var lastMirrors = datapath.mirrors.generation
        var lastSweep = Sys.monotonicNanoseconds()
        while !stop.isSet {
            Sys.sleep(nanoseconds: checkIntervalNs)
            tunnels?.sync(nowMs: Sys.monotonicNanoseconds() / 1_000_000)
            let g = datapath.generation
            let m = datapath.macTable.changeCount
            let mirrorGeneration = datapath.mirrors.generation
            if g != lastGeneration || m != lastMACChanges || mirrorGeneration != lastMirrors {
                revalidate(onlyNormal: g == lastGeneration && mirrorGeneration == lastMirrors)
                lastGeneration = g
                lastMACChanges = m
                lastMirrors = mirrorGeneration
            }
            let now = Sys.monotonicNanoseconds()
            if now &- lastSweep >= sweepIntervalNs {
                sweep(nowNs: now)
                lastSweep = now
            }
        }
        // Credit what the kernel counted since the last sweep, for the final dump-flows.
        sweep(nowNs: Sys.monotonicNanoseconds(), expire: false)
    }

    /// Re-translates installed entries (all, or those that used NORMAL). It does not learn:
    /// an idle entry must not move a station back to a port it has left.
    func revalidate(onlyNormal: Bool) {
        let (pipeline, _) = datapath.currentPipeline()
        var lookup = LearningNormalSwitch(table: datapath.macTable, nowMs: Sys.monotonicNanoseconds() / 1_000_000,
                                          learns: false)
        // Translate a copy outside the lock, so workers offering installs meanwhile wait only
        // for the (few) kernel updates below, not for a pass over every entry.
        let entries = datapath.kernelState.withLock { state in
            state.installed.filter { !onlyNormal || $0.value.usedNormal }
        }
        var changed: [(key: FlowKey, tag: UInt16, translation: Translation)] = []
        for (key, info) in entries {
            let t = pipeline.translate(key, normal: &lookup)
            if !same(t, key, info) { changed.append((key, info.tag, t)) }
        }
        datapath.kernelState.withLock { state in
            state.counters.revalidations += UInt64(entries.count)
            for c in changed {
                // Replaced or removed since the copy: that newer installation is not ours to fix.
                guard let current = state.installed[c.key], current.tag == c.tag else { continue }
                replace(c.key, current, with: c.translation, in: &state)
            }
        }
    }

    /// Whether a translation gives the entry it came from (usedNormal included: an entry that
    /// now goes through NORMAL must be refreshed with the MAC table from now on).
    static func same(_ t: Translation, _ info: InstalledFlow) -> Bool {
        t.actions == info.actions && t.dropReason == info.dropReason && t.ruleIDs == info.ruleIDs
            && t.usedNormal == info.usedNormal
    }

    /// As `same`, and the mirror sessions still copy the flow as they did (in the slow path,
    /// or in the kernel to the same ports for the same sessions).
    func same(_ t: Translation, _ key: FlowKey, _ info: InstalledFlow) -> Bool {
        Self.same(t, info) && mirrorPlan(key, t.actions) == info.mirror
    }

    private func mirrorPlan(_ key: FlowKey, _ actions: [DatapathAction]) -> KernelMirrorPlan {
        datapath.mirrors.kernelPlan(flow: key, actions: actions,
                                    portLimit: datapath.kernelPortLimit)
    }

    private func replace(_ key: FlowKey, _ info: InstalledFlow, with t: Translation, in state: inout FlowDatapath.KernelState) {
        if let e = try? kernel.lookup(key: key) { credit(info, e) }
        let mirror = datapath.mirrors.kernelPlan(flow: key, actions: t.actions, portLimit: state.kernelPortLimit)
        let (entry, tag, group) = state.entry(actions: t.actions, dropReason: t.dropReason, mirror: mirror, kernel: kernel)
        do {
            try kernel.install(key: key, entry: entry)
            state.installed[key] = InstalledFlow(actions: t.actions, dropReason: t.dropReason, ruleIDs: t.ruleIDs,
                                                 usedNormal: t.usedNormal, mirror: mirror, mirrorGroup: group, tag: tag)
        } catch {
            _ = try? kernel.remove(key: key)
            state.installed[key] = nil
        }
        state.counters.revalidationChanges += 1
    }

    /// Credits what `e` counted since `info` was last read, if `e` is a read of this very
    /// installation and newer than the last one (reads may be taken outside the lock).
    @discardableResult
    private func credit(_ info: InstalledFlow, _ e: shunt_cache_entry) -> Bool {
        guard e.install_tag == info.tag, e.packets > info.seenPackets, e.bytes >= info.seenBytes else { return false }
        let dp = e.packets - info.seenPackets
        let db = e.bytes - info.seenBytes
        for id in info.ruleIDs {
            datapath.ruleCounters.add(row: counterRow, rule: id, packets: dp, bytes: db)
        }
        return true
    }

    /// Credits what the kernel counted to the rules now (for dump-flows and before a flow
    /// edit resets counters). Safe from any thread.
    func creditCounters() {
        var entries: [FlowKey: shunt_cache_entry] = [:]
        try? kernel.forEachEntry { key, entry in entries[key] = entry }
        datapath.kernelState.withLock { state in
            for (key, var info) in state.installed {
                guard let e = entries[key], credit(info, e) else { continue }
                info.seenPackets = e.packets
                info.seenBytes = e.bytes
                state.installed[key] = info
            }
        }
    }

    /// Credits counters, expires idle entries, refreshes NORMAL entries that carried traffic.
    func sweep(nowNs: UInt64, expire: Bool = true) {
        var entries: [FlowKey: shunt_cache_entry] = [:]
        try? kernel.forEachEntry { key, entry in entries[key] = entry }
        let idleNs = datapath.config.idleTimeoutMs * 1_000_000
        let (pipeline, _) = datapath.currentPipeline()
        normal.nowMs = nowNs / 1_000_000
        datapath.kernelState.withLock { state in
            for (key, var info) in state.installed {
                // The walk ran outside the lock: an entry installed since is not in it, and an
                // entry replaced since shows its old installation. Read those again.
                var read = entries[key]
                if read == nil || read!.install_tag != info.tag { read = try? kernel.lookup(key: key) }
                guard let e = read else {
                    state.installed[key] = nil  // really gone (only we remove entries)
                    continue
                }
                let active = credit(info, e)
                if active {
                    info.seenPackets = e.packets
                    info.seenBytes = e.bytes
                    state.installed[key] = info
                }
                if expire && nowNs > e.last_used_ns && nowNs &- e.last_used_ns >= idleNs {
                    _ = try? kernel.remove(key: key)
                    state.installed[key] = nil
                    state.counters.expirations += 1
                } else if expire && active && info.usedNormal {
                    // Traffic flowed: re-learning its source is right, and refreshes its age.
                    let t = pipeline.translate(key, normal: &normal)
                    if !same(t, key, info) { replace(key, info, with: t, in: &state) }
                }
            }
        }
    }
}
