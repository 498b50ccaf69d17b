import ShuntCore
import Testing

@testable import ShuntPipeline

/// Bond ports in the translation: a frame sent to the bond leaves on one live member, chosen by
/// the hash policy (balance-xor) or the first live member (active-backup); frames from any
/// member enter as the bond.
@Suite struct BondTests {
    /// br0: p1 (datapath 1), bond0 (ofport 2) over datapath ports 2 and 3, p4 (datapath 4).
    func layout(_ mode: BondMode) -> SwitchLayout {
        SwitchLayout(bridges: [Bridge(name: "br0", ports: [
            BridgePort(name: "p1", ofport: 1, kind: .datapath(1)),
            BridgePort(name: "bond0", ofport: 2, kind: .bond(members: [2, 3], mode: mode)),
            BridgePort(name: "p4", ofport: 3, kind: .datapath(4)),
        ])])
    }

    func pipeline(_ mode: BondMode, flows: String, down: Set<UInt32> = []) throws -> Pipeline {
        let l = layout(mode)
        var tables = FlowTables()
        for rule in try FlowSyntax.parseFlowFile(flows, ports: l.bridges[0].portNames) { try tables.add(rule) }
        return Pipeline(tables, layout: l, downPorts: down)
    }

    func flow(_ i: Int, inPort: UInt32 = 1) -> FlowKey {
        packet(inPort: inPort, src: "02:00:00:00:01:\(String(format: "%02x", i & 0xff))", dst: "02:00:00:00:00:99",
               nwSrc: "10.0.\(i >> 8 & 0xff).\(i & 0xff)", nwDst: "192.0.2.9", proto: 6, tpSrc: UInt16(1024 + i), tpDst: 80)
    }

    func out(_ p: Pipeline, _ key: FlowKey) -> [UInt32] {
        var normal = NoNormal()
        return p.translate(key, normal: &normal).actions.compactMap { if case .output(let o) = $0 { o } else { nil } }
    }

    @Test func layer34SpreadsFlowsOverLiveMembersAndKeepsThem() throws {
        let fields = BondMode.hashPolicy("layer3+4")!
        let up = try pipeline(.balance(fields: fields), flows: "in_port=1,actions=output:bond0")
        let down = try pipeline(.balance(fields: fields), flows: "in_port=1,actions=output:bond0", down: [3])
        var counts: [UInt32: Int] = [:]
        for i in 0..<4000 {
            let o = out(up, flow(i))
            #expect(o.count == 1)
            counts[o[0], default: 0] += 1
            // Member 3 down: everything on 2, and what was on 2 stays there.
            #expect(out(down, flow(i)) == [2])
        }
        #expect(abs((counts[2] ?? 0) - 2000) <= 100 && abs((counts[3] ?? 0) - 2000) <= 100, "\(counts)")
        // Every member down: output_down.
        var normal = NoNormal()
        let none = try pipeline(.balance(fields: fields), flows: "in_port=1,actions=output:bond0", down: [2, 3])
            .translate(flow(1), normal: &normal)
        #expect(none.actions.isEmpty && none.dropReason == .outputDown)
    }

    @Test func layer2HashesOnlyTheMACs() throws {
        let p = try pipeline(.balance(fields: BondMode.hashPolicy("l2")!), flows: "in_port=1,actions=output:2")
        var normal = NoNormal()
        let t = p.translate(flow(7), normal: &normal)
        #expect(t.dependencies.dlSrc == MACAddress(value: 0xffff_ffff_ffff) && t.dependencies.tpSrc == 0)
        // Same MACs, other addresses and ports: the same member.
        var other = flow(7)
        other.tpSrc = 9999
        other.nwSrcIPv4 = 0x0a09_0909
        #expect(out(p, flow(7)) == out(p, other))
    }

    @Test func activeBackupUsesTheFirstLiveMember() throws {
        #expect(out(try pipeline(.activeBackup, flows: "in_port=1,actions=output:2"), flow(1)) == [2])
        #expect(out(try pipeline(.activeBackup, flows: "in_port=1,actions=output:2", down: [2]), flow(1)) == [3])
    }

    /// An active-backup bond takes frames from its active member only (Linux bonding drops
    /// what arrives on an inactive slave): a loop through the backup link cannot flap MACs.
    @Test func activeBackupDropsWhatArrivesOnTheBackup() throws {
        var normal = NoNormal()
        let p = try pipeline(.activeBackup, flows: "in_port=bond0,actions=output:p4")
        #expect(out(p, flow(1, inPort: 2)) == [4])
        let backup = p.translate(flow(1, inPort: 3), normal: &normal)
        #expect(backup.actions.isEmpty && backup.dropReason == .bondInactive)
        // With the first member down, the second is the active one.
        let failed = try pipeline(.activeBackup, flows: "in_port=bond0,actions=output:p4", down: [2])
        #expect(out(failed, flow(1, inPort: 3)) == [4])
    }

    /// Frames from either member of a balance bond are the bond's: in_port=bond0 matches them,
    /// and NORMAL never floods a frame back into the bond it came from.
    @Test func membersEnterAsTheBond() throws {
        let mode = BondMode.balance(fields: BondMode.hashPolicy("layer2")!)
        let p = try pipeline(mode, flows: "in_port=bond0,actions=output:p4\nin_port=p1,actions=NORMAL")
        #expect(out(p, flow(1, inPort: 2)) == [4] && out(p, flow(1, inPort: 3)) == [4])
        let l = layout(mode)
        #expect(l.owner(of: 2)! == (0, 2) && l.owner(of: 3)! == (0, 2))
        var tables = FlowTables()
        try tables.add(FlowSyntax.parseFlow("priority=0,actions=NORMAL"[...], ports: l.bridges[0].portNames))
        let normal = Pipeline(tables, layout: l)
        var learning = LearningNormalSwitch(table: MACLearningTable(capacity: 64), nowMs: 1)
        // Unknown destination from member 3: flooded to p1 and p4, not into the bond.
        let flooded = normal.translate(flow(1, inPort: 3), normal: &learning).actions
        #expect(flooded == [.output(1), .output(4)], "\(flooded)")
        // From p1: flooded once into the bond (one member, by the hash) and to p4.
        let fromP1 = normal.translate(flow(2, inPort: 1), normal: &learning).actions
        #expect(fromP1.count == 2 && fromP1.last == .output(4) && [.output(2), .output(3)].contains(fromP1[0]), "\(fromP1)")
    }
}
