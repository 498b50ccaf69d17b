import CShunt
import Glibc
@testable import ShuntBPF
import ShuntCore
import ShuntSystem
import ShuntTestSupport
import Testing

/// XDP verdicts (enum xdp_action).
enum XDP {
    static let aborted: UInt32 = 0
    static let drop: UInt32 = 1
    static let pass: UInt32 = 2
    static let redirect: UInt32 = 4
}

/// xdp_flowcache through BPF_PROG_TEST_RUN: frames "arrive" on lo (the test run's default
/// ingress device), which is Shunt port 7 and also the device behind output port 7.
@Suite(.enabled(if: canLoadBPF, "loading BPF programs needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN: run the tests as root"))
struct FlowCacheTests {
    static let port: UInt32 = 7
    static let absentPort: UInt32 = 9
    let cache: FlowCacheProgram

    init() throws {
        cache = try FlowCacheProgram(maxEntries: 1024)
        let lo = try #require(Sys.interfaceIndex("lo"))
        try cache.setPort(number: Self.port, ifindex: lo)
    }

    func key(_ frame: [UInt8], strippedVLANTCI: UInt16? = nil) -> FlowKey {
        var key = FlowKey()
        let ok = frame.withUnsafeBytes {
            FlowKeyExtractor.extract(frame: $0.baseAddress!, length: $0.count, inPort: Self.port, strippedVLANTCI: strippedVLANTCI, into: &key)
        }
        #expect(ok, "the extractor calls a test frame malformed")
        return key
    }

    func run(_ frame: [UInt8]) throws -> ProgramTestRun.Result {
        try ProgramTestRun.xdp(programFD: cache.programFD, packet: frame)
    }

    /// Installs `actions` for `frame`'s key, runs `frame` and returns the result.
    func runWith(_ actions: [DatapathAction], _ frame: [UInt8], dropReason: DropReason = .flowDrop) throws -> ProgramTestRun.Result {
        try cache.install(key: key(frame), entry: FlowCacheProgram.entry(actions: actions, dropReason: dropReason))
        return try run(frame)
    }

    // MARK: Verdicts and counters

    @Test func missPassesUpAndCountsAMiss() throws {
        let frame = TestFrame.udp4()
        let r = try run(frame)
        #expect(r.returnValue == XDP.pass)
        #expect(r.output == frame)
        let s = try cache.stats()
        #expect(s.misses == 1 && s.hits == 0 && s.malformed == 0 && s.userspace == 0)
    }

    @Test func frameFromAnInterfaceThatIsNoPortPassesUp() throws {
        let other = try FlowCacheProgram(maxEntries: 16)
        let r = try ProgramTestRun.xdp(programFD: other.programFD, packet: TestFrame.udp4())
        #expect(r.returnValue == XDP.pass)
        let s = try other.stats()
        #expect(s.not_a_port == 1 && s.misses == 0)
    }

    @Test func userspaceEntriesPassUpWithoutCountingAMiss() throws {
        let frame = TestFrame.udp4()
        // Two outputs: the entry builder marks it USERSPACE.
        let entry = FlowCacheProgram.entry(actions: [.output(Self.port), .output(3)])
        #expect(entry.flags & UInt32(SHUNT_CACHE_USERSPACE) != 0)
        try cache.install(key: key(frame), entry: entry)
        let r = try run(frame)
        #expect(r.returnValue == XDP.pass)
        #expect(r.output == frame)
        let s = try cache.stats()
        #expect(s.userspace == 1 && s.misses == 0 && s.hits == 0)
        #expect(try cache.lookup(key: key(frame))?.packets == 0)
    }

    @Test func entriesTheKernelCannotExecuteGoUpEvenWithoutTheFlag() throws {
        // As if the slow path had forgotten the flag: two OUTPUTs, OUTPUT not last, no OUTPUT.
        let cases: [[DatapathAction]] = [
            [.output(Self.port), .output(Self.port)],
            [.output(Self.port), .setEthSrc(MACAddress(value: 0x02_00_00_00_00_01))],
            [.decTTL],
        ]
        let frame = TestFrame.udp4()
        for actions in cases {
            var e = FlowCacheProgram.entry(actions: actions)
            e.flags = 0
            try cache.install(key: key(frame), entry: e)
            let r = try run(frame)
            #expect(r.returnValue == XDP.pass, "\(actions)")
            #expect(r.output == frame, "\(actions)")
        }
        #expect(try cache.stats().userspace == UInt64(cases.count))
    }

