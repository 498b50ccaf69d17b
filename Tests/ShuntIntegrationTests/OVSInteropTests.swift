import Foundation
import Glibc
import ShuntTestSupport
import Testing

/// Whether Open vSwitch (Debian: openvswitch-switch) is installed.
let ovsInstalled: Bool = ["/usr/sbin/ovs-vswitchd", "/usr/bin/ovs-vswitchd", "/usr/local/sbin/ovs-vswitchd"]
    .contains { FileManager.default.isExecutableFile(atPath: $0) }
    && FileManager.default.fileExists(atPath: "/usr/share/openvswitch/vswitch.ovsschema")

/// ovsdb-server and ovs-vswitchd of this test only: started in `namespace` with their database,
/// sockets, pid and log files in a temporary directory; stopped by their PIDs and the directory
/// removed on deinit.
final class PrivateOVS {
    let namespace: String
    let dir: String

    init(namespace: String) throws {
        self.namespace = namespace
        dir = NSTemporaryDirectory() + "shuntt-ovs-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        do {
            try run(["ovsdb-tool", "create", "\(dir)/conf.db", "/usr/share/openvswitch/vswitch.ovsschema"])
            try run(inNamespace(["ovsdb-server", "\(dir)/conf.db", "--remote=punix:\(dir)/db.sock", "--pidfile=\(dir)/ovsdb.pid",
                                 "--unixctl=\(dir)/ovsdb.ctl", "--log-file=\(dir)/ovsdb.log", "--detach"]))
            try vsctl(["--no-wait", "init"])
            try run(inNamespace(["ovs-vswitchd", "unix:\(dir)/db.sock", "--pidfile=\(dir)/vswitchd.pid",
                                 "--unixctl=\(dir)/vswitchd.ctl", "--log-file=\(dir)/vswitchd.log", "--detach"]))
        } catch {
            stop()
            throw error
        }
    }

    deinit { stop() }

    /// OVS_RUNDIR and friends keep the bridges' management sockets in `dir` too.
    private func inNamespace(_ args: [String]) -> [String] {
        ["ip", "netns", "exec", namespace, "env", "OVS_RUNDIR=\(dir)", "OVS_LOGDIR=\(dir)", "OVS_DBDIR=\(dir)",
         "OVS_SYSCONFDIR=\(dir)"] + args
    }

    func vsctl(_ args: [String]) throws {
        try run(["ovs-vsctl", "--db=unix:\(dir)/db.sock", "--timeout=20"] + args)
    }

    @discardableResult
    func appctl(_ args: [String], check: Bool = true) throws -> String {
        try run(inNamespace(["ovs-appctl", "-t", "\(dir)/vswitchd.ctl"] + args), check: check).out
    }

    private func stop() {
        for name in ["vswitchd", "ovsdb"] {
            guard let text = try? String(contentsOfFile: "\(dir)/\(name).pid", encoding: .utf8),
                  let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { continue }
            kill(pid, SIGTERM)
            for _ in 0..<50 where kill(pid, 0) == 0 { usleep(20_000) }
        }
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// A Shunt tunnel port against Open vSwitch's userspace datapath (`datapath_type=netdev`) with a
/// `type=vxlan` port, OVS's native tunnelling: the underlay address is on br-phy (which holds
/// the veth to Shunt), the tunnel and the tenant address on br-int.
///
///     [tenant] 10.77.0.1 <-> p0 [fwd: shunt, vx1 over p1 = 192.0.2.1] p1 <-> ovs0
///         [ovs: br-phy 192.0.2.2 (ovs0) ; br-int 10.77.0.2 (vxlan0, key 4100)]
@Suite("VXLAN tunnel ports against Open vSwitch", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason),
       .enabled(if: ovsInstalled, "Open vSwitch is not installed: install openvswitch-switch (Scripts/install-deps.sh) to run the OVS interop tests"))
struct OVSInteropTests {
    let vxlan = VXLANInteropTests()

