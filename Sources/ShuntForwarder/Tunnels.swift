import ShuntCore
import Synchronization

/// A VXLAN tunnel port as configured (`--vxlan NAME,local=IP,remote=IP,dev=IFACE,...`), before
/// its underlay interface is resolved to a port number.
public struct TunnelSpec: Sendable, Equatable {
    public var name: String
    public var local: IPv4Address
    public var remote: IPv4Address
    /// The underlay interface: one of the forwarder's --port interfaces.
    public var device: String
    /// nil: `vni=flow` (the VNI is the packet's tun_id).
    public var vni: UInt32?
    public var destinationPort: UInt16 = VXLAN.defaultPort
    public var sourcePortMin: UInt16 = 32768
    public var sourcePortMax: UInt16 = 61000
    public var ttl: UInt8 = 64
    public var dontFragment = false
    public var udpChecksum = false
    public var remoteMAC: MACAddress?

    public init(name: String, local: IPv4Address, remote: IPv4Address, device: String, vni: UInt32?) {
        self.name = name
        self.local = local
        self.remote = remote
        self.device = device
        self.vni = vni
    }

    /// The keys `parse` accepts, for messages.
    public static let syntax =
        "NAME,local=IP,remote=IP,dev=IFACE[,vni=N|flow][,dstport=N][,srcport=MIN-MAX][,ttl=N][,df][,udpcsum][,remote_mac=MAC]"

    /// Parses the `--vxlan` form. Errors are one line naming the tunnel and the bad part.
    public static func parse(_ text: String) throws(TunnelSpecError) -> TunnelSpec {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard let name = parts.first, !name.isEmpty, !name.contains("=") else {
            throw TunnelSpecError("'\(text)': start with the tunnel port's name: \(syntax)")
        }
        var fields: [String: String] = [:]
        for part in parts.dropFirst() {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            let key = kv.first ?? ""
            guard !key.isEmpty else { throw TunnelSpecError("tunnel \(name): empty field in '\(text)'") }
            guard fields[key] == nil else { throw TunnelSpecError("tunnel \(name): \(key) is given twice") }
            fields[key] = kv.count == 2 ? kv[1] : ""
        }
        return try make(name: name, fields: fields)
    }

    /// A tunnel from its name and `key: value` fields (the `--vxlan` keys; flags such as `df`
    /// have the value ""). Shared by `--vxlan` and the configuration file.
    public static func make(name: String, fields: [String: String]) throws(TunnelSpecError) -> TunnelSpec {
        var fields = fields
        guard !name.isEmpty, name.utf8.count <= 15, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw TunnelSpecError("tunnel name '\(name)': use 1 to 15 letters, digits, '-', '_' or '.'")
        }
        func required(_ key: String) throws(TunnelSpecError) -> String {
            guard let v = fields.removeValue(forKey: key), !v.isEmpty else {
                throw TunnelSpecError("tunnel \(name): \(key)= is missing (\(syntax))")
            }
            return v
        }
        func address(_ key: String) throws(TunnelSpecError) -> IPv4Address {
            let v = try required(key)
            guard let a = IPv4Address(v) else { throw TunnelSpecError("tunnel \(name): \(key)=\(v) is not an IPv4 address") }
            return a
        }
        let local = try address("local")
        let remote = try address("remote")
        let device = try required("dev")
        guard local != remote else { throw TunnelSpecError("tunnel \(name): local and remote are both \(local)") }
        for (key, a) in [("local", local), ("remote", remote)] where a.value == 0 || a.value >> 28 == 0xE || a.value == .max {
            throw TunnelSpecError("tunnel \(name): \(key)=\(a) must be a unicast address")
        }
        var vni: UInt32? = 0
        if let v = fields.removeValue(forKey: "vni") {
            if v == "flow" {
                vni = nil
            } else {
                guard let n = UInt32(v), n <= VXLAN.maxVNI else {
                    throw TunnelSpecError("tunnel \(name): vni=\(v) must be 0...16777215 (24 bits) or flow")
                }
                vni = n
            }
        }
        var spec = TunnelSpec(name: name, local: local, remote: remote, device: device, vni: vni)
        if let v = fields.removeValue(forKey: "dstport") {
            guard let n = UInt16(v), n != 0 else { throw TunnelSpecError("tunnel \(name): dstport=\(v) must be 1...65535") }
            spec.destinationPort = n
        }
        if let v = fields.removeValue(forKey: "srcport") {
            let r = v.split(separator: "-").map { UInt16($0) }
            guard r.count == 2, let lo = r[0], let hi = r[1], lo > 0, lo <= hi, hi < .max else {
                throw TunnelSpecError("tunnel \(name): srcport=\(v) must be MIN-MAX within 1...65534")
            }
            spec.sourcePortMin = lo
            spec.sourcePortMax = hi + 1
        }
        if let v = fields.removeValue(forKey: "ttl") {
            guard let n = UInt8(v), n > 0 else { throw TunnelSpecError("tunnel \(name): ttl=\(v) must be 1...255") }
            spec.ttl = n
        }
        for flag in ["df", "udpcsum"] {
            guard let v = fields.removeValue(forKey: flag) else { continue }
            guard v.isEmpty else { throw TunnelSpecError("tunnel \(name): \(flag) takes no value") }
            if flag == "df" { spec.dontFragment = true } else { spec.udpChecksum = true }
        }
        if let v = fields.removeValue(forKey: "remote_mac") {
            guard let mac = MACAddress(v), !mac.isMulticast, mac.value != 0 else {
                throw TunnelSpecError("tunnel \(name): remote_mac=\(v) is not a unicast MAC address")
            }
            spec.remoteMAC = mac
        }
        if let key = fields.keys.sorted().first {
            throw TunnelSpecError("tunnel \(name): unknown field '\(key)' (\(syntax))")
        }
        return spec
    }

    /// The tunnel port with its number and its underlay's; throws if `dev` is not a port.
    public func resolve(port: UInt32, interfaces: [String]) throws(TunnelSpecError) -> TunnelPort {
        guard let i = interfaces.firstIndex(of: device) else {
            throw TunnelSpecError("tunnel \(name): dev=\(device) is not one of the --port interfaces (\(interfaces.joined(separator: ", "))); the underlay must be a port")
        }
        var t = TunnelPort(name: name, port: port, underlayPort: UInt32(i + 1), local: local, remote: remote, vni: vni)
        t.destinationPort = destinationPort
        t.sourcePortMin = sourcePortMin
        t.sourcePortMax = sourcePortMax
        t.ttl = ttl
        t.dontFragment = dontFragment
        t.udpChecksum = udpChecksum
        t.remoteMAC = remoteMAC
        return t
    }

    /// Resolves every spec (numbered after the interfaces, in order) and checks them together:
    /// names unique among ports and tunnels, no two tunnels that would claim the same packets.
    public static func resolveAll(_ specs: [TunnelSpec], interfaces: [String]) throws(TunnelSpecError) -> [TunnelPort] {
        var names = Set(interfaces)
        var out: [TunnelPort] = []
        for (i, spec) in specs.enumerated() {
            guard names.insert(spec.name).inserted else {
                throw TunnelSpecError("tunnel \(spec.name): the name is already a port or another tunnel")
            }
            let t = try spec.resolve(port: UInt32(interfaces.count + i + 1), interfaces: interfaces)
            if let other = out.first(where: {
                $0.underlayPort == t.underlayPort && $0.local == t.local && $0.remote == t.remote
                    && $0.destinationPort == t.destinationPort && $0.vni == t.vni
            }) {
                throw TunnelSpecError("tunnels \(other.name) and \(t.name) have the same endpoints, port and VNI; packets could not tell them apart")
            }
            out.append(t)
        }
        return out
    }
}

