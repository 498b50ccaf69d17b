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
    public func text(since previous: StatsSnapshot?) -> String { status(since: previous).text }

    /// One JSON object (a line of `--json` output).
    public func json(since previous: StatsSnapshot?) -> String { StatusJSON.encode(status(since: previous)) }

    /// The counters as a status value, with rates against `previous` when given.
    public func status(since previous: StatsSnapshot?) -> StatsStatus {
        let seconds = Double(elapsedNs - (previous?.elapsedNs ?? 0)) / 1e9
        let before = previous?.totals
        let ports = totals.enumerated().map { p, c in
            var port = Self.port(name: self.ports[p], c)
            if seconds > 0 {
                port.rxRate = Double(c.rxPackets - (before?[p].rxPackets ?? 0)) / seconds
                port.txRate = Double(c.txPackets - (before?[p].txPackets ?? 0)) / seconds
                port.rxPps = port.rxRate.map { Int($0.rounded()) }
                port.txPps = port.txRate.map { Int($0.rounded()) }
            }
            return port
        }
        let workers = perWorker.enumerated().map { w, counters in
            StatsStatus.Worker(worker: w, ports: counters.enumerated().map { p, c in Self.port(name: self.ports[p], c) })
        }
        let fast = fastPath.enumerated().map { p, c in Self.port(name: self.ports[p], c) }
        return StatsStatus(type: final ? "final" : "stats", elapsedS: Double(elapsedNs) / 1e9, ports: ports, workers: workers,
                           fastPath: fast.isEmpty ? nil : fast)
    }

    private static func port(name: String, _ c: PortCounters) -> StatsStatus.Port {
        func drops(_ d: [DropReason: UInt64]) -> NamedCounts { NamedCounts(DropReason.allCases.map { ($0.name, d[$0] ?? 0) }) }
        return StatsStatus.Port(
            port: name, rxPackets: c.rxPackets, rxBytes: c.rxBytes, txPackets: c.txPackets, txBytes: c.txBytes,
            rxDropped: c.rxDropTotal, txDropped: c.txDropTotal, rxDrops: drops(c.rxDrops), txDrops: drops(c.txDrops),
            kernelOffered: c.kernelOffered, rxDecapsulated: c.rxDecapsulated, txEncapsulated: c.txEncapsulated,
            rxLocal: c.rxLocal, txLocal: c.txLocal)
    }
}

extension String {
    /// A number with one decimal, without Foundation.
    init(format1 v: Double) {
        let tenths = Int((v * 10).rounded())
        self = "\(tenths / 10).\(abs(tenths % 10))"
    }
}
