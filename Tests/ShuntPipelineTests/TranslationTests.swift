import CShunt
import ShuntCore
import Testing

@testable import ShuntPipeline

@Suite struct TranslationTests {
    let dvrMAC1 = mac("fa:16:3f:fe:49:e9")
    let dvrMAC2 = mac("fa:16:3f:72:3f:a7")
    let gateway1 = "fa:16:3e:66:13:af"
    let gateway2 = "fa:16:3e:69:b4:05"
    let vm2 = "fa:16:3e:51:99:b8"

    func pipeline(_ text: String, ports: Int = 4) throws -> Pipeline {
        let names = NeutronDVR.ports(ports)
        return Pipeline(try loadTables(text, ports: names), ports: names)
    }

    func translate(_ pipeline: Pipeline, _ key: FlowKey) -> Translation {
        var normal = NoNormal()
        let t = pipeline.translate(key, normal: &normal)
        #expect(normal.calls == 0)
        return t
    }

    func id(_ pipeline: Pipeline, _ line: String) throws -> UInt32 {
        let rule = try FlowSyntax.parseFlow(line[...], ports: pipeline.ports)
        return pipeline.entries.first { $0.rule == rule }!.id
    }

    @Test func resubmitLimitIsTheABIs() {
        #expect(Pipeline.maxResubmitDepth == Int(SHUNT_MAX_RESUBMITS))
        #expect(Pipeline.maxResubmitDepth == 64)
    }

    // MARK: The Neutron DVR flows

