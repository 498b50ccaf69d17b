import ShuntCore
import Testing

@testable import ShuntPipeline

@Suite struct FlowSyntaxTests {
    let ports = NeutronDVR.ports(12)

    // MARK: Round trips

    @Test func everyNeutronFlowPrintsBackExactly() throws {
        let lines = NeutronDVR.allLines
        #expect(lines.count == 27)
        for line in lines {
            let rule = try FlowSyntax.parseFlow(line, ports: ports)
            #expect(FlowSyntax.format(rule, ports: ports) == String(line))
        }
    }

    @Test func neutronFlowsParseToTheIntendedMatches() throws {
        let arp = try FlowSyntax.parseFlow("table=1,priority=3,arp,dl_vlan=1,arp_tpa=10.0.1.1 actions=drop", ports: ports)
        #expect(arp.table == 1 && arp.priority == 3 && arp.actions.isEmpty && arp.cookie == 0)
        #expect(arp.match.key.dlType == 0x0806 && arp.match.mask.dlType == 0xffff)
        #expect(arp.match.key.vlanTCI == FlowKey.vlanPresent | 1 && arp.match.mask.vlanTCI == 0x1fff)
        #expect(arp.match.key.nwDstIPv4 == ipv4("10.0.1.1") && arp.match.mask.nwDstIPv4 == .max)
        #expect(arp.match.mask.nwSrcIPv4 == 0 && arp.match.mask.inPort == 0)

        let egress = try FlowSyntax.parseFlow(
            "table=20,priority=2,dl_vlan=2,dl_dst=fa:16:3e:51:99:b8 actions=strip_vlan,set_tunnel:0x3eb,output:4",
            ports: ports)
        #expect(egress.actions == [.stripVLAN, .setTunnel(0x3eb), .output(4)])

        let multicast = try FlowSyntax.parseFlow(
            "table=2,priority=0,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=resubmit(,22)", ports: ports)
        #expect(multicast.match.key.dlDst == mac("01:00:00:00:00:00"))
        #expect(multicast.match.mask.dlDst == mac("01:00:00:00:00:00"))
        #expect(multicast.actions == [.resubmit(port: nil, table: 22)])

        let subnet = try FlowSyntax.parseFlow(
            "table=1,priority=2,ip,dl_vlan=2,nw_dst=10.0.1.0/24 actions=strip_vlan,mod_dl_src:fa:16:3e:66:13:af,output:9",
            ports: ports)
        #expect(subnet.match.key.nwDstIPv4 == ipv4("10.0.1.0") && subnet.match.mask.nwDstIPv4 == 0xffff_ff00)
        #expect(subnet.actions == [.stripVLAN, .setEthSrc(mac("fa:16:3e:66:13:af")), .output(9)])

        let vni = try FlowSyntax.parseFlow("table=4,priority=1,tun_id=0x3eb actions=mod_vlan_vid:3,resubmit(,9)", ports: ports)
        #expect(vni.match.key.tunID == 0x3eb && vni.match.mask.tunID == .max)
        #expect(vni.actions == [.setVLANVID(3), .resubmit(port: nil, table: 9)])
    }

