import CShunt
import Glibc
@testable import ShuntBPF
import ShuntCore
import ShuntSystem
import ShuntTestSupport
import Testing

/// A corpus of truncated, malformed and randomly mutated frames through xdp_flowcache with
/// BPF_PROG_TEST_RUN (plain mode). Frames arrive on lo, Shunt port 7; in the tunnel harness
/// port 7 is also the underlay of four VXLAN tunnel ports, so VXLAN frames for them take the
/// decapsulation path.
///
/// Every frame is checked the same way (`CorpusHarness.check`): the Swift side decides what the
/// program must do (FlowKeyExtractor for the key, and for VXLAN a model of the fast path's
/// "plain layout" rule, cross-checked against the slow path's UnderlayClassifier), then
///   1. with no cache entry: XDP_PASS, the frame unchanged, counted malformed exactly when the
///      Swift extractor rejects it and as a miss otherwise;
///   2. when Swift extracts a key: only that key installed, with a drop action or an output to
///      port 7 (alternately): XDP_DROP, or XDP_REDIRECT with the frame (decapsulated: the inner
///      frame) as output. Either happens only if the program's key is byte-identical.
/// Counters (malformed, misses, hits and their bytes, flow drops, port 7's transmissions and
/// decapsulations) are compared in batches; a batch that disagrees is replayed frame by frame to
/// name the frame. The Swift extractor and classifier read each frame from the end of a page
/// followed by an inaccessible one, so a read past the frame faults.
@Suite(.serialized, .enabled(if: canLoadBPF, "loading BPF programs needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN: run the tests as root"))
struct MalformedCorpusTests {
    typealias F = TestFrame
    typealias S = CorpusSpecimen

    // MARK: Truncation at every byte

    /// Every prefix of frames ending in each kind of header, once as cut and once with the IP and
    /// UDP length fields rewritten to match the cut (so the L3/L4 minimums are what fails).
    @Test func everyTruncationOfEveryHeader() throws {
        let h = try CorpusHarness.shared(tunnels: false)
        for s in S.plain {
            for n in 0...s.bytes.count {
                let raw = Array(s.bytes.prefix(n))
                h.check(raw, "\(s.name) cut at \(n)", category: "truncation")
                let fixed = s.cut(n, fixing: { _ in true })
                if fixed != raw { h.check(fixed, "\(s.name) cut at \(n), lengths fixed", category: "truncation, lengths fixed") }
            }
        }
        h.settle()
        h.summary(["truncation", "truncation, lengths fixed"])
    }

    /// VXLAN frames to a tunnel on the underlay, cut at every byte: as cut, with the outer IPv4
    /// and UDP lengths fixed (the fast path then decapsulates a truncated inner frame), and with
    /// every length fixed.
    @Test func everyTruncationOfVXLANFrames() throws {
        let h = try CorpusHarness.shared(tunnels: true)
        for s in S.vxlan {
            for n in 0...s.bytes.count {
                let raw = Array(s.bytes.prefix(n))
                h.check(raw, "\(s.name) cut at \(n)", category: "VXLAN truncation")
                let outer = s.cut(n, fixing: { $0.at < S.vxlanOverhead })
                if outer != raw { h.check(outer, "\(s.name) cut at \(n), outer lengths fixed", category: "VXLAN truncation, outer lengths fixed") }
                let all = s.cut(n, fixing: { _ in true })
                if all != outer { h.check(all, "\(s.name) cut at \(n), all lengths fixed", category: "VXLAN truncation, all lengths fixed") }
            }
        }
        // The same frames on a port that is no underlay: ordinary IPv4/UDP.
        let plain = try CorpusHarness.shared(tunnels: false)
        for s in S.vxlan {
            for n in 14...s.bytes.count {
                plain.check(s.cut(n, fixing: { $0.at < S.vxlanOverhead }), "\(s.name) cut at \(n), outer lengths fixed, no tunnels",
                            category: "VXLAN truncation, no tunnel tables")
            }
        }
        h.settle()
        plain.settle()
        h.summary(["VXLAN truncation", "VXLAN truncation, outer lengths fixed", "VXLAN truncation, all lengths fixed"])
        plain.summary(["VXLAN truncation, no tunnel tables"])
        // Every cut from 64 bytes (an inner Ethernet header) to one short of the whole frame,
        // with the outer lengths fixed, is for a tunnel.
        let decapsulable = S.vxlan.reduce(0) { $0 + $1.bytes.count - 64 }
        #expect(h.tally["VXLAN truncation, outer lengths fixed"]?.decapsulated == decapsulable)
    }

    // MARK: Malformed IPv4

    /// IHL 0 to 15 against total lengths around the header, the L4 header and the frame, with
    /// and without bytes after the IP packet; headers longer than the packet; every version
    /// nibble; options at the 40-byte limit; the flags and fragment offset.
    @Test func ipv4HeaderAndTotalLengths() throws {
        let h = try CorpusHarness.shared(tunnels: false)
        let body = F.udp(1111, 2222, payload: [UInt8](repeating: 0x5A, count: 52))  // 60 bytes after a 20-byte header
        for ihl in 0...15 {
            let hlen = ihl * 4
            for proto: UInt8 in [17, 6, 47] {
                for padding in [0, 16] {
                    let lengths = Set([0, 1, 19, 20, hlen - 1, hlen, hlen + 7, hlen + 8, hlen + 20, 79, 80, 81, 80 + padding, 0xFFFF])
                    for total in lengths.sorted() where total >= 0 {
                        let ip = F.ipv4(proto: proto, payload: body, totalLength: total, versionIHL: 0x40 | UInt8(ihl))
                        let frame = F.ethernet(type: 0x0800, payload: ip + [UInt8](repeating: 0, count: padding), pad: false)
                        h.check(frame, "IHL \(ihl) proto \(proto) tot_len \(total) padding \(padding)", category: "IPv4 IHL x total length")
                    }
                }
            }
        }
        // Headers longer than the whole packet: IHL 6 to 15 over 0 to 12 bytes after the fixed
        // header, tot_len the packet's or the header's.
        for ihl in 6...15 {
            for after in [0, 4, 8, 12] where after < ihl * 4 - 20 {
                for headerLength in [false, true] {
                    let total = headerLength ? ihl * 4 : 20 + after
                    let ip = F.ipv4(proto: 17, payload: Array(F.udp(3, 4, payload: [1, 2, 3, 4]).prefix(after)), totalLength: total,
                                    versionIHL: 0x40 | UInt8(ihl))
                    h.check(F.ethernet(type: 0x0800, payload: ip, pad: false), "IHL \(ihl) over \(20 + after) bytes, tot_len \(total)",
                            category: "IPv4 IHL beyond the packet")
                }
            }
        }
        for version in 0...15 {
            for proto: UInt8 in [17, 47] {
                let frame = F.ethernet(type: 0x0800, payload: F.ipv4(proto: proto, payload: body, versionIHL: UInt8(version << 4 | 5)))
                h.check(frame, "IPv4 version nibble \(version) proto \(proto)", category: "IPv4 version")
            }
        }
        // 40 bytes of options (IHL 15): the L4 header whole, one byte short, absent.
        let optionSets: [(String, [UInt8])] = [
            ("NOPs", [UInt8](repeating: 1, count: 40)),
            ("EOL then zeros", [0] + [UInt8](repeating: 0, count: 39)),
            ("record route", [7, 39, 4] + [UInt8](repeating: 0, count: 36) + [0]),
            ("option length 0", [0x44, 0] + [UInt8](repeating: 0xFF, count: 38)),
        ]
        let l4s: [(UInt8, [UInt8])] = [(17, F.udp(67, 68)), (6, F.tcp(22, 2222)), (132, F.sctp(9, 9)), (1, F.icmp(type: 8, code: 0))]
        for (name, options) in optionSets {
            for (proto, l4) in l4s {
                for tagged in [false, true] {
                    for total in [60 + l4.count, 60 + l4.count - 1, 60 + 4, 60 + 3, 60, 59, 61 + l4.count] {
                        let ip = F.ipv4(proto: proto, options: options, payload: l4, totalLength: total)
                        let frame = F.ethernet(tci: tagged ? 0x0FFF : nil, type: 0x0800, payload: ip, pad: false)
                        h.check(frame, "40 bytes of options (\(name)), proto \(proto), tot_len \(total)\(tagged ? ", tagged" : "")",
                                category: "IPv4 options at the 40-byte limit")
                    }
                }
            }
        }
        // Every flag against offsets around the 13-bit field's bits, with and without an L4 header.
        for flags: UInt16 in [0, 0x4000, 0x2000, 0x6000, 0x8000, 0xE000] {
            for offset: UInt16 in [0, 1, 0x0FFF, 0x1000, 0x1FFF] {
                for (proto, l4) in l4s + [(47, [0, 0, 0x08, 0])] {
                    for whole in [true, false] {
                        let payload = whole ? l4 : Array(l4.prefix(2))
                        let frame = F.ethernet(type: 0x0800, payload: F.ipv4(proto: proto, fragment: flags | offset, payload: payload), pad: false)
                        h.check(frame, "IPv4 flags 0x\(hex(flags)) offset \(offset) proto \(proto), \(whole ? "L4 header" : "2 bytes of L4")",
                                category: "IPv4 fragment fields")
                    }
                }
            }
        }
        h.settle()
        h.summary(["IPv4 IHL x total length", "IPv4 IHL beyond the packet", "IPv4 version", "IPv4 options at the 40-byte limit", "IPv4 fragment fields"])
    }

