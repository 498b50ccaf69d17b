import Foundation
import ShuntTestSupport
import Testing

/// One session's line of `shunt ctl mirror list --json`.
struct MirrorStats {
    let object: [String: Any]
    subscript(_ key: String) -> UInt64 { (object[key] as? NSNumber)?.uint64Value ?? 0 }

    /// selected = mirrored + sampled_out + dropped, for packets and (with the bytes truncation cut) bytes.
    var identityHolds: Bool {
        self["selected"] == self["mirrored"] + self["sampled_out"] + self["dropped"]
            && self["selected_bytes"] == self["mirrored_bytes"] + self["truncated_bytes"] + self["sampled_out_bytes"]
                + self["dropped_bytes"]
    }
}

extension ForwarderProcess {
    func mirrors() throws -> [String: MirrorStats] {
        let out = try ctl(["mirror", "list", "--json"]).out
        let object = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
        var result: [String: MirrorStats] = [:]
        for m in object["mirrors"] as! [[String: Any]] { result[m["name"] as! String] = MirrorStats(object: m) }
        return result
    }
}

/// The packets of a pcapng file: interface names by id, and each packet's interface, direction
/// (1 inbound, 2 outbound) and bytes. Read independently of the writer's code.
func readPcapNG(_ path: String) throws -> (interfaces: [String], packets: [(interface: Int, direction: Int, original: Int, bytes: [UInt8])]) {
    let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    func u32(_ at: Int) -> Int { Int(data[at]) | Int(data[at + 1]) << 8 | Int(data[at + 2]) << 16 | Int(data[at + 3]) << 24 }
    func u16(_ at: Int) -> Int { Int(data[at]) | Int(data[at + 1]) << 8 }
    var interfaces: [String] = []
    var packets: [(Int, Int, Int, [UInt8])] = []
    var at = 0
    while at + 12 <= data.count {
        let type = u32(at), length = u32(at + 4)
        guard length >= 12, at + length <= data.count, u32(at + length - 4) == length else { break }
        if type == 1 {
            var o = at + 16
            var name = ""
            while o + 4 <= at + length - 4 {
                let code = u16(o), len = u16(o + 2)
                if code == 0 { break }
                if code == 2 { name = String(decoding: data[o + 4..<o + 4 + len], as: UTF8.self) }
                o += 4 + (len + 3) & ~3
            }
            interfaces.append(name)
        } else if type == 6 {
            let captured = u32(at + 20)
            var o = at + 28 + (captured + 3) & ~3
            var direction = 0
            while o + 4 <= at + length - 4 {
                let code = u16(o), len = u16(o + 2)
                if code == 0 { break }
                if code == 2 { direction = u32(o + 4) & 3 }
                o += 4 + (len + 3) & ~3
            }
            packets.append((u32(at + 8), direction, u32(at + 24), Array(data[at + 28..<at + 28 + captured])))
        }
        at += length
    }
    return (interfaces, packets)
}

let tsharkPath: String? = ["/usr/bin/tshark", "/usr/local/bin/tshark"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// Port mirroring on real veths, on both datapaths. Ports: p0 (gen), p1 (sink), p2 (mon, the
/// analysis port); flows send p0's IPv4 to p1 with a rewrite (new source MAC, TTL - 1).
@Suite("Port mirroring on both datapaths", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason))
struct MirrorTests {
    static let datapaths = ["afpacket", "xdp"]
    static let rewrittenSource: [UInt8] = [0x02, 0, 0, 0, 0, 0xAA]
    static let flows = ["table=0,priority=10,in_port=1,ip,actions=mod_dl_src:02:00:00:00:00:aa,dec_ttl,output:2"]

