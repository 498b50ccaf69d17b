import CShunt

/// The UDP/IPv4 or UDP/IPv6 frame `shunt gen` sends: one template (the first flow), stamped per
/// frame by xdp_gen or the ring engine (the flow's addresses and ports, struct shunt_probe at
/// SHUNT_PROBE_OFFSET or SHUNT_PROBE_OFFSET_IPV6, and the IPv4 header or the UDP/IPv6
/// checksum). Pure logic, no system calls.
public struct TestFrameSpec: Equatable, Sendable {
    /// Frame length without FCS: 60 (64 on the wire) to 9000 (jumbo); the port's MTU + 14 and
    /// the engine may allow less.
    public static let sizes = 60...9000
    /// The smallest frame that holds the probe (the ABI keeps this at or below 60).
    public static let minimumSize = Int(SHUNT_PROBE_OFFSET) + MemoryLayout<shunt_probe>.size
    /// The smallest IPv6 frame that holds the probe: 62 + 16.
    public static let minimumSizeIPv6 = Int(SHUNT_PROBE_OFFSET_IPV6) + MemoryLayout<shunt_probe>.size

    public var isIPv6: Bool { flows.ipv6 != nil }
    /// Where the probe goes in this frame.
    public var probeOffset: Int { isIPv6 ? Probe.offsetIPv6 : Probe.offset }

    public var size: Int
    public var destinationMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x02]
    public var sourceMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x01]
    /// The flows; the template carries the first. Default: 10.203.0.1:1024 -> 10.203.0.2:9 (discard).
    public var flows = FlowSpace(
        sourceAddresses: .init(first: 0x0ACB_0001, count: 1), destinationAddresses: .init(first: 0x0ACB_0002, count: 1),
        sourcePorts: .init(first: 1024, count: 1), destinationPorts: .init(first: 9, count: 1))
    public var ttl: UInt8 = 64

    public init(size: Int) { self.size = size }

    /// The frame bytes: Ethernet II, IPv4 (no options, valid header checksum, DF clear), UDP
    /// (checksum 0: none), zero payload in which xdp_gen writes the probe.
    public func bytes() -> [UInt8] {
        precondition(Self.sizes.contains(size), "frame size \(size) out of range")
        if let v6 = flows.ipv6 { return ipv6Bytes(v6) }
        var f = [UInt8](repeating: 0, count: size)
        f.replaceSubrange(0..<6, with: destinationMAC)
        f.replaceSubrange(6..<12, with: sourceMAC)
        f[12] = 0x08; f[13] = 0x00
        let ipLength = size - 14
        f[14] = 0x45  // version 4, IHL 5
        f[15] = 0
        f[16] = UInt8(ipLength >> 8); f[17] = UInt8(ipLength & 0xff)
        // identification 0, flags/fragment 0
        f[22] = ttl
        f[23] = 17  // UDP
        let udpLength = size - 34
        f[38] = UInt8(udpLength >> 8); f[39] = UInt8(udpLength & 0xff)
        // f[40..<42]: UDP checksum 0
        let base = IPv4ChecksumBase(header: f[14..<34])
        f.withUnsafeMutableBytes { Self.writeFlow(flows.flow(forSequence: 0), checksumBase: base, into: $0.baseAddress!) }
        return f
    }

    /// The IPv6 frame: Ethernet II, IPv6 (traffic class and flow label 0, hop limit = ttl), UDP
    /// with its checksum for a zero probe (the senders fix it up per frame), zero payload.
    private func ipv6Bytes(_ v6: FlowSpace.IPv6Prefixes) -> [UInt8] {
        precondition(size >= Self.minimumSizeIPv6, "IPv6 frame size \(size) below \(Self.minimumSizeIPv6)")
        var f = [UInt8](repeating: 0, count: size)
        f.replaceSubrange(0..<6, with: destinationMAC)
        f.replaceSubrange(6..<12, with: sourceMAC)
        f[12] = 0x86; f[13] = 0xDD
        f[14] = 0x60
        let payload = size - 54
        f[18] = UInt8(payload >> 8); f[19] = UInt8(payload & 0xff)
        f[20] = 17  // UDP
        f[21] = ttl
        f.replaceSubrange(22..<34, with: v6.source)
        f.replaceSubrange(38..<50, with: v6.destination)
        f[58] = UInt8(payload >> 8); f[59] = UInt8(payload & 0xff)
        let flow = flows.flow(forSequence: 0)
        let base = UDP6ChecksumBase(template: f)
        f.withUnsafeMutableBytes {
            Self.writeFlowIPv6(flow, into: $0.baseAddress!)
            base.store(into: $0.baseAddress!)
        }
        return f
    }

    /// Writes `flow`'s addresses (last 32 bits) and ports into an IPv6 frame built from this
    /// template; the UDP checksum is `UDP6ChecksumBase.store`'s, after the probe.
    @inlinable
    public static func writeFlowIPv6(_ flow: FlowSpace.Flow, into frame: UnsafeMutableRawPointer) {
        frame.storeBytes(of: flow.sourceAddress.bigEndian, toByteOffset: 34, as: UInt32.self)
        frame.storeBytes(of: flow.destinationAddress.bigEndian, toByteOffset: 50, as: UInt32.self)
        frame.storeBytes(of: flow.sourcePort.bigEndian, toByteOffset: 54, as: UInt16.self)
        frame.storeBytes(of: flow.destinationPort.bigEndian, toByteOffset: 56, as: UInt16.self)
    }

    /// Writes `flow`'s addresses, ports and IPv4 header checksum into a frame built from this
    /// template (as xdp_gen does). `frame` must hold at least 42 bytes.
    @inlinable
    public static func writeFlow(_ flow: FlowSpace.Flow, checksumBase: IPv4ChecksumBase, into frame: UnsafeMutableRawPointer) {
        frame.storeBytes(of: checksumBase.checksum(source: flow.sourceAddress, destination: flow.destinationAddress).bigEndian,
                         toByteOffset: 24, as: UInt16.self)
        frame.storeBytes(of: flow.sourceAddress.bigEndian, toByteOffset: 26, as: UInt32.self)
        frame.storeBytes(of: flow.destinationAddress.bigEndian, toByteOffset: 30, as: UInt32.self)
        frame.storeBytes(of: flow.sourcePort.bigEndian, toByteOffset: 34, as: UInt16.self)
        frame.storeBytes(of: flow.destinationPort.bigEndian, toByteOffset: 36, as: UInt16.self)
    }

    /// The checksum base of this template's IPv4 header (all that does not change per flow).
    public var checksumBase: IPv4ChecksumBase { IPv4ChecksumBase(header: bytes()[14..<34]) }

    /// The UDP checksum base of this IPv6 template.
    public var udp6ChecksumBase: UDP6ChecksumBase { UDP6ChecksumBase(template: bytes()) }

    /// xdp_gen's read-only configuration for this template, the flows and `stream`.
    public func genConfig(stream: UInt16) -> shunt_gen_config {
        var c = shunt_gen_config()
        c.stream = UInt32(stream)
        c.flows = UInt32(flows.flowCount)
        c.sport_first = flows.sourcePorts.first
        c.sport_count = flows.sourcePorts.count
        c.dport_first = flows.destinationPorts.first
        c.dport_count = flows.destinationPorts.count
        c.saddr_first = flows.sourceAddresses.first
        c.saddr_count = flows.sourceAddresses.count
        c.daddr_first = flows.destinationAddresses.first
        c.daddr_count = flows.destinationAddresses.count
        c.ip_csum_base = isIPv6 ? udp6ChecksumBase.sum : checksumBase.sum
        c.ipv6 = isIPv6 ? 1 : 0
        withUnsafeMutableBytes(of: &c.eth) { $0.copyBytes(from: destinationMAC + sourceMAC) }
        return c
    }

    /// RFC 1071 checksum of `bytes` (with the checksum field zero, the value to store; over a
    /// header holding its checksum, 0 when valid).
    public static func internetChecksum<C: Collection>(_ bytes: C) -> UInt16 where C.Element == UInt8 {
        var sum: UInt32 = 0
        var high = true
        for b in bytes {
            sum &+= high ? UInt32(b) << 8 : UInt32(b)
            high.toggle()
        }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }
}

