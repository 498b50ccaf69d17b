import ShuntCore

// `shunt forward --metrics ADDR:PORT`: the forwarder's counters in Prometheus's text exposition
// format (version 0.0.4), rendered from the same status values as `shunt ctl show`, the
// statistics lines and `shunt ctl mirror list`, so the three cannot disagree. Names are a stable
// interface (README, "Metrics"). Drop series appear once their count is above zero.

/// Builds one exposition: families in order, each with its HELP and TYPE lines.
struct PrometheusText {
    private(set) var text = ""

    enum Kind: String { case counter, gauge, histogram }

    mutating func family(_ name: String, _ kind: Kind, _ help: String, _ samples: [(labels: [(String, String)], value: Double)]) {
        guard !samples.isEmpty else { return }
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(kind.rawValue)\n"
        for s in samples { text += "\(name)\(Self.labels(s.labels)) \(Self.number(s.value))\n" }
    }

    mutating func family(_ name: String, _ kind: Kind, _ help: String, _ samples: [(labels: [(String, String)], value: UInt64)]) {
        family(name, kind, help, samples.map { ($0.labels, Double($0.value)) })
    }

    /// A histogram from per-bucket counts (the last above every bound) and the sum of values.
    mutating func histogram(_ name: String, _ help: String, boundsSeconds: [Double], buckets: [UInt64], sum: Double) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        var cumulative: UInt64 = 0
        for (i, bound) in boundsSeconds.enumerated() {
            cumulative += buckets[i]
            text += "\(name)_bucket{le=\"\(Self.number(bound))\"} \(cumulative)\n"
        }
        cumulative += buckets.last ?? 0
        text += "\(name)_bucket{le=\"+Inf\"} \(cumulative)\n\(name)_sum \(Self.number(sum))\n\(name)_count \(cumulative)\n"
    }

    static func labels(_ pairs: [(String, String)]) -> String {
        guard !pairs.isEmpty else { return "" }
        return "{" + pairs.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
    }

    static func escape(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    /// Integers without a fraction; others as Swift prints them (shortest round-trip form).
    static func number(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : "\(v)"
    }
}

extension FlowControl {
    /// The metrics endpoint's answer (any thread: the forwarder's readers are thread-safe).
    public func prometheusText() -> String { forwarder.prometheusText() }
}

extension Forwarder {
    /// The metrics endpoint's answer: every counter of the forwarder now.
    public func prometheusText() -> String {
        var m = PrometheusText()
        let snapshot = snapshot()
        m.family("shunt_info", .gauge, "The forwarder's configuration; always 1.",
                 [([("mode", plan.mode.rawValue), ("datapath", flowDatapath?.config.kind.rawValue ?? "none"),
                    ("workers", "\(plan.workers)")], UInt64(1))])
        m.family("shunt_uptime_seconds", .gauge, "Seconds since the forwarder started.",
                 [([], Double(snapshot.elapsedNs) / 1e9)])
        addPorts(&m, snapshot)
        if let datapath = flowDatapath {
            creditKernelCounters()  // the groups' counters include what the kernel cache counted
            addFlowPaths(&m, FlowControl(forwarder: self).showStatus(), datapath)
        }
        if let mirrors = mirrorControl?.status().mirrors, !mirrors.isEmpty { addMirrors(&m, mirrors) }
        return m.text
    }

    private func addPorts(_ m: inout PrometheusText, _ snapshot: StatsSnapshot) {
        let totals = snapshot.totals
        func each(_ value: (PortCounters) -> UInt64) -> [(labels: [(String, String)], value: UInt64)] {
            totals.enumerated().map { p, c in ([("port", snapshot.ports[p])], value(c)) }
        }
        m.family("shunt_port_rx_packets_total", .counter, "Frames received on a port (both datapaths).", each(\.rxPackets))
        m.family("shunt_port_rx_bytes_total", .counter, "Bytes received on a port.", each(\.rxBytes))
        m.family("shunt_port_tx_packets_total", .counter, "Frames sent on a port (both datapaths).", each(\.txPackets))
        m.family("shunt_port_tx_bytes_total", .counter, "Bytes sent on a port.", each(\.txBytes))
        for (direction, drops) in [("rx", \PortCounters.rxDrops), ("tx", \PortCounters.txDrops)] {
            var samples: [(labels: [(String, String)], value: UInt64)] = []
            for (p, c) in totals.enumerated() {
                for reason in DropReason.allCases {
                    if let n = c[keyPath: drops][reason], n > 0 { samples.append(([("port", snapshot.ports[p]), ("reason", reason.name)], n)) }
                }
            }
            m.family("shunt_port_\(direction)_drops_total", .counter,
                     "Frames \(direction == "rx" ? "received" : "meant to leave") on a port that were dropped, by reason.", samples)
        }
        m.family("shunt_port_rx_decapsulated_total", .counter, "Underlay frames decapsulated into a tunnel port.",
                 each(\.rxDecapsulated).filter { $0.value > 0 })
        m.family("shunt_port_tx_encapsulated_total", .counter, "Frames sent encapsulated for a tunnel port.",
                 each(\.txEncapsulated).filter { $0.value > 0 })
    }