    func start(_ lab: Lab, datapath: String, mirrors: [String], extra: [String] = [], flows: [String] = Self.flows,
               ports: Int = 3) throws -> ForwarderProcess {
        let path = NSTemporaryDirectory() + "shuntt-mirror-flows-\(getpid())-\(UUID().uuidString).txt"
        try (flows.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        var args = (0..<ports).flatMap { ["--port", "p\($0)"] } + ["--datapath", datapath, "--flows", path]
        if datapath == "xdp" { args.append("--fix-peers") }
        for m in mirrors { args += ["--mirror", m] }
        return try ForwarderProcess(namespace: lab.fwd, arguments: args + extra)
    }

    /// About 10,000 frames a second: bursts of 10, then 1 ms.
    func sendPaced(_ port: RawPort, _ frames: [[UInt8]]) throws {
        for (i, f) in frames.enumerated() {
            try port.send(f)
            if i % 10 == 9 { Thread.sleep(forTimeInterval: 0.001) }
        }
    }

    func tempPath(_ name: String) -> String { NSTemporaryDirectory() + "shuntt-\(name)-\(getpid())-\(UUID().uuidString).pcapng" }

    /// Ingress copies are the frames as sent, egress copies the frames as forwarded (after the
    /// rewrite), byte for byte and in order, one each per packet: two sessions select the same
    /// packet, and the analysis port receives nothing else (no copies of copies).
    @Test(arguments: datapaths)
    func spanCopiesAreByteIdenticalInOrderWithExactCounts(datapath: String) throws {
        let lab = try Lab(["gen", "sink", "mon"])
        let watchPath = tempPath("watch")
        defer { try? FileManager.default.removeItem(atPath: watchPath) }
        // `watch` watches the analysis port itself: the copies leaving it are not traffic to mirror.
        let fwd = try start(lab, datapath: datapath, mirrors: ["rx,src=p0,dir=in,to=p2", "tx,src=p1,dir=out,to=p2",
                                                               "watch,src=p2,to=pcap:\(watchPath)"])
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        let sinkCapture = try Capture(namespace: lab.ns("sink"), interface: lab.interface("sink"))
        let monCapture = try Capture(namespace: lab.ns("mon"), interface: lab.interface("mon"))
        let n = 1000
        let sent = (0..<n).map { ipv4UDPFrame(dst: macB, src: macA, sequence: UInt32($0)) }
        try sendPaced(gen, sent)
        Thread.sleep(forTimeInterval: 1)
        let forwarded = sinkCapture.stop().map(\.frame)
        let copies = monCapture.stop().map(\.frame)
        let mirrors = try fwd.mirrors()
        _ = try fwd.stop()

        #expect(forwarded.count == n)
        let ingressCopies = copies.filter { Array($0[6..<12]) == macA }
        let egressCopies = copies.filter { Array($0[6..<12]) == Self.rewrittenSource }
        #expect(copies.count == 2 * n, "the analysis port got \(copies.count) frames for \(n) packets")
        #expect(ingressCopies == sent, "ingress copies differ from the frames sent")
        #expect(egressCopies == forwarded, "egress copies differ from the frames forwarded")
        for name in ["rx", "tx"] {
            let m = try #require(mirrors[name])
            #expect(m["selected"] == UInt64(n) && m["mirrored"] == UInt64(n), "\(name): \(m.object)")
            #expect(m["mirrored_bytes"] == UInt64(n * 100) && m["dropped"] == 0 && m["sampled_out"] == 0 && m["truncated"] == 0)
            #expect(m.identityHolds)
        }
        #expect(mirrors["watch"]?["selected"] == 0, "copies were mirrored again")
    }

    /// SPAN of cached flows: on xdp the kernel makes the copies (a broadcast to the output and
    /// the analysis ports), so the flows stay fast-path hits. Ingress copies of a flow without
    /// edits go to p2, egress copies (after the other flow's rewrite) to p3; both byte for byte,
    /// in order, with exact counts that include the kernel's copies.
    @Test(arguments: datapaths)
    func spanOfCachedFlowsRunsInTheFastPath(datapath: String) throws {
        let lab = try Lab(["gen", "sink", "mon", "mon2"])
        let flows = ["table=0,priority=20,in_port=1,udp,tp_dst=2000,actions=output:2",
                     "table=0,priority=10,in_port=1,ip,actions=mod_dl_src:02:00:00:00:00:aa,dec_ttl,output:2"]
        let fwd = try start(lab, datapath: datapath, mirrors: ["rx,src=p0,dir=in,to=p2,match=udp,tp_dst=2000",
                                                               "tx,src=p1,dir=out,to=p3"], flows: flows, ports: 4)
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        // One packet of each flow installs it; the measured packets are cache hits.
        for (i, dport) in [2000, 3000].enumerated() {
            try gen.send(ipv4UDPFrame(dst: macB, src: macA, dport: UInt16(dport), sequence: UInt32(1_000_000 + i)))
        }
        Thread.sleep(forTimeInterval: 0.3)
        let before = try fwd.show()
        let mirrorsBefore = try fwd.mirrors()
        let sinkCapture = try Capture(namespace: lab.ns("sink"), interface: lab.interface("sink"))
        let monCapture = try Capture(namespace: lab.ns("mon"), interface: lab.interface("mon"))
        let mon2Capture = try Capture(namespace: lab.ns("mon2"), interface: lab.interface("mon2"))
        let n = 1000
        let sent = (0..<n).map { ipv4UDPFrame(dst: macB, src: macA, dport: $0 % 2 == 0 ? 2000 : 3000, sequence: UInt32($0)) }
        try sendPaced(gen, sent)
        Thread.sleep(forTimeInterval: 1)
        let forwarded = sinkCapture.stop().map(\.frame)
        let ingressCopies = monCapture.stop().map(\.frame)
        let egressCopies = mon2Capture.stop().map(\.frame)
        let after = try fwd.show()
        let mirrors = try fwd.mirrors()
        _ = try fwd.stop()

        #expect(forwarded.count == n)
        #expect(ingressCopies == sent.enumerated().filter { $0.offset % 2 == 0 }.map(\.element),
                "\(ingressCopies.count) ingress copies differ from the \(n / 2) frames to port 2000 as sent")
        #expect(egressCopies == forwarded, "\(egressCopies.count) egress copies differ from the \(forwarded.count) frames forwarded")
        for (name, count) in [("rx", n / 2), ("tx", n)] {
            let m = try #require(mirrors[name]), b = try #require(mirrorsBefore[name])
            #expect(m["selected"] - b["selected"] == UInt64(count) && m["mirrored"] - b["mirrored"] == UInt64(count),
                    "\(name): \(m.object)")
            #expect(m["mirrored_bytes"] - b["mirrored_bytes"] == UInt64(count * 100) && m["dropped"] == 0)
            #expect(m.identityHolds)
            if datapath == "xdp" {
                #expect(m["fast_path_mirrored"] - b["fast_path_mirrored"] == UInt64(count), "\(name): \(m.object)")
            } else {
                #expect(m["fast_path_mirrored"] == 0)
            }
        }
        if datapath == "xdp" {
            let hits = jsonNumber(after, "datapaths", "xdp", "fast_path_hits") - jsonNumber(before, "datapaths", "xdp", "fast_path_hits")
            #expect(hits >= UInt64(n), "only \(hits) of \(n) packets of mirrored cached flows ran in the kernel")
        }
    }

    /// A flow match narrows a session; a snap length cuts the copies (and is counted).
    @Test(arguments: datapaths)
    func filterAndSnapLength(datapath: String) throws {
        let lab = try Lab(["gen", "sink", "mon"])
        let fwd = try start(lab, datapath: datapath, mirrors: ["f,src=p0,dir=in,to=p2,snaplen=64,match=udp,tp_dst=2000"])
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        let mon = try Capture(namespace: lab.ns("mon"), interface: lab.interface("mon"))
        let n = 400
        let sent = (0..<n).map { ipv4UDPFrame(dst: macB, src: macA, dport: $0 % 2 == 0 ? 2000 : 3000, sequence: UInt32($0)) }
        try sendPaced(gen, sent)
        Thread.sleep(forTimeInterval: 1)
        let copies = mon.stop().map(\.frame)
        let m = try #require(try fwd.mirrors()["f"])
        _ = try fwd.stop()
        let expected = sent.enumerated().filter { $0.offset % 2 == 0 }.map { Array($0.element[0..<64]) }
        #expect(copies == expected, "\(copies.count) copies; want the \(n / 2) frames to port 2000, cut to 64 bytes")
        #expect(m["selected"] == UInt64(n / 2) && m["mirrored"] == UInt64(n / 2) && m["truncated"] == UInt64(n / 2))
        #expect(m["mirrored_bytes"] == UInt64(n / 2 * 64) && m["truncated_bytes"] == UInt64(n / 2 * 36))
        #expect(m.identityHolds)
    }

    /// 1-in-N sampling copies 1/N of the selected packets (within 1% over 100k packets sent).
    /// About 50,000 frames a second from a raw socket: on a loaded 2-core machine the forwarder's
    /// ring can overflow, so the test wants enough selected packets for the ratio, and every
    /// packet it missed counted as a ring overflow or never handed to it by the veth.
    @Test(arguments: datapaths)
    func samplingCopiesOneInN(datapath: String) throws {
        let lab = try Lab(["gen", "sink", "mon"])
        let fwd = try start(lab, datapath: datapath, mirrors: ["s,src=p0,dir=in,to=p2,sample=10"])
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        for i in 0..<100_000 {
            try gen.send(ipv4UDPFrame(dst: macB, src: macA, sport: UInt16(1000 + i % 16), sequence: UInt32(i)))
            if i % 50 == 49 { Thread.sleep(forTimeInterval: 0.001) }
        }
        Thread.sleep(forTimeInterval: 1)
        let m = try #require(try fwd.mirrors()["s"])
        let stats = try fwd.stop()
        let selected = Double(m["selected"])
        let ringFull = stats.drop("p0", "rx_drops", "kernel_ring_full")
        #expect(selected >= 50_000, "the forwarder saw only \(m["selected"]) of 100000 packets (\(ringFull) ring overflows)")
        #expect(m["selected"] + ringFull <= 100_000, "\(m["selected"]) selected and \(ringFull) overflows of 100000 sent")
        let ratio = Double(m["mirrored"] + m["dropped"]) / selected
        #expect(abs(ratio - 0.1) <= 0.001, "copied \(ratio) of the selected packets, want 1/10 within 1%")
        #expect(m.identityHolds)
    }

    /// Sessions added and removed live apply to flows already in the caches (the kernel's on
    /// xdp) within 100 ms: for a flow that edits the frame the slow path copies, for one that
    /// does not the kernel does.
    @Test(arguments: datapaths, [true, false])
    func liveAddAndDeleteApplyToCachedFlows(datapath: String, edits: Bool) throws {
        let lab = try Lab(["gen", "sink", "mon"])
        let fwd = try start(lab, datapath: datapath, mirrors: [],
                            flows: edits ? Self.flows : ["table=0,priority=10,in_port=1,ip,actions=output:2"])
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        let mon = try Capture(namespace: lab.ns("mon"), interface: lab.interface("mon"))
        var sequence: UInt32 = 0
        func send(_ count: Int) throws {
            try sendPaced(gen, (0..<count).map { _ in
                sequence += 1
                return ipv4UDPFrame(dst: macB, src: macA, sequence: sequence)
            })
        }
        try send(100)  // cached from now on
        Thread.sleep(forTimeInterval: 0.2)
        try fwd.ctl(["mirror", "add", "live,src=p0,dir=in,to=p2"])
        Thread.sleep(forTimeInterval: 0.1)
        try send(100)
        Thread.sleep(forTimeInterval: 0.3)
        let live = try #require(try fwd.mirrors()["live"])
        try fwd.ctl(["mirror", "del", "live"])
        Thread.sleep(forTimeInterval: 0.1)
        let afterDelete = try fwd.show()
        try send(100)
        Thread.sleep(forTimeInterval: 0.5)
        let copies = mon.stop().map(\.frame)
        let end = try fwd.show()
        let listed = try fwd.ctl(["mirror", "list"]).out
        _ = try fwd.stop()
        #expect(copies.compactMap(udpSequence) == Array(UInt32(101)...200), "copies of \(copies.compactMap(udpSequence).count) packets")
        #expect(listed == "no mirrors\n")
        #expect(live["selected"] == 100 && live["mirrored"] == 100 && live.identityHolds, "\(live.object)")
        #expect(live["fast_path_mirrored"] == (datapath == "xdp" && !edits ? 100 : 0), "\(live.object)")
        if datapath == "xdp" {
            // Back in the kernel once the session is gone.
            let hits = jsonNumber(end, "datapaths", "xdp", "fast_path_hits") - jsonNumber(afterDelete, "datapaths", "xdp", "fast_path_hits")
            #expect(hits >= 95, "only \(hits) of the last 100 packets ran in the kernel")
        }
    }

    /// A capture file: both directions of two ports, read back independently and by tshark.
    @Test(arguments: datapaths)
    func pcapngFileHasEveryCopyWithInterfaceAndDirection(datapath: String) throws {
        let lab = try Lab(["gen", "sink", "mon"])
        let path = tempPath("mirror")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fwd = try start(lab, datapath: datapath, mirrors: ["cap,src=p0+p1,to=pcap:\(path)"])
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        let sink = try Capture(namespace: lab.ns("sink"), interface: lab.interface("sink"))
        let n = 300
        let sent = (0..<n).map { ipv4UDPFrame(dst: macB, src: macA, sequence: UInt32($0)) }
        try sendPaced(gen, sent)
        Thread.sleep(forTimeInterval: 1)
        let forwarded = sink.stop().map(\.frame)
        let m = try #require(try fwd.mirrors()["cap"])
        _ = try fwd.stop()  // completes the file

        let file = try readPcapNG(path)
        #expect(file.interfaces == ["p0", "p1"])
        let inbound = file.packets.filter { $0.interface == 0 }
        let outbound = file.packets.filter { $0.interface == 1 }
        #expect(inbound.allSatisfy { $0.direction == 1 } && outbound.allSatisfy { $0.direction == 2 })
        #expect(inbound.map(\.bytes) == sent)
        #expect(outbound.map(\.bytes) == forwarded && forwarded.count == n)
        #expect(m["mirrored"] == UInt64(2 * n) && m.identityHolds)
        if let tsharkPath {
            let r = try run([tsharkPath, "-r", path, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.len"])
            let lines = r.out.split(separator: "\n")
            #expect(lines.count == 2 * n, "tshark read \(lines.count) packets")
            #expect(lines.filter { $0.hasPrefix("p0\t100") }.count == n && lines.filter { $0.hasPrefix("p1\t100") }.count == n)
        }
    }

    /// Remote mirroring: copies travel in VXLAN (the tunnel port's own VNI) to a kernel vxlan
    /// device, which decapsulates them to the original frames.
    @Test(arguments: datapaths)
    func remoteMirrorDecapsulatesToTheOriginalFrames(datapath: String) throws {
        let lab = try Lab(["gen", "sink", "mon"])
        let mon = lab.ns("mon")
        try lab.addAddress("mon", "192.0.2.2/24")
        try run(["ip", "-n", mon, "link", "add", "vxm", "type", "vxlan", "id", "4200", "dstport", "4789",
                 "remote", "192.0.2.1", "local", "192.0.2.2", "dev", lab.interface("mon")])
        try run(["ip", "-n", mon, "link", "set", "vxm", "up"])
        let fwd = try start(lab, datapath: datapath, mirrors: ["r,src=p0,dir=in,to=vxr"],
                            extra: ["--vxlan", "vxr,local=192.0.2.1,remote=192.0.2.2,dev=p2,vni=4200"])
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        let decapsulated = try Capture(namespace: mon, interface: "vxm")
        // The first copy asks ARP for the remote VTEP; copies before the answer drop as
        // tunnel_no_neighbour. Wait until one copy made it.
        var warmup: UInt32 = 0
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            try gen.send(ipv4UDPFrame(dst: macB, src: macA, sequence: 1_000_000 + warmup))
            warmup += 1
            Thread.sleep(forTimeInterval: 0.05)
            if (try fwd.mirrors()["r"]?["mirrored"] ?? 0) > 0 { break }
        }
        let n = 300
        let sent = (0..<n).map { ipv4UDPFrame(dst: macB, src: macA, sequence: UInt32($0)) }
        try sendPaced(gen, sent)
        Thread.sleep(forTimeInterval: 1)
        let frames = decapsulated.stop().map(\.frame).filter { (udpSequence($0) ?? 1_000_000) < 1_000_000 }
        let m = try #require(try fwd.mirrors()["r"])
        _ = try fwd.stop()
        #expect(frames == sent, "\(frames.count) decapsulated frames differ from the \(n) sent")
        #expect(m["selected"] == UInt64(n) + UInt64(warmup) && m.identityHolds)
        #expect(m["dropped"] == (m.object["drops"] as? [String: Any]).map { ($0["tunnel_no_neighbour"] as? NSNumber)?.uint64Value ?? 0 } ?? 0)
    }
}

