import CShunt

// VXLAN (RFC 7348) over IPv4: the outer header a tunnel port puts in front of a frame, and the
// classification of frames arriving on an underlay port. Pure byte work, no syscalls; the
// Swift datapath calls it per packet, and its layout is what the XDP fast path will write too
// (docs/design/0011-vxlan-tunnel-ports.md).

/// One VXLAN tunnel port: a virtual Shunt port whose frames travel encapsulated over an
/// underlay port to one remote VTEP. Mirrors `struct shunt_tunnel_port` (see `abi`).
public struct TunnelPort: Sendable, Equatable {
    public var name: String
    /// This tunnel's Shunt port number (after the interface ports).
    public var port: UInt32
    /// The Shunt port number of the underlay interface (one of the --port interfaces).
    public var underlayPort: UInt32
    public var local: IPv4Address
    public var remote: IPv4Address
    /// A fixed VNI (24 bits), or nil: the VNI is the packet's tun_id (`vni=flow`).
    public var vni: UInt32?
    public var destinationPort: UInt16 = VXLAN.defaultPort
    /// Outer UDP source ports are picked from [min, max) by the inner flow's hash (as Linux's
    /// udp_flow_src_port); Linux's default is the local port range, 32768-60999.
    public var sourcePortMin: UInt16 = 32768
    public var sourcePortMax: UInt16 = 61000
    public var ttl: UInt8 = 64
    public var dontFragment = false
    /// Compute the outer UDP checksum (RFC 7348 allows zero over IPv4, Linux's default).
    public var udpChecksum = false
    /// A fixed next-hop MAC for the remote VTEP; nil: resolved by ARP on the underlay.
    public var remoteMAC: MACAddress?

    public init(name: String, port: UInt32, underlayPort: UInt32, local: IPv4Address, remote: IPv4Address,
                vni: UInt32?) {
        self.name = name
        self.port = port
        self.underlayPort = underlayPort
        self.local = local
        self.remote = remote
        self.vni = vni
    }

    /// The VNI an output with tunnel id `tunID` carries.
    @inlinable public func vni(forTunnelID tunID: UInt64) -> UInt32 {
        vni ?? UInt32(truncatingIfNeeded: tunID & 0xFF_FFFF)
    }

    /// The ABI form, with the underlay port's MAC.
    public func abi(sourceMAC: MACAddress) -> shunt_tunnel_port {
        var t = shunt_tunnel_port()
        t.port = port
        t.underlay_port = underlayPort
        t.vni = vni ?? SHUNT_TUNNEL_VNI_FLOW
        t.local_ip = local.value.bigEndian
        t.remote_ip = remote.value.bigEndian
        t.dst_port = destinationPort.bigEndian
        t.src_port_min = sourcePortMin
        t.src_port_max = sourcePortMax
        t.ttl = ttl
        t.flags = (dontFragment ? UInt8(SHUNT_TUNNEL_DF) : 0) | (udpChecksum ? UInt8(SHUNT_TUNNEL_UDP_CSUM) : 0)
        withUnsafeMutableBytes(of: &t.src_mac) { FrameRewrite.store(sourceMAC, at: $0.baseAddress!) }
        return t
    }
}

/// The outer header of one encapsulated frame: the tunnel's fixed fields plus the per-packet
/// ones (next hop, VNI, source port, IP id).
public struct VXLANOuterHeader: Sendable, Equatable {
    public var sourceMAC: MACAddress
    public var destinationMAC: MACAddress
    public var source: IPv4Address
    public var destination: IPv4Address
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var vni: UInt32
    public var ttl: UInt8
    public var dontFragment: Bool
    public var udpChecksum: Bool
    /// The IPv4 identification field (0 is fine with DF set, RFC 6864).
    public var identification: UInt16

    public init(sourceMAC: MACAddress, destinationMAC: MACAddress, source: IPv4Address, destination: IPv4Address,
                sourcePort: UInt16, destinationPort: UInt16, vni: UInt32, ttl: UInt8 = 64, dontFragment: Bool = false,
                udpChecksum: Bool = false, identification: UInt16 = 0) {
        self.sourceMAC = sourceMAC
        self.destinationMAC = destinationMAC
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.vni = vni
        self.ttl = ttl
        self.dontFragment = dontFragment
        self.udpChecksum = udpChecksum
        self.identification = identification
    }
}

