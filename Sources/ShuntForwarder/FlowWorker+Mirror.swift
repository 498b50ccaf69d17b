import CShunt
import ShuntCore
import ShuntPipeline
import ShuntSystem

/// A worker's view of the mirror sessions and what copying needs, kept apart from its
/// forwarding state. Only the worker touches it.
final class MirrorWorkerState {
    var table: MirrorTable
    var generation: UInt64
    /// Whether any session exists: the one check on the forwarding path when none does.
    var active: Bool
    /// The packet being executed, for egress selection and copies made while its actions run.
    var key = FlowKey()
    var hash: UInt64 = 0
    var nowMs: UInt64 = 0
    /// A received frame with its stripped VLAN tag put back, when the kernel took it out.
    let scratch: UnsafeMutableRawPointer
    let scratchCapacity = 65540

    init(registry: MirrorRegistry) {
        (table, generation) = registry.current()
        active = !table.isEmpty
        scratch = .allocate(byteCount: 65540, alignment: 64)
    }

    deinit { scratch.deallocate() }

    /// Picks up a new set of sessions; true when it moved.
    @inline(__always)
    func refresh(_ registry: MirrorRegistry) -> Bool {
        guard registry.generation != generation else { return false }
        (table, generation) = registry.current()
        active = !table.isEmpty
        return true
    }
}

extension FlowWorker {
    /// Copies of a received frame, as it arrived, for the sessions selecting it on port `p`.
    @inline(never)
    func mirrorIngress(_ packet: PacketDescriptor, inPort p: Int, key: FlowKey, hash: UInt64, nowMs: UInt64) {
        let m = mirrors
        m.key = key
        m.hash = hash
        m.nowMs = nowMs
        let list = m.table.ingress[p]
        if list.isEmpty { return }
        var data = UnsafeRawPointer(packet.data)
        var length = Int(packet.capturedLength)
        if packet.flags.contains(.hasVLANTag) {
            length = FrameRewrite.write(packet, edits: FrameEdits(), to: m.scratch, capacity: m.scratchCapacity)
            data = UnsafeRawPointer(m.scratch)
        }
        for s in list where s.session.match?.matches(key) ?? true {
            mirrorCopy(s, data, length: length, port: p, direction: .inbound)
        }
    }

    /// Copies of a frame just written to port `out`'s TX ring (as it leaves), for the sessions
    /// selecting that port's egress. Copies themselves never pass here: a mirror's output is
    /// never mirrored.
    @inline(never)
    func mirrorEgress(_ frame: UnsafeRawPointer, length: Int, outPort out: Int) {
        let m = mirrors
        guard out < m.table.egress.count else { return }
        for s in m.table.egress[out] where s.session.match?.matches(m.key) ?? true {
            mirrorCopy(s, frame, length: length, port: out, direction: .outbound)
        }
    }

    /// One selected packet for session `s`: sampling, truncation, the copy, the accounting.
    @inline(__always)
    private func mirrorCopy(_ s: MirrorSessionRuntime, _ data: UnsafeRawPointer, length: Int, port p: Int,
                            direction: PcapNG.Direction) {
        let c = s.counters
        let row = index
        c.add(row, .selected)
        c.add(row, .selectedBytes, UInt64(length))
        let sample = UInt64(s.session.sample)
        if sample > 1 {
            // Deterministic 1-in-N per worker: the first of every N selected packets.
            let tick = c.value(row, .sampleTick)
            c.set(row, .sampleTick, tick &+ 1 == sample ? 0 : tick &+ 1)
            if tick != 0 {
                c.add(row, .sampledOut)
                c.add(row, .sampledOutBytes, UInt64(length))
                return
            }
        }
        let snaplen = Int(s.session.snaplen)
        let captured = snaplen > 0 && snaplen < length ? snaplen : length
        let drop: MirrorDrop?
        switch s.sink {
        case .port(let o):
            drop = mirrorToPort(o, data, captured: captured)
        case .tunnel(let t):
            drop = mirrorToTunnel(t, data, captured: captured)
        case .pcap(let sink):
            if sink.broken.isSet {
                drop = .outputDown
            } else if captured > sink.queues[row].maxCaptured {
                drop = .tooLarge
            } else if !sink.queues[row].push(interface: s.captureInterface[p], data: data, captured: captured,
                                             originalLength: length, direction: direction,
                                             timestampNs: Sys.realtimeNanoseconds()) {
                drop = .queueFull
            } else {
                drop = nil
            }
        }
        if let drop {
            c.add(row, .dropped)
            c.add(row, .droppedBytes, UInt64(length))
            c.add(row, MirrorCounters.field(drop))
            return
        }
        c.add(row, .mirrored)
        c.add(row, .mirroredBytes, UInt64(captured))
        if captured < length {
            c.add(row, .truncated)
            c.add(row, .truncatedBytes, UInt64(length - captured))
        }
    }

    /// SPAN: the copy into interface `o`'s TX ring.
    @inline(__always)
    private func mirrorToPort(_ o: Int, _ data: UnsafeRawPointer, captured: Int) -> MirrorDrop? {
        let port = ports[o]
        guard captured <= port.maxTransmitLength else { return .tooLarge }
        guard let frame = port.claimTransmitFrame() else { return .txRingFull }
        frame.copyMemory(from: data, byteCount: captured)
        port.tx.commit(length: captured)
        return nil
    }

    /// Remote mirroring: the copy in VXLAN, with the tunnel port's own VNI, on its underlay.
    @inline(__always)
    private func mirrorToTunnel(_ t: Int, _ data: UnsafeRawPointer, captured: Int) -> MirrorDrop? {
        guard let tunnels else { return .outputDown }
        let m = mirrors
        switch encapsulate(.bytes(data, count: captured), tunnel: t, tunnels: tunnels, tunnelID: 0, hash: m.hash,
                           nowMs: m.nowMs) {
        case .sent: return nil
        case .noNeighbour: return .tunnelNoNeighbour
        case .txRingFull: return .txRingFull
        case .tooLarge: return .tooLarge
        }
    }
}