/// The UDP checksum of an IPv6 test frame, kept as xdp_gen keeps it: the one's complement sum of
/// the pseudo-header, UDP header and payload with the per-frame fields zero (last 32 bits of
/// both addresses, ports, checksum, probe), taken once; each frame adds those fields. Sums are
/// of 16-bit loads in memory order (byte order does not matter to a one's complement sum as long
/// as the result is stored the same way; RFC 1071 2.(B)).
public struct UDP6ChecksumBase: Equatable, Sendable {
    public var sum: UInt32

    /// `template`: an IPv6 test frame (Ethernet, IPv6 without extension headers, UDP).
    public init(template: [UInt8]) {
        var f = template
        for r in [34..<38, 50..<54, 54..<58, 60..<62, Probe.offsetIPv6..<(Probe.offsetIPv6 + Probe.size)] {
            f.replaceSubrange(r, with: repeatElement(0, count: r.count))
        }
        let udpLength = f.count - 54
        var pseudo = Array(f[22..<54])
        pseudo += [0, 0, UInt8(udpLength >> 8), UInt8(udpLength & 0xff), 0, 0, 0, 17]
        var s = Self.words(pseudo) + Self.words(Array(f[54...]))
        while s >> 32 != 0 { s = (s & 0xffff_ffff) + (s >> 32) }
        sum = UInt32(s)
    }

    private static func words(_ bytes: [UInt8]) -> UInt64 {
        var b = bytes
        if b.count % 2 == 1 { b.append(0) }
        return b.withUnsafeBytes { raw in
            stride(from: 0, to: raw.count, by: 2).reduce(UInt64(0)) { $0 + UInt64(raw.loadUnaligned(fromByteOffset: $1, as: UInt16.self)) }
        }
    }

    /// Stores the checksum of `frame` (this template with its flow and probe written).
    @inlinable
    public func store(into frame: UnsafeMutableRawPointer) {
        @inline(__always) func word(_ offset: Int) -> UInt64 { UInt64(frame.loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }
        var s = UInt64(sum) + word(34) + word(36) + word(50) + word(52) + word(54) + word(56)
        for k in 0..<8 { s += word(Probe.offsetIPv6 + 2 * k) }
        s = (s & 0xffff) + (s >> 16)
        s = (s & 0xffff) + (s >> 16)
        s = (s & 0xffff) + (s >> 16)
        let check = ~UInt16(truncatingIfNeeded: s)
        frame.storeBytes(of: check == 0 ? 0xffff : check, toByteOffset: 60, as: UInt16.self)
    }
}

/// Parses "02:00:00:00:00:02" (or with '-'); nil when malformed.
public func parseMAC(_ text: String) -> [UInt8]? {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false).count == 6
        ? text.split(separator: ":", omittingEmptySubsequences: false)
        : text.split(separator: "-", omittingEmptySubsequences: false)
    guard parts.count == 6 else { return nil }
    var mac: [UInt8] = []
    for p in parts {
        guard (1...2).contains(p.count), let v = UInt8(p, radix: 16) else { return nil }
        mac.append(v)
    }
    return mac
}
