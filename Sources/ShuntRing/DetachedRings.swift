import CShunt
import ShuntCore

/// The kernel's half of a detached port's rings (`RingPort(detached:)`), played in user space:
/// received frames are written into the RX ring as the kernel lays them out, and frames queued
/// on the TX ring are marked sent. Neither allocates, so a benchmark can count a worker pass's
/// allocations and instructions with the rings in the loop.
extension RingPort {
    /// Writes `frames` where the RX walker reads next and hands them to user space: on V3 one
    /// block holding all of them, on V2 one frame slot each. Returns false (and writes nothing)
    /// when the worker has not yet given that memory back, or the frames do not fit.
    public func deliver(_ frames: [[UInt8]]) -> Bool {
        rx.deliver(frames)
    }

    /// Marks every frame queued on the TX ring since the last call as sent, as the kernel does
    /// once a frame has left.
    public func completeTransmitted() {
        tx.completeQueued()
    }
}

extension RxRing {
    mutating func deliver(_ frames: [[UInt8]]) -> Bool {
        switch version {
        case .v3:
            var b = block
            if inBlock { b = b + 1 == geometry.blockCount ? 0 : b + 1 }
            let blockBase = base + b * geometry.blockSize
            guard cshunt_v3_block_status(blockBase) & UInt32(TP_STATUS_USER) == 0 else { return false }
            let first = Int(cshunt_tpacket_align(UInt32(MemoryLayout<tpacket_block_desc>.size)))
            let mac = version.rxDataOffset
            var offset = first
            var sizes = 0
            for f in frames { sizes += Int(cshunt_tpacket_align(UInt32(mac + f.count))) }
            guard first + sizes <= geometry.blockSize else { return false }
            let sllOffset = Int(cshunt_tpacket_align(UInt32(MemoryLayout<tpacket3_hdr>.size)))
            for (i, f) in frames.enumerated() {
                let h = (blockBase + offset).assumingMemoryBound(to: tpacket3_hdr.self)
                f.withUnsafeBytes { (blockBase + offset + mac).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                let size = Int(cshunt_tpacket_align(UInt32(mac + f.count)))
                h.pointee.tp_next_offset = i == frames.count - 1 ? 0 : UInt32(size)
                h.pointee.tp_snaplen = UInt32(f.count)
                h.pointee.tp_len = UInt32(f.count)
                h.pointee.tp_mac = UInt16(mac)
                h.pointee.tp_status = UInt32(TP_STATUS_USER)
                (blockBase + offset + sllOffset + 10).storeBytes(of: UInt8(PACKET_HOST), as: UInt8.self)
                offset += size
            }
            let desc = blockBase.assumingMemoryBound(to: tpacket_block_desc.self)
            desc.pointee.hdr.bh1.num_pkts = UInt32(frames.count)
            desc.pointee.hdr.bh1.offset_to_first_pkt = UInt32(first)
            // block_status is the first word of hdr.bh1, at offset 8 (a union).
            cshunt_store_release_u32(blockBase + 8, UInt32(TP_STATUS_USER))
            return true
        case .v2:
            let mac = version.rxDataOffset
            guard frames.count <= geometry.frameCount, frames.allSatisfy({ mac + $0.count <= geometry.frameSize }) else { return false }
            let sllOffset = Int(cshunt_tpacket_align(UInt32(MemoryLayout<tpacket2_hdr>.size)))
            var slot = frame
            for f in frames {
                let frameBase = base + slot * geometry.frameSize
                guard cshunt_load_acquire_u32(frameBase) & UInt32(TP_STATUS_USER) == 0 else { return false }
                let h = frameBase.assumingMemoryBound(to: tpacket2_hdr.self)
                f.withUnsafeBytes { (frameBase + mac).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                h.pointee.tp_snaplen = UInt32(f.count)
                h.pointee.tp_len = UInt32(f.count)
                h.pointee.tp_mac = UInt16(mac)
                (frameBase + sllOffset + 10).storeBytes(of: UInt8(PACKET_HOST), as: UInt8.self)
                cshunt_store_release_u32(frameBase, UInt32(TP_STATUS_USER))
                slot = slot + 1 == geometry.frameCount ? 0 : slot + 1
            }
            return true
        }
    }
}

extension TxRing {
    /// Frames from `completed` up to `next` were queued: mark them available again (`.copy`:
    /// empty the staging area, as a flush that sent everything does).
    mutating func completeQueued() {
        if method == .copy {
            pending = 0
            head = 0
            next = 0
            return
        }
        while completed != next {
            cshunt_store_release_u32(base + completed * geometry.frameSize + statusOffset, UInt32(TP_STATUS_AVAILABLE))
            completed = completed + 1 == geometry.frameCount ? 0 : completed + 1
        }
    }
}

extension RingPort {
    /// A copy of the frame queued last on the TX ring (tests look at what a worker wrote).
    public func lastQueuedFrame() -> [UInt8] { tx.lastQueuedFrame() }
}

extension TxRing {
    func lastQueuedFrame() -> [UInt8] {
        let frame = base + lastCommitted * geometry.frameSize
        let length: Int = switch (method, version) {
        case (.copy, _): messages.unsafelyUnwrapped[lastCommitted].msg_hdr.msg_iov.pointee.iov_len
        case (.ring, .v3): Int(frame.assumingMemoryBound(to: tpacket3_hdr.self).pointee.tp_len)
        case (.ring, .v2): Int(frame.assumingMemoryBound(to: tpacket2_hdr.self).pointee.tp_len)
        }
        return Array(UnsafeRawBufferPointer(start: frame + dataOffset, count: length))
    }
}
