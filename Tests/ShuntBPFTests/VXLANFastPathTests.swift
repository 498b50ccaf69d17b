import CShunt
import Glibc
@testable import ShuntBPF
import ShuntCore
import ShuntSystem
import ShuntTestSupport
import Testing

/// VXLAN in xdp_flowcache through BPF_PROG_TEST_RUN: frames "arrive" on lo, which is Shunt
/// port 7, the underlay of tunnel port 9 (local 192.0.2.1, remote 192.0.2.2). The fast path's
/// outer headers must be the bytes ShuntCore's VXLAN.writeOuterHeader writes for the same
/// packet (the slow path's encapsulation), and its decapsulation must hand on exactly the inner
/// frame, or pass the original frame up.
@Suite(.enabled(if: canLoadBPF, "loading BPF programs needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN: run the tests as root"))
struct VXLANFastPathTests {
    static let underlay: UInt32 = 7
    static let tunnelPort: UInt32 = 9
    static let local = IPv4Address("192.0.2.1")!
    static let remote = IPv4Address("192.0.2.2")!
    static let underlayMAC = MACAddress(value: 0x02_00_00_00_01_01)
    static let nextHop = MACAddress(value: 0x02_00_00_00_02_02)
    let cache: FlowCacheProgram

    init() throws {
        cache = try FlowCacheProgram(maxEntries: 1024)
        try cache.setPort(number: Self.underlay, ifindex: try #require(Sys.interfaceIndex("lo")))
    }

    /// Tunnel port 9 over port 7.
    func tunnel(vni: UInt32? = 4100, configure: (inout TunnelPort) -> Void = { _ in }) -> TunnelPort {
        var t = TunnelPort(name: "vx1", port: Self.tunnelPort, underlayPort: Self.underlay, local: Self.local,
                           remote: Self.remote, vni: vni)
        configure(&t)
        return t
    }

    /// Writes `t` into the fast path's tables, with the next hop unless `resolved` is false.
    func add(_ t: TunnelPort, resolved: Bool = true, mtu: UInt32 = 1500) throws {
        var e = t.abi(sourceMAC: Self.underlayMAC)
        e.underlay_mtu = mtu
        if resolved {
            withUnsafeMutableBytes(of: &e.dst_mac) { b in
                for j in 0..<6 { b[j] = UInt8(truncatingIfNeeded: Self.nextHop.value >> UInt64(40 - 8 * j)) }
            }
            e.flags |= UInt8(SHUNT_TUNNEL_NEXT_HOP)
        }
        try cache.addTunnel(e)
    }

    func key(_ frame: [UInt8], inPort: UInt32 = VXLANFastPathTests.underlay, tunID: UInt64 = 0) -> FlowKey {
        var key = FlowKey()
        let ok = frame.withUnsafeBytes {
            FlowKeyExtractor.extract(frame: $0.baseAddress!, length: $0.count, inPort: inPort, strippedVLANTCI: nil, into: &key)
        }
        #expect(ok, "the extractor calls a test frame malformed")
        key.tunID = tunID
        return key
    }

    /// What the slow path sends for `inner` (already edited) out of `t`, for a packet whose key
    /// is `key`: the worker's source-port hash and header, with the IP identification given.
    func swiftEncapsulation(_ inner: [UInt8], tunnel t: TunnelPort, key: FlowKey, tunID: UInt64,
                            identification: UInt16) -> [UInt8] {
        let hash = key.hash64
        let h = VXLANOuterHeader(
            sourceMAC: Self.underlayMAC, destinationMAC: Self.nextHop, source: t.local, destination: t.remote,
            sourcePort: VXLAN.sourcePort(hash: UInt32(truncatingIfNeeded: hash ^ hash >> 32), min: t.sourcePortMin,
                                         max: t.sourcePortMax),
            destinationPort: t.destinationPort, vni: t.vni(forTunnelID: tunID), ttl: t.ttl, dontFragment: t.dontFragment,
            udpChecksum: t.udpChecksum, identification: identification)
        var out = [UInt8](repeating: 0, count: inner.count + VXLAN.overhead)
        let n = inner.withUnsafeBytes { src in out.withUnsafeMutableBytes { VXLAN.encapsulate(src, header: h, into: $0) } }
        return Array(out[0..<n])
    }

    func ports(_ s: shunt_fastpath_stats, _ port: UInt32) -> shunt_port_counters {
        withUnsafeBytes(of: s.ports) {
            $0.loadUnaligned(fromByteOffset: Int(port) * MemoryLayout<shunt_port_counters>.stride, as: shunt_port_counters.self)
        }
    }

    static let innerFrames: [[UInt8]] = [
        TestFrame.udp4(),
        TestFrame.tcp4(),
        TestFrame.udp6(),
        TestFrame.udp4(tci: 0x2005),
        TestFrame.ethernet(type: 0x0800, payload: TestFrame.ipv4(proto: 17, payload: TestFrame.udp(5000, 6000, payload: Array(repeating: 0xAB, count: 1400)))),
        TestFrame.ethernet(type: 0x0806, payload: TestFrame.arp(op: 1)),
    ]

    // MARK: Encapsulation

    /// Every inner frame under every tunnel configuration: the XDP output is the slow path's.
    @Test(arguments: [
        ("fixed VNI", false, false, UInt8(64), UInt16(32768), UInt16(61000)),
        ("vni=flow with set_tunnel", true, false, 64, 32768, 61000),
        ("DF and TTL 32", false, true, 32, 32768, 61000),
        ("vni=flow, DF, TTL 1, whole source-port range", true, true, 1, 1, 65535),
        ("narrow source-port range", false, false, 255, 49152, 49160),
        ("udpcsum", false, false, 64, 32768, 61000),
        ("udpcsum, vni=flow, DF", true, true, 64, 32768, 61000),
    ])
    func encapsulationIsByteIdenticalToTheSlowPath(name: String, flowVNI: Bool, df: Bool, ttl: UInt8, min: UInt16,
                                                   max: UInt16) throws {
        let t = tunnel(vni: flowVNI ? nil : 4100) {
            $0.udpChecksum = name.hasPrefix("udpcsum")
            $0.dontFragment = df
            $0.ttl = ttl
            $0.sourcePortMin = min
            $0.sourcePortMax = max
        }
        try add(t)
        for (i, inner) in Self.innerFrames.enumerated() {
            let k = key(inner)
            let tunID: UInt64 = flowVNI ? 0x00AB_CD00 + UInt64(i) : 0
            let actions: [DatapathAction] = flowVNI ? [.setTunnel(tunID), .output(Self.tunnelPort)] : [.output(Self.tunnelPort)]
            let entry = FlowCacheProgram.entry(actions: actions, tunnelPorts: 1 << UInt64(Self.tunnelPort))
            #expect(entry.flags == 0, "the kernel executes outputs to tunnel ports it encapsulates for")
            try cache.install(key: k, entry: entry)
            let r = try ProgramTestRun.xdp(programFD: cache.programFD, packet: inner)
            #expect(r.returnValue == XDP.redirect, "\(name), frame \(i)")
            guard r.output.count == inner.count + VXLAN.overhead else {
                Issue.record("\(name), frame \(i): \(r.output.count) bytes out for \(inner.count) in")
                continue
            }
            let id = UInt16(r.output[18]) << 8 | UInt16(r.output[19])
            if df { #expect(id == 0, "with DF the IP identification is 0 on both paths") }
            let expected = swiftEncapsulation(inner, tunnel: t, key: k, tunID: tunID, identification: id)
            #expect(r.output == expected, "\(name), frame \(i)")
            #expect(r.output.ipv4ChecksumIsValid(at: 14))
        }
        let s = try cache.stats()
        #expect(s.hits == UInt64(Self.innerFrames.count))
        #expect(ports(s, Self.tunnelPort).tx_packets == UInt64(Self.innerFrames.count))
        #expect(ports(s, Self.tunnelPort).tx_bytes == Self.innerFrames.reduce(0) { $0 + UInt64($1.count) })
        #expect(ports(s, Self.underlay).tx_encapsulated == UInt64(Self.innerFrames.count))
    }

    /// Edits before the output are applied to the inner frame, then it is encapsulated.
    @Test func editsApplyToTheInnerFrame() throws {
        let t = tunnel()
        try add(t)
        let inner = TestFrame.udp4()
        let mac = MACAddress(value: 0x0A_11_22_33_44_55)
        try cache.install(key: key(inner), entry: FlowCacheProgram.entry(
            actions: [.setEthDst(mac), .decTTL, .setVLAN(12), .output(Self.tunnelPort)], tunnelPorts: 1 << 9))
        let r = try ProgramTestRun.xdp(programFD: cache.programFD, packet: inner)
        #expect(r.returnValue == XDP.redirect)
        // The same edits in the slow path's writer.
        var edits = FrameEdits()
        edits.ethDst = mac
        edits.ttlDecrements = 1
        edits.vlan = .set(12)
        var received = inner
        var edited = [UInt8](repeating: 0, count: inner.count + 4)
        let n = received.withUnsafeMutableBytes { src in
            edited.withUnsafeMutableBytes { dst in
                FrameRewrite.write(PacketDescriptor(data: src.baseAddress!, capturedLength: UInt32(src.count),
                                                    wireLength: UInt32(src.count), inPort: 0),
                                   edits: edits, to: dst.baseAddress!, capacity: dst.count)
            }
        }
        let id = r.output.count > 19 ? UInt16(r.output[18]) << 8 | UInt16(r.output[19]) : 0
        #expect(r.output == swiftEncapsulation(Array(edited[0..<n]), tunnel: t, key: key(inner), tunID: 0, identification: id))
    }

    @Test func withoutANextHopTheSlowPathEncapsulates() throws {
        let inner = TestFrame.udp4()
        try add(tunnel(), resolved: false)
        try cache.install(key: key(inner), entry: FlowCacheProgram.entry(actions: [.output(Self.tunnelPort)], tunnelPorts: 1 << 9))
        let r = try ProgramTestRun.xdp(programFD: cache.programFD, packet: inner)
        #expect(r.returnValue == XDP.pass && r.output == inner)
        let s = try cache.stats()
        #expect(s.userspace == 1 && s.hits == 0 && s.misses == 0)
        // The slow path does not offer such tunnels to the kernel in the first place.
        #expect(!FlowCacheProgram.kernelCanExecute([.output(9)], portLimit: 8, tunnelPorts: 0))
        #expect(FlowCacheProgram.kernelCanExecute([.setTunnel(5), .output(9)], portLimit: 8, tunnelPorts: 1 << 9))
    }

    /// Too large as received: up to the slow path (it counts tunnel_mtu and answers with ICMP).
    /// Too large only after a VLAN push: dropped here as tunnel_mtu.
    @Test func framesTooLargeForTheUnderlay() throws {
        let inner = Self.innerFrames[4]  // 1442 bytes: a 1478-byte outer packet
        try add(tunnel(), mtu: 1477)
        try cache.install(key: key(inner), entry: FlowCacheProgram.entry(actions: [.output(Self.tunnelPort)], tunnelPorts: 1 << 9))
        var r = try ProgramTestRun.xdp(programFD: cache.programFD, packet: inner)
        #expect(r.returnValue == XDP.pass && r.output == inner)
        try add(tunnel(), mtu: 1478)
        #expect(try ProgramTestRun.xdp(programFD: cache.programFD, packet: inner).returnValue == XDP.redirect)
        try cache.install(key: key(inner), entry: FlowCacheProgram.entry(actions: [.setVLAN(5), .output(Self.tunnelPort)],
                                                                          tunnelPorts: 1 << 9))
        r = try ProgramTestRun.xdp(programFD: cache.programFD, packet: inner)
        #expect(r.returnValue == XDP.drop)
        let s = try cache.stats()
        #expect(s.userspace == 1 && s.dropCount(.tunnelMTU) == 1)
        #expect(ports(s, Self.underlay).rx_drops_count(.tunnelMTU) == 1)
    }

    // MARK: Decapsulation

    /// A VXLAN frame from the remote to the local VTEP, as the remote's slow path would send it.
    func outer(_ inner: [UInt8], vni: UInt32 = 4100, dstport: UInt16 = 4789, from source: IPv4Address = VXLANFastPathTests.remote,
               flags: UInt8 = UInt8(SHUNT_VXLAN_FLAG_I)) -> [UInt8] {
        let h = VXLANOuterHeader(sourceMAC: Self.nextHop, destinationMAC: Self.underlayMAC, source: source,
                                 destination: Self.local, sourcePort: 50000, destinationPort: dstport, vni: vni)
        var out = [UInt8](repeating: 0, count: inner.count + VXLAN.overhead)
        let n = inner.withUnsafeBytes { src in out.withUnsafeMutableBytes { VXLAN.encapsulate(src, header: h, into: $0) } }
        out[42] = flags
        return Array(out[0..<n])
    }

    @Test func aCachedInnerFlowIsDecapsulatedAndForwarded() throws {
        try add(tunnel())
        for inner in Self.innerFrames {
            try cache.install(key: key(inner, inPort: Self.tunnelPort, tunID: 4100),
                              entry: FlowCacheProgram.entry(actions: [.output(Self.underlay)]))
            let r = try ProgramTestRun.xdp(programFD: cache.programFD, packet: outer(inner))
            #expect(r.returnValue == XDP.redirect)
            #expect(r.output == inner)
        }
        let s = try cache.stats()
        let n = UInt64(Self.innerFrames.count)
        let innerBytes = Self.innerFrames.reduce(0) { $0 + UInt64($1.count) }
        #expect(s.hits == n && s.misses == 0 && s.hit_bytes == innerBytes)
        #expect(ports(s, Self.tunnelPort).rx_packets == n && ports(s, Self.tunnelPort).rx_bytes == innerBytes)
        #expect(ports(s, Self.underlay).rx_decapsulated == n)
        #expect(ports(s, Self.underlay).rx_bytes == innerBytes + n * UInt64(VXLAN.overhead))
    }

    /// vni=flow: any VNI is taken and becomes tun_id; a fixed-VNI tunnel on the same endpoints wins.
    @Test func flowVNIBecomesTunID() throws {
        try add(tunnel(vni: nil))
        var fixed = tunnel(vni: 77)
        fixed.port = 10
        try add(fixed)
        let inner = TestFrame.udp4()
        try cache.install(key: key(inner, inPort: Self.tunnelPort, tunID: 5000), entry: FlowCacheProgram.entry(actions: []))
        try cache.install(key: key(inner, inPort: 10, tunID: 77), entry: FlowCacheProgram.entry(actions: [], dropReason: .noMatch))
        #expect(try ProgramTestRun.xdp(programFD: cache.programFD, packet: outer(inner, vni: 5000)).returnValue == XDP.drop)
        #expect(try ProgramTestRun.xdp(programFD: cache.programFD, packet: outer(inner, vni: 77)).returnValue == XDP.drop)
        let s = try cache.stats()
        #expect(ports(s, Self.tunnelPort).rx_drops_count(.flowDrop) == 1 && ports(s, 10).rx_drops_count(.noMatch) == 1)
        #expect(ports(s, Self.underlay).rx_decapsulated == 2)
    }

    /// A miss, and every frame no tunnel takes or the fast path leaves to the slow path, goes up
    /// exactly as received (the slow path then decapsulates it or counts why not).
    @Test func everythingElseGoesUpUnchanged() throws {
        try add(tunnel())
        let inner = TestFrame.udp4()
        try cache.install(key: key(inner, inPort: Self.tunnelPort, tunID: 4100), entry: FlowCacheProgram.entry(actions: [.output(7)]))
        var truncatedUDP = outer(inner)
        truncatedUDP[38 + 1] &-= 1  // UDP length one short: bytes after the datagram
        var ipOptions = outer(inner)
        ipOptions[14] = 0x46
        let cases: [(String, [UInt8])] = [
            ("miss", outer(TestFrame.tcp4())),
            ("wrong VNI", outer(inner, vni: 4101)),
            ("wrong port", outer(inner, dstport: 8472)),
            ("unknown remote", outer(inner, from: IPv4Address("192.0.2.99")!)),
            ("no I flag", outer(inner, flags: 0)),
            ("UDP length short of the frame", truncatedUDP),
            ("IPv4 options", ipOptions),
        ]
        for (name, frame) in cases {
            let r = try ProgramTestRun.xdp(programFD: cache.programFD, packet: frame)
            #expect(r.returnValue == XDP.pass, "\(name)")
            #expect(r.output == frame, "\(name)")
        }
        let s = try cache.stats()
        #expect(s.hits == 0 && ports(s, Self.underlay).rx_decapsulated == 0)
        // An inner frame the parser calls malformed goes up too, counted as malformed.
        let runt = outer(Array(TestFrame.udp4()[0..<20]))
        let r = try ProgramTestRun.xdp(programFD: cache.programFD, packet: runt)
        #expect(r.returnValue == XDP.pass && r.output == runt)
        #expect(try cache.stats().malformed == 1)
    }

    /// Decapsulated and encapsulated again (one tunnel to another): both headers are right.
    @Test func tunnelToTunnel() throws {
        let t = tunnel()
        try add(t)
        let inner = TestFrame.udp4()
        let k = key(inner, inPort: Self.tunnelPort, tunID: 4100)
        try cache.install(key: k, entry: FlowCacheProgram.entry(actions: [.output(Self.tunnelPort)], tunnelPorts: 1 << 9))
        let r = try ProgramTestRun.xdp(programFD: cache.programFD, packet: outer(inner))
        #expect(r.returnValue == XDP.redirect)
        let id = r.output.count > 19 ? UInt16(r.output[18]) << 8 | UInt16(r.output[19]) : 0
        #expect(r.output == swiftEncapsulation(inner, tunnel: t, key: k, tunID: 4100, identification: id))
    }
}

extension shunt_port_counters {
    func rx_drops_count(_ reason: DropReason) -> UInt64 {
        withUnsafeBytes(of: rx_drops) { $0.load(fromByteOffset: Int(reason.rawValue) * 8, as: UInt64.self) }
    }
}
