import FoundationEssentials

// What `shunt ctl show | dump-flows | dump-cache | mirror list` and `shunt forward`'s statistics
// lines report, as Codable values. The JSON names are a stable interface (README, "Control
// socket"); the text forms are rendered from the same values (StatusText.swift), so the two
// cannot drift apart.

/// Counts by name in a fixed order (the drop reasons'), which the text forms keep; in JSON an object.
public struct NamedCounts: Codable, Equatable, Sendable {
    public var items: [(name: String, value: UInt64)]

    public init(_ items: [(name: String, value: UInt64)]) { self.items = items }

    public subscript(name: String) -> UInt64? { items.first { $0.name == name }?.value }

    /// The same counts, whatever their order (JSON keeps none).
    public static func == (a: NamedCounts, b: NamedCounts) -> Bool {
        let x = a.items.sorted { $0.name < $1.name }, y = b.items.sorted { $0.name < $1.name }
        return x.map(\.name) == y.map(\.name) && x.map(\.value) == y.map(\.value)
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        for item in items { try c.encode(item.value, forKey: Key(stringValue: item.name)) }
    }

    public init(from decoder: any Decoder) throws {
        // Only the numbers: a mirror session's counters share its object with its settings.
        let c = try decoder.container(keyedBy: Key.self)
        items = c.allKeys.compactMap { k in (try? c.decode(UInt64.self, forKey: k)).map { (k.stringValue, $0) } }
            .sorted { $0.0 < $1.0 }
    }
}

/// One datapath's counters in OVS's vocabulary (`show`'s `datapaths.*` and `total`).
public struct PathStatus: Codable, Equatable, Sendable {
    public var fastPathHits: UInt64 = 0
    public var slowPathPackets: UInt64 = 0
    public var upcalls: UInt64 = 0
    public var lostUpcalls: UInt64 = 0
    public var cacheEntries: UInt64 = 0
    public var revalidations: UInt64 = 0
    public var expirations: UInt64 = 0
    /// Microseconds, two decimals.
    public var avgUpcallUs: Double = 0
    // Userspace only.
    public var packets: UInt64?
    public var checksumPending: UInt64?
    // XDP only.
    public var hitBytes: UInt64?
    public var misses: UInt64?
    public var userspace: UInt64?
    public var malformed: UInt64?
    public var notAPort: UInt64?
    public var redirectErrors: UInt64?
    public var cacheFull: UInt64?
    public var installErrors: UInt64?
    public var mapErrors: UInt64?
    public var revalidationChanges: UInt64?
    /// The kernel cache's capacity (--cache-size).
    public var cacheLimit: UInt64?
    public var drops: NamedCounts?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case fastPathHits = "fast_path_hits", slowPathPackets = "slow_path_packets", upcalls
        case lostUpcalls = "lost_upcalls", cacheEntries = "cache_entries", revalidations, expirations
        case avgUpcallUs = "avg_upcall_us", packets, checksumPending = "checksum_pending", hitBytes = "hit_bytes"
        case misses, userspace, malformed, notAPort = "not_a_port", redirectErrors = "redirect_errors"
        case cacheFull = "cache_full", installErrors = "install_errors", mapErrors = "map_errors"
        case revalidationChanges = "revalidation_changes", cacheLimit = "cache_limit", drops
    }
}

/// A tunnel port's VNI: a number, or "flow" (taken from set_tunnel / tun_id).
public enum VNIStatus: Codable, Equatable, Sendable {
    case fixed(UInt32)
    case flow

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .fixed(let v): try c.encode(v)
        case .flow: try c.encode("flow")
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(UInt32.self) { self = .fixed(v) } else { self = .flow }
    }
}

/// What the XDP fast path did for a tunnel port.
public struct TunnelFastPathStatus: Codable, Equatable, Sendable {
    public var encapsulates: Bool
    /// Decapsulated in XDP.
    public var rxPackets: UInt64
    /// Encapsulated in XDP.
    public var txPackets: UInt64

    enum CodingKeys: String, CodingKey { case encapsulates, rxPackets = "rx_packets", txPackets = "tx_packets" }
}

/// A port in `show`: an interface (number, name, ifindex, xdp_mode) or a VXLAN tunnel port.
public struct PortStatus: Codable, Equatable, Sendable {
    public var number: UInt32
    public var name: String
    public var ifindex: Int32?
    /// XDP datapath: how the program is attached ("native", "generic").
    public var xdpMode: String?
    /// Flow mode, interfaces: "up", or why the port is down ("down (no carrier)", ...).
    public var link: String?
    public var tunnel: TunnelStatus?

