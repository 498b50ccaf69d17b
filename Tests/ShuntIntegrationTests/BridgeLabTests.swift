import Foundation
import ShuntTestSupport
import Testing

/// Several bridges in one forwarder on real veths, the same scenarios on both datapaths:
/// patch ports, access tags, trunks, NORMAL per VLAN, VLAN actions across a patch port, and
/// `shunt ctl trace` / `show` / `--bridge` on the running forwarder.
@Suite("Bridges, patch ports and VLANs on both datapaths", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason))
struct BridgeLabTests {
    static let datapaths = ["afpacket", "xdp"]
    static let macC: [UInt8] = [0x02, 0, 0, 0, 0, 0x0C]
    static let broadcast: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]

    func writeFile(_ text: String, suffix: String) throws -> String {
        let path = NSTemporaryDirectory() + "shuntt-bridges-\(getpid())-\(UUID().uuidString).\(suffix)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// br-a: p0 (VLAN 10), p1 (VLAN 20), patch pa; br-b: patch pb, p2 (VLAN 10), p3 (trunk of 20).
    func start(_ lab: Lab, datapath: String, brA: String? = nil, brB: String? = nil) throws -> ForwarderProcess {
        let flowsA = try brA.map { "    flows: \(try writeFile($0, suffix: "flows"))\n" } ?? ""
        let flowsB = try brB.map { "    flows: \(try writeFile($0, suffix: "flows"))\n" } ?? ""
        let config = """
            bridges:
              - name: br-a
            \(flowsA)    ports:
                  - {name: p0, tag: 10}
                  - {name: p1, tag: 20}
                  - {name: pa, ofport: 7, type: patch, peer: pb}
              - name: br-b
            \(flowsB)    ports:
                  - {name: pb, type: patch, peer: pa}
                  - {name: p2, tag: 10}
                  - {name: p3, trunks: [20]}

            """
        var args = ["--config", try writeFile(config, suffix: "yaml"), "--datapath", datapath]
        if datapath == "xdp" { args.append("--fix-peers") }
        return try ForwarderProcess(namespace: lab.fwd, arguments: args)
    }

    func vlan(_ f: [UInt8]) -> UInt16? { f[12] == 0x81 && f[13] == 0 ? UInt16(f[14] & 0x0f) << 8 | UInt16(f[15]) : nil }

    @Test(arguments: datapaths)
    func accessPortsAndPatchPortsSwitchPerVLAN(datapath: String) throws {
        let lab = try Lab(["a", "b", "c", "d"])
        let fwd = try start(lab, datapath: datapath)
        let a = try RawPort(namespace: lab.ns("a"), interface: lab.interface("a"))
        let b = try RawPort(namespace: lab.ns("b"), interface: lab.interface("b"))
        let c = try RawPort(namespace: lab.ns("c"), interface: lab.interface("c"))
        let d = try RawPort(namespace: lab.ns("d"), interface: lab.interface("d"))

        // A broadcast in VLAN 10 crosses the patch and reaches only c, untagged.
        try a.send(ipv4UDPFrame(dst: Self.broadcast, src: macA, sequence: 1))
        let atC = c.receiveAny(count: 1, timeout: 3)
        #expect(atC.count == 1 && atC.first.map(vlan) == .some(nil))
        // A broadcast in VLAN 20 reaches only the trunk d, tagged 20.
        try b.send(ipv4UDPFrame(dst: Self.broadcast, src: macB, sequence: 2))
        let atD = d.receiveAny(count: 1, timeout: 3)
        #expect(atD.count == 1 && atD.first.map(vlan) == .some(20))
        #expect(a.receiveAny(timeout: 0.3).isEmpty && b.receiveAny(timeout: 0.1).isEmpty)
        #expect(c.receiveAny(timeout: 0.1).isEmpty && d.receiveAny(timeout: 0.1).isEmpty, "nothing crosses VLANs")

        // c answers a: learned in VLAN 10 on both bridges, unicast back to a only.
        try c.send(ipv4UDPFrame(dst: macA, src: Self.macC, sequence: 3))
        #expect(a.receiveAny(count: 1, timeout: 3).count == 1)
        #expect(b.receiveAny(timeout: 0.3).isEmpty && d.receiveAny(timeout: 0.1).isEmpty)

        // A steady unicast flow a -> c: every frame arrives, and (xdp) after the first (the
        // upcall that installs it) the kernel carries it.
        let n = 200
        try a.send(ipv4UDPFrame(dst: Self.macC, src: macA, sequence: 100))
        var flow = c.receiveAny(count: 1, timeout: 3)
        for i in 1..<n { try a.send(ipv4UDPFrame(dst: Self.macC, src: macA, sequence: UInt32(100 + i))) }
        flow += c.receiveAny(count: n - 1, timeout: 5)
        #expect(flow.count == n && flow.allSatisfy { vlan($0) == nil })
        // A tagged frame on an access port is refused.
        try a.send(ipv4UDPFrame(dst: Self.macC, src: macA, sequence: 999, vlan: 10))
        #expect(c.receiveAny(timeout: 0.5).isEmpty)

        let fdb = try fwd.ctl(["--bridge", "br-a", "fdb-show"]).out
        #expect(fdb.contains("    1     10  02:00:00:00:00:0a") && fdb.contains("    7     10  02:00:00:00:00:0c"), "\(fdb)")
        #expect(fdb.contains("    2     20  02:00:00:00:00:0b") && fdb.contains("(pa)"), "\(fdb)")
        let show = try fwd.show()
        let bridges = show["bridges"] as? [[String: Any]] ?? []
        #expect(bridges.map { $0["name"] as? String } == ["br-a", "br-b"])
        let trace = try fwd.ctl(["--bridge", "br-a", "trace",
                                 "in_port=p0,udp,dl_src=02:00:00:00:00:0a,dl_dst=02:00:00:00:00:0c"]).out
        let stats = try fwd.stop()
        #expect(trace.contains("bridge(\"br-a\") in_port p0") && trace.contains("bridge(\"br-b\") in_port pb"), "\(trace)")
        #expect(trace.contains("Datapath actions: 3\n") && trace.contains("Fast path: cacheable"), "\(trace)")
        #expect(stats.value("p2", "tx_packets") == UInt64(n + 1))
        if datapath == "xdp" {
            #expect(jsonNumber(show, "datapaths", "xdp", "fast_path_hits") >= UInt64(n - 5),
                    "the patched unicast flow must be one kernel cache entry")
        }
    }

    /// dl_vlan, mod_vlan_vid and strip_vlan in flows on both sides of a patch port.
    @Test(arguments: datapaths)
    func vlanActionsAcrossAPatchPort(datapath: String) throws {
        let lab = try Lab(["a", "b", "c", "d"])
        let fwd = try start(lab, datapath: datapath,
                            brA: "in_port=p0 actions=mod_vlan_vid:10,output:pa\nin_port=pa actions=output:p1\n",
                            brB: "in_port=pb,dl_vlan=10 actions=mod_vlan_vid:30,output:p3\n"
                                + "in_port=p3,dl_vlan=30 actions=strip_vlan,output:pb\n")
        let a = try RawPort(namespace: lab.ns("a"), interface: lab.interface("a"))
        let b = try RawPort(namespace: lab.ns("b"), interface: lab.interface("b"))
        let d = try RawPort(namespace: lab.ns("d"), interface: lab.interface("d"))
        for i in 0..<50 { try a.send(ipv4UDPFrame(dst: macB, src: macA, sequence: UInt32(i))) }
        let atD = d.receiveAny(count: 50, timeout: 5)
        #expect(atD.count == 50 && atD.allSatisfy { vlan($0) == 30 })
        for i in 0..<50 { try d.send(ipv4UDPFrame(dst: macA, src: macB, sequence: UInt32(100 + i), vlan: 30)) }
        let atB = b.receiveAny(count: 50, timeout: 5)
        #expect(atB.count == 50 && atB.allSatisfy { vlan($0) == nil })
        let dump = try fwd.ctl(["--bridge", "br-b", "dump-flows"]).out
        #expect(dump.contains("n_packets=50") && dump.contains("dl_vlan=30") && !dump.contains("in_port=p0"), "\(dump)")
        // Flow edits go to the bridge named: br-b now sends VLAN 10 to c instead of d.
        try fwd.ctl(["--bridge", "br-b", "add-flow", "priority=40000,in_port=pb,dl_vlan=10 actions=strip_vlan,output:p2"])
        let c = try RawPort(namespace: lab.ns("c"), interface: lab.interface("c"))
        for i in 0..<20 { try a.send(ipv4UDPFrame(dst: macB, src: macA, sequence: UInt32(200 + i))) }
        let atC = c.receiveAny(count: 20, timeout: 5)
        #expect(atC.count == 20 && atC.allSatisfy { vlan($0) == nil } && d.receiveAny(timeout: 0.3).isEmpty)
        #expect(try fwd.ctl(["--bridge", "br-a", "dump-flows"]).out.split(separator: "\n").count == 2)
        #expect(try fwd.ctl(["--bridge", "br-b", "del-flows", "in_port=pb"]).out == "deleted 2 flows\n")
        let unknown = try fwd.ctl(["--bridge", "br-x", "dump-flows"], check: false)
        #expect(unknown.status == 2 && unknown.err.contains("no bridge br-x (bridges: br-a, br-b)"), "\(unknown)")
        _ = try fwd.stop()
    }
}
