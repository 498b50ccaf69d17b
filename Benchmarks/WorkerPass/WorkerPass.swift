import Benchmark
import ShuntForwarder
import ShuntRing

// The allocation gate: one worker pass (a 32-frame burst in, forwarded, the TX ring completed)
// of each engine, on both ring versions and both transmit methods, over detached rings (WorkerPassBench). A pass must not
// allocate: Thresholds/ holds 0 mallocs for every benchmark with no tolerance, and
// `swift package benchmark thresholds check` (run by Scripts/test.sh) fails on any.
let benchmarks: @Sendable () -> Void = {
    for engine in WorkerPassBench.Engine.allCases {
        for (ring, transmit) in [(RingVersion.v2, TransmitMethod.copy), (.v3, .copy), (.v2, .ring), (.v3, .ring)] {
            let state = BenchState()
            Benchmark(
                "\(engine.rawValue)-\(ring)-\(transmit)",
                configuration: .init(
                    metrics: [.mallocCountTotal],
                    scalingFactor: .kilo,
                    maxDuration: .seconds(2),
                    maxIterations: 20,
                    thresholds: [.mallocCountTotal: BenchmarkThresholds(absolute: [.p90: 0])]
                )
            ) { benchmark in
                guard let bench = state.bench else { return }
                for _ in benchmark.scaledIterations {
                    blackHole(bench.run())
                }
            } setup: {
                let bench = try WorkerPassBench(engine: engine, ring: ring, transmit: transmit)
                // The first passes set things up (the flows engine installs its cache entry).
                for _ in 0..<4 { _ = bench.run() }
                state.bench = bench
            } teardown: {
                state.bench = nil
            }
        }
    }
}

final class BenchState: @unchecked Sendable {
    var bench: WorkerPassBench?
}
