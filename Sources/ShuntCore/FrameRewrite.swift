/// The changes a packet's datapath actions have made so far. Applied to each copy as it is
/// written to a TX ring, so the frame in the RX ring stays as received and each output sees
/// exactly the actions before it (OpenFlow semantics: `output:1,mod_dl_dst:X,output:2`).
public struct FrameEdits: Sendable {
    public enum VLAN: Equatable, Sendable {
        /// The outer tag as received (or none).
        case keep
        /// An outer 802.1Q tag with this VID; the PCP of a received tag is kept.
        case set(UInt16)
        /// No outer tag.
        case pop
        /// A new outer 802.1Q tag with this VID and PCP 0 (set after a pop).
        case push(UInt16)
    }

    public var ethSrc: MACAddress?
    public var ethDst: MACAddress?
    public var vlan: VLAN = .keep
    /// dec_ttl actions so far.
    public var ttlDecrements: UInt8 = 0
    /// The tunnel id set by set_tunnel (used by tunnel ports).
    public var tunnelID: UInt64 = 0

    @inlinable public init() {}
}

/// Where a received frame's outer VLAN tag is: in ring metadata (the kernel stripped it, the
/// usual case for AF_PACKET) or still in the frame bytes.
@usableFromInline
struct OuterTag {
    @usableFromInline var present: Bool
    @usableFromInline var inFrame: Bool
    @usableFromInline var tpid: UInt16
    @usableFromInline var tci: UInt16

    @inlinable init(_ packet: PacketDescriptor) {
        if packet.flags.contains(.hasVLANTag) {
            present = true
            inFrame = false
            tpid = packet.vlanTPID == 0 ? 0x8100 : packet.vlanTPID
            tci = packet.vlanTCI
        } else if packet.capturedLength >= 18 {
            let t = UInt16(bigEndian: (packet.data + 12).loadUnaligned(as: UInt16.self))
            present = t == 0x8100 || t == 0x88A8
            inFrame = present
            tpid = t
            tci = present ? UInt16(bigEndian: (packet.data + 14).loadUnaligned(as: UInt16.self)) : 0
        } else {
            present = false
            inFrame = false
            tpid = 0
            tci = 0
        }
    }
}

public enum FrameRewrite {
    /// The IPv4 TTL or IPv6 hop limit of a received frame; nil when it is neither.
    @inlinable
    public static func ttl(of packet: PacketDescriptor) -> UInt8? {
        let tag = OuterTag(packet)
        var l3 = tag.inFrame ? 16 : 12
        let length = Int(packet.capturedLength)
        guard l3 + 2 <= length else { return nil }
        var type = UInt16(bigEndian: (packet.data + l3).loadUnaligned(as: UInt16.self))
        // One more (inner) tag at most, as the key extractor parses.
        if (type == 0x8100 || type == 0x88A8) && l3 + 6 <= length {
            l3 += 4
            type = UInt16(bigEndian: (packet.data + l3).loadUnaligned(as: UInt16.self))
        }
        l3 += 2
        switch type {
        case 0x0800 where l3 + 20 <= length: return packet.data.load(fromByteOffset: l3 + 8, as: UInt8.self)
        case 0x86DD where l3 + 40 <= length: return packet.data.load(fromByteOffset: l3 + 7, as: UInt8.self)
        default: return nil
        }
    }