    public struct TunnelStatus: Equatable, Sendable {
        public var local: String
        public var remote: String
        public var dev: String
        public var vni: VNIStatus
        public var dstport: UInt16
        /// nil: unresolved (JSON null).
        public var nextHop: String?
        /// reachable, stale, unresolved
        public var neighbour: String
        public var fastPath: TunnelFastPathStatus?
    }

    enum CodingKeys: String, CodingKey {
        case number, name, ifindex, xdpMode = "xdp_mode", link, type, local, remote, dev, vni, dstport
        case nextHop = "next_hop", neighbour, fastPath = "fast_path"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(number, forKey: .number)
        try c.encode(name, forKey: .name)
        try c.encodeIfPresent(ifindex, forKey: .ifindex)
        try c.encodeIfPresent(xdpMode, forKey: .xdpMode)
        try c.encodeIfPresent(link, forKey: .link)
        guard let t = tunnel else { return }
        try c.encode("vxlan", forKey: .type)
        try c.encode(t.local, forKey: .local)
        try c.encode(t.remote, forKey: .remote)
        try c.encode(t.dev, forKey: .dev)
        try c.encode(t.vni, forKey: .vni)
        try c.encode(t.dstport, forKey: .dstport)
        try c.encode(t.nextHop, forKey: .nextHop)  // null while unresolved
        try c.encode(t.neighbour, forKey: .neighbour)
        try c.encodeIfPresent(t.fastPath, forKey: .fastPath)
    }

    public init(number: UInt32, name: String, ifindex: Int32? = nil, xdpMode: String? = nil, tunnel: TunnelStatus? = nil) {
        self.number = number
        self.name = name
        self.ifindex = ifindex
        self.xdpMode = xdpMode
        self.tunnel = tunnel
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        number = try c.decode(UInt32.self, forKey: .number)
        name = try c.decode(String.self, forKey: .name)
        ifindex = try c.decodeIfPresent(Int32.self, forKey: .ifindex)
        xdpMode = try c.decodeIfPresent(String.self, forKey: .xdpMode)
        link = try c.decodeIfPresent(String.self, forKey: .link)
        guard try c.decodeIfPresent(String.self, forKey: .type) == "vxlan" else { return }
        tunnel = TunnelStatus(
            local: try c.decode(String.self, forKey: .local), remote: try c.decode(String.self, forKey: .remote),
            dev: try c.decode(String.self, forKey: .dev), vni: try c.decode(VNIStatus.self, forKey: .vni),
            dstport: try c.decode(UInt16.self, forKey: .dstport), nextHop: try c.decodeIfPresent(String.self, forKey: .nextHop),
            neighbour: try c.decode(String.self, forKey: .neighbour),
            fastPath: try c.decodeIfPresent(TunnelFastPathStatus.self, forKey: .fastPath))
    }
}

/// `shunt ctl show`. Without flow tables only mode, workers and ports are set.
public struct ShowStatus: Codable, Equatable, Sendable {
    public var mode: String
    public var datapath: String?
    public var workers: Int
    public var flows: Int?
    public var generation: UInt64?
    public var ports: [PortStatus]
    /// Flow mode: the bridges over the ports.
    public var bridges: [BridgeStatus]? = nil
    public var datapaths: Datapaths?
    public var total: PathStatus?

    public struct Datapaths: Codable, Equatable, Sendable {
        public var xdp: PathStatus?
        public var userspace: PathStatus
    }
}

/// One bridge in `show`: its ports with their OpenFlow numbers.
public struct BridgeStatus: Codable, Equatable, Sendable {
    public var name: String
    public var ports: [Port]

    public struct Port: Codable, Equatable, Sendable {
        public var name: String
        public var ofport: UInt32
        /// interface, vxlan or patch.
        public var type: String
        /// The datapath port (the `port N` of `show`); absent for patch ports.
        public var port: UInt32?
        /// Access VLAN.
        public var tag: UInt16?
        /// The VLANs a trunk carries; absent: all (or an access port).
        public var trunks: [UInt16]?
        /// Patch ports: the peer port and its bridge.
        public var peer: String?
        public var peerBridge: String?
        /// False for a tunnel underlay NORMAL leaves alone.
        public var switched: Bool
        /// Bonds: the members' datapath ports, and "balance" or "active-backup".
        public var members: [UInt32]? = nil
        public var bondMode: String? = nil

