import Foundation
import Glibc
import ShuntTestSupport
import Testing

/// A Shunt tunnel port against the real thing: a Linux kernel VXLAN interface in a peer
/// namespace. Shunt's underlay port p1 faces the peer's underlay interface; the tenant behind p0
/// and the peer's vxlan0 share 10.77.0.0/24.
///
///     [tenant] 10.77.0.1 <-> p0 [fwd: shunt, vx1 over p1 = 192.0.2.1] p1 <-> 192.0.2.2 [peer: vxlan0 10.77.0.2]
@Suite("VXLAN tunnel ports against a kernel vxlan device", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason))
struct VXLANInteropTests {
    static let explicitFlows = "in_port=p0,actions=output:vx1\nin_port=vx1,actions=output:p0\n"

    /// The lab with the kernel side configured: `peerVNI` and `peerPort` are the kernel's.
    func makeLab(peerVNI: Int = 4100, peerPort: Int = 4789) throws -> Lab {
        let lab = try Lab(["tenant", "peer"])
        try lab.addAddress("tenant", "10.77.0.1/24")
        let peer = lab.ns("peer")
        try lab.addAddress("peer", "192.0.2.2/24")
        try run(["ip", "-n", peer, "link", "add", "vxlan0", "type", "vxlan", "id", "\(peerVNI)", "dstport", "\(peerPort)",
                 "remote", "192.0.2.1", "local", "192.0.2.2", "dev", lab.interface("peer")])
        try run(["ip", "-n", peer, "addr", "add", "10.77.0.2/24", "dev", "vxlan0"])
        try run(["ip", "-n", peer, "link", "set", "vxlan0", "up"])
        // The tenant's MTU leaves room for the 50 bytes of encapsulation, as the kernel's
        // vxlan0 does by default (1450 on a 1500 underlay).
        try run(["ip", "-n", lab.ns("tenant"), "link", "set", lab.interface("tenant"), "mtu", "1450"])
        return lab
    }

    func start(_ lab: Lab, datapath: String, flows: String?, tunnel: String = "vni=4100",
               extra: [String] = []) throws -> ForwarderProcess {
        var args = ["--port", "p0", "--port", "p1", "--vxlan", "vx1,local=192.0.2.1,remote=192.0.2.2,dev=p1,\(tunnel)",
                    "--datapath", datapath]
        if datapath == "xdp" { args.append("--fix-peers") }
        if let flows {
            let path = NSTemporaryDirectory() + "shuntt-vxlan-\(getpid())-\(UUID().uuidString).flows"
            try flows.write(toFile: path, atomically: true, encoding: .utf8)
            args += ["--flows", path]
        }
        return try ForwarderProcess(namespace: lab.fwd, arguments: args + extra)
    }

    func ping(_ lab: Lab, from side: String, to address: String, count: Int = 3) throws -> Bool {
        try run(["ip", "netns", "exec", lab.ns(side), "ping", "-q", "-c", "\(count)", "-i", "0.2", "-W", "2", address],
                check: false).status == 0
    }

    /// UDP datagrams of several sizes from `from` to `to`; how many arrived intact.
    func udp(_ lab: Lab, from: (side: String, address: String), to: (side: String, address: String), rounds: Int = 12) throws -> Int {
        let server = try UDPEndpoint(namespace: lab.ns(to.side), bind: to.address, port: 7700)
        let client = try UDPEndpoint(namespace: lab.ns(from.side), bind: from.address, port: 7701)
        var received = 0
        for round in 0..<rounds {
            let payload = (0..<[1, 300, 1400][round % 3]).map { UInt8(truncatingIfNeeded: $0 &+ round) }
            guard client.send(payload, to: to.address, port: 7700) else { continue }
            if server.receive(timeout: 2) == payload { received += 1 }
        }
        return received
    }

    /// `vni=flow`: set_tunnel chooses the VNI on the way out, tun_id matches it on the way in.
    static let flowVNIFlows = "in_port=p0,actions=set_tunnel:4100,output:vx1\nin_port=vx1,tun_id=4100,actions=output:p0\n"

