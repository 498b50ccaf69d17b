import ShuntCore
import Testing

@testable import ShuntPipeline

/// Several bridges in one translation: patch ports, access tags and trunks, NORMAL per VLAN,
/// and the Neutron DVR chains of the reference run across br-int and br-tun.
@Suite struct BridgeTests {
    let dvrMAC1 = mac("fa:16:3f:fe:49:e9")
    let gateway1 = "fa:16:3e:66:13:af"
    let gateway2 = "fa:16:3e:69:b4:05"
    let vm1 = "fa:16:3e:da:75:6d"
    let vm2 = "fa:16:3e:51:99:b8"

    /// Rules for each bridge (flow text with that bridge's port names), in one table set.
    func pipeline(_ layout: SwitchLayout, _ flows: [String]) throws -> Pipeline {
        var tables = FlowTables()
        for (b, text) in flows.enumerated() {
            for var rule in try FlowSyntax.parseFlowFile(text, ports: layout.bridges[b].portNames) {
                rule.bridge = UInt16(b)
                try tables.add(rule)
            }
        }
        return Pipeline(tables, layout: layout)
    }

    func port(_ name: String, _ ofport: UInt32, dp: UInt32, tag: UInt16? = nil, trunks: Set<UInt16>? = nil) -> BridgePort {
        BridgePort(name: name, ofport: ofport, kind: .datapath(dp), tag: tag, trunks: trunks)
    }

    func patch(_ name: String, _ ofport: UInt32, to bridge: Int, _ peer: UInt32) -> BridgePort {
        BridgePort(name: name, ofport: ofport, kind: .patch(bridge: bridge, port: peer))
    }

    /// A compute host as in the reference: datapath ports 1 VM, 2 qr1, 3 qr2, 5 and 6 tunnels;
    /// br-int's patch-tun is ofport 6, br-tun's patch-int 1, tunnels 3 and 4.
    func host(vmTag: UInt16, net1: UInt16, net2: UInt16) -> SwitchLayout {
        SwitchLayout(bridges: [
            Bridge(name: "br-int", ports: [
                port("tap-vm", 12, dp: 1, tag: vmTag), port("qr1", 2, dp: 2, tag: net1), port("qr2", 3, dp: 3, tag: net2),
                patch("patch-tun", 6, to: 1, 1),
            ]),
            Bridge(name: "br-tun", ports: [
                patch("patch-int", 1, to: 0, 6), port("vxlan-net", 3, dp: 5), port("vxlan-peer", 4, dp: 6),
            ]),
        ])
    }

    @Test func host1EgressIsOneFlatActionListAcrossBothBridges() throws {
        let p = try pipeline(host(vmTag: 1, net1: 1, net2: 2), ["priority=0,actions=NORMAL", NeutronDVR.host1BrTun])
        var normal = LearningNormalSwitch(table: MACLearningTable(capacity: 64), nowMs: 1)
        // Router 1 routed VM1's packet out of its Net2 port: untagged, from the Net2 gateway.
        let routed = packet(inPort: 3, src: gateway2, dst: vm2, nwSrc: "10.0.1.5", nwDst: "10.0.2.5", proto: 1)
        let t = p.translate(routed, normal: &normal)
        // NORMAL's VLAN 2 tag and br-tun's strip_vlan cancel out; what is left is the DVR chain.
        #expect(t.actions == [.setEthSrc(dvrMAC1), .setTunnel(0x3eb), .output(6)])
        #expect(t.usedNormal && t.dropReason == nil)
        #expect(t.ruleIDs.count == 5)  // NORMAL, then br-tun tables 0, 1, 2, 20
    }

    @Test func host1GatewayARPStaysHome() throws {
        let p = try pipeline(host(vmTag: 1, net1: 1, net2: 2), ["priority=0,actions=NORMAL", NeutronDVR.host1BrTun])
        var normal = LearningNormalSwitch(table: MACLearningTable(capacity: 64), nowMs: 1)
        let arp = packet(inPort: 1, src: vm1, dst: "ff:ff:ff:ff:ff:ff", type: 0x0806, nwSrc: "10.0.1.5",
                         nwDst: "10.0.1.1", proto: 1)
        // Flooded in VLAN 1 to the router's Net1 port only: br-tun drops the copy for the tunnel.
        #expect(p.translate(arp, normal: &normal).actions == [.output(2)])
    }

    @Test func host2IngressDeliversFromTheGatewayMAC() throws {
        let brTun = NeutronDVR.host2BrTun + "\ntable=0,priority=1,in_port=4 actions=resubmit(,4)"
        let p = try pipeline(host(vmTag: 3, net1: 2, net2: 3), [NeutronDVR.host2BrInt, brTun])
        var normal = NoNormal()
        let decapsulated = packet(inPort: 6, src: "fa:16:3f:fe:49:e9", dst: vm2, nwSrc: "10.0.1.5", nwDst: "10.0.2.5",
                                  proto: 1, tunID: 0x3eb)
        let t = p.translate(decapsulated, normal: &normal)
        // br-tun tags VLAN 3, br-int strips it again: the wire sees only the source MAC change.
        #expect(t.actions == [.setEthSrc(mac(gateway2)), .output(1)])
        #expect(normal.calls == 0)
    }

