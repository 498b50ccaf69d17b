import CShunt

/// Extracts the exact-match key (`FlowKey`) of a frame: the slow path's twin of the parser in
/// BPF/include/parse.h. The two must produce byte-identical keys for every frame,
/// since the slow path installs cache entries under the keys it extracts and the kernel looks
/// them up under its own (BPFProgramTests checks this through the real map).
///
/// The rules, the same on both sides:
/// - Ethernet (14 bytes), then at most one 802.1Q / 802.1ad tag: `vlanTCI` = TCI | `vlanPresent`,
///   `dlType` = the EtherType after the tag. A second tag is not parsed (`dlType` is its TPID).
///   A tag the kernel stripped into the ring metadata (`strippedVLANTCI`) counts as that one tag.
/// - EtherType below 0x600 (an 802.3 length): `dlType` = `SHUNT_DL_TYPE_NONE` (0x05ff), no more.
/// - IPv4: version 4, ihl >= 5, the header and `tot_len` (>= header) inside the frame; options
///   are skipped. MF or an offset: `fragAny`; a non-zero offset also `fragLater`, and no L4.
/// - IPv6: version 6, 40 + payload length inside the frame; up to `SHUNT_IPV6_MAX_EXT_HDRS`
///   hop-by-hop / routing / destination-options / fragment headers, more is malformed. A fragment
///   header sets `fragAny`; a non-zero offset `fragLater`, `nwProto` = its next header, no L4.
/// - L4, inside the IP payload: TCP needs 20 bytes, UDP 8, SCTP 12, ICMP / ICMPv6 4. Ports go to
///   tp_src / tp_dst as on the wire; ICMP type and code as 16-bit values.
/// - ARP: the 8-byte fixed header; for Ethernet/IPv4 ARP (1, 0x0800, 6, 4) all 28 bytes, with
///   `nwProto` = the opcode's low byte, nw_src = SPA, nw_dst = TPA.
public enum FlowKeyExtractor {
    /// Extracts the key of the `length` bytes at `frame`, received on `inPort`, into `key`.
    ///
    /// Returns false when the frame is truncated or malformed (short of what a rule above needs):
    /// `key` then holds `inPort` and the fields of every header before the bad one, the rest zero.
    /// The fast path never looks such a frame up (it counts it `malformed` and passes it up), so
    /// the slow path must not install a cache entry for its key.
    ///
    /// Per packet: no allocation, no dynamic dispatch.
    @inlinable
    public static func extract(
        frame: UnsafeRawPointer,
        length: Int,
        inPort: UInt32,
        strippedVLANTCI: UInt16?,
        into key: inout FlowKey
    ) -> Bool {
        key = FlowKey()
        key.raw.in_port = inPort
        guard length >= 14 else { return false }
        copy(frame, 0, 6, into: &key.raw.dl_dst)
        copy(frame, 6, 6, into: &key.raw.dl_src)
        var type = be16(frame, 12)
        var l3 = 14
        if let tci = strippedVLANTCI {
            key.raw.vlan_tci = (tci | FlowKey.vlanPresent).bigEndian
        } else if type == 0x8100 || type == 0x88A8 {
            guard length >= 18 else { return false }
            key.raw.vlan_tci = (be16(frame, 14) | FlowKey.vlanPresent).bigEndian
            type = be16(frame, 16)
            l3 = 18
        }
        if type < 0x600 {
            key.raw.dl_type = UInt16(SHUNT_DL_TYPE_NONE).bigEndian
            return true
        }
        key.raw.dl_type = type.bigEndian
        switch type {
        case 0x0800: return ipv4(frame, l3, length, &key)
        case 0x86DD: return ipv6(frame, l3, length, &key)
        case 0x0806: return arp(frame, l3, length, &key)
        default: return true
        }
    }

    @inlinable @inline(__always)
    static func ipv4(_ frame: UnsafeRawPointer, _ l3: Int, _ length: Int, _ key: inout FlowKey) -> Bool {
        guard l3 + 20 <= length else { return false }
        let vihl = frame.load(fromByteOffset: l3, as: UInt8.self)
        guard vihl >> 4 == 4 else { return false }
        let hlen = Int(vihl & 0x0F) &* 4
        let totLen = Int(be16(frame, l3 + 2))
        guard hlen >= 20, totLen >= hlen, l3 + totLen <= length else { return false }
        let proto = frame.load(fromByteOffset: l3 + 9, as: UInt8.self)
        key.raw.nw_proto = proto
        copy(frame, l3 + 12, 4, into: &key.raw.nw_src)
        copy(frame, l3 + 16, 4, into: &key.raw.nw_dst)
        let frag = be16(frame, l3 + 6)
        if frag & 0x3FFF != 0 {
            key.raw.nw_frag = FlowKey.fragAny
            if frag & 0x1FFF != 0 {
                key.raw.nw_frag |= FlowKey.fragLater
                return true
            }
        }
        return transport(frame, l3 + hlen, totLen - hlen, proto, v6: false, &key)
    }

