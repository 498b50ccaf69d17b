import CShunt
import ShuntBPF
import ShuntControl
import ShuntCore
import ShuntPipeline
import ShuntSystem

/// The answers of `shunt ctl` for a forwarder in flow mode: flow table edits and dumps, the
/// datapath's state (`show`) and its caches (`dump-cache`), in text and JSON. JSON names are a
/// stable interface (README, "Control socket").
public struct FlowControl: ControlHandler, @unchecked Sendable {
    let forwarder: Forwarder

    public init(forwarder: Forwarder) { self.forwarder = forwarder }

    public func handle(_ request: ControlRequest) -> ControlResponse {
        if request.command == "show" { return .success(show(json: request.json)) }
        guard let datapath = forwarder.flowDatapath else {
            return .failure("this forwarder runs in \(forwarder.plan.mode.rawValue) mode, which has no flow tables; start it with --flows FILE or --datapath")
        }
        guard let bridge = bridgeIndex(request.bridge, datapath) else {
            let names = datapath.layout.bridges.map(\.name).joined(separator: ", ")
            return .failure("no bridge \(request.bridge ?? "") (bridges: \(names))")
        }
        let ports = datapath.layout.bridges[bridge].portNames
        switch request.command {
        case "add-flow":
            guard request.arguments.count == 1 else { return .failure("add-flow takes one flow, e.g. 'table=0,priority=1,in_port=1,actions=output:2'") }
            return edit(datapath) { (tables) throws(FlowEditError) in
                let rule = try parse { () throws(FlowParseError) in try FlowSyntax.parseFlow(request.arguments[0][...], ports: ports) }
                return try add([rule], bridge: bridge, to: &tables)
            }
        case "add-flows":
            guard request.arguments.count == 1 else { return .failure("add-flows takes the text of a flow file") }
            return edit(datapath) { (tables) throws(FlowEditError) in
                let rules = try parse { () throws(FlowParseError) in try FlowSyntax.parseFlowFile(request.arguments[0], ports: ports) }
                return try add(rules, bridge: bridge, to: &tables)
            }
        case "del-flows":
            let args = request.arguments
            let strict = request.flags.contains("strict")
            guard args.count <= 1 else { return .failure("del-flows takes at most one match") }
            return edit(datapath) { (tables) throws(FlowEditError) in
                let text = args.first ?? ""
                let m = try parse { () throws(FlowParseError) in try FlowSyntax.parseMatch(text[...], ports: ports) }
                let removed = tables.delete(bridge: UInt16(bridge), table: m.table, match: m.match, strict: strict,
                                            priority: m.priority)
                return ("deleted \(removed.count) flow\(removed.count == 1 ? "" : "s")\n", [])
            }
        case "dump-flows":
            return .success(dumpFlows(datapath, bridge: bridge, json: request.json))
        case "fdb-show":
            return .success(fdbShow(datapath, bridge: bridge, json: request.json))
        case "trace":
            guard request.arguments.count == 1 else {
                return .failure("trace takes one packet as a flow match, e.g. 'in_port=p1,icmp,nw_src=10.0.0.1,nw_dst=10.0.0.2'")
            }
            return trace(request.arguments[0], bridge: bridge, datapath: datapath, json: request.json)
        case "dump-cache":
            return .success(dumpCache(datapath, json: request.json))
        case "mirror-add", "mirror-del", "mirror-list":
            return mirror(request)
        case "add-group", "add-groups", "mod-group", "del-groups", "dump-groups", "dump-group-stats":
            return groupCommand(request, datapath: datapath, bridge: bridge)
        default:
            return .failure("unknown command '\(request.command)'; see shunt ctl --help")
        }
    }

    /// `shunt ctl mirror add SPEC... | del NAME | list`: a refused change applies nothing.
    private func mirror(_ request: ControlRequest) -> ControlResponse {
        guard let control = forwarder.mirrorControl else { return .failure("this forwarder has no mirror support") }
        switch request.command {
        case "mirror-add":
            guard !request.arguments.isEmpty else {
                return .failure("mirror add takes a session: NAME,src=PORT[+PORT...][,dir=in|out|both],to=PORT|pcap:FILE[,sample=N][,snaplen=N][,match=FLOWMATCH]")
            }
            do throws(MirrorSpecError) {
                let specs = try request.arguments.map { (text) throws(MirrorSpecError) in try MirrorSpec.parse(text) }
                try control.add(specs)
                return .success("added \(specs.count) mirror\(specs.count == 1 ? "" : "s")\n")
            } catch {
                return .failure(error.description)
            }
        case "mirror-del":
            guard request.arguments.count == 1 else { return .failure("mirror del takes one mirror name") }
            do throws(MirrorSpecError) {
                try control.delete(request.arguments[0])
                return .success("deleted mirror \(request.arguments[0])\n")
            } catch {
                return .failure(error.description)
            }
        default:
            return .success(control.list(json: request.json))
        }
    }