        enum CodingKeys: String, CodingKey {
            case name, ofport, type, port, tag, trunks, peer, peerBridge = "peer_bridge", switched, members
            case bondMode = "bond_mode"
        }
    }
}

/// `shunt ctl fdb-show`: the MAC table of one bridge, as `ovs-appctl fdb/show`.
public struct FDBStatus: Codable, Equatable, Sendable {
    public var bridge: String
    public var entries: [Entry]

    public struct Entry: Codable, Equatable, Sendable {
        public var port: String
        public var ofport: UInt32
        public var vlan: UInt16
        public var mac: String
        /// Seconds since the station was last seen (refreshed at most once a second).
        public var ageS: UInt64

        enum CodingKeys: String, CodingKey { case port, ofport, vlan, mac, ageS = "age_s" }
    }
}

/// `shunt ctl trace`: a packet's way through the bridges, as `ovs-appctl ofproto/trace`.
public struct TraceStatus: Codable, Equatable, Sendable {
    /// The packet, as its key prints.
    public var packet: String
    public var bridge: String
    public var steps: [Step]
    /// The flat action list a cache entry holds, in `dump-cache` syntax; "drop" when dropped.
    public var datapathActions: String
    public var dropReason: String?
    /// Whether the XDP fast path can hold and execute the result as one cache entry.
    public var cacheable: Bool
    /// Why (not).
    public var cacheNote: String

    public struct Step: Codable, Equatable, Sendable {
        public var depth: Int
        /// bridge, rule, miss, normal, output, skipped, limit, no_bridge
        public var kind: String
        public var bridge: String?
        public var table: UInt8?
        /// The matched rule, in dump-flows syntax.
        public var rule: String?
        public var detail: String?
    }

    enum CodingKeys: String, CodingKey {
        case packet, bridge, steps, datapathActions = "datapath_actions", dropReason = "drop_reason", cacheable
        case cacheNote = "cache_note"
    }
}

/// `shunt ctl dump-flows`.
public struct FlowDumpStatus: Codable, Equatable, Sendable {
    public var flows: [Flow]

    public struct Flow: Codable, Equatable, Sendable {
        public var table: UInt8
        public var priority: UInt16
        public var cookie: UInt64
        public var nPackets: UInt64
        public var nBytes: UInt64
        /// In ovs-ofctl syntax; parses back with add-flow.
        public var flow: String
        /// The dump-flows text line (not in JSON).
        var line: String = ""

        enum CodingKeys: String, CodingKey { case table, priority, cookie, nPackets = "n_packets", nBytes = "n_bytes", flow }
    }
}

/// `shunt ctl dump-cache`: the kernel cache's entries, then each worker's exact-match cache.
public struct CacheDumpStatus: Codable, Equatable, Sendable {
    public var entries: [Entry]
    /// Workers that did not hand over their cache in time (absent when all did).
    public var unansweredWorkers: [Int]?

    enum CodingKeys: String, CodingKey { case entries, unansweredWorkers = "unanswered_workers" }

    public struct Entry: Codable, Equatable, Sendable {
        /// "xdp" or "userspace"
        public var path: String
        public var worker: Int?
        public var key: String
        public var actions: String
        /// XDP: the kernel passes the flow's packets up.
        public var userspace: Bool?
        public var packets: UInt64
        public var bytes: UInt64
        public var idleMs: UInt64

        enum CodingKeys: String, CodingKey { case path, worker, key, actions, userspace, packets, bytes, idleMs = "idle_ms" }
    }
}

/// `shunt ctl mirror list`, and the `mirrors` line of `shunt forward`'s final output.
public struct MirrorListStatus: Codable, Equatable, Sendable {
    /// "mirrors" in `shunt forward --json`'s output lines; absent in `shunt ctl mirror list`.
    public var type: String?
    public var mirrors: [Session]

    public struct Session: Codable, Equatable, Sendable {
        public var name: String
        public var sources: [String]
        public var direction: String
        public var output: String
        /// port, tunnel or pcap
        public var outputType: String
        public var sample: UInt32
        /// 0: whole frames.
        public var snaplen: UInt32
        public var match: String?
        public var spec: String
        /// selected, mirrored, sampled_out, truncated, dropped and their `_bytes`, in that order.
        public var counts: NamedCounts
        public var fastPathMirrored: UInt64
        public var drops: NamedCounts

