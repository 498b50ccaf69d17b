import ShuntCore
import ShuntPipeline
import Yams

/// `shunt forward --config FILE`: settings that are records rather than flags, in YAML. Today
/// the tunnel ports; the DVR and mirror settings will join them (docs/design/0011-vxlan-tunnel-ports.md).
///
///     tunnels:
///       - name: vx1
///         local: 192.0.2.1
///         remote: 192.0.2.2
///         dev: eth1
///         vni: 4100          # or flow
///         dstport: 4789
///         df: true
///
/// A tunnel takes exactly the keys of `--vxlan` (flags as booleans). Mirror sessions take the
/// keys of `--mirror`; `src` may be a list:
///
///     mirrors:
///       - name: m1
///         src: [p1, p2]
///         dir: in            # in, out or both (default)
///         to: pcap:/tmp/m1.pcapng   # or a port or tunnel port name
///         sample: 100
///         snaplen: 128
///         match: tcp,tp_dst=80
///
/// Bridges (docs/design/0022-bridges.md) replace `--port`, `--flows` and `tunnels:`:
///
///     bridges:
///       - name: br-int
///         flows: br-int.flows        # relative to this file; default: priority=0,actions=NORMAL
///         ports:
///           - {name: tap1, ofport: 12, tag: 1}                 # an interface, access VLAN 1
///           - {name: eth2, trunks: [1, 2]}                     # a trunk of VLANs 1 and 2
///           - {name: patch-tun, type: patch, peer: patch-int}
///       - name: br-tun
///         ports:
///           - {name: patch-int, ofport: 1, type: patch, peer: patch-tun}
///           - {name: vx1, ofport: 4, type: vxlan, local: 192.0.2.1, remote: 192.0.2.2, dev: eth1, vni: flow}
struct ConfigFile {
    var tunnels: [TunnelSpec] = []
    var mirrors: [MirrorSpec] = []
    var bridges: [BridgeSpec] = []

    struct Invalid: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The first mapping key in `node` that is a mapping or a list, if any.
    private static func complexKey(in node: Node) -> Node? {
        switch node {
        case .mapping(let mapping):
            for (key, value) in mapping {
                switch key {
                case .mapping, .sequence: return key
                case .scalar, .alias: break
                }
                if let bad = complexKey(in: value) { return bad }
            }
        case .sequence(let sequence):
            for item in sequence { if let bad = complexKey(in: item) { return bad } }
        case .scalar, .alias:
            break
        }
        return nil
    }

    static func parse(_ text: String) throws(Invalid) -> ConfigFile {
        let root: Any?
        do {
            // Yams.load traps on a mapping key that is not a scalar (`{a: 1}: 2`, found by
            // fuzzing, issue 17): look at the node tree first and refuse such a key.
            if let node = try Yams.compose(yaml: text), let key = complexKey(in: node) {
                throw Invalid("line \(key.mark?.line ?? 0): a mapping key must be a plain value, not a mapping or a list")
            }
            root = try Yams.load(yaml: text)
        } catch let error as Invalid {
            throw error
        } catch {
            throw Invalid("not valid YAML: \(String(describing: error).split(separator: "\n").joined(separator: " "))")
        }
        guard let root else { return ConfigFile() }
        guard let top = root as? [String: Any] else { throw Invalid("the top level must be a mapping (e.g. `tunnels:`)") }
        if let key = top.keys.sorted().first(where: { !["tunnels", "mirrors", "bridges"].contains($0) }) {
            throw Invalid("unknown setting '\(key)' (known: bridges, tunnels, mirrors)")
        }
        var config = ConfigFile()
        config.mirrors = try parseMirrors(top["mirrors"])
        config.bridges = try parseBridges(top["bridges"])
        if !config.bridges.isEmpty && top["tunnels"] != nil {
            throw Invalid("with bridges, tunnels are ports of a bridge (type: vxlan); move them there")
        }
        guard let list = top["tunnels"] else { return config }
        guard let items = list as? [Any] else { throw Invalid("tunnels must be a list of mappings") }
        for (i, item) in items.enumerated() {
            guard let map = item as? [String: Any] else { throw Invalid("tunnels[\(i)] must be a mapping") }
            guard let name = map["name"].map(scalarText) ?? nil else { throw Invalid("tunnels[\(i)]: name is missing") }
            config.tunnels.append(try tunnel(name, map, skipping: ["name"]))
        }
        return config
    }

