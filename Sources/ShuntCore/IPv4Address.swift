/// An IPv4 address, in host byte order (`10.0.0.1` is 0x0A00_0001).
public struct IPv4Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var value: UInt32

    @inlinable public init(value: UInt32) { self.value = value }

    /// Dotted quad only (`10.0.0.1`): four decimal parts of 0...255, no leading `+`, no spaces.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let byte = UInt8(part) else { return nil }
            v = v << 8 | UInt32(byte)
        }
        value = v
    }

    /// Reads four bytes in network order.
    @inlinable public init(loading p: UnsafeRawPointer) {
        value = UInt32(bigEndian: p.loadUnaligned(as: UInt32.self))
    }

    /// Writes four bytes in network order.
    @inlinable public func store(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: value.bigEndian, as: UInt32.self)
    }

    public var description: String {
        "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
    }

    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.value < b.value }
}
