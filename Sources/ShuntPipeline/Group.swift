import Glibc
import ShuntCore

// OpenFlow groups (`ovs-ofctl add-group`): a flow's `group:N` action hands the packet to a
// group of action buckets. `all` runs every bucket (a flood written by hand), `select` one
// bucket chosen from a hash of the packet's fields (load spreading, multipath next hops),
// `indirect` its one bucket (shared actions), `fast_failover` the first bucket whose watched
// port is up. Each bucket sees the packet as it was at the group action: its changes do not
// reach the actions after it, as in OVS.

/// A group's kind.
public enum GroupType: String, Sendable, Hashable, CaseIterable {
    case all
    case select
    case indirect
    case fastFailover = "fast_failover"
}

/// A packet field a `select` group hashes (`fields(...)`).
public enum GroupHashField: String, Sendable, Hashable, CaseIterable {
    case inPort = "in_port"
    case ethSrc = "eth_src"
    case ethDst = "eth_dst"
    case ethType = "eth_type"
    case vlanTCI = "vlan_tci"
    case ipSrc = "ip_src"
    case ipDst = "ip_dst"
    case ipProto = "ip_proto"
    case tpSrc = "tp_src"
    case tpDst = "tp_dst"

    /// Other spellings `ovs-ofctl` accepts for the same field.
    static let aliases: [String: GroupHashField] = [
        "dl_src": .ethSrc, "dl_dst": .ethDst, "dl_type": .ethType, "nw_src": .ipSrc, "nw_dst": .ipDst,
        "ipv6_src": .ipSrc, "ipv6_dst": .ipDst, "nw_proto": .ipProto, "tcp_src": .tpSrc, "tcp_dst": .tpDst,
        "udp_src": .tpSrc, "udp_dst": .tpDst, "sctp_src": .tpSrc, "sctp_dst": .tpDst,
    ]

    public static func named(_ name: Substring) -> GroupHashField? {
        GroupHashField(rawValue: String(name)) ?? aliases[String(name)]
    }

    /// What a `select` group hashes when it names no fields: the 5-tuple and the EtherType (as
    /// Linux bonding's `layer3+4`); non-IP packets hash their MACs instead.
    public static let defaults: [GroupHashField] = [.ethType, .ipSrc, .ipDst, .ipProto, .tpSrc, .tpDst]
}

/// One bucket of a group.
public struct GroupBucket: Sendable, Hashable {
    /// The bucket's number within its group (`bucket_id`; by default its position).
    public var id: UInt32
    /// Its share of a `select` group's flows (`weight`, default 1; 0 takes none).
    public var weight: UInt16
    /// The OpenFlow port whose link state makes the bucket live (`watch_port`); nil: always live.
    public var watchPort: UInt32?
    public var actions: [FlowAction]

    public init(id: UInt32, weight: UInt16 = 1, watchPort: UInt32? = nil, actions: [FlowAction]) {
        self.id = id
        self.weight = weight
        self.watchPort = watchPort
        self.actions = actions
    }
}

/// A group as `ovs-ofctl add-group` states it.
public struct FlowGroup: Sendable, Hashable {
    /// The highest group id (OpenFlow's OFPG_MAX; the ids above are reserved).
    public static let maxID: UInt32 = 0xffff_ff00
    /// The bridge it belongs to (an index into the `SwitchLayout`).
    public var bridge: UInt16 = 0
    public var id: UInt32
    public var type: GroupType
    /// `select` only: the fields hashed (`selection_method=hash,fields(...)`); empty means
    /// `GroupHashField.defaults`.
    public var fields: [GroupHashField]
    public var buckets: [GroupBucket]

    public init(id: UInt32, type: GroupType, fields: [GroupHashField] = [], buckets: [GroupBucket]) {
        self.id = id
        self.type = type
        self.fields = fields
        self.buckets = buckets
    }

    /// The fields a `select` group hashes.
    public var hashedFields: [GroupHashField] { fields.isEmpty ? GroupHashField.defaults : fields }
}

