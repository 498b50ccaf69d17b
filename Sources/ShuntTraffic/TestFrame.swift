import CShunt

/// The UDP/IPv4 frame `shunt gen` sends: one template (the first flow), stamped per frame by
/// xdp_gen or the ring engine (the flow's addresses, ports and IPv4 checksum; struct shunt_probe
/// at SHUNT_PROBE_OFFSET). Pure logic, no system calls.
public struct TestFrameSpec: Equatable, Sendable {
    /// Frame length without FCS: 60 (64 on the wire) to 9000 (jumbo); the port's MTU + 14 and
    /// the engine may allow less.
    public static let sizes = 60...9000
    /// The smallest frame that holds the probe (the ABI keeps this at or below 60).
    public static let minimumSize = Int(SHUNT_PROBE_OFFSET) + MemoryLayout<shunt_probe>.size

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
        c.ip_csum_base = checksumBase.sum
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
