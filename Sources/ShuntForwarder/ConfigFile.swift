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
struct ConfigFile {
    var tunnels: [TunnelSpec] = []
    var mirrors: [MirrorSpec] = []

    struct Invalid: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func parse(_ text: String) throws(Invalid) -> ConfigFile {
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch {
            throw Invalid("not valid YAML: \(String(describing: error).split(separator: "\n").joined(separator: " "))")
        }
        guard let root else { return ConfigFile() }
        guard let top = root as? [String: Any] else { throw Invalid("the top level must be a mapping (e.g. `tunnels:`)") }
        if let key = top.keys.sorted().first(where: { $0 != "tunnels" && $0 != "mirrors" }) {
            throw Invalid("unknown setting '\(key)' (known: tunnels, mirrors)")
        }
        var config = ConfigFile()
        config.mirrors = try parseMirrors(top["mirrors"])
        guard let list = top["tunnels"] else { return config }
        guard let items = list as? [Any] else { throw Invalid("tunnels must be a list of mappings") }
        for (i, item) in items.enumerated() {
            guard let map = item as? [String: Any] else { throw Invalid("tunnels[\(i)] must be a mapping") }
            guard let name = map["name"].map(scalarText) ?? nil else { throw Invalid("tunnels[\(i)]: name is missing") }
            var fields: [String: String] = [:]
            for (key, value) in map where key != "name" {
                if let flag = value as? Bool {
                    guard key == "df" || key == "udpcsum" else { throw Invalid("tunnel \(name): \(key) takes a value, not \(flag)") }
                    if flag { fields[key] = "" }
                    continue
                }
                guard let text = scalarText(value) else { throw Invalid("tunnel \(name): \(key) must be a single value") }
                fields[key] = text
            }
            do throws(TunnelSpecError) {
                config.tunnels.append(try TunnelSpec.make(name: name, fields: fields))
            } catch { throw Invalid(error.description) }
        }
        return config
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

    private static func scalarText(_ value: Any) -> String? {
        switch value {
        case let s as String: s
        case let n as Int: String(n)
        default: nil
        }
    }
}