    // MARK: IPv6 extension headers

    /// Every chain of up to five extension headers (hop-by-hop, routing, destination options,
    /// first and later fragment) before each kind of upper layer; longer chains; and chains
    /// whose lengths (the headers' own or the payload length) run past the packet.
    @Test func ipv6ExtensionHeaderChains() throws {
        let h = try CorpusHarness.shared(tunnels: false)
        let finals: [(UInt8, [UInt8])] = [
            (17, F.udp(53, 53, payload: [1, 2, 3, 4])), (6, F.tcp(443, 1024)), (132, F.sctp(1, 2)),
            (58, F.icmp(type: 128, code: 0)), (59, []), (1, F.icmp(type: 8, code: 0)),
        ]
        var n = 0
        for depth in 0...5 {
            var indices = [Int](repeating: 0, count: depth)
            while true {
                let (next, l4) = finals[n % finals.count]
                let chain = S.ipv6Chain(indices.map { S.extensionKinds[$0] }, last: next)
                let frame = F.ethernet(tci: n % 7 == 0 ? 0x0042 : nil, type: 0x86DD, payload: F.ipv6(next: chain.first, payload: chain.bytes + l4))
                h.check(frame, "IPv6 chain [\(indices.map { S.extensionKinds[$0].name }.joined(separator: ", "))] then \(next)",
                        category: "IPv6 extension chains (all up to 5 deep)")
                n += 1
                // The next chain of this depth (odometer order).
                var i = depth - 1
                while i >= 0 {
                    indices[i] += 1
                    if indices[i] < S.extensionKinds.count { break }
                    indices[i] = 0
                    i -= 1
                }
                if i < 0 { break }
            }
        }
        // Over-long chains.
        for depth in [6, 8, 16, 40] {
            for kinds in [[0], [0, 1, 2], [2, 3]] {
                let chain = S.ipv6Chain((0..<depth).map { S.extensionKinds[kinds[$0 % kinds.count]] }, last: 17)
                let frame = F.ethernet(type: 0x86DD, payload: F.ipv6(next: chain.first, payload: chain.bytes + F.udp(1, 2)))
                h.check(frame, "IPv6 chain of \(depth) headers", category: "IPv6 over-long chains")
            }
        }
        // Lengths past the packet: the last header's own length, and the payload length.
        for depth in 1...4 {
            for kind in [0, 1, 2] {
                let kinds = [S.ExtensionKind](repeating: S.extensionKinds[kind], count: depth)
                let chain = S.ipv6Chain(kinds, last: 17)
                let l4 = F.udp(7, 7)
                let lastLengthAt = 14 + 40 + chain.bytes.count - kinds[depth - 1].bytes.count + 1
                let natural = chain.bytes.count + l4.count
                for extLength: UInt8 in [0, 1, 2, 3, 4, 255] {
                    var frame = F.ethernet(type: 0x86DD, payload: F.ipv6(next: chain.first, payload: chain.bytes + l4), pad: false)
                    frame[lastLengthAt] = extLength
                    h.check(frame, "IPv6 \(depth) x \(kinds[0].name), last length byte \(extLength)", category: "IPv6 extension lengths past the packet")
                }
                for payloadLength in Set([0, 4, 7, 8, chain.bytes.count - 1, chain.bytes.count, natural - 1, natural, natural + 1, 0xFFFF]).sorted()
                where payloadLength >= 0 {
                    for padding in [0, 24] {
                        let ip = F.ipv6(next: chain.first, payload: chain.bytes + l4, payloadLength: payloadLength)
                        let frame = F.ethernet(type: 0x86DD, payload: ip + [UInt8](repeating: 0, count: padding), pad: false)
                        h.check(frame, "IPv6 \(depth) x \(kinds[0].name), payload length \(payloadLength), padding \(padding)",
                                category: "IPv6 extension lengths past the packet")
                    }
                }
            }
        }
        // Fragment headers: offsets around the 13-bit field, M, the reserved bits, first or after
        // a hop-by-hop header, followed by each kind of header.
        for offset: UInt16 in [0, 1, 0x1000, 0x1FFF] {
            for low: UInt16 in [0, 1, 6, 7] {  // M and the two reserved bits
                for next: UInt8 in [17, 6, 58, 0, 44, 59] {
                    for afterHopByHop in [false, true] {
                        let frag = [next, 0] + F.be16(offset << 3 | low) + [0, 0, 0x56, 0x78]
                        let rest: [UInt8] = next == 17 ? F.udp(1, 2) : next == 6 ? F.tcp(3, 4) : next == 58 ? F.icmp(type: 1, code: 4)
                            : next == 0 ? F.extensionHeader(next: 17) + F.udp(5, 6) : next == 44 ? F.fragmentHeader(next: 17, offset: 0, more: false) + F.udp(7, 8) : []
                        let payload = (afterHopByHop ? F.extensionHeader(next: 44) : []) + frag + rest
                        let frame = F.ethernet(type: 0x86DD, payload: F.ipv6(next: afterHopByHop ? 0 : 44, payload: payload), pad: false)
                        h.check(frame, "IPv6 fragment offset \(offset) low bits \(low) next \(next)\(afterHopByHop ? " after hop-by-hop" : "")",
                                category: "IPv6 fragment fields")
                    }
                }
            }
        }
        // A fragment header with fewer than 8 bytes of payload left.
        for available in 0...8 {
            let frag = F.fragmentHeader(next: 17, offset: 0, more: true)
            let frame = F.ethernet(type: 0x86DD, payload: F.ipv6(next: 44, payload: Array(frag.prefix(available))), pad: false)
            h.check(frame, "IPv6 fragment header with \(available) bytes", category: "IPv6 extension lengths past the packet")
        }
        h.settle()
        h.summary(["IPv6 extension chains (all up to 5 deep)", "IPv6 over-long chains", "IPv6 extension lengths past the packet", "IPv6 fragment fields"])
    }

    // MARK: Ethernet and ARP

