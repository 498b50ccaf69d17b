import ShuntCore

/// Builds test frames byte by byte. Lengths and IPv4 header checksums are computed unless
/// overridden; L4 checksums are left zero (nothing here checks them).
enum TestFrame {
    static let macA: [UInt8] = [0x02, 0, 0, 0, 0, 0x0A]
    static let macB: [UInt8] = [0x02, 0, 0, 0, 0, 0x0B]
    static let ip4A: [UInt8] = [10, 0, 0, 1]
    static let ip4B: [UInt8] = [10, 0, 0, 2]
    static let ip6A: [UInt8] = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    static let ip6B: [UInt8] = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }

    /// An Ethernet frame, optionally with one tag (`tci`, with TPID `tpid`), padded to 60 bytes.
    static func ethernet(
        dst: [UInt8] = macB, src: [UInt8] = macA, tci: UInt16? = nil, tpid: UInt16 = 0x8100,
        type: UInt16, payload: [UInt8], pad: Bool = true
    ) -> [UInt8] {
        var f = dst + src
        if let tci { f += be16(tpid) + be16(tci) }
        f += be16(type) + payload
        if pad && f.count < 60 { f += [UInt8](repeating: 0, count: 60 - f.count) }
        return f
    }

    static func ipv4(
        src: [UInt8] = ip4A, dst: [UInt8] = ip4B, proto: UInt8, ttl: UInt8 = 64, options: [UInt8] = [],
        fragment: UInt16 = 0x4000, id: UInt16 = 0x1234, payload: [UInt8], totalLength: Int? = nil,
        versionIHL: UInt8? = nil
    ) -> [UInt8] {
        precondition(options.count % 4 == 0)
        let hlen = 20 + options.count
        let total = totalLength ?? (hlen + payload.count)
        var h: [UInt8] = [versionIHL ?? (0x40 | UInt8(hlen / 4)), 0] + be16(UInt16(total)) + be16(id) + be16(fragment)
        h += [ttl, proto, 0, 0] + src + dst + options
        let sum = h.withUnsafeBytes { Checksum.finish(Checksum.sum($0.baseAddress!, count: $0.count)) }
        h[10] = UInt8(sum >> 8)
        h[11] = UInt8(sum & 0xFF)
        return h + payload
    }

    static func ipv6(
        src: [UInt8] = ip6A, dst: [UInt8] = ip6B, next: UInt8, hopLimit: UInt8 = 64, payload: [UInt8],
        payloadLength: Int? = nil
    ) -> [UInt8] {
        [0x60, 0, 0, 0] + be16(UInt16(payloadLength ?? payload.count)) + [next, hopLimit] + src + dst + payload
    }

    /// An extension header of `units` 8-byte units (hop-by-hop, routing, destination options).
    static func extensionHeader(next: UInt8, units: Int = 1) -> [UInt8] {
        [next, UInt8(units - 1)] + [UInt8](repeating: 0, count: units * 8 - 2)
    }

    /// An IPv6 fragment header: `offset` in 8-byte units.
    static func fragmentHeader(next: UInt8, offset: UInt16, more: Bool) -> [UInt8] {
        [next, 0] + be16(offset << 3 | (more ? 1 : 0)) + [0, 0, 0x56, 0x78]
    }

    static func udp(_ sport: UInt16, _ dport: UInt16, payload: [UInt8] = []) -> [UInt8] {
        be16(sport) + be16(dport) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
    }

    static func tcp(_ sport: UInt16, _ dport: UInt16) -> [UInt8] {
        be16(sport) + be16(dport) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xFF, 0xFF, 0, 0, 0, 0]
    }

    static func sctp(_ sport: UInt16, _ dport: UInt16) -> [UInt8] {
        be16(sport) + be16(dport) + [0, 0, 0, 1, 0, 0, 0, 0]
    }

    static func icmp(type: UInt8, code: UInt8) -> [UInt8] { [type, code, 0, 0, 0, 1, 0, 1] }

    static func arp(op: UInt16, spa: [UInt8] = ip4A, tpa: [UInt8] = ip4B, hardware: UInt16 = 1) -> [UInt8] {
        be16(hardware) + be16(0x0800) + [6, 4] + be16(op) + macA + spa + [0, 0, 0, 0, 0, 0] + tpa
    }

    // MARK: Common frames

    static func udp4(tci: UInt16? = nil, ttl: UInt8 = 64, src: [UInt8] = ip4A, pad: Bool = true) -> [UInt8] {
        ethernet(tci: tci, type: 0x0800, payload: ipv4(src: src, proto: 17, ttl: ttl, payload: udp(1234, 53, payload: [1, 2, 3, 4])), pad: pad)
    }

    static func tcp4(tci: UInt16? = nil) -> [UInt8] {
        ethernet(tci: tci, type: 0x0800, payload: ipv4(proto: 6, payload: tcp(40000, 80)))
    }

    static func udp6(tci: UInt16? = nil, hopLimit: UInt8 = 64) -> [UInt8] {
        ethernet(tci: tci, type: 0x86DD, payload: ipv6(next: 17, hopLimit: hopLimit, payload: udp(5353, 5353, payload: [9, 9])))
    }
}

extension Array where Element == UInt8 {
    /// The IPv4 header at `offset` sums to 0xFFFF (its checksum is right).
    func ipv4ChecksumIsValid(at offset: Int) -> Bool {
        let hlen = Int(self[offset] & 0x0F) * 4
        return Array(self[offset..<(offset + hlen)]).withUnsafeBytes { Checksum.sum($0.baseAddress!, count: hlen) == 0xFFFF }
    }
}
