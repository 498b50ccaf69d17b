import Foundation
import Glibc
import ShuntBench
import ShuntRuntime
import ShuntSystem

// `shunt bench`'s run: the lab, each forwarder in turn between fwd0 and fwd1, the trials
// (`shunt sink`, then `shunt gen`), the cleanup, and the results files. The measurement logic
// (search, statistics, reports) is the ShuntBench module. See docs/design/0010-shunt-bench.md.

/// Where `shunt bench` writes while it runs: notes and progress on stderr, the Markdown table
/// on stdout. The command decides how (it prefixes notes with "shunt bench: ").
public struct BenchConsole {
    /// A one-line message about the run (a skipped forwarder, an interruption, a warning).
    public var note: (String) -> Void
    /// A progress line, as it is ("[3/12] shunt 64B 1 flow: overload: ...").
    public var progress: (String) -> Void
    /// The results table.
    public var output: (String) -> Void

    public init(note: @escaping (String) -> Void, progress: @escaping (String) -> Void, output: @escaping (String) -> Void) {
        self.note = note
        self.progress = progress
        self.output = output
    }
}

/// What `shunt bench` is asked to run, from its flags.
public struct BenchRequest {
    public var settings: BenchSettings
    /// The shunt binary to benchmark (nil: this executable).
    public var shunt: String?
    /// The results directory (nil: bench-results/bench-DATE).
    public var out: String?
    /// --quick (recorded in the manifest).
    public var quick: Bool

    public init(settings: BenchSettings, shunt: String?, out: String?, quick: Bool) {
        self.settings = settings
        self.shunt = shunt
        self.out = out
        self.quick = quick
    }
}

/// One run of `shunt bench`, from the lab to the reports.
public final class BenchRunner {
    let settings: BenchSettings
    let forwarders: [String]
    var skipped: [SkippedForwarder]
    let shunt: String
    let outDir: String
    let quick: Bool
    let runtime: BenchRuntime
    let lab: BenchLab
    let context: BenchContext
    let console: BenchConsole
    private var runs: [BenchCase: [CaseRun]] = [:]
    private var trialCount = 0
    private var unitsDone = 0
    private let totalUnits: Int
    private let startNs = Sys.monotonicNanoseconds()
    private var active: BenchForwarder?
    /// The generator's CPU and the forwarder's (the sink's XDP runs where frames enter sink0).
    let generatorCPU: Int, forwarderCPU: Int

    init(settings: BenchSettings, forwarders: [String], skipped: [SkippedForwarder], shunt: String, outDir: String,
         quick: Bool, runtime: BenchRuntime, lab: BenchLab, cpus: Int, console: BenchConsole) {
        self.settings = settings
        self.forwarders = forwarders
        self.skipped = skipped
        self.shunt = shunt
        self.outDir = outDir
        self.quick = quick
        self.runtime = runtime
        self.lab = lab
        self.console = console
        generatorCPU = 0
        forwarderCPU = cpus > 1 ? 1 : 0
        context = BenchContext(runtime: runtime, lab: lab, shunt: shunt, baseline: settings.baseline, generatorCPU: generatorCPU, forwarderCPU: forwarderCPU,
                               raw: outDir + "/raw", pinning: BenchRuntime.which("taskset") != nil, console: console)
        totalUnits = forwarders.count * settings.repeats * settings.frameSizes.count * settings.flows.count
    }

