import ShuntCore
import ShuntPipeline

/// The bridges of a configuration file, resolved into what the forwarder opens and translates
/// with (docs/design/0022-bridges.md): the datapath's interfaces (every interface port, then
/// the underlays of tunnels that are in no bridge), its tunnel ports, the bridge layout and
/// the flow tables of every bridge.
struct BridgePlan {
    var interfaces: [String]
    var tunnels: [TunnelPort]
    var layout: SwitchLayout
    var tables: FlowTables

    /// - Parameter flowFiles: the texts of the bridges' flow files, by the name the
    ///   configuration gives (`ForwarderRequest.includedFiles`).
    static func make(_ specs: [BridgeSpec], flowFiles: [String: NamedText], maxFlows: Int) throws(PlanError)
        -> BridgePlan
    {
        try checkNames(specs)
        var interfaces: [String] = []
        var tunnelSpecs: [TunnelSpec] = []
        for port in specs.flatMap(\.ports) {
            switch port.kind {
            case .interface: interfaces.append(port.name)
            case .vxlan(let spec): tunnelSpecs.append(spec)
            case .bond(let members, _): interfaces += members
            case .patch: break
            }
        }
        // An underlay in no bridge is a datapath port of its own: its rings carry the tunnels.
        for spec in tunnelSpecs where !interfaces.contains(spec.device) { interfaces.append(spec.device) }
        let tunnels: [TunnelPort]
        do throws(TunnelSpecError) { tunnels = try TunnelSpec.resolveAll(tunnelSpecs, interfaces: interfaces) } catch {
            throw PlanError(error.description)
        }
        let ofports = try numberPorts(specs)
        let underlays = Set(tunnelSpecs.map(\.device))
        var bridges: [Bridge] = []
        for (b, spec) in specs.enumerated() {
            var ports: [BridgePort] = []
            for (j, port) in spec.ports.enumerated() {
                let kind: BridgePortKind
                switch port.kind {
                case .interface: kind = .datapath(UInt32(interfaces.firstIndex(of: port.name)! + 1))
                case .vxlan: kind = .datapath(tunnels.first { $0.name == port.name }!.port)
                case .patch(let peer): kind = try patchTarget(port.name, peer: peer, bridge: b, specs, ofports)
                case .bond(let members, let mode):
                    if let underlay = members.first(where: { underlays.contains($0) }) {
                        throw PlanError("bond \(port.name): member \(underlay) is a tunnel's underlay")
                    }
                    kind = .bond(members: members.map { UInt32(interfaces.firstIndex(of: $0)! + 1) }, mode: mode)
                }
                ports.append(BridgePort(name: port.name, ofport: ofports[b][j], kind: kind, tag: port.tag,
                                        trunks: port.trunks, switched: !underlays.contains(port.name)))
            }
            bridges.append(Bridge(name: spec.name, ports: ports))
        }
        let layout = SwitchLayout(bridges: bridges)
        let tables = try flowTables(specs, layout: layout, flowFiles: flowFiles, maxFlows: maxFlows)
        return BridgePlan(interfaces: interfaces, tunnels: tunnels, layout: layout, tables: tables)
    }

    /// Bridge names distinct; port names distinct over every bridge (names identify ports in
    /// mirrors, statistics and `show`).
    static func checkNames(_ specs: [BridgeSpec]) throws(PlanError) {
        var bridges = Set<String>(), ports: [String: String] = [:]
        for spec in specs {
            guard bridges.insert(spec.name).inserted else { throw PlanError("bridge \(spec.name) is given twice") }
            for port in spec.ports {
                if let other = ports[port.name] {
                    throw PlanError("port \(port.name) is in bridge \(other) and in \(spec.name); a port belongs to one bridge")
                }
                ports[port.name] = spec.name
                guard case .bond(let members, _) = port.kind else { continue }
                for member in members {
                    if let other = ports[member] {
                        throw PlanError("bond \(port.name): member \(member) is a port of bridge \(other) already")
                    }
                    ports[member] = spec.name
                }
            }
        }
    }

    /// Each bridge's ofports, in the order of its ports: the fixed ones, the others the lowest
    /// free numbers in order (as OVS numbers ports without `ofport_request`).
    static func numberPorts(_ specs: [BridgeSpec]) throws(PlanError) -> [[UInt32]] {
        var all: [[UInt32]] = []
        for spec in specs {
            var taken: [UInt32: String] = [:]
            for port in spec.ports {
                guard let n = port.ofport else { continue }
                if let other = taken[n] {
                    throw PlanError("bridge \(spec.name): ports \(other) and \(port.name) both ask for ofport \(n)")
                }
                taken[n] = port.name
            }
            var next: UInt32 = 1
            var numbers: [UInt32] = []
            for port in spec.ports {
                if let n = port.ofport {
                    numbers.append(n)
                    continue
                }
                while taken[next] != nil { next += 1 }
                taken[next] = port.name
                numbers.append(next)
            }
            all.append(numbers)
        }
        return all
    }

    /// A patch port's peer: a patch port of another bridge that names this one back.
    static func patchTarget(_ name: String, peer: String, bridge: Int, _ specs: [BridgeSpec], _ ofports: [[UInt32]])
        throws(PlanError) -> BridgePortKind
    {
        for (b, spec) in specs.enumerated() {
            guard let j = spec.ports.firstIndex(where: { $0.name == peer }) else { continue }
            guard case .patch(let back) = spec.ports[j].kind else {
                throw PlanError("patch port \(name): its peer \(peer) is not a patch port")
            }
            guard b != bridge else { throw PlanError("patch port \(name): its peer \(peer) is on the same bridge") }
            guard back == name else {
                throw PlanError("patch port \(name): its peer \(peer) names \(back) as its peer, not \(name)")
            }
            return .patch(bridge: b, port: ofports[b][j])
        }
        throw PlanError("patch port \(name): no port \(peer) in any bridge")
    }

    /// Every bridge's flows, from its flow file or the default `priority=0,actions=NORMAL`.
    static func flowTables(_ specs: [BridgeSpec], layout: SwitchLayout, flowFiles: [String: NamedText], maxFlows: Int)
        throws(PlanError) -> FlowTables
    {
        var tables = FlowTables(maxRules: maxFlows)
        for (b, spec) in specs.enumerated() {
            let ports = layout.bridges[b].portNames
            let file = spec.flowsPath.flatMap { flowFiles[$0] }
            if let path = spec.flowsPath, file == nil {
                throw PlanError("bridge \(spec.name): the flow file \(path) was not read")
            }
            do {
                let rules = try file.map { try FlowSyntax.parseFlowFile($0.text, ports: ports) }
                    ?? [try FlowSyntax.parseFlow("priority=0,actions=NORMAL", ports: ports)]
                for var rule in rules {
                    rule.bridge = UInt16(b)
                    _ = try tables.add(rule)
                }
            } catch {
                throw PlanError("bridge \(spec.name): \(file?.path ?? "default flows"): \(error)")
            }
        }
        return tables
    }
}
