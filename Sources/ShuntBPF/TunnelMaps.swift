import CLibbpf
import CShunt
import Glibc

/// The fast path's VXLAN tables (BPF/include/maps.h; used in tunnel.h): `tunnel_ports` (port → its
/// parameters, the next hop included), `tunnel_endpoints` (which tunnel takes a received VXLAN
/// frame) and `underlay_ports`. Control side only: every call is a system call.
extension FlowCacheProgram {
    /// Makes `tunnel.port` a tunnel port of the fast path: outputs to it are encapsulated (once
    /// `tunnel` has SHUNT_TUNNEL_NEXT_HOP), and VXLAN frames for it on its underlay decapsulated.
    public func addTunnel(_ tunnel: shunt_tunnel_port) throws {
        precondition(tunnel.port >= 1 && tunnel.port <= UInt32(SHUNT_MAX_PORTS), "Shunt ports are numbered 1...\(SHUNT_MAX_PORTS)")
        try updateTunnel(tunnel)
        var endpoint = shunt_tunnel_endpoint()
        endpoint.underlay_port = tunnel.underlay_port
        endpoint.vni = tunnel.vni
        endpoint.local_ip = tunnel.local_ip
        endpoint.remote_ip = tunnel.remote_ip
        endpoint.dst_port = tunnel.dst_port
        var port = tunnel.port
        try Self.checkTunnelUpdate(bpf_map_update_elem(tunnelEndpointsFD, &endpoint, &port, UInt64(BPF_ANY)),
                                   "tunnel_endpoints for port \(tunnel.port)")
        var underlay = tunnel.underlay_port
        var one: UInt32 = 1
        try Self.checkTunnelUpdate(bpf_map_update_elem(underlayPortsFD, &underlay, &one, UInt64(BPF_ANY)),
                                   "underlay_ports[\(tunnel.underlay_port)]")
    }

    /// Rewrites the tunnel's entry (its next hop changed).
    public func updateTunnel(_ tunnel: shunt_tunnel_port) throws {
        var key = tunnel.port
        var value = tunnel
        try Self.checkTunnelUpdate(bpf_map_update_elem(tunnelPortsFD, &key, &value, UInt64(BPF_ANY)),
                                   "tunnel_ports[\(tunnel.port)]")
    }

    /// The entry of tunnel port `port` as the fast path sees it.
    public func tunnel(port: UInt32) throws -> shunt_tunnel_port {
        var key = port
        var value = shunt_tunnel_port()
        try Self.checkTunnelUpdate(bpf_map_lookup_elem(tunnelPortsFD, &key, &value), "reading tunnel_ports[\(port)]")
        return value
    }

    private static func checkTunnelUpdate(_ rc: Int32, _ step: @autoclosure () -> String) throws {
        guard rc != 0 else { return }
        let e = errno
        throw BPFError.libbpf(step: step(), errno: e)
    }
}