/// Bad mirror sessions: one line each, non-zero exit, nothing applied.
@Suite("Mirror sessions refuse bad input", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason))
struct MirrorBadInputTests {
    @Test func badSessionsOnTheCommandLine() throws {
        let lab = try Lab(["gen", "sink", "mon"])
        let cases: [(String, String)] = [
            ("m1,src=p0+p2,to=p2", "mirror m1: output port 'p2' is also one of its sources"),
            ("m1,src=eth9,to=p2", "mirror m1: unknown source port 'eth9'"),
            ("m1,src=p0,to=eth9", "mirror m1: unknown output port 'eth9'"),
            ("m1,src=p0,to=p2,snaplen=13", "mirror m1: snaplen must be at least 14"),
            ("m1,src=p0,to=p2,sample=0", "mirror m1: sample must be 1 or more"),
        ]
        for (spec, message) in cases {
            let r = try run(["ip", "netns", "exec", lab.fwd, shuntExecutable, "forward", "--duration", "1",
                             "--port", "p0", "--port", "p1", "--port", "p2", "--mirror", spec], check: false)
            #expect(r.status == 2, "\(spec)")
            let lines = r.err.split(separator: "\n")
            #expect(lines.count == 1 && r.err.hasPrefix("shunt forward: ") && r.err.contains(message), "\(spec): \(r.err)")
        }
    }

