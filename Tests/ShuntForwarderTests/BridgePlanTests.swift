import ShuntPipeline
import Testing

@testable import ShuntForwarder

/// `bridges:` in the configuration: what the plan opens, how ports are numbered, and every
/// mistake as one line.
@Suite("Forwarder plan: bridges")
struct BridgePlanTests {
    static let host1 = """
        bridges:
          - name: br-int
            ports:
              - {name: tap-vm1, ofport: 12, tag: 1}
              - {name: qr1, tag: 1}
              - {name: qr2, tag: 2}
              - {name: patch-tun, ofport: 6, type: patch, peer: patch-int}
          - name: br-tun
            flows: tun.flows
            ports:
              - {name: patch-int, ofport: 1, type: patch, peer: patch-tun}
              - {name: vx-net, ofport: 3, type: vxlan, local: 172.16.0.1, remote: 172.16.0.3, dev: eth1, vni: flow}
              - {name: vx-h2, ofport: 4, type: vxlan, local: 172.16.0.1, remote: 172.16.0.2, dev: eth1, vni: flow}
        mirrors:
          - {name: m, src: tap-vm1, to: "pcap:/tmp/m.pcapng"}
        """

    static func request(_ yaml: String, flows: [String: String] = ["tun.flows": "table=0,in_port=patch-int actions=output:4"])
        -> ForwarderRequest
    {
        var r = ForwarderRequest()
        r.configFile = NamedText(path: "/etc/shunt/host1.yaml", text: yaml)
        for (name, text) in flows { r.includedFiles[name] = NamedText(path: "/etc/shunt/\(name)", text: text) }
        return r
    }

    static func problem(_ yaml: String, _ change: (inout ForwarderRequest) -> Void = { _ in }) -> String {
        var r = request(yaml)
        change(&r)
        do throws(PlanError) {
            _ = try ForwarderPlan.make(r)
            return "none"
        } catch { return error.description }
    }

