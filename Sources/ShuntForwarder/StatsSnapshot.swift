import ShuntCore

/// Counters of a forwarder at one moment, and their text and JSON forms.
public struct StatsSnapshot: Sendable {
    public let ports: [String]
    /// [worker][port]
    public let perWorker: [[PortCounters]]
    public let elapsedNs: UInt64
    public let final: Bool
    /// XDP datapath: what the kernel fast path did per port (empty otherwise). Included in
    /// `totals`, so a port's counters cover both paths.
    public var fastPath: [PortCounters] = []

    /// Per port, summed over workers and the fast path.
    public var totals: [PortCounters] {
        (0..<ports.count).map { p in
            let workers = perWorker.reduce(PortCounters()) { $0 + $1[p] }
            return p < fastPath.count ? workers + fastPath[p] : workers
        }
    }

    /// Text, one line per port, with rates against `previous` when given.
    public func text(since previous: StatsSnapshot?) -> String {
        let seconds = Double(elapsedNs - (previous?.elapsedNs ?? 0)) / 1e9
        let before = previous?.totals
        var lines: [String] = []
        let header = final ? "final statistics after" : "statistics at"
        lines.append("\(header) \(formatSeconds(Double(elapsedNs) / 1e9))")
        for (p, c) in totals.enumerated() {
            let rxRate = rate(c.rxPackets, before?[p].rxPackets, seconds)
            let txRate = rate(c.txPackets, before?[p].txPackets, seconds)
            var line = "  \(ports[p]): rx \(c.rxPackets) pkts \(c.rxBytes) B (\(rxRate)) | tx \(c.txPackets) pkts \(c.txBytes) B (\(txRate))"
            if c.rxDecapsulated + c.txEncapsulated + c.rxLocal + c.txLocal > 0 {
                line += " | decap \(c.rxDecapsulated) encap \(c.txEncapsulated) local rx \(c.rxLocal) tx \(c.txLocal)"
            }
            let drops = dropText(c)
            line += drops.isEmpty ? " | drops 0" : " | drops \(drops)"
            lines.append(line)
        }
        if perWorker.count > 1 {
            for (w, ports) in perWorker.enumerated() {
                let rx = ports.reduce(0) { $0 + $1.rxPackets }
                let tx = ports.reduce(0) { $0 + $1.txPackets }
                let drops = ports.reduce(0) { $0 + $1.rxDropTotal + $1.txDropTotal }
                lines.append("  worker \(w): rx \(rx) tx \(tx) drops \(drops)")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// One JSON object (a line of `--json` output).
    public func json(since previous: StatsSnapshot?) -> String {
        let seconds = Double(elapsedNs - (previous?.elapsedNs ?? 0)) / 1e9
        let before = previous?.totals
        let portObjects = totals.enumerated().map { p, c in
            var fields = portFields(name: ports[p], c)
            if seconds > 0 {
                let rx = Double(c.rxPackets - (before?[p].rxPackets ?? 0)) / seconds
                let tx = Double(c.txPackets - (before?[p].txPackets ?? 0)) / seconds
                fields.append("\"rx_pps\":\(Int(rx.rounded()))")
                fields.append("\"tx_pps\":\(Int(tx.rounded()))")
            }
            return "{" + fields.joined(separator: ",") + "}"
        }
        let workerObjects = perWorker.enumerated().map { w, ports in
            "{\"worker\":\(w),\"ports\":[" + ports.enumerated().map { p, c in
                "{" + portFields(name: self.ports[p], c).joined(separator: ",") + "}"
            }.joined(separator: ",") + "]}"
        }
        let fastObjects = fastPath.enumerated().map { p, c in
            "{" + portFields(name: ports[p], c).joined(separator: ",") + "}"
        }
        let fastField = fastPath.isEmpty ? "" : ",\"fast_path\":[\(fastObjects.joined(separator: ","))]"
        return "{\"type\":\"\(final ? "final" : "stats")\",\"elapsed_s\":\(Double(elapsedNs) / 1e9),"
            + "\"ports\":[\(portObjects.joined(separator: ","))],\"workers\":[\(workerObjects.joined(separator: ","))]\(fastField)}"
    }

    private func portFields(name: String, _ c: PortCounters) -> [String] {
        func dropObject(_ d: [DropReason: UInt64]) -> String {
            "{" + DropReason.allCases.map { "\"\($0.name)\":\(d[$0] ?? 0)" }.joined(separator: ",") + "}"
        }
        return [
            "\"port\":\"\(name)\"", "\"rx_packets\":\(c.rxPackets)", "\"rx_bytes\":\(c.rxBytes)",
            "\"tx_packets\":\(c.txPackets)", "\"tx_bytes\":\(c.txBytes)",
            "\"rx_dropped\":\(c.rxDropTotal)", "\"tx_dropped\":\(c.txDropTotal)",
            "\"rx_drops\":\(dropObject(c.rxDrops))", "\"tx_drops\":\(dropObject(c.txDrops))",
            "\"kernel_offered\":\(c.kernelOffered)",
            "\"rx_decapsulated\":\(c.rxDecapsulated)", "\"tx_encapsulated\":\(c.txEncapsulated)",
            "\"rx_local\":\(c.rxLocal)", "\"tx_local\":\(c.txLocal)",
        ]
    }

    private func dropText(_ c: PortCounters) -> String {
        var parts: [String] = []
        for r in DropReason.allCases {
            if let n = c.rxDrops[r], n > 0 { parts.append("rx.\(r.name)=\(n)") }
            if let n = c.txDrops[r], n > 0 { parts.append("tx.\(r.name)=\(n)") }
        }
        return parts.joined(separator: " ")
    }

    private func rate(_ now: UInt64, _ before: UInt64?, _ seconds: Double) -> String {
        guard seconds > 0 else { return "-" }
        let pps = Double(now - (before ?? 0)) / seconds
        if pps >= 1e6 { return String(format1: pps / 1e6) + " Mpps" }
        if pps >= 1e3 { return String(format1: pps / 1e3) + " kpps" }
        return String(format1: pps) + " pps"
    }

    private func formatSeconds(_ s: Double) -> String { String(format1: s) + " s" }
}

extension String {
    /// A number with one decimal, without Foundation.
    init(format1 v: Double) {
        let tenths = Int((v * 10).rounded())
        self = "\(tenths / 10).\(abs(tenths % 10))"
    }
}
