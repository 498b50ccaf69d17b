import Testing
@testable import ShuntCore

@Suite struct PcapNGTests {
    private func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }

    private func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }

    @Test func sectionHeaderIsVersionOneLittleEndian() {
        let b = PcapNG.sectionHeader()
        #expect(b.count == 28)
        #expect(u32(b, 0) == 0x0A0D_0D0A && u32(b, 4) == 28 && u32(b, 24) == 28)
        #expect(Array(b[8..<12]) == [0x4D, 0x3C, 0x2B, 0x1A])  // byte-order magic, little-endian
        #expect(u16(b, 12) == 1 && u16(b, 14) == 0)
        #expect(b[16..<24].allSatisfy { $0 == 0xFF })  // section length unknown
    }

    @Test func interfaceDescriptionCarriesNameSnaplenAndNanosecondResolution() {
        let b = PcapNG.interfaceDescription(name: "veth1", snaplen: 128)
        #expect(b.count % 4 == 0)
        #expect(u32(b, 0) == 1 && u32(b, 4) == UInt32(b.count) && u32(b, b.count - 4) == UInt32(b.count))
        #expect(u16(b, 8) == 1 && u32(b, 12) == 128)  // Ethernet, snaplen
        // if_name: code 2, length 5, "veth1", padded to 8.
        #expect(u16(b, 16) == 2 && u16(b, 18) == 5 && Array(b[20..<25]) == Array("veth1".utf8))
        // if_tsresol: code 9, length 1, 9 (nanoseconds).
        #expect(u16(b, 28) == 9 && u16(b, 30) == 1 && b[32] == 9)
        #expect(u16(b, 36) == 0 && u16(b, 38) == 0)  // opt_endofopt
        #expect(b.count == 44)
    }

    @Test func enhancedPacketCarriesLengthsTimestampDirectionAndPadding() {
        let frame: [UInt8] = Array(0..<61)
        let length = PcapNG.enhancedPacketLength(captured: 61)
        #expect(length == 44 + 64)
        var b = [UInt8](repeating: 0xAA, count: length)
        let ts: UInt64 = 0x0000_0001_2345_6789
        frame.withUnsafeBytes { src in
            b.withUnsafeMutableBytes { out in
                PcapNG.writeEnhancedPacket(to: out.baseAddress!, interface: 3, timestampNs: ts, data: src.baseAddress!,
                                           captured: 61, originalLength: 1500, direction: .outbound)
            }
        }
        #expect(u32(b, 0) == 6 && u32(b, 4) == UInt32(length) && u32(b, length - 4) == UInt32(length))
        #expect(u32(b, 8) == 3)
        #expect(u32(b, 12) == 1 && u32(b, 16) == 0x2345_6789)
        #expect(u32(b, 20) == 61 && u32(b, 24) == 1500)
        #expect(Array(b[28..<89]) == frame)
        #expect(b[89..<92].allSatisfy { $0 == 0 })  // padding
        #expect(u16(b, 92) == 2 && u16(b, 94) == 4 && u32(b, 96) == 2)  // epb_flags: outbound
        #expect(u32(b, 100) == 0)
    }
}
