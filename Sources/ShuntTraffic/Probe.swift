import CShunt

/// The probe `shunt gen` stamps into each frame (`struct shunt_probe` at `SHUNT_PROBE_OFFSET`),
/// read back by the userspace sink. Pure logic, no system calls.
public struct Probe: Equatable, Sendable {
    /// Stream id (network order on the wire).
    public var stream: UInt16
    /// Sequence number within the stream (host order on the wire: generator and sink share a host).
    public var sequence: UInt32
    /// CLOCK_MONOTONIC nanoseconds at send (host order).
    public var sentNanoseconds: UInt64

    public init(stream: UInt16, sequence: UInt32, sentNanoseconds: UInt64) {
        self.stream = stream
        self.sequence = sequence
        self.sentNanoseconds = sentNanoseconds
    }

    /// Where the probe starts: Ethernet 14 + IPv4 without options 20 + UDP 8.
    public static let offset = Int(SHUNT_PROBE_OFFSET)
    /// In an IPv6 frame: Ethernet 14 + IPv6 40 + UDP 8.
    public static let offsetIPv6 = Int(SHUNT_PROBE_OFFSET_IPV6)
    public static let size = MemoryLayout<shunt_probe>.size
    public static let magic = UInt16(SHUNT_PROBE_MAGIC)

    /// The probe of a frame from `shunt gen`, or nil for any other frame.
    ///
    /// `frame` starts at the Ethernet header (a receive ring hands frames over with the VLAN tag,
    /// if any, moved into metadata, so a tagged frame reads as untagged here). The frame must be
    /// IPv4 (EtherType 0x0800) with a 20-byte header, UDP, not a later fragment, or IPv6
    /// (0x86DD) with UDP as the next header (no extension headers), long enough to hold the
    /// probe, and carry the magic at `offset` or `offsetIPv6`. The UDP ports are not checked:
    /// forwarders under test may rewrite them.
    @inlinable
    public static func parse(_ frame: UnsafeRawBufferPointer) -> Probe? {
        guard frame.count >= offset + size, frame[12] == 0x08 || frame[12] == 0x86 else { return nil }
        let at: Int
        if frame[12] == 0x08, frame[13] == 0x00,  // IPv4
            frame[14] == 0x45,  // version 4, IHL 5
            frame[23] == 17,  // UDP
            frame[20] & 0x1F == 0, frame[21] == 0  // fragment offset 0
        {
            at = offset
        } else if frame[12] == 0x86, frame[13] == 0xDD, frame.count >= offsetIPv6 + size,  // IPv6
            frame[14] >> 4 == 6, frame[20] == 17  // next header UDP
        {
            at = offsetIPv6
        } else {
            return nil
        }
        guard UInt16(frame[at]) << 8 | UInt16(frame[at + 1]) == magic else { return nil }
        return Probe(
            stream: UInt16(frame[at + 2]) << 8 | UInt16(frame[at + 3]),
            sequence: frame.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self),
            sentNanoseconds: frame.loadUnaligned(fromByteOffset: at + 8, as: UInt64.self))
    }

    /// Writes this probe at `offset` of `frame` as xdp_gen does (for tests and tools that build
    /// frames in userspace). `frame` must be at least `offset + size` bytes.
    public func write(into frame: inout [UInt8], at o: Int = Probe.offset) {
        precondition(frame.count >= o + Self.size, "frame too short for a probe")
        frame[o] = UInt8(Self.magic >> 8)
        frame[o + 1] = UInt8(Self.magic & 0xFF)
        frame[o + 2] = UInt8(stream >> 8)
        frame[o + 3] = UInt8(stream & 0xFF)
        frame.withUnsafeMutableBytes {
            $0.storeBytes(of: sequence, toByteOffset: o + 4, as: UInt32.self)
            $0.storeBytes(of: sentNanoseconds, toByteOffset: o + 8, as: UInt64.self)
        }
    }
}
