import ShuntCore
import ShuntTestSupport
import Testing

@testable import ShuntPipeline

@Suite struct ClassifierTests {
    let ports = NeutronDVR.ports(8)

    func rule(_ text: String) throws -> FlowRule { try FlowSyntax.parseFlow(text[...], ports: ports) }

    func match(_ text: String) throws -> FlowMatch { try FlowSyntax.parseMatch(text[...], ports: ports).match }

    @Test func higherPriorityWinsAcrossMasks() throws {
        var tables = FlowTables()
        let byPort = try tables.add(rule("priority=10,in_port=1 actions=output:5"))
        let bySubnet = try tables.add(rule("priority=20,ip,nw_dst=10.0.0.0/8 actions=output:6"))
        let fallback = try tables.add(rule("priority=5 actions=output:7"))
        let pipeline = Pipeline(tables, ports: ports)
        #expect(pipeline.subtableCount(table: 0) == 3)

        #expect(pipeline.lookup(packet(inPort: 1, nwDst: "10.1.2.3"), table: 0).ruleID == bySubnet.id)
        #expect(pipeline.lookup(packet(inPort: 1, type: 0x0806), table: 0).ruleID == byPort.id)
        #expect(pipeline.lookup(packet(inPort: 2, nwDst: "11.1.2.3"), table: 0).ruleID == fallback.id)
        let miss = pipeline.lookup(packet(inPort: 1), table: 3)
        #expect(miss.ruleID == nil && miss.subtablesProbed == 0)
    }