    /// Canonical text (as ovs-ofctl prints it) survives parse and format unchanged, and the
    /// rule survives format and parse.
    @Test(arguments: [
        "table=0,priority=100,tcp,in_port=3,nw_src=192.168.0.0/16,tp_dst=80 actions=output:2",
        "table=3,priority=5,udp6,ipv6_src=2001:db8::/32,ipv6_dst=fe80::1,tp_src=0x1000/0xf000 actions=dec_ttl,output:1",
        "table=0,priority=7,icmp,nw_dst=10.0.0.1,icmp_type=8,icmp_code=0 actions=NORMAL",
        "table=0,priority=1,arp,arp_spa=10.0.0.0/8,arp_op=1 actions=IN_PORT",
        "cookie=0x1234,table=2,priority=9,tun_id=0x5/0xff,dl_vlan=10,dl_vlan_pcp=3 actions=mod_vlan_vid:20,resubmit(2,3),resubmit:4",
        "table=0,priority=1,vlan_tci=0x0000/0x1fff actions=mod_vlan_vid:5,output:2",
        "table=0,dl_src=01:00:00:00:00:00/01:00:00:00:00:00 actions=drop",
        "table=0,priority=2,dl_type=0x88cc actions=drop",
        "table=0,priority=2,ip,nw_src=10.0.0.0/255.0.255.0 actions=drop",
        "table=4,priority=3,tun_id=0 actions=set_tunnel64:0x100000000,output:1",
        "table=0,priority=1,ip,nw_proto=47 actions=mod_dl_dst:02:00:00:00:00:01,mod_dl_src:02:00:00:00:00:02,output:1",
        "table=0,priority=1,tcp6,ipv6_dst=2001:0:db8::/ffff:0:ffff::,tp_dst=443 actions=strip_vlan,output:3",
        "table=254,priority=65535,in_port=4294967039,dl_dst=02:00:00:00:00:01 actions=output:4294967039",
        "table=1,priority=0,rarp actions=drop",
        "table=0,priority=0 actions=drop",
    ])
    func canonicalFlowsRoundTrip(_ line: String) throws {
        let rule = try FlowSyntax.parseFlow(line[...], ports: ports)
        let text = FlowSyntax.format(rule, ports: ports)
        #expect(text == line)
        #expect(try FlowSyntax.parseFlow(text[...], ports: ports) == rule)
    }

    /// Other spellings of a flow print in the canonical form and mean the same thing.
    @Test(arguments: [
        ("priority=3,table=1,dl_type=0x0806,dl_vlan=1,nw_dst=10.0.1.1,actions=drop",
         "table=1,priority=3,arp,dl_vlan=1,arp_tpa=10.0.1.1 actions=drop"),
        ("ip,nw_dst=10.0.1.5/24 actions=2", "table=0,ip,nw_dst=10.0.1.0/24 actions=output:2"),
        ("dl_type=0x800,nw_proto=6,tp_dst=22 actions=output:p3", "table=0,tcp,tp_dst=22 actions=output:3"),
        ("in_port=p2 actions=normal,in_port", "table=0,in_port=2 actions=NORMAL,IN_PORT"),
        ("table=0, priority=5, dl_vlan=0xffff actions=drop", "table=0,priority=5,vlan_tci=0x0000/0x1fff actions=drop"),
        ("icmpv6,icmpv6_type=135 actions=drop", "table=0,icmp6,icmp_type=135 actions=drop"),
        ("priority=32768 actions=resubmit(,1)", "table=0 actions=resubmit(,1)"),
        ("nw_src=10.0.0.1,ip actions=drop", "table=0,ip,nw_src=10.0.0.1 actions=drop"),
        ("ip,nw_src=10.0.0.0/0 actions=drop", "table=0,ip actions=drop"),
        ("actions=resubmit(p3,),output:NORMAL, set_tunnel:1003", "table=0 actions=resubmit:3,NORMAL,set_tunnel:0x3eb"),
        ("tun_id=1003,dl_dst=FA:16:3E:51:99:B8 actions=p12", "table=0,tun_id=0x3eb,dl_dst=fa:16:3e:51:99:b8 actions=output:12"),
    ])
    func otherSpellingsPrintCanonically(_ input: String, _ canonical: String) throws {
        let rule = try FlowSyntax.parseFlow(input[...], ports: ports)
        #expect(FlowSyntax.format(rule, ports: ports) == canonical)
        #expect(try FlowSyntax.parseFlow(canonical[...], ports: ports) == rule)
    }

