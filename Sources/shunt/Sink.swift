import ArgumentParser
import ShuntRing
import ShuntRuntime
import ShuntSystem
import Synchronization
import ShuntTraffic
import ShuntTrafficEngines

// `shunt sink`: the receiver of test traffic, with two engines (docs/design/0008):
// - xdp:  xdp_sink counts and times frames in the kernel, per CPU (fast, no per-packet state);
// - ring: a TPACKET RX ring read in user space, with per-stream loss, duplicate and reorder
//         accounting (StreamTable) and an HDR latency histogram (LatencyRecorder).
// Text on stdout by default, JSON lines with --json; errors are one line on stderr. The engines
// (`XDPSink`, `RingSink`) are in ShuntTrafficEngines; this command picks one and prints.

enum SinkEngine: String, CaseIterable, ExpressibleByArgument {
    case auto, xdp, ring
}

struct Sink: ParsableCommand {
    static let name = "sink"
    static let configuration = CommandConfiguration(
        abstract: "Count, account and time test frames arriving at an interface.",
        discussion: """
            Two engines. xdp (the default) attaches xdp_sink to IF: it counts every frame and \
            times every probe in the kernel where the frame arrives, but \
            keeps no per-packet sequence state, so lost, duplicated and out_of_order are null. \
            ring reads IF through a TPACKET RX ring: per-stream accounting of lost, duplicated \
            and out-of-order probes (TRex semantics) and one-way latency into an HDR histogram, \
            at the rates a userspace TPACKET reader takes (around 1 Mpps here). Its latency setting is --ring-version: \
            v2 (the default) hands each frame over at once; v3 holds frames until a block is full \
            or --block-timeout-ms expires, which adds up to that timeout to every latency at low \
            rates. Frames the full ring dropped are reported as ring_dropped.

            Both engines find the probe of `shunt gen` after UDP over IPv4 (byte 42) or IPv6 \
            (byte 62).

            Prints a ready line once receiving, runs until --duration, SIGINT or SIGTERM, then \
            prints the final report; with --interval S also a statistics line every S seconds. \
            --json prints {"type":"ready",..}, {"type":"stats",..} and {"type":"final",..} lines \
            (the stable keys are listed in the README).

            Example: shunt sink --port sink0 --engine ring --json --interval 1
            """
    )

    @Option(name: .customLong("port"), help: ArgumentHelp("The interface to receive on.", valueName: "IF"))
    var port: String

    @Option(help: "auto: xdp where xdp_sink attaches, else ring (one line on stderr says so); xdp: count in the kernel (fast; no loss or reorder accounting); ring: TPACKET RX ring in user space (per-stream accounting).")
    var engine: SinkEngine = .auto

    @Option(help: "ring engine: TPACKET version, v2 (each frame handed over at once: latency) or v3 (block-based).")
    var ringVersion: RingVersion?

    @Option(help: "ring engine, v3: milliseconds before a partly filled block is handed over (1-1000); bounds the added latency.")
    var blockTimeoutMs: Int?

    @Option(help: "ring engine: RX ring blocks of 64 KiB (the kernel may give fewer when memory is short). The default, 16 MiB (8192 frames of 2 KiB), rides out a quarter-second stall of the sink at 30 kpps.")
    var blockCount: Int = 256

    @Option(help: "ring engine: keep polling the ring this many microseconds after the last frame before sleeping in poll(2).")
    var busyPollUs: UInt64 = 200

    @Option(help: "Stop after S seconds (default: run until SIGINT or SIGTERM).")
    var duration: Double?

    @Option(help: "Print statistics every S seconds (0: only the final report).")
    var interval: Double = 0

    @Option(help: "xdp engine: how often to sample the packet count for active_pps, in milliseconds.")
    var pollMs: Double = 10

    @Flag(help: "Print JSON lines instead of text.")
    var json = false

    func validate() throws {
        if let duration, !(duration > 0) { throw oneLineError(Self.name, "--duration must be more than 0") }
        if !(interval >= 0) || !interval.isFinite { throw oneLineError(Self.name, "--interval must be 0 or more") }
        if !(pollMs >= 1) { throw oneLineError(Self.name, "--poll-ms must be at least 1") }
        if engine == .xdp {
            if ringVersion != nil || blockTimeoutMs != nil {
                throw oneLineError(Self.name, "--ring-version and --block-timeout-ms are for --engine ring")
            }
        }
        if let blockTimeoutMs {
            if (ringVersion ?? .v2) != .v3 { throw oneLineError(Self.name, "--block-timeout-ms is for --ring-version v3 (v2 has no block timeout)") }
            if !(1...1000).contains(blockTimeoutMs) { throw oneLineError(Self.name, "--block-timeout-ms must be between 1 and 1000") }
        }
        if !(1...4096).contains(blockCount) { throw oneLineError(Self.name, "--block-count must be between 1 and 4096") }
    }