    /// EtherTypes around the 802.3 boundary and the ones the parsers know, behind zero, one and
    /// two tags; ARP fixed headers of every combination that matters, at every length that does.
    @Test func etherTypesAndARPHeaders() throws {
        let h = try CorpusHarness.shared(tunnels: false)
        let ip = F.ipv4(proto: 17, payload: F.udp(1, 2))
        let types: [UInt16] = [0x0000, 0x0001, 0x05DC, 0x05FF, 0x0600, 0x0601, 0x0800, 0x0806, 0x86DD, 0x8100, 0x88A8, 0x9100, 0x88CC, 0xFFFF]
        for type in types {
            for tags in [[], [(0x8100, 0x0064)], [(0x88A8, 0x0001)], [(0x88A8, 0x0064), (0x8100, 0x000A)]] as [[(UInt16, UInt16)]] {
                for payload in [ip, F.arp(op: 1), Array(ip.prefix(10))] {
                    let frame = S.ethernet(tags: tags, type: type, payload: payload)
                    h.check(frame, "EtherType 0x\(String(type, radix: 16)) behind \(tags.count) tags, \(payload.count)-byte payload",
                            category: "EtherTypes behind 0-2 tags")
                }
            }
        }
        for hardware: UInt16 in [0, 1, 6] {
            for proto: UInt16 in [0x0800, 0x86DD] {
                for (hlen, plen) in [(6, 4), (6, 16), (8, 4), (0, 0)] as [(UInt8, UInt8)] {
                    for op: UInt16 in [1, 0x0203] {
                        var arp = F.arp(op: op, hardware: hardware)
                        arp.replaceSubrange(2..<6, with: F.be16(proto) + [hlen, plen])
                        for length in [7, 8, 27, 28, 46] {
                            let body = Array((arp + [UInt8](repeating: 0, count: 18)).prefix(length))
                            for tagged in [false, true] {
                                let frame = S.ethernet(tags: tagged ? [(0x8100, 7)] : [], type: 0x0806, payload: body)
                                h.check(frame, "ARP hardware \(hardware) protocol 0x\(String(proto, radix: 16)) lengths \(hlen)/\(plen) op \(op), \(length) bytes\(tagged ? ", tagged" : "")",
                                        category: "ARP fixed headers")
                            }
                        }
                    }
                }
            }
        }
        h.settle()
        h.summary(["EtherTypes behind 0-2 tags", "ARP fixed headers"])
    }

    // MARK: Malformed VXLAN

    @Test func malformedVXLANOuterHeaders() throws {
        let h = try CorpusHarness.shared(tunnels: true)
        let inner = F.udp4()
        let base = S.vxlanFrame(inner)
        let cat = "VXLAN malformed outer headers"
        func check(_ f: [UInt8], _ label: String) { h.check(f, label, category: cat) }

        for flags in 0...255 {
            var f = base
            f[42] = UInt8(flags)
            check(f, "VXLAN flags 0x\(hex(UInt8(flags)))")
        }
        var rng = SplitMix64(seed: 0x7E5E_47ED)
        for at in [43, 44, 45, 49] {
            for value: UInt8 in [0x01, 0x80, 0xFF, UInt8.random(in: 1...255, using: &rng)] {
                var f = base
                f[at] = value
                check(f, "VXLAN reserved byte \(at) = \(value)")
            }
        }
        var allReserved = base
        for at in [43, 44, 45, 49] { allReserved[at] = 0xFF }
        check(allReserved, "VXLAN every reserved bit set, I set")
        allReserved[42] = 0xF7
        check(allReserved, "VXLAN every bit but I set")

        let udpLength = base.count - 34
        for length in Set([0, 1, 7, 8, 9, 15, 16, 29, 30, 31, udpLength - 8, udpLength - 1, udpLength, udpLength + 1, udpLength + 8, 0xFFFF]).sorted() {
            var f = base
            f[38] = UInt8(length >> 8)
            f[39] = UInt8(length & 0xFF)
            check(f, "VXLAN UDP length \(length) of \(udpLength)")
        }
        let total = base.count - 14
        for t in Set([0, 20, 27, 28, 29, 49, 50, total - 14, total - 1, total, total + 1, 0xFFFF]).sorted() {
            for padding in [0, 1, 8] {
                var f = base + [UInt8](repeating: 0, count: padding)
                f[16] = UInt8(t >> 8)
                f[17] = UInt8(t & 0xFF)
                check(f, "VXLAN outer tot_len \(t) of \(total), padding \(padding)")
            }
        }
        for port: UInt16 in [0, 4788, 4790, 8472, 8473, 80, 0xFFFF] {
            check(S.vxlanFrame(inner, dstPort: port), "VXLAN to UDP port \(port)")
            check(S.vxlanFrame(inner, dstPort: port, remote: S.remoteB), "VXLAN from \(S.remoteB) to UDP port \(port)")
        }
        for (name, fragment) in [("DF", 0x4000), ("MF", 0x2000), ("offset 1", 0x0001), ("offset 185", 0x00B9), ("DF+MF", 0x6000),
                                 ("last fragment", 0x0010), ("reserved flag", 0x8000)] as [(String, UInt16)] {
            check(S.vxlanFrame(inner, fragment: fragment), "VXLAN outer fragment field \(name)")
        }
        for (name, vni, remote, local) in [
            ("fixed VNI", 4100, S.remoteA, S.local), ("wrong VNI", 4101, S.remoteA, S.local), ("VNI 0", 0, S.remoteA, S.local),
            ("flow tunnel, any VNI", 5000, S.remoteB, S.local), ("flow tunnel, VNI 0", 0, S.remoteB, S.local),
            ("fixed VNI beside a flow tunnel", 77, S.remoteB, S.local), ("max VNI", 0xFF_FFFF, S.remoteB, S.local),
            ("unknown remote", 4100, [192, 0, 2, 99], S.local), ("other local address", 4100, S.remoteA, [192, 0, 2, 50]),
        ] as [(String, UInt32, [UInt8], [UInt8])] {
            check(S.vxlanFrame(inner, vni: vni, remote: remote, local: local), "VXLAN \(name)")
        }
        // Outer headers the plain layout excludes.
        for ihl in [0, 4, 6, 15] {
            var f = base
            f[14] = 0x40 | UInt8(ihl)
            check(f, "VXLAN outer IHL \(ihl), no options")
        }
        let withOption = S.vxlanFrame(inner, options: [1, 1, 1, 0])
        check(withOption, "VXLAN outer IPv4 options")
        for version in [0, 5, 6, 15] {
            var f = base
            f[14] = UInt8(version << 4 | 5)
            check(f, "VXLAN outer version \(version)")
        }
        for proto: UInt8 in [6, 1, 132, 0] {
            var f = base
            f[23] = proto
            check(f, "VXLAN outer protocol \(proto)")
        }
        for (tpid, tci) in [(0x8100, 0x0005), (0x88A8, 0x0100)] as [(UInt16, UInt16)] {
            let tagged = Array(base[0..<12]) + F.be16(tpid) + F.be16(tci) + Array(base[12...])
            check(tagged, "VXLAN outer with a tag \(String(tpid, radix: 16))")
        }
        // Inner frames shorter than an Ethernet header, the outer lengths consistent.
        for n in 0...14 {
            check(S.vxlanFrame(Array(inner.prefix(n))), "VXLAN with a \(n)-byte inner frame")
        }
        // VXLAN in VXLAN: decapsulated once, the inner VXLAN frame is an ordinary frame.
        check(S.vxlanFrame(S.vxlanFrame(inner)), "VXLAN in VXLAN")
        check(S.vxlanFrame(S.vxlanFrame(inner), vni: 5000, remote: S.remoteB), "VXLAN in VXLAN, flow tunnel")
        h.settle()
        h.summary([cat])
        #expect(h.tally[cat]?.decapsulated ?? 0 >= 128, "the flag bytes with I set are taken")
    }

    // MARK: Frame sizes

