import Foundation
import ShuntTestSupport
import Testing

/// A provider bridge as Neutron's OVS agent sets one up (issue 15, docs/design/0023): br-int with
/// two VM ports, one on a flat provider network (local VLAN 3) and one on a VLAN provider
/// network (local VLAN 5, provider VLAN 100), and br-ex with the physical interface, joined by
/// int-br-ex / phy-br-ex: a patch port pair, or a veth pair whose two ends are both ports of the
/// forwarder. The same translation flows on both links and both datapaths; tags are checked on
/// the physical side and at the VMs, and (xdp) the crossing flows' fast-path hits.
///
///     [a] a0 --- p0 (tag 3) [br-int] int-br-ex ==== phy-br-ex [br-ex] p2 --- c0 [c]  (the wire)
///     [b] b0 --- p1 (tag 5) [br-int]
@Suite("Provider bridges: br-int <-> br-ex VLAN translation on both datapaths", .serialized,
       .enabled(if: canRunNetnsTests, netnsSkipReason))
struct ProviderBridgeTests {
    static let cases: [(String, String)] = [("afpacket", "patch"), ("xdp", "patch"), ("afpacket", "veth"), ("xdp", "veth")]
    static let macC: [UInt8] = [0x02, 0, 0, 0, 0, 0x0C]
    static let broadcast: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]

    /// br-int: local VLAN <-> the wire, as the agent installs it: untagged frames from br-ex are
    /// the flat network (3), provider VLAN 100 is the VLAN network (5), anything else is dropped.
    static let brInt = """
        table=0,priority=3,in_port=int-br-ex,vlan_tci=0x0000/0x1fff actions=mod_vlan_vid:3,NORMAL
        table=0,priority=3,in_port=int-br-ex,dl_vlan=100 actions=mod_vlan_vid:5,NORMAL
        table=0,priority=2,in_port=int-br-ex actions=drop
        table=0,priority=1 actions=NORMAL

        """
    /// br-ex: the reverse: local VLAN 3 leaves untagged, 5 as provider VLAN 100, the rest dropped.
    static let brEx = """
        priority=4,in_port=phy-br-ex,dl_vlan=3 actions=strip_vlan,NORMAL
        priority=4,in_port=phy-br-ex,dl_vlan=5 actions=mod_vlan_vid:100,NORMAL
        priority=2,in_port=phy-br-ex actions=drop
        priority=0 actions=NORMAL

        """

    func writeFile(_ text: String, suffix: String) throws -> String {
        let path = NSTemporaryDirectory() + "shuntt-provider-\(getpid())-\(UUID().uuidString).\(suffix)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func start(_ lab: Lab, datapath: String, link: String) throws -> ForwarderProcess {
        let patchInt = link == "patch" ? ", type: patch, peer: phy-br-ex" : ""
        let patchEx = link == "patch" ? ", type: patch, peer: int-br-ex" : ""
        if link == "veth" {
            // Both ends in the forwarder's namespace, as OVS's use_veth_interconnection has them.
            try run(["ip", "-n", lab.fwd, "link", "add", "int-br-ex", "type", "veth", "peer", "name", "phy-br-ex"])
            for dev in ["int-br-ex", "phy-br-ex"] {
                try run(["ip", "netns", "exec", lab.fwd, "sysctl", "-qw", "net.ipv6.conf.\(dev).disable_ipv6=1"])
                try run(["ip", "-n", lab.fwd, "link", "set", dev, "up"])
            }
        }
        let config = """
            bridges:
              - name: br-int
                flows: \(try writeFile(Self.brInt, suffix: "flows"))
                ports:
                  - {name: p0, tag: 3}
                  - {name: p1, tag: 5}
                  - {name: int-br-ex, ofport: 20\(patchInt)}
              - name: br-ex
                flows: \(try writeFile(Self.brEx, suffix: "flows"))
                ports:
                  - {name: p2, ofport: 1}
                  - {name: phy-br-ex, ofport: 2\(patchEx)}

            """
        var args = ["--config", try writeFile(config, suffix: "yaml"), "--datapath", datapath]
        if datapath == "xdp" { args.append("--fix-peers") }
        return try ForwarderProcess(namespace: lab.fwd, arguments: args)
    }

    func vlan(_ f: [UInt8]) -> UInt16? { f[12] == 0x81 && f[13] == 0 ? UInt16(f[14] & 0x0f) << 8 | UInt16(f[15]) : nil }

    @Test(arguments: cases)
    func localVLANsBecomeTheProviderNetworksOnTheWire(datapath: String, link: String) throws {
        let lab = try Lab(["a", "b", "c"])
        let fwd = try start(lab, datapath: datapath, link: link)
        let a = try RawPort(namespace: lab.ns("a"), interface: lab.interface("a"))
        let b = try RawPort(namespace: lab.ns("b"), interface: lab.interface("b"))
        let c = try RawPort(namespace: lab.ns("c"), interface: lab.interface("c"))

        // Broadcasts out: the flat network's untagged, the VLAN network's tagged 100; neither VM
        // sees the other's.
        try a.send(ipv4UDPFrame(dst: Self.broadcast, src: macA, sequence: 1))
        let flatOut = c.receiveAny(count: 1, timeout: 3)
        #expect(flatOut.count == 1 && flatOut.first.map(vlan) == .some(nil), "\(flatOut)")
        try b.send(ipv4UDPFrame(dst: Self.broadcast, src: macB, sequence: 2))
        let vlanOut = c.receiveAny(count: 1, timeout: 3)
        #expect(vlanOut.count == 1 && vlanOut.first.map(vlan) == .some(100), "\(vlanOut)")
        #expect(a.receiveAny(timeout: 0.3).isEmpty && b.receiveAny(timeout: 0.1).isEmpty)

        // In from the wire: untagged to the flat network's VM, VLAN 100 to the VLAN network's,
        // both untagged at the VM; a provider VLAN br-int does not know is dropped.
        try c.send(ipv4UDPFrame(dst: macA, src: Self.macC, sequence: 3))
        let atA = a.receiveAny(count: 1, timeout: 3)
        #expect(atA.count == 1 && atA.first.map(vlan) == .some(nil), "\(atA)")
        try c.send(ipv4UDPFrame(dst: macB, src: Self.macC, sequence: 4, vlan: 100))
        let atB = b.receiveAny(count: 1, timeout: 3)
        #expect(atB.count == 1 && atB.first.map(vlan) == .some(nil), "\(atB)")
        try c.send(ipv4UDPFrame(dst: Self.broadcast, src: Self.macC, sequence: 5, vlan: 200))
        #expect(a.receiveAny(timeout: 0.5).isEmpty && b.receiveAny(timeout: 0.1).isEmpty, "VLAN 200 is no network here")

        // Steady unicast flows across both bridges, every MAC learned: VM a -> wire (untagged),
        // VM b -> wire (tagged 100), wire -> VM a. The first frame of each goes alone (it sets
        // the flow up), then the rest.
        let n = 200
        var hits0: UInt64 = 0
        if datapath == "xdp" { hits0 = jsonNumber(try fwd.show(), "datapaths", "xdp", "fast_path_hits") }
        func steady(from: RawPort, to: RawPort, dst: [UInt8], src: [UInt8], base: UInt32, tag: UInt16?) throws -> [[UInt8]] {
            try from.send(ipv4UDPFrame(dst: dst, src: src, sequence: base, vlan: tag))
            var got = to.receiveAny(count: 1, timeout: 3)
            for i in 1..<n { try from.send(ipv4UDPFrame(dst: dst, src: src, sequence: base + UInt32(i), vlan: tag)) }
            got += to.receiveAny(count: n - 1, timeout: 5)
            return got
        }
        let aToC = try steady(from: a, to: c, dst: Self.macC, src: macA, base: 100, tag: nil)
        #expect(aToC.count == n && aToC.allSatisfy { vlan($0) == nil }, "\(aToC.count) of \(n)")
        let bToC = try steady(from: b, to: c, dst: Self.macC, src: macB, base: 1000, tag: nil)
        #expect(bToC.count == n && bToC.allSatisfy { vlan($0) == 100 }, "\(bToC.count) of \(n)")
        let cToA = try steady(from: c, to: a, dst: macA, src: Self.macC, base: 2000, tag: nil)
        #expect(cToA.count == n && cToA.allSatisfy { vlan($0) == nil }, "\(cToA.count) of \(n)")

        // The translation as trace shows it: both bridges, the local VLAN pushed and stripped.
        let out = try fwd.ctl(["--bridge", "br-int", "trace", "in_port=p1,udp,dl_src=02:00:00:00:00:0b,dl_dst=02:00:00:00:00:0c"]).out
        let show = try fwd.show()
        let stats = try fwd.stop()
        #expect(out.contains("bridge(\"br-int\") in_port p1") && out.contains("Fast path: cacheable"), "\(out)")
        if link == "patch" {
            // One translation crosses both bridges: one entry, the net change (tag 100) and p2.
            #expect(out.contains("bridge(\"br-ex\") in_port phy-br-ex") && out.contains("mod_vlan_vid:100"), "\(out)")
            #expect(out.contains("Datapath actions: push_vlan(vid=100),3\n") || out.contains("Datapath actions: set_vlan(vid=100),3\n"),
                    "\(out)")
        } else {
            // br-int's half ends at the veth, tagged with the local VLAN.
            #expect(out.contains("-> output int-br-ex") && !out.contains("bridge(\"br-ex\")"), "\(out)")
        }
        #expect(stats.value("p2", "tx_packets") >= UInt64(2 * n + 2))
        if datapath == "xdp" {
            // Each frame after a flow's first is a fast-path hit: with patch ports once (the
            // whole crossing is one kernel cache entry), with the veth pair twice (one entry per
            // bridge: br-int to the veth, then br-ex from its peer).
            let hits = jsonNumber(show, "datapaths", "xdp", "fast_path_hits") - hits0
            let perFrame: UInt64 = link == "patch" ? 1 : 2
            #expect(hits >= perFrame * UInt64(3 * (n - 5)) && hits <= perFrame * UInt64(3 * n),
                    "\(hits) fast-path hits for \(3 * n) frames over a \(link) link")
        }
    }
}