    @Test func host1ArpForTheDistributedGatewayStaysHome() throws {
        let p = try pipeline(NeutronDVR.host1BrTun)
        let arp = packet(
            inPort: 1, src: "fa:16:3e:da:75:6d", dst: "ff:ff:ff:ff:ff:ff", vlan: 1, type: 0x0806, nwSrc: "10.0.1.5",
            nwDst: "10.0.1.1", proto: 1)
        let t = translate(p, arp)
        #expect(t.actions.isEmpty)
        #expect(t.dropReason == .flowDrop)
        #expect(t.usedNormal == false)
        #expect(t.ruleIDs == [
            try id(p, "table=0,priority=1,in_port=1 actions=resubmit(,1)"),
            try id(p, "table=1,priority=3,arp,dl_vlan=1,arp_tpa=10.0.1.1 actions=drop"),
        ])
    }

    @Test func host1RoutedFrameLeavesThroughTheTunnelWithTheDVRMAC() throws {
        let p = try pipeline(NeutronDVR.host1BrTun)
        let frame = packet(inPort: 1, src: gateway2, dst: vm2, vlan: 2, nwSrc: "10.0.1.5", nwDst: "10.0.2.5", proto: 1)
        let t = translate(p, frame)
        // Changes are committed at the output, VLAN first.
        #expect(t.actions == [.popVLAN, .setEthSrc(dvrMAC1), .setTunnel(0x3eb), .output(4)])
        #expect(t.dropReason == nil)
        #expect(t.ruleIDs == [
            try id(p, "table=0,priority=1,in_port=1 actions=resubmit(,1)"),
            try id(p, "table=1,priority=1,dl_vlan=2,dl_src=fa:16:3e:69:b4:05 actions=mod_dl_src:fa:16:3f:fe:49:e9,resubmit(,2)"),
            try id(p, "table=2,priority=0,dl_dst=00:00:00:00:00:00/01:00:00:00:00:00 actions=resubmit(,20)"),
            try id(p, "table=20,priority=2,dl_vlan=2,dl_dst=fa:16:3e:51:99:b8 actions=strip_vlan,set_tunnel:0x3eb,output:4"),
        ])
        // What the result depended on: in_port and dl_type always, then the masks of the
        // subtables probed (table 1's ARP subtable included, since it was probed and missed).
        let d = t.dependencies
        #expect(d.inPort == .max && d.dlType == 0xffff && d.vlanTCI == 0x1fff)
        #expect(d.dlSrc == MACAddress(value: .max) && d.dlDst == MACAddress(value: .max))
        #expect(d.nwDstIPv4 == .max)
        #expect(d.nwSrcIPv4 == 0 && d.tpSrc == 0 && d.tpDst == 0 && d.tunID == 0 && d.nwProto == 0)
    }

    @Test func host1OtherTraffic() throws {
        let p = try pipeline(NeutronDVR.host1BrTun)
        // Multicast goes to table 22, which this excerpt leaves empty: a table miss.
        let multicast = translate(p, packet(inPort: 1, dst: "01:00:5e:00:00:01", vlan: 1))
        #expect(multicast.dropReason == .noMatch && multicast.actions.isEmpty)
        #expect(multicast.ruleIDs.count == 3)
        // From a tunnel: table 4 is empty on host 1.
        #expect(translate(p, packet(inPort: 3, vlan: 1)).dropReason == .noMatch)
        // From an unknown port: table 0's catch-all drops.
        let stray = translate(p, packet(inPort: 2))
        let catchAll = try id(p, "table=0,priority=0 actions=drop")
        #expect(stray.dropReason == .flowDrop && stray.ruleIDs == [catchAll])
        // A frame to the gateway MAC must not leave the host.
        #expect(translate(p, packet(inPort: 1, dst: gateway1, vlan: 1)).dropReason == .flowDrop)
    }

    /// Host 2's br-tun tables 4 -> 9 (-> 10), reached from a tunnel port. The reference shows
    /// tables 4 and 9 only; table 0 here sends tunnel port 2 to table 4.
    @Test func host2TunnelIngressMapsTheVNIAndDeliversFromDVRMACs() throws {
        let p = try pipeline("table=0,priority=1,in_port=2 actions=resubmit(,4)\n" + NeutronDVR.host2BrTun)
        let fromHost1 = translate(p, packet(inPort: 2, src: dvrMAC1.description, dst: vm2, tunID: 0x3eb))
        #expect(fromHost1.actions == [.setVLAN(3), .output(1)])
        #expect(fromHost1.dropReason == nil && fromHost1.ruleIDs.count == 3)
        #expect(fromHost1.dependencies.tunID == .max && fromHost1.dependencies.dlSrc == MACAddress(value: .max))

        let net1 = translate(p, packet(inPort: 2, src: dvrMAC2.description, tunID: 0x3e9))
        #expect(net1.actions == [.setVLAN(2), .output(1)])

        // Not from a DVR MAC: on to table 10, absent here.
        let other = translate(p, packet(inPort: 2, src: "fa:16:3e:da:75:6d", tunID: 0x3eb))
        #expect(other.dropReason == .noMatch && other.actions.isEmpty)
        // An unknown VNI is dropped by table 4's catch-all.
        #expect(translate(p, packet(inPort: 2, tunID: 0x999)).dropReason == .flowDrop)
    }

    @Test func host2IntegrationBridgeRestoresTheGatewayMAC() throws {
        let p = try pipeline(NeutronDVR.host2BrInt, ports: 12)
        let routed = packet(inPort: 6, src: dvrMAC1.description, dst: vm2, vlan: 3, nwSrc: "10.0.1.5", nwDst: "10.0.2.5")
        let t = translate(p, routed)
        #expect(t.actions == [.popVLAN, .setEthSrc(mac(gateway2)), .output(12)])

        let bySubnet = packet(inPort: 6, src: dvrMAC2.description, dst: "fa:16:3e:da:e3:6e", vlan: 2, nwDst: "10.0.1.4")
        #expect(translate(p, bySubnet).actions == [.popVLAN, .setEthSrc(mac(gateway1)), .output(9)])

        // Anything else is switched by NORMAL.
        let table = MACLearningTable(capacity: 64)
        var normal = LearningNormalSwitch(table: table, nowMs: 1)
        let local = p.translate(packet(inPort: 9, src: "fa:16:3e:da:75:6d", dst: vm2), normal: &normal)
        #expect(local.usedNormal)
        #expect(local.actions == (1...12).filter { $0 != 9 }.map { .output(UInt32($0)) })
    }

    // MARK: Semantics

    @Test func aTableMissDrops() throws {
        let p = Pipeline(FlowTables(), ports: NeutronDVR.ports(2))
        let t = translate(p, packet(inPort: 1))
        #expect(t.dropReason == .noMatch && t.actions.isEmpty && t.ruleIDs.isEmpty)
        #expect(t.dependencies.inPort == .max && t.dependencies.dlType == 0xffff)
        var rest = t.dependencies
        rest.inPort = 0
        rest.dlType = 0
        #expect(rest.isZero)
    }

    @Test func aResubmitLoopEnds() throws {
        let p = try pipeline("table=0 actions=resubmit(,0)")
        let t = translate(p, packet(inPort: 1))
        #expect(t.dropReason == .resubmitLimit && t.actions.isEmpty)
        #expect(t.ruleIDs.count == Pipeline.maxResubmitDepth + 1)

        // Outputs before the loop do not rescue it: the whole translation is void.
        let q = try pipeline("table=0 actions=output:2,resubmit(,1)\ntable=1 actions=resubmit(,0)")
        #expect(translate(q, packet(inPort: 1)).dropReason == .resubmitLimit)
    }

    @Test func aWideResubmitTreeEndsToo() throws {
        // Each table resubmits twice to the next: 2^40 paths without a bound on the total.
        var text = ""
        for t in 0..<40 { text += "table=\(t) actions=resubmit(,\(t + 1)),resubmit(,\(t + 1))\n" }
        text += "table=40 actions=output:2\n"
        let t = translate(try pipeline(text), packet(inPort: 1))
        #expect(t.dropReason == .resubmitLimit)
        #expect(t.ruleIDs.count <= Pipeline.maxResubmits + 1)
    }

    @Test func sixtyFourNestedResubmitsAreAllowed() throws {
        func chain(_ depth: Int) -> String {
            (0..<depth).map { "table=\($0) actions=resubmit(,\($0 + 1))\n" }.joined() + "table=\(depth) actions=output:2"
        }
        let ok = translate(try pipeline(chain(64)), packet(inPort: 1))
        #expect(ok.actions == [.output(2)] && ok.ruleIDs.count == 65)
        #expect(translate(try pipeline(chain(65)), packet(inPort: 1)).dropReason == .resubmitLimit)
    }

    @Test func outputToTheIngressPortIsSkippedUnlessAskedFor() throws {
        let p = try pipeline(
            """
            table=0,in_port=1 actions=output:1,output:2
            table=0,in_port=2 actions=in_port
            table=0,in_port=3 actions=output:3
            table=0,in_port=4 actions=output:9
            """)
        #expect(translate(p, packet(inPort: 1)).actions == [.output(2)])
        #expect(translate(p, packet(inPort: 2)).actions == [.output(2)])
        #expect(translate(p, packet(inPort: 3)).dropReason == .flowDrop)
        // Port 9 does not exist (yet) on this 4-port bridge.
        #expect(translate(p, packet(inPort: 4)).dropReason == .flowDrop)
    }

    @Test func resubmitWithAPortRewritesInPortMeanwhile() throws {
        let p = try pipeline(
            """
            table=0,in_port=1 actions=resubmit(2,1),output:1,output:3
            table=1,in_port=2 actions=output:1
            table=1,in_port=1 actions=output:4
            """)
        let t = translate(p, packet(inPort: 1))
        // In table 1 the packet looks as if it came from port 2, so output:1 is allowed there;
        // back in table 0 in_port is 1 again.
        #expect(t.actions == [.output(1), .output(3)])
    }

    @Test func laterTablesSeeTheModifiedPacket() throws {
        let p = try pipeline(
            """
            table=0,in_port=1 actions=mod_dl_dst:02:00:00:00:00:99,mod_vlan_vid:7,resubmit(,1)
            table=1,priority=2,dl_vlan=7,dl_dst=02:00:00:00:00:99 actions=dec_ttl,set_tunnel:0x64,resubmit(,2)
            table=1,priority=1 actions=output:4
            table=2,tun_id=0x64 actions=strip_vlan,resubmit(,3)
            table=3,vlan_tci=0x0000/0x1000 actions=output:2,mod_dl_src:02:00:00:00:00:55
            """)
        let t = translate(p, packet(inPort: 1))
        // The VLAN pushed in table 0 and stripped in table 2 never reaches the wire; dec_ttl
        // stays where it was, the field changes are committed at the output.
        #expect(t.actions == [.decTTL, .setEthDst(mac("02:00:00:00:00:99")), .setTunnel(0x64), .output(2)])
        // dec_ttl is meaningless without IP.
        let arp = translate(p, packet(inPort: 1, type: 0x0806))
        #expect(!arp.actions.contains(.decTTL) && arp.actions.last == .output(2))
    }

    @Test func modVLANKeepsThePriorityOfAnExistingTag() throws {
        let p = try pipeline(
            """
            table=0 actions=mod_vlan_vid:9,resubmit(,1)
            table=1,dl_vlan=9,dl_vlan_pcp=5 actions=output:2
            table=1,priority=0 actions=output:3
            """)
        var tagged = packet(inPort: 1, vlan: 4)
        tagged.vlanTCI |= 5 << 13
        #expect(translate(p, tagged).actions == [.setVLAN(9), .output(2)])
        #expect(translate(p, packet(inPort: 1)).actions == [.setVLAN(9), .output(3)])
    }

    @Test func normalLearnsThenUnicasts() throws {
        let p = try pipeline("table=0 actions=NORMAL", ports: 3)
        let table = MACLearningTable(capacity: 64)
        var normal = LearningNormalSwitch(table: table, nowMs: 1000)
        let a = "02:00:00:00:00:0a"
        let b = "02:00:00:00:00:0b"

        let first = p.translate(packet(inPort: 1, src: a, dst: b), normal: &normal)
        #expect(first.actions == [.output(2), .output(3)])
        #expect(first.usedNormal && first.dropReason == nil)
        #expect(first.dependencies.dlSrc == MACAddress(value: .max) && first.dependencies.dlDst == MACAddress(value: .max))
        // The table holds 0-based port indexes.
        #expect(table.lookup(mac(a), nowMs: 1000) == 0)

        #expect(p.translate(packet(inPort: 2, src: b, dst: a), normal: &normal).actions == [.output(1)])
        #expect(p.translate(packet(inPort: 1, src: a, dst: b), normal: &normal).actions == [.output(2)])
        // Learned on the ingress port: nowhere to go.
        #expect(p.translate(packet(inPort: 2, src: a, dst: b), normal: &normal).dropReason == .flowDrop)
        // Broadcast floods, and a multicast source is never learned.
        let broadcast = p.translate(packet(inPort: 3, src: "03:00:00:00:00:01", dst: "ff:ff:ff:ff:ff:ff"), normal: &normal)
        #expect(broadcast.actions == [.output(1), .output(2)])
        #expect(table.lookup(mac("03:00:00:00:00:01"), nowMs: 1000) == nil)
    }

    /// `--mode normal` (the LearningSwitch stage) and NORMAL are one switch: the same frames,
    /// each path on its own table, get the same decisions (the stage's ports are 0-based).
    @Test func normalDecidesAsTheLearningStage() throws {
        let p = try pipeline("table=0 actions=NORMAL", ports: 4)
        var normal = LearningNormalSwitch(table: MACLearningTable(capacity: 64, agingMs: 1000), nowMs: 0)
        var stage = LearningSwitch(table: MACLearningTable(capacity: 64, agingMs: 1000))
        let stations = ["02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03", "ff:ff:ff:ff:ff:ff",
                        "01:00:5e:00:00:01"]
        var batch = PacketBatch(capacity: 1)
        var kinds: Set<Verdict.Kind> = []
        for step in 0..<300 {
            let src = stations[step % 3]
            let dst = stations[(step * 7 + 1) % 5]
            let inPort = UInt32(step * 5 % 4 + 1)
            let nowMs = UInt64(step * 40)  // stations age out when not seen for 1 s
            var frame = mac(dst).bytes + mac(src).bytes + [0x88, 0xB5] + [UInt8](repeating: 0, count: 46)
            let verdict = frame.withUnsafeMutableBytes { raw in
                batch.removeAll()
                batch.append(PacketDescriptor(data: raw.baseAddress!, capturedLength: 60, wireLength: 60,
                                              inPort: UInt16(inPort - 1)))
                stage.process(batch, nowMs: nowMs)
                return batch.verdict(0)
            }
            kinds.insert(verdict.kind)
            let byStage: [DatapathAction] = switch verdict.kind {
            case .output: [.output(UInt32(verdict.port) + 1)]
            case .flood: (1...4).filter { $0 != inPort }.map { .output($0) }
            case .drop: []
            }
            normal.nowMs = nowMs
            let t = p.translate(packet(inPort: inPort, src: src, dst: dst), normal: &normal)
            #expect(t.actions == byStage, "step \(step): \(src) -> \(dst) from port \(inPort)")
        }
        #expect(kinds == [.output, .flood, .drop])
    }

    /// An underlay port (of tunnel ports) is not switched: NORMAL neither floods to it, nor
    /// sends to it, nor learns or forwards from it; explicit flows still may use it.
    @Test func normalLeavesUnderlayPortsAlone() throws {
        let names = PortNames(["p0", "p1", "vx1"], notSwitched: [2])
        let p = Pipeline(try loadTables("table=0 actions=NORMAL", ports: names), ports: names)
        let table = MACLearningTable(capacity: 64)
        var normal = LearningNormalSwitch(table: table, nowMs: 1000)
        let a = "02:00:00:00:00:0a"
        let b = "02:00:00:00:00:0b"
        #expect(p.translate(packet(inPort: 1, src: a, dst: b), normal: &normal).actions == [.output(3)])
        let fromUnderlay = p.translate(packet(inPort: 2, src: b, dst: a), normal: &normal)
        #expect(fromUnderlay.actions.isEmpty && fromUnderlay.dropReason == .flowDrop)
        #expect(table.lookup(mac(b), nowMs: 1000) == nil)
        // Learned on the underlay by some other means: still not sent there.
        table.learn(mac(b), port: 1, nowMs: 1000)
        #expect(p.translate(packet(inPort: 1, src: a, dst: b), normal: &normal).actions.isEmpty)
        let explicit = Pipeline(try loadTables("table=0 in_port=1 actions=output:p1", ports: names), ports: names)
        #expect(explicit.translate(packet(inPort: 1), normal: &normal).actions == [.output(2)])
    }

    /// A NORMAL that switches by VLAN must say so, or cache entries would ignore the VLAN.
    struct ByVLAN: NormalSwitch {
        mutating func normal(key: FlowKey, bridge: Int, vlan: UInt16) -> NormalResult {
            key.vlanTCI & 0x0fff == 5 ? .output(2) : .drop
        }

        var dependencies: FlowKey {
            var mask = FlowKey()
            mask.vlanTCI = 0x1fff
            return mask
        }
    }

    @Test func normalsDependenciesJoinTheMegaflowMask() throws {
        let p = try pipeline("table=0 actions=NORMAL")
        var normal = ByVLAN()
        let t = p.translate(packet(inPort: 1, vlan: 5), normal: &normal)
        #expect(t.actions == [.output(2)] && t.usedNormal)
        #expect(t.dependencies.vlanTCI == 0x1fff && t.dependencies.dlSrc.value == 0 && t.dependencies.dlDst.value == 0)
        #expect(p.translate(packet(inPort: 1, vlan: 6), normal: &normal).dropReason == .flowDrop)
    }

    @Test func trailingModificationsAreTrimmedAndDropsCarryNoActions() throws {
        let p = try pipeline(
            """
            table=0,in_port=1 actions=output:2,mod_dl_src:02:00:00:00:00:55,set_tunnel:0x5
            table=0,in_port=2 actions=mod_dl_src:02:00:00:00:00:55
            """)
        #expect(translate(p, packet(inPort: 1)).actions == [.output(2)])
        let noOutput = translate(p, packet(inPort: 2))
        #expect(noOutput.actions.isEmpty && noOutput.dropReason == .flowDrop)
    }

    @Test func snapshotsCarryTheGeneration() throws {
        var tables = try loadTables("table=0 actions=drop", ports: NeutronDVR.ports(2))
        let before = Pipeline(tables, ports: NeutronDVR.ports(2))
        try tables.add(FlowSyntax.parseFlow("table=0,priority=40000 actions=output:2", ports: NeutronDVR.ports(2)))
        let after = Pipeline(tables, ports: NeutronDVR.ports(2))
        #expect(after.generation == before.generation + 1)
        // The old snapshot is unaffected by the edit.
        #expect(translate(before, packet(inPort: 1)).dropReason == .flowDrop)
        #expect(translate(after, packet(inPort: 1)).actions == [.output(2)])
    }
}