    /// Frames from BPF_PROG_TEST_RUN's smallest (14 bytes) to its largest. It accepts far more
    /// than a page (the rest goes into fragments), but a program without frags support sees only
    /// the linear part: the harness measures that limit, and the program must then act on the
    /// first `linearLimit` bytes as the Swift extractor does on them (while the output is the
    /// whole frame).
    @Test func jumboFramesAndTheTestRunLimits() throws {
        let h = try CorpusHarness.shared(tunnels: true)
        let limit = h.linearLimit
        #expect(limit >= 1514, "the linear XDP test buffer: \(limit) bytes")
        let maximum = h.largestAcceptedFrame()
        #expect(maximum >= 9000, "BPF_PROG_TEST_RUN accepts frames up to \(maximum) bytes")
        print("MalformedCorpusTests: BPF_PROG_TEST_RUN (plain) accepts XDP input up to \(maximum) bytes; a program without frags support sees the first \(limit)")
        #expect(throws: BPFError.libbpf(step: "BPF_PROG_TEST_RUN", errno: ENOMEM)) {
            try ProgramTestRun.xdp(programFD: h.cache.programFD, packet: [UInt8](repeating: 0, count: maximum + 1))
        }
        let cat = "frame sizes up to the test run's maximum"
        for size in Set([60, 1514, 1518, limit - 1, limit, limit + 1, 4096, 9000, 9018, 9216, 16384, maximum]).sorted() {
            for (name, frame) in S.sized(size) {
                h.check(frame, "\(size)-byte \(name)", category: cat)
            }
        }
        h.settle()
        h.summary([cat])
    }

    /// Shorter than an Ethernet header: refused by the test run (EINVAL), malformed for Swift.
    @Test func runtFramesAreRefused() throws {
        let h = try CorpusHarness.shared(tunnels: false)
        for s in [F.udp4(), F.tcp4(tci: 3), F.udp6()] {
            for n in 0...14 {
                h.check(Array(s.prefix(n)), "runt of \(n) bytes", category: "runt frames")
            }
        }
        h.settle()
        h.summary(["runt frames"])
        #expect(h.tally["runt frames"]?.refused == 42)
    }

    // MARK: Randomised frames

    static let defaultSeed: UInt64 = 0x5EED_0017_0002_C0DE
    static let randomCases = 4000

    /// Valid frames of every kind above, mutated with SplitMix64: bytes replaced or flipped,
    /// cuts, padding, tags inserted or removed, lengths, EtherTypes, protocols and VXLAN fields
    /// rewritten. SHUNT_TEST_SEED (decimal or 0x-hex) picks the seed; failures name it and show
    /// the frame.
    @Test func randomlyMutatedFrames() throws {
        let seed = Self.seedFromEnvironment()
        print("MalformedCorpusTests: \(Self.randomCases) random frames, SHUNT_TEST_SEED=0x\(String(seed, radix: 16))")
        var rng = SplitMix64(seed: seed)
        let plain = try CorpusHarness.shared(tunnels: false)
        let tunnel = try CorpusHarness.shared(tunnels: true)
        let cat = "random mutations"
        for i in 0..<Self.randomCases {
            // A third of them VXLAN.
            let pool = rng.next() % 3 == 0 ? S.vxlan : S.plain
            let s = pool[Int(rng.next() % UInt64(pool.count))]
            var frame = s.bytes
            var steps: [String] = []
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                steps.append(S.mutate(&frame, s, &rng))
            }
            let h = s.isVXLAN || i % 2 == 1 ? tunnel : plain
            h.check(frame, "seed 0x\(String(seed, radix: 16)) case \(i): \(s.name), \(steps.joined(separator: "; "))",
                    category: cat, entry: i % 4 < 2 ? .drop : .output)
        }
        plain.settle()
        tunnel.settle()
        plain.summary([cat])
        tunnel.summary([cat])
        if plain.failures + tunnel.failures > 0 {
            Issue.record("random frames failed with SHUNT_TEST_SEED=0x\(String(seed, radix: 16)): rerun with it to reproduce")
        }
    }

    static func seedFromEnvironment() -> UInt64 {
        guard let text = getenv("SHUNT_TEST_SEED").map({ String(cString: $0) }), !text.isEmpty else { return defaultSeed }
        let parsed = text.hasPrefix("0x") || text.hasPrefix("0X") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
        guard let parsed else {
            Issue.record("SHUNT_TEST_SEED=\(text) is no number: using the default seed")
            return defaultSeed
        }
        return parsed
    }
}

// MARK: - The harness

/// One loaded xdp_flowcache, lo as port 7, optionally the underlay of `CorpusSpecimen.tunnels`.
/// One of each is shared by the (serialized) tests of the suite: loading takes a while.
final class CorpusHarness {
    static let port: UInt32 = 7
    nonisolated(unsafe) private static var loaded: [Bool: CorpusHarness] = [:]

    /// The harness for a test: loaded on first use; its failure count starts again at 0.
    static func shared(tunnels: Bool) throws -> CorpusHarness {
        let h = try loaded[tunnels] ?? CorpusHarness(tunnels: tunnels)
        loaded[tunnels] = h
        h.failures = 0
        return h
    }

    enum Entry { case drop, output }

    /// What the program must do with a frame.
    struct Expectation {
        /// The key it looks up; nil: malformed.
        var key: FlowKey?
        /// The tunnel port, when it decapsulates.
        var tunnel: UInt32?
        /// The bytes a hit counts.
        var counted: UInt64 = 0
    }

    /// The counters a batch of frames moves.
    struct Counters: Equatable, CustomStringConvertible {
        var malformed: UInt64 = 0
        var misses: UInt64 = 0
        var hits: UInt64 = 0
        var hitBytes: UInt64 = 0
        var flowDrops: UInt64 = 0
        var sent: UInt64 = 0
        var decapsulated: UInt64 = 0
        /// userspace, not_a_port, redirect_errors, and drops for other reasons: never expected.
        var other: UInt64 = 0

        static func - (a: Counters, b: Counters) -> Counters {
            Counters(malformed: a.malformed &- b.malformed, misses: a.misses &- b.misses, hits: a.hits &- b.hits,
                     hitBytes: a.hitBytes &- b.hitBytes, flowDrops: a.flowDrops &- b.flowDrops, sent: a.sent &- b.sent,
                     decapsulated: a.decapsulated &- b.decapsulated, other: a.other &- b.other)
        }

        static func += (a: inout Counters, b: Counters) {
            a.malformed += b.malformed
            a.misses += b.misses
            a.hits += b.hits
            a.hitBytes += b.hitBytes
            a.flowDrops += b.flowDrops
            a.sent += b.sent
            a.decapsulated += b.decapsulated
            a.other += b.other
        }

        var description: String {
            "malformed \(malformed) misses \(misses) hits \(hits) (\(hitBytes) B) flow drops \(flowDrops) sent \(sent) decapsulated \(decapsulated) other \(other)"
        }
    }

    /// Frames per category, for the summary.
    struct Tally {
        var frames = 0
        var refused = 0
        var malformed = 0
        var keys = 0
        /// Taken by a tunnel (decapsulated, or malformed inside).
        var decapsulated = 0
        var innerMalformed = 0
    }

    let cache: FlowCacheProgram
    let tunnels: [TunnelPort]
    let classifier: UnderlayClassifier
    /// The bytes of a test-run frame the program sees (the linear part of the XDP buffer).
    private(set) var linearLimit = Int.max
    private(set) var tally: [String: Tally] = [:]
    /// Frames with a recorded problem, in this test.
    private(set) var failures = 0
    private let guardPage = GuardedPage()
    private var batch: [(frame: [UInt8], label: String, entry: Entry)] = []
    private var expected = Counters()
    private var base = Counters()
    private var index = 0