    /// `type: bond`: its members become datapath ports that enter as the bond.
    @Test func bondsAreOnePortOverTheirMembers() throws {
        let yaml = """
            bridges:
              - name: br0
                ports:
                  - {name: tap0}
                  - {name: bond0, type: bond, members: [eth1, eth2], xmit_hash_policy: layer3+4}
                  - {name: bond1, type: bond, members: [eth3, eth4], bond_mode: active-backup}
            """
        let plan = try ForwarderPlan.make(Self.request(yaml, flows: [:]))
        #expect(plan.ports == ["tap0", "eth1", "eth2", "eth3", "eth4"])
        let br = plan.layout.bridges[0]
        #expect(br.port(2)?.kind == .bond(members: [2, 3], mode: .balance(fields: [.ipSrc, .ipDst, .ipProto, .tpSrc, .tpDst])))
        #expect(br.port(3)?.kind == .bond(members: [4, 5], mode: .activeBackup))
        #expect(plan.layout.owner(of: 3)! == (0, 2) && plan.layout.owner(of: 5)! == (0, 3))
        func bondProblem(_ port: String) -> String {
            Self.problem("bridges:\n  - name: br0\n    ports:\n      - {name: tap0}\n      - \(port)\n")
        }
        #expect(bondProblem("{name: b, type: bond, members: [eth1]}")
            == "/etc/shunt/host1.yaml: bond b: members must be a list of two or more distinct interfaces")
        #expect(bondProblem("{name: b, type: bond, members: [eth1, eth2], xmit_hash_policy: layer5}")
            == "/etc/shunt/host1.yaml: bond b: xmit_hash_policy 'layer5' is not one of layer2, layer2+3, layer3+4")
        #expect(bondProblem("{name: b, type: bond, members: [eth1, eth2], bond_mode: balance-rr}")
            == "/etc/shunt/host1.yaml: bond b: bond_mode 'balance-rr' is not one of balance-xor, active-backup")
        #expect(bondProblem("{name: b, type: bond, members: [eth1, eth2], bond_mode: active-backup, xmit_hash_policy: l2}")
            == "/etc/shunt/host1.yaml: bond b: xmit_hash_policy is for bond_mode balance-xor")
        #expect(bondProblem("{name: b, type: bond, members: [tap0, eth2]}")
            == "/etc/shunt/host1.yaml: bond b: member tap0 is a port of bridge br0 already")
    }

    @Test func bridgesBecomeDatapathPortsAndALayout() throws {
        let plan = try ForwarderPlan.make(Self.request(Self.host1))
        // Interfaces in order, then the underlay (in no bridge), then the tunnels.
        #expect(plan.mode == .flows && plan.ports == ["tap-vm1", "qr1", "qr2", "eth1"])
        #expect(plan.tunnels.map(\.name) == ["vx-net", "vx-h2"] && plan.tunnels.map(\.port) == [5, 6])
        #expect(plan.tunnels.allSatisfy { $0.underlayPort == 4 })
        let brInt = plan.layout.bridges[0], brTun = plan.layout.bridges[1]
        // Fixed ofports kept; the others take the lowest free numbers.
        #expect(brInt.ports.map(\.ofport) == [1, 2, 6, 12] && brInt.port(1)?.name == "qr1" && brInt.port(2)?.tag == 2)
        #expect(brInt.port(6)?.kind == .patch(bridge: 1, port: 1) && brTun.port(1)?.kind == .patch(bridge: 0, port: 6))
        #expect(brTun.port(4)?.kind == .datapath(6))
        #expect(plan.layout.owner(of: 1)! == (0, 12) && plan.layout.owner(of: 4) == nil)
        // br-int has the default NORMAL table, br-tun its file, parsed with br-tun's port names.
        let rules = plan.flowTables!.rules
        #expect(rules.count == 2 && rules[0].bridge == 0 && rules[0].actions == [.normal])
        #expect(rules[1].bridge == 1 && rules[1].match.key.inPort == 1 && rules[1].actions == [.output(4)])
        #expect(plan.mirrors.map(\.name) == ["m"])
    }

    @Test func flowFilesAreReadNextToTheConfiguration() {
        let config = NamedText(path: "/etc/shunt/host1.yaml", text: Self.host1)
        #expect(ForwarderPlan.filesIncluded(by: config).map(\.path) == ["/etc/shunt/tun.flows"])
        let bare = NamedText(path: "host1.yaml", text: Self.host1.replacingOccurrences(of: "tun.flows", with: "/abs/t.flows"))
        #expect(ForwarderPlan.filesIncluded(by: bare).map(\.path) == ["/abs/t.flows"])
    }

    @Test func mistakes() {
        let cases: [(String, String)] = [
            ("bridges: [{name: a}]\n", "bridge a: ports must be a non-empty list of mappings"),
            ("bridges: [{name: a, colour: red, ports: [{name: p}]}]\n", "bridge a: unknown key 'colour'"),
            ("bridges: [{name: a, ports: [{name: p, type: tap}]}]\n", "port p: type 'tap' is not one of interface, patch, vxlan"),
            ("bridges: [{name: a, ports: [{name: p, tag: 4095}]}]\n", "port p: tag must be a VLAN 0...4094"),
            ("bridges: [{name: a, ports: [{name: p, ofport: 0}]}]\n", "port p: ofport must be 1...65279"),
            ("bridges: [{name: a, ports: [{name: p, tag: 1, trunks: [2]}]}]\n", "port p: an access port (tag) is not a trunk"),
            ("bridges: [{name: a, ports: [{name: p, trunks: [5000]}]}]\n", "port p: trunks must be a list of VLANs"),
            ("bridges: [{name: a, ports: [{name: p, type: patch}]}]\n", "patch port p: peer is missing"),
            ("bridges: [{name: a, ports: [{name: p, peer: q}]}]\n", "port p: unknown key 'peer' for an interface port"),
            ("bridges: [{name: a, ports: [{name: p}]}, {name: a, ports: [{name: q}]}]\n", "bridge a is given twice"),
            ("bridges: [{name: a, ports: [{name: p}]}, {name: b, ports: [{name: p}]}]\n",
             "port p is in bridge a and in b; a port belongs to one bridge"),
            ("bridges: [{name: a, ports: [{name: p, ofport: 2}, {name: q, ofport: 2}]}]\n",
             "bridge a: ports p and q both ask for ofport 2"),
            ("bridges: [{name: a, ports: [{name: p, type: patch, peer: q}]}]\n", "patch port p: no port q in any bridge"),
            ("bridges: [{name: a, ports: [{name: p, type: patch, peer: q}]}, {name: b, ports: [{name: q}]}]\n",
             "patch port p: its peer q is not a patch port"),
            ("bridges: [{name: a, ports: [{name: p, type: patch, peer: q}]}, {name: b, ports: [{name: q, type: patch, peer: r}]}]\n",
             "patch port p: its peer q names r as its peer, not p"),
            ("bridges: [{name: a, ports: [{name: p, type: patch, peer: q}, {name: q, type: patch, peer: p}]}]\n",
             "patch port p: its peer q is on the same bridge"),
            ("bridges: [{name: a, ports: [{name: v, type: vxlan, local: 192.0.2.1, dev: e}]}]\n", "tunnel v: remote= is missing"),
            ("bridges: [{name: a, flows: x.flows, ports: [{name: p}]}]\n", "bridge a: the flow file x.flows was not read"),
            ("bridges: [{name: a, ports: [{name: p}]}]\ntunnels: []\n", "with bridges, tunnels are ports of a bridge"),
        ]
        for (yaml, message) in cases {
            let p = Self.problem(yaml)
            #expect(p.hasPrefix("/etc/shunt/host1.yaml: " + message), "\(yaml): \(p)")
        }
        #expect(Self.problem(Self.host1) { $0.ports = ["x"] }.hasSuffix("their ports replace --port; drop --port"))
        #expect(Self.problem(Self.host1) { $0.vxlan = ["v,local=1.1.1.1,remote=1.1.1.2,dev=x"] }.hasSuffix("drop --vxlan"))
        var bad = Self.request(Self.host1, flows: ["tun.flows": "in_port=nope actions=drop"])
        bad.workers = 1
        do throws(PlanError) {
            _ = try ForwarderPlan.make(bad)
            Issue.record("a bad flow file was accepted")
        } catch {
            #expect(error.description.hasPrefix("/etc/shunt/host1.yaml: bridge br-tun: /etc/shunt/tun.flows: line 1"))
        }
    }
}

/// Rings that would not fit in memory are refused with the numbers, before the kernel is asked
/// (which got the process OOM-killed).
@Suite("Forwarder plan: ring memory")
struct RingMemoryTests {
    @Test func ringsOverHalfTheAvailableMemoryAreRefused() throws {
        var r = ForwarderRequest()
        r.ports = ["p0", "p1"]
        r.blockSize = 1 << 22
        r.blockCount = 200_000
        let plan = try ForwarderPlan.make(r)
        #expect(throws: Never.self) { try PortSet.checkMemory(plan, interfaces: 2, available: nil) }
        do throws(ForwarderError) {
            try PortSet.checkMemory(plan, interfaces: 2, available: 8 << 30)
            Issue.record("800 GB of rings were accepted")
        } catch {
            #expect(error.description.hasPrefix("the rings would take 1600004 MiB (2 sockets of 800002 MiB"), "\(error)")
            #expect(error.description.hasSuffix("more than half of the 8192 MiB this machine has available; lower --block-count or --block-size"))
        }
        r.blockCount = 64
        try PortSet.checkMemory(try ForwarderPlan.make(r), interfaces: 2, available: 8 << 30)
    }
}
