import CShunt
import ShuntCore

// Translation: the slow path's run of a packet key through the OpenFlow tables of one or more
// bridges, reduced to the flat action list a cache entry holds, plus what the result depended
// on (the megaflow mask).
//
// As in OVS: actions apply in order and later tables see the modified packet; resubmit runs a
// table and then carries on with the remaining actions; output to the packet's own in_port is
// dropped silently (the `in_port` action does that on purpose); a table miss drops. Outputs to
// port numbers the bridge does not have (yet) are left out. dec_ttl is left out for non-IP
// packets (OVS does the same). Output to a patch port runs the peer bridge from table 0 with
// the peer as in_port, and the packet comes back unchanged for the actions after it.
//
// Field changes (MACs, VLAN, tunnel id) are committed as datapath actions only at an output,
// and only where the packet as it leaves differs from the packet as the actions so far left it
// (OVS's commit of odp actions): a VLAN pushed by one bridge and stripped by the next costs
// nothing, and each output sees exactly the packet its bridge sent.

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
    /// How deep resubmits (and patch ports) may nest (SHUNT_MAX_RESUBMITS): deeper is a loop.
    public static let maxResubmitDepth = Int(SHUNT_MAX_RESUBMITS)
    /// How many resubmits one translation may do in all, so wide trees end too (OVS's bound).
    public static let maxResubmits = maxResubmitDepth * maxResubmitDepth

    /// The `FlowTables.generation` this snapshot was built from.
    public let generation: UInt64
    public let layout: SwitchLayout
    /// The rules, in dump order.
    public let entries: [FlowEntry]
    let classifier: Classifier
    /// Where an output goes, flat and trivially copyable (outputs are the hot part of
    /// translation): bridge b's ofport n is `targets[targetBase[b] + n]` when n < `targetCount[b]`.
    private let targets: [OutputTarget]
    private let targetBase: [Int]
    private let targetCount: [Int]
    /// The groups, by `FlowTables.groupKey`.
    let groups: [UInt64: GroupEntry]
    /// Datapath ports whose link is down: buckets watching them are not live.
    public let downPorts: Set<UInt32>

    enum OutputTarget {
        case none
        case datapath(UInt32)
        case patch(bridge: Int, port: UInt32)
        /// An index into `bonds`.
        case bond(Int)
    }

    /// The bonds of every bridge, for `OutputTarget.bond`.
    private let bonds: [(members: [UInt32], mode: BondMode)]

    /// The first bridge's ports (the only bridge of a forwarder configured without bridges).
    public var ports: PortNames { layout.bridges[0].portNames }

    public init(_ tables: FlowTables, layout: SwitchLayout, downPorts: Set<UInt32> = []) {
        precondition(!layout.bridges.isEmpty, "a pipeline needs a bridge")
        generation = tables.generation
        self.layout = layout
        self.downPorts = downPorts
        groups = Dictionary(uniqueKeysWithValues: tables.groups.map {
            (FlowTables.groupKey(bridge: $0.group.bridge, id: $0.group.id), $0)
        })
        entries = tables.entries
        classifier = Classifier(entries, bridgeCount: layout.bridges.count)
        var targets: [OutputTarget] = [], base: [Int] = [], count: [Int] = []
        var bonds: [(members: [UInt32], mode: BondMode)] = []
        for bridge in layout.bridges {
            let n = Int(bridge.ports.last?.ofport ?? 0) + 1
            base.append(targets.count)
            count.append(n)
            targets += Array(repeating: .none, count: n)
            for port in bridge.ports {
                switch port.kind {
                case .datapath(let dp): targets[base.last! + Int(port.ofport)] = .datapath(dp)
                case .patch(let b, let peer): targets[base.last! + Int(port.ofport)] = .patch(bridge: b, port: peer)
                case .bond(let members, let mode):
                    targets[base.last! + Int(port.ofport)] = .bond(bonds.count)
                    bonds.append((members, mode))
                }
            }
        }
        (self.targets, targetBase, targetCount) = (targets, base, count)
        self.bonds = bonds
    }

    @inline(__always) private func target(_ bridge: Int, _ ofport: UInt32) -> OutputTarget {
        Int(ofport) < targetCount[bridge] ? targets[targetBase[bridge] + Int(ofport)] : .none
    }

    /// One bridge whose ports are the datapath's ports.
    public convenience init(_ tables: FlowTables, ports: PortNames) {
        self.init(tables, layout: .single(ports))
    }

    /// One table's lookup alone, with its cost, for tests and diagnostics.
    public func lookup(_ key: FlowKey, table: UInt8, bridge: Int = 0) -> ClassifierLookup {
        var dependencies = FlowKey()
        var probes = 0
        let r = classifier.lookup(key, table: Classifier.index(bridge: bridge, table: table),
                                  dependencies: &dependencies, probes: &probes)
        let rule = r >= 0 ? classifier.rules[r] : nil
        return ClassifierLookup(
            ruleID: rule?.id, priority: rule?.priority, dependencies: dependencies, subtablesProbed: probes)
    }

    /// Distinct masks in a table: the most hash probes one lookup in it can cost.
    public func subtableCount(table: UInt8, bridge: Int = 0) -> Int {
        classifier.subtableCount(table: Classifier.index(bridge: bridge, table: table))
    }

    /// Runs a packet (`key.inPort` a datapath port) through its bridge's tables from table 0.
    public func translate<Normal: NormalSwitch>(_ key: FlowKey, normal: inout Normal) -> Translation {
        var state = State(key: key)
        return translate(&state, &normal)
    }

    /// `translate`, recording every step (`shunt ctl trace`, as `ovs-appctl ofproto/trace`).
    public func trace<Normal: NormalSwitch>(_ key: FlowKey, normal: inout Normal) -> (Translation, [TraceStep]) {
        var state = State(key: key)
        state.trace = []
        let t = translate(&state, &normal)
        return (t, state.trace ?? [])
    }

    /// `trace` of a packet entering `bridge` on its port `key.inPort` (an ofport: a patch
    /// port too, as if the peer bridge had sent the packet).
    public func trace<Normal: NormalSwitch>(_ key: FlowKey, bridge: Int, normal: inout Normal)
        -> (Translation, [TraceStep])
    {
        var state = State(key: key)
        state.trace = []
        let t = translate(&state, &normal, start: (bridge, key.inPort))
        return (t, state.trace ?? [])
    }

    private func translate<Normal: NormalSwitch>(_ state: inout State, _ normal: inout Normal,
                                                 start: (bridge: Int, ofport: UInt32)? = nil) -> Translation {
        state.dependencies.inPort = .max
        state.dependencies.dlType = .max
        if let (bridge, ofport) = start ?? layout.owner(of: state.key.inPort) {
            if start == nil, let reason = bondRefuses(state.key.inPort, bridge: bridge, ofport: ofport) {
                note(&state, 0, .bridge(name: layout.bridges[bridge].name, inPort: portName(bridge, ofport)))
                note(&state, 0, .skipped(port: portName(bridge, ofport), why: reason))
                return Translation(actions: [], dropReason: .bondInactive, dependencies: state.dependencies,
                                   ruleIDs: [], usedNormal: false)
            }
            state.key.inPort = ofport
            state.bridge = bridge
            note(&state, 0, .bridge(name: layout.bridges[bridge].name, inPort: portName(bridge, ofport)))
            run(table: 0, depth: 0, &state, &normal)
        } else {
            state.missed = true
            note(&state, 0, .notInABridge)
        }
        var result = Translation(
            actions: [], dropReason: nil, dependencies: state.dependencies, ruleIDs: state.ruleIDs,
            usedNormal: state.usedNormal)
        if state.overLimit {
            result.dropReason = .resubmitLimit
        } else if state.outputs == 0 {
            result.dropReason = state.skippedDown ? .outputDown : state.missed ? .noMatch : .flowDrop
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

    struct State {
        /// The packet as the current bridge sees it: in_port is an ofport of `bridge`.
        var key: FlowKey
        /// The packet as the actions so far leave it on the wire.
        var committed: FlowKey
        var bridge = 0
        var actions: [DatapathAction] = []
        var dependencies = FlowKey()
        var ruleIDs: [UInt32] = []
        var outputs = 0
        var missed = false
        var overLimit = false
        var resubmits = 0
        var usedNormal = false
        /// An output was left out because its port is down.
        var skippedDown = false
        var trace: [TraceStep]? = nil

        init(key: FlowKey) {
            self.key = key
            committed = key
        }
    }

    @inline(__always)
    private func note(_ state: inout State, _ depth: Int, _ event: @autoclosure () -> TraceStep.Event) {
        if state.trace != nil { state.trace!.append(TraceStep(depth: depth, event: event())) }
    }

    private func portName(_ bridge: Int, _ ofport: UInt32) -> String {
        layout.bridges[bridge].port(ofport)?.name ?? "\(ofport)"
    }

    private func run<Normal: NormalSwitch>(table: UInt8, depth: Int, _ state: inout State, _ normal: inout Normal) {
        var probes = 0
        let r = classifier.lookup(state.key, table: Classifier.index(bridge: state.bridge, table: table),
                                  dependencies: &state.dependencies, probes: &probes)
        guard r >= 0 else {
            state.missed = true
            note(&state, depth, .miss(table: table))
            return
        }
        let rule = classifier.rules[r]
        state.ruleIDs.append(rule.id)
        note(&state, depth, .rule(table: table, ruleID: rule.id))
        for action in rule.actions {
            apply(action, table: table, depth: depth, &state, &normal)
            if state.overLimit { return }
        }
    }

    private func apply<Normal: NormalSwitch>(_ action: FlowAction, table: UInt8, depth: Int, _ state: inout State,
                                             _ normal: inout Normal) {
        switch action {
        case .output(let port):
            output(port, depth: depth, &state, &normal)
        case .inPort:
            output(state.key.inPort, depth: depth, allowInPort: true, &state, &normal)
        case .normal:
            switchNormally(depth: depth, &state, &normal)
        case .resubmit(let port, let next):
            guard enterNested(&state, depth) else { return }
            let savedInPort = state.key.inPort
            if let port { state.key.inPort = port }
            run(table: next ?? table, depth: depth + 1, &state, &normal)
            state.key.inPort = savedInPort
        case .setEthSrc(let mac):
            state.key.dlSrc = mac
        case .setEthDst(let mac):
            state.key.dlDst = mac
        case .setVLANVID(let vid):
            let tagged = state.key.vlanTCI & FlowKey.vlanPresent != 0
            let pcp: UInt16 = tagged ? state.key.vlanTCI & 0xe000 : 0
            state.key.vlanTCI = pcp | FlowKey.vlanPresent | (vid & 0x0fff)
        case .stripVLAN:
            state.key.vlanTCI = 0
        case .decTTL:
            if state.key.dlType == 0x0800 || state.key.dlType == 0x86dd { state.actions.append(.decTTL) }
        case .setTunnel(let id):
            state.key.tunID = id
        case .group(let id):
            runGroup(id, table: table, depth: depth, &state, &normal)
        }
    }

    /// `group:N`: the buckets the group's type picks, each on the packet as it was here.
    private func runGroup<Normal: NormalSwitch>(_ id: UInt32, table: UInt8, depth: Int, _ state: inout State,
                                                _ normal: inout Normal) {
        guard let entry = groups[FlowTables.groupKey(bridge: UInt16(state.bridge), id: id)] else {
            note(&state, depth, .group("group \(id): no such group: drop"))
            return
        }
        guard enterNested(&state, depth) else { return }
        state.ruleIDs.append(entry.counterIDs[0])
        let g = entry.group
        var chosen: [Int] = []
        var why = ""
        switch g.type {
        case .all:
            chosen = Array(g.buckets.indices)
        case .indirect:
            chosen = g.buckets.isEmpty ? [] : [0]
        case .select:
            let (hash, read) = GroupSelection.hash(state.key, fields: g.hashedFields)
            state.dependencies = state.dependencies.union(read)
            let bridge = state.bridge
            if let i = GroupSelection.choose(hash: hash, buckets: g.buckets, isLive: { isLive($0, bridge: bridge) }) {
                chosen = [i]
            } else {
                why = ": no live bucket: drop"
                state.skippedDown = true
            }
        case .fastFailover:
            if let i = g.buckets.firstIndex(where: { isLive($0, bridge: state.bridge) }) {
                chosen = [i]
            } else {
                why = ": no live bucket: drop"
                state.skippedDown = true
            }
        }
        if state.trace != nil {
            let picked = chosen.map { "bucket \(g.buckets[$0].id)" }.joined(separator: ", ")
            note(&state, depth, .group("group \(id) (\(g.type.rawValue))\(why.isEmpty ? " -> " + picked : why)"))
        }
        for i in chosen {
            state.ruleIDs.append(entry.counterIDs[1 + i])
            let saved = state.key
            for action in g.buckets[i].actions {
                apply(action, table: table, depth: depth + 1, &state, &normal)
                if state.overLimit { return }
            }
            state.key = saved
        }
    }

    /// Why a frame that arrived on datapath port `member` of bond `ofport` is not taken: an
    /// active-backup bond takes frames from its active member only (the first live one), as
    /// Linux bonding drops what arrives on inactive slaves; nil when it is taken.
    private func bondRefuses(_ member: UInt32, bridge: Int, ofport: UInt32) -> String? {
        guard case .bond(let i) = target(bridge, ofport), bonds[i].mode == .activeBackup else { return nil }
        let active = bonds[i].members.first { !downPorts.contains($0) }
        return active == member ? nil : "arrived on backup member \(member) of an active-backup bond: drop"
    }

    /// A bucket is live unless it watches a port that is down or that the bridge does not have.
    public func isLive(_ bucket: GroupBucket, bridge: Int) -> Bool {
        guard let watched = bucket.watchPort else { return true }
        switch target(bridge, watched) {
        case .none: return false
        case .datapath(let dp): return !downPorts.contains(dp)
        case .patch: return true
        case .bond(let i): return bonds[i].members.contains { !downPorts.contains($0) }
        }
    }

    /// Counts one more nesting (resubmit or patch port); false, with the translation ended,
    /// past the limits.
    private func enterNested(_ state: inout State, _ depth: Int) -> Bool {
        guard depth < Self.maxResubmitDepth, state.resubmits < Self.maxResubmits else {
            state.overLimit = true
            note(&state, depth, .limit)
            return false
        }
        state.resubmits += 1
        return true
    }

    /// Output to a port of the current bridge other than the packet's in_port (which OpenFlow
    /// skips unless asked with `in_port`): a datapath port gets the pending changes committed
    /// and an output action; a patch port runs the peer bridge.
    private func output<Normal: NormalSwitch>(_ ofport: UInt32, depth: Int, allowInPort: Bool = false,
                                              _ state: inout State, _ normal: inout Normal) {
        let target = allowInPort || ofport != state.key.inPort ? self.target(state.bridge, ofport) : .none
        switch target {
        case .none:
            if state.trace != nil {
                let (bridge, isInPort) = (state.bridge, ofport == state.key.inPort)
                note(&state, depth, .skipped(port: portName(bridge, ofport), why: isInPort ? "it is the in_port" : "no such port"))
            }
        case .datapath(let dp) where downPorts.contains(dp):
            state.skippedDown = true
            if state.trace != nil {
                let bridge = state.bridge
                note(&state, depth, .skipped(port: portName(bridge, ofport), why: "its link is down"))
            }
        case .datapath(let dp):
            commit(&state)
            state.actions.append(.output(dp))
            state.outputs += 1
            if state.trace != nil {
                let bridge = state.bridge
                note(&state, depth, .output(port: portName(bridge, ofport), datapathPort: dp))
            }
        case .bond(let i):
            let bond = bonds[i]
            var live = bond.members
            if !downPorts.isEmpty { live.removeAll { downPorts.contains($0) } }
            guard !live.isEmpty else {
                state.skippedDown = true
                if state.trace != nil {
                    let bridge = state.bridge
                    note(&state, depth, .skipped(port: portName(bridge, ofport), why: "every member's link is down"))
                }
                return
            }
            let member: UInt32
            switch bond.mode {
            case .activeBackup:
                member = live[0]
            case .balance(let fields):
                let (hash, read) = GroupSelection.hash(state.key, fields: fields)
                state.dependencies = state.dependencies.union(read)
                member = GroupSelection.chooseMember(hash: hash, live)
            }
            commit(&state)
            state.actions.append(.output(member))
            state.outputs += 1
            if state.trace != nil {
                let bridge = state.bridge
                note(&state, depth, .output(port: "\(portName(bridge, ofport)) member \(member)", datapathPort: member))
            }
        case .patch(let peerBridge, let peerPort):
            guard enterNested(&state, depth) else { return }
            let saved = (state.key, state.bridge)
            state.key.inPort = peerPort
            state.bridge = peerBridge
            note(&state, depth + 1, .bridge(name: layout.bridges[peerBridge].name, inPort: portName(peerBridge, peerPort)))
            run(table: 0, depth: depth + 1, &state, &normal)
            (state.key, state.bridge) = saved
        }
    }

    /// Emits the actions that turn the committed packet into the current one (VLAN, MACs,
    /// tunnel id), before an output.
    private func commit(_ state: inout State) {
        let want = state.key, had = state.committed
        if want.vlanTCI != had.vlanTCI {
            let wantTagged = want.vlanTCI & FlowKey.vlanPresent != 0
            let hadTagged = had.vlanTCI & FlowKey.vlanPresent != 0
            // set_vlan keeps the PCP of a tag it rewrites and pushes PCP 0: pop first when the
            // priority must change.
            if !wantTagged || (hadTagged && want.vlanTCI & 0xe000 != had.vlanTCI & 0xe000) {
                state.actions.append(.popVLAN)
            }
            if wantTagged { state.actions.append(.setVLAN(want.vlanTCI & 0x0fff)) }
        }
        if want.dlSrc != had.dlSrc { state.actions.append(.setEthSrc(want.dlSrc)) }
        if want.dlDst != had.dlDst { state.actions.append(.setEthDst(want.dlDst)) }
        if want.tunID != had.tunID { state.actions.append(.setTunnel(want.tunID)) }
        state.committed.vlanTCI = want.vlanTCI
        state.committed.dlSrc = want.dlSrc
        state.committed.dlDst = want.dlDst
        state.committed.tunID = want.tunID
    }

    /// NORMAL: MAC learning per VLAN of the current bridge. The frame's VLAN is its access
    /// port's tag, or its own tag on a trunk (0 untagged); it goes out untagged on access
    /// ports and tagged (untagged for VLAN 0) on trunks, only where the VLAN is carried.
    private func switchNormally<Normal: NormalSwitch>(depth: Int, _ state: inout State, _ normal: inout Normal) {
        let bridge = layout.bridges[state.bridge]
        // An underlay port is not switched: NORMAL neither learns from it nor sends to it.
        guard let inPort = bridge.port(state.key.inPort), inPort.switched else {
            note(&state, depth, .normal("in_port is not switched: drop"))
            return
        }
        state.dependencies.vlanTCI = 0x1fff
        guard let vlan = Self.ingressVLAN(state.key.vlanTCI, port: inPort) else {
            let vid = state.key.vlanTCI & 0x0fff
            note(&state, depth, .normal("frame not admitted on \(inPort.name) (VLAN \(vid)): drop"))
            return
        }
        state.usedNormal = true
        state.dependencies = state.dependencies.union(normal.dependencies)
        let decision = normal.normal(key: state.key, bridge: state.bridge, vlan: vlan)
        var targets: [BridgePort] = []
        switch decision {
        case .output(let ofport):
            if let p = bridge.port(ofport) {
                if p.switched && p.carries(vlan) && ofport != inPort.ofport { targets = [p] }
            } else {
                // Learned on a port the bridge no longer has: treat as unknown.
                targets = bridge.ports.filter { $0.switched && $0.ofport != inPort.ofport && $0.carries(vlan) }
            }
        case .flood:
            targets = bridge.ports.filter { $0.switched && $0.ofport != inPort.ofport && $0.carries(vlan) }
        case .drop:
            break
        }
        note(&state, depth, .normal(Self.describe(decision, vlan: vlan, targets: targets)))
        let received = state.key.vlanTCI
        for p in targets {
            let pcp = received & FlowKey.vlanPresent != 0 ? received & 0xe000 : 0
            state.key.vlanTCI = p.tag != nil || vlan == 0 ? 0 : pcp | FlowKey.vlanPresent | vlan
            output(p.ofport, depth: depth, &state, &normal)
            if state.overLimit { return }
        }
        state.key.vlanTCI = received
    }

    /// The VLAN NORMAL switches a frame in, or nil when the port does not admit it.
    static func ingressVLAN(_ tci: UInt16, port: BridgePort) -> UInt16? {
        let vid = tci & FlowKey.vlanPresent != 0 ? tci & 0x0fff : 0
        if let tag = port.tag { return vid == 0 ? tag : nil }
        if let trunks = port.trunks, !trunks.contains(vid) { return nil }
        return vid
    }

    private static func describe(_ d: NormalResult, vlan: UInt16, targets: [BridgePort]) -> String {
        let names = targets.map(\.name).joined(separator: ", ")
        switch d {
        case .output(let p): return "VLAN \(vlan): learned on port \(p) -> \(names.isEmpty ? "nowhere" : names)"
        case .flood: return "VLAN \(vlan): flood -> \(names.isEmpty ? "nowhere" : names)"
        case .drop: return "VLAN \(vlan): destination is on the in_port: drop"
        }
    }
}

/// One step of a traced translation.
public struct TraceStep: Sendable, Equatable {
    public enum Event: Sendable, Equatable {
        /// The packet enters a bridge (first, or through a patch port) on this port.
        case bridge(name: String, inPort: String)
        /// The rule that matched in `table` (its id, `Pipeline.entries` has the rule).
        case rule(table: UInt8, ruleID: UInt32)
        /// No rule matched in `table`: the packet is dropped there.
        case miss(table: UInt8)
        /// What NORMAL decided, in words.
        case normal(String)
        /// What a group chose, in words.
        case group(String)
        /// An output to a datapath port.
        case output(port: String, datapathPort: UInt32)
        /// An output that was left out.
        case skipped(port: String, why: String)
        /// The resubmit or patch nesting limit was reached.
        case limit
        /// The in_port belongs to no bridge (a tunnel's underlay).
        case notInABridge
    }

    /// Nesting: 0 in the first bridge's table 0, one more per resubmit or patch port.
    public var depth: Int
    public var event: Event
}
