import Foundation
import Glibc
import ShuntTestSupport
import Testing

/// Select groups on the wire, both datapaths: 10,000 UDP flows (each sent twice) from gen into
/// `group:1`, whose buckets output to a and b with weights W1:W2. Captures on a and b count the
/// frames and show which flows went where.
///
///     [gen] gen0 <-> p0 [fwd: shunt, group 1 = select(p1 x W1, p2 x W2)] p1 <-> a0 [a]
///                                                                         p2 <-> b0 [b]
@Suite("Select groups across veths", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason),
       .enabled(if: tcpdumpInstalled, "tcpdump is needed: install it (Scripts/install-deps.sh)"))
struct GroupLabTests {
    /// The UDP source ports of the frames in a classic pcap file (Ethernet, IPv4, UDP).
    static func sourcePorts(pcap path: String) throws -> [UInt16] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard data.count >= 24 else { return [] }
        let swapped = data[0] == 0xd4  // little-endian writer (tcpdump on x86)
        func u32(_ at: Int) -> UInt32 {
            let v = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) }
            return swapped ? UInt32(littleEndian: v) : UInt32(bigEndian: v)
        }
        var ports: [UInt16] = []
        var off = 24
        while off + 16 <= data.count {
            let captured = Int(u32(off + 8))
            let frame = off + 16
            off = frame + captured
            guard captured >= 38, off <= data.count, data[frame + 12] == 0x08, data[frame + 13] == 0x00,
                  data[frame + 23] == 17 else { continue }
            ports.append(UInt16(data[frame + 34]) << 8 | UInt16(data[frame + 35]))
        }
        return ports
    }

    /// A temporary directory, removed when the value goes.
    final class Scratch {
        let path: String
        init(_ name: String) throws {
            path = NSTemporaryDirectory() + "shuntt-\(name)-\(getpid())-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    /// `shunt forward` over p0, p1, p2 with `group` (one line) as group 1 and the flow
    /// `in_port=1,actions=group:1`.
    static func groupForwarder(_ lab: Lab, datapath: String, group: String, in dir: String) throws -> ForwarderProcess {
        try group.write(toFile: dir + "/groups", atomically: true, encoding: .utf8)
        try "in_port=1,actions=group:1\n".write(toFile: dir + "/flows", atomically: true, encoding: .utf8)
        var args = ["--port", "p0", "--port", "p1", "--port", "p2", "--groups", dir + "/groups", "--flows", dir + "/flows",
                    "--datapath", datapath]
        if datapath == "xdp" { args.append("--fix-peers") }
        return try ForwarderProcess(namespace: lab.fwd, arguments: args)
    }

    static let cases: [(datapath: String, weights: [Int])] = [
        ("afpacket", [1, 1]), ("afpacket", [1, 3]), ("xdp", [1, 1]), ("xdp", [1, 3]),
    ]

    @Test(arguments: cases)
    func tenThousandFlowsSpreadByWeightAndStick(datapath: String, weights: [Int]) throws {
        let lab = try Lab(["gen", "a", "b"])
        let scratch = try Scratch("group")
        defer { withExtendedLifetime(scratch) {} }  // the directory outlives the test body
        let tmp = scratch.path
        let fwd = try Self.groupForwarder(lab, datapath: datapath, group: "group_id=1,type=select,bucket=weight:\(weights[0]),actions=output:2,bucket=weight:\(weights[1]),actions=output:3\n", in: scratch.path)
        let traffic = TrafficGate.shared()
        defer { traffic.release() }
        var captures: [SpawnedProcess] = []
        for side in ["a", "b"] {
            captures.append(try SpawnedProcess(["ip", "netns", "exec", lab.ns(side), "tcpdump", "-i", lab.interface(side),
                                                "-n", "-U", "--immediate-mode", "-B", "65536", "-w", "\(tmp)/\(side).pcap", "udp"]))
        }
        // tcpdump captures once it says it is listening.
        for c in captures {
            for _ in 0..<100 where !c.stderr.contains("listening on") { usleep(50_000) }
        }
        usleep(200_000)
        // Frame s is flow s mod 10000: every flow twice, the second time (on xdp) from the cache.
        let gen = try run(["ip", "netns", "exec", lab.ns("gen"), shuntExecutable, "gen", "--port", lab.interface("gen"),
                           "--engine", "ring", "--flows", "10000", "--count", "20000", "--rate", "10000"], check: false)
        #expect(gen.status == 0, "\(gen)")
        // tcpdump writes behind the kernel: wait until both files stop growing.
        func sizes() -> [Int] {
            ["a", "b"].map { ((try? FileManager.default.attributesOfItem(atPath: "\(tmp)/\($0).pcap"))?[.size] as? Int) ?? 0 }
        }
        var last = sizes()
        for _ in 0..<60 {
            usleep(500_000)
            let now = sizes()
            if now == last { break }
            last = now
        }
        let groupStats = try fwd.ctl(["dump-group-stats", "--json"]).out
        let show = try fwd.show()
        for c in captures { c.signal(SIGINT) }
        for c in captures { _ = c.wait(timeout: 5) }
        let stats = try fwd.stop()
        #expect(stats.exitStatus == 0)

        let a = try Self.sourcePorts(pcap: tmp + "/a.pcap")
        let b = try Self.sourcePorts(pcap: tmp + "/b.pcap")
        #expect(a.count + b.count == 20_000, "every frame left once: a \(a.count), b \(b.count); tx \(stats.value("p1", "tx_packets")) \(stats.value("p2", "tx_packets")) txd \(stats.value("p1", "tx_dropped")) \(stats.value("p2", "tx_dropped")) rxd \(stats.value("p0", "rx_dropped")); tcpdump: \(captures.map(\.stderr))")
        let total = Double(weights.reduce(0, +))
        for (count, w, name) in [(a.count, weights[0], "a"), (b.count, weights[1], "b")] {
            let expected = Double(w) / total
            let share = Double(count) / 20_000
            #expect(abs(share - expected) <= 0.05 * expected, "\(name): \(share) of the frames, expected \(expected)")
        }
        // Each flow (its source port) left on one port only, both times.
        let onA = Set(a), onB = Set(b)
        #expect(onA.isDisjoint(with: onB), "\(onA.intersection(onB).count) flows went out of both ports")
        #expect(onA.count + onB.count == 10_000)
        // The group's counters agree with the wire.
        let doc = try JSONSerialization.jsonObject(with: Data(groupStats.utf8)) as! [String: Any]
        let group = (doc["groups"] as! [[String: Any]])[0]
        let buckets = group["buckets"] as! [[String: Any]]
        #expect(jsonNumber(group, "packet_count") == 20_000, "\(group)")
        #expect(jsonNumber(buckets[0], "packet_count") == UInt64(a.count) && jsonNumber(buckets[1], "packet_count") == UInt64(b.count),
                "\(buckets)")
        if datapath == "xdp" {
            // The second frame of every flow was a kernel cache hit: one entry per flow, one bucket.
            let hits = jsonNumber(show, "datapaths", "xdp", "fast_path_hits")
            #expect(hits >= 9_000, "fast-path hits \(hits): \(show)")
        }
        #expect(stats.value("p0", "rx_packets") == 20_000 && stats.value("p0", "rx_dropped") == 0)
    }

    /// Failover on link state: 20 kpps of 16 flows into `group:1` while a's veth goes down and
    /// comes back. fast_failover moves everything to b and back; select moves only a's flows.
    /// Frames sent into the dead link before the forwarder saw the change are the loss; it must
    /// stay under 100 ms of traffic. `show` and the log name the port's state.
    @Test(arguments: [("afpacket", "fast_failover"), ("xdp", "fast_failover"), ("afpacket", "select"), ("xdp", "select")])
    func linkDownMovesTrafficToLiveBuckets(datapath: String, type: String) throws {
        let lab = try Lab(["gen", "a", "b"])
        let scratch = try Scratch("failover")
        defer { withExtendedLifetime(scratch) {} }  // the directory outlives the test body
        let fwd = try Self.groupForwarder(lab, datapath: datapath, group: "group_id=1,type=\(type),bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=output:3\n", in: scratch.path)
        let sinkA = try ShuntCommandProcess(namespace: lab.ns("a"), arguments: ["sink", "--port", lab.interface("a"), "--engine", "ring", "--json"])
        let sinkB = try ShuntCommandProcess(namespace: lab.ns("b"), arguments: ["sink", "--port", lab.interface("b"), "--engine", "ring", "--json"])
        let gen = try SpawnedProcess(["ip", "netns", "exec", lab.ns("gen"), shuntExecutable, "gen", "--port", lab.interface("gen"),
                                      "--engine", "ring", "--flows", "16", "--rate", "20000", "--duration", "4"])
        usleep(1_200_000)
        try run(["ip", "-n", lab.ns("a"), "link", "set", lab.interface("a"), "down"])
        usleep(400_000)
        let down = try fwd.show()
        let statsDown = try fwd.ctl(["dump-group-stats", "--json"]).out
        usleep(1_000_000)
        try run(["ip", "-n", lab.ns("a"), "link", "set", lab.interface("a"), "up"])
        _ = gen.wait(timeout: 10)
        usleep(300_000)
        let up = try fwd.show()
        let statsEnd = try fwd.ctl(["dump-group-stats", "--json"]).out
        let a = try sinkA.stop().final, b = try sinkB.stop().final
        let stats = try fwd.stop()
        let sent = 80_000
        let received = Int(jsonNumber(a, "received") + jsonNumber(b, "received"))
        let lost = sent - received
        // Frames handed to p1 after its peer went down and before the forwarder saw it.
        #expect(lost >= 0 && lost <= 2000, "lost \(lost) frames (\(Double(lost) / 20.0) ms of traffic); a \(a), b \(b)")
        func link(_ show: [String: Any], _ name: String) -> String? {
            (show["ports"] as? [[String: Any]])?.first { $0["name"] as? String == name }?["link"] as? String
        }
        #expect(link(down, "p1") == "down (no carrier)" && link(down, "p2") == "up", "\(down["ports"] ?? "")")
        #expect(link(up, "p1") == "up", "\(up["ports"] ?? "")")
        #expect(fwd.stderr.contains("port p1: link down (no carrier)") && fwd.stderr.contains("port p1: link up"), "\(fwd.stderr)")
        func buckets(_ text: String) -> [[String: Any]] {
            let doc = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            return ((doc?["groups"] as? [[String: Any]])?.first?["buckets"] as? [[String: Any]]) ?? []
        }
        let whileDown = buckets(statsDown), atEnd = buckets(statsEnd)
        #expect(whileDown.first?["live"] as? Bool == false && whileDown.last?["live"] as? Bool == true, "\(whileDown)")
        // Traffic came back to a after its link returned (fast_failover prefers bucket 0; select
        // gives a its flows back).
        #expect(jsonNumber(atEnd[0], "packet_count") > jsonNumber(whileDown[0], "packet_count"), "\(whileDown) \(atEnd)")
        #expect(jsonNumber(b, "received") > 0 && jsonNumber(a, "received") > 0)
        if type == "fast_failover" {
            // All of it went to b while a was down: about 1.4 s of 20 kpps.
            #expect(jsonNumber(b, "received") >= 20_000, "\(b)")
        }
        #expect(stats.exitStatus == 0)
    }

    /// A bond (`type: bond`, balance-xor, layer3+4) over p1 and p2: 16 flows spread over both
    /// members; with a's link down every flow leaves on b, and nothing else is lost.
    @Test(arguments: ["afpacket", "xdp"])
    func bondSpreadsFlowsAndFailsOver(datapath: String) throws {
        let lab = try Lab(["gen", "a", "b"])
        let scratch = try Scratch("bond")
        defer { withExtendedLifetime(scratch) {} }  // the directory outlives the test body
        let tmp = scratch.path
        try """
            bridges:
              - name: br0
                flows: br0.flows
                ports:
                  - {name: p0}
                  - {name: bond0, type: bond, members: [p1, p2], xmit_hash_policy: layer3+4}
            """.write(toFile: tmp + "/bond.yaml", atomically: true, encoding: .utf8)
        try "in_port=p0,actions=output:bond0\n".write(toFile: tmp + "/br0.flows", atomically: true, encoding: .utf8)
        var args = ["--config", tmp + "/bond.yaml", "--datapath", datapath]
        if datapath == "xdp" { args.append("--fix-peers") }
        let fwd = try ForwarderProcess(namespace: lab.fwd, arguments: args)
        let sinkA = try ShuntCommandProcess(namespace: lab.ns("a"), arguments: ["sink", "--port", lab.interface("a"), "--engine", "ring", "--json"])
        let sinkB = try ShuntCommandProcess(namespace: lab.ns("b"), arguments: ["sink", "--port", lab.interface("b"), "--engine", "ring", "--json"])
        let gen = try SpawnedProcess(["ip", "netns", "exec", lab.ns("gen"), shuntExecutable, "gen", "--port", lab.interface("gen"),
                                      "--engine", "ring", "--flows", "16", "--rate", "20000", "--duration", "3"])
        usleep(1_000_000)
        try run(["ip", "-n", lab.ns("a"), "link", "set", lab.interface("a"), "down"])
        _ = gen.wait(timeout: 10)
        usleep(300_000)
        let show = try fwd.show()
        let a = try sinkA.stop().final, b = try sinkB.stop().final
        let stats = try fwd.stop()
        #expect(stats.exitStatus == 0)
        let lost = 60_000 - Int(jsonNumber(a, "received") + jsonNumber(b, "received"))
        #expect(lost >= 0 && lost <= 2000, "lost \(lost); a \(a); b \(b)")
        // Both members carried flows before a went down (a received nothing after).
        #expect(jsonNumber(a, "received") > 1_000, "\(a)")
        let bridge = (show["bridges"] as? [[String: Any]])?.first
        let bond = (bridge?["ports"] as? [[String: Any]])?.first { $0["name"] as? String == "bond0" }
        #expect(bond?["type"] as? String == "bond" && (bond?["members"] as? [Int]) == [2, 3], "\(bond ?? [:])")
        // After the failover everything left on b: b got more than its share.
        #expect(jsonNumber(b, "received") > 30_000, "\(b)")
    }

    /// A port deleted under traffic and created again with the same name is reopened without a
    /// restart (rings for every worker; on xdp the program attached and the DEVMAP entry
    /// moved): fast_failover sends to b meanwhile, and back to a once p1 is open again.
    @Test(arguments: ["afpacket", "xdp"])
    func deletedPortThatComesBackIsReopened(datapath: String) throws {
        let lab = try Lab(["gen", "a", "b"])
        let scratch = try Scratch("reopen")
        defer { withExtendedLifetime(scratch) {} }  // the directory outlives the test body
        let fwd = try Self.groupForwarder(lab, datapath: datapath, group: "group_id=1,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=output:3\n", in: scratch.path)
        let before = try fwd.show()
        let sinkA = try ShuntCommandProcess(namespace: lab.ns("a"), arguments: ["sink", "--port", "a0", "--engine", "ring", "--json"])
        let sinkB = try ShuntCommandProcess(namespace: lab.ns("b"), arguments: ["sink", "--port", "b0", "--engine", "ring", "--json"])
        let gen = try SpawnedProcess(["ip", "netns", "exec", lab.ns("gen"), shuntExecutable, "gen", "--port", "gen0",
                                      "--engine", "ring", "--flows", "16", "--rate", "20000", "--duration", "6"])
        usleep(1_500_000)
        try run(["ip", "-n", lab.fwd, "link", "del", "p1"])  // a0 goes with it; its sink stops by itself
        usleep(1_000_000)
        try run(["ip", "-n", lab.fwd, "link", "add", "p1", "type", "veth", "peer", "name", "a0", "netns", lab.ns("a")])
        try run(["ip", "-n", lab.fwd, "link", "set", "p1", "up"])
        try run(["ip", "-n", lab.ns("a"), "link", "set", "a0", "up"])
        let sinkA2 = try ShuntCommandProcess(namespace: lab.ns("a"), arguments: ["sink", "--port", "a0", "--engine", "ring", "--json"])
        _ = gen.wait(timeout: 15)
        usleep(300_000)
        let after = try fwd.show()
        let a1 = try sinkA.stop().final, a2 = try sinkA2.stop().final, b = try sinkB.stop().final
        let stats = try fwd.stop()
        #expect(stats.exitStatus == 0)
        #expect(fwd.stderr.contains("port p1: link down (deleted)") && fwd.stderr.contains("port p1: back (ifindex")
                && fwd.stderr.contains("reopened"), "\(fwd.stderr)")
        func port(_ show: [String: Any]) -> [String: Any]? {
            (show["ports"] as? [[String: Any]])?.first { $0["name"] as? String == "p1" }
        }
        #expect(port(after)?["link"] as? String == "up", "\(port(after) ?? [:])")
        #expect(jsonNumber(port(after) ?? [:], "ifindex") != jsonNumber(port(before) ?? [:], "ifindex"))
        // Traffic went to a, to b while p1 was gone, and to the new a0 once p1 was reopened.
        let received = [a1, a2, b].map { jsonNumber($0, "received") }
        #expect(received.allSatisfy { $0 > 1000 }, "a before, a after, b: \(received)")
        let lost = 120_000 - Int(received.reduce(0, +))
        #expect(lost >= 0 && lost <= 2000, "lost \(lost): \(received)")
    }
}

