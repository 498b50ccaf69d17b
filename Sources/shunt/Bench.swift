import ArgumentParser
import Foundation
import ShuntBench
import ShuntBenchRunner
import ShuntRuntime

// `shunt bench`: builds the gen -- fwd -- sink namespaces, runs each forwarder in turn between
// fwd0 and fwd1, drives it with `shunt gen` and counts at `shunt sink`, and removes everything
// again, also when interrupted. The measurement logic (search, statistics, reports) is the
// ShuntBench module, the run (lab, forwarders, trials) is BenchRunner; this file parses and
// checks the flags. See docs/design/0010-shunt-bench.md.

struct Bench: ParsableCommand {
    static let name = "bench"
    static let configuration = CommandConfiguration(
        abstract: "Benchmark forwarders side by side: throughput, zero-loss rate, latency.",
        discussion: """
            Builds three namespaces, [gen] gen0 <-veth-> fwd0 [fwd] fwd1 <-veth-> sink0 [sink], \
            and for every forwarder, frame size and flow count measures: the throughput with the \
            generator flat out (overload), the zero-loss rate (RFC 2544 style search: trials at a \
            paced rate, loss at most --loss-tolerance), and one-way latency at --latency-fractions \
            of that rate. Repeats are interleaved (A B C A B C). The generator runs on CPU 0, the \
            forwarder on CPU 1. Results: OUT/results.json, results.md (also printed), \
            throughput.svg, latency-cdf.svg and the raw output of every trial under OUT/raw.

            Forwarders: \(ForwarderInfo.defaultSet.map(\.name).joined(separator: ", ")). A forwarder \
            whose tool is not installed is skipped with the package that has it. c-tpacket and \
            c-tpacket-v2 run tpacket-fwd (Benchmarks/tpacket-fwd: a minimal C forwarder on \
            TPACKET_V3 or V2 RX and TX rings, busy-polling, the reference for shunt and shunt-v3), \
            which swift build puts next to shunt; skipped when it is not there. Run only when \
            named: \(ForwarderInfo.all.filter { $0.mirrorSessions > 0 }.map(\.name).joined(separator: ", ")) \
            (shunt-flows and shunt-xdp with 1 or 2 SPAN sessions to analysis ports fwd2 and fwd3, \
            whose far ends in a fourth namespace count the copies: what mirroring costs). Frame sizes are \
            on the wire (64 and 1518: the generator sends 60 and 1514 bytes plus the FCS). Run as \
            root, with a release build of shunt (swift build -c release).

            Example: shunt bench --forwarders shunt,bridge --sizes 64 --flows 1 --quick
            """
    )

    @Option(help: ArgumentHelp("Comma-separated forwarders (default: every one whose tools are installed, except the mirror ones).", valueName: "LIST"))
    var forwarders: String?

    @Option(help: ArgumentHelp("Frame sizes on the wire, with FCS, 64-1518.", valueName: "LIST"))
    var sizes: String = "64,1518"

    @Option(help: ArgumentHelp("Flow counts: UDP source ports the generator cycles through.", valueName: "LIST"))
    var flows: String = "1,1024"

    @Option(help: "Interleaved repeats of every forwarder (default 3; 1 with --quick).")
    var repeats: Int?

    @Option(help: "Seconds per trial (default 2; 0.5 with --quick).")
    var trialSeconds: Double?

    @Option(help: "Trials in the zero-loss search (default 7; 3 with --quick).")
    var searchSteps: Int?

    @Option(help: ArgumentHelp("Loss still counted as zero loss, percent of the frames sent.", valueName: "PCT"))
    var lossTolerance: Double = 0

    @Option(help: ArgumentHelp("Latency trials at these fractions of the zero-loss rate, each in (0,1].", valueName: "LIST"))
    var latencyFractions: String = "0.1,0.5,0.9"

    @Option(help: ArgumentHelp("Latency trials also at these fixed rates, pps, the same for every forwarder (e.g. 10000: the issue 14 comparison at 10 kpps).", valueName: "LIST"))
    var latencyRates: String = ""