    /// The exit status: 0, 1 (a failure that stopped the run), 128 + signal (interrupted).
    public func run() -> Int32 {
        let build = buildInfo()
        if build.release == false {
            console.note("warning: \(shunt) is a debug build; its numbers are not representative (build with swift build -c release)")
        }
        // Versions and machine facts now, while the scratch directory for command output exists.
        var manifest = collectManifest(build: build)
        var status: Int32 = 0
        var incomplete = false
        do {
            progress("lab: namespaces \(lab.prefix){\(lab.namespaces.map { String($0.dropFirst(lab.prefix.count)) }.joined(separator: ","))}; "
                + "results in \(outDir)")
            try lab.up(runtime)
            manifest.generator = try calibrateGenerator()
            for slot in RunOrder.interleaved(forwarders: forwarders, repeats: settings.repeats) {
                try runSlot(slot)
            }
        } catch let i as Supervisor.Stopped {
            let signal = i.signal ?? SIGTERM  // only signals stop a bench run
            status = 128 + signal
            incomplete = true
            console.note("interrupted by \(signal == SIGINT ? "SIGINT" : "SIGTERM"): stopping and cleaning up")
        } catch {
            status = 1
            incomplete = true
            console.note("\(error)")
        }
        if let active { active.stop(context) }
        runtime.stopAll()
        lab.down(runtime)
        let left = lab.leftovers()
        if !left.isEmpty { console.note("namespaces still present: \(left.joined(separator: " "))") }
        if status > 128 {
            console.note("stopped the processes it started and removed its namespaces" + (left.isEmpty ? "" : " (some remain, see above)"))
        }
        try? FileManager.default.removeItem(atPath: runtime.scratch)
        if !runs.isEmpty || status == 0 {
            manifest.wallSeconds = Double(Sys.monotonicNanoseconds() - startNs) / 1e9
            do {
                try writeResults(incomplete: incomplete, manifest: manifest)
            } catch {
                console.note("writing the results: \(error)")
                if status == 0 { status = 1 }
            }
        }
        return status
    }

    // MARK: the rounds

    private func runSlot(_ slot: RunOrder.Slot) throws {
        let f = makeForwarder(slot.forwarder)
        let tag = "r\(slot.repeatIndex)-\(slot.forwarder)"
        progress("repeat \(slot.repeatIndex)/\(settings.repeats): starting \(slot.forwarder)")
        active = f
        do {
            try f.start(context, tag: tag)
        } catch let e as BenchFailure {
            // One forwarder that does not start does not end the run for the others.
            f.stop(context)
            active = nil
            console.note("\(slot.forwarder) did not start, skipped in repeat \(slot.repeatIndex): \(e)")
            skipped.append(SkippedForwarder(forwarder: slot.forwarder, reason: "did not start in repeat \(slot.repeatIndex): \(e)"))
            unitsDone += settings.frameSizes.count * settings.flows.count
            return
        }
        try runtime.pause(0.2)
        for size in settings.frameSizes {
            for flows in settings.flows {
                let c = BenchCase(forwarder: slot.forwarder, frameSize: size, flows: flows)
                let run = try runCase(c, repeatIndex: slot.repeatIndex)
                runs[c, default: []].append(run)
                unitsDone += 1
            }
        }
        f.stop(context)
        active = nil
    }

