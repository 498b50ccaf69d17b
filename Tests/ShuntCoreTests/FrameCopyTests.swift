import Testing
@testable import ShuntCore

/// A UDP/IPv4 frame with correct checksums.
func udp4Frame(payload: [UInt8]) -> [UInt8] {
    var f: [UInt8] = [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]
    let total = 20 + 8 + payload.count
    var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 1, 0x40, 0, 64, 17, 0, 0,
                       10, 203, 0, 1, 10, 203, 0, 2]
    let ipSum = ip.withUnsafeBytes { Checksum.finish(Checksum.sum($0.baseAddress!, count: 20)) }
    ip[10] = UInt8(ipSum >> 8); ip[11] = UInt8(ipSum & 0xFF)
    let udpLength = 8 + payload.count
    var udp: [UInt8] = [0x30, 0x39, 0x27, 0x0F, UInt8(udpLength >> 8), UInt8(udpLength & 0xFF), 0, 0] + payload
    let pseudo: [UInt8] = Array(ip[12..<20]) + [0, 17, UInt8(udpLength >> 8), UInt8(udpLength & 0xFF)]
    let sum = (pseudo + udp).withUnsafeBytes { Checksum.finish(Checksum.sum($0.baseAddress!, count: $0.count)) }
    udp[6] = UInt8(sum >> 8); udp[7] = UInt8(sum & 0xFF)
    f += ip + udp
    return f
}

/// A TCP/IPv6 frame with a correct checksum.
func tcp6Frame(payload: [UInt8]) -> [UInt8] {
    var f: [UInt8] = [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xDD]
    let l4Length = 20 + payload.count
    let src: [UInt8] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    let dst: [UInt8] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    let ip: [UInt8] = [0x60, 0, 0, 0, UInt8(l4Length >> 8), UInt8(l4Length & 0xFF), 6, 64] + src + dst
    var tcp: [UInt8] = [0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0] + payload
    let pseudo = src + dst + [0, 0, UInt8(l4Length >> 8), UInt8(l4Length & 0xFF), 0, 0, 0, 6]
    let sum = (pseudo + tcp).withUnsafeBytes { Checksum.finish(Checksum.sum($0.baseAddress!, count: $0.count)) }
    tcp[16] = UInt8(sum >> 8); tcp[17] = UInt8(sum & 0xFF)
    return f + ip + tcp
}

@Suite struct FrameCopyTests {
    @Test func copiesPlainFramesByteForByte() {
        let store = FrameStore()
        let bytes = (0..<1514).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let p = store.descriptor(bytes, port: 0)
        var out = [UInt8](repeating: 0, count: 2048)
        let n = out.withUnsafeMutableBytes { copyFrameForTransmit(p, to: $0.baseAddress!) }
        #expect(n == 1514)
        #expect(Array(out.prefix(n)) == bytes)
    }

    @Test func putsTheStrippedVLANTagBack() {
        let store = FrameStore()
        let untagged = ethernet(dst: "02:00:00:00:00:02", src: "02:00:00:00:00:01", length: 64)
        var p = store.descriptor(untagged, port: 0)
        p.flags.insert(.hasVLANTag)
        p.vlanTCI = 0x2005
        p.vlanTPID = 0x88A8
        var out = [UInt8](repeating: 0, count: 128)
        let n = out.withUnsafeMutableBytes { copyFrameForTransmit(p, to: $0.baseAddress!) }
        #expect(n == 68)
        let expected = Array(untagged[0..<12]) + [0x88, 0xA8, 0x20, 0x05] + Array(untagged[12...])
        #expect(Array(out.prefix(n)) == expected)
    }

    @Test(arguments: [0, 1, 33, 1000])
    func completesOffloadedChecksums(payloadLength: Int) {
        let payload = (0..<payloadLength).map { UInt8(truncatingIfNeeded: $0 * 13 + 5) }
        for good in [udp4Frame(payload: payload), tcp6Frame(payload: payload)] {
            var partial = good
            let ipv4 = good[12] == 0x08
            let at = ipv4 ? 14 + 20 + 6 : 14 + 40 + 16
            partial[at] = 0x12; partial[at + 1] = 0x34  // a stack leaves only a partial sum here
            let store = FrameStore()
            var p = store.descriptor(partial, port: 0)
            p.flags.insert(.checksumNotReady)
            var out = [UInt8](repeating: 0, count: 2048)
            let n = out.withUnsafeMutableBytes { copyFrameForTransmit(p, to: $0.baseAddress!) }
            #expect(Array(out.prefix(n)) == good)
        }
    }

    @Test func leavesUnparseableFramesAlone() {
        var f = udp4Frame(payload: [1, 2, 3])
        f[16] = 0xFF  // IPv4 total length far beyond the frame
        var copy = f
        copy.withUnsafeMutableBytes { Checksum.completeTransportChecksum(frame: $0) }
        #expect(copy == f)
        var runt: [UInt8] = [1, 2, 3]
        runt.withUnsafeMutableBytes { Checksum.completeTransportChecksum(frame: $0) }
        #expect(runt == [1, 2, 3])
    }
}