    init(tunnels withTunnels: Bool) throws {
        cache = try FlowCacheProgram(maxEntries: 64)
        try cache.setPort(number: Self.port, ifindex: try #require(Sys.interfaceIndex("lo")))
        tunnels = withTunnels ? CorpusSpecimen.tunnels : []
        classifier = UnderlayClassifier(tunnels: tunnels)
        for t in tunnels { try cache.addTunnel(t.abi(sourceMAC: MACAddress(value: 0x02_00_00_00_01_01))) }
        linearLimit = try measureLinearLimit()
        base = try counters()
    }

    // MARK: Checking one frame

    /// Runs `frame` through the program as described on MalformedCorpusTests and records an issue
    /// for anything wrong. `entry` picks the action installed for the parity run (default:
    /// alternately a drop and an output).
    func check(_ frame: [UInt8], _ label: String, category: String, entry: Entry? = nil) {
        let kind = entry ?? (index % 2 == 0 ? .drop : .output)
        index += 1
        var delta = Counters()
        var problems: [String] = []
        let e = run(frame, kind, &delta, &problems)
        var t = tally[category] ?? Tally()
        t.frames += 1
        if frame.count < 14 { t.refused += 1 } else if e.key == nil { t.malformed += 1 } else { t.keys += 1 }
        if e.tunnel != nil {
            t.decapsulated += 1
            if e.key == nil { t.innerMalformed += 1 }
        }
        tally[category] = t
        report(problems, label, frame)
        if frame.count >= 14 {
            expected += delta
            batch.append((frame, label, kind))
            if batch.count >= 256 { settle() }
        }
    }

    /// Compares the counters the batch moved with the expected ones; on a difference, replays
    /// the batch frame by frame to find the frames that disagree.
    func settle() {
        guard !batch.isEmpty, let now = try? counters() else { return }
        let moved = now - base
        if moved != expected {
            Issue.record("counters moved by \(moved), expected \(expected), over \(batch.count) frames: replaying them one by one")
            var before = now
            for (frame, label, kind) in batch {
                var delta = Counters()
                var ignored: [String] = []  // reported on the first run
                _ = run(frame, kind, &delta, &ignored)
                guard let after = try? counters() else { break }
                if after - before != delta { report(["counters moved by \(after - before), expected \(delta)"], label, frame) }
                before = after
            }
            base = before
        } else {
            base = now
        }
        expected = Counters()
        batch.removeAll(keepingCapacity: true)
    }

    func summary(_ categories: [String]) {
        for c in categories {
            let t = tally[c] ?? Tally()
            print("MalformedCorpusTests: \(c): \(t.frames) frames (\(t.refused) refused, \(t.malformed) malformed, \(t.keys) with a key; \(t.decapsulated) for a tunnel, \(t.innerMalformed) of them malformed inside)\(tunnels.isEmpty ? "" : " [tunnel tables]")")
        }
    }

    private func report(_ problems: [String], _ label: String, _ frame: [UInt8]) {
        guard !problems.isEmpty else { return }
        failures += 1
        if failures <= 20 {
            Issue.record("\(label): \(problems.joined(separator: "; "))\nframe (\(frame.count) bytes):\n\(hex(frame))")
        } else if failures == 21 {
            Issue.record("more frames fail; only the first 20 are shown")
        }
    }

    private func run(_ frame: [UInt8], _ kind: Entry, _ delta: inout Counters, _ problems: inout [String]) -> Expectation {
        let view = frame.count > linearLimit ? Array(frame.prefix(linearLimit)) : frame
        let e = expectation(view, whole: view.count == frame.count, &problems)
        guard frame.count >= 14 else {
            if e.key != nil { problems.append("the Swift extractor takes a \(frame.count)-byte frame") }
            do {
                _ = try ProgramTestRun.xdp(programFD: cache.programFD, packet: frame)
                problems.append("BPF_PROG_TEST_RUN took a \(frame.count)-byte frame")
            } catch BPFError.libbpf(_, let code) where code == EINVAL {
            } catch {
                problems.append("\(error) instead of EINVAL")
            }
            return e
        }
        do {
            // No entry: up as received.
            let up = try ProgramTestRun.xdp(programFD: cache.programFD, packet: frame)
            if up.returnValue != XDP.pass { problems.append("verdict \(up.returnValue) with an empty cache") }
            if up.output != frame { problems.append("a frame passed up was modified") }
            if e.key == nil { delta.malformed += 1 } else { delta.misses += 1 }
            guard let key = e.key else { return e }

            // Only the Swift key installed: the program acts on it only if its key is the same.
            let actions: [DatapathAction] = kind == .drop ? [] : [.output(Self.port)]
            try cache.install(key: key, entry: FlowCacheProgram.entry(actions: actions))
            defer { _ = try? cache.remove(key: key) }
            let hit = try ProgramTestRun.xdp(programFD: cache.programFD, packet: frame)
            let what = e.tunnel.map { "decapsulated into port \($0), " } ?? ""
            switch kind {
            case .drop:
                if hit.returnValue != XDP.drop {
                    problems.append("\(what)verdict \(hit.returnValue), not XDP_DROP, with a drop entry for the Swift key \(key)")
                }
                delta.flowDrops += 1
            case .output:
                if hit.returnValue != XDP.redirect {
                    problems.append("\(what)verdict \(hit.returnValue), not XDP_REDIRECT, with an output entry for the Swift key \(key)")
                }
                let out = e.tunnel != nil ? Array(frame[CorpusSpecimen.vxlanOverhead...]) : frame
                if hit.returnValue == XDP.redirect && hit.output != out { problems.append("redirected bytes differ from the \(e.tunnel != nil ? "inner " : "")frame") }
                delta.sent += 1
            }
            delta.hits += 1
            delta.hitBytes += e.counted
            if e.tunnel != nil { delta.decapsulated += 1 }
        } catch {
            problems.append("\(error)")
        }
        return e
    }

    /// What the program must do with the `view` it sees: the Swift extractor's key of the frame,
    /// or, when the fast path decapsulates it, of the inner frame (in_port the tunnel port,
    /// tun_id the VNI). `whole`: the view is the whole frame, as the slow path would see it.
    func expectation(_ view: [UInt8], whole: Bool, _ problems: inout [String]) -> Expectation {
        let outer = guardPage.extract(view, from: 0, inPort: Self.port)
        let fast = outer.flatMap { fastPathTunnel(view, $0) }
        if !tunnels.isEmpty && whole {
            // The fast path takes exactly the VXLAN frames the slow path decapsulates from offset
            // 50 to the end of the frame (its "plain layout"), into the same tunnel and VNI.
            var slow: (port: UInt32, vni: UInt32)?
            if case let .decapsulate(i, vni, offset, length) = guardPage.classify(view, classifier),
               offset == CorpusSpecimen.vxlanOverhead, length == view.count - offset {
                slow = (tunnels[i].port, vni)
            }
            if fast?.port != slow?.port || fast?.vni != slow?.vni {
                problems.append("the fast path model decapsulates into \(fast.map { "port \($0.port) VNI \($0.vni)" } ?? "nothing"), the slow path into \(slow.map { "port \($0.port) VNI \($0.vni)" } ?? "nothing") from offset 50")
            }
        }
        guard let outer else { return Expectation() }
        guard let fast else { return Expectation(key: outer, counted: UInt64(view.count)) }
        guard var inner = guardPage.extract(view, from: CorpusSpecimen.vxlanOverhead, inPort: fast.port) else {
            return Expectation(tunnel: fast.port)
        }
        inner.tunID = UInt64(fast.vni)
        return Expectation(key: inner, tunnel: fast.port, counted: UInt64(view.count - CorpusSpecimen.vxlanOverhead))
    }

    /// The fast path's rule (tunnel.h): an untagged, unfragmented IPv4/UDP frame on an underlay,
    /// IHL 5, no bytes after the UDP datagram, the I flag, at least an Ethernet header inside,
    /// for a tunnel endpoint (a fixed VNI before a flow one).
    func fastPathTunnel(_ f: [UInt8], _ outer: FlowKey) -> (port: UInt32, vni: UInt32)? {
        guard !tunnels.isEmpty, outer.inPort == Self.port, outer.dlType == 0x0800, outer.nwProto == 17, outer.vlanTCI == 0,
              outer.nwFrag == 0, f.count >= CorpusSpecimen.vxlanOverhead + 14, f[14] == 0x45 else { return nil }
        let total = Int(f[16]) << 8 | Int(f[17])
        let udpLength = Int(f[38]) << 8 | Int(f[39])
        guard 14 + total == f.count, udpLength == total - 20, f[42] & UInt8(SHUNT_VXLAN_FLAG_I) != 0 else { return nil }
        let vni = UInt32(f[46]) << 16 | UInt32(f[47]) << 8 | UInt32(f[48])
        let candidates = tunnels.filter {
            $0.underlayPort == Self.port && $0.local.value == outer.nwDstIPv4 && $0.remote.value == outer.nwSrcIPv4 &&
                $0.destinationPort == outer.tpDst
        }
        if let t = candidates.first(where: { $0.vni == vni }) ?? candidates.first(where: { $0.vni == nil }) {
            return (t.port, vni)
        }
        return nil
    }

    // MARK: Counters and limits

    func counters() throws -> Counters {
        let s = try cache.stats()
        let p = withUnsafeBytes(of: s.ports) {
            $0.loadUnaligned(fromByteOffset: Int(Self.port) * MemoryLayout<shunt_port_counters>.stride, as: shunt_port_counters.self)
        }
        var c = Counters(malformed: s.malformed, misses: s.misses, hits: s.hits, hitBytes: s.hit_bytes,
                         flowDrops: s.dropCount(.flowDrop), sent: p.tx_packets, decapsulated: p.rx_decapsulated)
        c.other = s.userspace + s.not_a_port + s.redirect_errors
        for r in DropReason.allCases where r != .flowDrop { c.other += s.dropCount(r) }
        return c
    }

    /// The longest IPv4/UDP frame (its total length covering all of it) the program still finds
    /// its drop entry for: beyond it, the test run puts the rest of the frame in fragments the
    /// program does not see, so for the program the frame is cut there.
    private func measureLinearLimit() throws -> Int {
        func frame(_ n: Int) -> [UInt8] {
            F.ethernet(type: 0x0800, payload: F.ipv4(proto: 17, payload: F.udp(4, 4, payload: [UInt8](repeating: 0xC5, count: n - 42))), pad: false)
        }
        let key = try #require(guardPage.extract(frame(64), from: 0, inPort: Self.port))
        try cache.install(key: key, entry: FlowCacheProgram.entry(actions: []))
        defer { _ = try? cache.remove(key: key) }
        var seen = 64, cut = 65_535  // the program sees all of `seen`, not all of `cut`
        guard try ProgramTestRun.xdp(programFD: cache.programFD, packet: frame(cut)).returnValue != XDP.drop else { return cut }
        while cut - seen > 1 {
            let mid = (seen + cut) / 2
            if try ProgramTestRun.xdp(programFD: cache.programFD, packet: frame(mid)).returnValue == XDP.drop { seen = mid } else { cut = mid }
        }
        return seen
    }

    /// The largest frame BPF_PROG_TEST_RUN takes at all. (Its probes are counted: call it with
    /// no batch pending; the counters are taken afresh after it.)
    func largestAcceptedFrame() -> Int {
        precondition(batch.isEmpty)
        defer { if let now = try? counters() { base = now } }
        func accepted(_ n: Int) -> Bool { (try? ProgramTestRun.xdp(programFD: cache.programFD, packet: [UInt8](repeating: 0, count: n))) != nil }
        var ok = 14, refused = 1 << 20
        guard !accepted(refused) else { return refused }
        while refused - ok > 1 {
            let mid = (ok + refused) / 2
            if accepted(mid) { ok = mid } else { refused = mid }
        }
        return ok
    }
}

private typealias F = TestFrame

/// Two hex digits.
private func hex(_ byte: UInt8) -> String { byte < 0x10 ? "0" + String(byte, radix: 16) : String(byte, radix: 16) }

private func hex(_ v: UInt16) -> String { hex(UInt8(v >> 8)) + hex(UInt8(v & 0xFF)) }

/// A frame as lines of 32 bytes, each after its offset.
private func hex(_ bytes: [UInt8]) -> String {
    stride(from: 0, to: bytes.count, by: 32).map { start in
        let offset = String(start, radix: 16)
        return String(repeating: "0", count: max(0, 4 - offset.count)) + offset + "  " + bytes[start..<min(start + 32, bytes.count)].map(hex).joined(separator: " ")
    }.joined(separator: "\n")
}

extension shunt_fastpath_stats {
    fileprivate func dropCount(_ reason: DropReason) -> UInt64 {
        withUnsafeBytes(of: drops) { $0.load(fromByteOffset: Int(reason.rawValue) * 8, as: UInt64.self) }
    }
}

/// A frame copied to the end of a readable page that an inaccessible page follows: the Swift
/// parsers read it there, so a read past its end faults instead of going unnoticed.
final class GuardedPage {
    private let base: UnsafeMutableRawPointer
    private let page = Int(sysconf(Int32(_SC_PAGESIZE)))

