import CShunt
import ShuntCore

/// Counters the RX walker keeps for frames that never enter a batch. One writer: the worker.
public struct RxWalkerCounters {
    public var tooLarge: UInt64 = 0
    public var tooLargeBytes: UInt64 = 0
    public var outgoing: UInt64 = 0
}

/// Walks a mapped RX ring and fills batches with the frames the kernel has handed over.
///
/// Resumable: a cursor remembers the block, packet index and offset, so a batch can stop in the
/// middle of a V3 block. Frames stay in ring memory until `releaseConsumed()`, which the worker
/// calls after the batch has been transmitted; only then does the kernel get the memory back.
public struct RxRing {
    public let version: RingVersion
    public let geometry: RingGeometry
    @usableFromInline let base: UnsafeMutableRawPointer

    // V3 cursor
    @usableFromInline var block = 0
    @usableFromInline var inBlock = false
    @usableFromInline var packetIndex: UInt32 = 0
    @usableFromInline var packetsInBlock: UInt32 = 0
    @usableFromInline var offset = 0
    // V2 cursor
    @usableFromInline var frame = 0
    /// Blocks (V3) or frames (V2) fully read and not yet returned, starting at `releaseStart`.
    @usableFromInline var releaseStart = 0
    @usableFromInline var releaseCount = 0

    public var counters = RxWalkerCounters()

    /// - Parameter base: start of the RX ring in a mapping that outlives this walker.
    public init(version: RingVersion, geometry: RingGeometry, base: UnsafeMutableRawPointer) {
        self.version = version
        self.geometry = geometry
        self.base = base
    }

    /// Appends ready frames to `batch` until it is full or the ring has no more; returns how many.
    public mutating func fill(_ batch: inout PacketBatch, port: UInt16) -> Int {
        let before = batch.count
        switch version {
        case .v3: fillV3(&batch, port: port)
        case .v2: fillV2(&batch, port: port)
        }
        return batch.count - before
    }

    /// Hands every fully read block (or frame) back to the kernel.
    public mutating func releaseConsumed() {
        guard releaseCount > 0 else { return }
        switch version {
        case .v3:
            var b = releaseStart
            for _ in 0..<releaseCount {
                cshunt_v3_block_release(base + b * geometry.blockSize)
                b = b + 1 == geometry.blockCount ? 0 : b + 1
            }
        case .v2:
            var f = releaseStart
            for _ in 0..<releaseCount {
                cshunt_store_release_u32(base + f * geometry.frameSize, UInt32(TP_STATUS_KERNEL))
                f = f + 1 == geometry.frameCount ? 0 : f + 1
            }
        }
        // The cursor advanced once per released unit, so the next unit to release is the cursor.
        releaseStart = version == .v3 ? block : frame
        releaseCount = 0
    }

    /// Whether the kernel has handed over anything not yet read (used before sleeping).
    public func hasReadyFrames() -> Bool {
        switch version {
        case .v3: inBlock || cshunt_v3_block_status(base + block * geometry.blockSize) & UInt32(TP_STATUS_USER) != 0
        case .v2: cshunt_load_acquire_u32(base + frame * geometry.frameSize) & UInt32(TP_STATUS_USER) != 0
        }
    }

    @inline(__always)
    mutating func accept(_ batch: inout PacketBatch, header: UnsafeMutableRawPointer, sll: UnsafeRawPointer,
                         status: UInt32, mac: Int, snaplen: UInt32, len: UInt32, tci: UInt16, tpid: UInt16, port: UInt16) {
        if sll.load(fromByteOffset: 10, as: UInt8.self) == UInt8(PACKET_OUTGOING) {
            counters.outgoing &+= 1
            return
        }
        if snaplen < len {
            counters.tooLarge &+= 1
            counters.tooLargeBytes &+= UInt64(len)
            return
        }
        var flags: PacketDescriptor.Flags = []
        if status & UInt32(TP_STATUS_VLAN_VALID) != 0 { flags.insert(.hasVLANTag) }
        if status & UInt32(TP_STATUS_CSUMNOTREADY) != 0 { flags.insert(.checksumNotReady) }
        batch.append(PacketDescriptor(
            data: header + mac, capturedLength: snaplen, wireLength: len,
            vlanTCI: tci, vlanTPID: status & UInt32(TP_STATUS_VLAN_TPID_VALID) != 0 ? tpid : 0x8100,
            flags: flags, inPort: port))
    }

    @usableFromInline
    mutating func fillV3(_ batch: inout PacketBatch, port: UInt16) {
        let sllOffset = Int(cshunt_tpacket_align(UInt32(MemoryLayout<tpacket3_hdr>.size)))
        while !batch.isFull {
            let blockBase = base + block * geometry.blockSize
            if !inBlock {
                // Every block is read and awaiting release: the next "ready" block is one of
                // ours, not a new one from the kernel.
                guard releaseCount < geometry.blockCount else { return }
                guard cshunt_v3_block_status(blockBase) & UInt32(TP_STATUS_USER) != 0 else { return }
                inBlock = true
                packetIndex = 0
                packetsInBlock = cshunt_v3_block_num_pkts(blockBase)
                offset = Int(cshunt_v3_block_first_offset(blockBase))
            }
            if packetIndex < packetsInBlock {
                let h = (blockBase + offset).assumingMemoryBound(to: tpacket3_hdr.self)
                let hdr = h.pointee
                accept(&batch, header: UnsafeMutableRawPointer(h), sll: UnsafeRawPointer(h) + sllOffset,
                       status: hdr.tp_status, mac: Int(hdr.tp_mac), snaplen: hdr.tp_snaplen, len: hdr.tp_len,
                       tci: UInt16(truncatingIfNeeded: hdr.hv1.tp_vlan_tci), tpid: hdr.hv1.tp_vlan_tpid, port: port)
                offset += Int(hdr.tp_next_offset)
                packetIndex += 1
            }
            if packetIndex >= packetsInBlock {
                inBlock = false
                releaseCount += 1
                block = block + 1 == geometry.blockCount ? 0 : block + 1
            }
        }
    }

    @usableFromInline
    mutating func fillV2(_ batch: inout PacketBatch, port: UInt16) {
        let sllOffset = Int(cshunt_tpacket_align(UInt32(MemoryLayout<tpacket2_hdr>.size)))
        while !batch.isFull {
            guard releaseCount < geometry.frameCount else { return }  // all read, none released yet
            let frameBase = base + frame * geometry.frameSize
            let status = cshunt_load_acquire_u32(frameBase)
            guard status & UInt32(TP_STATUS_USER) != 0 else { return }
            let hdr = frameBase.assumingMemoryBound(to: tpacket2_hdr.self).pointee
            accept(&batch, header: frameBase, sll: UnsafeRawPointer(frameBase) + sllOffset,
                   status: status, mac: Int(hdr.tp_mac), snaplen: hdr.tp_snaplen, len: hdr.tp_len,
                   tci: hdr.tp_vlan_tci, tpid: hdr.tp_vlan_tpid, port: port)
            releaseCount += 1
            frame = frame + 1 == geometry.frameCount ? 0 : frame + 1
        }
    }
}
