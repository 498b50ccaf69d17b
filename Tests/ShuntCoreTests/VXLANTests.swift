import CShunt
import ShuntTestSupport
import Testing
@testable import ShuntCore

/// Bytes from a hex dump, whitespace ignored.
func hexBytes(_ s: String) -> [UInt8] {
    let digits = s.filter { $0.isHexDigit }
    var out: [UInt8] = []
    var i = digits.startIndex
    while i < digits.endIndex {
        let j = digits.index(i, offsetBy: 2)
        out.append(UInt8(digits[i..<j], radix: 16)!)
        i = j
    }
    return out
}

/// A frame the Linux kernel's vxlan device sent (captured with tcpdump on the underlay peer):
/// `ip link add vx0 type vxlan id 4100 dstport 4789 remote 192.0.2.2 local 192.0.2.1 dev va
/// noudpcsum ttl 32 df set`, a ping from 10.9.0.1 (02:00:00:00:aa:01) to 10.9.0.2
/// (02:00:00:00:bb:02), underlay MACs 02:..:01 -> 02:..:02.
let linuxVXLANFrame = hexBytes("""
    0200 0000 0002 0200 0000 0001 0800 4500
    005e c8df 4000 2011 0dac c000 0201 c000
    0202 c758 12b5 004a 0000 0800 0000 0010
    0400 0200 0000 bb02 0200 0000 aa01 0800
    4500 002c c433 4000 4001 6289 0a09 0001
    0a09 0002 0800 9185 0923 0001 ab6a 026b
    0000 0000 ae80 0100 0000 0000
    """)

let underlayA = MACAddress("02:00:00:00:00:01")!
let underlayB = MACAddress("02:00:00:00:00:02")!
let vtepA = IPv4Address("192.0.2.1")!
let vtepB = IPv4Address("192.0.2.2")!

func encapsulate(_ inner: [UInt8], _ h: VXLANOuterHeader) -> [UInt8] {
    var out = [UInt8](repeating: 0xEE, count: inner.count + 64)
    let n = inner.withUnsafeBytes { src in out.withUnsafeMutableBytes { VXLAN.encapsulate(src, header: h, into: $0) } }
    return Array(out[0..<n])
}

func classify(_ frame: [UInt8], _ tunnels: [TunnelPort]) -> UnderlayVerdict {
    let c = UnderlayClassifier(tunnels: tunnels)
    return frame.withUnsafeBytes { c.classify($0.baseAddress!, length: $0.count) }
}

func tunnel(_ name: String = "vx1", port: UInt32 = 3, local: IPv4Address = vtepB, remote: IPv4Address = vtepA,
            vni: UInt32? = 4100, dstport: UInt16 = 4789) -> TunnelPort {
    var t = TunnelPort(name: name, port: port, underlayPort: 2, local: local, remote: remote, vni: vni)
    t.destinationPort = dstport
    return t
}

@Suite struct VXLANTests {
    @Test func encapsulationMatchesTheLinuxKernelByteForByte() {
        let inner = Array(linuxVXLANFrame[50...])
        let h = VXLANOuterHeader(sourceMAC: underlayA, destinationMAC: underlayB, source: vtepA, destination: vtepB,
                                 sourcePort: 0xc758, destinationPort: 4789, vni: 4100, ttl: 32, dontFragment: true,
                                 udpChecksum: false, identification: 0xc8df)
        #expect(encapsulate(inner, h) == linuxVXLANFrame)
    }

    @Test func udpChecksumIsValidWhenComputed() {
        let inner = Array(linuxVXLANFrame[50...])
        var h = VXLANOuterHeader(sourceMAC: underlayA, destinationMAC: underlayB, source: vtepA, destination: vtepB,
                                 sourcePort: 40000, destinationPort: 4789, vni: 7, udpChecksum: true)
        let f = encapsulate(inner, h)
        #expect(f[40..<42] != [0, 0])
        // The one's-complement sum over pseudo-header and datagram, checksum included, is all ones.
        let udpLength = f.count - 34
        let ok = f.withUnsafeBytes { p -> Bool in
            var pseudo = Checksum.sum(p.baseAddress! + 26, count: 8)
            pseudo &+= 17 + UInt32(udpLength)
            return Checksum.finish(Checksum.sum(p.baseAddress! + 34, count: udpLength, initial: pseudo)) == 0
        }
        #expect(ok)
        #expect(f.ipv4ChecksumIsValid(at: 14))
        h.udpChecksum = false
        #expect(encapsulate(inner, h)[40..<42] == [0, 0])
    }