    @Test func dumpFlowsFormatWithStatistics() throws {
        let rule = try FlowSyntax.parseFlow("table=1,priority=3,arp,dl_vlan=1,arp_tpa=10.0.1.1 actions=drop", ports: ports)
        #expect(
            FlowSyntax.format(rule, ports: ports, stats: (packets: 3, bytes: 180))
                == "cookie=0x0, table=1, n_packets=3, n_bytes=180, priority=3,arp,dl_vlan=1,arp_tpa=10.0.1.1 actions=drop")
        let bare = FlowRule(actions: [.normal], cookie: 0xabc)
        #expect(
            FlowSyntax.format(bare, ports: ports, stats: (packets: 0, bytes: 0))
                == "cookie=0xabc, table=0, n_packets=0, n_bytes=0, actions=NORMAL")
        #expect(FlowSyntax.format(bare, ports: ports) == "cookie=0xabc,table=0 actions=NORMAL")
    }

    // MARK: Values

    @Test func masksAndPrefixes() throws {
        let m = try FlowSyntax.parseFlow(
            "ipv6,ipv6_src=2001:db8:1::/48,dl_src=02:00:00:00:00:00/ff:ff:00:00:00:00 actions=drop", ports: ports
        ).match
        #expect(m.mask.nwSrcBytes == [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] + Array(repeating: 0, count: 10))
        #expect(m.key.nwSrcBytes == [0x20, 0x01, 0x0d, 0xb8, 0, 1] + Array(repeating: 0, count: 10))
        #expect(m.mask.dlSrc == mac("ff:ff:00:00:00:00"))

        let v4 = try FlowSyntax.parseFlow("ip,nw_src=10.1.2.3/20,nw_dst=10.0.0.9/32 actions=drop", ports: ports).match
        #expect(v4.key.nwSrcIPv4 == ipv4("10.1.0.0") && v4.mask.nwSrcIPv4 == 0xffff_f000)
        #expect(v4.key.nwDstIPv4 == ipv4("10.0.0.9") && v4.mask.nwDstIPv4 == .max)

        let tp = try FlowSyntax.parseFlow("udp,tp_src=0x1234/0xff00,tp_dst=53 actions=drop", ports: ports).match
        #expect(tp.key.tpSrc == 0x1200 && tp.mask.tpSrc == 0xff00 && tp.key.tpDst == 53 && tp.mask.tpDst == 0xffff)
        #expect(tp.key.nwProto == 17 && tp.key.dlType == 0x0800)
    }

    @Test func portNamesAndNumbers() throws {
        let named = PortNames(["vm1", "vm2", "vxlan0"])
        #expect(named.count == 3 && named.number(of: "vxlan0") == 3 && named.name(of: 2) == "vm2")
        #expect(named.number(of: "eth0") == nil && named.name(of: 0) == nil && named.name(of: 4) == nil)

        let byName = try FlowSyntax.parseFlow("in_port=vm2 actions=output:vxlan0,vm1", ports: named)
        let byNumber = try FlowSyntax.parseFlow("in_port=2 actions=output:3,1", ports: named)
        #expect(byName == byNumber)
        #expect(byName.actions == [.output(3), .output(1)])

        // A port number the bridge does not have yet is fine; it prints as given.
        let future = try FlowSyntax.parseFlow("in_port=42 actions=output:77", ports: named)
        #expect(future.match.key.inPort == 42 && future.actions == [.output(77)])
        #expect(FlowSyntax.format(future, ports: named) == "table=0,in_port=42 actions=output:77")
    }

    @Test func delFlowsMatches() throws {
        let all = try FlowSyntax.parseMatch("", ports: ports)
        #expect(all.table == nil && all.priority == nil && all.match == FlowMatch())

        let some = try FlowSyntax.parseMatch("table=1,arp,dl_vlan=1", ports: ports)
        #expect(some.table == 1 && some.priority == nil)
        #expect(FlowSyntax.format(some.match) == "arp,dl_vlan=1")

        let strict = try FlowSyntax.parseMatch("priority=3,in_port=p4", ports: ports)
        #expect(strict.priority == 3 && strict.match.key.inPort == 4)
    }

    @Test func flowFileWithComments() throws {
        let file = """
            # Host 1, br-tun

            table=0,priority=1,in_port=1 actions=resubmit(,1)   # from br-int
              table=0,priority=0 actions=drop
            \ttable=1,priority=0 actions=resubmit(,2)\r
            # the end
            """
        let rules = try FlowSyntax.parseFlowFile(file, ports: ports)
        #expect(rules.count == 3)
        #expect(rules.map { FlowSyntax.format($0, ports: ports) } == [
            "table=0,priority=1,in_port=1 actions=resubmit(,1)",
            "table=0,priority=0 actions=drop",
            "table=1,priority=0 actions=resubmit(,2)",
        ])
        #expect(try FlowSyntax.parseFlowFile("", ports: ports).isEmpty)
        #expect(try FlowSyntax.parseFlowFile("# nothing\n\n", ports: ports).isEmpty)
    }

    @Test func aBadLineInAFileFailsTheWholeFile() throws {
        let file = """
            table=0,priority=1,in_port=1 actions=resubmit(,1)
            # a comment
            table=0,priority=0 actions=dorp
            table=1,priority=0 actions=resubmit(,2)
            """
        var rules: [FlowRule]?
        let error = #expect(throws: FlowParseError.self) {
            rules = try FlowSyntax.parseFlowFile(file, ports: ports)
        }
        #expect(rules == nil)
        #expect(error?.line == 3)
        #expect(error?.column == 28)
        #expect(error?.description == "line 3, column 28: unknown action 'dorp' (nor is it a port name)")
    }

    // MARK: Errors

    struct BadFlow: CustomTestStringConvertible, Sendable {
        var text: String
        /// The token the error must point at (its first occurrence), or an explicit column.
        var at: String?
        var column: Int?
        var reason: String
        var isMatch = false

        var expectedColumn: Int {
            if let column { return column }
            let range = text.firstRange(of: at!)!
            return text.distance(from: text.startIndex, to: range.lowerBound) + 1
        }

        var testDescription: String { text }
    }

    static let badFlows: [BadFlow] = [
        BadFlow(text: "table=0,dl_srcc=00:11:22:33:44:55 actions=drop", at: "dl_srcc", reason: "unknown field 'dl_srcc'"),
        BadFlow(
            text: "table=1,priority=2,dl_vlan=1,dl_dst=fa:16:3e:zz:13:af actions=drop", at: "fa:16:3e:zz",
            reason: "'fa:16:3e:zz:13:af' is not a MAC address"),
        BadFlow(text: "ip,nw_dst=10.0.1.300 actions=drop", at: "10.0", reason: "'10.0.1.300' is not an IPv4 address"),
        BadFlow(text: "ip,nw_dst=10.0.1.0/33 actions=drop", at: "33", reason: "prefix length 33 is out of range (0 to 32)"),
        BadFlow(text: "priority=70000 actions=drop", at: "70000", reason: "priority 70000 is out of range (0 to 65535)"),
        BadFlow(text: "table=0 actions=outptu:1", at: "outptu", reason: "unknown action 'outptu'"),
        BadFlow(
            text: "table=0,priority=1,in_port=1", column: 29,
            reason: "missing 'actions=' (every flow needs actions, e.g. 'actions=drop')"),
        BadFlow(text: "actions=output:1,drop", at: "drop", reason: "'drop' must be the only action"),
        BadFlow(text: "in_port=eth9 actions=drop", at: "eth9", reason: "unknown port name 'eth9'"),
        BadFlow(text: "actions=resubmit(,1", at: "(", reason: "unbalanced parenthesis: '(' is never closed"),
        BadFlow(text: "actions=resubmit(,1))", column: 21, reason: "unbalanced parenthesis: ')' has no matching '('"),
        BadFlow(
            text: "table=1,dl_vlan=2,nw_dst=10.0.1.0/24 actions=drop", at: "nw_dst",
            reason: "nw_dst requires dl_type=ip or arp (add 'ip,')"),
        BadFlow(text: "priority=1,priority=2 actions=drop", at: "priority=2", reason: "duplicate field 'priority'"),
        BadFlow(
            text: "dl_type=0x0800,ip actions=drop", at: "ip ",
            reason: "duplicate field: 'ip' sets what 'dl_type' already set"),
        BadFlow(text: "priority=1 actions=", column: 20, reason: "empty action list (write 'actions=drop' to drop)"),
        BadFlow(text: "actions=output:1,,output:2", column: 18, reason: "empty action (a ',' too many)"),
        BadFlow(
            text: "ip,tp_dst=80 actions=drop", at: "tp_dst",
            reason: "tp_dst requires nw_proto=tcp, udp or sctp (add 'tcp,' or 'udp,')"),
        BadFlow(
            text: "ip,arp_tpa=10.0.1.1 actions=drop", at: "arp_tpa", reason: "arp_tpa requires dl_type=arp (add 'arp,')"),
        BadFlow(
            text: "ipv6_src=::1 actions=drop", at: "ipv6_src", reason: "ipv6_src requires dl_type=ipv6 (add 'ipv6,')"),
        BadFlow(
            text: "dl_vlan=4096 actions=drop", at: "4096",
            reason: "dl_vlan 4096 is out of range (0 to 4095, or 0xffff for untagged)"),
        BadFlow(text: "table=255 actions=drop", at: "255", reason: "table 255 is out of range (0 to 254)"),
        BadFlow(text: "in_port=0 actions=drop", at: "0", reason: "port 0 is out of range (1 to 4294967039)"),
        BadFlow(text: "actions=resubmit(,300)", at: "300", reason: "resubmit table 300 is out of range (0 to 254)"),
        BadFlow(text: "actions=resubmit(,)", at: "resubmit", reason: "resubmit needs a port or a table, as in resubmit(,1)"),
        BadFlow(text: "actions=mod_vlan_vid:5000", at: "5000", reason: "mod_vlan_vid 5000 is out of range (0 to 4095)"),
        BadFlow(text: "dl_src actions=drop", at: "dl_src", reason: "missing value for 'dl_src' (write 'dl_src=...')"),
        BadFlow(text: "ip=1 actions=drop", at: "ip", reason: "'ip' takes no value"),
        BadFlow(text: "dl_type=0x08zz actions=drop", at: "0x08zz", reason: "dl_type: '0x08zz' is not a number"),
        BadFlow(text: "tun_id=0x3eb/0xzz actions=drop", at: "0xzz", reason: "tun_id mask: '0xzz' is not a number"),
        BadFlow(
            text: "ipv6,ipv6_dst=2001:db8::/129 actions=drop", at: "129",
            reason: "prefix length 129 is out of range (0 to 128)"),
        BadFlow(text: "ipv6,ipv6_dst=2001:db8:::1 actions=drop", at: "2001", reason: "'2001:db8:::1' is not an IPv6 address"),
        BadFlow(text: "actions=eth9", at: "eth9", reason: "unknown action 'eth9' (nor is it a port name)"),
        BadFlow(text: "actions=strip_vlan:1", at: "strip_vlan", reason: "'strip_vlan' takes no argument"),
        BadFlow(text: "actions=mod_dl_src:fa:16:3e", at: "fa:", reason: "'fa:16:3e' is not a MAC address"),
        BadFlow(text: "actions=output:1 output:2", at: " ", reason: "missing ',' between actions"),
        BadFlow(text: "actions=resubmit(,1)x", at: "x", reason: "unexpected text after ')'"),
        BadFlow(text: "dl_dst=01:00:00:00:00:00/01:00 actions=drop", at: "01:00 ", reason: "'01:00' is not a MAC address mask"),
        BadFlow(text: "table=1 actions=drop", at: "actions", reason: "a del-flows match takes no 'actions='", isMatch: true),
        BadFlow(text: "cookie=0x1,in_port=1", at: "cookie", reason: "a del-flows match does not select by cookie", isMatch: true),
    ]

    @Test(arguments: badFlows)
    func malformedFlowsSayWhereAndWhy(_ bad: BadFlow) {
        let error = #expect(throws: FlowParseError.self) {
            if bad.isMatch {
                _ = try FlowSyntax.parseMatch(bad.text[...], ports: ports)
            } else {
                _ = try FlowSyntax.parseFlow(bad.text[...], ports: ports)
            }
        }
        #expect(error?.reason == bad.reason)
        #expect(error?.column == bad.expectedColumn)
        #expect(error?.line == nil)
        #expect(error?.description == "column \(bad.expectedColumn): \(bad.reason)")
    }

    @Test func columnsCountFromTheStartOfTheGivenSlice() {
        let line = "xxxx table=0,bogus=1 actions=drop"
        let slice = line.dropFirst(5)
        let error = #expect(throws: FlowParseError.self) { try FlowSyntax.parseFlow(slice, ports: ports) }
        #expect(error?.column == 9)
    }
}