    @Option(help: ArgumentHelp("Directory for the results (default bench-results/bench-DATE).", valueName: "DIR"))
    var out: String?

    @Option(help: ArgumentHelp("shunt gen's engine for every trial: auto (the fastest the kernel allows), xdp, afxdp, ring, or pump (in-kernel, no live frames needed: to overload XDP datapaths).", valueName: "ENGINE"))
    var generatorEngine: String = "auto"

    @Flag(help: "Short trials and a coarse search: a smoke run, not a measurement.")
    var quick = false

    @Option(help: ArgumentHelp("The shunt binary to benchmark (default: this one).", valueName: "PATH"))
    var shunt: String?

    @Option(help: ArgumentHelp("Another shunt binary (say the previous commit's release build) for forwarders named NAME@base, e.g. --forwarders shunt-flows,shunt-flows@base: a before/after measured side by side.", valueName: "PATH"))
    var baseline: String?

    @Flag(help: .hidden)
    var buildInfo = false

    /// The settings, or a one-line problem.
    func settings() -> Result<BenchSettings, BenchFailure> {
        var s = BenchSettings()
        func list<T>(_ text: String, _ parse: (String) -> T?) -> [T]? {
            let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let values = items.map(parse)
            return values.contains(where: { $0 == nil }) ? nil : values.map { $0! }
        }
        if let forwarders {
            s.forwarders = forwarders.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        }
        guard let sz = list(sizes, { Int($0) }) else { return .failure(BenchFailure("--sizes: not a list of numbers: \(sizes)")) }
        guard let fl = list(flows, { Int($0) }) else { return .failure(BenchFailure("--flows: not a list of numbers: \(flows)")) }
        guard let fr = list(latencyFractions, { Double($0) }) else {
            return .failure(BenchFailure("--latency-fractions: not a list of numbers: \(latencyFractions)"))
        }
        s.frameSizes = sz
        s.flows = fl
        s.latencyFractions = fr
        if !latencyRates.isEmpty {
            guard let rates = list(latencyRates, { Double($0) }) else {
                return .failure(BenchFailure("--latency-rates: not a list of numbers: \(latencyRates)"))
            }
            s.latencyRates = rates
        }
        s.repeats = repeats ?? (quick ? 1 : 3)
        s.trialSeconds = trialSeconds ?? (quick ? 0.5 : 2)
        s.searchSteps = searchSteps ?? (quick ? 3 : 7)
        s.lossTolerancePercent = lossTolerance
        s.generatorEngine = generatorEngine
        if let baseline {
            guard FileManager.default.isExecutableFile(atPath: baseline) else {
                return .failure(BenchFailure("--baseline: no executable at \(baseline)"))
            }
            s.baseline = URL(fileURLWithPath: baseline).standardizedFileURL.path
        }
        if let problem = s.problem() { return .failure(BenchFailure(problem)) }
        return .success(s)
    }

    func validate() throws {
        if buildInfo { return }
        if case .failure(let f) = settings() {
            printError("shunt bench: \(f)")
            throw ExitCode(2)
        }
        if let shunt, !FileManager.default.isExecutableFile(atPath: shunt) {
            printError("shunt bench: --shunt: no executable at \(shunt)")
            throw ExitCode(2)
        }
    }

    func run() throws {
        if buildInfo {
            #if DEBUG
            emitLine("{\"release\":false}")
            #else
            emitLine("{\"release\":true}")
            #endif
            return
        }
        let console = BenchConsole(note: { printError("shunt bench: " + $0) }, progress: printError, output: emitLine)
        let supervisor = Supervisor(notes: console.note)
        guard case .success(let settings) = settings() else { throw ExitCode(2) }
        let request = BenchRequest(settings: settings, shunt: shunt, out: out, quick: quick)
        let runner: BenchRunner
        do throws(CommandFailure) { runner = try BenchRunner.prepare(request, supervisor: supervisor, console: console) } catch {
            printError("shunt bench: \(error.message)")
            throw ExitCode(error.status)
        }
        let status = runner.run()
        if status != 0 { throw ExitCode(status) }
    }
}