    init() {
        guard let p = mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              p != UnsafeMutableRawPointer(bitPattern: -1) else { fatalError("mmap: \(errno)") }
        base = p
        precondition(mprotect(base + page, page, PROT_NONE) == 0)
    }

    deinit { munmap(base, 2 * page) }

    /// `bytes[offset...]` at the end of the page (or, when longer than a page, in an array).
    private func placed<R>(_ bytes: [UInt8], from offset: Int, _ body: (UnsafeRawPointer, Int) -> R) -> R {
        let n = max(0, bytes.count - offset)
        if n > page {
            return bytes.withUnsafeBytes { body($0.baseAddress! + offset, n) }
        }
        let p = base + page - n
        if n > 0 { bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress! + offset, byteCount: n) } }
        return body(UnsafeRawPointer(p), n)
    }

    func extract(_ bytes: [UInt8], from offset: Int, inPort: UInt32) -> FlowKey? {
        placed(bytes, from: offset) { p, n in
            var key = FlowKey()
            return FlowKeyExtractor.extract(frame: p, length: n, inPort: inPort, strippedVLANTCI: nil, into: &key) ? key : nil
        }
    }

    func classify(_ bytes: [UInt8], _ classifier: UnderlayClassifier) -> UnderlayVerdict {
        placed(bytes, from: 0) { p, n in classifier.classify(p, length: n) }
    }
}

// MARK: - Specimens

/// A valid frame of one kind, with where its length fields are, and the mutations of it.
struct CorpusSpecimen {
    /// A 16-bit length at `at` that counts the bytes from `from` to the end of the frame.
    struct LengthField {
        var at: Int
        var from: Int
    }

    var name: String
    var bytes: [UInt8]
    var lengths: [LengthField] = []
    var isVXLAN = false

    static let vxlanOverhead = Int(SHUNT_VXLAN_OVERHEAD)

    /// The first `n` bytes, with the length fields `fixing` picks rewritten to match the cut.
    func cut(_ n: Int, fixing: (LengthField) -> Bool) -> [UInt8] {
        var f = Array(bytes.prefix(n))
        for l in lengths where l.at + 2 <= n && fixing(l) {
            let v = min(0xFFFF, max(0, n - l.from))
            f[l.at] = UInt8(v >> 8)
            f[l.at + 1] = UInt8(v & 0xFF)
        }
        return f
    }

    // MARK: Builders

    static func ethernet(tags: [(UInt16, UInt16)], type: UInt16, payload: [UInt8]) -> [UInt8] {
        var f = F.macB + F.macA
        for (tpid, tci) in tags { f += F.be16(tpid) + F.be16(tci) }
        return f + F.be16(type) + payload
    }

    static func ipv4(_ name: String, tags: [(UInt16, UInt16)] = [], proto: UInt8, options: [UInt8] = [],
                     fragment: UInt16 = 0x4000, l4: [UInt8]) -> CorpusSpecimen {
        let l3 = 14 + 4 * tags.count
        let l4At = l3 + 20 + options.count
        var lengths = [LengthField(at: l3 + 2, from: l3)]
        if proto == 17 && fragment & 0x1FFF == 0 { lengths.append(LengthField(at: l4At + 4, from: l4At)) }
        return CorpusSpecimen(name: name, bytes: ethernet(tags: tags, type: 0x0800,
                                                          payload: F.ipv4(proto: proto, options: options, fragment: fragment, payload: l4)),
                              lengths: lengths)
    }

    static func ipv6(_ name: String, tags: [(UInt16, UInt16)] = [], chain kinds: [ExtensionKind] = [], next: UInt8,
                     l4: [UInt8]) -> CorpusSpecimen {
        let l3 = 14 + 4 * tags.count
        let chain = ipv6Chain(kinds, last: next)
        let l4At = l3 + 40 + chain.bytes.count
        var lengths = [LengthField(at: l3 + 4, from: l3 + 40)]
        if next == 17 { lengths.append(LengthField(at: l4At + 4, from: l4At)) }
        return CorpusSpecimen(name: name, bytes: ethernet(tags: tags, type: 0x86DD, payload: F.ipv6(next: chain.first, payload: chain.bytes + l4)),
                              lengths: lengths)
    }

    struct ExtensionKind {
        var name: String
        var number: UInt8
        /// The header with its next-header byte (the first) to be filled in.
        var bytes: [UInt8]
    }