    func parse<T>(_ body: () throws(FlowParseError) -> T) throws(FlowEditError) -> T {
        do { return try body() } catch { throw FlowEditError(error.description) }
    }

    /// The bridge a request names (nil: the first); nil when there is no such bridge.
    private func bridgeIndex(_ name: String?, _ datapath: FlowDatapath) -> Int? {
        guard let name else { return 0 }
        return datapath.layout.bridgeIndex(named: name)
    }

    private func add(_ rules: [FlowRule], bridge: Int, to tables: inout FlowTables) throws(FlowEditError)
        -> (result: String, added: [UInt32])
    {
        var ids: [UInt32] = []
        for var rule in rules {
            rule.bridge = UInt16(bridge)
            do { ids.append(try tables.add(rule).id) } catch { throw FlowEditError("\(error)") }
        }
        return ("added \(rules.count) flow\(rules.count == 1 ? "" : "s")\n", ids)
    }

    func edit(_ datapath: FlowDatapath,
                      _ body: (inout FlowTables) throws(FlowEditError) -> (result: String, added: [UInt32])) -> ControlResponse {
        // What the kernel counted so far belongs to the rules as they were: credit it before
        // replaced or reused rule ids start from zero.
        forwarder.creditKernelCounters()
        do throws(FlowEditError) {
            let text = try datapath.editFlows(body)
            return .success(text)
        } catch {
            return .failure(error.description)
        }
    }

    /// A status value as the request asked for it: JSON (one line) or text.
    private func render<T: Encodable>(_ value: T, json: Bool, text: (T) -> String) -> String {
        json ? StatusJSON.encode(value) + "\n" : text(value)
    }

    // MARK: dump-flows

    func dumpFlows(_ datapath: FlowDatapath, bridge: Int = 0, json: Bool) -> String {
        render(flowDump(datapath, bridge: bridge), json: json, text: \.text)
    }

    func flowDump(_ datapath: FlowDatapath, bridge: Int = 0) -> FlowDumpStatus {
        forwarder.creditKernelCounters()
        let ports = datapath.layout.bridges[bridge].portNames
        return FlowDumpStatus(flows: datapath.dumpFlows(bridge: bridge).map { f in
            FlowDumpStatus.Flow(table: f.rule.table, priority: f.rule.priority, cookie: f.rule.cookie, nPackets: f.packets,
                                nBytes: f.bytes, flow: FlowSyntax.format(f.rule, ports: ports),
                                line: FlowSyntax.format(f.rule, ports: ports, stats: (f.packets, f.bytes)))
        })
    }

    // MARK: fdb-show

    func fdbShow(_ datapath: FlowDatapath, bridge: Int, json: Bool) -> String {
        render(fdbStatus(datapath, bridge: bridge), json: json, text: \.text)
    }

    /// `ovs-appctl fdb/show BRIDGE`: the stations NORMAL learned on one bridge, by VLAN.
    func fdbStatus(_ datapath: FlowDatapath, bridge: Int) -> FDBStatus {
        let b = datapath.layout.bridges[bridge]
        let nowMs = Sys.monotonicNanoseconds() / 1_000_000
        let entries = datapath.macTable.entries(nowMs: nowMs).compactMap { e -> FDBStatus.Entry? in
            guard Int(e.domain >> 12) == bridge else { return nil }
            let ofport = UInt32(e.port) + 1
            return FDBStatus.Entry(port: b.port(ofport)?.name ?? "\(ofport)", ofport: ofport, vlan: UInt16(e.domain & 0xfff),
                                   mac: "\(e.mac)", ageS: e.ageMs / 1000)
        }.sorted { ($0.vlan, $0.ofport, $0.mac) < ($1.vlan, $1.ofport, $1.mac) }
        return FDBStatus(bridge: b.name, entries: entries)
    }

    // MARK: show

    func show(json: Bool) -> String { render(showStatus(), json: json, text: \.text) }

