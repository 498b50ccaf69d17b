import ShuntSystem
import Testing

@testable import ShuntDoctor

/// `Diagnosis` on hand-made facts: which status each situation gets, and the fix it prints.
@Suite("shunt doctor's decisions")
struct DiagnosisTests {
    static let allCaps: UInt64 = 1 << 12 | 1 << 13 | 1 << 39

    /// A veth port p0 in namespace "fwd" whose peer gen0 sits in namespace "gen".
    static func vethPort(_ name: String = "p0", peer: String = "gen0", gro: Bool, txChecksum: Bool = false, tso: Bool = false,
                         accepts: Bool? = nil) -> PortFacts {
        var p = PortFacts(name: name)
        (p.driver, p.isVeth, p.mtu) = ("veth", true, 1500)
        p.offloads = Offloads(txChecksum: true, tso: true, gro: false, lro: false)
        let accepted = accepts ?? gro
        p.xdpFeatures = accepted ? [.basic, .redirect, .ndoXmit] : [.basic, .redirect]
        var q = PeerFacts(name: peer, namespace: "gen")
        (q.gro, q.mtu) = (gro, 1500)
        q.offloads = Offloads(txChecksum: txChecksum, tso: tso, gro: gro, lro: false)
        p.peer = q
        return p
    }

    static func facts(_ ports: [PortFacts]) -> DoctorFacts {
        var f = DoctorFacts()
        (f.namespace, f.capabilities, f.cpus, f.ports) = ("fwd", allCaps, 2, ports)
        f.bridgeNetfilter = [("bridge-nf-call-iptables", 0)]
        f.mounts = "bpf /sys/fs/bpf bpf rw 0 0\n"
        return f
    }

    func check(_ report: DoctorReport, _ name: String, _ port: String? = nil) throws -> Check {
        try #require(report.checks.first { $0.name == name && $0.port == port }, "no \(name) \(port ?? "")")
    }

    @Test func peerWithoutGROIsAProblemWithItsFix() throws {
        let report = Diagnosis.report(Self.facts([Self.vethPort(gro: false)]))
        let c = try check(report, "xdp_redirect", "p0")
        #expect(c.status == .problem)
        #expect(c.detail.contains("gen0") && c.detail.contains("GRO off") && c.detail.contains("no XDP program"))
        #expect(c.fix == "ip netns exec gen ethtool -K gen0 gro on")
        #expect(!report.isReady)
    }

    @Test func peerWithGROOrXDPIsReady() throws {
        #expect(try check(Diagnosis.report(Self.facts([Self.vethPort(gro: true)])), "xdp_redirect", "p0").status == .ok)
        var withXDP = Self.vethPort(gro: false, accepts: true)
        withXDP.peer?.hasXDP = true
        let c = try check(Diagnosis.report(Self.facts([withXDP])), "xdp_redirect", "p0")
        #expect(c.status == .ok && c.detail.contains("an XDP program attached"))
    }

    /// GRO on but the veth's bit off (GRO was set while the peer was down): switch it off and on.
    @Test func staleRedirectBitIsReappliedGRO() throws {
        let c = try check(Diagnosis.report(Self.facts([Self.vethPort(gro: true, accepts: false)])), "xdp_redirect", "p0")
        #expect(c.status == .problem)
        #expect(c.fix == "ip netns exec gen ethtool -K gen0 gro off && ip netns exec gen ethtool -K gen0 gro on")
    }

    @Test func peerDownIsBroughtUpFirst() throws {
        var p = Self.vethPort(gro: false)
        p.peer?.isUp = false
        let report = Diagnosis.report(Self.facts([p]))
        #expect(try check(report, "port", "p0").status == .problem)
        let c = try check(report, "xdp_redirect", "p0")
        #expect(c.fix == "ip netns exec gen ip link set gen0 up && ip netns exec gen ethtool -K gen0 gro on")
    }