    static let extensionKinds: [ExtensionKind] = [
        ExtensionKind(name: "hop-by-hop", number: 0, bytes: F.extensionHeader(next: 0)),
        ExtensionKind(name: "routing", number: 43, bytes: F.extensionHeader(next: 0, units: 2)),
        ExtensionKind(name: "destination options", number: 60, bytes: F.extensionHeader(next: 0)),
        ExtensionKind(name: "first fragment", number: 44, bytes: F.fragmentHeader(next: 0, offset: 0, more: true)),
        ExtensionKind(name: "later fragment", number: 44, bytes: F.fragmentHeader(next: 0, offset: 37, more: true)),
    ]

    /// The headers `kinds` chained, the last one's next header `last`: the IPv6 next header
    /// and the bytes.
    static func ipv6Chain(_ kinds: [ExtensionKind], last: UInt8) -> (first: UInt8, bytes: [UInt8]) {
        var bytes: [UInt8] = []
        for (i, k) in kinds.enumerated() {
            var h = k.bytes
            h[0] = i + 1 < kinds.count ? kinds[i + 1].number : last
            bytes += h
        }
        return (kinds.first?.number ?? last, bytes)
    }

    static let plain: [CorpusSpecimen] = {
        let udp = F.udp(1234, 53, payload: [1, 2, 3, 4])
        let tcp = F.tcp(40000, 80)
        let sctp = F.sctp(2905, 2906)
        let icmp = F.icmp(type: 8, code: 0)
        let k = extensionKinds
        let arp = F.arp(op: 1)
        return [
            CorpusSpecimen(name: "Ethernet, EtherType 0x9000", bytes: ethernet(tags: [], type: 0x9000, payload: [1, 2, 3, 4, 5, 6, 7, 8])),
            CorpusSpecimen(name: "802.3 LLC", bytes: ethernet(tags: [], type: 0x0026, payload: [0x42, 0x42, 0x03, 0, 0, 0])),
            CorpusSpecimen(name: "802.1Q ARP", bytes: ethernet(tags: [(0x8100, 0x0002)], type: 0x0806, payload: arp)),
            CorpusSpecimen(name: "ARP request", bytes: ethernet(tags: [], type: 0x0806, payload: arp)),
            CorpusSpecimen(name: "ARP, hardware type 6", bytes: ethernet(tags: [], type: 0x0806, payload: F.arp(op: 2, hardware: 6))),
            ipv4("IPv4 TCP", proto: 6, l4: tcp),
            ipv4("IPv4 UDP", proto: 17, l4: udp),
            ipv4("IPv4 SCTP", proto: 132, l4: sctp),
            ipv4("IPv4 ICMP", proto: 1, l4: icmp),
            ipv4("IPv4 GRE", proto: 47, l4: [0, 0, 0x08, 0x00]),
            ipv4("802.1Q IPv4 UDP", tags: [(0x8100, 0x0123)], proto: 17, l4: udp),
            ipv4("802.1ad + 802.1Q IPv4 UDP", tags: [(0x88A8, 0x0064), (0x8100, 0x000A)], proto: 17, l4: udp),
            ipv4("three tags IPv4 TCP", tags: [(0x88A8, 1), (0x8100, 2), (0x8100, 3)], proto: 6, l4: tcp),
            ipv4("IPv4 4 bytes of options TCP", proto: 6, options: [0x94, 0x04, 0, 0], l4: tcp),
            ipv4("IPv4 8 bytes of options ICMP", proto: 1, options: [1, 1, 1, 1, 1, 1, 1, 0], l4: icmp),
            ipv4("IPv4 40 bytes of options UDP", proto: 17, options: [UInt8](repeating: 1, count: 40), l4: udp),
            ipv4("IPv4 40 bytes of options SCTP", proto: 132, options: [UInt8](repeating: 1, count: 40), l4: sctp),
            ipv4("802.1Q IPv4 40 bytes of options TCP", tags: [(0x8100, 0x0FFF)], proto: 6, options: [UInt8](repeating: 1, count: 40), l4: tcp),
            ipv4("IPv4 first fragment UDP", proto: 17, fragment: 0x2000, l4: udp),
            ipv4("IPv4 later fragment", proto: 17, fragment: 0x00B9, l4: [9, 9, 9, 9, 9, 9, 9, 9]),
            ipv6("IPv6 UDP", next: 17, l4: udp),
            ipv6("IPv6 TCP", next: 6, l4: tcp),
            ipv6("IPv6 SCTP", next: 132, l4: sctp),
            ipv6("IPv6 ICMPv6", next: 58, l4: F.icmp(type: 128, code: 0)),
            ipv6("IPv6 no next header", next: 59, l4: []),
            ipv6("802.1Q IPv6 TCP", tags: [(0x8100, 0x0ABC)], next: 6, l4: tcp),
            ipv6("802.1ad + 802.1Q IPv6 UDP", tags: [(0x88A8, 5), (0x8100, 6)], next: 17, l4: udp),
            ipv6("IPv6 hop-by-hop UDP", chain: [k[0]], next: 17, l4: udp),
            ipv6("IPv6 four extension headers TCP", chain: [k[0], k[1], k[2], k[3]], next: 6, l4: tcp),
            ipv6("IPv6 destination options + later fragment", chain: [k[2], k[4]], next: 17, l4: [1, 2, 3, 4, 5, 6, 7, 8]),
            ipv6("IPv6 routing SCTP", chain: [k[1]], next: 132, l4: sctp),
            ipv6("802.1Q IPv6 hop-by-hop ICMPv6", tags: [(0x8100, 0x0010)], chain: [k[0]], next: 58, l4: F.icmp(type: 135, code: 0)),
        ]
    }()

    // MARK: VXLAN

    static let local: [UInt8] = [192, 0, 2, 1]
    static let remoteA: [UInt8] = [192, 0, 2, 2]
    static let remoteB: [UInt8] = [192, 0, 2, 3]

    /// On underlay port 7: 4100 from A (port 4789 and, as another tunnel, 8472); any VNI from B
    /// (vni=flow) except 77, which a fixed tunnel takes.
    static let tunnels: [TunnelPort] = {
        func t(_ port: UInt32, _ remote: [UInt8], _ vni: UInt32?, dstPort: UInt16 = 4789) -> TunnelPort {
            var t = TunnelPort(name: "vx\(port)", port: port, underlayPort: CorpusHarness.port, local: IPv4Address(value: 0xC000_0201),
                               remote: IPv4Address(value: remote.reduce(0) { $0 << 8 | UInt32($1) }), vni: vni)
            t.destinationPort = dstPort
            return t
        }
        return [t(9, remoteA, 4100), t(10, remoteB, nil), t(11, remoteB, 77), t(12, remoteA, 4100, dstPort: 8472)]
    }()

    /// `inner` in VXLAN from `remote` to `local`, laid out as the slow path sends it.
    static func vxlanFrame(_ inner: [UInt8], vni: UInt32 = 4100, flags: UInt8 = UInt8(SHUNT_VXLAN_FLAG_I), dstPort: UInt16 = 4789,
                           remote: [UInt8] = remoteA, local: [UInt8] = local, fragment: UInt16 = 0, options: [UInt8] = []) -> [UInt8] {
        let vxlan: [UInt8] = [flags, 0, 0, 0, UInt8(vni >> 16 & 0xFF), UInt8(vni >> 8 & 0xFF), UInt8(vni & 0xFF), 0]
        return F.ethernet(dst: [0x02, 0, 0, 0, 1, 1], src: [0x02, 0, 0, 0, 2, 2], type: 0x0800,
                          payload: F.ipv4(src: remote, dst: local, proto: 17, options: options, fragment: fragment, id: 0x4321,
                                          payload: F.udp(50000, dstPort, payload: vxlan + inner)), pad: false)
    }