    @inlinable @inline(__always)
    static func ipv6(_ frame: UnsafeRawPointer, _ l3: Int, _ length: Int, _ key: inout FlowKey) -> Bool {
        guard l3 + 40 <= length else { return false }
        guard frame.load(fromByteOffset: l3, as: UInt8.self) >> 4 == 6 else { return false }
        var avail = Int(be16(frame, l3 + 4))
        guard l3 + 40 + avail <= length else { return false }
        copy(frame, l3 + 8, 16, into: &key.raw.nw_src)
        copy(frame, l3 + 24, 16, into: &key.raw.nw_dst)
        var next = frame.load(fromByteOffset: l3 + 6, as: UInt8.self)
        var pos = l3 + 40
        for _ in 0..<Int(SHUNT_IPV6_MAX_EXT_HDRS) {
            guard isExtensionHeader(next) else { break }
            guard avail >= 8 else { return false }
            let len: Int
            if next == 44 {  // fragment
                len = 8
                key.raw.nw_frag = FlowKey.fragAny
                if be16(frame, pos + 2) & 0xFFF8 != 0 {
                    key.raw.nw_frag |= FlowKey.fragLater
                    key.raw.nw_proto = frame.load(fromByteOffset: pos, as: UInt8.self)
                    return true
                }
            } else {
                len = (Int(frame.load(fromByteOffset: pos + 1, as: UInt8.self)) &+ 1) &* 8
                guard avail >= len else { return false }
            }
            next = frame.load(fromByteOffset: pos, as: UInt8.self)
            pos += len
            avail -= len
        }
        guard !isExtensionHeader(next) else { return false }  // more than we look through
        key.raw.nw_proto = next
        return transport(frame, pos, avail, next, v6: true, &key)
    }

    /// Hop-by-hop (0), routing (43), fragment (44), destination options (60).
    @inlinable @inline(__always)
    static func isExtensionHeader(_ next: UInt8) -> Bool {
        next == 0 || next == 43 || next == 44 || next == 60
    }

    /// `avail` IP payload bytes at `pos`, all inside the frame (the IP parser checked).
    @inlinable @inline(__always)
    static func transport(
        _ frame: UnsafeRawPointer, _ pos: Int, _ avail: Int, _ proto: UInt8, v6: Bool, _ key: inout FlowKey
    ) -> Bool {
        let need: Int
        switch proto {
        case 6: need = 20  // TCP
        case 17: need = 8  // UDP
        case 132: need = 12  // SCTP
        case 1 where !v6, 58 where v6: need = 4  // ICMP, ICMPv6
        default: return true
        }
        guard avail >= need else { return false }
        if need == 4 {
            key.raw.tp_src = UInt16(frame.load(fromByteOffset: pos, as: UInt8.self)).bigEndian
            key.raw.tp_dst = UInt16(frame.load(fromByteOffset: pos + 1, as: UInt8.self)).bigEndian
        } else {
            // Network order in, network order out.
            key.raw.tp_src = frame.loadUnaligned(fromByteOffset: pos, as: UInt16.self)
            key.raw.tp_dst = frame.loadUnaligned(fromByteOffset: pos + 2, as: UInt16.self)
        }
        return true
    }

    @inlinable @inline(__always)
    static func arp(_ frame: UnsafeRawPointer, _ l3: Int, _ length: Int, _ key: inout FlowKey) -> Bool {
        guard l3 + 8 <= length else { return false }
        guard be16(frame, l3) == 1, be16(frame, l3 + 2) == 0x0800,
            frame.load(fromByteOffset: l3 + 4, as: UInt8.self) == 6,
            frame.load(fromByteOffset: l3 + 5, as: UInt8.self) == 4
        else { return true }
        guard l3 + 28 <= length else { return false }
        key.raw.nw_proto = frame.load(fromByteOffset: l3 + 7, as: UInt8.self)
        copy(frame, l3 + 14, 4, into: &key.raw.nw_src)
        copy(frame, l3 + 24, 4, into: &key.raw.nw_dst)
        return true
    }

    @inlinable @inline(__always)
    static func be16(_ p: UnsafeRawPointer, _ offset: Int) -> UInt16 {
        UInt16(bigEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// Copies `count` bytes of the frame into the start of a fixed-size key field.
    @inlinable @inline(__always)
    static func copy<T>(_ frame: UnsafeRawPointer, _ offset: Int, _ count: Int, into field: inout T) {
        withUnsafeMutableBytes(of: &field) { dst in
            dst.baseAddress!.copyMemory(from: frame + offset, byteCount: count)
        }
    }
}