    func showStatus() -> ShowStatus {
        let plan = forwarder.plan
        let links = forwarder.linkWatcher?.states
        let indexes = forwarder.linkWatcher?.indexes
        let ports = forwarder.interfaces.enumerated().map { i, info in
            var p = PortStatus(number: UInt32(i + 1), name: info.name, ifindex: indexes.map { $0[i] } ?? info.index,
                               xdpMode: i < forwarder.xdpModes.count ? forwarder.xdpModes[i] : nil)
            if let links, i < links.count { p.link = links[i] == .up ? "up" : links[i].rawValue }
            return p
        }
        guard let datapath = forwarder.flowDatapath else {
            return ShowStatus(mode: plan.mode.rawValue, workers: plan.workers,
                              ports: ports.map { PortStatus(number: $0.number, name: $0.name) })
        }
        let user = userspacePath()
        let fastPorts = forwarder.fastPathStats().map { Forwarder.fastPathPortCounters($0, ports: forwarder.portNames.count) }
        let xdp = kernelPath(datapath)
        var total = xdp ?? PathStatus()
        if xdp == nil {
            total.upcalls = user.upcalls
            total.avgUpcallUs = user.avgUpcallUs
        }
        total.fastPathHits &+= user.fastPathHits
        total.slowPathPackets = user.upcalls
        total.cacheEntries &+= user.cacheEntries
        total.revalidations &+= user.revalidations
        total = PathStatus.common(total)
        // One snapshot, so the flow count and the generation describe the same tables.
        let (pipeline, generation) = datapath.currentPipeline()
        return ShowStatus(
            mode: "flows", datapath: datapath.config.kind.rawValue, workers: plan.workers,
            flows: pipeline.entries.count, generation: generation,
            ports: ports + forwarder.tunnels.map { tunnelStatus($0, datapath: datapath, fastPorts: fastPorts) },
            bridges: datapath.layout.bridges.map { BridgeStatus($0, layout: datapath.layout, interfaces: forwarder.interfaces.count) },
            datapaths: .init(xdp: xdp, userspace: user), total: total)
    }

    /// The workers' exact-match caches in front of the pipeline.
    private func userspacePath() -> PathStatus {
        var p = PathStatus()
        var packets: UInt64 = 0, pending: UInt64 = 0, translateNs: UInt64 = 0
        for w in forwarder.flowWorkers {
            let c = w.flowCounters
            packets += c.read(.packets)
            pending += c.read(.checksumPending)
            p.fastPathHits += c.read(.exactMatchHits)
            p.slowPathPackets += c.read(.translations)
            p.upcalls += c.read(.translations)
            translateNs += c.read(.translationNs)
            p.cacheEntries += c.read(.cacheEntries)
            p.revalidations += c.read(.invalidations)
        }
        p.avgUpcallUs = PathStatus.averageMicroseconds(translateNs, over: p.upcalls)
        p.packets = packets
        p.checksumPending = pending
        return p
    }

    /// The XDP fast path and the kernel cache behind it; nil on the afpacket datapath.
    private func kernelPath(_ datapath: FlowDatapath) -> PathStatus? {
        guard let kernel = datapath.kernel, let s = forwarder.fastPathStats() else { return nil }
        let (k, entries) = kernel.counters()
        var p = PathStatus()
        p.fastPathHits = s.hits
        p.slowPathPackets = s.misses &+ s.userspace
        p.upcalls = k.upcalls
        p.lostUpcalls = k.lostUpcalls
        p.cacheEntries = UInt64(entries)
        p.revalidations = k.revalidations
        p.expirations = k.expirations
        p.avgUpcallUs = PathStatus.averageMicroseconds(k.upcallNs, over: k.upcalls)
        (p.hitBytes, p.misses, p.userspace, p.malformed) = (s.hit_bytes, s.misses, s.userspace, s.malformed)
        (p.notAPort, p.redirectErrors) = (s.not_a_port, s.redirect_errors)
        (p.cacheFull, p.installErrors, p.mapErrors, p.revalidationChanges) = (k.cacheFull, k.installErrors, k.mapErrors, k.revalidationChanges)
        p.cacheLimit = UInt64(datapath.config.cacheSize)
        p.drops = NamedCounts(DropReason.allCases.map { ($0.name, s.dropCount($0)) })
        return p
    }