    /// Without xdp-features (before Linux 6.3) the peer's state decides.
    @Test func oldKernelJudgesFromThePeer() throws {
        var p = Self.vethPort(gro: true)
        p.xdpFeatures = nil
        let report = Diagnosis.report(Self.facts([p]))
        let c = try check(report, "xdp_redirect", "p0")
        #expect(c.status == .ok && c.detail.contains("judged from the peer"))
        #expect(try check(report, "xdp_native", "p0").status == .warning)
    }

    /// A peer doctor could not read (no name under /run/netns, or setns refused): the veth's own
    /// NDO_XMIT bit still decides, without a fix to name; the peer's offloads are unknown.
    @Test func unreadPeer() throws {
        var p = Self.vethPort(gro: false)
        (p.peer, p.peerError) = (nil, "setns: Operation not permitted")
        var report = Diagnosis.report(Self.facts([p]))
        let c = try check(report, "xdp_redirect", "p0")
        #expect(c.status == .problem && c.fix == nil && c.detail.contains("Operation not permitted"))
        #expect(try check(report, "offloads", "p0").status == .warning)
        p.xdpFeatures = nil
        p.featuresError = "NETDEV_CMD_DEV_GET: Operation not permitted"
        report = Diagnosis.report(Self.facts([p]))
        #expect(try check(report, "xdp_redirect", "p0").status == .warning)
        #expect(try check(report, "xdp_native", "p0").detail.contains("could not read"))
    }

    /// Another program on the port: removable through netlink, or held by a process's bpf_link.
    @Test func occupiedXDPHook() throws {
        var p = Self.vethPort(gro: true)
        (p.hasXDP, p.xdpProgram) = (true, "'xdp_redirect' (id 42)")
        var c = try check(Diagnosis.report(Self.facts([p])), "xdp_native", "p0")
        #expect(c.status == .warning && c.detail.contains("'xdp_redirect' (id 42)"))
        #expect(c.fix == "ip netns exec fwd ip link set dev p0 xdp off")
        p.xdpProgramThroughLink = true
        c = try check(Diagnosis.report(Self.facts([p])), "xdp_native", "p0")
        #expect(c.fix == nil && c.detail.contains("bpf_link"))
    }

    @Test func nicWithoutNativeXDPOrRedirect() throws {
        var p = PortFacts(name: "eth1")
        (p.driver, p.offloads, p.xdpFeatures) = ("e1000e", Offloads(txChecksum: true, tso: true, gro: false, lro: false), [])
        let report = Diagnosis.report(Self.facts([p]))
        #expect(try check(report, "xdp_native", "eth1").status == .warning)
        let r = try check(report, "xdp_redirect", "eth1")
        #expect(r.status == .problem && r.detail.contains("e1000e") && r.fix == nil)
        // A NIC's own TX offloads do not matter: only receive coalescing does.
        #expect(try check(report, "offloads", "eth1").status == .ok)
    }

    @Test func senderOffloadsAreWarningsWithOneFix() throws {
        let report = Diagnosis.report(Self.facts([Self.vethPort(gro: true, txChecksum: true, tso: true)]))
        let c = try check(report, "offloads", "p0")
        #expect(c.status == .warning)
        #expect(c.detail.contains("CHECKSUM_PARTIAL") && c.detail.contains("checksum_pending") && c.detail.contains("too_large"))
        #expect(c.fix == "ip netns exec gen ethtool -K gen0 tx off tso off")
        #expect(report.isReady, "offloads slow flows down, they do not stop them")
    }

    @Test func receiveCoalescingOnThePort() throws {
        var p = Self.vethPort(gro: true)
        p.offloads = Offloads(txChecksum: true, tso: true, gro: true, lro: false)
        let c = try check(Diagnosis.report(Self.facts([p])), "offloads", "p0")
        #expect(c.status == .warning && c.fix == "ip netns exec fwd ethtool -K p0 gro off")
    }