    func makeLab() throws -> (Lab, PrivateOVS) {
        let lab = try Lab(["tenant", "ovs"])
        try lab.addAddress("tenant", "10.77.0.1/24")
        try run(["ip", "-n", lab.ns("tenant"), "link", "set", lab.interface("tenant"), "mtu", "1450"])
        let ns = lab.ns("ovs")
        let ovs = try PrivateOVS(namespace: ns)
        try ovs.vsctl(["add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev"])
        try ovs.vsctl(["add-port", "br-phy", lab.interface("ovs")])
        try run(["ip", "-n", ns, "addr", "add", "192.0.2.2/24", "dev", "br-phy"])
        try run(["ip", "-n", ns, "link", "set", "br-phy", "up"])
        try ovs.vsctl(["add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev"])
        try ovs.vsctl(["add-port", "br-int", "vxlan0", "--", "set", "interface", "vxlan0", "type=vxlan",
                       "options:remote_ip=192.0.2.1", "options:local_ip=192.0.2.2", "options:key=4100",
                       "options:dst_port=4789"])
        try run(["ip", "-n", ns, "addr", "add", "10.77.0.2/24", "dev", "br-int"])
        try run(["ip", "-n", ns, "link", "set", "br-int", "mtu", "1450", "up"])
        // OVS routes tunnel traffic with its own table (learned from the kernel's, added here in
        // case it has not caught up) and its own neighbour cache: give it Shunt's MAC.
        try ovs.appctl(["ovs/route/add", "192.0.2.0/24", "br-phy"], check: false)
        let p1 = try run(["ip", "-n", lab.fwd, "-j", "link", "show", "p1"]).out
        let json = try JSONSerialization.jsonObject(with: Data(p1.utf8)) as! [[String: Any]]
        let mac = try #require(json.first?["address"] as? String)
        try ovs.appctl(["tnl/neigh/set", "br-phy", "192.0.2.1", mac])
        return (lab, ovs)
    }

    func start(_ lab: Lab, datapath: String, vni: Int = 4100) throws -> ForwarderProcess {
        var args = ["--port", "p0", "--port", "p1", "--vxlan", "vx1,local=192.0.2.1,remote=192.0.2.2,dev=p1,vni=\(vni)",
                    "--datapath", datapath]
        if datapath == "xdp" { args.append("--fix-peers") }
        return try ForwarderProcess(namespace: lab.fwd, arguments: args)
    }

    /// Ping and UDP both ways between the tenant behind Shunt and br-int's address behind OVS.
    @Test(arguments: ["afpacket", "xdp"])
    func pingAndUDPBothWays(datapath: String) throws {
        let (lab, ovs) = try makeLab()
        let fwd = try start(lab, datapath: datapath)
        #expect(try vxlan.ping(lab, from: "tenant", to: "10.77.0.2"), "tenant -> OVS")
        #expect(try vxlan.ping(lab, from: "ovs", to: "10.77.0.1"), "OVS -> tenant")
        #expect(try vxlan.udp(lab, from: ("tenant", "10.77.0.1"), to: ("ovs", "10.77.0.2")) == 12)
        #expect(try vxlan.udp(lab, from: ("ovs", "10.77.0.2"), to: ("tenant", "10.77.0.1")) == 12)
        let show = try fwd.show()
        let stats = try fwd.stop()
        #expect(stats.exitStatus == 0)
        let vx1 = (show["ports"] as! [[String: Any]]).first { $0["name"] as? String == "vx1" }
        #expect(vx1?["neighbour"] as? String == "reachable", "\(String(describing: vx1))")
        if datapath == "xdp" {
            let fast = vx1?["fast_path"] as? [String: Any] ?? [:]
            #expect(jsonNumber(fast, "rx_packets") > 0 && jsonNumber(fast, "tx_packets") > 0, "\(fast)")
        }
        #expect(stats.value("p1", "rx_decapsulated") == stats.value("vx1", "rx_packets"))
        #expect(stats.value("p1", "tx_encapsulated") == stats.value("vx1", "tx_packets"))
        let unresolved = stats.drop("vx1", "tx_drops", "tunnel_no_neighbour")
        #expect(unresolved <= 2 && stats.value("vx1", "tx_dropped") == unresolved, "\(stats.ports["vx1"] ?? [:])")
        withExtendedLifetime(ovs) {}
    }

    /// OVS sends VNI 4100, Shunt expects 4101: nothing is delivered, and Shunt counts why.
    @Test(arguments: ["afpacket", "xdp"])
    func wrongVNIDeliversNothing(datapath: String) throws {
        let (lab, ovs) = try makeLab()
        let fwd = try start(lab, datapath: datapath, vni: 4101)
        let before = try lab.rxPackets("tenant")
        #expect(try !vxlan.ping(lab, from: "ovs", to: "10.77.0.1", count: 2))
        #expect(try !vxlan.ping(lab, from: "tenant", to: "10.77.0.2", count: 2))
        let stats = try fwd.stop()
        #expect(stats.exitStatus == 0)
        #expect(try lab.rxPackets("tenant") == before, "nothing reached the tenant")
        #expect(stats.drop("p1", "rx_drops", "tunnel_vni") > 0, "\(stats.ports["p1"] ?? [:])")
        #expect(stats.value("vx1", "rx_packets") == 0)
        withExtendedLifetime(ovs) {}
    }
}