    private func runCase(_ c: BenchCase, repeatIndex: Int) throws -> CaseRun {
        let label = "\(c.forwarder) \(c.frameSize)B \(c.flows) flow\(c.flows == 1 ? "" : "s")"
        let overload = try trial(c, repeatIndex, "overload", rate: nil)
        progress(label, "overload: offered \(mpps(overload.offeredPPS)), delivered \(mpps(overload.deliveredPPS)), "
            + "lost \(overload.lost) of \(overload.sent)\(whereLost(overload))" + (overload.overloadIsGeneratorLimited ? " (generator-limited: a lower bound)" : "")
            + mirrorNote(overload))
        var search = ZeroLossSearch(upperPPS: ZeroLossSearch.upperBound(overload: overload), steps: settings.searchSteps,
                                    lossTolerancePercent: settings.lossTolerancePercent)
        var searchTrials: [Trial] = []
        while let rate = search.nextRate {
            let step = search.stepsDone + 1
            let t = try trial(c, repeatIndex, "search\(step)", rate: rate)
            searchTrials.append(t)
            let passed = search.record(t)
            progress(label, "zero-loss search step \(step)/\(settings.searchSteps): asked \(mpps(rate)), offered \(mpps(t.offeredPPS)), "
                + "lost \(t.lost) of \(t.sent)\(whereLost(t)): \(passed ? "pass" : "fail")"
                + (t.generatorFellShort ? " (the generator fell short of the asked rate)" : ""))
        }
        let zeroLoss = search.resultPPS
        progress(label, "zero-loss rate \(mpps(zeroLoss))" + (search.resultIsGeneratorLimited ? " (generator-limited: a lower bound)" : "")
            + (zeroLoss == 0 ? " (no trial passed)" : ""))
        var latency: [LatencyRun] = []
        /// A latency trial at `rate`, reported as "latency at `point`".
        func latencyTrial(_ kind: String, rate: Double, point: String) throws -> Trial {
            let t = try trial(c, repeatIndex, kind, rate: rate)
            let q = t.latencyUs
            progress(label, "latency at \(point) (\(mpps(t.offeredPPS))): p50 \(num(q?.p50)) µs, "
                + "p99 \(num(q?.p99)) µs, lost \(t.lost) of \(t.sent)\(whereLost(t))"
                + (t.generatorFellShort ? " (the generator fell short of the asked rate)" : ""))
            return t
        }
        for fraction in settings.latencyFractions {
            let rate = (zeroLoss * fraction).rounded()
            guard rate >= 1000 else {
                progress(label, "latency at \(MarkdownReport.percent(fraction)) of zero-loss: skipped (below 1000 pps)")
                continue
            }
            let t = try latencyTrial("latency\(fraction)", rate: rate, point: MarkdownReport.percent(fraction))
            latency.append(LatencyRun(fraction: fraction, trial: t))
        }
        for rate in settings.latencyRates {
            let t = try latencyTrial("latency\(Int(rate))pps", rate: rate, point: MarkdownReport.rate(rate))
            latency.append(LatencyRun(ratePPS: rate, trial: t))
        }
        return CaseRun(repeatIndex: repeatIndex, overload: overload, search: searchTrials, zeroLossPPS: zeroLoss,
                       zeroLossGeneratorLimited: search.resultIsGeneratorLimited, latency: latency)
    }

