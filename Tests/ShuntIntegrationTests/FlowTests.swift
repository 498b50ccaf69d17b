import Foundation
import ShuntTestSupport
import Testing

/// An Ethernet + IPv4 + UDP frame 10.0.0.1 -> 10.0.0.2 with DF, IPv4 identification 0 and a
/// valid header checksum (UDP checksum 0), carrying the test frame's "SHNT" marker and
/// `sequence` in its payload, then filler up to `size` (each filler byte is its offset).
func ipv4UDPFrame(dst: [UInt8], src: [UInt8], ttl: UInt8 = 64, sport: UInt16 = 1000, dport: UInt16 = 2000,
                  sequence: UInt32, size: Int = 100, vlan: UInt16? = nil) -> [UInt8] {
    let fillerStart = (vlan == nil ? 14 : 18) + 20 + 8 + 8
    let payload = TestFrame.marker + withUnsafeBytes(of: sequence.bigEndian, Array.init)
        + (fillerStart..<max(size, fillerStart)).map { UInt8(truncatingIfNeeded: $0) }
    return TestFrame.ethernet(
        dst: dst, src: src, tci: vlan, type: 0x0800,
        payload: TestFrame.ipv4(proto: 17, ttl: ttl, id: 0, payload: TestFrame.udp(sport, dport, payload: payload)),
        pad: false)
}

/// The sequence number of a frame made by `ipv4UDPFrame`, wherever its VLAN tag is.
func udpSequence(_ f: [UInt8]) -> UInt32? {
    guard let r = f.firstRange(of: TestFrame.marker), r.upperBound + 4 <= f.count else { return nil }
    return f[r.upperBound..<r.upperBound + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
}

/// A receiver that keeps every UDP test frame it sees, with its arrival time, in the background.
final class Capture: @unchecked Sendable {
    private let port: RawPort
    private let lock = NSLock()
    private var frames: [(at: Date, frame: [UInt8])] = []
    private var running = true
    private var thread: Thread!

    init(namespace: String, interface: String) throws {
        port = try RawPort(namespace: namespace, interface: interface)
        thread = Thread { [unowned self] in
            while self.isRunning {
                for f in self.port.receiveAny(timeout: 0.05) {
                    self.lock.lock()
                    self.frames.append((Date(), f))
                    self.lock.unlock()
                }
            }
        }
        thread.start()
    }

    private var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return running
    }

    func stop() -> [(at: Date, frame: [UInt8])] {
        lock.lock()
        running = false
        lock.unlock()
        Thread.sleep(forTimeInterval: 0.1)
        lock.lock()
        defer { lock.unlock() }
        return frames
    }
}

/// The datapath split on real veths, the same scenarios on both datapaths.
@Suite("Flow tables on both datapaths", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason))
struct FlowTests {
    static let datapaths = ["afpacket", "xdp"]