public struct TunnelSpecError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The tunnels of a running forwarder, as the workers use them: immutable but for the neighbour
/// table, which is lock-free.
final class TunnelRuntime: Sendable {
    let tunnels: [TunnelPort]
    /// Index 0 of `tunnels` is this port index (0-based; the interface count).
    let firstPortIndex: Int
    /// Per interface port index: the classifier of the tunnels over it, nil if none.
    let classifiers: [UnderlayClassifier?]
    let neighbours: NeighbourTable
    /// Per tunnel: its remote's slot in `neighbours`, its underlay's MAC and MTU.
    let neighbourSlots: [Int]
    let sourceMACs: [MACAddress]
    let underlayMTUs: [Int]
    /// Per interface port index: the local VTEP addresses and its MAC (for ARP).
    let interfaceMACs: [MACAddress]
    /// Tunnels (bit i: `tunnels[i]`, the first 64) whose stale next hop the XDP fast path keeps
    /// using: worker 0 asks for them again by ARP, since no frame of theirs reaches a worker.
    let refreshWanted = Atomic<UInt64>(0)

    init(tunnels: [TunnelPort], interfaceMACs: [MACAddress], interfaceMTUs: [Int], neighbourReachableMs: UInt64 = 30_000) {
        self.tunnels = tunnels
        firstPortIndex = interfaceMACs.count
        classifiers = (0..<interfaceMACs.count).map { p in
            let over = tunnels.filter { Int($0.underlayPort) == p + 1 }
            return over.isEmpty ? nil : UnderlayClassifier(tunnels: over)
        }
        // Stale for 90 s after the reachable time, whatever that is (120 s in all by default).
        let table = NeighbourTable(addresses: tunnels.map(\.remote), reachableMs: neighbourReachableMs,
                                   expireMs: neighbourReachableMs + 90_000)
        neighbours = table
        neighbourSlots = tunnels.map { table.slot(of: $0.remote)! }
        sourceMACs = tunnels.map { interfaceMACs[Int($0.underlayPort) - 1] }
        underlayMTUs = tunnels.map { interfaceMTUs[Int($0.underlayPort) - 1] }
        self.interfaceMACs = interfaceMACs
        for (i, t) in tunnels.enumerated() {
            if let mac = t.remoteMAC { neighbours.setStatic(mac, slot: neighbourSlots[i]) }
        }
    }

    /// The index in `tunnels` of a classifier's tunnel on interface port `p`.
    func tunnelIndex(underlay p: Int, classifierIndex i: Int) -> Int {
        Int(classifiers[p]!.tunnels[i].port) - 1 - firstPortIndex
    }
}
