import CShunt

/// The UDP/IPv4 frame `shunt gen` sends: one template, stamped per frame by xdp_gen (UDP source
/// port, struct shunt_probe at SHUNT_PROBE_OFFSET). Pure logic, no system calls.
public struct TestFrameSpec: Equatable, Sendable {
    /// Frame length without FCS: 60 (64 on the wire) to 1514 (1518 on the wire).
    public static let sizes = 60...1514
    /// The smallest frame that holds the probe (the ABI keeps this at or below 60).
    public static let minimumSize = Int(SHUNT_PROBE_OFFSET) + MemoryLayout<shunt_probe>.size

    public var size: Int
    public var destinationMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x02]
    public var sourceMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x01]
    public var sourceIP: [UInt8] = [10, 203, 0, 1]
    public var destinationIP: [UInt8] = [10, 203, 0, 2]
    /// The template's UDP source port; xdp_gen overwrites it with base_sport + seq % flows.
    public var sourcePort: UInt16 = 1024
    public var destinationPort: UInt16 = 9  // discard
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
        f.replaceSubrange(26..<30, with: sourceIP)
        f.replaceSubrange(30..<34, with: destinationIP)
        let sum = Self.internetChecksum(f[14..<34])
        f[24] = UInt8(sum >> 8); f[25] = UInt8(sum & 0xff)
        let udpLength = size - 34
        f[34] = UInt8(sourcePort >> 8); f[35] = UInt8(sourcePort & 0xff)
        f[36] = UInt8(destinationPort >> 8); f[37] = UInt8(destinationPort & 0xff)
        f[38] = UInt8(udpLength >> 8); f[39] = UInt8(udpLength & 0xff)
        // f[40..<42]: UDP checksum 0
        return f
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