    @Test func dropEntryDropsUnderItsReason() throws {
        let r = try runWith([], TestFrame.tcp4(), dropReason: .noMatch)
        #expect(r.returnValue == XDP.drop)
        let s = try cache.stats()
        #expect(s.dropCount(.noMatch) == 1 && s.dropCount(.flowDrop) == 0)
        #expect(s.hits == 1 && s.misses == 0)
    }

    @Test func outputToAPortWithoutADevicePassesTheFrameUpUnmodified() throws {
        let frame = TestFrame.udp4()
        let r = try runWith([.setEthDst(MACAddress(value: 0x02_00_00_00_00_99)), .decTTL, .output(Self.absentPort)], frame)
        #expect(r.returnValue == XDP.pass)
        #expect(r.output == frame)
        let s = try cache.stats()
        #expect(s.redirect_errors == 1 && s.hits == 0)
        #expect(try cache.lookup(key: key(frame))?.packets == 0)
    }

    @Test func outputRedirectsThroughTheDevmapEntryOfItsPort() throws {
        let frame = TestFrame.udp4()
        #expect(try runWith([.output(Self.port)], frame).returnValue == XDP.redirect)
        // The same entry once the port is gone: the program looked up exactly this port.
        try cache.removePort(number: Self.port, ifindex: try #require(Sys.interfaceIndex("lo")))
        try cache.setPort(number: 2, ifindex: try #require(Sys.interfaceIndex("lo")))
        var k = key(frame)
        k.inPort = 2
        try cache.install(key: k, entry: FlowCacheProgram.entry(actions: [.output(Self.port)]))
        #expect(try run(frame).returnValue == XDP.pass)
        try cache.install(key: k, entry: FlowCacheProgram.entry(actions: [.output(2)]))
        #expect(try run(frame).returnValue == XDP.redirect)
        let s = try cache.stats()
        #expect(s.hits == 2 && s.redirect_errors == 1)
    }

    /// A mirrored entry leaves by its group's broadcast (the test run only sees the verdict),
    /// after the edits, and counts one copy of the frame as sent for each session slot.
    @Test func mirroredEntryBroadcastsOverItsGroupAndCountsEachSession() throws {
        let frame = TestFrame.udp4()
        try cache.setMirrorGroup(3, ports: [Self.port])
        let entry = FlowCacheProgram.entry(actions: [.setVLAN(5), .output(Self.port)], mirrorGroup: 3,
                                           mirrorSessions: 1 << 0 | 1 << 63)
        try cache.install(key: key(frame), entry: entry)
        let r = try run(frame)
        #expect(r.returnValue == XDP.redirect)
        #expect(r.output.count == frame.count + 4, "the copies are the frame after the edits")
        for slot in [0, 63] {
            let c = try cache.mirrorCounters(slot: slot)
            #expect(c.selected == 1 && c.mirrored == 1 && c.mirrored_bytes == UInt64(frame.count + 4), "slot \(slot)")
        }
        #expect(try cache.mirrorCounters(slot: 1).selected == 0)
        let s = try cache.stats()
        #expect(s.hits == 1 && s.redirect_errors == 0)
        // A group number the program has no map for goes up unmodified, as a missing port does.
        try cache.install(key: key(frame), entry: FlowCacheProgram.entry(actions: [.output(Self.port)], mirrorGroup: 99,
                                                                         mirrorSessions: 1))
        let up = try run(frame)
        #expect(up.returnValue == XDP.pass && up.output == frame)
        #expect(try cache.mirrorCounters(slot: 0).selected == 1)
    }

    // MARK: Actions: exact output bytes

    @Test func setMACsThenOutput() throws {
        let frame = TestFrame.tcp4()
        let src: [UInt8] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55]
        let dst: [UInt8] = [0x0A, 0x66, 0x77, 0x88, 0x99, 0xAA]
        let r = try runWith([.setEthSrc(MACAddress(value: 0x02_11_22_33_44_55)), .setEthDst(MACAddress(value: 0x0A_66_77_88_99_AA)), .output(Self.port)], frame)
        #expect(r.returnValue == XDP.redirect)
        #expect(r.output == dst + src + frame[12...])
    }

    @Test func setVLANPushesATagOnUntaggedFrames() throws {
        let frame = TestFrame.udp4()
        let r = try runWith([.setVLAN(100), .output(Self.port)], frame)
        #expect(r.returnValue == XDP.redirect)
        #expect(r.output == frame[0..<12] + [0x81, 0x00, 0x00, 100] + frame[12...])
    }

    @Test func setVLANRewritesTheVIDAndKeepsPCPAndDEI() throws {
        let frame = TestFrame.udp4(tci: 0xB00A)  // PCP 5, DEI 1, VID 10
        let r = try runWith([.setVLAN(0x123), .output(Self.port)], frame)
        #expect(r.returnValue == XDP.redirect)
        var expected = frame
        expected[14] = 0xB1
        expected[15] = 0x23
        #expect(r.output == expected)
    }

    @Test func popVLANRemovesTheTag() throws {
        let tagged = TestFrame.ethernet(tci: 0x0064, type: 0x0800, payload: TestFrame.ipv4(proto: 6, payload: TestFrame.tcp(1, 2)), pad: false)
        let r = try runWith([.popVLAN, .output(Self.port)], tagged)
        #expect(r.returnValue == XDP.redirect)
        #expect(r.output == Array(tagged[0..<12] + tagged[16...]))
        // And on an untagged frame, nothing.
        let plain = TestFrame.tcp4()
        #expect(try runWith([.popVLAN, .output(Self.port)], plain).output == plain)
    }

    @Test func decTTLOnIPv4UpdatesTheChecksumIncrementally() throws {
        // TTLs and addresses chosen so the one's-complement sums carry differently.
        for ttl: UInt8 in [2, 3, 64, 128, 255] {
            for src: [UInt8] in [[10, 0, 0, 1], [255, 255, 255, 254], [0, 0, 0, 0], [192, 168, 0xFE, 0xFF]] {
                try cache.removeAll()
                let frame = TestFrame.udp4(ttl: ttl, src: src)
                let r = try runWith([.decTTL, .output(Self.port)], frame)
                #expect(r.returnValue == XDP.redirect)
                #expect(r.output.ipv4ChecksumIsValid(at: 14), "ttl \(ttl) src \(src)")
                #expect(r.output == TestFrame.udp4(ttl: ttl - 1, src: src), "ttl \(ttl) src \(src)")
            }
        }
        // Behind a tag, too.
        let tagged = TestFrame.udp4(tci: 0x0005, ttl: 9)
        let r = try runWith([.decTTL, .output(Self.port)], tagged)
        #expect(r.output == TestFrame.udp4(tci: 0x0005, ttl: 8))
        #expect(r.output.ipv4ChecksumIsValid(at: 18))
    }

    @Test func decTTLOnIPv6DecrementsTheHopLimit() throws {
        let r = try runWith([.decTTL, .output(Self.port)], TestFrame.udp6(hopLimit: 2))
        #expect(r.returnValue == XDP.redirect)
        #expect(r.output == TestFrame.udp6(hopLimit: 1))
    }

    @Test func decTTLDropsExpiredPackets() throws {
        let frames = [TestFrame.udp4(ttl: 1), TestFrame.udp4(ttl: 0), TestFrame.udp6(hopLimit: 1), TestFrame.udp4(tci: 7, ttl: 1)]
        for frame in frames {
            #expect(try runWith([.setEthSrc(MACAddress(value: 0x02_00_00_00_00_01)), .decTTL, .output(Self.port)], frame).returnValue == XDP.drop)
        }
        let s = try cache.stats()
        #expect(s.dropCount(.ttlExpired) == UInt64(frames.count))
    }

    @Test func actionsRunInOrder() throws {
        // Pop the tag, rewrite, decrement, push another tag: the DVR-style path.
        let tagged = TestFrame.udp4(tci: 0x2010, ttl: 30, pad: false)
        let actions: [DatapathAction] = [
            .popVLAN, .setEthSrc(MACAddress(value: 0xFA_16_3F_00_00_01)), .setEthDst(MACAddress(value: 0x02_00_00_00_00_77)),
            .decTTL, .setVLAN(20), .output(Self.port),
        ]
        let r = try runWith(actions, tagged)
        #expect(r.returnValue == XDP.redirect)
        let untagged = TestFrame.udp4(ttl: 29, pad: false)
        let expected: [UInt8] = [0x02, 0, 0, 0, 0, 0x77, 0xFA, 0x16, 0x3F, 0, 0, 1, 0x81, 0x00, 0x00, 20] + untagged[12...]
        #expect(r.output == expected)
    }

    // MARK: Entry counters

    @Test func hitsUpdateTheEntryCounters() throws {
        let frame = TestFrame.udp4()
        let k = key(frame)
        // Stamped a second ago: a hit must move it to now (coarse time: within a few jiffies).
        let installed = Sys.monotonicNanoseconds() - 1_000_000_000
        try cache.install(key: k, entry: FlowCacheProgram.entry(actions: [.output(Self.port)], now: installed))
        #expect(try cache.lookup(key: k)?.last_used_ns == installed)
        // Same key, different lengths (padding after the IP packet does not change the key).
        let lengths = [60, 61, 100]
        for n in lengths {
            let f = frame + [UInt8](repeating: 0, count: n - frame.count)
            #expect(try run(f).returnValue == XDP.redirect)
        }
        let after = Sys.monotonicNanoseconds()
        let e = try #require(try cache.lookup(key: k))
        #expect(e.packets == 3)
        #expect(e.bytes == UInt64(lengths.reduce(0, +)))
        #expect(e.last_used_ns > installed + 900_000_000 && e.last_used_ns <= after)
        let s = try cache.stats()
        #expect(s.hits == 3 && s.hit_bytes == UInt64(lengths.reduce(0, +)))
    }

    // MARK: Malformed frames

    /// Every prefix (0...60 bytes) of frames that end in each kind of header: the program must
    /// pass each one up, and count it malformed exactly when the Swift extractor rejects it.
    @Test func truncatedFramesPassUpAndCountAsMalformed() throws {
        let bases: [[UInt8]] = [
            TestFrame.tcp4(),
            TestFrame.udp4(tci: 0x0123),
            TestFrame.ethernet(type: 0x86DD, payload: TestFrame.ipv6(next: 0, payload: TestFrame.extensionHeader(next: 58) + TestFrame.icmp(type: 128, code: 0))),
            TestFrame.ethernet(type: 0x0806, payload: TestFrame.arp(op: 1)),
            TestFrame.ethernet(type: 0x0800, payload: TestFrame.ipv4(proto: 132, options: [1, 1, 1, 0], payload: TestFrame.sctp(9, 9))),
        ]
        var expectedMalformed: UInt64 = 0
        var expectedMisses: UInt64 = 0
        for base in bases {
            let full = base + [UInt8](repeating: 0, count: max(0, 60 - base.count))
            for length in 0...60 {
                let frame = Array(full.prefix(length))
                var k = FlowKey()
                let ok = frame.withUnsafeBytes {
                    FlowKeyExtractor.extract(frame: $0.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, length: length, inPort: Self.port, strippedVLANTCI: nil, into: &k)
                }
                if length < 14 {
                    // BPF_PROG_TEST_RUN refuses XDP input shorter than an Ethernet header (even
                    // behind metadata), so the program cannot be shown such a frame here.
                    #expect(!ok, "length \(length)")
                    #expect(throws: BPFError.libbpf(step: "BPF_PROG_TEST_RUN", errno: EINVAL)) {
                        try ProgramTestRun.xdp(programFD: cache.programFD, packet: frame)
                    }
                    continue
                }
                if ok { expectedMisses += 1 } else { expectedMalformed += 1 }
                let r = try run(frame)
                #expect(r.returnValue == XDP.pass, "length \(length)")
                let s = try cache.stats()
                #expect(s.malformed == expectedMalformed && s.misses == expectedMisses, "length \(length) of \(base.prefix(16))")
            }
        }
        // Anything shorter than its headers is malformed: the shortest base has 42 bytes of headers.
        #expect(expectedMalformed >= UInt64(bases.count * (42 - 14)))
    }