    /// A tunnel's keys (those of `--vxlan`, flags as booleans) checked by `TunnelSpec.make`.
    private static func tunnel(_ name: String, _ map: [String: Any], skipping: Set<String>) throws(Invalid) -> TunnelSpec {
        var fields: [String: String] = [:]
        for (key, value) in map where !skipping.contains(key) {
            if let flag = value as? Bool {
                guard key == "df" || key == "udpcsum" else { throw Invalid("tunnel \(name): \(key) takes a value, not \(flag)") }
                if flag { fields[key] = "" }
                continue
            }
            guard let text = scalarText(value) else { throw Invalid("tunnel \(name): \(key) must be a single value") }
            fields[key] = text
        }
        do throws(TunnelSpecError) { return try TunnelSpec.make(name: name, fields: fields) } catch {
            throw Invalid(error.description)
        }
    }

    private static func parseMirrors(_ list: Any?) throws(Invalid) -> [MirrorSpec] {
        guard let list else { return [] }
        guard let items = list as? [Any] else { throw Invalid("mirrors must be a list of mappings") }
        var specs: [MirrorSpec] = []
        for (i, item) in items.enumerated() {
            guard let map = item as? [String: Any] else { throw Invalid("mirrors[\(i)] must be a mapping") }
            guard let name = map["name"].map(scalarText) ?? nil else { throw Invalid("mirrors[\(i)]: name is missing") }
            var fields: [String: String] = [:]
            for (key, value) in map where key != "name" {
                if key == "src", let ports = value as? [Any] {
                    let names = ports.compactMap(scalarText)
                    guard names.count == ports.count, !names.isEmpty else {
                        throw Invalid("mirror \(name): src must be a port name or a list of port names")
                    }
                    fields[key] = names.joined(separator: "+")
                    continue
                }
                guard let text = scalarText(value) else { throw Invalid("mirror \(name): \(key) must be a single value") }
                fields[key] = text
            }
            do throws(MirrorSpecError) {
                specs.append(try MirrorSpec.make(name: name, fields: fields))
            } catch { throw Invalid(error.description) }
        }
        return specs
    }

    private static func parseBridges(_ list: Any?) throws(Invalid) -> [BridgeSpec] {
        guard let list else { return [] }
        guard let items = list as? [Any], !items.isEmpty else { throw Invalid("bridges must be a list of mappings") }
        var bridges: [BridgeSpec] = []
        for (i, item) in items.enumerated() {
            guard let map = item as? [String: Any] else { throw Invalid("bridges[\(i)] must be a mapping") }
            guard let name = map["name"].map(scalarText) ?? nil, !name.isEmpty else {
                throw Invalid("bridges[\(i)]: name is missing")
            }
            if let key = map.keys.sorted().first(where: { !["name", "flows", "ports"].contains($0) }) {
                throw Invalid("bridge \(name): unknown key '\(key)' (known: name, flows, ports)")
            }
            var bridge = BridgeSpec(name: name)
            if let flows = map["flows"] {
                guard let path = scalarText(flows), !path.isEmpty else { throw Invalid("bridge \(name): flows must be a file name") }
                bridge.flowsPath = path
            }
            guard let ports = map["ports"] as? [Any], !ports.isEmpty else {
                throw Invalid("bridge \(name): ports must be a non-empty list of mappings")
            }
            for (j, port) in ports.enumerated() {
                guard let fields = port as? [String: Any] else { throw Invalid("bridge \(name): ports[\(j)] must be a mapping") }
                bridge.ports.append(try parsePort(fields, bridge: name, index: j))
            }
            bridges.append(bridge)
        }
        return bridges
    }

