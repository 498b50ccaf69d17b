import ShuntCore

// The OpenFlow-style flow model: what `ovs-ofctl add-flow` text parses into and what the
// classifier and the translation work on. A match is only a key and a mask; how to print it
// (the `ip`/`tcp`/`arp` shorthands, `arp_spa` rather than `nw_src`) is derived from dl_type and
// nw_proto when printing, as ovs-ofctl does, so two spellings of one match compare equal.

/// A bridge's port names and their OpenFlow numbers, so flows can name ports. Numbered from 1
/// in the order given, or with numbers of the caller's choosing (`ofport` in a configuration).
public struct PortNames: Sendable, Hashable {
    /// The names, in the order given.
    public let names: [String]
    private let numbers: [String: UInt32]
    /// Index: port number; nil where the bridge has no such port.
    private let nameByNumber: [String?]

    /// Ports NORMAL leaves alone: underlays of tunnel ports carry the overlay's outer frames,
    /// so tenant traffic is never switched onto them (as an OVS bridge does not hold its
    /// tunnels' underlay interface). Flows may still name them.
    public let notSwitched: Set<UInt32>

    /// Ports 1...n in order. A name given twice keeps its first number.
    public init(_ names: [String], notSwitched: Set<UInt32> = []) {
        self.init(numbered: names.enumerated().map { ($0.element, UInt32($0.offset + 1)) }, notSwitched: notSwitched)
    }

    /// Ports with the given numbers (at least 1, distinct: the caller checks). A name given
    /// twice keeps its first number.
    public init(numbered: [(name: String, number: UInt32)], notSwitched: Set<UInt32> = []) {
        names = numbered.map(\.name)
        self.notSwitched = notSwitched
        var numbers: [String: UInt32] = [:]
        var byNumber = [String?](repeating: nil, count: Int(numbered.map(\.number).max() ?? 0) + 1)
        for (name, number) in numbered where numbers[name] == nil {
            numbers[name] = number
            byNumber[Int(number)] = name
        }
        self.numbers = numbers
        nameByNumber = byNumber
    }

    public var count: Int { names.count }

    /// Every port number, ascending.
    public var allNumbers: [UInt32] { nameByNumber.indices.filter { nameByNumber[$0] != nil }.map { UInt32($0) } }

    public func number(of name: Substring) -> UInt32? { numbers[String(name)] }

    public func name(of number: UInt32) -> String? {
        Int(number) < nameByNumber.count ? nameByNumber[Int(number)] : nil
    }

    /// Whether `number` is one of these ports (flows may name ports that do not exist yet).
    public func contains(_ number: UInt32) -> Bool {
        Int(number) < nameByNumber.count && nameByNumber[Int(number)] != nil
    }

    public static func == (a: PortNames, b: PortNames) -> Bool {
        a.names == b.names && a.numbers == b.numbers && a.notSwitched == b.notSwitched
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(names)
        hasher.combine(notSwitched)
    }
}

/// Only bits (`key` masked by `mask`), so equal matches compare equal however they were written.
public struct FlowMatch: Hashable, Sendable {
    public private(set) var key: FlowKey
    public private(set) var mask: FlowKey

    /// Matches every packet.
    public init() {
        key = FlowKey()
        mask = FlowKey()
    }

    /// Bits of `key` outside `mask` are cleared.
    public init(key: FlowKey, mask: FlowKey) {
        self.key = key.masked(by: mask)
        self.mask = mask
    }

    /// Whether a packet with this key satisfies the match.
    public func matches(_ packet: FlowKey) -> Bool { packet.masked(by: mask) == key }

    /// Whether `other` accepts every packet this accepts: del-flows' non-strict selection.
    public func isAtLeastAsSpecific(as other: FlowMatch) -> Bool {
        mask.masked(by: other.mask) == other.mask && key.masked(by: other.mask) == other.key
    }
}

/// One OpenFlow action of a rule, before translation flattens the pipeline into datapath actions.
public enum FlowAction: Hashable, Sendable {
    /// Send to a port (dropped silently when it is the packet's in_port, as in OpenFlow).
    case output(UInt32)
    /// Send back out of the port the packet came in on (`in_port`, printed `IN_PORT`).
    case inPort
    /// MAC-learning switching (`NORMAL`), delegated to a `NormalSwitch`.
    case normal
    /// Chains tables; `port` stands in for in_port meanwhile, a nil `table` is the current one.
    case resubmit(port: UInt32?, table: UInt8?)
    case setEthSrc(MACAddress)
    case setEthDst(MACAddress)
    /// Set the VLAN id (0...4095), pushing a tag when the packet has none (`mod_vlan_vid`).
    case setVLANVID(UInt16)
    case stripVLAN
    case decTTL
    case setTunnel(UInt64)
    /// Hand the packet to a group of the bridge (`group:N`, Group.swift).
    case group(UInt32)
}

/// One flow as `ovs-ofctl add-flow` states it; an empty action list is `drop`.
public struct FlowRule: Hashable, Sendable {
    /// The priority of a flow that does not say (OpenFlow's OFP_DEFAULT_PRIORITY).
    public static let defaultPriority: UInt16 = 32768

    /// The bridge the rule belongs to (an index into the `SwitchLayout`; flow text does not
    /// carry it: `ovs-ofctl` names the bridge on its command line).
    public var bridge: UInt16 = 0
    public var table: UInt8
    public var priority: UInt16
    public var match: FlowMatch
    public var actions: [FlowAction]
    public var cookie: UInt64

    public init(
        table: UInt8 = 0, priority: UInt16 = FlowRule.defaultPriority, match: FlowMatch = FlowMatch(),
        actions: [FlowAction], cookie: UInt64 = 0
    ) {
        self.table = table
        self.priority = priority
        self.match = match
        self.actions = actions
        self.cookie = cookie
    }
}

/// Why flow text was rejected, pointing at the offending token so a user can fix a flow file.
public struct FlowParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 1-based line in a flow file; nil for a single flow.
    public var line: Int?
    /// 1-based column of the offending token within its line.
    public var column: Int
    public var reason: String

    public init(line: Int? = nil, column: Int, reason: String) {
        self.line = line
        self.column = column
        self.reason = reason
    }

    public var description: String {
        if let line { return "line \(line), column \(column): \(reason)" }
        return "column \(column): \(reason)"
    }
}
