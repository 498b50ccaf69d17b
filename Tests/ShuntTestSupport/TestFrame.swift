/// Test frames built byte by byte: Ethernet, IPv4, IPv6 and L4 headers for the BPF and
/// datapath tests, and the "SHNT" frames the integration tests send and recognise.
///
/// Lengths and IPv4 header checksums are computed unless overridden; L4 checksums are left zero
/// (nothing checks them). The checksum is computed here, not with ShuntCore's `Checksum`, so
/// that the frames do not depend on the code under test.
public enum TestFrame {
    public static let macA: [UInt8] = [0x02, 0, 0, 0, 0, 0x0A]
    public static let macB: [UInt8] = [0x02, 0, 0, 0, 0, 0x0B]
    public static let ip4A: [UInt8] = [10, 0, 0, 1]
    public static let ip4B: [UInt8] = [10, 0, 0, 2]
    public static let ip6A: [UInt8] = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    public static let ip6B: [UInt8] = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]

    public static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }

    /// The Internet checksum (RFC 1071) of `bytes`, complemented, ready to store.
    public static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var sum: UInt32 = 0
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let high = UInt32(bytes[i]) << 8
            let low = i + 1 < bytes.endIndex ? UInt32(bytes[i + 1]) : 0
            sum += high | low
            i += 2
        }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    // MARK: Headers

    /// An Ethernet frame, optionally with one tag (`tci`, with TPID `tpid`), padded to 60 bytes.
    public static func ethernet(
        dst: [UInt8] = macB, src: [UInt8] = macA, tci: UInt16? = nil, tpid: UInt16 = 0x8100,
        type: UInt16, payload: [UInt8], pad: Bool = true
    ) -> [UInt8] {
        var f = dst + src
        if let tci { f += be16(tpid) + be16(tci) }
        f += be16(type) + payload
        if pad && f.count < 60 { f += [UInt8](repeating: 0, count: 60 - f.count) }
        return f
    }

    public static func ipv4(
        src: [UInt8] = ip4A, dst: [UInt8] = ip4B, proto: UInt8, ttl: UInt8 = 64, options: [UInt8] = [],
        fragment: UInt16 = 0x4000, id: UInt16 = 0x1234, payload: [UInt8], totalLength: Int? = nil,
        versionIHL: UInt8? = nil
    ) -> [UInt8] {
        precondition(options.count % 4 == 0)
        let hlen = 20 + options.count
        let total = totalLength ?? (hlen + payload.count)
        var h: [UInt8] = [versionIHL ?? (0x40 | UInt8(hlen / 4)), 0] + be16(UInt16(total)) + be16(id) + be16(fragment)
        h += [ttl, proto, 0, 0] + src + dst + options
        let sum = checksum(h[...])
        h[10] = UInt8(sum >> 8)
        h[11] = UInt8(sum & 0xFF)
        return h + payload
    }

    public static func ipv6(
        src: [UInt8] = ip6A, dst: [UInt8] = ip6B, next: UInt8, hopLimit: UInt8 = 64, payload: [UInt8],
        payloadLength: Int? = nil
    ) -> [UInt8] {
        [0x60, 0, 0, 0] + be16(UInt16(payloadLength ?? payload.count)) + [next, hopLimit] + src + dst + payload
    }

    /// An extension header of `units` 8-byte units (hop-by-hop, routing, destination options).
    public static func extensionHeader(next: UInt8, units: Int = 1) -> [UInt8] {
        [next, UInt8(units - 1)] + [UInt8](repeating: 0, count: units * 8 - 2)
    }

    /// An IPv6 fragment header: `offset` in 8-byte units.
    public static func fragmentHeader(next: UInt8, offset: UInt16, more: Bool) -> [UInt8] {
        [next, 0] + be16(offset << 3 | (more ? 1 : 0)) + [0, 0, 0x56, 0x78]
    }

    public static func udp(_ sport: UInt16, _ dport: UInt16, payload: [UInt8] = []) -> [UInt8] {
        be16(sport) + be16(dport) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
    }

    public static func tcp(_ sport: UInt16, _ dport: UInt16) -> [UInt8] {
        be16(sport) + be16(dport) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xFF, 0xFF, 0, 0, 0, 0]
    }

    public static func sctp(_ sport: UInt16, _ dport: UInt16) -> [UInt8] {
        be16(sport) + be16(dport) + [0, 0, 0, 1, 0, 0, 0, 0]
    }

    public static func icmp(type: UInt8, code: UInt8) -> [UInt8] { [type, code, 0, 0, 0, 1, 0, 1] }

    public static func arp(op: UInt16, spa: [UInt8] = ip4A, tpa: [UInt8] = ip4B, hardware: UInt16 = 1) -> [UInt8] {
        be16(hardware) + be16(0x0800) + [6, 4] + be16(op) + macA + spa + [0, 0, 0, 0, 0, 0] + tpa
    }

    // MARK: Common frames

    public static func udp4(tci: UInt16? = nil, ttl: UInt8 = 64, src: [UInt8] = ip4A, pad: Bool = true) -> [UInt8] {
        ethernet(tci: tci, type: 0x0800, payload: ipv4(src: src, proto: 17, ttl: ttl, payload: udp(1234, 53, payload: [1, 2, 3, 4])), pad: pad)
    }

    public static func tcp4(tci: UInt16? = nil) -> [UInt8] {
        ethernet(tci: tci, type: 0x0800, payload: ipv4(proto: 6, payload: tcp(40000, 80)))
    }

    public static func udp6(tci: UInt16? = nil, hopLimit: UInt8 = 64) -> [UInt8] {
        ethernet(tci: tci, type: 0x86DD, payload: ipv6(next: 17, hopLimit: hopLimit, payload: udp(5353, 5353, payload: [9, 9])))
    }

    // MARK: SHNT frames

    /// The EtherType of SHNT frames: 0x88B5, local experimental.
    public static let etherType: [UInt8] = [0x88, 0xB5]
    public static let marker = Array("SHNT".utf8)

    /// A SHNT frame: EtherType 0x88B5, then "SHNT", flow id, sequence, filler up to `size`.
    public static func make(dst: [UInt8], src: [UInt8], flow: UInt16, sequence: UInt32, size: Int, vlan: UInt16? = nil) -> [UInt8] {
        var f = dst + src
        if let vlan { f += [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)] }
        f += etherType + marker
        f += be16(flow)
        f += withUnsafeBytes(of: sequence.bigEndian, Array.init)
        while f.count < size { f.append(UInt8(truncatingIfNeeded: f.count &* 31 &+ Int(sequence))) }
        return f
    }

    /// Flow and sequence of a SHNT frame (tag, if any, already in the bytes), or nil.
    public static func identify(_ f: [UInt8]) -> (flow: UInt16, sequence: UInt32)? {
        var at = 12
        if f.count > 16 && f[12] == 0x81 && f[13] == 0x00 { at = 16 }
        guard f.count >= at + 12, Array(f[at..<at + 2]) == etherType, Array(f[at + 2..<at + 6]) == marker else { return nil }
        let flow = UInt16(f[at + 6]) << 8 | UInt16(f[at + 7])
        let seq = f[at + 8..<at + 12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return (flow, seq)
    }
}

extension Array where Element == UInt8 {
    /// The IPv4 header at `offset` has a right checksum (its one's-complement sum is 0xFFFF).
    public func ipv4ChecksumIsValid(at offset: Int) -> Bool {
        let hlen = Int(self[offset] & 0x0F) * 4
        return TestFrame.checksum(self[offset..<(offset + hlen)]) == 0
    }
}
