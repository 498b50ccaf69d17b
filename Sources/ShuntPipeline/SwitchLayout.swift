import ShuntCore

// The bridges of one forwarder, as translation sees them (docs/design/0022-bridges.md).
//
// The datapath has one flat list of ports, numbered from 1: the interfaces, then the tunnels.
// Those numbers are what packet keys, cache entries, counters and mirrors use. Bridges exist
// only in translation, as in OVS: each bridge numbers its own ports (OpenFlow ports, `ofport`),
// a bridge port is either a datapath port or a patch port, and a packet that leaves a patch
// port enters the peer bridge's table 0 inside the same translation, so the whole path is one
// cache entry.

/// How a bridge port connects.
public enum BridgePortKind: Sendable, Hashable {
    /// A port of the datapath (an interface or a tunnel), by its datapath port number.
    case datapath(UInt32)
    /// A patch port: a packet sent to it enters bridge `bridge` on that bridge's port `port`.
    case patch(bridge: Int, port: UInt32)
    /// A bond over datapath ports (interfaces): frames from any member enter as this port, and
    /// a frame sent to it leaves on one live member, chosen by `mode`.
    case bond(members: [UInt32], mode: BondMode)
}

/// How a bond picks the member a frame leaves on.
public enum BondMode: Sendable, Hashable {
    /// A hash of `fields` over the live members (Linux bonding's balance-xor with an
    /// `xmit_hash_policy`): a flow stays on its member while that member is up.
    case balance(fields: [GroupHashField])
    /// The first live member, in the order given (Linux bonding's active-backup).
    case activeBackup

    /// Linux bonding's `xmit_hash_policy` names (and the short forms), as hashed fields.
    public static func hashPolicy(_ name: String) -> [GroupHashField]? {
        switch name {
        case "layer2", "l2": [.ethSrc, .ethDst]
        case "layer2+3", "l2+l3": [.ethSrc, .ethDst, .ipSrc, .ipDst]
        case "layer3+4", "l3+l4": [.ipSrc, .ipDst, .ipProto, .tpSrc, .tpDst]
        default: nil
        }
    }
}

/// One port of a bridge.
public struct BridgePort: Sendable, Hashable {
    public var name: String
    /// The OpenFlow port number flows use.
    public var ofport: UInt32
    public var kind: BridgePortKind
    /// Access VLAN (OVS's `tag`): NORMAL takes this port's untagged frames as members of the
    /// VLAN, refuses its tagged ones, and sends frames of the VLAN out of it untagged.
    public var tag: UInt16?
    /// The VLANs a trunk port (no `tag`) carries; nil carries them all. VLAN 0 is untagged.
    public var trunks: Set<UInt16>?
    /// False for a port NORMAL neither learns from nor sends to (a tunnel's underlay in the
    /// single-bridge form); flows may still use it.
    public var switched: Bool

    public init(name: String, ofport: UInt32, kind: BridgePortKind, tag: UInt16? = nil, trunks: Set<UInt16>? = nil,
                switched: Bool = true) {
        self.name = name
        self.ofport = ofport
        self.kind = kind
        self.tag = tag
        self.trunks = trunks
        self.switched = switched
    }

    /// Whether NORMAL may send frames of `vlan` out of this port.
    @inline(__always) func carries(_ vlan: UInt16) -> Bool {
        if let tag { return tag == vlan }
        return trunks?.contains(vlan) ?? true
    }
}

/// One bridge: its name and ports.
public struct Bridge: Sendable {
    public let name: String
    /// Names and numbers, for parsing and printing flows of this bridge.
    public let portNames: PortNames
    /// The ports, by ascending ofport.
    public let ports: [BridgePort]
    /// Index: ofport.
    private let byNumber: [BridgePort?]

    public init(name: String, ports: [BridgePort]) {
        self.name = name
        let sorted = ports.sorted { $0.ofport < $1.ofport }
        self.ports = sorted
        var byNumber = [BridgePort?](repeating: nil, count: Int(sorted.last?.ofport ?? 0) + 1)
        for p in sorted { byNumber[Int(p.ofport)] = p }
        self.byNumber = byNumber
        portNames = PortNames(numbered: ports.map { ($0.name, $0.ofport) },
                              notSwitched: Set(ports.filter { !$0.switched }.map(\.ofport)))
    }

    @inline(__always) public func port(_ ofport: UInt32) -> BridgePort? {
        Int(ofport) < byNumber.count ? byNumber[Int(ofport)] : nil
    }
}

/// Every bridge of a forwarder and where each datapath port belongs.
public struct SwitchLayout: Sendable {
    public let bridges: [Bridge]
    /// Index: datapath port number; the bridge and ofport that port is, nil when it is in no
    /// bridge (a tunnel's underlay interface).
    private let owners: [(bridge: Int, ofport: UInt32)?]

    /// `bridges` must be consistent: distinct ofports per bridge, patch peers that exist, each
    /// datapath port in at most one bridge (`ForwarderPlan` checks configurations).
    public init(bridges: [Bridge]) {
        self.bridges = bridges
        var owners: [(bridge: Int, ofport: UInt32)?] = []
        for (b, bridge) in bridges.enumerated() {
            for port in bridge.ports {
                let datapathPorts: [UInt32]
                switch port.kind {
                case .datapath(let dp): datapathPorts = [dp]
                case .bond(let members, _): datapathPorts = members
                case .patch: continue
                }
                for dp in datapathPorts {
                    if owners.count <= Int(dp) { owners += Array(repeating: nil, count: Int(dp) + 1 - owners.count) }
                    owners[Int(dp)] = (b, port.ofport)
                }
            }
        }
        self.owners = owners
    }

    /// One bridge over datapath ports 1...n, each ofport its datapath number: the forwarder
    /// configured on the command line, without bridges.
    public static func single(_ names: PortNames, name: String = "br0") -> SwitchLayout {
        let ports = names.allNumbers.map { n in
            BridgePort(name: names.name(of: n)!, ofport: n, kind: .datapath(n), switched: !names.notSwitched.contains(n))
        }
        return SwitchLayout(bridges: [Bridge(name: name, ports: ports)])
    }

    /// The bridge and ofport of datapath port `port`.
    @inline(__always) public func owner(of port: UInt32) -> (bridge: Int, ofport: UInt32)? {
        Int(port) < owners.count ? owners[Int(port)] : nil
    }

    /// The index of the bridge called `name`.
    public func bridgeIndex(named name: String) -> Int? { bridges.firstIndex { $0.name == name } }
}
