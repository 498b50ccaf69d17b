import ShuntLab
import Testing

@Suite("Lab topology: the commands that build and remove a lab")
struct LabTopologyTests {
    @Test func theBenchmarkLab() {
        let lab = LabTopology.genFwdSink(prefix: "x-")
        let up = lab.upCommands().map { $0.joined(separator: " ") }
        #expect(lab.namespaces == ["gen", "fwd", "sink"])
        #expect(up.first == "ip netns add x-gen")
        #expect(up.contains("ip link add gen0 netns x-gen type veth peer name fwd0 netns x-fwd"))
        #expect(up.contains("ip link add fwd1 netns x-fwd type veth peer name sink0 netns x-sink"))
        #expect(up.contains("ip -n x-gen addr add 10.203.0.1/24 dev gen0"))
        #expect(up.contains("ip -n x-sink addr add 10.203.0.2/24 dev sink0"))
        #expect(up.contains("ip netns exec x-fwd ethtool -K fwd0 gro on"))
        #expect(up.filter { $0.contains("disable_ipv6=1") }.count == 3)
        // An address goes on before the link comes up.
        #expect(up.firstIndex(of: "ip -n x-gen addr add 10.203.0.1/24 dev gen0")! < up.firstIndex(of: "ip -n x-gen link set gen0 up")!)
        #expect(lab.downCommands() == [["ip", "netns", "del", "x-gen"], ["ip", "netns", "del", "x-fwd"], ["ip", "netns", "del", "x-sink"]])
    }

    @Test func monitorPortsAddAMonitorNamespace() {
        let lab = LabTopology.genFwdSink(prefix: "x-", monitorPorts: 2)
        let up = lab.upCommands().map { $0.joined(separator: " ") }
        #expect(lab.namespaces.last == "mon")
        #expect(up.contains("ip link add fwd3 netns x-fwd type veth peer name mon1 netns x-mon"))
        #expect(up.contains("ip netns exec x-mon ethtool -K mon0 gro on"))
    }

    @Test func theTestStarWithMTUAndQueues() {
        let lab = LabTopology.star(prefix: "t-", sides: ["gen", "sink"], mtu: 9000, queues: 2)
        let up = lab.upCommands().map { $0.joined(separator: " ") }
        #expect(lab.namespaces == ["fwd", "gen", "sink"])
        #expect(up.contains("ip link add sink0 netns t-sink numtxqueues 2 numrxqueues 2 type veth peer name p1 netns t-fwd numtxqueues 2 numrxqueues 2"))
        #expect(up.contains("ip -n t-fwd link set p0 mtu 9000") && up.contains("ip -n t-gen link set gen0 mtu 9000"))
    }

    /// A failed step removes what was built before it and reports the failure.
    @Test func aFailedBuildIsTakenDown() {
        var ran: [String] = []
        struct Refused: Error {}
        let builder = LabBuilder(.genFwdSink(prefix: "x-")) { argv in
            let line = argv.joined(separator: " ")
            ran.append(line)
            if line.hasPrefix("ip link add fwd1") { throw Refused() }
        }
        #expect(throws: Refused.self) { try builder.up() }
        #expect(Array(ran.suffix(3)) == ["ip netns del x-gen", "ip netns del x-fwd", "ip netns del x-sink"])
    }

    /// `shunt lab --link`: any lab of veth pairs, namespaces in order of first mention.
    @Test func linksFromTheirSpecs() throws {
        let a = try LabTopology.Link.parse("c1:c1u@192.168.41.1/24=srv:s1").get()
        #expect(a == LabTopology.Link("c1", "c1u", "srv", "s1", aAddress: "192.168.41.1/24"))
        let lab = LabTopology.links(prefix: "m-", [a, try LabTopology.Link.parse("cap:cap0=srv:s3").get()])
        #expect(lab.namespaces == ["c1", "srv", "cap"])
        let up = lab.upCommands().map { $0.joined(separator: " ") }
        #expect(up.contains("ip link add cap0 netns m-cap type veth peer name s3 netns m-srv"))
        #expect(up.contains("ip -n m-c1 addr add 192.168.41.1/24 dev c1u"))
        for bad in ["c1:c1u", "c1:c1u=srv", "c1:c1u@10.0.0.300/24=srv:s1", "c1:c1u@10.0.0.1=srv:s1", "c 1:x=srv:s1",
                    "c1:averyveryverylongname=srv:s1", "a:b=c:d=e:f"] {
            if case .success = LabTopology.Link.parse(bad) { Issue.record("'\(bad)' parsed") }
        }
    }
}
