import CShunt
import ShuntBPF
import ShuntCore
import ShuntPipeline
import ShuntSystem

/// Adds, removes and lists mirror sessions of a running forwarder (`--mirror`, --config
/// `mirrors:`, `shunt ctl mirror add|del|list`). Every change is checked whole first: a refused
/// one changes nothing and leaves no file behind.
public final class MirrorControl: @unchecked Sendable {
    let registry: MirrorRegistry
    let ports: PortNames
    let interfaceCount: Int
    let tunnels: [TunnelPort]
    let workers: Int
    /// The largest frame a capture slot holds (the rings' frame size bounds every frame).
    let maxCaptured: Int
    /// The XDP fast path, which copies SPAN sessions' cached flows itself (counted per slot).
    let kernel: FlowCacheProgram?
    /// Where the search for a free kernel slot starts: slots are reused as late as possible, so
    /// a copy still in flight for a deleted session is not counted for a new one.
    private var nextSlot = 0

    init(registry: MirrorRegistry, ports: PortNames, interfaceCount: Int, tunnels: [TunnelPort], workers: Int,
         maxCaptured: Int, kernel: FlowCacheProgram? = nil) {
        self.kernel = kernel
        self.registry = registry
        self.ports = ports
        self.interfaceCount = interfaceCount
        self.tunnels = tunnels
        self.workers = workers
        self.maxCaptured = maxCaptured
    }

    /// Checks sessions against the ports without opening anything (for start-up, before the rings).
    public static func validate(_ specs: [MirrorSpec], ports: PortNames, interfaceCount: Int,
                                tunnels: [TunnelPort]) throws(MirrorSpecError) {
        for s in try MirrorSessions.resolveAll(specs, ports: ports) {
            try checkTunnelOutput(s, interfaceCount: interfaceCount, tunnels: tunnels)
        }
    }

    /// Remote mirroring uses the tunnel port's own VNI; a `vni=flow` port has none.
    private static func checkTunnelOutput(_ s: MirrorSession, interfaceCount: Int,
                                          tunnels: [TunnelPort]) throws(MirrorSpecError) {
        guard case .port(let n) = s.output, Int(n) > interfaceCount else { return }
        let t = tunnels[Int(n) - 1 - interfaceCount]
        if t.vni == nil {
            throw MirrorSpecError("mirror \(s.name): tunnel port '\(t.name)' has vni=flow; mirror to a tunnel port with its own VNI (vni=N)")
        }
    }

    /// Validates, opens the outputs and publishes, all or nothing.
    public func add(_ specs: [MirrorSpec]) throws(MirrorSpecError) {
        try registry.edit { (table) throws(MirrorSpecError) -> MirrorTable in
            let sessions = try MirrorSessions.resolveAll(specs, ports: ports, existing: table.sessions.map(\.session))
            for s in sessions { try Self.checkTunnelOutput(s, interfaceCount: interfaceCount, tunnels: tunnels) }
            var added: [MirrorSessionRuntime] = []
            for s in sessions {
                let sink: MirrorSessionRuntime.Sink
                switch s.output {
                case .port(let n):
                    sink = Int(n) <= interfaceCount ? .port(Int(n) - 1) : .tunnel(Int(n) - 1 - interfaceCount)
                case .pcap(let path):
                    let interfaces = s.sources.map { (name: ports.name(of: $0) ?? "port\($0)", snaplen: s.snaplen) }
                    do throws(SystemError) {
                        let pcap = try PcapSink(path: path, interfaces: interfaces, workers: workers, maxCaptured: maxCaptured)
                        try pcap.start()
                        sink = .pcap(pcap)
                    } catch {
                        Self.close(added)
                        throw MirrorSpecError("mirror \(s.name): cannot write pcap file \(path): \(error)")
                    }
                }
                var slot: Int? = nil
                var base = shunt_mirror_counters()
                if let kernel {
                    let used = Set((table.sessions + added).compactMap(\.kernelSlot))
                    let slots = Int(SHUNT_MIRROR_SLOTS)
                    if let free = (0..<slots).map({ (nextSlot + $0) % slots }).first(where: { !used.contains($0) }),
                       let counts = try? kernel.mirrorCounters(slot: free) {
                        slot = free
                        base = counts
                        nextSlot = (free + 1) % slots
                    }
                }
                added.append(MirrorSessionRuntime(session: s, sink: sink, workers: workers, portCount: ports.count,
                                                  kernelSlot: slot, kernelBase: base))
            }
            return MirrorTable(sessions: table.sessions + added, portCount: ports.count)
        }
    }

