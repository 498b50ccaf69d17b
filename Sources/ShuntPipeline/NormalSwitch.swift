import ShuntCore

/// What the NORMAL action decided for one packet.
public enum NormalResult: Hashable, Sendable {
    case output(UInt32)
    /// Every port except in_port.
    case flood
    case drop
}

/// NORMAL's MAC learning, kept out of the pipeline so translation stays pure and tests can script it.
public protocol NormalSwitch {
    /// Decides for a packet as it is at the point NORMAL runs, in VLAN `vlan` of bridge
    /// `bridge`; `key.inPort` is the bridge's OpenFlow port number. The pipeline checks that an
    /// `.output` port exists and carries the VLAN.
    mutating func normal(key: FlowKey, bridge: Int, vlan: UInt16) -> NormalResult

    /// The key bits `normal` reads, so cache entries made with NORMAL are not too wide.
    var dependencies: FlowKey { get }
}

extension NormalSwitch {
    /// dl_src (every new source must reach the learner) and dl_dst (the forwarding decision).
    public var dependencies: FlowKey {
        var mask = FlowKey()
        mask.dlSrc = MACAddress(value: .max)
        mask.dlDst = MACAddress(value: .max)
        return mask
    }
}

/// NORMAL over the forwarder's shared `MACLearningTable`, so both paths learn into one table.
// The decision is the table's `switchFrame`, as for `--mode normal`: learns dl_src on in_port,
// sends known unicast to its port, floods multicast and unknown destinations, drops what would
// go back out of in_port. Stations are learned per bridge and VLAN. Results depend on the
// table's state (`Translation.usedNormal`): callers re-translate such entries.
public struct LearningNormalSwitch: NormalSwitch {
    public let table: MACLearningTable
    /// The clock for learning and aging, set by the caller before each translation.
    public var nowMs: UInt64
    /// False for re-translations of cached entries that may be idle (revalidation): learning
    /// from them would move a station back to a port it has left.
    public var learns: Bool

    public init(table: MACLearningTable, nowMs: UInt64, learns: Bool = true) {
        self.table = table
        self.nowMs = nowMs
        self.learns = learns
    }

    public mutating func normal(key: FlowKey, bridge: Int, vlan: UInt16) -> NormalResult {
        // MACLearningTable stores 0-based UInt16 port indexes; OpenFlow ports start at 1.
        let index = key.inPort >= 1 ? UInt16(exactly: key.inPort &- 1) : nil
        switch table.switchFrame(source: key.dlSrc, destination: key.dlDst,
                                 domain: MACLearningTable.domain(bridge: bridge, vlan: vlan), inPort: index,
                                 learns: learns, nowMs: nowMs) {
        case .port(let i):
            return .output(UInt32(i) + 1)
        case .flood:
            return .flood
        case .ingress:
            return .drop
        }
    }
}