    @Test func malformedHeadersPassUp() throws {
        let udp = TestFrame.udp(1, 2)
        let frames: [[UInt8]] = [
            TestFrame.ethernet(type: 0x0800, payload: TestFrame.ipv4(proto: 17, payload: udp, versionIHL: 0x65)),  // version 6 in IPv4
            TestFrame.ethernet(type: 0x0800, payload: TestFrame.ipv4(proto: 17, payload: udp, versionIHL: 0x44)),  // ihl 4
            TestFrame.ethernet(type: 0x0800, payload: TestFrame.ipv4(proto: 17, payload: udp, totalLength: 19)),  // shorter than its header
            TestFrame.ethernet(type: 0x0800, payload: TestFrame.ipv4(proto: 17, payload: udp, totalLength: 200)),  // longer than the frame
            TestFrame.ethernet(type: 0x0800, payload: TestFrame.ipv4(proto: 17, payload: udp, totalLength: 27)),  // UDP header cut by tot_len
            TestFrame.ethernet(type: 0x0800, payload: TestFrame.ipv4(proto: 6, payload: TestFrame.udp(1, 2, payload: [0, 0, 0, 0]))),  // 12-byte "TCP" header
            TestFrame.ethernet(type: 0x86DD, payload: [0x40] + TestFrame.ipv6(next: 17, payload: udp).dropFirst()),  // version 4 in IPv6
            TestFrame.ethernet(type: 0x86DD, payload: TestFrame.ipv6(next: 17, payload: udp, payloadLength: 100)),
            TestFrame.ethernet(type: 0x86DD, payload: TestFrame.ipv6(next: 0, payload: [17, 4] + [UInt8](repeating: 0, count: 22) + udp)),  // 40-byte ext in 32 bytes
            TestFrame.ethernet(type: 0x86DD, payload: TestFrame.ipv6(next: 60, payload: (0..<5).flatMap { _ in TestFrame.extensionHeader(next: 60) } + udp)),  // too many
            TestFrame.ethernet(type: 0x86DD, payload: TestFrame.ipv6(next: 17, payload: Array(udp.prefix(7)))),  // UDP cut by payload length
        ]
        for frame in frames {
            var k = FlowKey()
            let ok = frame.withUnsafeBytes {
                FlowKeyExtractor.extract(frame: $0.baseAddress!, length: $0.count, inPort: Self.port, strippedVLANTCI: nil, into: &k)
            }
            #expect(!ok, "\(frame)")
            #expect(try run(frame).returnValue == XDP.pass)
        }
        let s = try cache.stats()
        #expect(s.malformed == UInt64(frames.count) && s.misses == 0)
    }

