import ShuntCore
import ShuntPipeline

/// Flow tables loaded from flow-file text.
func loadTables(_ text: String, ports: PortNames, maxRules: Int = 65536) throws -> FlowTables {
    var tables = FlowTables(maxRules: maxRules)
    for rule in try FlowSyntax.parseFlowFile(text, ports: ports) { try tables.add(rule) }
    return tables
}

/// A NormalSwitch that must not be reached.
struct NoNormal: NormalSwitch {
    var calls = 0
    mutating func normal(key: FlowKey, bridge: Int, vlan: UInt16) -> NormalResult {
        calls += 1
        return .drop
    }
}