    @Test func outerHeaderFields() {
        let inner = Array(linuxVXLANFrame[50...])
        let h = VXLANOuterHeader(sourceMAC: underlayA, destinationMAC: underlayB, source: vtepA, destination: vtepB,
                                 sourcePort: 50000, destinationPort: 8472, vni: 0xABCDEF, ttl: 7)
        let f = encapsulate(inner, h)
        #expect(f.count == inner.count + 50)
        #expect(f[14] == 0x45 && f[22] == 7 && f[23] == 17)
        #expect(f[20..<22] == [0, 0])  // DF clear
        #expect(Int(f[16]) << 8 | Int(f[17]) == inner.count + 36)
        #expect(Int(f[38]) << 8 | Int(f[39]) == inner.count + 16)
        #expect(f[36..<38] == [0x21, 0x18])  // 8472
        #expect(f[42..<50] == [0x08, 0, 0, 0, 0xAB, 0xCD, 0xEF, 0])
        #expect(f.ipv4ChecksumIsValid(at: 14))
        #expect(Array(f[50...]) == inner)
    }

    @Test func sourcePortStaysInRangeAndSpreads() {
        var seen = Set<UInt16>()
        var h: UInt32 = 1
        for _ in 0..<1000 {
            h = h &* 1_103_515_245 &+ 12345
            let p = VXLAN.sourcePort(hash: h, min: 49152, max: 49160)
            #expect(p >= 49152 && p < 49160)
            seen.insert(p)
        }
        #expect(seen.count == 8)
        #expect(VXLAN.sourcePort(hash: 0xFFFF_FFFF, min: 100, max: 100) == 100)
        // The fold: hashes that differ only in their low half land on different ports.
        #expect(VXLAN.sourcePort(hash: 0x0000_0001, min: 0, max: 65535) != VXLAN.sourcePort(hash: 0x0000_8001, min: 0, max: 65535))
    }

    @Test func mtuCheckCountsTheOuterIPPacket() {
        // A 1450-byte inner IP packet (1464-byte frame) fills a 1500-byte underlay exactly.
        #expect(VXLAN.fits(innerLength: 1464, underlayMTU: 1500))
        #expect(!VXLAN.fits(innerLength: 1465, underlayMTU: 1500))
    }

    @Test func decapsulatesTheKernelsFrame() {
        let t = tunnel()
        #expect(classify(linuxVXLANFrame, [t]) == .decapsulate(tunnel: 0, vni: 4100, innerOffset: 50, innerLength: linuxVXLANFrame.count - 50))
        // A fixed VNI wins over a flow tunnel on the same endpoints, wherever it is listed.
        let flow = tunnel("vxf", port: 4, vni: nil)
        #expect(classify(linuxVXLANFrame, [flow, t]) == .decapsulate(tunnel: 1, vni: 4100, innerOffset: 50, innerLength: 58))
        #expect(classify(linuxVXLANFrame, [flow]) == .decapsulate(tunnel: 0, vni: 4100, innerOffset: 50, innerLength: 58))
    }

    @Test func dropsWhatIsForTheVTEPButNotForATunnel() {
        #expect(classify(linuxVXLANFrame, [tunnel(vni: 4101)]) == .drop(.tunnelVNI))
        #expect(classify(linuxVXLANFrame, [tunnel(dstport: 8472)]) == .drop(.tunnelPort))
        #expect(classify(linuxVXLANFrame, [tunnel(remote: IPv4Address("192.0.2.9")!)]) == .drop(.tunnelRemote))
        var noI = linuxVXLANFrame
        noI[42] = 0
        #expect(classify(noI, [tunnel()]) == .drop(.tunnelMalformed))
        var fragment = linuxVXLANFrame
        fragment[20] = 0x20  // more fragments
        #expect(classify(fragment, [tunnel()]) == .drop(.tunnelMalformed))
        let truncated = Array(linuxVXLANFrame[0..<60])
        #expect(classify(truncated, [tunnel()]) == .drop(.tunnelMalformed))
        var tcp = linuxVXLANFrame
        tcp[23] = 6
        #expect(classify(tcp, [tunnel()]) == .drop(.tunnelNotVXLAN))
        // Not to a local VTEP: the pipeline's business.
        #expect(classify(linuxVXLANFrame, [tunnel(local: IPv4Address("192.0.2.7")!)]) == .pass)
        #expect(classify(Array(linuxVXLANFrame[0..<20]), [tunnel()]) == .pass)
    }

