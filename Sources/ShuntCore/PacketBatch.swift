/// Most frames one worker takes from one RX ring before it runs the pipeline and transmits.
public let maxBurst = 64

/// One received frame, still in RX ring memory. Valid only while its batch is being processed.
public struct PacketDescriptor {
    /// Start of the frame in the RX ring. Never kept past the batch.
    public var data: UnsafeMutableRawPointer
    /// Bytes present in the ring.
    public var capturedLength: UInt32
    /// Bytes the frame had on the wire (more than captured when the ring truncated it).
    public var wireLength: UInt32
    /// VLAN tag the kernel took out of the frame (valid when `hasVLANTag`).
    public var vlanTCI: UInt16
    public var vlanTPID: UInt16
    public var flags: Flags
    /// Index of the port the frame arrived on.
    public var inPort: UInt16

    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        /// The kernel stripped an 802.1Q/802.1ad tag into `vlanTCI`/`vlanTPID`.
        public static let hasVLANTag = Flags(rawValue: 1 << 0)
        /// The L4 checksum is still to be completed (locally generated, checksum offload).
        public static let checksumNotReady = Flags(rawValue: 1 << 1)
    }

    public init(data: UnsafeMutableRawPointer, capturedLength: UInt32, wireLength: UInt32,
                vlanTCI: UInt16 = 0, vlanTPID: UInt16 = 0, flags: Flags = [], inPort: UInt16) {
        self.data = data
        self.capturedLength = capturedLength
        self.wireLength = wireLength
        self.vlanTCI = vlanTCI
        self.vlanTPID = vlanTPID
        self.flags = flags
        self.inPort = inPort
    }

    /// Length of the frame as it will be transmitted (the stripped tag goes back in).
    @inlinable public var outputLength: Int {
        Int(capturedLength) + (flags.contains(.hasVLANTag) ? 4 : 0)
    }
}

/// What the pipeline decided for one frame.
public struct Verdict: Equatable, Sendable {
    public enum Kind: UInt8, Sendable { case drop, output, flood }
    public var kind: Kind
    /// Output port for `.output`; the port excluded from a `.flood`.
    public var port: UInt16
    public var reason: DropReason?

    @inlinable public init(kind: Kind, port: UInt16, reason: DropReason?) {
        self.kind = kind
        self.port = port
        self.reason = reason
    }

    @inlinable public static func output(_ port: UInt16) -> Verdict { Verdict(kind: .output, port: port, reason: nil) }
    @inlinable public static func flood(except port: UInt16) -> Verdict { Verdict(kind: .flood, port: port, reason: nil) }
    @inlinable public static func drop(_ reason: DropReason) -> Verdict { Verdict(kind: .drop, port: 0, reason: reason) }
}

/// A fixed-capacity batch of frames and their verdicts, allocated once per worker and reused:
/// nothing on the per-packet path allocates.
public struct PacketBatch: ~Copyable {
    @usableFromInline let packets: UnsafeMutablePointer<PacketDescriptor>
    @usableFromInline let verdicts: UnsafeMutablePointer<Verdict>
    public private(set) var count = 0
    public let capacity: Int

    public init(capacity: Int = maxBurst) {
        self.capacity = capacity
        packets = .allocate(capacity: capacity)
        verdicts = .allocate(capacity: capacity)
        verdicts.initialize(repeating: .drop(.noOutput), count: capacity)
    }

    deinit {
        packets.deallocate()
        verdicts.deallocate()
    }

    @inlinable public var isFull: Bool { count == capacity }

    public mutating func removeAll() { count = 0 }

    public mutating func append(_ packet: PacketDescriptor) {
        precondition(count < capacity)
        (packets + count).initialize(to: packet)
        verdicts[count] = .drop(.noOutput)
        count += 1
    }

    @inlinable public func packet(_ i: Int) -> PacketDescriptor { packets[i] }
    @inlinable public func verdict(_ i: Int) -> Verdict { verdicts[i] }
    @inlinable public func setVerdict(_ i: Int, _ v: Verdict) { verdicts[i] = v }
}
