import FoundationEssentials
import Testing

@testable import ShuntForwarder

/// The status values keep the documented JSON names (README, "Control socket"), read back to
/// equal values, and render the text `shunt ctl` prints.
@Suite("Status model: JSON names and text")
struct StatusModelTests {
    static func roundTrip<T: Codable & Equatable>(_ value: T) throws -> (json: String, back: T) {
        let json = StatusJSON.encode(value)
        return (json, try JSONDecoder().decode(T.self, from: Data(json.utf8)))
    }

    static func show() -> ShowStatus {
        var user = PathStatus()
        (user.fastPathHits, user.upcalls, user.avgUpcallUs, user.packets, user.checksumPending) = (90, 10, 1.25, 100, 0)
        var xdp = PathStatus()
        (xdp.fastPathHits, xdp.hitBytes, xdp.cacheLimit, xdp.mapErrors) = (5000, 300_000, 65536, 2)
        xdp.drops = NamedCounts([("flow_drop", 3), ("runt", 0)])
        let tunnel = PortStatus.TunnelStatus(local: "192.0.2.1", remote: "192.0.2.2", dev: "p1", vni: .flow, dstport: 4789,
                                             nextHop: nil, neighbour: "unresolved",
                                             fastPath: TunnelFastPathStatus(encapsulates: true, rxPackets: 1, txPackets: 2))
        return ShowStatus(mode: "flows", datapath: "xdp", workers: 2, flows: 3, generation: 7,
                          ports: [PortStatus(number: 1, name: "p0", ifindex: 4, xdpMode: "native"),
                                  PortStatus(number: 3, name: "vx1", tunnel: tunnel)],
                          datapaths: .init(xdp: xdp, userspace: user), total: PathStatus.common(xdp))
    }

    @Test func showKeepsItsNames() throws {
        let (json, back) = try Self.roundTrip(Self.show())
        #expect(back == Self.show())
        for name in ["\"mode\":\"flows\"", "\"datapath\":\"xdp\"", "\"generation\":7", "\"xdp_mode\":\"native\"",
                     "\"ifindex\":4", "\"type\":\"vxlan\"", "\"vni\":\"flow\"", "\"next_hop\":null", "\"neighbour\":\"unresolved\"",
                     "\"fast_path\":{\"encapsulates\":true,\"rx_packets\":1,\"tx_packets\":2}", "\"fast_path_hits\":5000",
                     "\"avg_upcall_us\":1.25", "\"checksum_pending\":0", "\"map_errors\":2", "\"drops\":{\"flow_drop\":3,\"runt\":0}",
                     "\"slow_path_packets\":0", "\"lost_upcalls\":0"] {
            #expect(json.contains(name), "\(name) missing from \(json)")
        }
        #expect(!json.contains("\"cache_limit\":65536,\"checksum"), "a userspace-only field leaked into xdp")
    }

    @Test func showText() {
        let text = Self.show().text
        #expect(text.hasPrefix("shunt forwarder: datapath xdp, 2 worker(s), 3 flow(s), tables generation 7\n"))
        #expect(text.contains("  port 1: p0 (xdp native)\n"))
        #expect(text.contains("  port 3: vx1 (vxlan: local 192.0.2.1, remote 192.0.2.2, dev p1, vni flow, dstport 4789, next hop unresolved)\n"))
        #expect(text.contains("drops flow_drop 3\n") && text.contains("(limit 65536)") && text.contains(", map errors 2 (retried)\n"))
        #expect(text.hasSuffix("  userspace: packets 100, exact-match hits 90, pipeline runs 10 (avg 1.25 us), cache entries 0, invalidations 0, kept up for offloaded checksums 0\n"))
        let plain = ShowStatus(mode: "xconnect", workers: 1, ports: [PortStatus(number: 1, name: "a"), PortStatus(number: 2, name: "b")])
        #expect(plain.text == "shunt forwarder: xconnect mode, 1 worker(s)\n  port 1: a\n  port 2: b\n")
        #expect(StatusJSON.encode(plain) == "{\"mode\":\"xconnect\",\"ports\":[{\"name\":\"a\",\"number\":1},{\"name\":\"b\",\"number\":2}],\"workers\":1}")
    }