    static let cases: [(datapath: String, flows: String?, tunnel: String)] = [
        ("afpacket", nil, "vni=4100"), ("afpacket", explicitFlows, "vni=4100"), ("afpacket", flowVNIFlows, "vni=flow"),
        ("xdp", nil, "vni=4100"), ("xdp", explicitFlows, "vni=4100"), ("xdp", flowVNIFlows, "vni=flow"),
    ]

    /// ICMP and UDP both ways between the tenant and the kernel VXLAN's namespace, with NORMAL,
    /// with explicit flows and with a flow-chosen VNI, on both datapaths. On XDP, after the
    /// first packets of a flow the fast path decapsulates and encapsulates.
    @Test(arguments: cases)
    func pingAndUDPBothWays(datapath: String, flows: String?, tunnel: String) throws {
        let lab = try makeLab()
        let fwd = try start(lab, datapath: datapath, flows: flows, tunnel: tunnel)
        #expect(try ping(lab, from: "tenant", to: "10.77.0.2"), "tenant -> kernel vxlan")
        #expect(try ping(lab, from: "peer", to: "10.77.0.1"), "kernel vxlan -> tenant")
        #expect(try udp(lab, from: ("tenant", "10.77.0.1"), to: ("peer", "10.77.0.2")) == 12)
        #expect(try udp(lab, from: ("peer", "10.77.0.2"), to: ("tenant", "10.77.0.1")) == 12)
        let show = try fwd.show()
        let stats = try fwd.stop()
        #expect(stats.exitStatus == 0)
        let vx1 = (show["ports"] as! [[String: Any]]).first { $0["name"] as? String == "vx1" }
        #expect(vx1?["type"] as? String == "vxlan" && vx1?["number"] as? Int == 3)
        #expect(tunnel == "vni=flow" ? vx1?["vni"] as? String == "flow" : vx1?["vni"] as? Int == 4100)
        #expect(vx1?["dev"] as? String == "p1")
        #expect(vx1?["neighbour"] as? String == "reachable", "the remote VTEP was resolved: \(String(describing: vx1))")
        if datapath == "xdp" {
            // Pings are installed (their checksums are complete; the UDP datagrams of local
            // stacks leave theirs to offload and stay in the slow path), so both directions
            // have fast-path hits.
            let fast = vx1?["fast_path"] as? [String: Any]
            #expect(fast?["encapsulates"] as? Bool == true)
            #expect(jsonNumber(fast ?? [:], "rx_packets") > 0, "decapsulated in XDP: \(String(describing: fast))")
            #expect(jsonNumber(fast ?? [:], "tx_packets") > 0, "encapsulated in XDP: \(String(describing: fast))")
        } else {
            #expect(vx1?["fast_path"] == nil)
        }
        #expect(stats.value("vx1", "rx_packets") > 0 && stats.value("vx1", "tx_packets") > 0)
        #expect(stats.value("p1", "rx_decapsulated") == stats.value("vx1", "rx_packets"))
        #expect(stats.value("p1", "tx_encapsulated") == stats.value("vx1", "tx_packets"))
        // Shunt answered the kernel's ARP for 192.0.2.1, and asked for 192.0.2.2 itself.
        #expect(stats.value("p1", "rx_local") > 0 && stats.value("p1", "tx_local") > 0)
        // Only the frames before the remote VTEP's MAC was resolved may be lost (as Linux would
        // if its ARP queue were off); nothing else.
        let unresolved = stats.drop("vx1", "tx_drops", "tunnel_no_neighbour")
        #expect(unresolved <= 2 && stats.value("vx1", "tx_dropped") == unresolved, "\(stats.ports["vx1"] ?? [:])")
    }

