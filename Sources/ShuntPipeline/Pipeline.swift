import CShunt
import ShuntCore

// Translation: the slow path's run of a packet key through the OpenFlow tables, reduced to the
// flat action list a cache entry holds, plus what the result depended on (the megaflow mask).
//
// As in OVS: actions apply in order and later tables see the modified packet; resubmit runs a
// table and then carries on with the remaining actions; output to the packet's own in_port is
// dropped silently (the `in_port` action does that on purpose); a table miss drops. Outputs to
// port numbers the bridge does not have (yet) are left out. dec_ttl is left out for non-IP
// packets (OVS does the same). Modifications after the last output are trimmed, since they
// change nothing that leaves; otherwise the list is kept literally, in order.

/// The outcome of one translation: what a flow cache entry holds for the packet's megaflow.
public struct Translation: Sendable, Equatable {
    /// Empty when the packet is dropped.
    public var actions: [DatapathAction]
    /// nil when the packet leaves on at least one port.
    public var dropReason: DropReason?
    /// The megaflow mask: every other key bit may be wildcarded in the cache.
    // in_port, dl_type, the masks of every subtable probed, and NormalSwitch.dependencies after NORMAL.
    public var dependencies: FlowKey
    /// The rules whose counters this packet credits, in traversal order.
    public var ruleIDs: [UInt32]
    /// The result also depends on the MAC table, so it must be re-translated when that changes.
    public var usedNormal: Bool

    public init(
        actions: [DatapathAction], dropReason: DropReason?, dependencies: FlowKey, ruleIDs: [UInt32],
        usedNormal: Bool
    ) {
        self.actions = actions
        self.dropReason = dropReason
        self.dependencies = dependencies
        self.ruleIDs = ruleIDs
        self.usedNormal = usedNormal
    }
}

/// An immutable, compiled snapshot, so any number of threads translate while the next one is built.
public final class Pipeline: Sendable {
    /// How deep resubmits may nest (SHUNT_MAX_RESUBMITS): deeper is a loop.
    public static let maxResubmitDepth = Int(SHUNT_MAX_RESUBMITS)
    /// How many resubmits one translation may do in all, so wide trees end too (OVS's bound).
    public static let maxResubmits = maxResubmitDepth * maxResubmitDepth

    /// The `FlowTables.generation` this snapshot was built from.
    public let generation: UInt64
    public let ports: PortNames
    /// The rules, in dump order.
    public let entries: [FlowEntry]
    let classifier: Classifier

    public init(_ tables: FlowTables, ports: PortNames) {
        generation = tables.generation
        self.ports = ports
        entries = tables.entries
        classifier = Classifier(entries)
    }

    /// One table's lookup alone, with its cost, for tests and diagnostics.
    public func lookup(_ key: FlowKey, table: UInt8) -> ClassifierLookup {
        var dependencies = FlowKey()
        var probes = 0
        let r = classifier.lookup(key, table: table, dependencies: &dependencies, probes: &probes)
        let rule = r >= 0 ? classifier.rules[r] : nil
        return ClassifierLookup(
            ruleID: rule?.id, priority: rule?.priority, dependencies: dependencies, subtablesProbed: probes)
    }

    /// Distinct masks in a table: the most hash probes one lookup in it can cost.
    public func subtableCount(table: UInt8) -> Int { classifier.subtableCount(table: table) }

    /// Runs a packet through the tables from table 0.
    public func translate<Normal: NormalSwitch>(_ key: FlowKey, normal: inout Normal) -> Translation {
        var state = State(key: key)
        state.dependencies.inPort = .max
        state.dependencies.dlType = .max
        run(table: 0, depth: 0, &state, &normal)

        var result = Translation(
            actions: [], dropReason: nil, dependencies: state.dependencies, ruleIDs: state.ruleIDs,
            usedNormal: state.usedNormal)
        if state.overLimit {
            result.dropReason = .resubmitLimit
        } else if state.outputs == 0 {
            result.dropReason = state.missed ? .noMatch : .flowDrop
        } else {
            var actions = state.actions
            while let last = actions.last {
                if case .output = last { break }
                actions.removeLast()
            }
            result.actions = actions
        }
        return result
    }

    private struct State {
        var key: FlowKey
        var actions: [DatapathAction] = []
        var dependencies = FlowKey()
        var ruleIDs: [UInt32] = []
        var outputs = 0
        var missed = false
        var overLimit = false
        var resubmits = 0
        var usedNormal = false

        init(key: FlowKey) { self.key = key }
    }

    private func run<Normal: NormalSwitch>(table: UInt8, depth: Int, _ state: inout State, _ normal: inout Normal) {
        var probes = 0
        let r = classifier.lookup(state.key, table: table, dependencies: &state.dependencies, probes: &probes)
        guard r >= 0 else {
            state.missed = true
            return
        }
        let rule = classifier.rules[r]
        state.ruleIDs.append(rule.id)
        for action in rule.actions {
            switch action {
            case .output(let port):
                output(port, &state)
            case .inPort:
                if ports.contains(state.key.inPort) {
                    state.actions.append(.output(state.key.inPort))
                    state.outputs += 1
                }
            case .normal:
                // An underlay port is not switched: NORMAL neither learns from it nor sends to it.
                if ports.notSwitched.contains(state.key.inPort) { break }
                state.usedNormal = true
                state.dependencies = state.dependencies.union(normal.dependencies)
                switch normal.normal(key: state.key, portCount: ports.count) {
                case .output(let port):
                    if !ports.notSwitched.contains(port) { output(port, &state) }
                case .flood:
                    for port in UInt32(1)..<UInt32(ports.count + 1) where !ports.notSwitched.contains(port) {
                        output(port, &state)
                    }
                case .drop:
                    break
                }
            case .resubmit(let port, let next):
                guard depth < Self.maxResubmitDepth, state.resubmits < Self.maxResubmits else {
                    state.overLimit = true
                    return
                }
                state.resubmits += 1
                let savedInPort = state.key.inPort
                if let port { state.key.inPort = port }
                run(table: next ?? table, depth: depth + 1, &state, &normal)
                state.key.inPort = savedInPort
                if state.overLimit { return }
            case .setEthSrc(let mac):
                state.key.dlSrc = mac
                state.actions.append(.setEthSrc(mac))
            case .setEthDst(let mac):
                state.key.dlDst = mac
                state.actions.append(.setEthDst(mac))
            case .setVLANVID(let vid):
                let tagged = state.key.vlanTCI & FlowKey.vlanPresent != 0
                let pcp: UInt16 = tagged ? state.key.vlanTCI & 0xe000 : 0
                state.key.vlanTCI = pcp | FlowKey.vlanPresent | (vid & 0x0fff)
                state.actions.append(.setVLAN(vid & 0x0fff))
            case .stripVLAN:
                state.key.vlanTCI = 0
                state.actions.append(.popVLAN)
            case .decTTL:
                if state.key.dlType == 0x0800 || state.key.dlType == 0x86dd { state.actions.append(.decTTL) }
            case .setTunnel(let id):
                state.key.tunID = id
                state.actions.append(.setTunnel(id))
            }
        }
    }

    /// Output to an existing port other than the packet's in_port (which OpenFlow skips).
    private func output(_ port: UInt32, _ state: inout State) {
        guard port != state.key.inPort, ports.contains(port) else { return }
        state.actions.append(.output(port))
        state.outputs += 1
    }
}
