import Testing
@testable import ShuntCore

/// Frames in ordinary memory, put in a batch as the RX walker would.
final class FrameStore {
    var buffers: [UnsafeMutableRawPointer] = []
    deinit { buffers.forEach { $0.deallocate() } }

    func descriptor(_ bytes: [UInt8], port: UInt16) -> PacketDescriptor {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        p.copyMemory(from: bytes, byteCount: bytes.count)
        buffers.append(p)
        return PacketDescriptor(data: p, capturedLength: UInt32(bytes.count), wireLength: UInt32(bytes.count), inPort: port)
    }
}

func ethernet(dst: String, src: String, length: Int = 60) -> [UInt8] {
    MACAddress(dst)!.bytes + MACAddress(src)!.bytes + [0x88, 0xB5] + Array(repeating: 0xAB, count: length - 14)
}

@Suite struct StageTests {
    @Test func crossConnectPairsPorts() {
        let store = FrameStore()
        var batch = PacketBatch(capacity: 8)
        for port: UInt16 in [0, 1, 2, 3] { batch.append(store.descriptor([1, 2, 3], port: port)) }
        var stage = CrossConnect()
        stage.process(batch, nowMs: 0)
        #expect((0..<4).map { batch.verdict($0) } == [.output(1), .output(0), .output(3), .output(2)])
    }

    @Test func learningSwitchFloodsLearnsThenForwards() {
        let store = FrameStore()
        let table = MACLearningTable(capacity: 64, agingMs: 1000)
        var stage = LearningSwitch(table: table)
        let a = "02:00:00:00:00:0a", b = "02:00:00:00:00:0b"

        var batch = PacketBatch(capacity: 8)
        batch.append(store.descriptor(ethernet(dst: b, src: a), port: 0))       // unknown unicast
        batch.append(store.descriptor(ethernet(dst: "ff:ff:ff:ff:ff:ff", src: b), port: 2))  // broadcast
        batch.append(store.descriptor(ethernet(dst: b, src: a), port: 0))       // b learned on 2 now
        batch.append(store.descriptor(ethernet(dst: a, src: "02:00:00:00:00:0c"), port: 0))  // a is on port 0: hairpin
        batch.append(store.descriptor([0x02, 0, 0, 0], port: 1))                // runt
        batch.append(store.descriptor(ethernet(dst: "01:00:5e:00:00:01", src: a), port: 0))  // multicast
        stage.process(batch, nowMs: 10)
        #expect(batch.verdict(0) == .flood(except: 0))
        #expect(batch.verdict(1) == .flood(except: 2))
        #expect(batch.verdict(2) == .output(2))
        #expect(batch.verdict(3) == .drop(.noOutput))
        #expect(batch.verdict(4) == .drop(.runt))
        #expect(batch.verdict(5) == .flood(except: 0))
        // Multicast sources are never learned.
        #expect(table.lookup(MACAddress("01:00:5e:00:00:01")!, nowMs: 10) == nil)

        // After aging, b is unknown again and floods.
        batch.removeAll()
        batch.append(store.descriptor(ethernet(dst: b, src: a), port: 0))
        stage.process(batch, nowMs: 2000)
        #expect(batch.verdict(0) == .flood(except: 0))
    }

    @Test func dropReasonsMatchTheSharedABI() {
        for reason in DropReason.allCases {
            #expect(UInt32(reason.rawValue) == reason.abiValue, "\(reason.name)")
            #expect(Int(reason.rawValue) < DropReason.slotCount)
        }
        #expect(Set(DropReason.allCases.map(\.name)).count == DropReason.allCases.count)
    }
}
