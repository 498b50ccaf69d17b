// The text forms of the status values (StatusModel.swift): what `shunt ctl` prints without
// --json, and `shunt forward`'s statistics lines.

extension NamedCounts {
    /// "name value, name value" of the non-zero counts, or nil when all are zero.
    var nonZeroText: String? {
        let parts = items.filter { $0.value > 0 }.map { "\($0.name) \($0.value)" }
        return parts.isEmpty ? nil : parts.joined(separator: ", ")
    }
}

extension ShowStatus {
    public var text: String {
        guard let datapaths, let datapath else {
            return "shunt forwarder: \(mode) mode, \(workers) worker(s)\n" + ports.map { "  port \($0.number): \($0.name)\n" }.joined()
        }
        var out = "shunt forwarder: datapath \(datapath), \(workers) worker(s), \(flows ?? 0) flow(s), tables generation \(generation ?? 0)\n"
        out += ports.map(\.text).joined()
        for bridge in bridges ?? [] { out += bridge.text }
        if let xdp = datapaths.xdp { out += xdp.xdpText }
        let u = datapaths.userspace
        out += "  userspace: packets \(u.packets ?? 0), exact-match hits \(u.fastPathHits), pipeline runs \(u.upcalls) "
            + "(avg \(TextNumber.format(u.avgUpcallUs)) us), cache entries \(u.cacheEntries), invalidations \(u.revalidations)"
            + (datapaths.xdp != nil ? ", kept up for offloaded checksums \(u.checksumPending ?? 0)" : "") + "\n"
        return out
    }
}

extension BridgeStatus {
    var text: String {
        var out = "  bridge \(name):\n"
        for p in ports {
            var notes: [String] = []
            if let port = p.port { notes.append("port \(port)") }
            if p.type != "interface" { notes.append(p.type) }
            if let peer = p.peer { notes.append("peer \(peer) on \(p.peerBridge ?? "?")") }
            if let members = p.members {
                notes.append("\(p.bondMode ?? "") over ports \(members.map(String.init).joined(separator: "+"))")
            }
            if let tag = p.tag { notes.append("tag \(tag)") }
            if let trunks = p.trunks { notes.append("trunks \(trunks.map(String.init).joined(separator: ","))") }
            if !p.switched { notes.append("underlay, not switched") }
            out += "    ofport \(p.ofport): \(p.name) (\(notes.joined(separator: ", ")))\n"
        }
        return out
    }
}

