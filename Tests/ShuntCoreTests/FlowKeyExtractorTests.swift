import CShunt
import Testing
@testable import ShuntCore

/// The extractor's field semantics. (That the XDP parser agrees byte for byte is checked in
/// ShuntBPFTests through the real map.)
@Suite struct FlowKeyExtractorTests {
    func extract(_ frame: [UInt8], inPort: UInt32 = 3, stripped: UInt16? = nil) -> (Bool, FlowKey) {
        var key = FlowKey()
        key.tunID = 0xDEAD  // must be cleared
        let ok = frame.withUnsafeBytes {
            FlowKeyExtractor.extract(
                frame: $0.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, length: $0.count, inPort: inPort,
                strippedVLANTCI: stripped, into: &key)
        }
        return (ok, key)
    }

    /// Untagged → tagged (TCI `tci`), inserting the tag after the MACs.
    func tagged(_ frame: [UInt8], _ tci: UInt16, tpid: UInt16 = 0x8100) -> [UInt8] {
        Array(frame[0..<12]) + [UInt8(tpid >> 8), UInt8(tpid & 0xFF), UInt8(tci >> 8), UInt8(tci & 0xFF)] + frame[12...]
    }

    @Test func ipv4UDP() {
        let (ok, k) = extract(udp4Frame(payload: [1, 2, 3]))
        #expect(ok)
        #expect(k.inPort == 3 && k.vlanTCI == 0 && k.dlType == 0x0800 && k.tunID == 0)
        #expect(k.dlDst == MACAddress(value: 0x02_00_00_00_00_02) && k.dlSrc == MACAddress(value: 0x02_00_00_00_00_01))
        #expect(k.nwSrcIPv4 == 0x0ACB_0001 && k.nwDstIPv4 == 0x0ACB_0002)
        #expect(k.nwSrcBytes[4...].allSatisfy { $0 == 0 })
        #expect(k.nwProto == 17 && k.nwFrag == 0 && k.tpSrc == 12345 && k.tpDst == 9999)
    }

    @Test func ipv6TCP() {
        let (ok, k) = extract(tcp6Frame(payload: []))
        #expect(ok)
        #expect(k.dlType == 0x86DD && k.nwProto == 6 && k.tpSrc == 12345 && k.tpDst == 80)
        #expect(k.nwSrcBytes == [0xFD] + [UInt8](repeating: 0, count: 14) + [1])
    }

    @Test func tagInTheFrameAndStrippedTagGiveTheSameKey() {
        let plain = udp4Frame(payload: [])
        let (ok1, inFrame) = extract(tagged(plain, 0xE07B))
        let (ok2, stripped) = extract(plain, stripped: 0xE07B)
        #expect(ok1 && ok2)
        #expect(inFrame.vlanTCI == 0xF07B)  // PCP 7, VID 123, PRESENT
        #expect(inFrame == stripped)
        let (_, ad) = extract(tagged(plain, 0xE07B, tpid: 0x88A8))
        #expect(ad == inFrame)
        #expect(withUnsafeBytes(of: inFrame.raw) { Array($0) } == withUnsafeBytes(of: stripped.raw) { Array($0) })
    }

    @Test func onlyOneTagIsParsed() {
        let (ok, k) = extract(tagged(tagged(udp4Frame(payload: []), 10), 20, tpid: 0x88A8))
        #expect(ok)
        #expect(k.vlanTCI == 0x1014 && k.dlType == 0x8100 && k.nwProto == 0 && k.tpSrc == 0)
    }

    @Test func fragmentsAndICMP() {
        var frag = udp4Frame(payload: [])
        frag[20] = 0x20  // MF, offset 0: first fragment, ports parsed
        var (ok, k) = extract(frag)
        #expect(ok && k.nwFrag == FlowKey.fragAny && k.tpSrc == 12345)
        frag[20] = 0x00
        frag[21] = 0x10  // offset 16: no L4
        (ok, k) = extract(frag)
        #expect(ok && k.nwFrag == FlowKey.fragAny | FlowKey.fragLater && k.tpSrc == 0 && k.tpDst == 0 && k.nwProto == 17)

        var icmp = udp4Frame(payload: [])
        icmp[23] = 1
        icmp[34] = 3
        icmp[35] = 13
        (ok, k) = extract(icmp)
        #expect(ok && k.tpSrc == 3 && k.tpDst == 13)
        #expect(withUnsafeBytes(of: k.raw.tp_src) { Array($0) } == [0, 3])  // be16 of the byte
    }

    @Test func arpAnd8023() {
        var arp: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 2, 0, 0, 0, 0, 1, 0x08, 0x06]
        arp += [0, 1, 0x08, 0x00, 6, 4, 0, 2] + [2, 0, 0, 0, 0, 1, 192, 168, 0, 1] + [0, 0, 0, 0, 0, 0, 192, 168, 0, 2]
        var (ok, k) = extract(arp)
        #expect(ok && k.dlType == 0x0806 && k.nwProto == 2 && k.nwSrcIPv4 == 0xC0A8_0001 && k.nwDstIPv4 == 0xC0A8_0002)
        (ok, k) = extract(Array(arp.prefix(41)))
        #expect(!ok && k.dlType == 0x0806 && k.nwProto == 0)

        let llc: [UInt8] = [1, 0x80, 0xC2, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0x00, 0x26, 0x42, 0x42, 0x03]
        (ok, k) = extract(llc)
        #expect(ok && k.dlType == UInt16(SHUNT_DL_TYPE_NONE))
    }

    @Test func truncatedFramesAreMalformedWithTheKeySoFar() {
        let frame = tcp6Frame(payload: [])
        for n in 0..<frame.count {
            let (ok, k) = extract(Array(frame.prefix(n)))
            #expect(!ok, "length \(n)")
            #expect(k.inPort == 3)
            #expect(k.dlType == (n >= 14 ? 0x86DD : 0), "length \(n)")
            #expect(k.tpSrc == 0 && k.tunID == 0)
        }
        #expect(extract(frame).0)
    }
}