public enum VXLAN {
    public static let defaultPort = UInt16(SHUNT_VXLAN_PORT)
    /// Linux's VXLAN port before IANA assigned 4789 (still its `ip link` default without dstport).
    public static let linuxLegacyPort: UInt16 = 8472
    /// Outer Ethernet + IPv4 + UDP + VXLAN.
    public static let overhead = Int(SHUNT_VXLAN_OVERHEAD)
    public static let maxVNI: UInt32 = 0xFF_FFFF

    /// The outer UDP source port for an inner flow with hash `hash`: spread over [min, max) by a
    /// multiply-shift, after folding the low half into the high half so flows that differ only
    /// in low bits still spread (the semantics of Linux's udp_flow_src_port). min >= max gives min.
    @inlinable
    public static func sourcePort(hash: UInt32, min: UInt16, max: UInt16) -> UInt16 {
        guard max > min else { return min }
        let h = hash ^ (hash << 16)
        return UInt16(truncatingIfNeeded: (UInt64(h) &* UInt64(max - min)) >> 32) &+ min
    }

    /// Whether a frame of `innerLength` bytes (its Ethernet header included) fits the underlay
    /// MTU once encapsulated: the outer IPv4 packet is 36 bytes longer than the inner frame.
    @inlinable
    public static func fits(innerLength: Int, underlayMTU: Int) -> Bool {
        innerLength + overhead - 14 <= underlayMTU
    }

    /// Writes the 50-byte outer header at `p`, in front of the `innerLength` bytes of inner
    /// frame that are already at `p + 50`. Computes the IPv4 header checksum and, when asked,
    /// the UDP checksum (over the inner frame too; 0 is sent as 0xFFFF).
    @inlinable
    public static func writeOuterHeader(_ h: VXLANOuterHeader, innerLength: Int, at p: UnsafeMutableRawPointer) {
        FrameRewrite.store(h.destinationMAC, at: p)
        FrameRewrite.store(h.sourceMAC, at: p + 6)
        (p + 12).storeBytes(of: UInt16(0x0800).bigEndian, as: UInt16.self)
        let ip = p + 14
        let udpLength = 8 + 8 + innerLength
        ip.storeBytes(of: 0x45, as: UInt8.self)  // version 4, 20-byte header
        ip.storeBytes(of: 0, toByteOffset: 1, as: UInt8.self)  // DSCP/ECN 0
        (ip + 2).storeBytes(of: UInt16(truncatingIfNeeded: 20 + udpLength).bigEndian, as: UInt16.self)
        (ip + 4).storeBytes(of: h.identification.bigEndian, as: UInt16.self)
        (ip + 6).storeBytes(of: (h.dontFragment ? UInt16(0x4000) : 0).bigEndian, as: UInt16.self)
        ip.storeBytes(of: h.ttl, toByteOffset: 8, as: UInt8.self)
        ip.storeBytes(of: 17, toByteOffset: 9, as: UInt8.self)
        (ip + 10).storeBytes(of: 0, as: UInt16.self)
        h.source.store(to: ip + 12)
        h.destination.store(to: ip + 16)
        (ip + 10).storeBytes(of: Checksum.finish(Checksum.sum(ip, count: 20)).bigEndian, as: UInt16.self)
        let udp = ip + 20
        udp.storeBytes(of: h.sourcePort.bigEndian, as: UInt16.self)
        (udp + 2).storeBytes(of: h.destinationPort.bigEndian, as: UInt16.self)
        (udp + 4).storeBytes(of: UInt16(truncatingIfNeeded: udpLength).bigEndian, as: UInt16.self)
        (udp + 6).storeBytes(of: 0, as: UInt16.self)
        let vx = udp + 8
        vx.storeBytes(of: (UInt32(SHUNT_VXLAN_FLAG_I) << 24).bigEndian, as: UInt32.self)
        (vx + 4).storeBytes(of: ((h.vni & maxVNI) << 8).bigEndian, as: UInt32.self)
        if h.udpChecksum {
            var pseudo = Checksum.sum(ip + 12, count: 8)
            pseudo &+= 17 &+ UInt32(udpLength)
            var c = Checksum.finish(Checksum.sum(udp, count: udpLength, initial: pseudo))
            if c == 0 { c = 0xFFFF }
            (udp + 6).storeBytes(of: c.bigEndian, as: UInt16.self)
        }
    }