    private func addFlowPaths(_ m: inout PrometheusText, _ show: ShowStatus, _ datapath: FlowDatapath) {
        var paths: [(String, PathStatus)] = []
        if let xdp = show.datapaths?.xdp { paths.append(("xdp", xdp)) }
        if let user = show.datapaths?.userspace { paths.append(("userspace", user)) }
        func each(_ value: (PathStatus) -> UInt64) -> [(labels: [(String, String)], value: UInt64)] {
            paths.map { ([("path", $0.0)], value($0.1)) }
        }
        m.family("shunt_flows", .gauge, "OpenFlow rules installed, over every bridge.", [([], UInt64(show.flows ?? 0))])
        m.family("shunt_fast_path_hits_total", .counter,
                 "Packets a cache handled: the XDP kernel cache (path=xdp) or the workers' exact-match caches (path=userspace).",
                 each(\.fastPathHits))
        m.family("shunt_slow_path_packets_total", .counter, "Packets passed up from that cache to the next level.",
                 each(\.slowPathPackets))
        m.family("shunt_upcalls_total", .counter, "Flow setups: kernel cache installs (xdp), pipeline runs (userspace).",
                 each(\.upcalls))
        m.family("shunt_lost_upcalls_total", .counter, "Misses forwarded without a kernel cache install (budget or cache full).",
                 each(\.lostUpcalls).filter { $0.labels[0].1 == "xdp" })
        m.family("shunt_cache_entries", .gauge, "Entries in the cache now.", each(\.cacheEntries))
        m.family("shunt_revalidations_total", .counter, "Revalidation passes (xdp), cache invalidations (userspace).",
                 each(\.revalidations))
        if let drops = show.datapaths?.xdp?.drops {
            m.family("shunt_fast_path_drops_total", .counter, "Frames the XDP fast path dropped, by reason.",
                     drops.items.filter { $0.value > 0 }.map { ([("reason", $0.name)], $0.value) })
        }
        addTunnels(&m, show.ports)
        let links = show.ports.compactMap { p in p.link.map { (p.name, $0) } }
        m.family("shunt_port_link_up", .gauge, "1 while the port's link is up (admin up and carrier), 0 when down or deleted.",
                 links.map { ([("port", $0.0)], UInt64($0.1 == "up" ? 1 : 0)) })
        do {
            let groups = (0..<datapath.layout.bridges.count).flatMap { b in
                datapath.dumpGroups(bridge: b).map { (datapath.layout.bridges[b].name, $0.group, $0.counters) }
            }
            m.family("shunt_group_packets_total", .counter, "Packets a group handled.",
                     groups.map { ([("bridge", $0.0), ("group", "\($0.1.id)")], $0.2[0].packets) })
            m.family("shunt_group_bucket_packets_total", .counter, "Packets each bucket of a group handled.",
                     groups.flatMap { g in
                         g.1.buckets.enumerated().map { i, b in
                             ([("bridge", g.0), ("group", "\(g.1.id)"), ("bucket", "\(b.id)")], g.2[1 + i].packets)
                         }
                     })
        }
        var buckets = [UInt64](repeating: 0, count: FlowPathCounters.setupBucketBoundsNs.count + 1)
        var sumNs: UInt64 = 0
        for w in flowWorkers {
            for (i, n) in w.flowCounters.setupHistogram().enumerated() { buckets[i] += n }
            sumNs += w.flowCounters.read(.setupNs)
        }
        m.histogram("shunt_flow_setup_duration_seconds",
                    "Time a worker spent setting a new flow up: translation, and on XDP the kernel cache install.",
                    boundsSeconds: FlowPathCounters.setupBucketBoundsNs.map { Double($0) / 1e9 }, buckets: buckets,
                    sum: Double(sumNs) / 1e9)
    }

    private func addTunnels(_ m: inout PrometheusText, _ ports: [PortStatus]) {
        let tunnels = ports.compactMap { p in p.tunnel.map { (p.name, $0) } }
        m.family("shunt_tunnel_neighbour_reachable", .gauge, "1 when the remote VTEP's next hop is resolved and fresh.",
                 tunnels.map { ([("tunnel", $0.0), ("remote", $0.1.remote)], UInt64($0.1.neighbour == "reachable" ? 1 : 0)) })
        let fast = tunnels.compactMap { t in t.1.fastPath.map { (t.0, $0) } }
        m.family("shunt_tunnel_fast_path_rx_packets_total", .counter, "Frames of a tunnel decapsulated in XDP.",
                 fast.map { ([("tunnel", $0.0)], $0.1.rxPackets) })
        m.family("shunt_tunnel_fast_path_tx_packets_total", .counter, "Frames of a tunnel encapsulated in XDP.",
                 fast.map { ([("tunnel", $0.0)], $0.1.txPackets) })
    }

    private func addMirrors(_ m: inout PrometheusText, _ sessions: [MirrorListStatus.Session]) {
        for (field, help) in [("selected", "Packets a mirror session selected."), ("mirrored", "Copies a mirror session made."),
                              ("dropped", "Copies a mirror session could not deliver.")] {
            m.family("shunt_mirror_\(field)_packets_total", .counter, help,
                     sessions.map { ([("mirror", $0.name)], $0.counts[field] ?? 0) })
        }
        m.family("shunt_mirror_drops_total", .counter, "Copies a mirror session dropped, by reason.",
                 sessions.flatMap { s in s.drops.items.filter { $0.value > 0 }.map { ([("mirror", s.name), ("reason", $0.name)], $0.value) } })
    }
}