    // MARK: Key parity with the Swift extractor

    /// Frames of every kind the parsers know. For each one the cache holds only the entry for
    /// the Swift-extracted key, with a drop action: the program drops the frame only if its own
    /// key is byte-identical.
    static let parityFrames: [(String, [UInt8])] = {
        typealias F = TestFrame
        let hbh = F.extensionHeader(next: 44)
        return [
            ("IPv4 TCP", F.tcp4()),
            ("IPv4 TCP tagged", F.tcp4(tci: 0x6064)),
            ("IPv4 UDP", F.udp4()),
            ("IPv4 UDP 802.1ad tag", F.ethernet(tci: 0x0FFF, tpid: 0x88A8, type: 0x0800, payload: F.ipv4(proto: 17, payload: F.udp(7, 8)))),
            ("IPv4 ICMP echo", F.ethernet(type: 0x0800, payload: F.ipv4(proto: 1, payload: F.icmp(type: 8, code: 0)))),
            ("IPv4 ICMP unreachable tagged", F.ethernet(tci: 5, type: 0x0800, payload: F.ipv4(proto: 1, payload: F.icmp(type: 3, code: 4)))),
            ("IPv4 SCTP", F.ethernet(type: 0x0800, payload: F.ipv4(proto: 132, payload: F.sctp(2905, 2906)))),
            ("IPv4 GRE (no L4 parse)", F.ethernet(type: 0x0800, payload: F.ipv4(proto: 47, payload: [0, 0, 0x08, 0]))),
            ("IPv4 first fragment", F.ethernet(type: 0x0800, payload: F.ipv4(proto: 17, fragment: 0x2000, payload: F.udp(1000, 2000, payload: [1, 2, 3, 4, 5, 6, 7, 8])))),
            ("IPv4 later fragment", F.ethernet(type: 0x0800, payload: F.ipv4(proto: 17, fragment: 0x0003, payload: [1, 2, 3, 4, 5, 6, 7, 8]))),
            ("IPv4 last fragment with MF clear", F.ethernet(type: 0x0800, payload: F.ipv4(proto: 6, fragment: 0x0100, payload: [9, 9]))),
            ("IPv4 options TCP", F.ethernet(type: 0x0800, payload: F.ipv4(proto: 6, options: [0x94, 0x04, 0, 0, 1, 1, 1, 0], payload: F.tcp(22, 50000)))),
            ("IPv4 max options UDP", F.ethernet(type: 0x0800, payload: F.ipv4(proto: 17, options: [UInt8](repeating: 1, count: 40), payload: F.udp(67, 68)))),
            ("IPv4 short tot_len, padded", F.ethernet(type: 0x0800, payload: F.ipv4(proto: 17, payload: F.udp(1, 2)) + [0xEE, 0xEE, 0xEE])),
            ("IPv6 UDP", F.udp6()),
            ("IPv6 UDP tagged", F.udp6(tci: 0x0ABC)),
            ("IPv6 TCP", F.ethernet(type: 0x86DD, payload: F.ipv6(next: 6, payload: F.tcp(443, 55555)))),
            ("IPv6 hop-by-hop + first fragment + UDP", F.ethernet(type: 0x86DD, payload: F.ipv6(next: 0, payload: hbh + F.fragmentHeader(next: 17, offset: 0, more: true) + F.udp(53, 53, payload: [1, 2, 3, 4])))),
            ("IPv6 hop-by-hop + later fragment", F.ethernet(type: 0x86DD, payload: F.ipv6(next: 0, payload: hbh + F.fragmentHeader(next: 17, offset: 185, more: false) + [1, 2, 3, 4, 5, 6, 7, 8]))),
            ("IPv6 atomic fragment + TCP", F.ethernet(type: 0x86DD, payload: F.ipv6(next: 44, payload: F.fragmentHeader(next: 6, offset: 0, more: false) + F.tcp(1, 2)))),
            ("IPv6 routing + dest-opts + TCP", F.ethernet(type: 0x86DD, payload: F.ipv6(next: 43, payload: F.extensionHeader(next: 60, units: 3) + F.extensionHeader(next: 6, units: 2) + F.tcp(8080, 9090)))),
            ("IPv6 four extension headers", F.ethernet(type: 0x86DD, payload: F.ipv6(next: 0, payload: F.extensionHeader(next: 60) + F.extensionHeader(next: 43) + F.extensionHeader(next: 60) + F.extensionHeader(next: 17) + F.udp(3, 4)))),
            ("IPv6 no next header", F.ethernet(type: 0x86DD, payload: F.ipv6(next: 59, payload: []))),
            ("ICMPv6 echo", F.ethernet(type: 0x86DD, payload: F.ipv6(next: 58, payload: F.icmp(type: 128, code: 0)))),
            ("ICMPv6 neighbour solicitation tagged", F.ethernet(tci: 0x0010, type: 0x86DD, payload: F.ipv6(next: 58, hopLimit: 255, payload: F.icmp(type: 135, code: 0) + [UInt8](repeating: 0, count: 16)))),
            ("IPv6 proto 1 is not ICMP", F.ethernet(type: 0x86DD, payload: F.ipv6(next: 1, payload: F.icmp(type: 8, code: 0)))),
            ("ARP request", F.ethernet(type: 0x0806, payload: F.arp(op: 1))),
            ("ARP reply", F.ethernet(type: 0x0806, payload: F.arp(op: 2, spa: [192, 168, 1, 1], tpa: [192, 168, 1, 2]))),
            ("ARP reply tagged", F.ethernet(tci: 0x0002, type: 0x0806, payload: F.arp(op: 2))),
            ("ARP not Ethernet/IPv4", F.ethernet(type: 0x0806, payload: F.arp(op: 1, hardware: 6))),
            ("802.3 LLC", F.ethernet(dst: [0x01, 0x80, 0xC2, 0, 0, 0], type: 0x0026, payload: [0x42, 0x42, 0x03] + [UInt8](repeating: 0, count: 35))),
            ("802.3 LLC tagged", F.ethernet(tci: 0x0033, type: 0x0100, payload: [0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0])),
            ("QinQ (inner tag not parsed)", F.ethernet(tci: 0x0064, tpid: 0x88A8, type: 0x8100, payload: [0, 10, 0x08, 0x00] + F.ipv4(proto: 17, payload: F.udp(1, 2)))),
            ("LLDP", F.ethernet(dst: [0x01, 0x80, 0xC2, 0, 0, 0x0E], type: 0x88CC, payload: [2, 7, 4, 0, 1, 2, 3, 4, 5])),
            ("bare Ethernet header", F.ethernet(type: 0x9000, payload: [], pad: false)),
        ]
    }()