    @Test func sessionsFromAConfigurationFile() throws {
        let lab = try Lab(["gen", "sink", "mon"])
        let path = NSTemporaryDirectory() + "shuntt-mirror-\(getpid())-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try """
            mirrors:
              - {name: both, src: [p0, p1], to: p2, sample: 4, snaplen: 96, match: "udp,tp_dst=2000"}
              - {name: one, src: p0, dir: out, to: p2}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let fwd = try ForwarderProcess(namespace: lab.fwd, arguments: ["--port", "p0", "--port", "p1", "--port", "p2",
                                                                       "--config", path])
        let m = try fwd.mirrors()
        _ = try fwd.stop()
        #expect(m["both"]?.object["spec"] as? String == "both,src=p0+p1,to=p2,sample=4,snaplen=96,match=udp,tp_dst=2000")
        #expect(m["one"]?.object["direction"] as? String == "out")

        try "mirrors:\n  - {name: m1, src: p0, to: p2, sample: 0}\n".write(toFile: path, atomically: true, encoding: .utf8)
        let r = try run(["ip", "netns", "exec", lab.fwd, shuntExecutable, "forward", "--duration", "1",
                         "--port", "p0", "--port", "p1", "--port", "p2", "--config", path], check: false)
        #expect(r.status == 2 && r.err == "shunt forward: \(path): mirror m1: sample must be 1 or more (copy 1 in N), got 0\n", "\(r.err)")
    }

