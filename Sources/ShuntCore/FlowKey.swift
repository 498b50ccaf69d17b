import CShunt

/// The exact-match key of one packet (`struct shunt_flow_key` in shunt_abi.h, shared with the
/// XDP fast path). Packet fields are stored in network byte order as on the wire; the accessors
/// here speak host order. Unset bytes, padding included, are zero, so keys compare and hash as
/// their nine 64-bit words.
public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
    public var raw: shunt_flow_key

    public static let wordCount = MemoryLayout<shunt_flow_key>.size / 8

    /// All fields zero (as a mask: "match nothing", a full wildcard).
    @inlinable public init() { raw = shunt_flow_key() }
    @inlinable public init(raw: shunt_flow_key) { self.raw = raw }

    // MARK: Fields, host order

    @inlinable public var inPort: UInt32 {
        get { raw.in_port }
        set { raw.in_port = newValue }
    }
    /// The TCI of the outer VLAN tag, with `FlowKey.vlanPresent` set when the frame is tagged.
    @inlinable public var vlanTCI: UInt16 {
        get { UInt16(bigEndian: raw.vlan_tci) }
        set { raw.vlan_tci = newValue.bigEndian }
    }
    @inlinable public var dlType: UInt16 {
        get { UInt16(bigEndian: raw.dl_type) }
        set { raw.dl_type = newValue.bigEndian }
    }
    @inlinable public var dlDst: MACAddress {
        get { withUnsafeBytes(of: raw.dl_dst) { MACAddress(loading: $0.baseAddress!) } }
        set { Self.store(newValue, into: &raw.dl_dst) }
    }
    @inlinable public var dlSrc: MACAddress {
        get { withUnsafeBytes(of: raw.dl_src) { MACAddress(loading: $0.baseAddress!) } }
        set { Self.store(newValue, into: &raw.dl_src) }
    }
    @inlinable public var nwProto: UInt8 {
        get { raw.nw_proto }
        set { raw.nw_proto = newValue }
    }
    @inlinable public var nwFrag: UInt8 {
        get { raw.nw_frag }
        set { raw.nw_frag = newValue }
    }
    @inlinable public var tpSrc: UInt16 {
        get { UInt16(bigEndian: raw.tp_src) }
        set { raw.tp_src = newValue.bigEndian }
    }
    @inlinable public var tpDst: UInt16 {
        get { UInt16(bigEndian: raw.tp_dst) }
        set { raw.tp_dst = newValue.bigEndian }
    }
    @inlinable public var tunID: UInt64 {
        get { raw.tun_id }
        set { raw.tun_id = newValue }
    }
    /// IPv4 (or ARP SPA) source address as a host-order integer: the first four bytes of nw_src.
    @inlinable public var nwSrcIPv4: UInt32 {
        get { withUnsafeBytes(of: raw.nw_src) { UInt32(bigEndian: $0.loadUnaligned(as: UInt32.self)) } }
        set { withUnsafeMutableBytes(of: &raw.nw_src) { $0.storeBytes(of: newValue.bigEndian, as: UInt32.self) } }
    }
    @inlinable public var nwDstIPv4: UInt32 {
        get { withUnsafeBytes(of: raw.nw_dst) { UInt32(bigEndian: $0.loadUnaligned(as: UInt32.self)) } }
        set { withUnsafeMutableBytes(of: &raw.nw_dst) { $0.storeBytes(of: newValue.bigEndian, as: UInt32.self) } }
    }
    /// The 16 address bytes of nw_src / nw_dst (IPv6, or IPv4 in the first four).
    public var nwSrcBytes: [UInt8] {
        get { withUnsafeBytes(of: raw.nw_src) { Array($0) } }
        set { withUnsafeMutableBytes(of: &raw.nw_src) { $0.copyBytes(from: newValue.prefix(16)) } }
    }
    public var nwDstBytes: [UInt8] {
        get { withUnsafeBytes(of: raw.nw_dst) { Array($0) } }
        set { withUnsafeMutableBytes(of: &raw.nw_dst) { $0.copyBytes(from: newValue.prefix(16)) } }
    }

    public static let vlanPresent: UInt16 = UInt16(SHUNT_VLAN_PRESENT)
    public static let fragAny: UInt8 = UInt8(SHUNT_FRAG_ANY)
    public static let fragLater: UInt8 = UInt8(SHUNT_FRAG_LATER)

    @inlinable static func store<T>(_ mac: MACAddress, into field: inout T) {
        withUnsafeMutableBytes(of: &field) { b in
            b.storeBytes(of: UInt16(truncatingIfNeeded: mac.value >> 32).bigEndian, toByteOffset: 0, as: UInt16.self)
            b.storeBytes(of: UInt32(truncatingIfNeeded: mac.value).bigEndian, toByteOffset: 2, as: UInt32.self)
        }
    }

    // MARK: Words: hashing, comparing, masking

    @inlinable public func word(_ i: Int) -> UInt64 {
        withUnsafeBytes(of: raw) { $0.load(fromByteOffset: i &* 8, as: UInt64.self) }
    }

    /// The key with every bit not set in `mask` cleared.
    @inlinable public func masked(by mask: FlowKey) -> FlowKey {
        var out = FlowKey()
        withUnsafeBytes(of: raw) { k in
            withUnsafeBytes(of: mask.raw) { m in
                withUnsafeMutableBytes(of: &out.raw) { o in
                    for i in 0..<Self.wordCount {
                        let v = k.load(fromByteOffset: i * 8, as: UInt64.self) & m.load(fromByteOffset: i * 8, as: UInt64.self)
                        o.storeBytes(of: v, toByteOffset: i * 8, as: UInt64.self)
                    }
                }
            }
        }
        return out
    }

    /// Bitwise OR: the union of two masks.
    @inlinable public func union(_ other: FlowKey) -> FlowKey {
        var out = FlowKey()
        withUnsafeBytes(of: raw) { a in
            withUnsafeBytes(of: other.raw) { b in
                withUnsafeMutableBytes(of: &out.raw) { o in
                    for i in 0..<Self.wordCount {
                        let v = a.load(fromByteOffset: i * 8, as: UInt64.self) | b.load(fromByteOffset: i * 8, as: UInt64.self)
                        o.storeBytes(of: v, toByteOffset: i * 8, as: UInt64.self)
                    }
                }
            }
        }
        return out
    }

    /// True when every bit is zero.
    @inlinable public var isZero: Bool {
        withUnsafeBytes(of: raw) { k in
            var acc: UInt64 = 0
            for i in 0..<Self.wordCount { acc |= k.load(fromByteOffset: i * 8, as: UInt64.self) }
            return acc == 0
        }
    }

    /// A fast 64-bit hash of the words (multiply-xorshift), for the caches' open addressing.
    @inlinable public var hash64: UInt64 {
        withUnsafeBytes(of: raw) { k in
            var h: UInt64 = 0x9E37_79B9_7F4A_7C15
            for i in 0..<Self.wordCount {
                h = (h ^ k.load(fromByteOffset: i * 8, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
                h ^= h >> 32
            }
            return h
        }
    }

    @inlinable public static func == (a: FlowKey, b: FlowKey) -> Bool {
        withUnsafeBytes(of: a.raw) { x in
            withUnsafeBytes(of: b.raw) { y in
                var diff: UInt64 = 0
                for i in 0..<wordCount {
                    diff |= x.load(fromByteOffset: i * 8, as: UInt64.self) ^ y.load(fromByteOffset: i * 8, as: UInt64.self)
                }
                return diff == 0
            }
        }
    }

    /// Every word, so that Swift's seeded Hasher decides (hash64 alone is unseeded and its
    /// collisions could be crafted).
    @inlinable public func hash(into hasher: inout Hasher) {
        for i in 0..<Self.wordCount { hasher.combine(word(i)) }
    }

    public var description: String {
        var parts = ["in_port=\(inPort)"]
        if vlanTCI & Self.vlanPresent != 0 { parts.append("vlan_tci=0x\(String(vlanTCI, radix: 16))") }
        parts.append("dl_src=\(dlSrc)")
        parts.append("dl_dst=\(dlDst)")
        parts.append("dl_type=0x\(String(dlType, radix: 16))")
        if tunID != 0 { parts.append("tun_id=0x\(String(tunID, radix: 16))") }
        switch dlType {
        case 0x0800, 0x0806:
            parts.append("nw_src=\(IPv4Text.format(nwSrcIPv4))")
            parts.append("nw_dst=\(IPv4Text.format(nwDstIPv4))")
        case 0x86dd:
            parts.append("ipv6_src=\(IPv6Text.format(nwSrcBytes))")
            parts.append("ipv6_dst=\(IPv6Text.format(nwDstBytes))")
        default: break
        }
        if dlType == 0x0800 || dlType == 0x86dd || dlType == 0x0806 {
            parts.append("nw_proto=\(nwProto)")
        }
        if nwFrag != 0 { parts.append("nw_frag=\(nwFrag & Self.fragLater != 0 ? "later" : "first")") }
        if tpSrc != 0 || tpDst != 0 { parts.append("tp_src=\(tpSrc),tp_dst=\(tpDst)") }
        return parts.joined(separator: ",")
    }
}

/// Dotted-quad text for host-order IPv4 addresses.
public enum IPv4Text {
    public static func format(_ a: UInt32) -> String {
        "\(a >> 24).\(a >> 16 & 0xff).\(a >> 8 & 0xff).\(a & 0xff)"
    }

    public static func parse(_ s: Substring) -> UInt32? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isASCII), let b = UInt8(p) else { return nil }
            v = v << 8 | UInt32(b)
        }
        return v
    }
}