    @Test func normalSwitchesPerVLAN() throws {
        let layout = SwitchLayout(bridges: [Bridge(name: "br0", ports: [
            port("a", 1, dp: 1, tag: 10), port("b", 2, dp: 2, tag: 10), port("c", 3, dp: 3, tag: 20),
            port("trunk", 4, dp: 4), port("only20", 5, dp: 5, trunks: [20]),
        ])])
        let p = try pipeline(layout, ["actions=NORMAL"])
        let table = MACLearningTable(capacity: 64)
        var normal = LearningNormalSwitch(table: table, nowMs: 1)
        let fromA = packet(inPort: 1, src: "02:00:00:00:00:0a", dst: "ff:ff:ff:ff:ff:ff")
        #expect(p.translate(fromA, normal: &normal).actions == [.output(2), .setVLAN(10), .output(4)])
        let fromC = packet(inPort: 3, src: "02:00:00:00:00:0c", dst: "ff:ff:ff:ff:ff:ff")
        #expect(p.translate(fromC, normal: &normal).actions == [.setVLAN(20), .output(4), .output(5)])
        // Tagged 10 on the trunk, to a's learned MAC: popped for the access port.
        let toA = packet(inPort: 4, src: "02:00:00:00:00:0d", dst: "02:00:00:00:00:0a", vlan: 10)
        #expect(p.translate(toA, normal: &normal).actions == [.popVLAN, .output(1)])
        // The same MAC in VLAN 20 is unknown: flooded in VLAN 20, never to a.
        let toAIn20 = packet(inPort: 4, src: "02:00:00:00:00:0d", dst: "02:00:00:00:00:0a", vlan: 20)
        #expect(p.translate(toAIn20, normal: &normal).actions == [.popVLAN, .output(3), .setVLAN(20), .output(5)])
        // An access port refuses tagged frames; a trunk refuses VLANs it does not carry.
        #expect(p.translate(packet(inPort: 1, vlan: 10), normal: &normal).dropReason == .flowDrop)
        #expect(p.translate(packet(inPort: 5, vlan: 10), normal: &normal).dropReason == .flowDrop)
        #expect(table.lookup(mac("02:00:00:00:00:0a"), domain: MACLearningTable.domain(bridge: 0, vlan: 10),
                             nowMs: 1) == 0)
        #expect(table.lookup(mac("02:00:00:00:00:0a"), domain: MACLearningTable.domain(bridge: 0, vlan: 20),
                             nowMs: 1) == nil)
    }

    @Test func aPatchPortReturnsThePacketUnchanged() throws {
        let layout = SwitchLayout(bridges: [
            Bridge(name: "a", ports: [port("in", 1, dp: 1), port("out", 2, dp: 2), patch("to-b", 3, to: 1, 1)]),
            Bridge(name: "b", ports: [patch("to-a", 1, to: 0, 3), port("far", 2, dp: 3)]),
        ])
        let p = try pipeline(layout, ["in_port=in actions=output:to-b,output:out",
                                      "in_port=to-a actions=mod_dl_src:02:00:00:00:00:99,mod_vlan_vid:7,output:far"])
        var normal = NoNormal()
        let t = p.translate(packet(inPort: 1, src: "02:00:00:00:00:01"), normal: &normal)
        #expect(t.actions == [.setVLAN(7), .setEthSrc(mac("02:00:00:00:00:99")), .output(3),
                              .popVLAN, .setEthSrc(mac("02:00:00:00:00:01")), .output(2)])
    }

    @Test func patchLoopsEndAtTheNestingLimit() throws {
        // Two patch pairs: a -> b over one, back over the other, and round again.
        let layout = SwitchLayout(bridges: [
            Bridge(name: "a", ports: [port("in", 1, dp: 1), patch("to-b", 2, to: 1, 1), patch("from-b", 3, to: 1, 2)]),
            Bridge(name: "b", ports: [patch("from-a", 1, to: 0, 2), patch("to-a", 2, to: 0, 3)]),
        ])
        let p = try pipeline(layout, ["actions=output:to-b", "actions=output:to-a"])
        var normal = NoNormal()
        #expect(p.translate(packet(inPort: 1), normal: &normal).dropReason == .resubmitLimit)
    }

    @Test func aPortInNoBridgeIsNoMatch() throws {
        let layout = SwitchLayout(bridges: [Bridge(name: "a", ports: [port("in", 1, dp: 1), port("out", 2, dp: 2)])])
        let p = try pipeline(layout, ["actions=NORMAL"])
        var normal = NoNormal()
        #expect(p.translate(packet(inPort: 3), normal: &normal).dropReason == .noMatch)
    }

    @Test func traceNamesEveryBridgeRuleAndOutput() throws {
        let p = try pipeline(host(vmTag: 1, net1: 1, net2: 2), ["priority=0,actions=NORMAL", NeutronDVR.host1BrTun])
        var normal = LearningNormalSwitch(table: MACLearningTable(capacity: 64), nowMs: 1, learns: false)
        let routed = packet(inPort: 3, src: gateway2, dst: vm2, nwSrc: "10.0.1.5", nwDst: "10.0.2.5", proto: 1)
        let (t, steps) = p.trace(routed, normal: &normal)
        #expect(t.actions == [.setEthSrc(dvrMAC1), .setTunnel(0x3eb), .output(6)])
        let bridges = steps.compactMap { if case .bridge(let name, let inPort) = $0.event { "\(name):\(inPort)" } else { nil } }
        #expect(bridges == ["br-int:qr2", "br-tun:patch-int"])
        let tables = steps.compactMap { if case .rule(let table, _) = $0.event { table } else { nil } }
        #expect(tables == [0, 0, 1, 2, 20])
        #expect(steps.last?.event == .output(port: "vxlan-peer", datapathPort: 6))
        #expect(steps.contains { if case .normal(let s) = $0.event { s.contains("flood -> patch-tun") } else { false } })
        // Tracing learns nothing, and translating without a trace gives the same result.
        var plain = LearningNormalSwitch(table: MACLearningTable(capacity: 64), nowMs: 1)
        #expect(p.translate(routed, normal: &plain) == t)
    }
}
