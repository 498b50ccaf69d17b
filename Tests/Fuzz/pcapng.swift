// libFuzzer target: the pcapng writer. Input: 8 bytes timestamp, 4 interface, 4 snaplen,
// 1 direction, 2 name length, then the name and the frame. Checks the blocks are well formed:
// lengths, padding to 4, the same total at both ends, the packet and options where they belong.
import ShuntCore

func le32(_ b: UnsafeRawPointer, _ at: Int) -> UInt32 { UInt32(littleEndian: (b + at).loadUnaligned(as: UInt32.self)) }
func le16(_ b: UnsafeRawPointer, _ at: Int) -> UInt16 { UInt16(littleEndian: (b + at).loadUnaligned(as: UInt16.self)) }
func check(_ ok: Bool, _ what: @autoclosure () -> String) { if !ok { fatalError(what()) } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPcapNG(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 19 else { return 0 }
    let raw = UnsafeRawPointer(data)
    let timestamp = raw.loadUnaligned(as: UInt64.self)
    let interface = raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
    let snaplen = raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self) % 9000
    let direction: PcapNG.Direction = data[16] & 1 == 0 ? .inbound : .outbound
    let nameLength = min(Int(raw.loadUnaligned(fromByteOffset: 17, as: UInt16.self)) % 64, size - 19)
    let name = String(decoding: UnsafeBufferPointer(start: data + 19, count: nameLength), as: UTF8.self)
    let frame = data + 19 + nameLength
    let length = size - 19 - nameLength

    let shb = PcapNG.sectionHeader()
    check(shb.count == 28 && shb.withUnsafeBytes { le32($0.baseAddress!, 4) == 28 && le32($0.baseAddress!, 24) == 28 }, "section header")

    let idb = PcapNG.interfaceDescription(name: name, snaplen: snaplen)
    idb.withUnsafeBytes { b in
        let p = b.baseAddress!
        check(b.count % 4 == 0 && Int(le32(p, 4)) == b.count && Int(le32(p, b.count - 4)) == b.count, "IDB lengths")
        check(le32(p, 0) == 1 && le16(p, 8) == 1 && le32(p, 12) == snaplen, "IDB header")
        var at = 16
        var sawName = false
        while true {
            check(at + 4 <= b.count - 4, "IDB options run past the block")
            let code = le16(p, at), n = Int(le16(p, at + 2))
            if code == 0 { check(n == 0 && at + 4 == b.count - 4, "IDB end of options"); break }
            check(at + 4 + n <= b.count - 4, "IDB option \(code) past the block")
            if code == 2 { sawName = Array(UnsafeRawBufferPointer(start: p + at + 4, count: n)) == Array(name.utf8) }
            at += 4 + ((n + 3) & ~3)
        }
        check(sawName, "IDB if_name")
    }

    let captured = snaplen == 0 ? length : min(length, Int(snaplen))
    let total = PcapNG.enhancedPacketLength(captured: captured)
    let out = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 8)
    defer { out.deallocate() }
    PcapNG.writeEnhancedPacket(to: out, interface: interface, timestampNs: timestamp, data: frame, captured: captured,
                               originalLength: length, direction: direction)
    check(total % 4 == 0 && Int(le32(out, 4)) == total && Int(le32(out, total - 4)) == total, "EPB lengths")
    check(le32(out, 0) == 6 && le32(out, 8) == interface, "EPB header")
    check(UInt64(le32(out, 12)) << 32 | UInt64(le32(out, 16)) == timestamp, "EPB timestamp")
    check(Int(le32(out, 20)) == captured && Int(le32(out, 24)) == length, "EPB lengths fields")
    check(memcmpEqual(out + 28, frame, captured), "EPB data")
    let options = 28 + ((captured + 3) & ~3)
    for i in (28 + captured)..<options { check(out.load(fromByteOffset: i, as: UInt8.self) == 0, "EPB padding") }
    check(le16(out, options) == 2 && le16(out, options + 2) == 4 && le32(out, options + 4) == direction.rawValue, "epb_flags")
    check(le32(out, options + 8) == 0 && options + 12 == total - 4, "EPB end of options")
    return 0
}

func memcmpEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Bool {
    for i in 0..<n where a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return false }
    return true
}
