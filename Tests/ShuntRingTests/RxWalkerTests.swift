import CShunt
import ShuntCore
import Testing
@testable import ShuntRing

/// Builds ring memory the way the kernel lays it out, so the walkers can be tested without a socket.
final class SyntheticRing {
    let geometry: RingGeometry
    let memory: UnsafeMutableRawPointer

    init(_ geometry: RingGeometry) {
        self.geometry = geometry
        memory = .allocate(byteCount: geometry.byteCount, alignment: 4096)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: geometry.byteCount)
    }

    deinit { memory.deallocate() }

    struct Frame {
        var bytes: [UInt8]
        var wireLength: Int? = nil
        var vlan: UInt16? = nil
        var outgoing = false
    }

    /// Fills V3 block `index` with `frames` and hands it to user space.
    func fillV3Block(_ index: Int, _ frames: [Frame]) {
        let block = memory + index * geometry.blockSize
        let desc = block.assumingMemoryBound(to: tpacket_block_desc.self)
        let first = Int(cshunt_tpacket_align(UInt32(MemoryLayout<tpacket_block_desc>.size)))
        var offset = first
        for (i, f) in frames.enumerated() {
            let h = (block + offset).assumingMemoryBound(to: tpacket3_hdr.self)
            let mac = RingVersion.v3.rxDataOffset
            (block + offset + mac).copyMemory(from: f.bytes, byteCount: f.bytes.count)
            let size = Int(cshunt_tpacket_align(UInt32(mac + f.bytes.count)))
            h.pointee.tp_next_offset = i == frames.count - 1 ? 0 : UInt32(size)
            h.pointee.tp_snaplen = UInt32(f.bytes.count)
            h.pointee.tp_len = UInt32(f.wireLength ?? f.bytes.count)
            h.pointee.tp_mac = UInt16(mac)
            var status = UInt32(TP_STATUS_USER)
            if let vlan = f.vlan {
                status |= UInt32(TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID)
                h.pointee.hv1.tp_vlan_tci = UInt32(vlan)
                h.pointee.hv1.tp_vlan_tpid = 0x8100
            }
            h.pointee.tp_status = status
            let sll = Int(cshunt_tpacket_align(UInt32(MemoryLayout<tpacket3_hdr>.size)))
            (block + offset + sll + 10).storeBytes(of: UInt8(f.outgoing ? PACKET_OUTGOING : PACKET_HOST), as: UInt8.self)
            offset += size
        }
        desc.pointee.hdr.bh1.num_pkts = UInt32(frames.count)
        desc.pointee.hdr.bh1.offset_to_first_pkt = UInt32(first)
        // block_status is the first word of hdr.bh1, at offset 8 (a union: no stable Swift address).
        cshunt_store_release_u32(block + 8, UInt32(TP_STATUS_USER))
    }

    func v3BlockStatus(_ index: Int) -> UInt32 { cshunt_v3_block_status(memory + index * geometry.blockSize) }

    /// Fills V2 frame slot `index` and hands it to user space.
    func fillV2Frame(_ index: Int, _ f: Frame) {
        let frame = memory + index * geometry.frameSize
        let h = frame.assumingMemoryBound(to: tpacket2_hdr.self)
        let mac = RingVersion.v2.rxDataOffset
        (frame + mac).copyMemory(from: f.bytes, byteCount: f.bytes.count)
        h.pointee.tp_snaplen = UInt32(f.bytes.count)
        h.pointee.tp_len = UInt32(f.wireLength ?? f.bytes.count)
        h.pointee.tp_mac = UInt16(mac)
        let sll = Int(cshunt_tpacket_align(UInt32(MemoryLayout<tpacket2_hdr>.size)))
        (frame + sll + 10).storeBytes(of: UInt8(f.outgoing ? PACKET_OUTGOING : PACKET_HOST), as: UInt8.self)
        cshunt_store_release_u32(frame, UInt32(TP_STATUS_USER))
    }

    func v2FrameStatus(_ index: Int) -> UInt32 { cshunt_load_acquire_u32(memory + index * geometry.frameSize) }
}