    @Test func bpfAndSwiftExtractIdenticalKeys() throws {
        var hits: UInt64 = 0
        for (name, frame) in Self.parityFrames {
            let k = key(frame)
            try cache.install(key: k, entry: FlowCacheProgram.entry(actions: []))
            let r = try run(frame)
            #expect(r.returnValue == XDP.drop, "\(name): the program's key differs from \(k)")
            #expect(try cache.lookup(key: k)?.packets == 1, "\(name)")
            #expect(try cache.remove(key: k))
            hits += r.returnValue == XDP.drop ? 1 : 0
        }
        let s = try cache.stats()
        #expect(s.hits == hits && s.misses == UInt64(Self.parityFrames.count) - hits && s.malformed == 0)
    }

    @Test func parityFramesHaveDistinctKeys() {
        let keys = Set(Self.parityFrames.map { key($0.1) })
        #expect(keys.count == Self.parityFrames.count)
    }

    @Test func aStrippedTagCountsAsTheTagInTheFrame() throws {
        let tagged = TestFrame.tcp4(tci: 0xA123)
        let stripped = Array(tagged[0..<12] + tagged[16...])
        #expect(key(stripped, strippedVLANTCI: 0xA123) == key(tagged))
        try cache.install(key: key(stripped, strippedVLANTCI: 0xA123), entry: FlowCacheProgram.entry(actions: []))
        #expect(try run(tagged).returnValue == XDP.drop)
    }