/// The choice of a `select` group, shared by every path that chooses (the translation that
/// fills both datapaths' caches, and the tests).
public enum GroupSelection {
    /// The hash of `fields` of `key`, and the key bits the hash read (for the megaflow mask).
    public static func hash(_ key: FlowKey, fields: [GroupHashField]) -> (hash: UInt64, read: FlowKey) {
        var h: UInt64 = 0x5348_554e_5447_5250  // any fixed start
        var read = FlowKey()
        let isIP = key.dlType == 0x0800 || key.dlType == 0x86dd
        let hasPorts = isIP && (key.nwProto == 6 || key.nwProto == 17 || key.nwProto == 132)
        var l3Fields = 0
        func mix(_ v: UInt64) { h = splitmix(h ^ v) }
        for f in fields {
            switch f {
            case .inPort: mix(UInt64(key.inPort)); read.inPort = .max
            case .ethSrc: mix(key.dlSrc.value); read.dlSrc = MACAddress(value: 0xffff_ffff_ffff)
            case .ethDst: mix(key.dlDst.value); read.dlDst = MACAddress(value: 0xffff_ffff_ffff)
            case .ethType: mix(UInt64(key.dlType)); read.dlType = .max
            case .vlanTCI: mix(UInt64(key.vlanTCI & 0x1fff)); read.vlanTCI = 0x1fff
            case .ipSrc where isIP:
                l3Fields += 1
                withUnsafeBytes(of: key.raw.nw_src) { mix($0.loadUnaligned(as: UInt64.self)); mix($0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) ^ 1) }
                read.raw.nw_src = Self.allOnes(read.raw.nw_src)
            case .ipDst where isIP:
                l3Fields += 1
                withUnsafeBytes(of: key.raw.nw_dst) { mix($0.loadUnaligned(as: UInt64.self) ^ 2); mix($0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) ^ 3) }
                read.raw.nw_dst = Self.allOnes(read.raw.nw_dst)
            case .ipProto where isIP: mix(UInt64(key.nwProto)); read.nwProto = .max
            case .tpSrc where hasPorts: mix(UInt64(key.tpSrc) | 0x10000); read.tpSrc = .max
            case .tpDst where hasPorts: mix(UInt64(key.tpDst) | 0x20000); read.tpDst = .max
            case .ipSrc, .ipDst, .ipProto, .tpSrc, .tpDst: break
            }
        }
        // A non-IP packet under an L3 hash would land on one bucket: spread it by its MACs.
        if !isIP && fields.contains(where: { $0 == .ipSrc || $0 == .ipDst }) && l3Fields == 0 {
            mix(key.dlSrc.value)
            mix(key.dlDst.value)
            read.dlSrc = MACAddress(value: 0xffff_ffff_ffff)
            read.dlDst = MACAddress(value: 0xffff_ffff_ffff)
        }
        // Whether the ports were hashed depends on the protocol.
        if fields.contains(.tpSrc) || fields.contains(.tpDst) { read.nwProto = .max }
        read.dlType = .max
        return (h, read)
    }

    /// Weighted rendezvous hashing: each live bucket with a weight draws an exponential
    /// variable from (hash, bucket id) scaled by 1/weight, the smallest wins. A bucket wins a
    /// share of flows equal to its share of the weights, and a flow moves only when its bucket
    /// leaves (or a new bucket wins it): the others keep their flows. nil when no bucket can
    /// be chosen.
    public static func choose(hash: UInt64, buckets: [GroupBucket], isLive: (GroupBucket) -> Bool) -> Int? {
        var best: Int? = nil
        var bestScore = Double.infinity
        for (i, b) in buckets.enumerated() where b.weight > 0 && isLive(b) {
            let r = splitmix(hash ^ splitmix(UInt64(b.id) &+ 0x9e37_79b9))
            // A uniform draw in (0, 1]: never 0, so the log is finite.
            let u = (Double(r >> 11) + 1) * 0x1p-53
            let score = -log(u) / Double(b.weight)
            if score < bestScore {
                bestScore = score
                best = i
            }
        }
        return best
    }

    /// One of `members` (not empty) by rendezvous hashing with equal weights: a flow stays on
    /// its member until that member leaves.
    public static func chooseMember(hash: UInt64, _ members: [UInt32]) -> UInt32 {
        var best = members[0]
        var bestScore: UInt64 = 0
        for m in members {
            let score = splitmix(hash ^ splitmix(UInt64(m) &+ 0x6a09_e667))
            if score >= bestScore {
                bestScore = score
                best = m
            }
        }
        return best
    }

    @inline(__always)
    static func splitmix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    private static func allOnes<T>(_ value: T) -> T {
        var v = value
        withUnsafeMutableBytes(of: &v) { for i in $0.indices { $0[i] = 0xff } }
        return v
    }
}
