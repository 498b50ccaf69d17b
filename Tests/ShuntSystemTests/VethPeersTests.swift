import Foundation
import Glibc
import ShuntSystem
import ShuntTestSupport
import Testing

/// Root with CAP_NET_ADMIN (namespaces, veths, ethtool) and CAP_SYS_ADMIN (setns), and the tools.
let canRunPeerTests: Bool = {
    let caps = Capabilities.current()
    let tools = ["ip", "ethtool"].allSatisfy { tool in
        ["/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"].contains { FileManager.default.isExecutableFile(atPath: $0 + tool) }
    }
    return getuid() == 0 && caps.has(Capabilities.netAdmin) && caps.has(Capabilities.sysAdmin) && tools
}()
let peerSkipReason: Comment = "veth peer tests need root with CAP_NET_ADMIN and CAP_SYS_ADMIN, iproute2 and ethtool"

/// Runs a command and returns its standard output; a non-zero exit throws `CommandFailed`.
@discardableResult
func sh(_ arguments: String...) throws -> String {
    try run(arguments).out
}

/// Namespaces `shuntpeerwt-<pid>-a` and `-b` (prefix: $SHUNT_TEST_NETNS_PREFIX if set). Call `remove()` in a `defer` right after creating.
struct PeerLab {
    let a: String
    let b: String
    /// A third name, for a namespace made and unnamed by a test; `remove()` deletes it too.
    let c: String

    init() throws {
        // $SHUNT_TEST_NETNS_PREFIX, as in the integration tests' Lab, else our own.
        let prefix = (testNamespacePrefix ?? "shuntpeerwt-") + "\(getpid())-"
        a = prefix + "a"
        b = prefix + "b"
        c = prefix + "c"
        remove()  // left over by an earlier process with our pid that was killed
        do {
            for ns in [a, b] {
                try sh("ip", "netns", "add", ns)
                try sh("ip", "-n", ns, "link", "set", "lo", "up")
            }
        } catch {
            remove()
            throw error
        }
    }

    func remove() {
        for ns in [a, b, c] { _ = try? sh("ip", "netns", "del", ns) }
    }

    /// The ifindex of `interface` in namespace `ns`, as `ip` reports it.
    func ifindex(_ interface: String, in ns: String) throws -> Int32 {
        let line = try sh("ip", "-n", ns, "-o", "link", "show", "dev", interface)
        return try #require(Int32(line.prefix(while: { $0 != ":" })))
    }

    func setGRO(_ interface: String, in ns: String, on: Bool) throws {
        try sh("ip", "netns", "exec", ns, "ethtool", "-K", interface, "gro", on ? "on" : "off")
    }

    /// GRO as `ethtool -k` reports it.
    func groIsOn(_ interface: String, in ns: String) throws -> Bool {
        try sh("ip", "netns", "exec", ns, "ethtool", "-k", interface).contains("generic-receive-offload: on")
    }
}