    /// Copies `inner` behind a new outer header into `destination`; returns the frame length,
    /// or 0 when it does not fit.
    public static func encapsulate(_ inner: UnsafeRawBufferPointer, header: VXLANOuterHeader,
                                   into destination: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = destination.baseAddress, inner.count + overhead <= destination.count else { return 0 }
        if let src = inner.baseAddress { (base + overhead).copyMemory(from: src, byteCount: inner.count) }
        writeOuterHeader(header, innerLength: inner.count, at: base)
        return inner.count + overhead
    }
}

/// What arrived on an underlay port, as far as the tunnels on it care.
public enum UnderlayVerdict: Equatable, Sendable {
    /// Not for a local VTEP: the pipeline forwards it like any frame of that port.
    case pass
    /// VXLAN for `tunnel` (an index into the tunnels given to the classifier): the inner frame
    /// starts at `innerOffset` and enters the pipeline with in_port = the tunnel port, tun_id = vni.
    case decapsulate(tunnel: Int, vni: UInt32, innerOffset: Int, innerLength: Int)
    /// ARP that concerns a VTEP (asks for a local one, or comes from a remote one).
    case arp(ARPMessage)
    /// An ICMP echo request to a local VTEP address: answered (`ICMPEcho.writeReply`).
    case echoRequest
    case drop(DropReason)
}

/// Classifies frames arriving on one underlay port against the tunnels that use it.
/// Lookups are linear: an underlay has a handful of tunnels, and a scan of a small array beats
/// hashing for that. Built once at start (no allocation per packet).
public struct UnderlayClassifier: Sendable {
    public let tunnels: [TunnelPort]
    /// The distinct local VTEP addresses on this underlay.
    public let locals: [IPv4Address]

    public init(tunnels: [TunnelPort]) {
        self.tunnels = tunnels
        var locals: [IPv4Address] = []
        for t in tunnels where !locals.contains(t.local) { locals.append(t.local) }
        self.locals = locals
    }

    @inlinable public func isLocal(_ a: IPv4Address) -> Bool { locals.contains(a) }

    @inlinable public func isRemote(_ a: IPv4Address) -> Bool { tunnels.contains { $0.remote == a } }