    private func tunnelStatus(_ t: TunnelPort, datapath: FlowDatapath, fastPorts: [PortCounters]?) -> PortStatus {
        let n = tunnelNeighbour(t)
        var fastPath: TunnelFastPathStatus? = nil
        if let kernel = datapath.kernel {
            let p = Int(t.port) - 1
            let c = fastPorts.flatMap { p < $0.count ? $0[p] : nil } ?? PortCounters()
            fastPath = TunnelFastPathStatus(encapsulates: t.port < 64 && kernel.tunnelPorts & (1 << UInt64(t.port)) != 0,
                                            rxPackets: c.rxPackets, txPackets: c.txPackets)
        }
        let tunnel = PortStatus.TunnelStatus(
            local: "\(t.local)", remote: "\(t.remote)", dev: forwarder.interfaces[Int(t.underlayPort) - 1].name,
            vni: t.vni.map { .fixed($0) } ?? .flow, dstport: t.destinationPort, nextHop: n.mac.map { "\($0)" },
            neighbour: "\(n.state)", fastPath: fastPath)
        return PortStatus(number: t.port, name: t.name, tunnel: tunnel)
    }

    /// The remote VTEP's next-hop MAC as the workers see it now.
    private func tunnelNeighbour(_ t: TunnelPort) -> (mac: MACAddress?, state: NeighbourTable.State) {
        guard let rt = forwarder.tunnelRuntime, let slot = rt.neighbours.slot(of: t.remote) else { return (nil, .unresolved) }
        if t.remoteMAC != nil { return (t.remoteMAC, .reachable) }
        return rt.neighbours.lookup(slot: slot, nowMs: Sys.monotonicNanoseconds() / 1_000_000)
    }

    // MARK: dump-cache

    func dumpCache(_ datapath: FlowDatapath, json: Bool) -> String { render(cacheDump(datapath), json: json, text: \.text) }

    func cacheDump(_ datapath: FlowDatapath) -> CacheDumpStatus {
        let nowNs = Sys.monotonicNanoseconds()
        var entries: [CacheDumpStatus.Entry] = []
        for (key, entry) in datapath.kernel?.dump() ?? [] {
            let actions = FlowCacheProgram.actions(of: entry)
            entries.append(.init(path: "xdp", key: key.description,
                                 actions: actions.isEmpty ? "drop" : actions.map(\.description).joined(separator: ","),
                                 userspace: entry.flags & UInt32(SHUNT_CACHE_USERSPACE) != 0, packets: entry.packets,
                                 bytes: entry.bytes, idleMs: nowNs > entry.last_used_ns ? (nowNs - entry.last_used_ns) / 1_000_000 : 0))
        }
        let nowMs = nowNs / 1_000_000
        var silent: [Int] = []
        for w in forwarder.flowWorkers {
            guard let cached = w.dumpCache() else {
                silent.append(w.index)
                continue
            }
            for e in cached {
                entries.append(.init(path: "userspace", worker: w.index, key: e.key.description,
                                     actions: e.actions.isEmpty ? "drop" : e.actions.map(\.description).joined(separator: ","),
                                     packets: e.packets, bytes: e.bytes, idleMs: nowMs > e.lastUsedMs ? nowMs - e.lastUsedMs : 0))
            }
        }
        return CacheDumpStatus(entries: entries, unansweredWorkers: silent.isEmpty ? nil : silent)
    }
}

extension PathStatus {
    static func averageMicroseconds(_ ns: UInt64, over count: UInt64) -> Double {
        count == 0 ? 0 : (Double(ns) / Double(count) / 1000 * 100).rounded() / 100
    }

    /// The fields `total` has: the common ones, without a datapath's own.
    static func common(_ p: PathStatus) -> PathStatus {
        var t = PathStatus()
        (t.fastPathHits, t.slowPathPackets, t.upcalls, t.lostUpcalls) = (p.fastPathHits, p.slowPathPackets, p.upcalls, p.lostUpcalls)
        (t.cacheEntries, t.revalidations, t.expirations, t.avgUpcallUs) = (p.cacheEntries, p.revalidations, p.expirations, p.avgUpcallUs)
        return t
    }
}

extension BridgeStatus {
    init(_ bridge: Bridge, layout: SwitchLayout, interfaces: Int) {
        self.init(name: bridge.name, ports: bridge.ports.map { p in
            var port = Port(name: p.name, ofport: p.ofport, type: "interface", tag: p.tag,
                            trunks: p.trunks.map { $0.sorted() }, switched: p.switched)
            switch p.kind {
            case .datapath(let dp):
                port.port = dp
                if dp > UInt32(interfaces) { port.type = "vxlan" }
            case .patch(let b, let peer):
                port.type = "patch"
                port.peerBridge = layout.bridges[b].name
                port.peer = layout.bridges[b].port(peer)?.name
            case .bond(let members, let mode):
                port.type = "bond"
                port.members = members
                port.bondMode = switch mode {
                case .activeBackup: "active-backup"
                case .balance(let fields): "balance(\(fields.map(\.rawValue).joined(separator: ",")))"
                }
            }
            return port
        })
    }
}