    @Test func goodLabIsReady() throws {
        let report = Diagnosis.report(Self.facts([Self.vethPort(gro: true), Self.vethPort("p1", peer: "sink0", gro: true)]))
        #expect(report.problems == 0 && report.isReady)
        for name in ["capabilities", "bridge_netfilter", "bpffs", "vxlan_port", "cpus"] {
            #expect(try check(report, name).status == .ok, "\(name)")
        }
        #expect(try check(report, "offloads", "p1").status == .ok)
    }

    @Test func vxlanHeadroom() throws {
        var a = Self.vethPort(gro: true), b = Self.vethPort("p1", peer: "sink0", gro: true)
        var report = Diagnosis.report(Self.facts([a, b]))
        let tight = try check(report, "vxlan_mtu", "p1")
        #expect(tight.status == .warning && tight.detail.contains("1550"))
        #expect(tight.fix == "ip netns exec fwd ip link set p1 mtu 1550 && ip netns exec gen ip link set sink0 mtu 1550")
        // One port with room is the underlay; the others need none.
        b.mtu = 1550
        report = Diagnosis.report(Self.facts([a, b]))
        #expect(try check(report, "vxlan_mtu", "p1").status == .ok)
        #expect(try check(report, "vxlan_mtu", "p0").status == .ok)
        a.mtu = 9000
        report = Diagnosis.report(Self.facts([a, b]))
        #expect(try check(report, "vxlan_mtu", "p1").status == .ok)
        #expect(try check(report, "vxlan_mtu", "p0").detail.contains("room"))
        // A single port has nothing to compare with.
        #expect(Diagnosis.report(Self.facts([a])).checks.allSatisfy { $0.name != "vxlan_mtu" })
    }

    @Test func vxlanPortTrap() throws {
        var f = Self.facts([])
        let settings = VXLANSettings(vni: 42, dstport: 8472, local: "192.0.2.1", remote: "192.0.2.2", underlay: 3, ttl: nil, external: false)
        f.vxlanDevices = [VXLANDeviceFacts(name: "vx0", settings: settings, underlay: "p1", master: "br0")]
        let c = try check(Diagnosis.report(f), "vxlan_port", "vx0")
        #expect(c.status == .warning && c.detail.contains("8472") && c.detail.contains("dstport=8472"))
        #expect(c.fix == "ip netns exec fwd ip link del vx0 && ip netns exec fwd ip link add vx0 type vxlan id 42 local 192.0.2.1 remote 192.0.2.2 dev p1 dstport 4789 && ip netns exec fwd ip link set vx0 master br0 up")
        let group = VXLANSettings(vni: 7, dstport: 4789, local: nil, remote: "239.1.1.1", underlay: nil, ttl: 5, external: false)
        f.vxlanDevices = [VXLANDeviceFacts(name: "vx1", settings: group)]
        #expect(try check(Diagnosis.report(f), "vxlan_port", "vx1").status == .ok)
        #expect(Diagnosis.recreate(f.vxlanDevices[0], nil).contains("id 7 group 239.1.1.1 ttl 5 dstport 4789"))
    }

    @Test func bridgeNetfilter() throws {
        var f = Self.facts([])
        f.bridgeNetfilter = [("bridge-nf-call-iptables", 1), ("bridge-nf-call-ip6tables", 0), ("bridge-nf-call-arptables", 1)]
        let c = try check(Diagnosis.report(f), "bridge_netfilter")
        #expect(c.status == .warning)
        #expect(c.fix == "ip netns exec fwd sysctl -w net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-arptables=0")
        f.bridgeNetfilter = nil
        #expect(try check(Diagnosis.report(f), "bridge_netfilter").detail.contains("not loaded"))
    }

    @Test func capabilities() throws {
        var f = Self.facts([])
        (f.userID, f.capabilities, f.commandLine) = (1000, 0, ["/usr/bin/shunt", "doctor", "--port", "my port"])
        let c = try check(Diagnosis.report(f), "capabilities")
        #expect(c.status == .problem && c.detail.contains("CAP_NET_RAW") && c.detail.contains("CAP_BPF"))
        #expect(c.fix == "sudo /usr/bin/shunt doctor --port 'my port'")
        (f.userID, f.capabilities) = (0, 1 << 12 | 1 << 13 | 1 << 21)  // CAP_SYS_ADMIN stands in for CAP_BPF
        #expect(try check(Diagnosis.report(f), "capabilities").status == .ok)
        f.capabilities = 1 << 13
        let root = try check(Diagnosis.report(f), "capabilities")
        #expect(root.status == .problem && root.fix == nil && root.detail.contains("bounding set"))
    }

