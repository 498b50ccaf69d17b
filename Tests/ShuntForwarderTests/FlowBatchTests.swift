import ShuntCore
import Testing

@testable import ShuntForwarder

@Suite("Flow batch: misses grouped by flow")
struct FlowBatchTests {
    /// Frames of keys A B A C B A missing the cache: three flows, in order of first arrival,
    /// each with its frames chained in arrival order; a cleared batch starts over.
    @Test func missesAreGroupedPerKeyInArrivalOrder() {
        let frame = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        defer { frame.deallocate() }
        let batch = FlowBatch(capacity: 8)
        func key(_ n: UInt32) -> FlowKey {
            var k = FlowKey()
            k.inPort = 1
            k.nwSrcIPv4 = n
            return k
        }
        func chain(_ first: Int) -> [Int] {
            var out: [Int] = []
            var i = first
            while i >= 0 {
                out.append(i)
                i = batch.nextOfFlow[i]
            }
            return out
        }
        for round in 0..<2 {
            batch.removeAll()
            let order: [UInt32] = round == 0 ? [1, 2, 1, 3, 2, 1] : [7, 7]
            for n in order {
                batch.append(PacketDescriptor(data: frame, capturedLength: 60, wireLength: 60, inPort: 0), inPort: 0,
                             key: key(n), installable: false)
                batch.addMiss(batch.count - 1)
            }
            let flows = (0..<batch.missedFlowCount).map { batch.missedFlows[$0] }
            if round == 0 {
                #expect(flows == [0, 1, 3])
                #expect(flows.map(chain) == [[0, 2, 5], [1, 4], [3]])
            } else {
                #expect(flows == [0] && chain(0) == [0, 1])
            }
        }
    }

    /// 64 distinct keys in a 128-entry table (some probes run on past a taken entry): each stays its own flow.
    @Test func aFullBurstOfDistinctKeysIsOneFlowEach() {
        let frame = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        defer { frame.deallocate() }
        let batch = FlowBatch()
        for n in 0..<maxBurst {
            var k = FlowKey()
            k.tpSrc = UInt16(1024 + n)
            batch.append(PacketDescriptor(data: frame, capturedLength: 60, wireLength: 60, inPort: 0), inPort: 0,
                         key: k, installable: false)
            batch.addMiss(n)
        }
        #expect(batch.missedFlowCount == maxBurst)
        #expect((0..<maxBurst).allSatisfy { batch.missedFlows[$0] == $0 && batch.nextOfFlow[$0] == -1 })
    }
}