    /// Removes a session; its capture file is completed and closed.
    public func delete(_ name: String) throws(MirrorSpecError) {
        var removed: MirrorSessionRuntime? = nil
        try registry.edit { (table) throws(MirrorSpecError) -> MirrorTable in
            guard let s = table.sessions.first(where: { $0.session.name == name }) else {
                let names = table.sessions.map(\.session.name)
                throw MirrorSpecError("no mirror named '\(name)'" + (names.isEmpty ? " (there are none)" : " (mirrors: \(names.joined(separator: ", ")))"))
            }
            removed = s
            return MirrorTable(sessions: table.sessions.filter { $0 !== s }, portCount: ports.count)
        }
        if let removed, case .pcap = removed.sink {
            // A worker reloads the sessions at the start of each pass; let passes in flight end.
            Sys.sleep(nanoseconds: 100_000_000)
            Self.close([removed])
        }
    }

    /// Completes and closes every capture file (after the workers stopped). Counters stay readable.
    public func closeOutputs() {
        Self.close(registry.current().table.sessions)
    }

    private static func close(_ sessions: [MirrorSessionRuntime]) {
        for s in sessions {
            if case .pcap(let sink) = s.sink { sink.stop() }
        }
    }

    // MARK: Listing

    /// `shunt ctl mirror list`: each session, its settings and its counters. JSON names are stable:
    /// selected, mirrored, sampled_out, truncated, dropped (packets) and their `_bytes`.
    public func list(json: Bool) -> String {
        let status = self.status()
        return json ? StatusJSON.encode(status) + "\n" : status.text
    }

    public func status() -> MirrorListStatus {
        MirrorListStatus(mirrors: registry.current().table.sessions.map(sessionStatus))
    }

    private func outputType(_ s: MirrorSessionRuntime) -> String {
        switch s.sink {
        case .port: "port"
        case .tunnel: "tunnel"
        case .pcap: "pcap"
        }
    }

    /// The copies the fast path made for `s` (zero without one).
    private func kernelCounts(_ s: MirrorSessionRuntime) -> shunt_mirror_counters {
        guard let kernel, let slot = s.kernelSlot, let now = try? kernel.mirrorCounters(slot: slot) else {
            return shunt_mirror_counters()
        }
        let b = s.kernelBase
        return shunt_mirror_counters(selected: now.selected &- b.selected, selected_bytes: now.selected_bytes &- b.selected_bytes,
                                     mirrored: now.mirrored &- b.mirrored, mirrored_bytes: now.mirrored_bytes &- b.mirrored_bytes)
    }

    /// A session's counters: the workers' plus the fast path's copies.
    private func counters(_ s: MirrorSessionRuntime) -> (read: (MirrorCounters.Field) -> UInt64, kernelMirrored: UInt64) {
        let k = kernelCounts(s)
        let c = s.counters
        return ({ f in
            switch f {
            case .selected: c.read(f) &+ k.selected
            case .selectedBytes: c.read(f) &+ k.selected_bytes
            case .mirrored: c.read(f) &+ k.mirrored
            case .mirroredBytes: c.read(f) &+ k.mirrored_bytes
            default: c.read(f)
            }
        }, k.mirrored)
    }

    private func sessionStatus(_ s: MirrorSessionRuntime) -> MirrorListStatus.Session {
        let spec = s.session.spec
        let (read, kernelMirrored) = counters(s)
        return MirrorListStatus.Session(
            name: spec.name, sources: spec.sources, direction: spec.direction.rawValue, output: spec.target.description,
            outputType: outputType(s), sample: spec.sample, snaplen: spec.snaplen ?? 0, match: spec.match, spec: spec.text,
            counts: NamedCounts(MirrorCounters.Field.reported.map { ($0.jsonName, read($0)) }), fastPathMirrored: kernelMirrored,
            drops: NamedCounts(MirrorDrop.allCases.map { ($0.name, read(MirrorCounters.field($0))) }))
    }
}