    @Test func answersPingsToTheVTEP() {
        // The kernel's inner ping (10.9.0.1 -> 10.9.0.2) as an underlay frame to VTEP 10.9.0.2.
        let request = Array(linuxVXLANFrame[50...])
        let t = tunnel(local: IPv4Address("10.9.0.2")!, remote: IPv4Address("10.9.0.1")!)
        #expect(classify(request, [t]) == .echoRequest)
        var reply = [UInt8](repeating: 0, count: 128)
        let n = request.withUnsafeBytes { r in
            reply.withUnsafeMutableBytes { ICMPEcho.writeReply(to: r.baseAddress!, from: underlayB, into: $0.baseAddress!, capacity: 128) }
        }
        #expect(n == 58)
        #expect(reply[0..<6] == request[6..<12] && reply[6..<12] == [2, 0, 0, 0, 0, 2])
        #expect(reply[26..<30] == request[30..<34] && reply[30..<34] == request[26..<30])
        #expect(reply[34] == 0 && reply[38..<n] == request[38..<n])
        #expect(reply.ipv4ChecksumIsValid(at: 14))
        #expect(reply.withUnsafeBytes { Checksum.finish(Checksum.sum($0.baseAddress! + 34, count: n - 34)) } == 0)
        #expect(request.withUnsafeBytes { ICMPEcho.writeReply(to: $0.baseAddress!, from: underlayB, into: &reply, capacity: 57) } == 0)
        var echoReply = request
        echoReply[34] = 0
        #expect(classify(echoReply, [t]) == .drop(.tunnelNotVXLAN))
    }

    @Test func tunnelABIMirrorsTheConfiguration() {
        var t = tunnel(vni: nil, dstport: 8472)
        t.dontFragment = true
        t.ttl = 9
        let a = t.abi(sourceMAC: underlayB)
        #expect(a.port == 3 && a.underlay_port == 2 && a.vni == SHUNT_TUNNEL_VNI_FLOW && a.ttl == 9)
        #expect(a.local_ip == vtepB.value.bigEndian && a.dst_port == UInt16(8472).bigEndian)
        #expect(a.flags == UInt8(SHUNT_TUNNEL_DF))
        #expect(withUnsafeBytes(of: a.src_mac) { MACAddress(loading: $0.baseAddress!) } == underlayB)
        #expect(t.vni(forTunnelID: 0x1_00AB_CDEF) == 0xAB_CDEF)
        #expect(tunnel().vni(forTunnelID: 5) == 4100)
    }

    @Test func ipv4AddressParsing() {
        #expect(IPv4Address("10.0.0.1")?.value == 0x0A00_0001)
        #expect(IPv4Address("255.255.255.255")?.description == "255.255.255.255")
        for bad in ["10.0.0", "10.0.0.256", "10.0.0.1.2", "a.b.c.d", "10..0.1", "", "+1.0.0.1", " 1.2.3.4"] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
    }
}

@Suite struct ARPTests {
    @Test func answersARequestForTheVTEP() {
        let request = ARPMessage.request(from: underlayA, ip: vtepA, for: vtepB)
        var frame = [UInt8](repeating: 0, count: 42)
        frame.withUnsafeMutableBytes { request.write(to: $0.baseAddress!) }
        #expect(frame[0..<6] == [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        #expect(frame[12..<22] == [0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1])
        let parsed = frame.withUnsafeBytes { ARPMessage(frame: $0.baseAddress!, length: 42) }
        #expect(parsed == request)
        #expect(classify(frame, [tunnel()]) == .arp(request))
        let reply = request.reply(from: underlayB)
        #expect(reply.operation == .reply && reply.senderIP == vtepB && reply.targetMAC == underlayA && reply.targetIP == vtepA)
        var out = [UInt8](repeating: 0, count: 42)
        out.withUnsafeMutableBytes { reply.write(to: $0.baseAddress!) }
        #expect(out[0..<6] == [2, 0, 0, 0, 0, 1] && out[20..<22] == [0, 2])
        // ARP that concerns no VTEP is the pipeline's.
        let other = ARPMessage.request(from: underlayA, ip: IPv4Address("10.1.1.1")!, for: IPv4Address("10.1.1.2")!)
        var o = [UInt8](repeating: 0, count: 42)
        o.withUnsafeMutableBytes { other.write(to: $0.baseAddress!) }
        #expect(classify(o, [tunnel()]) == .pass)
    }