/// RFC 5952 text for IPv6 addresses (16 bytes).
public enum IPv6Text {
    public static func format(_ bytes: [UInt8]) -> String {
        precondition(bytes.count == 16)
        let groups = (0..<8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
        // The longest run of two or more zero groups becomes "::".
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8 && groups[j] == 0 { j += 1 }
                if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                i = j
            } else { i += 1 }
        }
        func hex(_ r: Range<Int>) -> String { r.map { String(groups[$0], radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLen)..<8)
    }

    public static func parse(_ s: Substring) -> [UInt8]? {
        let halves = s.components(separatedByDoubleColon: ())
        func groups(_ part: Substring) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            for g in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(g.count), let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        var all: [UInt16]
        switch halves.count {
        case 1:
            guard let g = groups(halves[0]), g.count == 8 else { return nil }
            all = g
        case 2:
            guard let a = groups(halves[0]), let b = groups(halves[1]), a.count + b.count <= 7 else { return nil }
            all = a + Array(repeating: 0, count: 8 - a.count - b.count) + b
        default: return nil
        }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }
}

extension Substring {
    /// Splits at the first "::" (at most two parts; more than one "::" gives three).
    fileprivate func components(separatedByDoubleColon _: Void) -> [Substring] {
        var parts: [Substring] = []
        var rest = self[...]
        while let r = rest.firstRange(of: "::") {
            parts.append(rest[..<r.lowerBound])
            rest = rest[r.upperBound...]
        }
        parts.append(rest)
        return parts
    }
}
