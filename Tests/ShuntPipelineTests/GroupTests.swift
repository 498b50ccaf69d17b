import ShuntCore
import Testing

@testable import ShuntPipeline

/// OpenFlow groups in the translation: syntax both ways, each type's choice, the select
/// group's spread and stickiness, liveness, counters and what a translation depends on.
@Suite struct GroupTests {
    let ports = PortNames(["p1", "p2", "p3", "p4", "p5"])

    func tables(groups: [String], flows: String) throws -> FlowTables {
        var t = FlowTables()
        for g in groups { try t.addGroup(try GroupSyntax.parseGroup(g[...], ports: ports), replace: false) }
        for rule in try FlowSyntax.parseFlowFile(flows, ports: ports) { try t.add(rule) }
        return t
    }

    func translate(_ p: Pipeline, _ key: FlowKey) -> Translation {
        var normal = NoNormal()
        return p.translate(key, normal: &normal)
    }

    /// A UDP flow from port 1 numbered `i` (source address and port vary).
    func flow(_ i: Int) -> FlowKey {
        packet(inPort: 1, nwSrc: "10.\(i >> 16 & 0xff).\(i >> 8 & 0xff).\(i & 0xff)", nwDst: "192.0.2.9", proto: 17,
               tpSrc: UInt16(1024 + i % 50000), tpDst: 5001)
    }

    func outputs(_ t: Translation) -> [UInt32] {
        t.actions.compactMap { if case .output(let p) = $0 { p } else { nil } }
    }

    // MARK: Syntax

    @Test func groupsParseAndPrintBackAsOvsOfctlDoes() throws {
        let text = "group_id=7,type=select,selection_method=hash,fields(ip_src,ip_dst),bucket=bucket_id:0,weight:1,actions=mod_dl_dst:02:00:00:00:00:0a,dec_ttl,output:2,bucket=bucket_id:1,weight:3,actions=output:p3"
        let g = try GroupSyntax.parseGroup(text[...], ports: ports)
        #expect(g.id == 7 && g.type == .select && g.fields == [.ipSrc, .ipDst])
        #expect(g.buckets.map(\.weight) == [1, 3] && g.buckets.map(\.id) == [0, 1])
        #expect(g.buckets[0].actions == [.setEthDst(mac("02:00:00:00:00:0a")), .decTTL, .output(2)])
        #expect(g.buckets[1].actions == [.output(3)])
        let printed = GroupSyntax.format(g, ports: ports)
        #expect(printed == "group_id=7,type=select,selection_method=hash,fields(ip_src,ip_dst),bucket=bucket_id:0,weight:1,actions=mod_dl_dst:02:00:00:00:00:0a,dec_ttl,output:2,bucket=bucket_id:1,weight:3,actions=output:3")
        #expect(try GroupSyntax.parseGroup(printed[...], ports: ports) == g)
        // Bare bucket actions, aliases, watch ports by name.
        let ff = try GroupSyntax.parseGroup("group_id=2,type=fast_failover,bucket=watch_port:p2,actions=output:2,bucket=watch_port:3,output:3"[...], ports: ports)
        #expect(ff.buckets.map(\.watchPort) == [2, 3] && ff.buckets[1].actions == [.output(3)])
        let all = try GroupSyntax.parseGroup("group_id=3,type=all,bucket=output:2,bucket=output:3,output:4"[...], ports: ports)
        #expect(all.buckets.map(\.actions) == [[.output(2)], [.output(3), .output(4)]])
        let aliases = try GroupSyntax.parseGroup("group_id=4,type=select,fields=nw_src,bucket=output:2"[...], ports: ports)
        #expect(aliases.fields == [.ipSrc])
        #expect(try FlowSyntax.parseFlow("in_port=1,actions=group:4"[...], ports: ports).actions == [.group(4)])
        #expect(try GroupSyntax.parseGroupID("group_id=4"[...]) == 4 && GroupSyntax.parseGroupID(""[...]) == nil)
    }