extension FDBStatus {
    /// As `ovs-appctl fdb/show`: one line per station.
    public var text: String {
        " port  VLAN  MAC                Age\n" + entries.map { e in
            let port = "\(e.ofport)".leftPadded(5), vlan = "\(e.vlan)".leftPadded(5)
            return "\(port)  \(vlan)  \(e.mac)  \(e.ageS)  (\(e.port))\n"
        }.joined()
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}

extension TraceStatus {
    /// Indented like `ovs-appctl ofproto/trace`: one block per bridge, one line per step.
    public var text: String {
        var out = "Packet: \(packet)\n"
        for s in steps {
            let indent = String(repeating: "  ", count: s.depth + 1)
            switch s.kind {
            case "bridge": out += "\n\(indent)bridge(\"\(s.bridge ?? "")\") \(s.detail ?? "")\n"
            case "rule": out += "\(indent)table \(s.table ?? 0): \(s.rule ?? "?")\n"
            case "miss": out += "\(indent)table \(s.table ?? 0): \(s.detail ?? "")\n"
            case "output": out += "\(indent)-> output \(s.detail ?? "")\n"
            default: out += "\(indent)\(s.kind == "normal" ? "NORMAL: " : "")\(s.detail ?? "")\n"
            }
        }
        out += "\nDatapath actions: \(datapathActions)\n"
        if let dropReason { out += "Drop reason: \(dropReason)\n" }
        out += "Fast path: \(cacheable ? "cacheable" : "not cacheable"): \(cacheNote)\n"
        return out
    }
}

extension PortStatus {
    var text: String {
        guard let t = tunnel else {
            let notes = [xdpMode.map { "xdp \($0)" }, link.flatMap { $0 == "up" ? nil : "link \($0)" }].compactMap { $0 }
            return "  port \(number): \(name)" + (notes.isEmpty ? "" : " (\(notes.joined(separator: ", ")))") + "\n"
        }
        let vni = switch t.vni {
        case .fixed(let v): "\(v)"
        case .flow: "flow"
        }
        return "  port \(number): \(name) (vxlan: local \(t.local), remote \(t.remote), dev \(t.dev), vni \(vni), "
            + "dstport \(t.dstport), next hop \(t.nextHop.map { "\($0) \(t.neighbour)" } ?? "unresolved"))\n"
    }
}

extension PathStatus {
    /// The XDP datapath's two lines in `show`.
    var xdpText: String {
        var lines = "  xdp fast path: hits \(fastPathHits) (\(hitBytes ?? 0) B), misses \(misses ?? 0), userspace \(userspace ?? 0), "
        lines += "malformed \(malformed ?? 0), redirect errors \(redirectErrors ?? 0), drops \(drops?.nonZeroText ?? "0")\n"
        lines += "    cache: \(cacheEntries) entries (limit \(cacheLimit ?? 0)), upcalls \(upcalls) "
        lines += "(avg \(TextNumber.format(avgUpcallUs)) us), lost upcalls \(lostUpcalls) (cache full \(cacheFull ?? 0)), "
        lines += "revalidations \(revalidations) (changed \(revalidationChanges ?? 0)), expirations \(expirations)"
        lines += ((mapErrors ?? 0) > 0 ? ", map errors \(mapErrors!) (retried)" : "") + "\n"
        return lines
    }
}

extension FlowDumpStatus {
    /// As `ovs-ofctl dump-flows`; each line parses back with add-flow.
    public var text: String { flows.map { $0.line + "\n" }.joined() }
}

extension CacheDumpStatus {
    public var text: String {
        var lines: [String] = []
        for e in entries where e.path == "xdp" {
            let actions = e.userspace == true ? "userspace(\(e.actions))" : e.actions
            lines.append("xdp: \(e.key), packets:\(e.packets), bytes:\(e.bytes), used:\(TextNumber.format(Double(e.idleMs) / 1000))s ago, actions:\(actions)")
        }
        let silent = Set(unansweredWorkers ?? [])
        let workers = Set(entries.compactMap(\.worker)).union(silent).sorted()
        for w in workers {
            if silent.contains(w) {
                lines.append("worker \(w): did not answer")
                continue
            }
            for e in entries where e.path == "userspace" && e.worker == w {
                lines.append("userspace worker \(w): \(e.key), packets:\(e.packets), bytes:\(e.bytes), used:\(TextNumber.format(Double(e.idleMs) / 1000))s ago, actions:\(e.actions)")
            }
        }
        return lines.map { $0 + "\n" }.joined()
    }
}

extension MirrorListStatus {
    public var text: String { mirrors.isEmpty ? "no mirrors\n" : mirrors.map(\.text).joined() }
}

extension MirrorListStatus.Session {
    var text: String {
        var line = "\(name): \(sources.joined(separator: "+")) (\(direction)) -> \(output)"
        if sample > 1 { line += ", 1 in \(sample)" }
        if snaplen > 0 { line += ", snaplen \(snaplen)" }
        if let match { line += ", match \(match)" }
        line += "\n  selected \(count("selected")) (\(count("selected_bytes")) B)"
        line += ", mirrored \(count("mirrored")) (\(count("mirrored_bytes")) B)"
        if fastPathMirrored > 0 { line += " (\(fastPathMirrored) in the fast path)" }
        line += ", sampled out \(count("sampled_out")), truncated \(count("truncated")), dropped \(count("dropped"))"
        if let d = drops.nonZeroText { line += " (" + d + ")" }
        return line + "\n"
    }
}

extension StatsStatus {
    /// One line per port, with rates when the status has them, then one per worker when there
    /// are several.
    public var text: String {
        let header = type == "final" ? "final statistics after" : "statistics at"
        var lines = ["\(header) \(String(format1: elapsedS)) s"]
        for c in ports {
            var line = "  \(c.port): rx \(c.rxPackets) pkts \(c.rxBytes) B (\(Self.rate(c.rxRate ?? c.rxPps.map(Double.init)))) | tx \(c.txPackets) pkts \(c.txBytes) B (\(Self.rate(c.txRate ?? c.txPps.map(Double.init))))"
            if c.rxDecapsulated + c.txEncapsulated + c.rxLocal + c.txLocal > 0 {
                line += " | decap \(c.rxDecapsulated) encap \(c.txEncapsulated) local rx \(c.rxLocal) tx \(c.txLocal)"
            }
            let drops = c.dropText
            line += drops.isEmpty ? " | drops 0" : " | drops \(drops)"
            lines.append(line)
        }
        if workers.count > 1 {
            for w in workers {
                let rx = w.ports.reduce(0) { $0 + $1.rxPackets }
                let tx = w.ports.reduce(0) { $0 + $1.txPackets }
                let drops = w.ports.reduce(0) { $0 + $1.rxDropped + $1.txDropped }
                lines.append("  worker \(w.worker): rx \(rx) tx \(tx) drops \(drops)")
            }
        }
        return lines.joined(separator: "\n")
    }

    static func rate(_ pps: Double?) -> String {
        guard let v = pps else { return "-" }
        if v >= 1e6 { return String(format1: v / 1e6) + " Mpps" }
        if v >= 1e3 { return String(format1: v / 1e3) + " kpps" }
        return String(format1: v) + " pps"
    }
}

extension StatsStatus.Port {
    /// rx.reason=n tx.reason=n for the non-zero drops, reason by reason.
    var dropText: String {
        var parts: [String] = []
        for (i, r) in rxDrops.items.enumerated() {
            if r.value > 0 { parts.append("rx.\(r.name)=\(r.value)") }
            if i < txDrops.items.count, txDrops.items[i].value > 0 { parts.append("tx.\(txDrops.items[i].name)=\(txDrops.items[i].value)") }
        }
        return parts.joined(separator: " ")
    }
}

/// Numbers in the text forms: at most two decimals, none when whole.
enum TextNumber {
    static func format(_ d: Double) -> String {
        let r = (d * 100).rounded() / 100
        return r == r.rounded() ? String(Int(r)) : String(r)
    }
}