    @Test func badSessionsThroughTheControlSocketChangeNothing() throws {
        let lab = try Lab(["gen", "sink", "mon"])
        let path = NSTemporaryDirectory() + "shuntt-mirror-bad-\(getpid()).pcapng"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fwd = try ForwarderProcess(namespace: lab.fwd, arguments: ["--port", "p0", "--port", "p1", "--port", "p2",
                                                                       "--mirror", "keep,src=p0,to=p2"])
        let bad = try fwd.ctl(["mirror", "add", "ok,src=p1,to=pcap:\(path)", "bad,src=p1,to=p1"], check: false)
        #expect(bad.status == 2)
        #expect(bad.err == "shunt ctl: mirror bad: output port 'p1' is also one of its sources; a mirror's output cannot be mirrored by it\n")
        let dup = try fwd.ctl(["mirror", "add", "keep,src=p1,to=p2"], check: false)
        #expect(dup.status == 2 && dup.err.contains("a mirror of that name exists already"))
        let missing = try fwd.ctl(["mirror", "del", "nope"], check: false)
        #expect(missing.status == 2 && missing.err.contains("no mirror named 'nope'"))
        #expect(Set(try fwd.mirrors().keys) == ["keep"])
        #expect(!FileManager.default.fileExists(atPath: path), "a refused session left its capture file behind")
        _ = try fwd.stop()
    }
}
