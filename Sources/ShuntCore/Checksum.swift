/// Internet checksums (RFC 1071) over frame bytes.
public enum Checksum {
    /// One's-complement sum of `count` bytes at `p`, folded into `initial` (not complemented).
    @inlinable
    public static func sum(_ p: UnsafeRawPointer, count: Int, initial: UInt32 = 0) -> UInt32 {
        var acc = UInt64(initial)
        var i = 0
        while i + 4 <= count {
            acc &+= UInt64(UInt32(bigEndian: (p + i).loadUnaligned(as: UInt32.self)))
            i += 4
        }
        if i + 2 <= count {
            acc &+= UInt64(UInt16(bigEndian: (p + i).loadUnaligned(as: UInt16.self)))
            i += 2
        }
        if i < count { acc &+= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << 8 }
        while acc >> 16 != 0 { acc = (acc & 0xFFFF) + (acc >> 16) }
        return UInt32(acc)
    }

    @inlinable
    public static func finish(_ sum: UInt32) -> UInt16 {
        var s = sum
        while s >> 16 != 0 { s = (s & 0xFFFF) + (s >> 16) }
        return ~UInt16(truncatingIfNeeded: s)
    }

    /// Computes the TCP or UDP checksum of an IPv4 or IPv6 frame from scratch and stores it.
    /// Used for frames a local stack sent with checksum offload (TP_STATUS_CSUMNOTREADY), whose
    /// checksum field holds only the pseudo-header sum. Frames it cannot parse are left alone.
    public static func completeTransportChecksum(frame: UnsafeMutableRawBufferPointer) {
        guard let base = frame.baseAddress, frame.count >= 14 else { return }
        var l3 = 12
        var etherType = UInt16(bigEndian: (base + l3).loadUnaligned(as: UInt16.self))
        while (etherType == 0x8100 || etherType == 0x88A8) && l3 + 6 <= frame.count {
            l3 += 4
            etherType = UInt16(bigEndian: (base + l3).loadUnaligned(as: UInt16.self))
        }
        l3 += 2
        var pseudo: UInt32
        var l4: Int
        var l4Length: Int
        var proto: UInt8
        if etherType == 0x0800 {
            guard l3 + 20 <= frame.count else { return }
            let ihl = Int(base.load(fromByteOffset: l3, as: UInt8.self) & 0x0F) * 4
            let total = Int(UInt16(bigEndian: (base + l3 + 2).loadUnaligned(as: UInt16.self)))
            proto = base.load(fromByteOffset: l3 + 9, as: UInt8.self)
            l4 = l3 + ihl
            l4Length = total - ihl
            guard ihl >= 20, l4Length > 0, l4 + l4Length <= frame.count else { return }
            pseudo = sum(base + l3 + 12, count: 8)
        } else if etherType == 0x86DD {
            guard l3 + 40 <= frame.count else { return }
            proto = base.load(fromByteOffset: l3 + 6, as: UInt8.self)
            l4 = l3 + 40
            l4Length = Int(UInt16(bigEndian: (base + l3 + 4).loadUnaligned(as: UInt16.self)))
            guard l4 + l4Length <= frame.count else { return }
            pseudo = sum(base + l3 + 8, count: 32)
        } else {
            return
        }
        let checksumOffset: Int
        switch proto {
        case 6: checksumOffset = 16
        case 17: checksumOffset = 6
        default: return
        }
        guard l4Length >= checksumOffset + 2 else { return }
        pseudo &+= UInt32(proto) + UInt32(l4Length)
        (base + l4 + checksumOffset).storeBytes(of: 0, as: UInt16.self)
        var c = finish(sum(base + l4, count: l4Length, initial: pseudo))
        if proto == 17 && c == 0 { c = 0xFFFF }
        (base + l4 + checksumOffset).storeBytes(of: c.bigEndian, as: UInt16.self)
    }
}