@Suite("Veth peers and XDP redirect readiness", .serialized, .enabled(if: canRunPeerTests, peerSkipReason))
struct VethPeersTests {
    /// va in namespace a, vb in namespace b. With `sameIndex` both get the same ifindex (which
    /// older kernels express by leaving IFLA_LINK out); otherwise 7 and 9.
    @Test(arguments: [true, false])
    func peerInAnotherNamespaceIsFoundAndGROMakesItARedirectTarget(sameIndex: Bool) throws {
        let lab = try PeerLab()
        defer { lab.remove() }
        if sameIndex {
            try sh("ip", "-n", lab.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", lab.b)
        } else {
            try sh("ip", "-n", lab.a, "link", "add", "va", "index", "7", "type", "veth",
                   "peer", "name", "vb", "index", "9", "netns", lab.b)
        }
        try sh("ip", "-n", lab.a, "link", "set", "va", "up")
        try sh("ip", "-n", lab.b, "link", "set", "vb", "up")
        try lab.setGRO("vb", in: lab.b, on: false)
        let vbIndex = try lab.ifindex("vb", in: lab.b)
        #expect((vbIndex == (try lab.ifindex("va", in: lab.a))) == sameIndex)

        let before = try NetworkNamespace.run(in: lab.a) { try XDPPeers.readiness(of: "va") }
        #expect(before.interface == "va")
        #expect(before.isVeth)
        #expect(before.acceptsRedirect == false, "no GRO and no XDP on vb: redirects into va would vanish")
        #expect(before.xdpFeatures?.contains([.basic, .redirect]) == true)
        let peer = try #require(before.peer)
        #expect(peer == VethPeer(name: "vb", ifindex: vbIndex, namespace: lab.b, groEnabled: false, hasXDP: false, isUp: true))

        try NetworkNamespace.run(in: lab.a) { try XDPPeers.enableGRO(on: peer) }
        #expect(try lab.groIsOn("vb", in: lab.b))

        let after = try NetworkNamespace.run(in: lab.a) { try XDPPeers.readiness(of: "va") }
        #expect(after.peer?.groEnabled == true)
        #expect(after.acceptsRedirect == true)
        #expect(after.xdpFeatures?.contains(.ndoXmit) == true)

        // The other direction: va's GRO is still off, so vb does not accept redirects.
        try lab.setGRO("va", in: lab.a, on: false)
        let reverse = try NetworkNamespace.run(in: lab.b) { try XDPPeers.readiness(of: "vb") }
        #expect(reverse.peer?.name == "va")
        #expect(reverse.peer?.namespace == lab.a)
        #expect(reverse.peer?.groEnabled == false)
        #expect(reverse.acceptsRedirect == false)
    }

    @Test func peerInTheSameNamespaceHasNoNamespaceName() throws {
        let lab = try PeerLab()
        defer { lab.remove() }
        try sh("ip", "-n", lab.a, "link", "add", "v1", "type", "veth", "peer", "name", "v2")
        try sh("ip", "-n", lab.a, "link", "set", "v1", "up")
        try sh("ip", "-n", lab.a, "link", "set", "v2", "up")
        try lab.setGRO("v2", in: lab.a, on: false)
        let v2Index = try lab.ifindex("v2", in: lab.a)

        let before = try NetworkNamespace.run(in: lab.a) { try XDPPeers.readiness(of: "v1") }
        #expect(before.isVeth)
        #expect(before.peer == VethPeer(name: "v2", ifindex: v2Index, namespace: nil, groEnabled: false, hasXDP: false, isUp: true))
        #expect(before.acceptsRedirect == false)

        let peer = try #require(before.peer)
        try NetworkNamespace.run(in: lab.a) { try XDPPeers.enableGRO(on: peer) }
        let after = try NetworkNamespace.run(in: lab.a) { try XDPPeers.readiness(of: "v1") }
        #expect(after.peer?.groEnabled == true)
        #expect(after.acceptsRedirect == true)
        #expect(try lab.groIsOn("v2", in: lab.a))
    }

    /// GRO switched on while the peer was down: the driver may leave the veth's NDO_XMIT bit off
    /// after the peer comes up (Linux 6.18 does). `enableGRO` re-applies it and the bit follows.
    @Test func groAlreadyOnFromWhileThePeerWasDownIsReapplied() throws {
        let lab = try PeerLab()
        defer { lab.remove() }
        try sh("ip", "-n", lab.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", lab.b)
        try sh("ip", "-n", lab.a, "link", "set", "va", "up")
        try lab.setGRO("vb", in: lab.b, on: true)
        try sh("ip", "-n", lab.b, "link", "set", "vb", "up")

        let before = try NetworkNamespace.run(in: lab.a) { try XDPPeers.readiness(of: "va") }
        let peer = try #require(before.peer)
        #expect(peer.groEnabled && peer.isUp)
        print("GRO on before the peer came up: the kernel advertises NDO_XMIT: \(String(describing: before.acceptsRedirect))")

        try NetworkNamespace.run(in: lab.a) { try XDPPeers.enableGRO(on: peer) }
        let after = try NetworkNamespace.run(in: lab.a) { try XDPPeers.readiness(of: "va") }
        #expect(after.peer?.groEnabled == true)
        #expect(after.acceptsRedirect == true)
    }

    @Test func downPeerIsReportedDown() throws {
        let lab = try PeerLab()
        defer { lab.remove() }
        try sh("ip", "-n", lab.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", lab.b)
        let readiness = try NetworkNamespace.run(in: lab.a) { try XDPPeers.readiness(of: "va") }
        #expect(readiness.peer?.isUp == false)
        #expect(readiness.acceptsRedirect == false)
    }

    @Test func loopbackIsNoVethAndHasNoPeer() throws {
        let lab = try PeerLab()
        defer { lab.remove() }
        let lo = try NetworkNamespace.run(in: lab.a) { try XDPPeers.readiness(of: "lo") }
        #expect(lo.interface == "lo")
        #expect(lo.ifindex == 1)
        #expect(!lo.isVeth)
        #expect(lo.peer == nil)
        #expect(lo.acceptsRedirect != true, "loopback has no ndo_xdp_xmit")
    }

    @Test func unknownInterfaceIsAClearError() throws {
        let lab = try PeerLab()
        defer { lab.remove() }
        let error = #expect(throws: SystemError.self) {
            try NetworkNamespace.run(in: lab.a) { try XDPPeers.readiness(of: "nosuchveth0") }
        }
        #expect(error?.errno == ENODEV)
        #expect(error?.description.contains("\"nosuchveth0\"") == true, "\(String(describing: error))")
    }

    /// The peer's namespace is alive (a process holds it) but has no name under /run/netns.
    @Test func peerInAnUnnamedNamespaceIsNotDescribed() throws {
        let lab = try PeerLab()
        defer { lab.remove() }
        try sh("ip", "netns", "add", lab.c)
        let holder = try SpawnedProcess(["ip", "netns", "exec", lab.c, "sleep", "60"])
        defer {
            holder.signal(SIGKILL)
            holder.wait()
        }
        try sh("ip", "-n", lab.a, "link", "add", "vx", "type", "veth", "peer", "name", "vy", "netns", lab.c)
        // Let the holder enter the namespace before its name goes.
        var entered = false
        for _ in 0..<200 where !entered {
            entered = (try? sh("ip", "netns", "pids", lab.c))?.contains("\(holder.pid)") == true
            if !entered { usleep(10_000) }
        }
        #expect(entered)
        try sh("ip", "netns", "del", lab.c)

        let readiness = try NetworkNamespace.run(in: lab.a) { try XDPPeers.readiness(of: "vx") }
        #expect(readiness.isVeth)
        #expect(readiness.peer == nil)
    }
}