    @Test func mirrorSessionsCarryTheirCountersAtTheTop() throws {
        let session = MirrorListStatus.Session(
            name: "m", sources: ["p0"], direction: "in", output: "p2", outputType: "port", sample: 10, snaplen: 0, match: nil,
            spec: "m,src=p0,dir=in,to=p2,sample=10",
            counts: NamedCounts(MirrorCounters.Field.reported.map { ($0.jsonName, $0 == .selected ? 100 : 0) }),
            fastPathMirrored: 0, drops: NamedCounts(MirrorDrop.allCases.map { ($0.name, $0 == MirrorDrop.allCases[0] ? 1 : 0) }))
        let (json, back) = try Self.roundTrip(MirrorListStatus(mirrors: [session]))
        #expect(back.mirrors[0].count("selected") == 100 && back.mirrors[0].drops == session.drops)
        #expect(json.contains("\"selected\":100") && json.contains("\"match\":null") && json.contains("\"sampled_out_bytes\":0"))
        #expect(session.text.hasPrefix("m: p0 (in) -> p2, 1 in 10\n  selected 100 (0 B), mirrored 0 (0 B), sampled out 0"))
        #expect(MirrorListStatus(mirrors: []).text == "no mirrors\n")
    }

    @Test func statsLinesRateAndDrops() throws {
        var snapshot = StatsSnapshot(ports: ["p0", "p1"], perWorker: [[PortCounters(), PortCounters()]],
                                     elapsedNs: 2_000_000_000, final: true)
        var before = snapshot
        var c = PortCounters()
        c.rxPackets = 3_000_000
        c.rxDrops[.runt] = 4
        c.txDrops[.runt] = 5
        snapshot = StatsSnapshot(ports: ["p0", "p1"], perWorker: [[c, PortCounters()]], elapsedNs: 3_000_000_000, final: true)
        before = StatsSnapshot(ports: ["p0", "p1"], perWorker: [[PortCounters(), PortCounters()]], elapsedNs: 2_000_000_000,
                               final: false)
        let status = snapshot.status(since: before)
        #expect(status.ports[0].rxPps == 3_000_000 && status.type == "final")
        let (json, back) = try Self.roundTrip(status)
        var wire = status  // the unrounded rates are for the text only
        for i in wire.ports.indices { (wire.ports[i].rxRate, wire.ports[i].txRate) = (nil, nil) }
        #expect(back == wire && json.contains("\"rx_pps\":3000000") && json.contains("\"elapsed_s\":3"))
        let text = status.text
        #expect(text.hasPrefix("final statistics after 3.0 s\n  p0: rx 3000000 pkts 0 B (3.0 Mpps) | tx 0 pkts 0 B (0.0 pps)"))
        #expect(text.contains("| drops rx.runt=4 tx.runt=5"))
        #expect(snapshot.status(since: nil).text.contains("(-)") == false)
        // A slow rate keeps its decimal in the text (3 frames in 10 s).
        var slow = PortCounters()
        slow.rxPackets = 3
        let later = StatsSnapshot(ports: ["p0", "p1"], perWorker: [[slow, PortCounters()]], elapsedNs: 12_000_000_000, final: false)
        #expect(later.status(since: before).text.contains("rx 3 pkts 0 B (0.3 pps)"))
    }

    @Test func cacheDumpSaysWhichWorkersDidNotAnswer() throws {
        let dump = CacheDumpStatus(entries: [
            .init(path: "xdp", key: "k1", actions: "output:2", userspace: true, packets: 1, bytes: 60, idleMs: 1500),
            .init(path: "userspace", worker: 0, key: "k2", actions: "drop", packets: 2, bytes: 120, idleMs: 0),
        ], unansweredWorkers: [1])
        let (json, back) = try Self.roundTrip(dump)
        #expect(back == dump && json.contains("\"unanswered_workers\":[1]") && json.contains("\"idle_ms\":1500"))
        #expect(dump.text == "xdp: k1, packets:1, bytes:60, used:1.5s ago, actions:userspace(output:2)\n"
            + "userspace worker 0: k2, packets:2, bytes:120, used:0s ago, actions:drop\nworker 1: did not answer\n")
    }
}
