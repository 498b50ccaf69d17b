import CShunt
import ShuntTraffic
import Testing

/// The flows of `shunt gen`: mixed-radix coverage, the range syntax, and the IPv4 checksum of
/// each flow's frame.
@Suite struct FlowSpaceTests {
    func space(_ src: String, _ dst: String, _ sport: String, _ dport: String) throws -> FlowSpace {
        FlowSpace(sourceAddresses: try FlowSpace.parseIPv4Addresses(src), destinationAddresses: try FlowSpace.parseIPv4Addresses(dst),
                  sourcePorts: try FlowSpace.parsePorts(sport), destinationPorts: try FlowSpace.parsePorts(dport))
    }

    /// Over flowCount consecutive sequences every combination comes exactly once, source port
    /// fastest; the next round repeats it.
    @Test func everyCombinationOncePerRound() throws {
        let s = try space("10.0.0.1-10.0.0.3", "10.1.0.7-10.1.0.8", "1000-1003", "53-54")
        #expect(s.flowCount == 3 * 2 * 4 * 2)
        var seen = Set<[UInt32]>()
        for seq in UInt64(0)..<s.flowCount {
            let f = s.flow(forSequence: seq)
            seen.insert([f.sourceAddress, f.destinationAddress, UInt32(f.sourcePort), UInt32(f.destinationPort)])
            #expect(s.flow(forSequence: seq + s.flowCount) == f)
        }
        #expect(seen.count == 48)
        #expect(s.flow(forSequence: 0) == .init(sourceAddress: 0x0A00_0001, destinationAddress: 0x0A01_0007, sourcePort: 1000, destinationPort: 53))
        #expect(s.flow(forSequence: 1).sourcePort == 1001 && s.flow(forSequence: 4).destinationPort == 54)
        #expect(s.flow(forSequence: 8).sourceAddress == 0x0A00_0002 && s.flow(forSequence: 24).destinationAddress == 0x0A01_0008)
    }

    /// --flows N's meaning: source ports 1024.., the rest fixed.
    @Test func flowsShorthandCyclesSourcePorts() {
        var spec = TestFrameSpec(size: 60)
        spec.flows.sourcePorts = .init(first: 1024, count: 5)
        #expect((0..<10).map { spec.flows.flow(forSequence: UInt64($0)).sourcePort } == [1024, 1025, 1026, 1027, 1028, 1024, 1025, 1026, 1027, 1028])
    }

    @Test func rangeSyntax() throws {
        #expect(try FlowSpace.parsePorts("9") == .init(first: 9, count: 1))
        #expect(try FlowSpace.parsePorts("0-65535") == .init(first: 0, count: 65536))
        #expect(try FlowSpace.parseIPv4Addresses("192.168.1.250-192.168.2.5").count == 12)
        #expect(FlowSpace.formatIPv4(try FlowSpace.parseIPv4Addresses("192.168.1.250-192.168.2.5").last) == "192.168.2.5")
        for bad in ["", "-", "5-", "-5", "1-2-3", "x", "70000", "1.5"] {
            #expect(throws: FlowSpace.ParseError.self, "\(bad)") { try FlowSpace.parsePorts(bad) }
        }
        for bad in ["10.0.0", "10.0.0.256", "10.0.0.1-", "a.b.c.d", "10.0.0.1-10.0.0.2-10.0.0.3", "fd00::1", "10.0.0.01x"] {
            #expect(throws: FlowSpace.ParseError.self, "\(bad)") { try FlowSpace.parseIPv4Addresses(bad) }
        }
        #expect { try FlowSpace.parsePorts("2000-1000") } throws: { "\($0)".contains("reversed") }
        #expect { try FlowSpace.parseIPv4Addresses("10.0.0.9-10.0.0.1") } throws: { "\($0)".contains("reversed") }
    }

    /// The incremental IPv4 checksum (template base + the flow's addresses) is the checksum of
    /// the header as written, for every flow and several sizes.
    @Test func eachFlowsHeaderChecksumIsValid() throws {
        for size in [60, 566, 1514, 9000] {
            var spec = TestFrameSpec(size: size)
            spec.flows = try space("10.0.0.250-10.0.1.4", "255.255.255.250-255.255.255.255", "1-2", "65535")
            var frame = spec.bytes()
            #expect(TestFrameSpec.internetChecksum(frame[14..<34]) == 0)
            let base = IPv4ChecksumBase(header: frame[14..<34])
            for seq in UInt64(0)..<spec.flows.flowCount {
                let flow = spec.flows.flow(forSequence: seq)
                frame.withUnsafeMutableBytes { TestFrameSpec.writeFlow(flow, checksumBase: base, into: $0.baseAddress!) }
                #expect(TestFrameSpec.internetChecksum(frame[14..<34]) == 0, "size \(size) seq \(seq)")
                #expect(Array(frame[26..<30]) == withUnsafeBytes(of: flow.sourceAddress.bigEndian, Array.init))
                #expect(Array(frame[36..<38]) == [0xFF, 0xFF])
            }
        }
    }

    /// xdp_gen's configuration carries the ranges and the checksum base.
    @Test func genConfigCarriesTheRanges() throws {
        var spec = TestFrameSpec(size: 100)
        spec.flows = try space("10.0.0.1-10.0.0.4", "10.0.1.1", "1000-1009", "9")
        let c = spec.genConfig(stream: 7)
        #expect(c.stream == 7 && c.flows == 40 && c.sport_first == 1000 && c.sport_count == 10 && c.saddr_count == 4)
        #expect(c.daddr_first == 0x0A00_0101 && c.daddr_count == 1 && c.dport_first == 9 && c.dport_count == 1)
        #expect(c.ip_csum_base == spec.checksumBase.sum)
        #expect(withUnsafeBytes(of: c.eth, Array.init) == [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1])
    }
}

