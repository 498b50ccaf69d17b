import CShunt
import ShuntBPF
import ShuntControl
import ShuntCore
import ShuntPipeline
import ShuntSystem

// `shunt ctl trace [--bridge NAME] FLOW`, the equivalent of `ovs-appctl ofproto/trace`: the
// packet described by FLOW (a flow match: the fields it gives, zero elsewhere) is translated as
// a miss would be, without learning, and every step is reported with the datapath actions and
// whether the XDP fast path can hold the result.

extension FlowControl {
    func trace(_ text: String, bridge: Int, datapath: FlowDatapath, json: Bool) -> ControlResponse {
        let layout = datapath.layout
        let ports = layout.bridges[bridge].portNames
        var key: FlowKey
        do throws(FlowParseError) { key = try FlowSyntax.parseMatch(text[...], ports: ports).match.key } catch {
            return .failure("trace: \(error)")
        }
        guard let port = layout.bridges[bridge].port(key.inPort) else {
            return .failure("trace: give the packet's in_port, one of \(layout.bridges[bridge].name)'s ports")
        }
        let (pipeline, _) = datapath.currentPipeline()
        var normal = LearningNormalSwitch(table: datapath.macTable, nowMs: Sys.monotonicNanoseconds() / 1_000_000,
                                          learns: false)
        let translation: Translation
        let steps: [TraceStep]
        switch port.kind {
        case .datapath(let dp):
            key.inPort = dp
            (translation, steps) = pipeline.trace(key, normal: &normal)
        case .bond(let members, _):
            key.inPort = members[0]
            (translation, steps) = pipeline.trace(key, normal: &normal)
        case .patch:
            (translation, steps) = pipeline.trace(key, bridge: bridge, normal: &normal)
        }
        let status = traceStatus(key, translation, steps, pipeline: pipeline, bridge: bridge, datapath: datapath)
        return .success(json ? StatusJSON.encode(status) + "\n" : status.text)
    }

    private func traceStatus(_ key: FlowKey, _ t: Translation, _ steps: [TraceStep], pipeline: Pipeline, bridge: Int,
                             datapath: FlowDatapath) -> TraceStatus {
        let rules = Dictionary(pipeline.entries.map { ($0.id, $0.rule) }, uniquingKeysWith: { a, _ in a })
        var current = pipeline.layout.bridges[bridge].name
        var out: [TraceStatus.Step] = []
        for step in steps {
            var s = TraceStatus.Step(depth: step.depth, kind: "", bridge: current)
            switch step.event {
            case .bridge(let name, let inPort):
                current = name
                (s.kind, s.bridge, s.detail) = ("bridge", name, "in_port \(inPort)")
            case .rule(let table, let id):
                let rule = rules[id]
                let ports = pipeline.layout.bridges[Int(rule?.bridge ?? 0)].portNames
                // The table is printed beside the rule already.
                let text = rule.map { FlowSyntax.format($0, ports: ports) }
                (s.kind, s.table, s.rule) = ("rule", table, text.map { t in
                    t.hasPrefix("table=\(table),") ? String(t.dropFirst("table=\(table),".count)) : t
                })
            case .miss(let table): (s.kind, s.table, s.detail) = ("miss", table, "no rule matched: drop")
            case .normal(let text): (s.kind, s.detail) = ("normal", text)
            case .group(let text): (s.kind, s.detail) = ("group", text)
            case .output(let port, let dp): (s.kind, s.detail) = ("output", "\(port) (datapath port \(dp))")
            case .skipped(let port, let why): (s.kind, s.detail) = ("skipped", "output to \(port) left out: \(why)")
            case .limit: (s.kind, s.detail) = ("limit", "resubmit or patch nesting limit reached: drop")
            case .notInABridge: (s.kind, s.bridge, s.detail) = ("no_bridge", nil, "the in_port is in no bridge: drop")
            }
            out.append(s)
        }
        let (cacheable, note) = cacheability(key, t, datapath: datapath)
        return TraceStatus(
            packet: key.description, bridge: pipeline.layout.bridges[bridge].name, steps: out,
            datapathActions: t.actions.isEmpty ? "drop" : t.actions.map(\.description).joined(separator: ","),
            dropReason: t.dropReason?.name, cacheable: cacheable, cacheNote: note)
    }

    /// Whether the XDP fast path holds and executes this translation as one cache entry, and why
    /// not (on the afpacket datapath: whether it would).
    private func cacheability(_ key: FlowKey, _ t: Translation, datapath: FlowDatapath) -> (Bool, String) {
        let limit = UInt32(forwarder.interfaces.count)
        let tunnelPorts = TunnelFastPath.kernelTunnelPorts(forwarder.tunnels)
        let would = datapath.kernel == nil ? " (afpacket datapath: no XDP fast path here; with --datapath xdp)" : ""
        if t.actions.isEmpty {
            return (true, "one XDP cache entry that drops (\(t.dropReason?.name ?? "flow_drop"))\(would)")
        }
        let outputs = t.actions.filter { if case .output = $0 { return true } else { return false } }.count
        if FlowCacheProgram.kernelCanExecute(t.actions, portLimit: limit, tunnelPorts: tunnelPorts) {
            if let mirrors = forwarder.mirrorControl?.registry.current().table, !mirrors.sessions.isEmpty,
               mirrors.kernelPlan(flow: key, actions: t.actions, portLimit: limit) == .userspace {
                return (false, "a mirror session needs copies the kernel cannot make: the slow path executes it")
            }
            return (true, "one XDP cache entry executes it in the kernel\(would)")
        }
        if outputs > 1 { return (false, "\(outputs) outputs: the kernel executes one output per entry; the slow path makes the copies") }
        if t.actions.count > Int(SHUNT_FLOW_MAX_ACTIONS) {
            return (false, "\(t.actions.count) actions, over the kernel's \(SHUNT_FLOW_MAX_ACTIONS): the slow path executes it")
        }
        return (false, "an output the kernel cannot make (a tunnel it does not encapsulate): the slow path executes it")
    }
}