    /// The remote VTEP's MAC goes stale after `--neigh-reachable` and is asked again by ARP
    /// while it stays in use: no ping is lost, and on XDP the kernel keeps encapsulating (a
    /// stale next hop is kept in the fast path and worker 0 asks for it; before, every frame
    /// of a stale tunnel went up to the slow path until the answer).
    @Test(arguments: ["afpacket", "xdp"])
    func staleNeighbourIsAskedAgainWhileInUse(datapath: String) throws {
        let lab = try makeLab()
        let fwd = try start(lab, datapath: datapath, flows: Self.explicitFlows, extra: ["--neigh-reachable", "0.3"])
        // 16 pings over 3 s: the neighbour goes stale between most of them.
        #expect(try ping(lab, from: "tenant", to: "10.77.0.2", count: 16), "tenant -> kernel vxlan")
        let show = try fwd.show()
        let stats = try fwd.stop()
        #expect(stats.exitStatus == 0)
        // One request at start, then one per stale period in use (at most one a second).
        #expect(stats.value("p1", "tx_local") >= 3, "ARP requests for the stale neighbour: \(stats.ports["p1"] ?? [:])")
        #expect(stats.value("vx1", "tx_dropped") <= 1, "\(stats.ports["vx1"] ?? [:])")
        if datapath == "xdp" {
            let vx1 = (show["ports"] as! [[String: Any]]).first { $0["name"] as? String == "vx1" }
            let fast = vx1?["fast_path"] as? [String: Any] ?? [:]
            #expect(jsonNumber(fast, "tx_packets") >= 12, "the kernel kept encapsulating while stale: \(fast)")
        }
    }

    /// The same tunnel from a YAML configuration file (`--config`) instead of `--vxlan`.
    @Test func tunnelFromConfigurationFile() throws {
        let lab = try makeLab()
        let path = NSTemporaryDirectory() + "shuntt-vxlan-\(getpid())-\(UUID().uuidString).yaml"
        try "tunnels:\n  - name: vx1\n    local: 192.0.2.1\n    remote: 192.0.2.2\n    dev: p1\n    vni: 4100\n    dstport: 4789\n    df: true\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fwd = try ForwarderProcess(namespace: lab.fwd, arguments: ["--port", "p0", "--port", "p1", "--config", path])
        #expect(try ping(lab, from: "tenant", to: "10.77.0.2"))
        #expect(try ping(lab, from: "peer", to: "10.77.0.1"))
        // Shunt answers pings to its VTEP address on the underlay.
        #expect(try ping(lab, from: "peer", to: "192.0.2.1"))
        let stats = try fwd.stop()
        #expect(stats.value("vx1", "tx_packets") > 0 && stats.value("vx1", "rx_packets") > 0)
    }