    /// `frame` is an untagged Ethernet frame of `length` bytes as received on the underlay.
    public func classify(_ frame: UnsafeRawPointer, length: Int) -> UnderlayVerdict {
        guard length >= 14 else { return .pass }
        let etherType = UInt16(bigEndian: (frame + 12).loadUnaligned(as: UInt16.self))
        if etherType == 0x0806 {
            guard let m = ARPMessage(frame: frame, length: length) else { return .pass }
            return isLocal(m.targetIP) || isRemote(m.senderIP) ? .arp(m) : .pass
        }
        guard etherType == 0x0800, length >= 34 else { return .pass }
        let ip = frame + 14
        let destination = IPv4Address(loading: ip + 16)
        guard isLocal(destination) else { return .pass }
        // From here on the frame is ours: anything wrong with it is a counted drop.
        let versionIHL = ip.load(as: UInt8.self)
        let ihl = Int(versionIHL & 0x0F) * 4
        let total = Int(UInt16(bigEndian: (ip + 2).loadUnaligned(as: UInt16.self)))
        let fragment = UInt16(bigEndian: (ip + 6).loadUnaligned(as: UInt16.self)) & 0x3FFF
        guard versionIHL >> 4 == 4, ihl >= 20, total >= ihl, 14 + total <= length, fragment == 0 else {
            return .drop(.tunnelMalformed)
        }
        let proto = ip.load(fromByteOffset: 9, as: UInt8.self)
        if proto == 1 && total >= ihl + 8 && ip.load(fromByteOffset: ihl, as: UInt8.self) == 8
            && ip.load(fromByteOffset: ihl + 1, as: UInt8.self) == 0 {
            return .echoRequest
        }
        guard proto == 17 else { return .drop(.tunnelNotVXLAN) }
        let udp = ip + ihl
        guard total >= ihl + 8 else { return .drop(.tunnelMalformed) }
        let source = IPv4Address(loading: ip + 12)
        let destinationPort = UInt16(bigEndian: (udp + 2).loadUnaligned(as: UInt16.self))
        guard tunnels.contains(where: { $0.local == destination && $0.destinationPort == destinationPort }) else {
            return .drop(.tunnelPort)
        }
        let udpLength = Int(UInt16(bigEndian: (udp + 4).loadUnaligned(as: UInt16.self)))
        let innerOffset = 14 + ihl + 16
        guard udpLength >= 16 + 14, ihl + udpLength <= total,
              udp.load(fromByteOffset: 8, as: UInt8.self) & UInt8(SHUNT_VXLAN_FLAG_I) != 0 else {
            return .drop(.tunnelMalformed)
        }
        let vni = UInt32(bigEndian: (udp + 12).loadUnaligned(as: UInt32.self)) >> 8
        // A tunnel with this fixed VNI wins over a `vni=flow` one on the same endpoints.
        var knownRemote = false
        var flowTunnel: Int? = nil
        for (i, t) in tunnels.enumerated()
        where t.local == destination && t.remote == source && t.destinationPort == destinationPort {
            knownRemote = true
            if t.vni == vni { return .decapsulate(tunnel: i, vni: vni, innerOffset: innerOffset, innerLength: udpLength - 16) }
            if t.vni == nil && flowTunnel == nil { flowTunnel = i }
        }
        if let flowTunnel { return .decapsulate(tunnel: flowTunnel, vni: vni, innerOffset: innerOffset, innerLength: udpLength - 16) }
        return .drop(knownRemote ? .tunnelVNI : .tunnelRemote)
    }
}

/// Answers pings to a VTEP address, so the underlay can be checked as with a kernel VTEP.
public enum ICMPEcho {
    /// Writes the echo reply to the IPv4 echo request `request` (an untagged frame the
    /// classifier accepted) at `p`, from `mac`; returns its length, or 0 if it does not fit.
    public static func writeReply(to request: UnsafeRawPointer, from mac: MACAddress,
                                  into p: UnsafeMutableRawPointer, capacity: Int) -> Int {
        let ip = request + 14
        let ihl = Int(ip.load(as: UInt8.self) & 0x0F) * 4
        let total = Int(UInt16(bigEndian: (ip + 2).loadUnaligned(as: UInt16.self)))
        let length = 14 + total
        guard length <= capacity else { return 0 }
        p.copyMemory(from: request, byteCount: length)
        FrameRewrite.store(MACAddress(loading: request + 6), at: p)
        FrameRewrite.store(mac, at: p + 6)
        let out = p + 14
        (out + 12).copyMemory(from: ip + 16, byteCount: 4)
        (out + 16).copyMemory(from: ip + 12, byteCount: 4)
        out.storeBytes(of: 64, toByteOffset: 8, as: UInt8.self)
        (out + 10).storeBytes(of: 0, as: UInt16.self)
        (out + 10).storeBytes(of: Checksum.finish(Checksum.sum(out, count: ihl)).bigEndian, as: UInt16.self)
        let icmp = out + ihl
        icmp.storeBytes(of: 0, as: UInt8.self)  // echo reply
        (icmp + 2).storeBytes(of: 0, as: UInt16.self)
        (icmp + 2).storeBytes(of: Checksum.finish(Checksum.sum(icmp, count: total - ihl)).bigEndian, as: UInt16.self)
        return length
    }
}