    /// One trial: sink ready on sink0, generator out of gen0 for --trial-seconds, a short drain,
    /// the sink stopped; both final reports kept under raw/.
    private func trial(_ c: BenchCase, _ repeatIndex: Int, _ kind: String, rate: Double?) throws -> Trial {
        try runtime.checkSignal()
        trialCount += 1
        let tag = String(format: "%04d", trialCount) + "-\(c.forwarder)-r\(repeatIndex)-\(c.frameSize)B-\(c.flows)f-\(kind)"
        let raw = context.raw
        let sinkOut = "\(raw)/\(tag).sink.out", sinkErr = "\(raw)/\(tag).sink.err"
        let sink = try startSink(in: lab.sink, port: "sink0", stdout: sinkOut, stderr: sinkErr)
        defer { runtime.stop(sink, timeout: 5) }
        // Mirror forwarders: a sink on each monitor port counts the copies, and the sessions'
        // counters are read before and after.
        var monitors: [(pid: pid_t, out: String, err: String)] = []
        defer { for m in monitors { runtime.stop(m.pid, timeout: 5) } }
        for i in 0..<(ForwarderInfo.named(c.forwarder)?.mirrorSessions ?? 0) {
            let port = BenchLab.monitorPort(i)
            let out = "\(raw)/\(tag).\(port).out", err = "\(raw)/\(tag).\(port).err"
            let pid = try runtime.start(context.inNamespace(lab.mon, cpu: nil, [shunt, "sink", "--port", port, "--json"]),
                                        stdout: out, stderr: err)
            monitors.append((pid, out, err))
            try waitUntilReceiving(pid, port: port, stdout: out, stderr: err)
        }
        let mirrorBefore = monitors.isEmpty ? nil : active?.mirrorCounters(context)
        var genArgs = [shunt, "gen", "--port", "gen0", "--engine", settings.generatorEngine, "--size", "\(c.frameSize - 4)", "--flows", "\(c.flows)",
                       "--duration", "\(settings.trialSeconds)"]
        if let rate { genArgs += ["--rate", String(format: "%.0f", rate)] }
        let dropsBefore = (lab.txDropped(runtime, lab.gen, "gen0"), lab.txDropped(runtime, lab.fwd, "fwd1"))
        let genOut = "\(raw)/\(tag).gen.out", genErr = "\(raw)/\(tag).gen.err"
        let gen = try runtime.start(context.inNamespace(lab.gen, cpu: generatorCPU, genArgs), stdout: genOut, stderr: genErr)
        let exit: ChildExit?
        do { exit = try runtime.wait(gen, timeout: settings.trialSeconds + 30) } catch {
            runtime.stop(gen, timeout: 5)
            throw error
        }
        guard let exit else {
            runtime.stop(gen, timeout: 5)
            throw BenchFailure("shunt gen did not finish (\(tag))")
        }
        if exit.status != 0 { throw BenchFailure("shunt gen failed (\(tag))\(runtime.lastLine(genErr))") }
        try runtime.pause(0.3)  // frames still in rings and queues reach the sink
        // The sink and the monitors' sinks stop together, so that a forwarder still working
        // through a backlog cannot credit one with frames the other no longer counts. The
        // sessions' counters are read after: copies made since show as made, not received.
        let exits = runtime.stop(together: [sink] + monitors.map(\.pid), signal: SIGTERM, timeout: 10)
        let mirrorAfter = monitors.isEmpty ? nil : active?.mirrorCounters(context)
        if exits[0].status != 0 { throw BenchFailure("shunt sink failed (\(tag))\(runtime.lastLine(sinkErr))") }
        var mirrorReceived: UInt64?
        for (m, exit) in zip(monitors, exits.dropFirst()) {
            if exit.status != 0 { throw BenchFailure("shunt sink on a monitor port failed (\(tag))\(runtime.lastLine(m.err))") }
            guard let report = BenchRuntime.finalReport(m.out), let probes = report["probes"] as? NSNumber else {
                throw BenchFailure("no final report from the monitor's shunt sink (\(m.out))")
            }
            mirrorReceived = (mirrorReceived ?? 0) + probes.uint64Value
        }
        let mirror = mirrorBefore.flatMap { b in mirrorAfter.map { $0.since(b) } }
        var vethDrops: VethDrops?
        if let a0 = dropsBefore.0, let b0 = dropsBefore.1, let a1 = lab.txDropped(runtime, lab.gen, "gen0"),
           let b1 = lab.txDropped(runtime, lab.fwd, "fwd1") {
            vethDrops = VethDrops(intoForwarder: a1 &- a0, outOfForwarder: b1 &- b0)
        }
        guard let g = BenchRuntime.finalReport(genOut) else { throw BenchFailure("no final report from shunt gen (\(tag))") }
        guard let s = BenchRuntime.finalReport(sinkOut) else { throw BenchFailure("no final report from shunt sink (\(tag))") }
        func u(_ o: [String: Any], _ k: String) -> UInt64 { (o[k] as? NSNumber)?.uint64Value ?? 0 }
        func d(_ o: [String: Any], _ k: String) -> Double { (o[k] as? NSNumber)?.doubleValue ?? 0 }
        var latency: LatencyQuantiles?
        if let l = s["latency_us"] as? [String: Any] {
            func q(_ k: String) -> Double? { (l[k] as? NSNumber)?.doubleValue }
            latency = LatencyQuantiles(min: q("min"), p50: q("p50"), p90: q("p90"), p99: q("p99"), p999: q("p999"),
                                       max: q("max"), samples: u(l, "samples"))
        }
        return Trial(askedPPS: rate, sent: u(g, "sent"), received: u(s, "probes"), offeredPPS: d(g, "pps"),
                     generatorSeconds: d(g, "duration_s"), latencyUs: latency, vethDrops: vethDrops,
                     mirrorReceived: mirrorReceived, mirrorCopied: mirror?.mirrored, mirrorFastPath: mirror?.fastPath,
                     mirrorDropped: mirror?.dropped, generatorEngine: g["engine"] as? String)
    }