    /// Two remote VTEPs over one underlay port: the peer holds 192.0.2.2 (vxlan0, VNI 4100,
    /// 10.77.0.2) and 192.0.2.3 (vxlan1, VNI 4200, 10.78.0.2); Shunt has vx1 and vx2 over p1 and
    /// switches with NORMAL. Each tunnel carries its own remote's traffic, both ways, on both
    /// datapaths. (arp_ignore=1 in the peer: Linux would otherwise answer the tenant's ARP for
    /// 10.78.0.2, flooded to both tunnels, on vxlan0 as well.)
    @Test(arguments: ["afpacket", "xdp"])
    func twoRemoteVTEPsShareOneUnderlay(datapath: String) throws {
        let lab = try makeLab()
        let peer = lab.ns("peer")
        try lab.addAddress("tenant", "10.78.0.1/24")
        try lab.addAddress("peer", "192.0.2.3/24")
        try run(["ip", "netns", "exec", peer, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1"])
        try run(["ip", "-n", peer, "link", "add", "vxlan1", "type", "vxlan", "id", "4200", "dstport", "4789",
                 "remote", "192.0.2.1", "local", "192.0.2.3", "dev", lab.interface("peer")])
        try run(["ip", "-n", peer, "addr", "add", "10.78.0.2/24", "dev", "vxlan1"])
        try run(["ip", "-n", peer, "link", "set", "vxlan1", "up"])
        let fwd = try start(lab, datapath: datapath, flows: nil,
                            extra: ["--vxlan", "vx2,local=192.0.2.1,remote=192.0.2.3,dev=p1,vni=4200"])
        #expect(try ping(lab, from: "tenant", to: "10.77.0.2"), "tenant -> VTEP 192.0.2.2")
        #expect(try ping(lab, from: "tenant", to: "10.78.0.2"), "tenant -> VTEP 192.0.2.3")
        #expect(try ping(lab, from: "peer", to: "10.77.0.1"), "vxlan0 -> tenant")
        #expect(try ping(lab, from: "peer", to: "10.78.0.1"), "vxlan1 -> tenant")
        let show = try fwd.show()
        let stats = try fwd.stop()
        #expect(stats.exitStatus == 0)
        let ports = show["ports"] as! [[String: Any]]
        for (name, remote) in [("vx1", "192.0.2.2"), ("vx2", "192.0.2.3")] {
            let port = ports.first { $0["name"] as? String == name }
            #expect(port?["remote"] as? String == remote && port?["neighbour"] as? String == "reachable", "\(String(describing: port))")
            #expect(stats.value(name, "rx_packets") >= 6 && stats.value(name, "tx_packets") >= 6,
                    "\(name): \(stats.ports[name] ?? [:])")
        }
        #expect(stats.value("p1", "rx_decapsulated") == stats.value("vx1", "rx_packets") + stats.value("vx2", "rx_packets"))
        #expect(stats.value("p1", "tx_encapsulated") == stats.value("vx1", "tx_packets") + stats.value("vx2", "tx_packets"))
        #expect(stats.drop("p1", "rx_drops", "tunnel_vni") == 0 && stats.drop("p1", "rx_drops", "tunnel_remote") == 0)
    }

    /// A VNI or port that differs between the two sides: nothing is delivered, Shunt counts why.
    @Test(arguments: [("afpacket", "vni=4101", "tunnel_vni"), ("afpacket", "vni=4100,dstport=8472", "tunnel_port"),
                      ("xdp", "vni=4101", "tunnel_vni")])
    func mismatchDeliversNothingAndCountsTheReason(datapath: String, tunnel: String, reason: String) throws {
        let lab = try makeLab()
        let fwd = try start(lab, datapath: datapath, flows: nil, tunnel: tunnel)
        let before = try lab.rxPackets("tenant")
        #expect(try !ping(lab, from: "peer", to: "10.77.0.1", count: 2))
        #expect(try !ping(lab, from: "tenant", to: "10.77.0.2", count: 2))
        let stats = try fwd.stop()
        #expect(stats.exitStatus == 0)
        #expect(try lab.rxPackets("tenant") == before, "nothing reached the tenant")
        #expect(stats.drop("p1", "rx_drops", reason) > 0, "\(stats.ports["p1"] ?? [:])")
        #expect(stats.value("vx1", "rx_packets") == 0)
    }

    /// A frame too large for the underlay once encapsulated is dropped as tunnel_mtu, and the
    /// sender (DF set) is told the path MTU with ICMP fragmentation needed; smaller frames pass.
    @Test(arguments: ["afpacket", "xdp"])
    func oversizedInnerFramesDropAsTunnelMTU(datapath: String) throws {
        let lab = try makeLab()
        try run(["ip", "-n", lab.ns("tenant"), "link", "set", lab.interface("tenant"), "mtu", "1500"])
        let fwd = try start(lab, datapath: datapath, flows: Self.explicitFlows)
        #expect(try ping(lab, from: "tenant", to: "10.77.0.2"))
        // 1472 bytes of ICMP payload: a 1500-byte IP packet, 1514-byte frame, 1550 once encapsulated.
        let big = try run(["ip", "netns", "exec", lab.ns("tenant"), "ping", "-c", "2", "-i", "0.2", "-W", "1", "-M", "do",
                           "-s", "1472", "10.77.0.2"], check: false)
        #expect(big.status != 0)
        // The tenant's kernel took the MTU from Shunt's ICMP: 1500 - 50.
        let route = try run(["ip", "-n", lab.ns("tenant"), "route", "get", "10.77.0.2"]).out
        #expect(route.contains("mtu 1450"), "\(route)")
        let stats = try fwd.stop()
        #expect(stats.drop("vx1", "tx_drops", "tunnel_mtu") >= 1)
        #expect(stats.value("p0", "tx_local") >= 1, "the ICMP message")
    }
}

/// `--vxlan` mistakes: one line each, non-zero exit, nothing started.
@Suite("shunt forward refuses bad tunnel ports", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason))
struct VXLANCommandLineTests {
    @Test func badSpecs() throws {
        let lab = try Lab()
        let cases: [(String, String)] = [
            ("vx1,local=192.0.2.1,remote=192.0.2.300,dev=p1", "remote=192.0.2.300 is not an IPv4 address"),
            ("vx1,local=192.0.2.1,remote=192.0.2.2,dev=eth9", "dev=eth9 is not one of the --port interfaces"),
            ("vx1,local=192.0.2.1,remote=192.0.2.2,dev=p1,vni=16777216", "vni=16777216 must be 0...16777215"),
            ("vx1,local=192.0.2.1,remote=192.0.2.2,dev=p1,dstport=0", "dstport=0 must be 1...65535"),
            ("p0,local=192.0.2.1,remote=192.0.2.2,dev=p1", "the name is already a port"),
            ("vx1,remote=192.0.2.2,dev=p1", "local= is missing"),
            ("vx1,local=192.0.2.1,remote=192.0.2.2,dev=p1,colour=red", "unknown field 'colour'"),
        ]
        for (spec, message) in cases {
            let r = try run(["ip", "netns", "exec", lab.fwd, shuntExecutable, "forward", "--duration", "1",
                             "--port", "p0", "--port", "p1", "--vxlan", spec], check: false)
            #expect(r.status != 0, "\(spec)")
            let lines = r.err.split(separator: "\n")
            #expect(lines.count == 1 && r.err.hasPrefix("shunt forward: --vxlan: ") && r.err.contains(message), "\(spec): \(r.err)")
        }
        let twice = try run(["ip", "netns", "exec", lab.fwd, shuntExecutable, "forward", "--duration", "1", "--port", "p0",
                             "--port", "p1", "--vxlan", "vx1,local=192.0.2.1,remote=192.0.2.2,dev=p1",
                             "--vxlan", "vx1,local=192.0.2.1,remote=192.0.2.3,dev=p1"], check: false)
        #expect(twice.status != 0 && twice.err.contains("already a port or another tunnel"))
    }