        enum CodingKeys: String, CodingKey {
            case name, sources, direction, output, outputType = "output_type", sample, snaplen, match, spec
            case fastPathMirrored = "fast_path_mirrored", drops
        }

        public func count(_ name: String) -> UInt64 { counts[name] ?? 0 }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(sources, forKey: .sources)
            try c.encode(direction, forKey: .direction)
            try c.encode(output, forKey: .output)
            try c.encode(outputType, forKey: .outputType)
            try c.encode(sample, forKey: .sample)
            try c.encode(snaplen, forKey: .snaplen)
            try c.encode(match, forKey: .match)  // null without one
            try c.encode(spec, forKey: .spec)
            try counts.encode(to: encoder)  // the counters sit at the top level of the session
            try c.encode(fastPathMirrored, forKey: .fastPathMirrored)
            try c.encode(drops, forKey: .drops)
        }

        public init(name: String, sources: [String], direction: String, output: String, outputType: String, sample: UInt32,
                    snaplen: UInt32, match: String?, spec: String, counts: NamedCounts, fastPathMirrored: UInt64,
                    drops: NamedCounts) {
            (self.name, self.sources, self.direction, self.output, self.outputType) = (name, sources, direction, output, outputType)
            (self.sample, self.snaplen, self.match, self.spec) = (sample, snaplen, match, spec)
            (self.counts, self.fastPathMirrored, self.drops) = (counts, fastPathMirrored, drops)
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            sources = try c.decode([String].self, forKey: .sources)
            direction = try c.decode(String.self, forKey: .direction)
            output = try c.decode(String.self, forKey: .output)
            outputType = try c.decode(String.self, forKey: .outputType)
            sample = try c.decode(UInt32.self, forKey: .sample)
            snaplen = try c.decode(UInt32.self, forKey: .snaplen)
            match = try c.decodeIfPresent(String.self, forKey: .match)
            spec = try c.decode(String.self, forKey: .spec)
            fastPathMirrored = try c.decode(UInt64.self, forKey: .fastPathMirrored)
            drops = try c.decode(NamedCounts.self, forKey: .drops)
            let all = try NamedCounts(from: decoder)
            counts = NamedCounts(MirrorCounters.Field.reported.map { ($0.jsonName, all[$0.jsonName] ?? 0) })
        }
    }
}

/// One statistics line of `shunt forward` (`--stats-interval`, and the final one).
public struct StatsStatus: Codable, Equatable, Sendable {
    /// "stats" or "final"
    public var type: String
    public var elapsedS: Double
    public var ports: [Port]
    public var workers: [Worker]
    /// XDP datapath: what the kernel fast path did per port.
    public var fastPath: [Port]?

    enum CodingKeys: String, CodingKey { case type, elapsedS = "elapsed_s", ports, workers, fastPath = "fast_path" }

    public struct Worker: Codable, Equatable, Sendable {
        public var worker: Int
        public var ports: [Port]
    }

    public struct Port: Codable, Equatable, Sendable {
        public var port: String
        public var rxPackets, rxBytes, txPackets, txBytes, rxDropped, txDropped: UInt64
        public var rxDrops, txDrops: NamedCounts
        public var kernelOffered, rxDecapsulated, txEncapsulated, rxLocal, txLocal: UInt64
        /// With rates: since the previous line.
        public var rxPps, txPps: Int?
        /// The same rates unrounded, for the text form (not in JSON).
        var rxRate, txRate: Double?

        enum CodingKeys: String, CodingKey {
            case port, rxPackets = "rx_packets", rxBytes = "rx_bytes", txPackets = "tx_packets", txBytes = "tx_bytes"
            case rxDropped = "rx_dropped", txDropped = "tx_dropped", rxDrops = "rx_drops", txDrops = "tx_drops"
            case kernelOffered = "kernel_offered", rxDecapsulated = "rx_decapsulated", txEncapsulated = "tx_encapsulated"
            case rxLocal = "rx_local", txLocal = "tx_local", rxPps = "rx_pps", txPps = "tx_pps"
        }
    }
}

/// The JSON of a status value: one line, keys sorted (stable for diffs and scripts).
public enum StatusJSON {
    public static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