func frame(_ tag: UInt8, length: Int) -> SyntheticRing.Frame {
    SyntheticRing.Frame(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0) ^ tag })
}

func bytes(of p: PacketDescriptor) -> [UInt8] {
    Array(UnsafeRawBufferPointer(start: p.data, count: Int(p.capturedLength)))
}

@Suite struct RxWalkerTests {
    let geometry = RingGeometry(blockSize: 8192, blockCount: 4, frameSize: 2048)

    @Test func v3WalkResumesMidBlockAndReleasesOnlyConsumedBlocks() throws {
        let ring = SyntheticRing(geometry)
        let frames = (0..<6).map { frame(UInt8($0), length: 60 + $0 * 10) }
        ring.fillV3Block(0, frames)
        var rx = RxRing(version: .v3, geometry: geometry, base: ring.memory)
        var batch = PacketBatch(capacity: 4)

        try #require(rx.fill(&batch, port: 3) == 4)
        for i in 0..<4 {
            #expect(bytes(of: batch.packet(i)) == frames[i].bytes)
            #expect(batch.packet(i).inPort == 3)
        }
        rx.releaseConsumed()
        // The block still has unread frames: it stays with user space.
        #expect(ring.v3BlockStatus(0) & UInt32(TP_STATUS_USER) != 0)

        batch.removeAll()
        #expect(rx.fill(&batch, port: 3) == 2)
        #expect(bytes(of: batch.packet(0)) == frames[4].bytes)
        #expect(bytes(of: batch.packet(1)) == frames[5].bytes)
        // Frames must stay readable until the batch is done: not released before releaseConsumed.
        #expect(ring.v3BlockStatus(0) & UInt32(TP_STATUS_USER) != 0)
        rx.releaseConsumed()
        #expect(ring.v3BlockStatus(0) == UInt32(TP_STATUS_KERNEL))

        batch.removeAll()
        #expect(rx.fill(&batch, port: 3) == 0)
    }