/// IPv6 frames: the address syntax, the probe's place, and the UDP checksum per frame checked
/// against a plain RFC 768/8200 computation over the pseudo-header.
@Suite struct IPv6FrameTests {
    func v6Spec(size: Int) throws -> TestFrameSpec {
        var spec = TestFrameSpec(size: size)
        let src = try FlowSpace.parseIPv6Addresses("fd00:203::fffe:fffe-fd00:203::ffff:1")
        let dst = try FlowSpace.parseIPv6Addresses("2001:db8:0:1:2:3:4:5")
        spec.flows = FlowSpace(sourceAddresses: src.range, destinationAddresses: dst.range,
                               sourcePorts: .init(first: 65534, count: 2), destinationPorts: .init(first: 9, count: 1))
        spec.flows.ipv6 = .init(source: src.prefix, destination: dst.prefix)
        return spec
    }

    /// The checksum as RFC 8200 8.1 defines it: pseudo-header (addresses, UDP length, next
    /// header) and the UDP segment, big-endian words; 0 over a segment carrying its checksum.
    func udpChecksumVerifies(_ f: [UInt8]) -> Bool {
        let udp = Array(f[54...])
        let pseudo = Array(f[22..<54]) + [0, 0, UInt8(udp.count >> 8), UInt8(udp.count & 0xff), 0, 0, 0, 17]
        return TestFrameSpec.internetChecksum(pseudo + udp + (udp.count % 2 == 1 ? [0] : [])) == 0
    }

    @Test func addressSyntax() throws {
        #expect(FlowSpace.parseIPv6("::") == [UInt8](repeating: 0, count: 16))
        #expect(FlowSpace.parseIPv6("fd00:203::1") == [0xfd, 0, 2, 3] + [UInt8](repeating: 0, count: 11) + [1])
        #expect(FlowSpace.parseIPv6("1:2:3:4:5:6:7:8")?.last == 8)
        for bad in ["1::2::3", ":::", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", "1:2:3:4:5:6:7", "10.0.0.1", "1::2:3:4:5:6:7:8"] {
            #expect(FlowSpace.parseIPv6(bad) == nil, "\(bad)")
        }
        let r = try FlowSpace.parseIPv6Addresses("fd00::1:fff0-fd00::2:5")
        #expect(r.range.first == 0x1_fff0 && r.range.count == 0x2_0005 - 0x1_fff0 + 1 && r.prefix == Array(FlowSpace.parseIPv6("fd00::")!.prefix(12)))
        #expect { try FlowSpace.parseIPv6Addresses("fd00::1-fd01::1") } throws: { "\($0)".contains("last 32 bits") }
        #expect { try FlowSpace.parseIPv6Addresses("fd00::9-fd00::1") } throws: { "\($0)".contains("reversed") }
    }

    @Test func templateLayoutAndProbeOffset() throws {
        let spec = try v6Spec(size: 78)
        let f = spec.bytes()
        #expect(TestFrameSpec.minimumSizeIPv6 == 78 && spec.probeOffset == 62)
        #expect(Array(f[12..<15]) == [0x86, 0xDD, 0x60] && f[20] == 17 && f[21] == 64)
        #expect(Array(f[18..<20]) == [0, 24] && Array(f[58..<60]) == [0, 24])  // payload and UDP length
        #expect(Array(f[34..<38]) == [0xff, 0xfe, 0xff, 0xfe] && Array(f[54..<58]) == [0xff, 0xfe, 0, 9])
        #expect(udpChecksumVerifies(f))
        var g = f
        Probe(stream: 7, sequence: 99, sentNanoseconds: 123).write(into: &g, at: Probe.offsetIPv6)
        #expect(g.withUnsafeBytes { Probe.parse($0) } == Probe(stream: 7, sequence: 99, sentNanoseconds: 123))
        #expect(Array(g.prefix(77)).withUnsafeBytes { Probe.parse($0) } == nil)  // too short
    }

    /// Every flow, probe and size (odd ones too): the checksum stored after the probe verifies,
    /// and it is never 0 (which would mean "no checksum").
    @Test func everyFramesUDPChecksumVerifies() throws {
        for size in [78, 79, 101, 1514, 9000] {
            let spec = try v6Spec(size: size)
            var f = spec.bytes()
            let base = spec.udp6ChecksumBase
            #expect(spec.genConfig(stream: 0).ip_csum_base == base.sum && spec.genConfig(stream: 0).ipv6 == 1)
            for seq in UInt64(0)..<UInt64(2 * spec.flows.flowCount) {
                f.withUnsafeMutableBytes { TestFrameSpec.writeFlowIPv6(spec.flows.flow(forSequence: seq), into: $0.baseAddress!) }
                Probe(stream: UInt16(seq), sequence: UInt32(seq) &* 2_654_435_761, sentNanoseconds: seq &* 0x9E37_79B9_7F4A_7C15)
                    .write(into: &f, at: Probe.offsetIPv6)
                f.withUnsafeMutableBytes { base.store(into: $0.baseAddress!) }
                #expect(udpChecksumVerifies(f), "size \(size) seq \(seq)")
                #expect(f[60] != 0 || f[61] != 0)
            }
        }
    }
}