    @Test func groupMistakesSayWhereAndWhat() {
        func problem(_ text: String) -> String {
            do { _ = try GroupSyntax.parseGroup(text[...], ports: ports) } catch { return error.description }
            return "no error"
        }
        #expect(problem("type=all,bucket=output:2") == "column 1: missing 'group_id=N'")
        #expect(problem("group_id=1,bucket=output:2") == "column 1: missing 'type=' (all, select, indirect or fast_failover)")
        #expect(problem("group_id=1,type=random,bucket=output:2") == "column 17: unknown group type 'random' (all, select, indirect, fast_failover)")
        #expect(problem("group_id=1,type=select,selection_method=dp_hash,bucket=output:2").hasPrefix("column 41: selection_method=dp_hash is not supported"))
        #expect(problem("group_id=1,type=select,fields(ip_src,color),bucket=output:2").hasPrefix("column 38: unknown hash field 'color'"))
        #expect(problem("group_id=1,type=all,fields(ip_src),bucket=output:2") == "column 21: fields(...) is for type=select groups")
        #expect(problem("group_id=1,type=indirect,bucket=output:2,bucket=output:3") == "column 1: an indirect group has exactly one bucket, not 2")
        #expect(problem("group_id=1,type=fast_failover,bucket=output:2") == "column 1: every bucket of a fast_failover group needs watch_port (bucket 0 has none)")
        #expect(problem("group_id=1,type=select,bucket=weight:70000,actions=output:2") == "column 38: weight 70000 is out of range (0 to 65535)")
        #expect(problem("group_id=1,type=select,bucket=weight:2") == "column 39: bucket 0 has no actions (write actions=drop for none)")
        #expect(problem("group_id=1,type=all,bucket=output:9x") == "column 35: unknown port name '9x'")
        #expect(problem("group_id=4294967040,type=all,bucket=output:2") == "no error")
        #expect(problem("group_id=4294967041,type=all,bucket=output:2") == "column 10: group_id 4294967041 is out of range (0 to 4294967040)")
        #expect(problem("group_id=1,type=all,bucket=bucket_id:1,output:2,bucket=bucket_id:1,output:3") == "column 1: two buckets have bucket_id 1")
        #expect(problem("group_id=1,type=all,bucket=watch_group:2,output:2") == "column 28: watch_group is not supported (watch a port with watch_port)")
        #expect(problem("group_id=1,type=all,bucket=dec_ttl,output:2,bucket=output:3").hasPrefix("column 1: dec_ttl in a bucket of an all group would reach the copies"))
    }

