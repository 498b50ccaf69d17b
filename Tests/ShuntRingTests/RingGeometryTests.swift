import CShunt
import Testing
@testable import ShuntRing

@Suite struct RingGeometryTests {
    @Test func defaultsAreValid() throws {
        for v in RingVersion.allCases {
            try RingGeometry.defaultRX(v).validate(for: v, rx: true)
            try RingGeometry.defaultTX.validate(for: v, rx: false)
        }
    }

    @Test func frameArithmetic() {
        let g = RingGeometry(blockSize: 65536, blockCount: 64, frameSize: 2048)
        #expect(g.framesPerBlock == 32)
        #expect(g.frameCount == 2048)
        #expect(g.byteCount == 4 << 20)
    }

    @Test func rejectsWhatTheKernelRejects() {
        #expect(throws: RingGeometry.Invalid.blockNotPageMultiple(5000)) {
            try RingGeometry(blockSize: 5000, blockCount: 4, frameSize: 1000).validate(for: .v3, rx: true)
        }
        #expect(throws: RingGeometry.Invalid.frameNotAligned(2050)) {
            try RingGeometry(blockSize: 8192, blockCount: 4, frameSize: 2050).validate(for: .v2, rx: true)
        }
        #expect(throws: RingGeometry.Invalid.blockNotFrameMultiple(block: 8192, frame: 3072)) {
            try RingGeometry(blockSize: 8192, blockCount: 4, frameSize: 3072).validate(for: .v2, rx: true)
        }
        #expect(throws: RingGeometry.Invalid.noBlocks) {
            try RingGeometry(blockSize: 8192, blockCount: 0, frameSize: 2048).validate(for: .v2, rx: true)
        }
        #expect(throws: RingGeometry.Invalid.timeoutOutOfRange(0)) {
            try RingGeometry(blockSize: 8192, blockCount: 2, frameSize: 2048, blockTimeoutMs: 0).validate(for: .v3, rx: true)
        }
        // A V3 TX ring must have no timeout; it is not checked there.
        #expect(throws: Never.self) {
            try RingGeometry(blockSize: 8192, blockCount: 2, frameSize: 2048, blockTimeoutMs: 0).validate(for: .v3, rx: false)
        }
    }

    @Test func headerOffsetsMatchTheKernel() {
        // tpacket_rcv: macoff = TPACKET_ALIGN(tp_hdrlen + 16) - 14, tp_hdrlen = aligned header + sockaddr_ll.
        #expect(RingVersion.v2.rxDataOffset == 66)
        #expect(RingVersion.v3.rxDataOffset == 82)
        #expect(RingVersion.v2.txDataOffset == 32)
        #expect(RingVersion.v3.txDataOffset == 48)
    }

    @Test func largestFramePerVersion() {
        let g = RingGeometry(blockSize: 65536, blockCount: 4, frameSize: 2048)
        #expect(g.maxFrameLength(for: .v2, rx: true) == 2048 - 66)
        #expect(g.maxFrameLength(for: .v3, rx: true) == 65536 - 48 - 82)
        #expect(g.maxFrameLength(for: .v3, rx: false) == 2048 - 48)
        // The default rings carry a 1500-byte MTU frame with a VLAN tag.
        for v in RingVersion.allCases {
            #expect(RingGeometry.defaultRX(v).maxFrameLength(for: v, rx: true) >= 1518)
            #expect(RingGeometry.defaultTX.maxFrameLength(for: v, rx: false) >= 1518)
        }
    }

    @Test func shrinkingHalvesBlocks() {
        var g: RingGeometry? = RingGeometry(blockSize: 4096, blockCount: 8, frameSize: 2048)
        var counts: [Int] = []
        while let current = g {
            counts.append(current.blockCount)
            g = current.shrunk()
        }
        #expect(counts == [8, 4, 2, 1])
    }
}
