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
}