    private static func parsePort(_ map: [String: Any], bridge: String, index: Int) throws(Invalid) -> BridgeSpec.Port {
        guard let name = map["name"].map(scalarText) ?? nil, !name.isEmpty else {
            throw Invalid("bridge \(bridge): ports[\(index)]: name is missing")
        }
        var port = BridgeSpec.Port(name: name)
        let type = map["type"].flatMap(scalarText) ?? "interface"
        if let n = map["ofport"] {
            guard let v = n as? Int, (1...65279).contains(v) else { throw Invalid("port \(name): ofport must be 1...65279") }
            port.ofport = UInt32(v)
        }
        if let t = map["tag"] {
            guard let v = t as? Int, (0...4094).contains(v) else { throw Invalid("port \(name): tag must be a VLAN 0...4094") }
            port.tag = UInt16(v)
        }
        if let t = map["trunks"] {
            guard let list = t as? [Any], !list.isEmpty,
                  case let vlans = list.compactMap({ $0 as? Int }), vlans.count == list.count,
                  vlans.allSatisfy({ (0...4095).contains($0) }) else {
                throw Invalid("port \(name): trunks must be a list of VLANs 0...4095")
            }
            guard port.tag == nil else { throw Invalid("port \(name): an access port (tag) is not a trunk; give tag or trunks") }
            port.trunks = Set(vlans.map { UInt16($0) })
        }
        let common: Set<String> = ["name", "type", "ofport", "tag", "trunks"]
        switch type {
        case "interface":
            if let key = map.keys.sorted().first(where: { !common.contains($0) }) {
                throw Invalid("port \(name): unknown key '\(key)' for an interface port")
            }
        case "patch":
            guard let peer = map["peer"].map(scalarText) ?? nil, !peer.isEmpty else {
                throw Invalid("patch port \(name): peer is missing (the patch port on the other bridge)")
            }
            if let key = map.keys.sorted().first(where: { !common.contains($0) && $0 != "peer" }) {
                throw Invalid("patch port \(name): unknown key '\(key)'")
            }
            port.kind = .patch(peer: peer)
        case "vxlan":
            port.kind = .vxlan(try tunnel(name, map, skipping: common))
        case "bond":
            port.kind = try bond(name, map, skipping: common)
        case let other:
            throw Invalid("port \(name): type '\(other)' is not one of interface, patch, vxlan, bond")
        }
        return port
    }

    /// `type: bond`: `members` (two or more interfaces), `bond_mode` (balance-xor, the default,
    /// or active-backup) and for balance-xor `xmit_hash_policy` (layer2, the default, layer2+3,
    /// layer3+4; or l2, l2+l3, l3+l4).
    private static func bond(_ name: String, _ map: [String: Any], skipping common: Set<String>) throws(Invalid)
        -> BridgeSpec.Port.Kind
    {
        if let key = map.keys.sorted().first(where: { !common.contains($0) && !["members", "bond_mode", "xmit_hash_policy"].contains($0) }) {
            throw Invalid("bond \(name): unknown key '\(key)' (known: members, bond_mode, xmit_hash_policy)")
        }
        guard let list = map["members"] as? [Any], case let members = list.compactMap(scalarText),
              members.count == list.count, members.count >= 2, Set(members).count == members.count else {
            throw Invalid("bond \(name): members must be a list of two or more distinct interfaces")
        }
        let mode = map["bond_mode"].flatMap(scalarText) ?? "balance-xor"
        let policy = map["xmit_hash_policy"].flatMap(scalarText)
        switch mode {
        case "active-backup":
            if policy != nil { throw Invalid("bond \(name): xmit_hash_policy is for bond_mode balance-xor") }
            return .bond(members: members, mode: .activeBackup)
        case "balance-xor":
            guard let fields = BondMode.hashPolicy(policy ?? "layer2") else {
                throw Invalid("bond \(name): xmit_hash_policy '\(policy ?? "")' is not one of layer2, layer2+3, layer3+4")
            }
            return .bond(members: members, mode: .balance(fields: fields))
        default:
            throw Invalid("bond \(name): bond_mode '\(mode)' is not one of balance-xor, active-backup")
        }
    }

    private static func scalarText(_ value: Any) -> String? {
        switch value {
        case let s as String: s
        case let n as Int: String(n)
        default: nil
        }
    }
}

/// One bridge of a configuration file, as written.
struct BridgeSpec: Equatable {
    struct Port: Equatable {
        enum Kind: Equatable {
            case interface
            case patch(peer: String)
            case vxlan(TunnelSpec)
            case bond(members: [String], mode: BondMode)
        }

        var name: String
        var ofport: UInt32?
        var tag: UInt16?
        var trunks: Set<UInt16>?
        var kind: Kind = .interface
    }

    var name: String
    /// The flow file, relative to the configuration file's directory.
    var flowsPath: String?
    var ports: [Port] = []
}