    static let vxlan: [CorpusSpecimen] = {
        let outerLengths = [LengthField(at: 16, from: 14), LengthField(at: 38, from: 34)]
        func s(_ inner: CorpusSpecimen, vni: UInt32 = 4100, remote: [UInt8] = remoteA) -> CorpusSpecimen {
            CorpusSpecimen(name: "VXLAN \(vni) [\(inner.name)]", bytes: vxlanFrame(inner.bytes, vni: vni, remote: remote),
                           lengths: outerLengths + inner.lengths.map { LengthField(at: $0.at + vxlanOverhead, from: $0.from + vxlanOverhead) },
                           isVXLAN: true)
        }
        let p = plain
        func named(_ n: String) -> CorpusSpecimen { p.first { $0.name == n }! }
        return [
            s(named("IPv4 UDP")),
            s(named("802.1Q IPv4 UDP")),
            s(named("802.1ad + 802.1Q IPv4 UDP")),
            s(named("IPv4 8 bytes of options ICMP")),
            s(named("IPv6 four extension headers TCP")),
            s(named("ARP request")),
            s(named("IPv6 TCP"), vni: 5000, remote: remoteB),
            s(named("IPv4 SCTP"), vni: 77, remote: remoteB),
        ]
    }()

    // MARK: Sizes

    /// Frames of `size` bytes: IPv4/UDP, tagged IPv6/TCP behind two extension headers, and
    /// VXLAN around an IPv4/UDP frame, their lengths covering the whole frame, or, beyond what a
    /// 16-bit length can say, as much of it as they can (the rest is padding); and a short
    /// packet with padding.
    static func sized(_ size: Int) -> [(String, [UInt8])] {
        func filler(_ n: Int) -> [UInt8] { (0..<max(0, n)).map { UInt8(truncatingIfNeeded: $0 &* 7) } }
        func padded(_ f: [UInt8]) -> [UInt8] { f + [UInt8](repeating: 0, count: max(0, size - f.count)) }
        let ip4 = min(size - 14, 0xFFFF)  // the IPv4 packet
        let udp4 = F.ethernet(type: 0x0800, payload: F.ipv4(proto: 17, payload: F.udp(9, 9, payload: filler(ip4 - 28))), pad: false)
        let k = extensionKinds
        let chain = ipv6Chain([k[0], k[2]], last: 6)
        let ip6 = min(size - 18 - 40, 0xFFFF)  // the IPv6 payload
        let tcp6 = F.ethernet(tci: 0x0007, type: 0x86DD, payload: F.ipv6(next: chain.first, payload: chain.bytes + F.tcp(80, 8080) + filler(ip6 - 16 - 20)), pad: false)
        let innerIP = min(size - 14, 0xFFFF) - 36 - 14  // the inner IPv4 packet
        let inner = F.ethernet(type: 0x0800, payload: F.ipv4(proto: 17, payload: F.udp(5, 6, payload: filler(innerIP - 28))), pad: false)
        // And a small packet padded to the size: its headers are whole in any linear part.
        let small = F.ethernet(tci: 0x0009, type: 0x0800, payload: F.ipv4(proto: 6, payload: F.tcp(1, 2)), pad: false)
        return [("IPv4 UDP", padded(udp4)), ("802.1Q IPv6 TCP behind two extension headers", padded(tcp6)),
                ("VXLAN IPv4 UDP", padded(vxlanFrame(inner))), ("802.1Q IPv4 TCP, 58 bytes, padded", padded(small))]
    }

    // MARK: Mutations

    /// One random change to `f` (a mutation of `s`); returns what it did.
    static func mutate(_ f: inout [UInt8], _ s: CorpusSpecimen, _ rng: inout SplitMix64) -> String {
        func pick(_ n: Int) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }
        func position() -> Int { pick(rng.next() % 4 != 0 ? min(f.count, 100) : f.count) }
        func put16(_ at: Int, _ v: UInt16) {
            guard at + 2 <= f.count else { return }
            f[at] = UInt8(v >> 8)
            f[at + 1] = UInt8(v & 0xFF)
        }
        // Offsets of the inner frame's Ethernet header, for VXLAN.
        let l2 = s.isVXLAN && rng.next() % 2 == 0 ? vxlanOverhead : 0
        switch pick(11) {
        case 0:
            guard !f.isEmpty else { return "nothing" }
            let at = position()
            f[at] = UInt8(truncatingIfNeeded: rng.next())
            return "byte \(at) = \(f[at])"
        case 1:
            guard !f.isEmpty else { return "nothing" }
            let at = position()
            let bit = pick(8)
            f[at] ^= 1 << bit
            return "bit \(bit) of byte \(at) flipped"
        case 2:
            let n = rng.next() % 50 == 0 ? pick(14) : 14 + pick(max(0, f.count - 14))
            f = Array(f.prefix(n))
            return "cut at \(n)"
        case 3:
            let n = 1 + pick(40)
            let zeros = rng.next() % 2 == 0
            f += (0..<n).map { _ in zeros ? 0 : UInt8(truncatingIfNeeded: rng.next()) }
            return "\(n) bytes of \(zeros ? "zero " : "random ")padding"
        case 4:
            let tpids: [UInt16] = [0x8100, 0x88A8, 0x9100, UInt16(truncatingIfNeeded: rng.next())]
            let tpid = tpids[pick(tpids.count)]
            let tci = UInt16(truncatingIfNeeded: rng.next())
            let at = min(l2 + 12, f.count)
            f.insert(contentsOf: F.be16(tpid) + F.be16(tci), at: at)
            return "tag \(String(tpid, radix: 16)):\(String(tci, radix: 16)) inserted at \(at)"
        case 5:
            let at = min(l2 + 12, f.count)
            let n = min(4, f.count - at)
            f.removeSubrange(at..<at + n)
            return "\(n) bytes removed at \(at)"
        case 6:
            guard !s.lengths.isEmpty else { return "no length field" }
            let l = s.lengths[pick(s.lengths.count)]
            let exact = max(0, f.count - l.from)
            let values = [0, 1, 7, 8, 19, 20, exact - 1, exact, exact + 1, exact + 8, pick(0x10000), 0xFFFF].map { UInt16(clamping: max(0, $0)) }
            let v = values[pick(values.count)]
            put16(l.at, v)
            return "length at \(l.at) = \(v)"
        case 7:
            let types: [UInt16] = [0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8, 0x05FF, 0x0600, 0x0026, UInt16(truncatingIfNeeded: rng.next())]
            let t = types[pick(types.count)]
            let at = l2 + (f.count > l2 + 13 && (f[l2 + 12] == 0x81 || f[l2 + 12] == 0x88) && rng.next() % 2 == 0 ? 16 : 12)
            put16(at, t)
            return "EtherType at \(at) = \(String(t, radix: 16))"
        case 8:
            let protos: [UInt8] = [0, 1, 6, 17, 43, 44, 47, 58, 59, 60, 132, 0x45, 0x60]
            let v = protos[pick(protos.count)]
            guard !f.isEmpty else { return "nothing" }
            let at = position()
            f[at] = v
            return "byte \(at) = \(v)"
        case 9:
            let lengths: [UInt8] = [0, 1, 2, 3, 0x0F, 0xFF]
            let candidates = [l2 + 14, l2 + 18, l2 + 54 + 1, l2 + 54 + 9, l2 + 54 + 17].filter { $0 < f.count }
            guard !candidates.isEmpty else { return "nothing" }
            let at = candidates[pick(candidates.count)]
            f[at] = at == l2 + 14 || at == l2 + 18 ? 0x40 | lengths[pick(lengths.count)] & 0x0F : lengths[pick(lengths.count)]
            return "header length byte \(at) = \(f[at])"
        default:
            guard s.isVXLAN, f.count >= 50 else { return "nothing" }
            switch pick(4) {
            case 0:
                f[42] = UInt8(truncatingIfNeeded: rng.next())
                return "VXLAN flags \(f[42])"
            case 1:
                let vnis: [UInt32] = [4100, 77, 5000, 0, UInt32(truncatingIfNeeded: rng.next()) & 0xFF_FFFF]
                let v = vnis[pick(vnis.count)]
                f[46] = UInt8(v >> 16 & 0xFF)
                f[47] = UInt8(v >> 8 & 0xFF)
                f[48] = UInt8(v & 0xFF)
                return "VNI \(v)"
            case 2:
                let ports: [UInt16] = [4789, 8472, 4790]
                let p = ports[pick(ports.count)]
                put16(36, p)
                return "UDP port \(p)"
            default:
                let remotes = [remoteA, remoteB, [192, 0, 2, 99]]
                let r = remotes[pick(remotes.count)]
                f.replaceSubrange(26..<30, with: r)
                return "outer source \(r)"
            }
        }
    }
}