    func writeFlows(_ lines: [String]) throws -> String {
        let path = NSTemporaryDirectory() + "shuntt-flows-\(getpid())-\(UUID().uuidString).txt"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func start(_ lab: Lab, datapath: String, flows: [String]?, ports: Int = 2, extra: [String] = []) throws -> ForwarderProcess {
        var args: [String] = []
        for i in 0..<ports { args += ["--port", lab.port(i)] }
        args += ["--datapath", datapath]
        if let flows { args += ["--flows", try writeFlows(flows)] }
        if datapath == "xdp" { args.append("--fix-peers") }
        return try ForwarderProcess(namespace: lab.fwd, arguments: args + extra)
    }

    /// The first packet of a flow goes through the slow path and arrives; the following ones are
    /// served from the cache (the kernel's on xdp, the worker's exact-match cache on afpacket),
    /// and every copy is byte-identical whichever path made it.
    @Test(arguments: datapaths)
    func firstPacketUpcallsThenCacheHits(datapath: String) throws {
        let lab = try Lab()
        let fwd = try start(lab, datapath: datapath, flows: [
            "table=0,priority=10,in_port=1,ip,actions=mod_dl_src:02:00:00:00:00:aa,mod_vlan_vid:5,dec_ttl,output:2",
            "table=0,priority=10,in_port=2,actions=output:1",
        ])
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        let sink = try RawPort(namespace: lab.ns("sink"), interface: lab.interface("sink"))

        try gen.send(ipv4UDPFrame(dst: macB, src: macA, sequence: 0))
        let first = sink.receiveAny(count: 1, timeout: 3)
        #expect(first.count == 1, "the first packet of the flow must not be lost in the upcall")
        let afterFirst = try fwd.show()

        let n = 200
        for i in 1...n { try gen.send(ipv4UDPFrame(dst: macB, src: macA, sequence: UInt32(i))) }
        let rest = sink.receiveAny(count: n, timeout: 5)
        let after = try fwd.show()
        let stats = try fwd.stop()
        // Port counters cover both paths.
        #expect(stats.value("p0", "rx_packets") == UInt64(n + 1))
        #expect(stats.value("p1", "tx_packets") == UInt64(n + 1))
        #expect(stats.value("p1", "tx_bytes") == UInt64((n + 1) * 104))

        #expect(rest.count == n)
        let all = first + rest
        // Expected: the sent frame with the new source MAC, TTL 63 (and its checksum), and a
        // VLAN 5 tag after the MACs.
        let wrong = all.filter { f in
            var expected = ipv4UDPFrame(dst: macB, src: [0x02, 0, 0, 0, 0, 0xAA], ttl: 63, sequence: udpSequence(f) ?? 9999)
            expected.insert(contentsOf: [0x81, 0x00, 0x00, 0x05], at: 12)
            return f != expected || !f.ipv4ChecksumIsValid(at: 18)
        }
        #expect(wrong.isEmpty, "\(wrong.count) frames differ from the expected rewrite, e.g. \(wrong.first ?? [])")
        #expect(all.compactMap(udpSequence) == Array(0...UInt32(n)), "frames reordered or lost")

        if datapath == "xdp" {
            #expect(jsonNumber(afterFirst, "datapaths", "xdp", "upcalls") == 1)
            #expect(jsonNumber(after, "datapaths", "xdp", "upcalls") == 1)
            #expect(jsonNumber(after, "datapaths", "xdp", "fast_path_hits") >= UInt64(n - 5),
                    "after the install, the kernel must forward the flow (in-flight packets may still come up)")
            #expect(jsonNumber(after, "datapaths", "xdp", "cache_entries") == 1)
        } else {
            #expect(jsonNumber(after, "datapaths", "userspace", "upcalls") == 1)
            #expect(jsonNumber(after, "datapaths", "userspace", "fast_path_hits") == UInt64(n))
        }
    }

    /// A flow change redirects a running flow within 100 ms, on both datapaths.
    @Test(arguments: datapaths)
    func flowChangeRedirectsWithin100ms(datapath: String) throws {
        let lab = try Lab(["gen", "a", "b"])
        let fwd = try start(lab, datapath: datapath, flows: ["table=0,priority=10,in_port=1,actions=output:2"], ports: 3)
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        let atA = try Capture(namespace: lab.ns("a"), interface: lab.interface("a"))
        let atB = try Capture(namespace: lab.ns("b"), interface: lab.interface("b"))

        var sentAt: [UInt32: Date] = [:]
        var seq: UInt32 = 0
        func sendFor(_ seconds: Double) throws {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                sentAt[seq] = Date()
                try gen.send(ipv4UDPFrame(dst: macB, src: macA, sequence: seq))
                seq += 1
                usleep(1000)
            }
        }
        try sendFor(0.3)
        try fwd.ctl(["add-flow", "table=0,priority=20,in_port=1,actions=output:3"])
        let changed = Date()
        try sendFor(0.4)
        Thread.sleep(forTimeInterval: 0.2)
        let framesA = atA.stop(), framesB = atB.stop()
        _ = try fwd.stop()

