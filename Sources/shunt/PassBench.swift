import ArgumentParser
import ShuntForwarder
import ShuntRing
import ShuntSystem

extension WorkerPassBench.Engine: ExpressibleByArgument {}

/// One worker's passes with no device, no traffic and no kernel in the loop: the harness the
/// allocation gate measures, here for a quick figure and for callgrind
/// (Benchmarks/pass-instructions.sh counts the instructions of `WorkerPassBench.run`).
struct PassBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pass-bench",
        abstract: "Time one worker's passes over rings in memory (no device, no system call per frame).",
        discussion: """
            Delivers a burst of 64-byte frames of one flow into a detached RX ring, lets the \
            engine's worker forward it to a second detached port, and marks its TX ring sent, \
            --passes times. Prints the frames forwarded and the wall-clock nanoseconds per frame \
            (user-space work only: the kernel's part of forwarding is not in it). The send() per \
            pass goes to an unbound socket and fails at once. Needs CAP_NET_RAW for that socket.
            """
    )

    @Option(help: "The forwarding engine: xconnect, normal or flows (afpacket datapath, exact-match cache hits).")
    var engine: WorkerPassBench.Engine = .flows

    @Option(help: "The ring version (v3 or v2).")
    var ring: RingVersion = .v2

    @Option(help: "How the worker sends: copy (sendmmsg from a staging area) or ring (PACKET_TX_RING).")
    var tx: TransmitMethod = .copy

    @Option(help: "Passes to time.")
    var passes: Int = 100_000

    @Option(help: "Frames per pass (1 to 64).")
    var frames: Int = 32

    func validate() throws {
        if !(1...64).contains(frames) { throw ValidationError("--frames must be in 1...64") }
        if passes < 1 { throw ValidationError("--passes must be at least 1") }
    }

    func run() throws {
        let bench: WorkerPassBench
        do { bench = try WorkerPassBench(engine: engine, framesPerPass: frames, ring: ring, transmit: tx) } catch {
            printError("shunt pass-bench: \(error)")
            throw ExitCode(2)
        }
        // The first passes set up (the flows engine installs its cache entry).
        for _ in 0..<4 { _ = bench.run() }
        var forwarded = 0
        let start = Sys.monotonicNanoseconds()
        for _ in 0..<passes { forwarded += bench.run() }
        let ns = Sys.monotonicNanoseconds() - start
        let perFrame = Double(ns) / Double(max(forwarded, 1))
        emitLine("engine=\(engine.rawValue) ring=\(ring.rawValue) tx=\(tx.rawValue) passes=\(passes) frames=\(forwarded) ns_per_frame=\((perFrame * 10).rounded() / 10)")
        if forwarded != passes * frames {
            printError("shunt pass-bench: \(passes * frames - forwarded) frames were not forwarded")
            throw ExitCode(1)
        }
    }
}
