import CShunt

/// Which TPACKET version a port's socket uses for both of its rings.
public enum RingVersion: String, CaseIterable, Sendable {
    /// Variable-size frames packed into blocks; a block reaches user space when full or when
    /// its timeout expires. Fewest wake-ups and densest memory under load.
    case v3
    /// One fixed-size frame per packet, handed over as soon as it is written: no block timeout,
    /// so the lowest latency at low rates.
    case v2

    var kernelValue: Int32 {
        switch self {
        case .v3: Int32(TPACKET_V3.rawValue)
        case .v2: Int32(TPACKET_V2.rawValue)
        }
    }

    /// Where frame data starts in a TX frame (the kernel's tp_hdrlen minus sockaddr_ll).
    public var txDataOffset: Int {
        switch self {
        case .v3: Int(cshunt_tpacket_align(UInt32(MemoryLayout<tpacket3_hdr>.size)))
        case .v2: Int(cshunt_tpacket_align(UInt32(MemoryLayout<tpacket2_hdr>.size)))
        }
    }

    /// Where frame data starts in an RX frame of an Ethernet device: the header, sockaddr_ll,
    /// then alignment (the kernel's macoff for a 14-byte link header and no reserve).
    public var rxDataOffset: Int {
        let hdr: Int
        switch self {
        case .v3: hdr = MemoryLayout<tpacket3_hdr>.size
        case .v2: hdr = MemoryLayout<tpacket2_hdr>.size
        }
        // tpacket_rcv: netoff = TPACKET_ALIGN(tp_hdrlen + max(maclen, 16)); macoff = netoff - maclen.
        let hdrlen = Int(cshunt_tpacket_align(UInt32(hdr))) + MemoryLayout<sockaddr_ll>.size
        return Int(cshunt_tpacket_align(UInt32(hdrlen + 16))) - 14
    }
}

/// Size and shape of one ring. Checked against the kernel's rules before any socket is touched.
public struct RingGeometry: Equatable, Sendable, CustomStringConvertible {
    public var blockSize: Int
    public var blockCount: Int
    public var frameSize: Int
    /// TPACKET_V3 RX only: milliseconds after which a partly filled block is handed over.
    public var blockTimeoutMs: Int

    public static let pageSize = 4096
    /// TPACKET_ALIGNMENT
    public static let frameAlignment = 16

    public init(blockSize: Int, blockCount: Int, frameSize: Int, blockTimeoutMs: Int = 1) {
        self.blockSize = blockSize
        self.blockCount = blockCount
        self.frameSize = frameSize
        self.blockTimeoutMs = blockTimeoutMs
    }

    /// Defaults: 4 MiB per ring. V3 RX uses 64 KiB blocks (about 450 minimum-size frames, so a
    /// block fills in well under the 1 ms timeout from ~0.5 Mpps); fixed-frame rings use 2 KiB
    /// frames, enough for a 1500-byte MTU plus a VLAN tag.
    public static func defaultRX(_ version: RingVersion) -> RingGeometry {
        switch version {
        case .v3: RingGeometry(blockSize: 1 << 16, blockCount: 64, frameSize: 2048, blockTimeoutMs: 1)
        case .v2: RingGeometry(blockSize: 1 << 16, blockCount: 1024, frameSize: 2048, blockTimeoutMs: 0)
        }
    }

    public static let defaultTX = RingGeometry(blockSize: 1 << 16, blockCount: 32, frameSize: 2048, blockTimeoutMs: 0)

    public var framesPerBlock: Int { blockSize / frameSize }
    public var frameCount: Int { framesPerBlock * blockCount }
    public var byteCount: Int { blockSize * blockCount }

    public var description: String {
        "\(blockCount) blocks x \(blockSize) B, \(frameSize) B frames"
    }

    public enum Invalid: Error, Equatable, CustomStringConvertible {
        case blockNotPageMultiple(Int)
        case frameNotAligned(Int)
        case frameTooSmall(Int)
        case blockNotFrameMultiple(block: Int, frame: Int)
        case noBlocks
        case timeoutOutOfRange(Int)

        public var description: String {
            switch self {
            case .blockNotPageMultiple(let b): "block size \(b) is not a multiple of the 4096-byte page size"
            case .frameNotAligned(let f): "frame size \(f) is not a multiple of 16 (TPACKET_ALIGNMENT)"
            case .frameTooSmall(let f): "frame size \(f) is smaller than 128 bytes"
            case .blockNotFrameMultiple(let b, let f): "block size \(b) is not a multiple of the frame size \(f)"
            case .noBlocks: "the ring needs at least one block"
            case .timeoutOutOfRange(let t): "block timeout \(t) ms is outside 1...1000"
            }
        }
    }

    /// The kernel's layout rules (packet_set_ring), plus Shunt's own bounds.
    public func validate(for version: RingVersion, rx: Bool) throws(Invalid) {
        guard blockCount > 0 else { throw .noBlocks }
        guard blockSize > 0, blockSize % Self.pageSize == 0 else { throw .blockNotPageMultiple(blockSize) }
        guard frameSize % Self.frameAlignment == 0 else { throw .frameNotAligned(frameSize) }
        guard frameSize >= 128 else { throw .frameTooSmall(frameSize) }
        guard blockSize % frameSize == 0 else { throw .blockNotFrameMultiple(block: blockSize, frame: frameSize) }
        if version == .v3 && rx {
            guard (1...1000).contains(blockTimeoutMs) else { throw .timeoutOutOfRange(blockTimeoutMs) }
        }
    }

    /// The longest frame (link header included) a ring of this shape carries whole.
    public func maxFrameLength(for version: RingVersion, rx: Bool) -> Int {
        if rx {
            switch version {
            case .v3:
                // A V3 packet may use a whole block after the block descriptor (48 bytes, aligned).
                let blockHeader = Int(cshunt_tpacket_align(UInt32(MemoryLayout<tpacket_block_desc>.size)))
                return blockSize - blockHeader - version.rxDataOffset
            case .v2:
                return frameSize - version.rxDataOffset
            }
        }
        return frameSize - version.txDataOffset
    }

    /// Halves the block count (the kernel answered ENOMEM); nil when it cannot shrink further.
    public func shrunk() -> RingGeometry? {
        guard blockCount > 1 else { return nil }
        var g = self
        g.blockCount /= 2
        return g
    }
}
