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
    /// Decides for a packet as it is at the point NORMAL runs; ports are numbered 1...portCount.
    mutating func normal(key: FlowKey, portCount: Int) -> NormalResult

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
// go back out of in_port. The table is not per VLAN. Results depend on the table's state
// (`Translation.usedNormal`): callers re-translate such entries.
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

    public mutating func normal(key: FlowKey, portCount: Int) -> NormalResult {
        let inPort = key.inPort
        // MACLearningTable stores 0-based UInt16 port indexes; Shunt ports start at 1.
        let index = UInt16(exactly: inPort &- 1)
        let learnable = learns && Int(inPort) <= min(portCount, Int(UInt16.max))
        switch table.switchFrame(source: key.dlSrc, destination: key.dlDst, inPort: index, learns: learnable,
                                 nowMs: nowMs) {
        case .port(let i):
            let port = UInt32(i) + 1
            // Learned on a port the bridge no longer has: treat as unknown.
            return Int(port) > portCount ? .flood : .output(port)
        case .flood:
            return .flood
        case .ingress:
            return .drop
        }
    }
}
