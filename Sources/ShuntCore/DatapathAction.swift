import CShunt

/// One action of the flat list the OpenFlow pipeline reduces a packet's flows to: what both
/// datapaths execute for a cached flow. Mirrors `struct shunt_dp_action` in shunt_abi.h.
public enum DatapathAction: Hashable, Sendable, CustomStringConvertible {
    /// Transmit a copy of the packet, as modified so far, on a Shunt port (numbered from 1).
    case output(UInt32)
    case setEthSrc(MACAddress)
    case setEthDst(MACAddress)
    /// Set the VLAN id of the outer tag, pushing an 802.1Q tag (PCP 0) when there is none.
    case setVLAN(UInt16)
    case popVLAN
    /// Decrement the IPv4 TTL (updating the header checksum) or the IPv6 hop limit; a packet
    /// whose TTL is 0 or 1 is dropped as `ttl_expired`.
    case decTTL
    /// The tunnel id (VNI) of the following outputs to tunnel ports.
    case setTunnel(UInt64)

    /// The ABI form, for the XDP fast path's cache entries.
    public var abi: shunt_dp_action {
        var a = shunt_dp_action()
        switch self {
        case .output(let port):
            a.kind = UInt8(SHUNT_DPA_OUTPUT.rawValue)
            a.port = port
        case .setEthSrc(let mac):
            a.kind = UInt8(SHUNT_DPA_SET_ETH_SRC.rawValue)
            FlowKey.store(mac, into: &a.mac)
        case .setEthDst(let mac):
            a.kind = UInt8(SHUNT_DPA_SET_ETH_DST.rawValue)
            FlowKey.store(mac, into: &a.mac)
        case .setVLAN(let vid):
            a.kind = UInt8(SHUNT_DPA_SET_VLAN.rawValue)
            a.vid = vid & 0x0fff
        case .popVLAN:
            a.kind = UInt8(SHUNT_DPA_POP_VLAN.rawValue)
        case .decTTL:
            a.kind = UInt8(SHUNT_DPA_DEC_TTL.rawValue)
        case .setTunnel(let id):
            a.kind = UInt8(SHUNT_DPA_SET_TUNNEL.rawValue)
            a.tun_id = id
        }
        return a
    }

    /// Decodes the ABI form; nil for an unknown kind.
    public init?(abi a: shunt_dp_action) {
        var a = a
        switch UInt32(a.kind) {
        case SHUNT_DPA_OUTPUT.rawValue: self = .output(a.port)
        case SHUNT_DPA_SET_ETH_SRC.rawValue:
            self = .setEthSrc(withUnsafeBytes(of: &a.mac) { MACAddress(loading: $0.baseAddress!) })
        case SHUNT_DPA_SET_ETH_DST.rawValue:
            self = .setEthDst(withUnsafeBytes(of: &a.mac) { MACAddress(loading: $0.baseAddress!) })
        case SHUNT_DPA_SET_VLAN.rawValue: self = .setVLAN(a.vid)
        case SHUNT_DPA_POP_VLAN.rawValue: self = .popVLAN
        case SHUNT_DPA_DEC_TTL.rawValue: self = .decTTL
        case SHUNT_DPA_SET_TUNNEL.rawValue: self = .setTunnel(a.tun_id)
        default: return nil
        }
    }

    /// In the syntax of OVS's `dpctl/dump-flows` actions.
    public var description: String {
        switch self {
        case .output(let p): "\(p)"
        case .setEthSrc(let m): "set(eth(src=\(m)))"
        case .setEthDst(let m): "set(eth(dst=\(m)))"
        case .setVLAN(let v): "set_vlan(vid=\(v))"
        case .popVLAN: "pop_vlan"
        case .decTTL: "dec_ttl"
        case .setTunnel(let t): "set(tunnel(tun_id=0x\(String(t, radix: 16))))"
        }
    }
}