    // MARK: Map access

    @Test func installLookupRemoveIterateAndCount() throws {
        var installed: [FlowKey: shunt_cache_entry] = [:]
        for i in 0..<300 {
            var k = key(TestFrame.udp4())
            k.tpSrc = UInt16(i)
            let e = FlowCacheProgram.entry(actions: [.setVLAN(UInt16(i % 4000)), .output(Self.port)], now: UInt64(i))
            try cache.install(key: k, entry: e)
            installed[k] = e
        }
        #expect(try cache.count == 300)
        var seen: [FlowKey: shunt_cache_entry] = [:]
        try cache.forEachEntry { k, e in
            #expect(seen[k] == nil, "seen twice")
            seen[k] = e
        }
        #expect(seen.count == 300)
        for (k, e) in installed {
            let got = try #require(seen[k])
            #expect(got.last_used_ns == e.last_used_ns)
            #expect(FlowCacheProgram.actions(of: got) == FlowCacheProgram.actions(of: e))
        }
        // Removing entries while walking (an expiry sweep): every entry is still visited once.
        var visited = 0
        try cache.forEachEntry { k, e in
            visited += 1
            if e.last_used_ns % 2 == 0 { try cache.remove(key: k) }
        }
        #expect(visited == 300)
        #expect(try cache.count == 150)
        var probe = key(TestFrame.udp4())
        probe.tpSrc = 2
        #expect(try cache.lookup(key: probe) == nil)
        #expect(try cache.remove(key: probe) == false)
        probe.tpSrc = 3
        #expect(try cache.lookup(key: probe)?.last_used_ns == 3)
        try cache.removeAll()
        #expect(try cache.count == 0)
    }

