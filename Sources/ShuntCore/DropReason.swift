import CShunt

/// Why a frame (or one copy of it) did not leave. Raw values are `enum shunt_drop_reason` in
/// shunt_abi.h, shared with the BPF programs; names are the stable statistics keys.
public enum DropReason: UInt8, CaseIterable, Sendable {
    case kernelRingFull = 1
    case txRingFull = 2
    case tooLarge = 3
    case runt = 4
    case noOutput = 5
    case ringUnread = 6
    case txError = 7
    case outgoing = 8
    case noMatch = 9
    case flowDrop = 10
    case resubmitLimit = 11
    case ttlExpired = 12
    case tunnelMTU = 13
    case tunnelNoNeighbour = 14
    case tunnelVNI = 15
    case tunnelPort = 16
    case tunnelRemote = 17
    case tunnelMalformed = 18
    case tunnelNotVXLAN = 19
    case outputDown = 20
    case bondInactive = 21

    public static let slotCount = Int(SHUNT_DROP__MAX.rawValue)

    public var name: String {
        switch self {
        case .kernelRingFull: "kernel_ring_full"
        case .txRingFull: "tx_ring_full"
        case .tooLarge: "too_large"
        case .runt: "runt"
        case .noOutput: "no_output"
        case .ringUnread: "ring_unread"
        case .txError: "tx_error"
        case .outgoing: "outgoing"
        case .noMatch: "no_match"
        case .flowDrop: "flow_drop"
        case .resubmitLimit: "resubmit_limit"
        case .ttlExpired: "ttl_expired"
        case .tunnelMTU: "tunnel_mtu"
        case .tunnelNoNeighbour: "tunnel_no_neighbour"
        case .tunnelVNI: "tunnel_vni"
        case .tunnelPort: "tunnel_port"
        case .tunnelRemote: "tunnel_remote"
        case .tunnelMalformed: "tunnel_malformed"
        case .tunnelNotVXLAN: "tunnel_not_vxlan"
        case .outputDown: "output_down"
        case .bondInactive: "bond_inactive"
        }
    }

    /// The ABI value in shunt_abi.h that this case mirrors.
    public var abiValue: UInt32 {
        switch self {
        case .kernelRingFull: SHUNT_DROP_KERNEL_RING_FULL.rawValue
        case .txRingFull: SHUNT_DROP_TX_RING_FULL.rawValue
        case .tooLarge: SHUNT_DROP_TOO_LARGE.rawValue
        case .runt: SHUNT_DROP_RUNT.rawValue
        case .noOutput: SHUNT_DROP_NO_OUTPUT.rawValue
        case .ringUnread: SHUNT_DROP_RING_UNREAD.rawValue
        case .txError: SHUNT_DROP_TX_ERROR.rawValue
        case .outgoing: SHUNT_DROP_OUTGOING.rawValue
        case .noMatch: SHUNT_DROP_NO_MATCH.rawValue
        case .flowDrop: SHUNT_DROP_FLOW_DROP.rawValue
        case .resubmitLimit: SHUNT_DROP_RESUBMIT_LIMIT.rawValue
        case .ttlExpired: SHUNT_DROP_TTL_EXPIRED.rawValue
        case .tunnelMTU: SHUNT_DROP_TUNNEL_MTU.rawValue
        case .tunnelNoNeighbour: SHUNT_DROP_TUNNEL_NO_NEIGHBOUR.rawValue
        case .tunnelVNI: SHUNT_DROP_TUNNEL_VNI.rawValue
        case .tunnelPort: SHUNT_DROP_TUNNEL_PORT.rawValue
        case .tunnelRemote: SHUNT_DROP_TUNNEL_REMOTE.rawValue
        case .tunnelMalformed: SHUNT_DROP_TUNNEL_MALFORMED.rawValue
        case .tunnelNotVXLAN: SHUNT_DROP_TUNNEL_NOT_VXLAN.rawValue
        case .outputDown: SHUNT_DROP_OUTPUT_DOWN.rawValue
        case .bondInactive: SHUNT_DROP_BOND_INACTIVE.rawValue
        }
    }
}