    @Test func tablesRefuseDanglingAndLoopingGroups() throws {
        var t = FlowTables()
        #expect(throws: FlowTableError.noSuchGroup(5)) {
            try t.add(FlowSyntax.parseFlow("in_port=1,actions=group:5"[...], ports: ports))
        }
        try t.addGroup(GroupSyntax.parseGroup("group_id=5,type=all,bucket=output:2"[...], ports: ports), replace: false)
        #expect(throws: FlowTableError.groupExists(5)) {
            try t.addGroup(GroupSyntax.parseGroup("group_id=5,type=all,bucket=output:3"[...], ports: ports), replace: false)
        }
        #expect(throws: FlowTableError.noSuchGroup(6)) {
            try t.addGroup(GroupSyntax.parseGroup("group_id=6,type=all,bucket=output:3"[...], ports: ports), replace: true)
        }
        try t.addGroup(GroupSyntax.parseGroup("group_id=6,type=all,bucket=group:5"[...], ports: ports), replace: false)
        #expect(throws: FlowTableError.groupLoop(5)) {
            try t.addGroup(GroupSyntax.parseGroup("group_id=5,type=all,bucket=group:6"[...], ports: ports), replace: true)
        }
        #expect(throws: FlowTableError.groupLoop(7)) {
            try t.addGroup(GroupSyntax.parseGroup("group_id=7,type=all,bucket=group:7"[...], ports: ports), replace: false)
        }
        try t.add(FlowSyntax.parseFlow("in_port=1,actions=group:6"[...], ports: ports))
        try t.add(FlowSyntax.parseFlow("in_port=2,actions=output:1"[...], ports: ports))
        // Deleting group 5 takes group 6 (its bucket uses 5) and the flow using 6.
        let removed = t.deleteGroups(bridge: 0, id: 5)
        #expect(removed.groups.map(\.group.id) == [5, 6] && removed.flows.count == 1)
        #expect(t.groups.isEmpty && t.count == 1)
    }

    // MARK: Translation

    @Test func allRunsEveryBucketOnThePacketAsItWas() throws {
        let t = try tables(groups: ["group_id=1,type=all,bucket=mod_dl_dst:02:00:00:00:00:aa,output:2,bucket=output:3"],
                           flows: "in_port=1,actions=group:1,output:4")
        let p = Pipeline(t, ports: ports)
        let r = translate(p, packet(inPort: 1, dst: "02:00:00:00:00:02"))
        // Bucket 1's change is undone for bucket 2 and for the output after the group.
        #expect(r.actions == [.setEthDst(mac("02:00:00:00:00:aa")), .output(2), .setEthDst(mac("02:00:00:00:00:02")), .output(3), .output(4)])
        let entry = t.groups[0]
        #expect(r.ruleIDs.count == 1 + 1 + 2 && Array(r.ruleIDs.dropFirst()) == entry.counterIDs)
    }

    @Test func indirectAndFastFailoverFollowLinkState() throws {
        let t = try tables(groups: ["group_id=1,type=indirect,bucket=output:2",
                                    "group_id=2,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=output:3"],
                           flows: "in_port=1,actions=group:2\nin_port=4,actions=group:1")
        #expect(outputs(translate(Pipeline(t, ports: ports), packet(inPort: 4))) == [2])
        #expect(outputs(translate(Pipeline(t, ports: ports), packet(inPort: 1))) == [2])
        #expect(outputs(translate(Pipeline(t, layout: .single(ports), downPorts: [2]), packet(inPort: 1))) == [3])
        let none = translate(Pipeline(t, layout: .single(ports), downPorts: [2, 3]), packet(inPort: 1))
        #expect(none.actions.isEmpty && none.dropReason == .outputDown)
    }

    /// 10,000 flows over weights 1:1 and 1:3 land within 5 % of the weights' shares.
    @Test(arguments: [[1, 1], [1, 3], [1, 2, 3, 4]])
    func selectSpreadsFlowsByWeight(weights: [Int]) throws {
        let buckets = weights.enumerated().map { i, w in "bucket=weight:\(w),actions=output:\(i + 2)" }.joined(separator: ",")
        let t = try tables(groups: ["group_id=1,type=select,\(buckets)"], flows: "in_port=1,actions=group:1")
        let p = Pipeline(t, ports: ports)
        var counts = [UInt32: Int]()
        let n = 10_000
        for i in 0..<n { counts[outputs(translate(p, flow(i)))[0], default: 0] += 1 }
        let total = Double(weights.reduce(0, +))
        for (i, w) in weights.enumerated() {
            let share = Double(counts[UInt32(i + 2)] ?? 0) / Double(n)
            let expected = Double(w) / total
            #expect(abs(share - expected) <= 0.05 * expected, "bucket \(i): \(share) of flows, expected \(expected): \(counts)")
        }
    }

    /// A flow keeps its bucket; when a bucket goes (its watch port down), only its flows move,
    /// and they come back when it returns.
    @Test func selectIsStickyAndMovesOnlyTheFlowsOfAGoneBucket() throws {
        let t = try tables(
            groups: ["group_id=1,type=select,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=output:3,bucket=watch_port:4,actions=output:4"],
            flows: "in_port=1,actions=group:1")
        let up = Pipeline(t, ports: ports)
        let down = Pipeline(t, layout: .single(ports), downPorts: [3])
        var moved = 0, onThree = 0
        for i in 0..<3000 {
            let before = outputs(translate(up, flow(i)))
            #expect(before == outputs(translate(up, flow(i))), "the same flow twice")
            let after = outputs(translate(down, flow(i)))
            if before == [3] {
                onThree += 1
                #expect(after != [3])
            } else if before != after {
                moved += 1
            }
        }
        #expect(moved == 0 && onThree > 800, "flows of live buckets moved: \(moved); on the gone bucket: \(onThree)")
    }

    /// The translation depends on the hashed fields (the cache must not merge flows the
    /// group tells apart), and only on those.
    @Test func selectDependsOnItsHashedFields() throws {
        let t = try tables(groups: ["group_id=1,type=select,fields(ip_src),bucket=output:2,bucket=output:3"],
                           flows: "in_port=1,actions=group:1")
        let r = translate(Pipeline(t, ports: ports), flow(1))
        #expect(r.dependencies.nwSrcIPv4 == 0xffff_ffff)
        #expect(r.dependencies.tpSrc == 0 && r.dependencies.nwDstIPv4 == 0)
        // Same source address, other ports: the same bucket.
        let a = outputs(translate(Pipeline(t, ports: ports), packet(inPort: 1, nwSrc: "10.0.0.1", proto: 17, tpSrc: 1)))
        let b = outputs(translate(Pipeline(t, ports: ports), packet(inPort: 1, nwSrc: "10.0.0.1", proto: 17, tpSrc: 2)))
        #expect(a == b)
    }

    @Test func multipathBucketsRewriteAndDecrementPerNextHop() throws {
        let t = try tables(
            groups: ["group_id=1,type=select,bucket=weight:1,actions=dec_ttl,mod_dl_dst:02:00:00:00:00:0a,output:2,bucket=weight:1,actions=dec_ttl,mod_dl_dst:02:00:00:00:00:0b,output:3"],
            flows: "ip,in_port=1,actions=group:1")
        let p = Pipeline(t, ports: ports)
        var seen = Set<[DatapathAction]>()
        for i in 0..<200 { seen.insert(translate(p, flow(i)).actions) }
        #expect(seen == [[.decTTL, .setEthDst(mac("02:00:00:00:00:0a")), .output(2)],
                         [.decTTL, .setEthDst(mac("02:00:00:00:00:0b")), .output(3)]])
    }
}