    @Test func v3WalkCrossesBlocksAndWrapsAround() {
        let ring = SyntheticRing(geometry)
        var rx = RxRing(version: .v3, geometry: geometry, base: ring.memory)
        var batch = PacketBatch(capacity: 64)
        var expected: [[UInt8]] = []
        // Eight blocks through a four-block ring: the walker must wrap and keep order.
        for round in 0..<2 {
            for b in 0..<4 {
                let frames = (0..<3).map { frame(UInt8(round * 16 + b * 4 + $0), length: 100) }
                ring.fillV3Block(b, frames)
                expected += frames.map(\.bytes)
            }
            #expect(rx.fill(&batch, port: 0) == 12)
            #expect(rx.fill(&batch, port: 0) == 0)  // all four blocks await release
            rx.releaseConsumed()
            for b in 0..<4 { #expect(ring.v3BlockStatus(b) == UInt32(TP_STATUS_KERNEL)) }
        }
        // The batch holds 24 frames; their memory was reused by round two, so compare the second half.
        #expect(batch.count == 24)
        for i in 12..<24 { #expect(bytes(of: batch.packet(i)) == expected[i]) }
    }

    @Test func v3CountsTruncatedAndOutgoingFramesAndKeepsVLANTag() {
        let ring = SyntheticRing(geometry)
        var truncated = frame(1, length: 200)
        truncated.wireLength = 9000
        var outgoing = frame(2, length: 80)
        outgoing.outgoing = true
        var tagged = frame(3, length: 64)
        tagged.vlan = 0x2064
        ring.fillV3Block(0, [truncated, outgoing, tagged, frame(4, length: 60)])
        var rx = RxRing(version: .v3, geometry: geometry, base: ring.memory)
        var batch = PacketBatch(capacity: 8)
        #expect(rx.fill(&batch, port: 1) == 2)
        #expect(rx.counters.tooLarge == 1)
        #expect(rx.counters.tooLargeBytes == 9000)
        #expect(rx.counters.outgoing == 1)
        let p = batch.packet(0)
        #expect(p.flags.contains(.hasVLANTag))
        #expect(p.vlanTCI == 0x2064)
        #expect(p.outputLength == 68)
        #expect(!batch.packet(1).flags.contains(.hasVLANTag))
        rx.releaseConsumed()
        #expect(ring.v3BlockStatus(0) == UInt32(TP_STATUS_KERNEL))
    }

    @Test func walkerNeverRereadsUnreleasedMemory() {
        // One block, or a V2 ring smaller than the batch: after reading everything, the cursor
        // is back on memory the batch still uses, and it is still marked for user space.
        let oneBlock = RingGeometry(blockSize: 8192, blockCount: 1, frameSize: 2048)
        let ring = SyntheticRing(oneBlock)
        ring.fillV3Block(0, (0..<3).map { frame(UInt8($0), length: 64) })
        var rx = RxRing(version: .v3, geometry: oneBlock, base: ring.memory)
        var batch = PacketBatch(capacity: 64)
        #expect(rx.fill(&batch, port: 0) == 3)
        #expect(rx.fill(&batch, port: 0) == 0)

        let v2 = SyntheticRing(oneBlock)
        for i in 0..<4 { v2.fillV2Frame(i, frame(UInt8(i), length: 64)) }
        var rx2 = RxRing(version: .v2, geometry: oneBlock, base: v2.memory)
        var batch2 = PacketBatch(capacity: 64)
        #expect(rx2.fill(&batch2, port: 0) == 4)
        #expect(rx2.fill(&batch2, port: 0) == 0)
        rx2.releaseConsumed()
        v2.fillV2Frame(0, frame(9, length: 64))
        #expect(rx2.fill(&batch2, port: 0) == 1)
    }

    @Test func v2WalkReadsFramesInOrderAndReleasesEach() {
        let ring = SyntheticRing(geometry)
        var rx = RxRing(version: .v2, geometry: geometry, base: ring.memory)
        var batch = PacketBatch(capacity: 4)
        let frames = (0..<6).map { frame(UInt8($0), length: 60 + $0) }
        for (i, f) in frames.enumerated() { ring.fillV2Frame(i, f) }
        #expect(rx.fill(&batch, port: 0) == 4)
        #expect(ring.v2FrameStatus(0) & UInt32(TP_STATUS_USER) != 0)
        rx.releaseConsumed()
        for i in 0..<4 { #expect(ring.v2FrameStatus(i) == UInt32(TP_STATUS_KERNEL)) }
        #expect(ring.v2FrameStatus(4) & UInt32(TP_STATUS_USER) != 0)
        batch.removeAll()
        #expect(rx.fill(&batch, port: 0) == 2)
        #expect(bytes(of: batch.packet(1)) == frames[5].bytes)
        rx.releaseConsumed()
        #expect(!rx.hasReadyFrames())
    }

    @Test func txRingFillsUpUntilTheKernelFreesFrames() {
        let tx = SyntheticRing(RingGeometry(blockSize: 8192, blockCount: 1, frameSize: 2048))
        for version in RingVersion.allCases {
            tx.memory.initializeMemory(as: UInt8.self, repeating: 0, count: 8192)
            var ring = TxRing(version: version, geometry: tx.geometry, base: tx.memory, mtu: 1500)
            #expect(ring.maxFrameLength == 1518)
            for i in 0..<4 {
                let p = ring.claim()
                #expect(p == tx.memory + i * 2048 + version.txDataOffset)
                ring.commit(length: 100 + i)
            }
            #expect(ring.pending == 4)
            #expect(ring.claim() == nil)  // all four frames wait for the kernel
            let statusOffset = version == .v3 ? 20 : 0
            #expect(cshunt_load_acquire_u32(tx.memory + statusOffset) == UInt32(TP_STATUS_SEND_REQUEST))
            let lengthOffset = version == .v3 ? 16 : 4
            #expect(tx.memory.load(fromByteOffset: 2048 + lengthOffset, as: UInt32.self) == 101)
            // The kernel sent frame 0.
            cshunt_store_release_u32(tx.memory + statusOffset, UInt32(TP_STATUS_AVAILABLE))
            #expect(ring.claim() == tx.memory + version.txDataOffset)
        }
    }
}