/// ICMP "fragmentation needed" (type 3, code 4) for an IPv4 packet with DF that a tunnel cannot
/// carry (`tunnel_mtu`), so the sender lowers its path MTU. A tunnel port is a switch port with
/// no address of its own, so, as Linux's vxlan does for bridged links, the message comes from
/// the packet's destination address and MAC.
public enum ICMPFragmentationNeeded {
    /// Writes the message for the untagged frame `frame` at `p` and returns its length; 0 when
    /// none is due: not IPv4 with DF, a later fragment, an ICMP error itself, or a source that is
    /// not a unicast host.
    public static func write(replyTo frame: UnsafeRawPointer, length: Int, mtu: Int,
                             into p: UnsafeMutableRawPointer, capacity: Int) -> Int {
        guard length >= 34, UInt16(bigEndian: (frame + 12).loadUnaligned(as: UInt16.self)) == 0x0800 else { return 0 }
        let ip = frame + 14
        let versionIHL = ip.load(as: UInt8.self)
        let ihl = Int(versionIHL & 0x0F) * 4
        guard versionIHL >> 4 == 4, ihl >= 20, 14 + ihl <= length else { return 0 }
        let fragment = UInt16(bigEndian: (ip + 6).loadUnaligned(as: UInt16.self))
        guard fragment & 0x4000 != 0, fragment & 0x1FFF == 0 else { return 0 }
        let source = IPv4Address(loading: ip + 12)
        let sourceMAC = MACAddress(loading: frame + 6)
        guard !sourceMAC.isMulticast, source.value != 0, source.value >> 28 != 0xE, source.value != .max else { return 0 }
        let proto = ip.load(fromByteOffset: 9, as: UInt8.self)
        if proto == 1 {
            // Only echo request / reply: never an error about an error (RFC 1122 3.2.2).
            guard 14 + ihl + 1 <= length else { return 0 }
            let type = ip.load(fromByteOffset: ihl, as: UInt8.self)
            guard type == 0 || type == 8 else { return 0 }
        }
        // The original IP header and the first 8 bytes of its payload (RFC 792).
        let quoted = min(ihl + 8, length - 14)
        let total = 20 + 8 + quoted
        guard 14 + total <= capacity else { return 0 }
        (p + 14 + 28).copyMemory(from: ip, byteCount: quoted)
        FrameRewrite.store(sourceMAC, at: p)
        FrameRewrite.store(MACAddress(loading: frame), at: p + 6)
        (p + 12).storeBytes(of: UInt16(0x0800).bigEndian, as: UInt16.self)
        let out = p + 14
        out.storeBytes(of: 0x45, as: UInt8.self)
        out.storeBytes(of: 0, toByteOffset: 1, as: UInt8.self)
        (out + 2).storeBytes(of: UInt16(total).bigEndian, as: UInt16.self)
        (out + 4).storeBytes(of: UInt32(0), as: UInt32.self)  // id 0, no flags
        out.storeBytes(of: 64, toByteOffset: 8, as: UInt8.self)
        out.storeBytes(of: 1, toByteOffset: 9, as: UInt8.self)
        (out + 10).storeBytes(of: UInt16(0), as: UInt16.self)
        (out + 12).copyMemory(from: ip + 16, byteCount: 4)
        (out + 16).copyMemory(from: ip + 12, byteCount: 4)
        (out + 10).storeBytes(of: Checksum.finish(Checksum.sum(out, count: 20)).bigEndian, as: UInt16.self)
        let icmp = out + 20
        icmp.storeBytes(of: 3, as: UInt8.self)
        icmp.storeBytes(of: 4, toByteOffset: 1, as: UInt8.self)
        (icmp + 2).storeBytes(of: UInt16(0), as: UInt16.self)
        (icmp + 4).storeBytes(of: UInt16(0), as: UInt16.self)
        (icmp + 6).storeBytes(of: UInt16(clamping: max(mtu, 68)).bigEndian, as: UInt16.self)
        (icmp + 2).storeBytes(of: Checksum.finish(Checksum.sum(icmp, count: 8 + quoted)).bigEndian, as: UInt16.self)
        return 14 + total
    }
}
