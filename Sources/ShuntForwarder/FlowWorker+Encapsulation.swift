import ShuntCore
import ShuntSystem

/// What goes behind the outer headers of an encapsulated copy.
enum TunnelPayload {
    /// The received frame with the edits of its action list so far (a copy out of a tunnel port).
    case rewritten(PacketDescriptor, FrameEdits)
    /// Bytes as they are (a remote-mirror copy, already cut to the session's snaplen).
    case bytes(UnsafeRawPointer, count: Int)
}

/// What became of an encapsulated copy. The caller counts it: a tunnel port's tx counters for
/// forwarded copies, the session's counters for mirror copies.
enum Encapsulation {
    /// On the underlay port's TX ring; the inner frame lies at `inner`.
    case sent(inner: UnsafeMutableRawPointer, length: Int)
    /// The remote VTEP's MAC is not resolved (yet): an ARP request went out if one was due.
    case noNeighbour
    /// The underlay port's TX ring had no free frame.
    case txRingFull
    /// The copy does not fit the TX frame or the underlay's MTU.
    case tooLarge
}

extension FlowWorker {
    /// The slow path's one VXLAN encapsulation, for forwarded and remote-mirror copies alike:
    /// the remote VTEP's MAC (asking for it by ARP when it is not reachable), a frame of the
    /// underlay port's TX ring, the payload behind the room for the outer headers, the MTU
    /// check, the outer headers (IPv4 identification from this worker's counter), the commit.
    ///
    /// - Parameters:
    ///   - t: the tunnel's index in `tunnels.tunnels`.
    ///   - tunnelID: what `vni=flow` tunnels take the VNI from.
    ///   - hash: the flow's hash, which picks the outer UDP source port.
    @inline(__always)
    func encapsulate(_ payload: TunnelPayload, tunnel t: Int, tunnels: TunnelRuntime, tunnelID: UInt64, hash: UInt64,
                     nowMs: UInt64) -> Encapsulation {
        let tunnel = tunnels.tunnels[t]
        let underlay = Int(tunnel.underlayPort) - 1
        let slot = tunnels.neighbourSlots[t]
        let (nextHop, state) = tunnels.neighbours.lookup(slot: slot, nowMs: nowMs)
        if state != .reachable && tunnels.neighbours.takeRequest(slot: slot, nowMs: nowMs) {
            sendARP(.request(from: tunnels.sourceMACs[t], ip: tunnel.local, for: tunnel.remote), on: underlay)
        }
        guard let nextHop else { return .noNeighbour }
        let port = ports[underlay]
        guard let frame = port.claimTransmitFrame() else { return .txRingFull }
        let inner = Self.write(payload, to: frame + VXLAN.overhead, capacity: port.maxTransmitLength - VXLAN.overhead)
        // Not committed: the claimed frame stays free.
        guard inner > 0, VXLAN.fits(innerLength: inner, underlayMTU: tunnels.underlayMTUs[t]) else { return .tooLarge }
        var identification: UInt16 = 0
        if !tunnel.dontFragment {
            outerIdentification &+= 1
            identification = outerIdentification
        }
        let header = VXLANOuterHeader(
            sourceMAC: tunnels.sourceMACs[t], destinationMAC: nextHop, source: tunnel.local, destination: tunnel.remote,
            sourcePort: VXLAN.sourcePort(hash: UInt32(truncatingIfNeeded: hash ^ hash >> 32),
                                         min: tunnel.sourcePortMin, max: tunnel.sourcePortMax),
            destinationPort: tunnel.destinationPort, vni: tunnel.vni(forTunnelID: tunnelID), ttl: tunnel.ttl,
            dontFragment: tunnel.dontFragment, udpChecksum: tunnel.udpChecksum, identification: identification)
        VXLAN.writeOuterHeader(header, innerLength: inner, at: frame)
        port.tx.commit(length: inner + VXLAN.overhead)
        return .sent(inner: frame + VXLAN.overhead, length: inner)
    }

    /// Writes the inner frame; its length, 0 when it does not fit `capacity`.
    @inline(__always)
    private static func write(_ payload: TunnelPayload, to inner: UnsafeMutableRawPointer, capacity: Int) -> Int {
        switch payload {
        case .rewritten(let packet, let edits):
            return FrameRewrite.write(packet, edits: edits, to: inner, capacity: capacity)
        case .bytes(let data, let count):
            guard count <= capacity else { return 0 }
            inner.copyMemory(from: data, byteCount: count)
            return count
        }
    }

    /// Asks again for the stale next hops the XDP fast path keeps using (worker 0; see
    /// `TunnelFastPath.sync`). The neighbour table's retry interval still bounds the requests.
    @inline(never)
    func refreshStaleNeighbours(_ tunnels: TunnelRuntime) {
        let wanted = tunnels.refreshWanted.exchange(0, ordering: .acquiring)
        let nowMs = Sys.monotonicNanoseconds() / 1_000_000
        for (t, tunnel) in tunnels.tunnels.enumerated() where t < 64 && wanted & 1 << UInt64(t) != 0 {
            let slot = tunnels.neighbourSlots[t]
            guard tunnels.neighbours.lookup(slot: slot, nowMs: nowMs).state != .reachable,
                  tunnels.neighbours.takeRequest(slot: slot, nowMs: nowMs) else { continue }
            sendARP(.request(from: tunnels.sourceMACs[t], ip: tunnel.local, for: tunnel.remote),
                    on: Int(tunnel.underlayPort) - 1)
        }
    }

    /// Asks for every remote VTEP's MAC at start (worker 0), so that a tunnel's first packet
    /// finds its next hop: there is no queue for packets waiting on ARP, a packet without a next
    /// hop is dropped as tunnel_no_neighbour. A remote that answers later is learned then;
    /// one that asks first is learned from its request.
    func resolveTunnelsAtStart() {
        guard let tunnels else { return }
        let nowMs = Sys.monotonicNanoseconds() / 1_000_000
        for (t, tunnel) in tunnels.tunnels.enumerated() where tunnel.remoteMAC == nil {
            let slot = tunnels.neighbourSlots[t]
            guard tunnels.neighbours.lookup(slot: slot, nowMs: nowMs).mac == nil,
                  tunnels.neighbours.takeRequest(slot: slot, nowMs: nowMs) else { continue }
            sendARP(.request(from: tunnels.sourceMACs[t], ip: tunnel.local, for: tunnel.remote),
                    on: Int(tunnel.underlayPort) - 1)
        }
        flushTransmitRings(ports, counters)
    }
}
