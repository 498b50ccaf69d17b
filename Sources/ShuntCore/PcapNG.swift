/// The pcapng blocks a mirror's capture file needs (draft-ietf-opsawg-pcapng): a section
/// header, one interface description per source port (name, snap length, nanosecond
/// timestamps), and enhanced packet blocks carrying captured vs original length and the
/// direction (epb_flags inbound/outbound). Little-endian, as written on this machine.
public enum PcapNG {
    public enum Direction: UInt32, Sendable {
        case inbound = 1
        case outbound = 2
    }

    static let sectionHeaderType: UInt32 = 0x0A0D_0D0A
    static let interfaceDescriptionType: UInt32 = 1
    static let enhancedPacketType: UInt32 = 6
    public static let linkTypeEthernet: UInt16 = 1
    /// Block header and trailer of an enhanced packet block with its epb_flags option.
    public static let enhancedPacketOverhead = 28 + 12 + 4

    /// The section header block (version 1.0, section length unknown).
    public static func sectionHeader() -> [UInt8] {
        var b: [UInt8] = []
        put32(&b, sectionHeaderType)
        put32(&b, 28)
        put32(&b, 0x1A2B_3C4D)
        put16(&b, 1)
        put16(&b, 0)
        put64(&b, UInt64.max)
        put32(&b, 28)
        return b
    }

    /// An interface description block: Ethernet, `snaplen` (0: no limit), `if_name`, and
    /// `if_tsresol` 9 (timestamps in nanoseconds).
    public static func interfaceDescription(name: String, snaplen: UInt32) -> [UInt8] {
        var options: [UInt8] = []
        putOption(&options, code: 2, Array(name.utf8))  // if_name
        putOption(&options, code: 9, [9])  // if_tsresol: 10^-9
        put16(&options, 0)
        put16(&options, 0)  // opt_endofopt
        let total = UInt32(8 + 8 + options.count + 4)
        var b: [UInt8] = []
        put32(&b, interfaceDescriptionType)
        put32(&b, total)
        put16(&b, linkTypeEthernet)
        put16(&b, 0)
        put32(&b, snaplen)
        b += options
        put32(&b, total)
        return b
    }

    /// Bytes an enhanced packet block of `captured` bytes takes.
    @inline(__always)
    public static func enhancedPacketLength(captured: Int) -> Int { enhancedPacketOverhead + padded(captured) }

    /// Writes an enhanced packet block at `out` (room for `enhancedPacketLength(captured:)` bytes).
    @inline(__always)
    public static func writeEnhancedPacket(to out: UnsafeMutableRawPointer, interface: UInt32, timestampNs: UInt64,
                                           data: UnsafeRawPointer, captured: Int, originalLength: Int,
                                           direction: Direction) {
        let total = UInt32(enhancedPacketLength(captured: captured))
        out.storeBytes(of: enhancedPacketType.littleEndian, toByteOffset: 0, as: UInt32.self)
        out.storeBytes(of: total.littleEndian, toByteOffset: 4, as: UInt32.self)
        out.storeBytes(of: interface.littleEndian, toByteOffset: 8, as: UInt32.self)
        out.storeBytes(of: UInt32(truncatingIfNeeded: timestampNs >> 32).littleEndian, toByteOffset: 12, as: UInt32.self)
        out.storeBytes(of: UInt32(truncatingIfNeeded: timestampNs).littleEndian, toByteOffset: 16, as: UInt32.self)
        out.storeBytes(of: UInt32(captured).littleEndian, toByteOffset: 20, as: UInt32.self)
        out.storeBytes(of: UInt32(originalLength).littleEndian, toByteOffset: 24, as: UInt32.self)
        (out + 28).copyMemory(from: data, byteCount: captured)
        var at = 28 + captured
        while at % 4 != 0 {
            out.storeBytes(of: 0, toByteOffset: at, as: UInt8.self)
            at += 1
        }
        // epb_flags (code 2, 4 bytes): bits 0-1 direction.
        out.storeBytes(of: UInt16(2).littleEndian, toByteOffset: at, as: UInt16.self)
        out.storeBytes(of: UInt16(4).littleEndian, toByteOffset: at + 2, as: UInt16.self)
        out.storeBytes(of: direction.rawValue.littleEndian, toByteOffset: at + 4, as: UInt32.self)
        out.storeBytes(of: UInt32(0), toByteOffset: at + 8, as: UInt32.self)  // opt_endofopt
        out.storeBytes(of: total.littleEndian, toByteOffset: at + 12, as: UInt32.self)
    }

    @inline(__always) static func padded(_ n: Int) -> Int { (n + 3) & ~3 }

    private static func putOption(_ b: inout [UInt8], code: UInt16, _ value: [UInt8]) {
        put16(&b, code)
        put16(&b, UInt16(value.count))
        b += value
        while b.count % 4 != 0 { b.append(0) }
    }

    private static func put16(_ b: inout [UInt8], _ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
    private static func put32(_ b: inout [UInt8], _ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
    private static func put64(_ b: inout [UInt8], _ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
}