    /// `shunt sink --json` on `port` in `namespace`, returned once it says it is receiving
    /// (stopped again if it does not).
    private func startSink(in namespace: String, port: String, stdout: String, stderr: String) throws -> pid_t {
        let pid = try runtime.start(context.inNamespace(namespace, cpu: nil, [shunt, "sink", "--port", port, "--json"]),
                                    stdout: stdout, stderr: stderr)
        do { try waitUntilReceiving(pid, port: port, stdout: stdout, stderr: stderr) } catch {
            runtime.stop(pid, timeout: 5)
            throw error
        }
        return pid
    }

    private func waitUntilReceiving(_ pid: pid_t, port: String, stdout: String, stderr: String) throws {
        try runtime.waitForLine(stdout, containing: "\"type\":\"ready\"", pid: pid, timeout: 20, what: "shunt sink on \(port)",
                                errorFile: stderr)
    }

    /// The generator's ceiling for this run: `shunt gen` (auto) flat out for one trial of 64 B
    /// frames (2 s at most) into `shunt sink` on fwd0 (no forwarder yet), pinned as in the trials.
    private func calibrateGenerator() throws -> GeneratorCalibration {
        let raw = context.raw
        let sinkOut = "\(raw)/calibration.sink.out", sinkErr = "\(raw)/calibration.sink.err"
        let sink = try startSink(in: lab.fwd, port: "fwd0", stdout: sinkOut, stderr: sinkErr)
        defer { runtime.stop(sink, timeout: 5) }
        let genOut = "\(raw)/calibration.gen.out", genErr = "\(raw)/calibration.gen.err"
        let gen = try runtime.start(context.inNamespace(lab.gen, cpu: generatorCPU, [
            shunt, "gen", "--port", "gen0", "--engine", settings.generatorEngine, "--size", "60", "--duration", "\(min(settings.trialSeconds, 2))"]), stdout: genOut, stderr: genErr)
        guard let exit = try runtime.wait(gen, timeout: settings.trialSeconds + 30), exit.status == 0 else {
            runtime.stop(gen, timeout: 5)
            throw BenchFailure("shunt gen failed while measuring the generator\(runtime.lastLine(genErr))")
        }
        try runtime.pause(0.3)
        _ = runtime.stop(together: [sink], signal: SIGTERM, timeout: 10)
        guard let g = BenchRuntime.finalReport(genOut), let s = BenchRuntime.finalReport(sinkOut) else {
            throw BenchFailure("no final report while measuring the generator (\(genOut), \(sinkOut))")
        }
        func d(_ o: [String: Any], _ k: String) -> Double { (o[k] as? NSNumber)?.doubleValue ?? 0 }
        let seconds = d(g, "duration_s")
        let calibration = GeneratorCalibration(engine: g["engine"] as? String ?? "?", choice: g["engine_choice"] as? String ?? "",
                                               ceilingPPS: d(g, "pps"), deliveredPPS: seconds > 0 ? d(s, "probes") / seconds : 0)
        progress("generator: \(calibration.engine) engine (\(calibration.choice)); ceiling \(mpps(calibration.ceilingPPS)) sent, "
            + "\(mpps(calibration.deliveredPPS)) at a sink with no forwarder")
        return calibration
    }

    // MARK: output

    private func progress(_ label: String, _ message: String) {
        progress("\(label): \(message)")
    }