    @Test func walkWithoutBatchLookupsSeesEveryEntryOnce() throws {
        for i in 0..<100 {
            var k = key(TestFrame.udp4())
            k.tpDst = UInt16(i)
            try cache.install(key: k, entry: FlowCacheProgram.entry(actions: [], now: UInt64(i)))
        }
        var seen = Set<FlowKey>()
        try cache.forEachEntryWithoutBatch { k, e in
            #expect(seen.insert(k).inserted)
            #expect(UInt64(k.tpDst) == e.last_used_ns)
            try cache.remove(key: k)  // deleting under the walk must not restart or repeat it
        }
        #expect(seen.count == 100)
        #expect(try cache.count == 0)
    }

    @Test func aFullCacheSaysSo() throws {
        let small = try FlowCacheProgram(maxEntries: 4)
        var k = key(TestFrame.udp4())
        for i in 0..<4 {
            k.tpSrc = UInt16(i)
            try small.install(key: k, entry: FlowCacheProgram.entry(actions: []))
        }
        k.tpSrc = 99
        #expect(throws: BPFError.cacheFull(maxEntries: 4)) {
            try small.install(key: k, entry: FlowCacheProgram.entry(actions: []))
        }
        // Replacing an existing entry still works when full.
        k.tpSrc = 1
        try small.install(key: k, entry: FlowCacheProgram.entry(actions: [.output(1)]))
        #expect(try small.count == 4)
    }

    @Test func whatTheKernelCanExecute() {
        let mac = MACAddress(value: 0x02_00_00_00_00_01)
        #expect(FlowCacheProgram.kernelCanExecute([]))
        #expect(FlowCacheProgram.kernelCanExecute([.output(1)]))
        #expect(FlowCacheProgram.kernelCanExecute([.popVLAN, .setEthSrc(mac), .setEthDst(mac), .decTTL, .setVLAN(3), .output(2)]))
        #expect(FlowCacheProgram.kernelCanExecute(Array(repeating: .decTTL, count: 7) + [.output(1)]))
        #expect(!FlowCacheProgram.kernelCanExecute(Array(repeating: .decTTL, count: 8) + [.output(1)]))
        #expect(!FlowCacheProgram.kernelCanExecute([.output(1), .output(2)]))
        #expect(!FlowCacheProgram.kernelCanExecute([.output(1), .decTTL]))
        #expect(!FlowCacheProgram.kernelCanExecute([.decTTL]))
        #expect(FlowCacheProgram.kernelCanExecute([.setTunnel(1), .output(1)]))
        // Tunnel ports (above the limit) only when the fast path encapsulates for them.
        #expect(!FlowCacheProgram.kernelCanExecute([.output(5)], portLimit: 4))
        #expect(!FlowCacheProgram.kernelCanExecute([.output(5)], portLimit: 4, tunnelPorts: 1 << 6))
        #expect(FlowCacheProgram.kernelCanExecute([.setTunnel(9), .output(5)], portLimit: 4, tunnelPorts: 1 << 5))

        let e = FlowCacheProgram.entry(actions: [.setEthDst(mac), .output(4)], now: 42)
        #expect(e.flags == 0 && e.n_actions == 2 && e.last_used_ns == 42 && e.packets == 0)
        #expect(FlowCacheProgram.actions(of: e) == [.setEthDst(mac), .output(4)])
        let drop = FlowCacheProgram.entry(actions: [], dropReason: .ttlExpired)
        #expect(drop.n_actions == 0 && drop.drop_reason == DropReason.ttlExpired.rawValue && drop.flags == 0)
        let long = FlowCacheProgram.entry(actions: Array(repeating: .output(1), count: 10))
        #expect(long.flags == UInt32(SHUNT_CACHE_USERSPACE) && long.n_actions == UInt8(SHUNT_FLOW_MAX_ACTIONS))
    }
}
