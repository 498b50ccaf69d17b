import ShuntCore
import ShuntRing
import Testing
@testable import ShuntForwarder

/// The harness the allocation gate and the instruction counts measure: each engine's worker
/// really forwards every delivered frame through the detached rings, on both ring versions.
@Suite struct WorkerPassBenchTests {
    @Test(arguments: WorkerPassBench.Engine.allCases, [(RingVersion.v3, TransmitMethod.copy), (.v2, .copy), (.v3, .ring), (.v2, .ring)])
    func everyDeliveredFrameIsForwarded(engine: WorkerPassBench.Engine, rings: (RingVersion, TransmitMethod)) throws {
        let bench = try WorkerPassBench(engine: engine, framesPerPass: 32, ring: rings.0, transmit: rings.1)
        let before = bench.portCounters(1).txPackets
        // More passes than the rings have blocks and frames: the walker wraps around both rings.
        let passes = 3000
        for pass in 0..<passes {
            let n = bench.run()
            if n != 32 { Issue.record("pass \(pass) took \(n) frames"); return }
        }
        let rx = bench.portCounters(0)
        let tx = bench.portCounters(1)
        #expect(rx.rxPackets == UInt64(passes * 32))
        #expect(tx.txPackets - before == UInt64(passes * 32))
        #expect(tx.txBytes >= UInt64(passes * 32 * 60))
        #expect(rx.rxDrops.values.allSatisfy { $0 == 0 } && tx.txDrops.values.allSatisfy { $0 == 0 }, "\(rx.rxDrops) \(tx.txDrops)")

        let sent = bench.lastTransmittedFrame()
        let delivered = WorkerPassBench.udpFrame(source: WorkerPassBench.sourceMAC, destination: WorkerPassBench.destinationMAC)
        switch engine {
        case .xconnect, .normal:
            #expect(sent == delivered)
        case .flows:
            #expect(Array(sent[0..<6]) == WorkerPassBench.rewrittenMAC)
            #expect(Array(sent[6...]) == Array(delivered[6...]))
        }
    }
}