    private func progress(_ message: String) {
        let elapsed = Double(Sys.monotonicNanoseconds() - startNs) / 1e9
        let clock = ProgressClock(total: totalUnits).text(done: unitsDone, elapsedSeconds: elapsed)
        console.progress("[\(min(unitsDone + 1, totalUnits))/\(totalUnits)] \(message) (\(clock))")
    }

    /// " (N dropped entering fwd0, M leaving fwd1)" when the veths dropped any.
    private func whereLost(_ t: Trial) -> String {
        guard let v = t.vethDrops, t.lost > 0, v.intoForwarder + v.outOfForwarder > 0 else { return "" }
        var parts: [String] = []
        if v.intoForwarder > 0 { parts.append("\(v.intoForwarder) dropped entering fwd0: its ring was full") }
        if v.outOfForwarder > 0 { parts.append("\(v.outOfForwarder) dropped leaving fwd1") }
        return " (" + parts.joined(separator: ", ") + ")"
    }

    /// ", mirror: N copies at the monitors (X per delivered frame), M made by the forwarder (K in the kernel, D dropped)".
    private func mirrorNote(_ t: Trial) -> String {
        guard let received = t.mirrorReceived else { return "" }
        var note = ", mirror: \(received) copies at the monitors"
        if let ratio = t.mirrorCopiesPerDelivered { note += String(format: " (%.3f per delivered frame)", ratio) }
        if let copied = t.mirrorCopied {
            note += ", \(copied) made by the forwarder"
            var parts: [String] = []
            if let k = t.mirrorFastPath { parts.append("\(k) in the kernel") }
            if let d = t.mirrorDropped, d > 0 { parts.append("\(d) dropped") }
            if !parts.isEmpty { note += " (" + parts.joined(separator: ", ") + ")" }
        }
        return note
    }

    private func mpps(_ pps: Double) -> String { String(format: "%.3f Mpps", pps / 1e6) }
    private func num(_ x: Double?) -> String { x.map { MarkdownReport.trim($0) } ?? "–" }

    private func buildInfo() -> (release: Bool?, version: String) {
        let version = (try? runtime.run([shunt, "--version"], check: false, timeout: 10).out)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
        guard let out = try? runtime.run([shunt, "bench", "--build-info"], check: false, timeout: 10).out,
              let o = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [String: Any] else { return (nil, version) }
        return (o["release"] as? Bool, version)
    }

    private func writeResults(incomplete: Bool, manifest: Manifest) throws {
        let results = BenchResults(manifest: manifest, forwarders: forwarders, frameSizes: settings.frameSizes, flows: settings.flows,
                                   latencyFractions: settings.latencyFractions, latencyRates: settings.latencyRates, skipped: skipped,
                                   runs: runs, incomplete: incomplete)
        try results.json().write(to: URL(fileURLWithPath: "\(outDir)/results.json"))
        let markdown = MarkdownReport.render(results)
        try markdown.write(toFile: "\(outDir)/results.md", atomically: true, encoding: .utf8)
        try SVGCharts.throughput(results).write(toFile: "\(outDir)/throughput.svg", atomically: true, encoding: .utf8)
        let fraction = settings.latencyFractions.min { abs($0 - 0.5) < abs($1 - 0.5) } ?? 0.5
        try SVGCharts.latencyCDF(results, frameSize: settings.frameSizes[0], flows: settings.flows[0], fraction: fraction)
            .write(toFile: "\(outDir)/latency-cdf.svg", atomically: true, encoding: .utf8)
        console.output(markdown)
        console.note("results in \(outDir): results.json, results.md, throughput.svg, latency-cdf.svg, raw/")
    }