        let seqA = Set(framesA.compactMap { udpSequence($0.frame) })
        let seqB = Set(framesB.compactMap { udpSequence($0.frame) })
        let lateSent = sentAt.filter { $0.value >= changed.addingTimeInterval(0.1) }.map(\.key)
        #expect(!lateSent.isEmpty)
        #expect(lateSent.allSatisfy { seqB.contains($0) && !seqA.contains($0) },
                "every frame sent 100 ms after the change must go to port 3 only")
        let early = sentAt.filter { $0.value < changed.addingTimeInterval(-0.01) }.map(\.key)
        #expect(early.allSatisfy { seqA.contains($0) }, "before the change the flow goes to port 2")
        #expect(seqA.count + seqB.count == Int(seq), "every frame arrives exactly once")
    }

    /// Table misses and drop actions are counted with their reasons; dump-flows counts packets
    /// per flow whichever path carried them.
    @Test(arguments: datapaths)
    func dropsAreCountedAndFlowsCountPackets(datapath: String) throws {
        let lab = try Lab()
        let fwd = try start(lab, datapath: datapath, flows: [
            "table=0,priority=10,in_port=1,udp,tp_dst=2000,actions=resubmit(,1)",
            "table=0,priority=5,in_port=1,udp,tp_dst=3000,actions=drop",
            "table=1,priority=1,actions=output:2",
        ])
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        let sink = try RawPort(namespace: lab.ns("sink"), interface: lab.interface("sink"))
        for i in 0..<50 { try gen.send(ipv4UDPFrame(dst: macB, src: macA, dport: 2000, sequence: UInt32(i))) }
        for i in 0..<30 { try gen.send(ipv4UDPFrame(dst: macB, src: macA, dport: 3000, sequence: UInt32(100 + i))) }
        for i in 0..<20 { try gen.send(ipv4UDPFrame(dst: macB, src: macA, dport: 4000, sequence: UInt32(200 + i))) }
        let received = sink.receiveAny(count: 50, timeout: 3)
        Thread.sleep(forTimeInterval: 0.2)
        let dump = try fwd.ctl(["dump-flows"]).out
        let show = try fwd.show()
        let stats = try fwd.stop()

        #expect(received.count == 50)
        #expect(dump.contains("table=0, n_packets=50, n_bytes=5000, priority=10,udp,in_port=1,tp_dst=2000 actions=resubmit(,1)")
                || dump.contains("n_packets=50, n_bytes=5000, priority=10,"), "dump-flows:\n\(dump)")
        #expect(dump.contains("n_packets=30, n_bytes=3000, priority=5,"), "dump-flows:\n\(dump)")
        #expect(dump.contains("table=1, n_packets=50, n_bytes=5000, priority=1 actions=output:2"), "dump-flows:\n\(dump)")
        // The port's counters cover both paths (on xdp most drops happen in the kernel).
        #expect(stats.drop("p0", "rx_drops", "flow_drop") == 30)
        #expect(stats.drop("p0", "rx_drops", "no_match") == 20)
        #expect(stats.value("p0", "rx_packets") == 100)
        #expect(stats.value("p1", "tx_packets") == 50)
        // (How many of them the kernel dropped depends on timing: a burst is mostly in the
        // ring before the first packet's cache entry is installed.)
        _ = show
    }

    /// A kernel cache entry unused for the idle timeout is removed.
    @Test func idleEntriesExpire() throws {
        let lab = try Lab()
        let fwd = try start(lab, datapath: "xdp", flows: ["table=0,priority=1,in_port=1,actions=output:2"],
                            extra: ["--idle-timeout", "0.4"])
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        let sink = try RawPort(namespace: lab.ns("sink"), interface: lab.interface("sink"))
        for i in 0..<10 { try gen.send(ipv4UDPFrame(dst: macB, src: macA, sequence: UInt32(i))) }
        #expect(sink.receiveAny(count: 10, timeout: 3).count == 10)
        let before = try fwd.show()
        Thread.sleep(forTimeInterval: 1.2)
        let after = try fwd.show()
        _ = try fwd.stop()
        #expect(jsonNumber(before, "datapaths", "xdp", "cache_entries") == 1)
        #expect(jsonNumber(after, "datapaths", "xdp", "cache_entries") == 0)
        #expect(jsonNumber(after, "datapaths", "xdp", "expirations") == 1)
    }

    /// Without a flow file the table is `priority=0,actions=NORMAL`: a learning switch on both
    /// datapaths (flooding unknown destinations, then unicast once learned).
    @Test(arguments: datapaths)
    func defaultTableIsNormal(datapath: String) throws {
        let lab = try Lab(["a", "b", "c"])
        let fwd = try start(lab, datapath: datapath, flows: nil, ports: 3)
        let a = try RawPort(namespace: lab.ns("a"), interface: lab.interface("a"))
        let b = try RawPort(namespace: lab.ns("b"), interface: lab.interface("b"))
        let c = try RawPort(namespace: lab.ns("c"), interface: lab.interface("c"))
        try a.send(ipv4UDPFrame(dst: macB, src: macA, sequence: 1))  // unknown: flooded
        #expect(b.receiveAny(count: 1, timeout: 2).count == 1)
        #expect(c.receiveAny(count: 1, timeout: 2).count == 1)
        try b.send(ipv4UDPFrame(dst: macA, src: macB, sequence: 2))  // A is known: only to a
        #expect(a.receiveAny(count: 1, timeout: 2).count == 1)
        for i in 0..<20 { try a.send(ipv4UDPFrame(dst: macB, src: macA, sequence: UInt32(10 + i))) }
        #expect(b.receiveAny(count: 20, timeout: 3).count == 20)
        #expect(c.receiveAny(count: 1, timeout: 0.5).isEmpty, "a learned destination must not be flooded")
        #expect(a.receiveAny(count: 1, timeout: 0.3).isEmpty, "nothing goes back to its in_port")
        _ = try fwd.stop()
    }

    /// Without GRO on a port's peer the XDP datapath refuses to start and says what to run;
    /// --fix-peers enables GRO there and forwarding works.
    @Test func xdpChecksAndFixesPeers() throws {
        let lab = try Lab()
        for side in lab.sides { try run(["ip", "netns", "exec", lab.ns(side), "ethtool", "-K", lab.interface(side), "gro", "off"]) }
        let refused = try run(["ip", "netns", "exec", lab.fwd, shuntExecutable, "forward", "--no-control", "--duration", "1",
                               "--port", "p0", "--port", "p1", "--datapath", "xdp"], check: false)
        #expect(refused.status == 2)
        #expect(refused.err.contains("XDP redirect into port p0 would drop frames silently"), "\(refused.err)")
        #expect(refused.err.contains("ethtool -K gen0 gro on") && refused.err.contains("--fix-peers"), "\(refused.err)")

        let fwd = try ForwarderProcess(namespace: lab.fwd, arguments: ["--port", "p0", "--port", "p1", "--datapath", "xdp", "--fix-peers"])
        let gro = try run(["ip", "netns", "exec", lab.ns("sink"), "ethtool", "-k", lab.interface("sink")]).out
        #expect(gro.contains("generic-receive-offload: on"))
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        let sink = try RawPort(namespace: lab.ns("sink"), interface: lab.interface("sink"))
        for i in 0..<50 { try gen.send(ipv4UDPFrame(dst: broadcast, src: macA, sequence: UInt32(i))) }
        #expect(sink.receiveAny(count: 50, timeout: 3).count == 50)
        _ = try fwd.stop()
    }

    /// Misses beyond the upcall budget or the cache size are still forwarded by the slow path
    /// and counted as lost upcalls: nothing is dropped silently.
    @Test(arguments: [["--upcall-budget", "2"], ["--cache-size", "3"]])
    func missesBeyondTheBudgetAreForwardedAndCounted(limit: [String]) throws {
        let lab = try Lab()
        let fwd = try start(lab, datapath: "xdp", flows: ["table=0,priority=1,in_port=1,actions=output:2"], extra: limit)
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        let sink = try RawPort(namespace: lab.ns("sink"), interface: lab.interface("sink"))
        // 40 flows (distinct source ports), 3 packets each.
        var sent = 0
        for round in 0..<3 {
            for flow in 0..<40 {
                try gen.send(ipv4UDPFrame(dst: macB, src: macA, sport: UInt16(5000 + flow), sequence: UInt32(round * 100 + flow)))
                sent += 1
            }
        }
        let received = sink.receiveAny(count: sent, timeout: 5)
        let show = try fwd.show()
        _ = try fwd.stop()
        #expect(received.count == sent, "every packet is forwarded, installed or not")
        let upcalls = jsonNumber(show, "datapaths", "xdp", "upcalls")
        let lost = jsonNumber(show, "datapaths", "xdp", "lost_upcalls")
        #expect(upcalls >= 2 && upcalls < 40, "the limit must hold: \(upcalls) installs")
        #expect(lost > 0)
        #expect(jsonNumber(show, "datapaths", "xdp", "cache_entries") == upcalls)
        if limit[0] == "--cache-size" {
            #expect(upcalls == 3 && jsonNumber(show, "datapaths", "xdp", "cache_full") == lost)
        }
    }

    /// Traffic from real stacks (ARP, ping, UDP sent with checksum offload) crosses the default
    /// NORMAL table on both datapaths, many packets of it through the XDP fast path.
    @Test(arguments: datapaths)
    func realStacksTalkThroughNormal(datapath: String) throws {
        let lab = try Lab()
        try lab.addAddress("gen", "10.203.0.1/24")
        try lab.addAddress("sink", "10.203.0.2/24")
        let fwd = try start(lab, datapath: datapath, flows: nil)
        let ping = try run(["ip", "netns", "exec", lab.ns("gen"), "ping", "-c", "5", "-i", "0.2", "-W", "2", "10.203.0.2"], check: false)
        #expect(ping.status == 0, "ping through the forwarder failed: \(ping.out)")
        let server = try UDPEndpoint(namespace: lab.ns("sink"), bind: "10.203.0.2", port: 7777)
        let client = try UDPEndpoint(namespace: lab.ns("gen"), bind: "10.203.0.1", port: 7778)
        var received: [Int] = []
        for round in 0..<20 {
            let size = [1, 100, 1400][round % 3]
            #expect(client.send((0..<size).map { UInt8(truncatingIfNeeded: $0 &+ round) }, to: "10.203.0.2", port: 7777))
            if let got = server.receive(timeout: 3) { received.append(got.count) }
        }
        let show = try fwd.show()
        _ = try fwd.stop()
        #expect(received.count == 20, "UDP datagrams lost (checksums left to offload?)")
        if datapath == "xdp" {
            // UDP with offloaded checksums stays in the slow path (XDP cannot complete them).
            #expect(jsonNumber(show, "datapaths", "userspace", "checksum_pending") >= 19)
        }
    }
}