    /// Writes `packet` with `edits` applied to `destination` (at most `capacity` bytes) and
    /// returns the length written, or 0 when the result does not fit. Like
    /// `copyFrameForTransmit`, it completes offloaded checksums.
    @inlinable
    public static func write(_ packet: PacketDescriptor, edits: FrameEdits,
                             to destination: UnsafeMutableRawPointer, capacity: Int) -> Int {
        let length = Int(packet.capturedLength)
        guard length >= 14 else { return 0 }
        let tag = OuterTag(packet)
        // Bytes of the received frame after the MACs and after its outer tag, if in the frame.
        let restOffset = tag.inFrame ? 16 : 12
        var outTag: (tpid: UInt16, tci: UInt16)?
        switch edits.vlan {
        case .keep: outTag = tag.present ? (tag.tpid, tag.tci) : nil
        case .set(let vid): outTag = (tag.present ? tag.tpid : 0x8100, (tag.present ? tag.tci & 0xF000 : 0) | (vid & 0x0FFF))
        case .pop: outTag = nil
        case .push(let vid): outTag = (0x8100, vid & 0x0FFF)
        }
        let written = 12 + (outTag == nil ? 0 : 4) + (length - restOffset)
        guard written <= capacity else { return 0 }
        destination.copyMemory(from: packet.data, byteCount: 12)
        var at = 12
        if let t = outTag {
            (destination + 12).storeBytes(of: t.tpid.bigEndian, as: UInt16.self)
            (destination + 14).storeBytes(of: t.tci.bigEndian, as: UInt16.self)
            at = 16
        }
        (destination + at).copyMemory(from: packet.data + restOffset, byteCount: length - restOffset)
        if let mac = edits.ethDst { store(mac, at: destination) }
        if let mac = edits.ethSrc { store(mac, at: destination + 6) }
        if packet.flags.contains(.checksumNotReady) {
            Checksum.completeTransportChecksum(frame: UnsafeMutableRawBufferPointer(start: destination, count: written))
        }
        if edits.ttlDecrements > 0 {
            decrementTTL(frame: destination, length: written, by: edits.ttlDecrements)
        }
        return written
    }

    @inlinable
    static func store(_ mac: MACAddress, at p: UnsafeMutableRawPointer) {
        p.storeBytes(of: UInt16(truncatingIfNeeded: mac.value >> 32).bigEndian, as: UInt16.self)
        (p + 2).storeBytes(of: UInt32(truncatingIfNeeded: mac.value).bigEndian, as: UInt32.self)
    }

    /// Lowers the IPv4 TTL (with an RFC 1624 incremental header checksum update) or the IPv6
    /// hop limit of a complete frame. The caller has checked the TTL is large enough.
    @inlinable
    public static func decrementTTL(frame p: UnsafeMutableRawPointer, length: Int, by n: UInt8) {
        var l3 = 12
        guard l3 + 2 <= length else { return }
        var type = UInt16(bigEndian: (p + l3).loadUnaligned(as: UInt16.self))
        var tags = 0
        while (type == 0x8100 || type == 0x88A8) && tags < 2 && l3 + 6 <= length {
            l3 += 4
            tags += 1
            type = UInt16(bigEndian: (p + l3).loadUnaligned(as: UInt16.self))
        }
        l3 += 2
        if type == 0x0800 && l3 + 20 <= length {
            let old = UInt16(bigEndian: (p + l3 + 8).loadUnaligned(as: UInt16.self))  // TTL << 8 | protocol
            let ttl = UInt8(truncatingIfNeeded: old >> 8)
            let newWord = UInt16(ttl &- n) << 8 | (old & 0xFF)
            (p + l3 + 8).storeBytes(of: UInt8(truncatingIfNeeded: newWord >> 8), as: UInt8.self)
            let check = UInt16(bigEndian: (p + l3 + 10).loadUnaligned(as: UInt16.self))
            // HC' = ~(~HC + ~m + m')
            var sum = UInt32(~check) &+ UInt32(~old) &+ UInt32(newWord)
            while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
            (p + l3 + 10).storeBytes(of: (~UInt16(sum)).bigEndian, as: UInt16.self)
        } else if type == 0x86DD && l3 + 40 <= length {
            let hop = p.load(fromByteOffset: l3 + 7, as: UInt8.self)
            p.storeBytes(of: hop &- n, toByteOffset: l3 + 7, as: UInt8.self)
        }
    }
}