    func run() throws {
        let supervisor = Supervisor()
        let watch = try PortWatch(port, supervisor: supervisor)
        defer { watch.stop() }
        try runEngine(supervisor)
        if watch.vanished { throw ExitCode(1) }
    }

    private func runEngine(_ supervisor: Supervisor) throws {
        // Ring options name the ring engine under auto; otherwise the kernel counter where it attaches.
        if engine == .ring || (engine == .auto && (ringVersion != nil || blockTimeoutMs != nil)) { return try runRing(supervisor) }
        let sink: XDPSink
        do throws(XDPSink.AttachError) { sink = try XDPSink(port: port) } catch {
            if engine == .xdp || error.fatal {
                printError("shunt sink: \(error.message)")
                throw ExitCode(2)
            }
            printError("shunt sink: xdp_sink cannot attach to \(port) (\(error.message)); using the ring engine")
            return try runRing(supervisor)
        }
        try runXDP(sink, supervisor)
    }

    private func emit(_ report: SinkReport) {
        if json {
            emitLine(report.json)
        } else {
            for line in report.text { emitLine(line) }
        }
    }

    private func emit(_ stats: SinkInterval) {
        emitLine(json ? stats.json : stats.text)
    }

    // MARK: ring engine

    private func runRing(_ supervisor: Supervisor) throws {
        let settings = RingSinkSettings(port: port, version: ringVersion ?? .v2, blockCount: blockCount,
                                        blockTimeoutMs: blockTimeoutMs, busyPollNs: busyPollUs * 1000)
        let receiver: RingSink
        do throws(RingSetupError) { receiver = try RingSink(settings) } catch {
            printError("shunt sink: \(error)")
            throw ExitCode(2)
        }
        let ring = settings.version.rawValue
        if json {
            emitLine("{\"type\":\"ready\",\"engine\":\"ring\",\"ring\":\"\(ring)\",\"port\":\"\(port)\"}")
        } else {
            printError("shunt sink: receiving on \(port) through a TPACKET_\(ring.uppercased()) ring (\(receiver.port.geometry)); Ctrl-C to stop")
        }
        supervisor.begin(duration: duration, reportEvery: interval)
        emit(receiver.run(supervisor) { emit($0) })
    }

    // MARK: XDP engine

    private func runXDP(_ sink: XDPSink, _ supervisor: Supervisor) throws {
        if json {
            emitLine("{\"type\":\"ready\",\"engine\":\"xdp\",\"ring\":null,\"port\":\"\(port)\"}")
        } else {
            printError("shunt sink: counting on \(port) with xdp_sink; Ctrl-C to stop")
        }
        supervisor.begin(duration: duration, reportEvery: interval)
        do throws(CommandFailure) {
            emit(try sink.run(supervisor, pollNs: UInt64(pollMs * 1e6)) { emit($0) })
        } catch {
            printError("shunt sink: \(error.message)")
            throw ExitCode(error.status)
        }
    }
}

/// Stops the sink when its port goes away (deleted, or moved to another namespace): the kernel
/// then delivers nothing more, so the sink says so and reports what it received, instead of
/// waiting for a Ctrl-C that may never come.
final class PortWatch: @unchecked Sendable {
    private let done = Atomic<Bool>(false)
    private let gone = Atomic<Bool>(false)
    private var thread: WorkerThread?

    init(_ port: String, supervisor: Supervisor) throws {
        guard let index = Sys.interfaceIndex(port) else { return }  // the engines say it is missing
        thread = try WorkerThread(name: "shunt-portwatch") { [self] in
            while !done.load(ordering: .acquiring) {
                Sys.sleep(nanoseconds: 100_000_000)
                if Sys.interfaceIndex(port) != index {
                    printError("shunt sink: port \(port) disappeared (deleted, or moved to another namespace); stopping with what was received")
                    gone.store(true, ordering: .releasing)
                    supervisor.requestStop()
                    return
                }
            }
        }
    }

    var vanished: Bool { gone.load(ordering: .acquiring) }

    func stop() {
        done.store(true, ordering: .releasing)
        thread?.join()
        thread = nil
    }
}
