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
    let kernel: KernelDatapath
    private var normal: LearningNormalSwitch
    /// How often it looks for changes: a flow change reaches the kernel cache within this
    /// plus the time of one pass.
    let checkIntervalNs: UInt64 = 5_000_000
    let sweepIntervalNs: UInt64
    /// The fast path's tunnel entries, whose next hops follow the neighbour table.
    let tunnels: TunnelFastPath?

    init(datapath: FlowDatapath, kernel: KernelDatapath, tunnels: TunnelFastPath? = nil) {
        self.datapath = datapath
        self.tunnels = tunnels
        self.kernel = kernel
        normal = LearningNormalSwitch(table: datapath.macTable, nowMs: 0)
        // Sweep often enough that an idle entry outlives its timeout by at most a quarter.
        sweepIntervalNs = max(50_000_000, min(1_000_000_000, datapath.config.idleTimeoutMs * 1_000_000 / 4))
    }

    func run(stop: StopFlag) {
        var last = datapath.basis
        var lastSweep = Sys.monotonicNanoseconds()
        while !stop.isSet {
            Sys.sleep(nanoseconds: checkIntervalNs)
            tunnels?.sync(nowMs: Sys.monotonicNanoseconds() / 1_000_000)
            let now = datapath.basis
            if now != last || kernel.needsRepair {
                revalidate(onlyNormal: now.flows == last.flows && now.mirrors == last.mirrors)
                last = now
            }
            let t = Sys.monotonicNanoseconds()
            if t &- lastSweep >= sweepIntervalNs {
                sweep()
                lastSweep = t
            }
        }
        // Credit what the kernel counted since the last sweep, for the final dump-flows.
        sweep(expire: false)
    }

    /// Re-translates installed entries (all, or those that used NORMAL). It does not learn:
    /// an idle entry must not move a station back to a port it has left.
    func revalidate(onlyNormal: Bool) {
        let (pipeline, _) = datapath.currentPipeline()
        let (sessions, _) = datapath.mirrors.current()
        let basis = datapath.basis
        var lookup = LearningNormalSwitch(table: datapath.macTable, nowMs: Sys.monotonicNanoseconds() / 1_000_000,
                                          learns: false)
        kernel.revalidate(select: { !onlyNormal || $0.usedNormal }) { key in
            kernel.plan(key, pipeline.translate(key, normal: &lookup), mirrors: sessions, basis: basis)
        }
    }

    /// Credits counters, expires idle entries, refreshes NORMAL entries that carried traffic.
    func sweep(expire: Bool = true) {
        let (pipeline, _) = datapath.currentPipeline()
        let (sessions, _) = datapath.mirrors.current()
        let basis = datapath.basis
        normal.nowMs = Sys.monotonicNanoseconds() / 1_000_000
        kernel.sweep(expire: expire) { key in
            kernel.plan(key, pipeline.translate(key, normal: &normal), mirrors: sessions, basis: basis)
        }
    }
}
