import ShuntCore
import ShuntForwarder
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
/// A tunnel takes exactly the keys of `--vxlan` (flags as booleans).
struct ConfigFile {
    var tunnels: [TunnelSpec] = []

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
        if let key = top.keys.sorted().first(where: { $0 != "tunnels" }) {
            throw Invalid("unknown setting '\(key)' (known: tunnels)")
        }
        var config = ConfigFile()
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

    private static func scalarText(_ value: Any) -> String? {
        switch value {
        case let s as String: s
        case let n as Int: String(n)
        default: nil
        }
    }
}