    @Test func enginesAndCPUs() throws {
        var f = Self.facts([])
        f.engines = EngineFacts(port: "lo", liveFramesRefusal: "EPERM", afxdp: "copy mode, 1 TX queue", afxdpError: nil, auto: "afxdp")
        f.workers = 4
        let report = Diagnosis.report(f)
        let live = try check(report, "xdp_live_frames", "lo")
        #expect(live.status == .warning && live.detail.contains("EPERM") && live.detail.contains("uses the afxdp engine"))
        #expect(try check(report, "af_xdp", "lo").status == .ok)
        let cpus = try check(report, "cpus")
        #expect(cpus.status == .warning && cpus.fix == "shunt forward --workers 2")
        f.workers = 2
        #expect(try check(Diagnosis.report(f), "cpus").status == .ok)
    }

    @Test func textAndJSON() {
        let report = DoctorReport(checks: [
            Check("bpffs", .ok, "bpffs is mounted at /sys/fs/bpf"),
            Check("xdp_redirect", port: "p0", .problem, "dropped \"silently\"", fix: "ethtool -K gen0 gro on"),
        ])
        #expect(report.text == """
            ok       bpffs: bpffs is mounted at /sys/fs/bpf
            problem  xdp_redirect p0: dropped "silently"
                     ethtool -K gen0 gro on
            not ready (1 problem, 0 warnings)

            """)
        #expect(report.json == #"{"checks":[{"detail":"bpffs is mounted at /sys/fs/bpf","fix":null,"name":"bpffs","port":null,"status":"ok"},{"detail":"dropped \"silently\"","fix":"ethtool -K gen0 gro on","name":"xdp_redirect","port":"p0","status":"problem"}],"problems":1,"ready":false,"warnings":0}"#)
    }
}

@Suite("shunt doctor's mount table")
struct MountTableTests {
    @Test func bpffsAtItsPlace() {
        let host = "sysfs /sys sysfs rw 0 0\nbpf /sys/fs/bpf bpf rw,relatime,mode=700 0 0\n"
        #expect(MountTable(host).filesystem(at: "/sys/fs/bpf") == "bpf")
        #expect(MountTable("sysfs /sys sysfs rw 0 0\n").filesystem(at: "/sys/fs/bpf") == nil)
    }

    /// `ip netns exec` mounts a fresh /sys over the old one: the bpffs below it is hidden.
    @Test func laterParentMountHidesIt() {
        let netnsExec = "sysfs /sys sysfs rw 0 0\nbpf /sys/fs/bpf bpf rw 0 0\nsysfs /sys sysfs rw 0 0\n"
        #expect(MountTable(netnsExec).filesystem(at: "/sys/fs/bpf") == nil)
        let remounted = netnsExec + "none /sys/fs/bpf bpf rw 0 0\n"
        #expect(MountTable(remounted).filesystem(at: "/sys/fs/bpf") == "bpf")
        #expect(MountTable("rootfs / rootfs rw 0 0\n/dev/sda1 / ext4 rw 0 0\n").filesystem(at: "/") == "ext4")
    }

    @Test func octalEscapes() {
        #expect(MountTable("tmpfs /mnt/a\\040b tmpfs rw 0 0\n").filesystem(at: "/mnt/a b") == "tmpfs")
    }

    @Test func shellQuoting() {
        #expect(Shell.quote("p0") == "p0")
        #expect(Shell.quote("it's") == #"'it'\''s'"#)
        #expect(Shell.run("ethtool -K a gro on", in: "ns 1") == "ip netns exec 'ns 1' ethtool -K a gro on")
    }
}
