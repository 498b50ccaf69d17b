import CShunt
import ShuntBPF
import ShuntCore
import ShuntSystem

/// The tunnel ports as the XDP fast path knows them: writes their entries at start and keeps
/// each entry's next hop in step with the slow path's neighbour table
/// (docs/design/0013-vxlan-fast-path.md). The revalidator thread calls `sync` every pass; it
/// costs a few loads and, only when a next hop changed, one map update.
final class TunnelFastPath: @unchecked Sendable {
    let kernel: FlowCacheProgram
    let runtime: TunnelRuntime
    /// Per tunnel: its entry without a next hop.
    private let entries: [shunt_tunnel_port]
    /// Per tunnel: the next hop last written (MAC | 1 << 48), 0 for none.
    private var written: [UInt64]
    /// Per tunnel: the fast path's tx_packets for its port at the last use check.
    private var lastTransmitted: [UInt64]
    private var lastUseCheckMs: UInt64 = 0
    /// How often stale tunnels are checked for use (a read of the per-CPU counters).
    static let useCheckIntervalMs: UInt64 = 250

    /// The tunnel ports the fast path encapsulates for (bit n: port n): all of them.
    static func kernelTunnelPorts(_ tunnels: [TunnelPort]) -> UInt64 {
        tunnels.reduce(UInt64(0)) { mask, t in t.port >= 64 ? mask : mask | 1 << UInt64(t.port) }
    }

    init(kernel: FlowCacheProgram, runtime: TunnelRuntime) throws {
        self.kernel = kernel
        self.runtime = runtime
        entries = runtime.tunnels.enumerated().map { i, t in
            var e = t.abi(sourceMAC: runtime.sourceMACs[i])
            e.underlay_mtu = UInt32(runtime.underlayMTUs[i])
            return e
        }
        written = Array(repeating: 0, count: entries.count)
        lastTransmitted = Array(repeating: 0, count: entries.count)
        for e in entries { try kernel.addTunnel(e) }
        sync(nowMs: Sys.monotonicNanoseconds() / 1_000_000)
    }

    /// Gives the fast path a tunnel's next hop while the neighbour table has one (reachable,
    /// static or stale) and takes it away when it expired: then the packets go up, and the
    /// worker that sees them asks again by ARP. A stale next hop stays in use, as the kernel's
    /// neighbour table uses a STALE entry while it probes: taking it away would send every frame
    /// of the tunnel up to the slow path until the answer, and those frames could arrive behind
    /// later ones the kernel forwarded. Since a stale tunnel's frames no longer reach a worker,
    /// a tunnel the fast path used since the last check is handed to worker 0 to ask for.
    func sync(nowMs: UInt64) {
        var stale: UInt64 = 0
        for i in entries.indices {
            let (mac, state) = runtime.neighbours.lookup(slot: runtime.neighbourSlots[i], nowMs: nowMs)
            if state == .stale && i < 64 { stale |= 1 << UInt64(i) }
            let want: UInt64 = mac.map { $0.value | 1 << 48 } ?? 0
            guard want != written[i] else { continue }
            var e = entries[i]
            if want != 0, let mac {
                withUnsafeMutableBytes(of: &e.dst_mac) { b in
                    for j in 0..<6 { b[j] = UInt8(truncatingIfNeeded: mac.value >> UInt64(40 - 8 * j)) }
                }
                e.flags |= UInt8(SHUNT_TUNNEL_NEXT_HOP)
            }
            // A failed write is tried again next pass.
            if (try? kernel.updateTunnel(e)) != nil { written[i] = want }
        }
        guard nowMs &- lastUseCheckMs >= Self.useCheckIntervalMs else { return }
        lastUseCheckMs = nowMs
        guard let stats = try? kernel.stats() else { return }
        let counters = Forwarder.fastPathPortCounters(stats, ports: entries.map { Int($0.port) }.max() ?? 0)
        var used: UInt64 = 0
        for i in entries.indices {
            let tx = counters[Int(entries[i].port) - 1].txPackets
            if tx != lastTransmitted[i] && i < 64 { used |= 1 << UInt64(i) }
            lastTransmitted[i] = tx
        }
        if stale & used != 0 { runtime.refreshWanted.bitwiseOr(stale & used, ordering: .releasing) }
    }
}