    private func collectManifest(build: (release: Bool?, version: String)) -> Manifest {
        func firstLine(_ argv: [String]) -> String {
            guard BenchRuntime.which(argv[0]) != nil, let r = try? runtime.run(argv, check: false, timeout: 10) else { return "not installed" }
            let text = r.out.isEmpty ? r.err : r.out
            return text.split(separator: "\n").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?"
        }
        var tools: [String: String] = [
            "shunt": build.version,
            "iproute2": firstLine(["ip", "-V"]),
            "tc": firstLine(["tc", "-V"]),
            "ethtool": firstLine(["ethtool", "--version"]),
            "ovs-vswitchd": firstLine(["ovs-vswitchd", "--version"]),
        ]
        if BenchRuntime.which("dpdk-testpmd") != nil {
            let v = BenchRuntime.which("dpkg-query") != nil
                ? (try? runtime.run(["dpkg-query", "-W", "-f=${Version}", "dpdk-dev"], check: false, timeout: 10).out) ?? "" : ""
            tools["dpdk-testpmd"] = v.isEmpty ? "installed (version unknown)" : "dpdk-dev \(v)"
        } else {
            tools["dpdk-testpmd"] = "not installed"
        }
        // Executables built with shunt (tpacket-fwd) come from its commit: named only when they run.
        for executable in Set(forwarders.compactMap { ForwarderInfo.named($0)?.builtWithShunt }) {
            tools[executable] = "built with shunt: \(pathBesideShunt(executable, shunt: shunt))"
        }
        let binDir = URL(fileURLWithPath: shunt).deletingLastPathComponent().path
        var commit: String?, dirty: Bool?
        if BenchRuntime.which("git") != nil,
           let r = try? runtime.run(["git", "-C", binDir, "rev-parse", "HEAD"], check: false, timeout: 10), r.status == 0 {
            commit = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
            if let st = try? runtime.run(["git", "-C", binDir, "status", "--porcelain", "--untracked-files=no"], check: false, timeout: 10) {
                dirty = !st.out.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            }
        }
        let kernel = ((try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)) ?? "?")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last!.trimmingCharacters(in: .whitespaces) } ?? "?"
        let s = settings
        let fmt = { (xs: [Double]) in xs.map { MarkdownReport.trim($0) }.joined(separator: ",") }
        var settingsMap: [String: String] = [
            "forwarders": forwarders.joined(separator: ","), "frame_sizes": s.frameSizes.map(String.init).joined(separator: ","),
            "flows": s.flows.map(String.init).joined(separator: ","), "repeats": "\(s.repeats)", "generator_engine": s.generatorEngine,
            "trial_seconds": MarkdownReport.trim(s.trialSeconds), "search_steps": "\(s.searchSteps)",
            "loss_tolerance_pct": "\(s.lossTolerancePercent)", "latency_fractions": fmt(s.latencyFractions),
            "latency_rates_pps": fmt(s.latencyRates),
            "quick": "\(quick)", "drain_seconds": "0.3", "cpu_pinning": context.pinning ? "taskset" : "none (taskset not installed)",
            "zero_loss_range": "0 .. min(overload offered, 1.1 x overload delivered), first trial at the top",
        ]
        if let baseline = s.baseline { settingsMap["baseline"] = baseline }
        if lab.monitorPorts > 0 {
            // Only with mirror forwarders, so other runs' manifests stay as they were.
            settingsMap["mirror_sessions"] = ShuntProcessForwarder.mirrorSessions(lab.monitorPorts).joined(separator: "; ")
                + " (the first session for *-mirror1, both for *-mirror2)"
        }
        return Manifest(date: Self.timestamp(format: "%Y-%m-%dT%H:%M:%SZ", utc: true), kernel: kernel, cpuModel: model,
                        cpus: Sys.onlineCPUCount(), generatorCPU: generatorCPU, forwarderCPU: forwarderCPU,
                        settings: settingsMap, tools: tools, shuntBinary: shunt, shuntReleaseBuild: build.release,
                        shuntGitCommit: commit, shuntGitDirty: dirty,
                        wallSeconds: Double(Sys.monotonicNanoseconds() - startNs) / 1e9)
    }
}


// MARK: before the run

