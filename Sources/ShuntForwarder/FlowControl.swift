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
        switch request.command {
        case "add-flow":
            guard request.arguments.count == 1 else { return .failure("add-flow takes one flow, e.g. 'table=0,priority=1,in_port=1,actions=output:2'") }
            return edit(datapath) { (tables) throws(FlowEditError) in
                let rule = try parse { () throws(FlowParseError) in try FlowSyntax.parseFlow(request.arguments[0][...], ports: datapath.portNames) }
                return try add([rule], to: &tables)
            }
        case "add-flows":
            guard request.arguments.count == 1 else { return .failure("add-flows takes the text of a flow file") }
            return edit(datapath) { (tables) throws(FlowEditError) in
                let rules = try parse { () throws(FlowParseError) in try FlowSyntax.parseFlowFile(request.arguments[0], ports: datapath.portNames) }
                return try add(rules, to: &tables)
            }
        case "del-flows":
            let args = request.arguments
            let strict = request.flags.contains("strict")
            guard args.count <= 1 else { return .failure("del-flows takes at most one match") }
            return edit(datapath) { (tables) throws(FlowEditError) in
                let text = args.first ?? ""
                let m = try parse { () throws(FlowParseError) in try FlowSyntax.parseMatch(text[...], ports: datapath.portNames) }
                let removed = tables.delete(table: m.table, match: m.match, strict: strict, priority: m.priority)
                return ("deleted \(removed.count) flow\(removed.count == 1 ? "" : "s")\n", [])
            }
        case "dump-flows":
            return .success(dumpFlows(datapath, json: request.json))
        case "dump-cache":
            return .success(dumpCache(datapath, json: request.json))
        case "mirror-add", "mirror-del", "mirror-list":
            return mirror(request)
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

    private func parse<T>(_ body: () throws(FlowParseError) -> T) throws(FlowEditError) -> T {
        do { return try body() } catch { throw FlowEditError(error.description) }
    }

    private func add(_ rules: [FlowRule], to tables: inout FlowTables) throws(FlowEditError) -> (result: String, added: [UInt32]) {
        var ids: [UInt32] = []
        for rule in rules {
            do { ids.append(try tables.add(rule).id) } catch { throw FlowEditError("\(error)") }
        }
        return ("added \(rules.count) flow\(rules.count == 1 ? "" : "s")\n", ids)
    }

    private func edit(_ datapath: FlowDatapath,
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

    // MARK: dump-flows

    func dumpFlows(_ datapath: FlowDatapath, json: Bool) -> String {
        forwarder.creditKernelCounters()
        let flows = datapath.dumpFlows()
        if json {
            let items = flows.map { f in
                let text = FlowSyntax.format(f.rule, ports: datapath.portNames)
                return "{\"table\":\(f.rule.table),\"priority\":\(f.rule.priority),\"cookie\":\(f.rule.cookie),"
                    + "\"n_packets\":\(f.packets),\"n_bytes\":\(f.bytes),\"flow\":\(JSON.string(text))}"
            }
            return "{\"flows\":[" + items.joined(separator: ",") + "]}\n"
        }
        return flows.map { FlowSyntax.format($0.rule, ports: datapath.portNames, stats: ($0.packets, $0.bytes)) + "\n" }.joined()
    }

    // MARK: show

    /// Per-path counters in OVS's vocabulary.
    struct PathCounters {
        var fastPathHits: UInt64 = 0
        var slowPathPackets: UInt64 = 0
        var upcalls: UInt64 = 0
        var lostUpcalls: UInt64 = 0
        var cacheEntries: UInt64 = 0
        var revalidations: UInt64 = 0
        var expirations: UInt64 = 0
        var upcallNs: UInt64 = 0

        var averageUpcallMicroseconds: Double { upcalls == 0 ? 0 : Double(upcallNs) / Double(upcalls) / 1000 }

        func json(extra: [String] = []) -> String {
            let fields = [
                "\"fast_path_hits\":\(fastPathHits)", "\"slow_path_packets\":\(slowPathPackets)",
                "\"upcalls\":\(upcalls)", "\"lost_upcalls\":\(lostUpcalls)", "\"cache_entries\":\(cacheEntries)",
                "\"revalidations\":\(revalidations)", "\"expirations\":\(expirations)",
                "\"avg_upcall_us\":\(JSON.number(averageUpcallMicroseconds))",
            ] + extra
            return "{" + fields.joined(separator: ",") + "}"
        }
    }

    func show(json: Bool) -> String {
        let config = forwarder.plan
        let ports = forwarder.interfaces
        guard let datapath = forwarder.flowDatapath else {
            if json {
                return "{\"mode\":\"\(config.mode.rawValue)\",\"workers\":\(config.workers),\"ports\":["
                    + ports.enumerated().map { "{\"number\":\($0 + 1),\"name\":\(JSON.string($1.name))}" }.joined(separator: ",") + "]}\n"
            }
            return "shunt forwarder: \(config.mode.rawValue) mode, \(config.workers) worker(s)\n"
                + ports.enumerated().map { "  port \($0 + 1): \($1.name)\n" }.joined()
        }
        // Userspace: the workers' exact-match caches in front of the pipeline.
        var user = PathCounters()
        var userPackets: UInt64 = 0
        var checksumPending: UInt64 = 0
        for w in forwarder.flowWorkers {
            let c = w.flowCounters
            userPackets += c.read(.packets)
            checksumPending += c.read(.checksumPending)
            user.fastPathHits += c.read(.exactMatchHits)
            user.slowPathPackets += c.read(.translations)
            user.upcalls += c.read(.translations)
            user.upcallNs += c.read(.translationNs)
            user.cacheEntries += c.read(.cacheEntries)
            user.revalidations += c.read(.invalidations)
        }
        var total = PathCounters()
        var kernelPath: PathCounters? = nil
        var kernelExtra: [String] = []
        var kernelText = ""
        var fastPorts: [PortCounters]? = nil
        if datapath.kernel != nil, let s = forwarder.fastPathStats() {
            fastPorts = Forwarder.fastPathPortCounters(s, ports: forwarder.portNames.count)
            let (k, entries) = datapath.kernel!.counters()
            var kp = PathCounters()
            kp.fastPathHits = s.hits
            kp.slowPathPackets = s.misses &+ s.userspace
            kp.upcalls = k.upcalls
            kp.lostUpcalls = k.lostUpcalls
            kp.cacheEntries = UInt64(entries)
            kp.revalidations = k.revalidations
            kp.expirations = k.expirations
            kp.upcallNs = k.upcallNs
            kernelPath = kp
            var drops: [String] = []
            var dropText: [String] = []
            withUnsafeBytes(of: s.drops) { raw in
                for r in DropReason.allCases {
                    let v = raw.load(fromByteOffset: Int(r.rawValue) * 8, as: UInt64.self)
                    drops.append("\"\(r.name)\":\(v)")
                    if v > 0 { dropText.append("\(r.name) \(v)") }
                }
            }
            kernelExtra = [
                "\"hit_bytes\":\(s.hit_bytes)", "\"misses\":\(s.misses)", "\"userspace\":\(s.userspace)",
                "\"malformed\":\(s.malformed)", "\"not_a_port\":\(s.not_a_port)", "\"redirect_errors\":\(s.redirect_errors)",
                "\"cache_full\":\(k.cacheFull)", "\"install_errors\":\(k.installErrors)", "\"map_errors\":\(k.mapErrors)",
                "\"revalidation_changes\":\(k.revalidationChanges)", "\"drops\":{" + drops.joined(separator: ",") + "}",
            ]
            let dropSummary = dropText.isEmpty ? "0" : dropText.joined(separator: ", ")
            var lines = "  xdp fast path: hits \(s.hits) (\(s.hit_bytes) B), misses \(s.misses), userspace \(s.userspace), "
            lines += "malformed \(s.malformed), redirect errors \(s.redirect_errors), drops \(dropSummary)\n"
            lines += "    cache: \(entries) entries (limit \(datapath.config.cacheSize)), upcalls \(k.upcalls) "
            lines += "(avg \(JSON.number(kp.averageUpcallMicroseconds)) us), lost upcalls \(k.lostUpcalls) (cache full \(k.cacheFull)), "
            lines += "revalidations \(k.revalidations) (changed \(k.revalidationChanges)), expirations \(k.expirations)"
            lines += (k.mapErrors > 0 ? ", map errors \(k.mapErrors) (retried)" : "") + "\n"
            kernelText = lines
            total.fastPathHits = kp.fastPathHits
            total.upcalls = kp.upcalls
            total.upcallNs = kp.upcallNs
            total.lostUpcalls = kp.lostUpcalls
            total.cacheEntries = kp.cacheEntries
            total.revalidations = kp.revalidations
            total.expirations = kp.expirations
        } else {
            total.upcalls = user.upcalls
            total.upcallNs = user.upcallNs
        }
        total.fastPathHits &+= user.fastPathHits
        total.slowPathPackets = user.slowPathPackets
        total.cacheEntries &+= user.cacheEntries
        total.revalidations &+= user.revalidations
        let (_, generation) = datapath.currentPipeline()
        let flowCount = datapath.dumpFlows().count
        if json {
            var paths = ["\"userspace\":" + user.json(extra: ["\"packets\":\(userPackets)",
                                                               "\"checksum_pending\":\(checksumPending)"])]
            if let kernelPath { paths.insert("\"xdp\":" + kernelPath.json(extra: kernelExtra), at: 0) }
            let portItems = ports.enumerated().map { i, info in
                "{\"number\":\(i + 1),\"name\":\(JSON.string(info.name)),\"ifindex\":\(info.index)"
                    + (i < forwarder.xdpModes.count ? ",\"xdp_mode\":\"\(forwarder.xdpModes[i])\"" : "") + "}"
            } + forwarder.tunnels.map { t in
                let n = tunnelNeighbour(t)
                return "{\"number\":\(t.port),\"name\":\(JSON.string(t.name)),\"type\":\"vxlan\","
                    + "\"local\":\"\(t.local)\",\"remote\":\"\(t.remote)\",\"dev\":\(JSON.string(ports[Int(t.underlayPort) - 1].name)),"
                    + "\"vni\":" + (t.vni.map { "\($0)" } ?? "\"flow\"") + ",\"dstport\":\(t.destinationPort),"
                    + "\"next_hop\":" + (n.mac.map { "\"\($0)\"" } ?? "null") + ",\"neighbour\":\"\(n.state)\""
                    + tunnelFastPathJSON(t, datapath: datapath, counters: fastPorts) + "}"
            }
            return "{\"mode\":\"flows\",\"datapath\":\"\(datapath.config.kind.rawValue)\",\"workers\":\(config.workers),"
                + "\"flows\":\(flowCount),\"generation\":\(generation),\"ports\":[" + portItems.joined(separator: ",") + "],"
                + "\"datapaths\":{" + paths.joined(separator: ",") + "},\"total\":" + total.json() + "}\n"
        }
        var out = "shunt forwarder: datapath \(datapath.config.kind.rawValue), \(config.workers) worker(s), "
            + "\(flowCount) flow(s), tables generation \(generation)\n"
        for (i, info) in ports.enumerated() {
            out += "  port \(i + 1): \(info.name)" + (i < forwarder.xdpModes.count ? " (xdp \(forwarder.xdpModes[i]))" : "") + "\n"
        }
        for t in forwarder.tunnels {
            let n = tunnelNeighbour(t)
            out += "  port \(t.port): \(t.name) (vxlan: local \(t.local), remote \(t.remote), dev \(ports[Int(t.underlayPort) - 1].name), "
                + "vni \(t.vni.map { "\($0)" } ?? "flow"), dstport \(t.destinationPort), next hop \(n.mac.map { "\($0)" } ?? "unresolved") \(n.state))\n"
        }
        out += kernelText
        out += "  userspace: packets \(userPackets), exact-match hits \(user.fastPathHits), pipeline runs \(user.upcalls) "
            + "(avg \(JSON.number(user.averageUpcallMicroseconds)) us), cache entries \(user.cacheEntries), invalidations \(user.revalidations)"
            + (datapath.kernel != nil ? ", kept up for offloaded checksums \(checksumPending)" : "") + "\n"
        return out
    }

    /// XDP datapath: `,"fast_path":{...}` for a tunnel port: whether the kernel encapsulates
    /// for it, and what it decapsulated (rx) and encapsulated (tx) for it so far.
    private func tunnelFastPathJSON(_ t: TunnelPort, datapath: FlowDatapath, counters: [PortCounters]?) -> String {
        guard let kernel = datapath.kernel else { return "" }
        let p = Int(t.port) - 1
        let c = counters.flatMap { p < $0.count ? $0[p] : nil } ?? PortCounters()
        let encapsulates = t.port < 64 && kernel.tunnelPorts & (1 << UInt64(t.port)) != 0
        return ",\"fast_path\":{\"encapsulates\":\(encapsulates),\"rx_packets\":\(c.rxPackets),\"tx_packets\":\(c.txPackets)}"
    }

    /// The remote VTEP's next-hop MAC as the workers see it now.
    private func tunnelNeighbour(_ t: TunnelPort) -> (mac: MACAddress?, state: NeighbourTable.State) {
        guard let rt = forwarder.tunnelRuntime, let slot = rt.neighbours.slot(of: t.remote) else { return (nil, .unresolved) }
        if t.remoteMAC != nil { return (t.remoteMAC, .reachable) }
        return rt.neighbours.lookup(slot: slot, nowMs: Sys.monotonicNanoseconds() / 1_000_000)
    }

    // MARK: dump-cache

    func dumpCache(_ datapath: FlowDatapath, json: Bool) -> String {
        let nowNs = Sys.monotonicNanoseconds()
        var items: [String] = []
        var lines: [String] = []
        if let kernel = datapath.kernel {
            for (key, entry) in kernel.dump() {
                let actions = FlowCacheProgram.actions(of: entry)
                let idleMs = nowNs > entry.last_used_ns ? (nowNs - entry.last_used_ns) / 1_000_000 : 0
                let userspace = entry.flags & UInt32(SHUNT_CACHE_USERSPACE) != 0
                let actionText = actions.isEmpty ? "drop" : actions.map { $0.description }.joined(separator: ",")
                items.append("{\"path\":\"xdp\",\"key\":\(JSON.string(key.description)),\"actions\":\(JSON.string(actionText)),"
                    + "\"userspace\":\(userspace),\"packets\":\(entry.packets),\"bytes\":\(entry.bytes),\"idle_ms\":\(idleMs)}")
                lines.append("xdp: \(key), packets:\(entry.packets), bytes:\(entry.bytes), used:\(JSON.number(Double(idleMs) / 1000))s ago, actions:\(userspace ? "userspace(" + actionText + ")" : actionText)")
            }
        }
        let nowMs = nowNs / 1_000_000
        for w in forwarder.flowWorkers {
            guard let entries = w.dumpCache() else {
                lines.append("worker \(w.index): did not answer")
                continue
            }
            for e in entries {
                let idleMs = nowMs > e.lastUsedMs ? nowMs - e.lastUsedMs : 0
                let actionText = e.actions.isEmpty ? "drop" : e.actions.map(\.description).joined(separator: ",")
                items.append("{\"path\":\"userspace\",\"worker\":\(w.index),\"key\":\(JSON.string(e.key.description)),"
                    + "\"actions\":\(JSON.string(actionText)),\"packets\":\(e.packets),\"bytes\":\(e.bytes),\"idle_ms\":\(idleMs)}")
                lines.append("userspace worker \(w.index): \(e.key), packets:\(e.packets), bytes:\(e.bytes), used:\(JSON.number(Double(idleMs) / 1000))s ago, actions:\(actionText)")
            }
        }
        if json { return "{\"entries\":[" + items.joined(separator: ",") + "]}\n" }
        return lines.map { $0 + "\n" }.joined()
    }
}

/// Minimal JSON text helpers for the hand-built output.
enum JSON {
    static func string(_ s: String) -> String { JSONText.string(s) }

    static func number(_ d: Double) -> String {
        let r = (d * 100).rounded() / 100
        return r == r.rounded() ? String(Int(r)) : String(r)
    }
}