    @Test func equalMasksShareOneSubtable() throws {
        var tables = FlowTables()
        var ids: [String: UInt32] = [:]
        for (i, address) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].enumerated() {
            ids[address] = try tables.add(rule("priority=\(10 + i),ip,nw_dst=\(address) actions=output:\(i + 1)")).id
        }
        let pipeline = Pipeline(tables, ports: ports)
        #expect(pipeline.subtableCount(table: 0) == 1)
        for address in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
            let found = pipeline.lookup(packet(inPort: 1, nwDst: address), table: 0)
            #expect(found.ruleID == ids[address])
            #expect(found.subtablesProbed == 1)
        }
        #expect(pipeline.lookup(packet(inPort: 1, nwDst: "10.0.0.4"), table: 0).ruleID == nil)
        #expect(pipeline.lookup(packet(inPort: 1, type: 0x86dd), table: 0).ruleID == nil)
    }

    @Test func addingTheSameMatchAndPriorityReplaces() throws {
        var tables = FlowTables()
        let first = try tables.add(rule("table=2,priority=5,in_port=1 actions=output:2"))
        let generation = tables.generation
        let second = try tables.add(rule("table=2,priority=5,in_port=1 actions=output:3"))
        #expect(tables.count == 1)
        #expect(second.id == first.id)
        #expect(tables.rules == [try rule("table=2,priority=5,in_port=1 actions=output:3")])
        #expect(tables.generation == generation + 1)

        // Another priority or another table is another rule.
        try tables.add(rule("table=2,priority=6,in_port=1 actions=output:4"))
        try tables.add(rule("table=3,priority=5,in_port=1 actions=output:4"))
        #expect(tables.count == 3)
        #expect(Set(tables.entries.map(\.id)).count == 3)
    }

    @Test func strictDeleteTakesExactlyOneRule() throws {
        var tables = FlowTables()
        let host = try tables.add(rule("priority=10,ip,nw_dst=10.0.0.1 actions=output:1"))
        try tables.add(rule("priority=20,ip,nw_dst=10.0.0.0/24 actions=output:2"))
        try tables.add(rule("table=1,priority=10,ip,nw_dst=10.0.0.1 actions=output:1"))

        #expect(tables.delete(table: 0, match: try match("ip,nw_dst=10.0.0.1"), strict: true, priority: 20).isEmpty)
        #expect(tables.delete(table: 0, match: try match("ip"), strict: true, priority: 10).isEmpty)
        let removed = tables.delete(table: 0, match: try match("ip,nw_dst=10.0.0.1"), strict: true, priority: 10)
        #expect(removed == [host])
        #expect(tables.count == 2)
        #expect(tables.entry(id: host.id) == nil)

        // Strict without a table: that match and priority in every table.
        let everywhere = tables.delete(table: nil, match: try match("ip,nw_dst=10.0.0.1"), strict: true, priority: 10)
        #expect(everywhere.map(\.rule.table) == [1])
    }

    @Test func nonStrictDeleteTakesEveryMoreSpecificRule() throws {
        var tables = FlowTables()
        try tables.add(rule("priority=10,ip,nw_dst=10.0.0.1 actions=output:1"))
        try tables.add(rule("priority=20,ip,nw_dst=10.0.0.0/24 actions=output:2"))
        try tables.add(rule("priority=30,ip actions=output:3"))
        try tables.add(rule("table=1,priority=10,ip,nw_dst=10.0.0.7 actions=output:1"))
        try tables.add(rule("priority=40,arp actions=output:4"))
        try tables.add(rule("priority=50,ip,nw_dst=10.0.1.1 actions=output:5"))

        let removed = tables.delete(table: nil, match: try match("ip,nw_dst=10.0.0.0/24"), strict: false)
        #expect(removed.map { FlowSyntax.format($0.rule, ports: ports) } == [
            "table=0,priority=20,ip,nw_dst=10.0.0.0/24 actions=output:2",
            "table=0,priority=10,ip,nw_dst=10.0.0.1 actions=output:1",
            "table=1,priority=10,ip,nw_dst=10.0.0.7 actions=output:1",
        ])
        #expect(tables.rules.map { FlowSyntax.format($0, ports: ports) } == [
            "table=0,priority=50,ip,nw_dst=10.0.1.1 actions=output:5",
            "table=0,priority=40,arp actions=output:4",
            "table=0,priority=30,ip actions=output:3",
        ])

        // Only one table; then everything.
        #expect(tables.delete(table: 1, match: FlowMatch(), strict: false).isEmpty)
        #expect(tables.delete(table: nil, match: FlowMatch(), strict: false).count == 3)
        #expect(tables.isEmpty)
    }

    @Test func idsStayBelowTheLimitAndAreReused() throws {
        var tables = FlowTables(maxRules: 3)
        let a = try tables.add(rule("in_port=1 actions=drop"))
        let b = try tables.add(rule("in_port=2 actions=drop"))
        let c = try tables.add(rule("in_port=3 actions=drop"))
        #expect([a.id, b.id, c.id] == [0, 1, 2])
        #expect(throws: FlowTableError.full(maxRules: 3)) { try tables.add(rule("in_port=4 actions=drop")) }
        #expect(FlowTableError.full(maxRules: 3).description.contains("full (3 rules and group counters)"))
        // Replacing needs no new slot.
        #expect(try tables.add(rule("in_port=2 actions=output:1")).id == b.id)

        tables.delete(table: 0, match: try match("in_port=3"), strict: true)
        tables.delete(table: 0, match: try match("in_port=1"), strict: true)
        // The oldest freed slot comes back first.
        #expect(try tables.add(rule("in_port=5 actions=drop")).id == c.id)
        #expect(try tables.add(rule("in_port=6 actions=drop")).id == a.id)
        #expect(throws: FlowTableError.self) { try tables.add(rule("in_port=7 actions=drop")) }
    }

    /// 5000 host routes and a few wildcards: answers agree with a linear scan and a lookup
    /// costs at most one probe per distinct mask, stopping early when priorities allow.
    @Test func thousandsOfFlowsCostAHandfulOfProbes() throws {
        var tables = FlowTables()
        var text = "priority=200,tcp,tp_dst=22 actions=drop\n"
        text += "priority=50,ip,nw_dst=10.0.0.0/8 actions=output:7\n"
        text += "priority=0 actions=output:8\n"
        for i in 0..<5000 {
            text += "priority=100,ip,nw_dst=10.\(i >> 8 & 0xff).\(i & 0xff).1 actions=output:\(i % 4 + 1)\n"
        }
        for r in try FlowSyntax.parseFlowFile(text, ports: ports) { try tables.add(r) }
        #expect(tables.count == 5003)
        let pipeline = Pipeline(tables, ports: ports)
        #expect(pipeline.subtableCount(table: 0) == 4)

        let entries = tables.entries
        func linearScan(_ key: FlowKey) -> UInt32? {
            var best: FlowEntry?
            for e in entries where e.rule.match.matches(key) {
                let laterFragment = key.nwFrag & FlowKey.fragLater != 0
                if laterFragment && (e.rule.match.mask.tpDst != 0 || e.rule.match.mask.tpSrc != 0) { continue }
                if best == nil || e.rule.priority > best!.rule.priority { best = e }
            }
            return best?.id
        }

        var rng = SplitMix64(seed: 42)
        var maxProbes = 0
        for n in 0..<1500 {
            let i = Int.random(in: 0..<5200, using: &rng)
            let host = n % 3 == 0 ? Int.random(in: 0...2, using: &rng) : 1
            let key = packet(
                inPort: UInt32.random(in: 1...8, using: &rng), nwDst: "10.\(i >> 8 & 0xff).\(i & 0xff).\(host)",
                proto: [6, 17, 1].randomElement(using: &rng)!, tpDst: [22, 80].randomElement(using: &rng)!,
                frag: [0, 0, 0, FlowKey.fragAny | FlowKey.fragLater].randomElement(using: &rng)!)
            let found = pipeline.lookup(key, table: 0)
            #expect(found.ruleID == linearScan(key))
            maxProbes = max(maxProbes, found.subtablesProbed)
        }
        #expect(maxProbes <= 4)

        // Early termination: a match outranking every later subtable ends the search.
        #expect(pipeline.lookup(packet(inPort: 1, nwDst: "10.0.3.1", proto: 6, tpDst: 22), table: 0).subtablesProbed == 1)
        let hostRoute = pipeline.lookup(packet(inPort: 1, nwDst: "10.0.3.1", proto: 17, tpDst: 22), table: 0)
        #expect(hostRoute.subtablesProbed == 2 && hostRoute.priority == 100)
        let subnet = pipeline.lookup(packet(inPort: 1, nwDst: "10.250.3.1"), table: 0)
        #expect(subnet.subtablesProbed == 3 && subnet.priority == 50)
        let elsewhere = pipeline.lookup(packet(inPort: 1, nwDst: "192.0.2.9"), table: 0)
        #expect(elsewhere.subtablesProbed == 4 && elsewhere.priority == 0)
    }

    @Test func dependenciesAreTheProbedMasks() throws {
        let tables = try loadTables(
            """
            priority=200,tcp,tp_dst=22 actions=drop
            priority=100,ip,nw_dst=10.0.0.1 actions=output:1
            priority=10,in_port=3 actions=output:2
            """, ports: ports)
        let pipeline = Pipeline(tables, ports: ports)
        let found = pipeline.lookup(packet(inPort: 1, nwDst: "10.0.0.1", proto: 17), table: 0)
        #expect(found.priority == 100)
        let d = found.dependencies
        #expect(d.dlType == 0xffff && d.nwProto == 0xff && d.tpDst == 0xffff && d.nwDstIPv4 == .max)
        #expect(d.nwFrag == FlowKey.fragLater)
        // The in_port subtable ranks below the match, so it was not probed.
        #expect(d.inPort == 0 && d.tpSrc == 0 && d.nwSrcIPv4 == 0 && d.dlSrc.value == 0 && d.tunID == 0)
    }

    @Test func equalPriorityTiesDoNotDependOnInsertionOrder() throws {
        let flows = [
            "priority=10,in_port=1 actions=output:2",
            "priority=10,dl_dst=02:00:00:00:00:02 actions=output:3",
            "priority=10,ip actions=output:4",
        ]
        var winners: Set<[DatapathAction]> = []
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
            var tables = FlowTables()
            for i in order { try tables.add(rule(flows[i])) }
            var normal = NoNormal()
            winners.insert(Pipeline(tables, ports: ports).translate(packet(inPort: 1), normal: &normal).actions)
        }
        #expect(winners.count == 1)
    }

    @Test func laterFragmentsDoNotMatchPorts() throws {
        let tables = try loadTables("priority=10,tcp,tp_dst=0 actions=output:2", ports: ports)
        let pipeline = Pipeline(tables, ports: ports)
        let first = packet(inPort: 1, proto: 6, frag: FlowKey.fragAny)
        let later = packet(inPort: 1, proto: 6, frag: FlowKey.fragAny | FlowKey.fragLater)
        #expect(pipeline.lookup(first, table: 0).ruleID != nil)
        #expect(pipeline.lookup(later, table: 0).ruleID == nil)
    }
}
