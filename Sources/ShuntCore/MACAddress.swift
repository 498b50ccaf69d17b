/// A 48-bit Ethernet address, kept in the low 48 bits of an integer (first octet most significant).
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64

    @inlinable public init(value: UInt64) { self.value = value & 0xFFFF_FFFF_FFFF }

    /// Reads six bytes at `p` (no alignment needed).
    @inlinable public init(loading p: UnsafeRawPointer) {
        let hi = UInt64(UInt16(bigEndian: p.loadUnaligned(as: UInt16.self)))
        let lo = UInt64(UInt32(bigEndian: (p + 2).loadUnaligned(as: UInt32.self)))
        value = hi << 32 | lo
    }

    public init?(_ text: String) {
        let parts = text.split(separator: ":")
        guard parts.count == 6 else { return nil }
        var v: UInt64 = 0
        for part in parts {
            guard part.count == 2, let b = UInt8(part, radix: 16) else { return nil }
            v = v << 8 | UInt64(b)
        }
        value = v
    }

    /// Group bit of the first octet: broadcast and multicast.
    @inlinable public var isMulticast: Bool { value & (1 << 40) != 0 }

    public var bytes: [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: value >> UInt64(40 - 8 * $0)) } }

    public var description: String {
        bytes.map { b in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined(separator: ":")
    }
}