    @Test func rejectsOtherARPFlavours() {
        var frame = [UInt8](repeating: 0, count: 42)
        frame.withUnsafeMutableBytes { ARPMessage.request(from: underlayA, ip: vtepA, for: vtepB).write(to: $0.baseAddress!) }
        var ipv6 = frame
        ipv6[16] = 0x86
        #expect(ipv6.withUnsafeBytes { ARPMessage(frame: $0.baseAddress!, length: 42) } == nil)
        var rarp = frame
        rarp[21] = 3
        #expect(rarp.withUnsafeBytes { ARPMessage(frame: $0.baseAddress!, length: 42) } == nil)
        #expect(frame.withUnsafeBytes { ARPMessage(frame: $0.baseAddress!, length: 41) } == nil)
    }

    @Test func neighbourEntriesAgeFromReachableToStaleToGone() {
        let table = NeighbourTable(addresses: [vtepA, vtepB, vtepA], reachableMs: 100, expireMs: 300, retryMs: 50)
        #expect(table.addresses == [vtepA, vtepB])
        let s = table.slot(of: vtepA)!
        #expect(table.lookup(slot: s, nowMs: 1000) == (nil, .unresolved))
        #expect(table.takeRequest(slot: s, nowMs: 1000))
        #expect(!table.takeRequest(slot: s, nowMs: 1020))
        #expect(table.takeRequest(slot: s, nowMs: 1050))
        table.confirm(vtepA, mac: underlayA, nowMs: 1100)
        #expect(table.lookup(slot: s, nowMs: 1150) == (underlayA, .reachable))
        #expect(table.lookup(slot: s, nowMs: 1250) == (underlayA, .stale))
        #expect(table.lookup(slot: s, nowMs: 1400) == (nil, .unresolved))
        table.confirm(vtepA, mac: underlayB, nowMs: 1400)
        #expect(table.lookup(slot: s, nowMs: 1401) == (underlayB, .reachable))
        // Unknown addresses are ignored; static entries never age and ARP does not move them.
        table.confirm(IPv4Address("1.2.3.4")!, mac: underlayA, nowMs: 1400)
        let b = table.slot(of: vtepB)!
        table.setStatic(underlayB, slot: b)
        table.confirm(vtepB, mac: underlayA, nowMs: 1500)
        #expect(table.lookup(slot: b, nowMs: 1_000_000) == (underlayB, .reachable))
    }
}

@Suite struct ICMPFragmentationNeededTests {
    func reply(_ frame: [UInt8], mtu: Int = 1450) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 200)
        let n = frame.withUnsafeBytes { f in
            out.withUnsafeMutableBytes { ICMPFragmentationNeeded.write(replyTo: f.baseAddress!, length: f.count, mtu: mtu,
                                                                        into: $0.baseAddress!, capacity: $0.count) }
        }
        return Array(out[0..<n])
    }

    /// An ICMP echo request 10.9.0.1 -> 10.9.0.2 with DF (the inner frame of linuxVXLANFrame).
    let request = Array(linuxVXLANFrame[50...])

    @Test func answersFromTheDestinationWithTheMTU() {
        let r = reply(request)
        #expect(r.count == 14 + 20 + 8 + 28)
        #expect(Array(r[0..<6]) == Array(request[6..<12]) && Array(r[6..<12]) == Array(request[0..<6]))
        #expect(r[12] == 0x08 && r[13] == 0x00)
        #expect(Array(r[26..<30]) == Array(request[30..<34]), "source: the packet's destination")
        #expect(Array(r[30..<34]) == Array(request[26..<30]), "destination: the packet's source")
        #expect(r[23] == 1 && r[34] == 3 && r[35] == 4)
        #expect(UInt16(r[40]) << 8 | UInt16(r[41]) == 1450)
        #expect(Array(r[42...]) == Array(request[14..<42]), "the original header and 8 bytes")
        let ipSum = r.withUnsafeBytes { Checksum.sum($0.baseAddress! + 14, count: 20) }
        let icmpSum = r.withUnsafeBytes { Checksum.sum($0.baseAddress! + 34, count: r.count - 34) }
        #expect(ipSum == 0xFFFF && icmpSum == 0xFFFF)
    }

    @Test func nothingWithoutDFForErrorsOrForNonIPv4() {
        var noDF = request
        noDF[20] = 0
        #expect(reply(noDF).isEmpty)
        var error = request
        error[34] = 3  // an ICMP error itself
        #expect(reply(error).isEmpty)
        var arp = request
        arp[12] = 0x08
        arp[13] = 0x06
        #expect(reply(arp).isEmpty)
        var multicastSource = request
        multicastSource[6] = 0x01
        #expect(reply(multicastSource).isEmpty)
    }
}