extension BenchRunner {
    /// Checks the machine (root, ip and ethtool), picks the forwarders (a forwarder whose tools
    /// are missing is skipped with a note naming the package), and creates the results and
    /// scratch directories. Failures have status 2 and nothing is left behind.
    public static func prepare(_ request: BenchRequest, supervisor: Supervisor,
                               console: BenchConsole) throws(CommandFailure) -> BenchRunner {
        if Sys.effectiveUserID() != 0 { throw CommandFailure(status: 2, "run as root (namespaces, XDP, packet sockets)") }
        for (tool, package) in [("ip", "iproute2"), ("ethtool", "ethtool")] where BenchRuntime.which(tool) == nil {
            throw CommandFailure(status: 2, "\(tool) is not installed (Debian package: \(package))")
        }
        let settings = request.settings
        let cpus = Sys.onlineCPUCount()
        let shunt = request.shunt.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
            ?? ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        let (chosen, skipped) = chooseForwarders(settings, shunt: shunt, cpus: cpus, console: console)
        if chosen.isEmpty { throw CommandFailure(status: 2, "no forwarder left to run") }
        let stamp = timestamp(format: "%Y%m%d-%H%M%S")
        let outDir = URL(fileURLWithPath: request.out ?? "bench-results/bench-\(stamp)").standardizedFileURL.path
        let raw = outDir + "/raw"
        let scratch = "/tmp/shuntb\(Sys.processID())"
        do {
            try FileManager.default.createDirectory(atPath: raw, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        } catch {
            throw CommandFailure(status: 2, "cannot create \(raw): \(error.localizedDescription)")
        }
        // The analysis ports and the monitor namespace only when a mirror forwarder runs.
        let monitorPorts = chosen.compactMap { ForwarderInfo.named($0)?.mirrorSessions }.max() ?? 0
        return BenchRunner(
            settings: settings, forwarders: chosen, skipped: skipped, shunt: shunt, outDir: outDir, quick: request.quick,
            runtime: BenchRuntime(scratch: scratch, supervisor: supervisor),
            lab: BenchLab(prefix: "shuntb\(Sys.processID())-", monitorPorts: monitorPorts), cpus: cpus, console: console)
    }

    /// The forwarders asked for (default: the default set) whose tools are installed (or built
    /// next to `shunt`); the others are skipped with a note.
    private static func chooseForwarders(_ settings: BenchSettings, shunt: String, cpus: Int,
                                         console: BenchConsole) -> (chosen: [String], skipped: [SkippedForwarder]) {
        var chosen: [String] = []
        var skipped: [SkippedForwarder] = []
        for name in settings.forwarders ?? ForwarderInfo.defaultSet.map(\.name) {
            let info = ForwarderInfo.named(name)!
            var reason: String?
            if let missing = info.tools.first(where: { BenchRuntime.which($0) == nil }) {
                reason = "\(missing) is not installed (Debian package: \(info.package ?? "?"))"
            } else if let path = info.builtWithShunt.map({ pathBesideShunt($0, shunt: shunt) }),
                      !FileManager.default.isExecutableFile(atPath: path) {
                reason = "\(path) is missing (swift build -c release builds it next to shunt)"
            } else if name == "testpmd" && cpus < 2 {
                reason = "needs 2 CPUs (a main and a forwarding lcore)"
            }
            if let reason {
                console.note("skipping \(name): \(reason)")
                skipped.append(SkippedForwarder(forwarder: name, reason: reason))
            } else {
                chosen.append(name)
            }
        }
        return (chosen, skipped)
    }

    /// The local (or UTC) time formatted with strftime.
    static func timestamp(format: String, utc: Bool = false) -> String {
        var t = time_t(Sys.realtimeNanoseconds() / 1_000_000_000)
        var parts = tm()
        if utc { gmtime_r(&t, &parts) } else { localtime_r(&t, &parts) }
        var buffer = [CChar](repeating: 0, count: 64)
        let n = strftime(&buffer, buffer.count, format, &parts)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