    @Test func badConfigurationFiles() throws {
        let lab = try Lab()
        let path = NSTemporaryDirectory() + "shuntt-vxcfg-\(getpid())-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let cases: [(String, String)] = [
            ("tunnels: [\n", "not valid YAML"),
            ("switches: []\n", "unknown setting 'switches'"),
            ("bridges: [{name: a, ports: [{name: p0, type: patch}]}]\n", "patch port p0: peer is missing"),
            ("tunnels:\n  - local: 192.0.2.1\n", "tunnels[0]: name is missing"),
            ("tunnels:\n  - name: vx1\n    local: 192.0.2.1\n    remote: 192.0.2.2\n    dev: p1\n    vni: -1\n", "vni=-1 must be"),
            ("tunnels:\n  - name: vx1\n    local: 192.0.2.1\n    remote: 192.0.2.2\n    dev: p1\n    ttl: true\n", "ttl takes a value"),
        ]
        for (text, message) in cases {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let r = try run(["ip", "netns", "exec", lab.fwd, shuntExecutable, "forward", "--duration", "1",
                             "--port", "p0", "--port", "p1", "--config", path], check: false)
            #expect(r.status != 0, "\(text)")
            #expect(r.err.split(separator: "\n").count == 1 && r.err.hasPrefix("shunt forward: \(path): ") && r.err.contains(message),
                    "\(text): \(r.err)")
        }
        let missing = try run(["ip", "netns", "exec", lab.fwd, shuntExecutable, "forward", "--duration", "1",
                               "--port", "p0", "--port", "p1", "--config", path + ".none"], check: false)
        #expect(missing.status != 0 && missing.err.contains("cannot read configuration file"))
    }
}
