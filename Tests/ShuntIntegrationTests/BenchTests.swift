import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Glibc
import ShuntTestSupport
import Testing

/// `shunt bench` run as a user would: a tiny real run, an interrupted run, bad input.
@Suite("shunt bench", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason))
struct BenchTests {
    /// Starts `shunt bench ARGS` (with `env` settings first, e.g. "PATH=..."); output goes to files.
    final class BenchProcess {
        let child: SpawnedProcess
        let dir: String
        init(_ args: [String], env: [String] = []) throws {
            dir = NSTemporaryDirectory() + "shunt-bench-test-\(getpid())-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            child = try SpawnedProcess(env + [shuntExecutable, "bench"] + args)
        }

        deinit { try? FileManager.default.removeItem(atPath: dir) }

        var pid: Int32 { child.pid }
        var stderr: String { child.stderr }
        var stdout: String { child.stdout }

        /// Waits for the exit (killing the run after `timeout` seconds); the exit status.
        func finish(timeout: Double) -> Int32 { child.wait(timeout: timeout) }

        /// Namespaces of this run still present.
        var namespaces: [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []).filter { $0.hasPrefix("shuntb\(pid)-") }
        }
    }

    /// PIDs of the processes whose parent is `pid`.
    static func children(of pid: Int32) -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }.filter { p in
            guard let stat = try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid
        }
    }

    static func parsesAsXML(_ path: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: path) else { return false }
        return XMLParser(data: data).parse()
    }

    @Test func tinyRunWritesConsistentResults() throws {
        let traffic = TrafficGate.exclusive()  // shunt bench floods veths: no Lab may be alive (see TrafficGate)
        defer { traffic.release() }
        let out = NSTemporaryDirectory() + "shunt-bench-results-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let bench = try BenchProcess(["--forwarders", "bridge,shunt", "--sizes", "64", "--flows", "1", "--repeats", "1",
                                      "--trial-seconds", "0.5", "--search-steps", "2", "--latency-fractions", "0.5", "--out", out])
        let status = bench.finish(timeout: 120)
        #expect(status == 0, "\(bench.stderr)")
        #expect(bench.namespaces.isEmpty)
        #expect(bench.stderr.contains("[1/2] bridge 64B 1 flow: overload"))
        #expect(bench.stdout.contains("| bridge | 64 | 1 |") && bench.stdout.contains("| shunt | 64 | 1 |"))

        let data = try #require(FileManager.default.contents(atPath: out + "/results.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["schema"] as? String == "shunt-bench/1")
        #expect(json["incomplete"] as? Bool == false)
        let manifest = try #require(json["manifest"] as? [String: Any])
        let kernel = try String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(manifest["kernel"] as? String == kernel)
        #expect((manifest["tools"] as? [String: String])?["iproute2"]?.contains("iproute2") == true)

        let summary = try #require(json["summary"] as? [[String: Any]])
        #expect(summary.compactMap { ($0["case"] as? [String: Any])?["forwarder"] as? String } == ["bridge", "shunt"])
        for s in summary {
            let delivered = try #require((s["overload_delivered_pps"] as? [String: Any])?["median"] as? Double)
            let offered = try #require((s["overload_offered_pps"] as? [String: Any])?["median"] as? Double)
            #expect(delivered > 0 && offered > 0)
            #expect(delivered <= offered * 1.01)
        }
        let records = try #require(json["runs"] as? [[String: Any]])
        for record in records {
            for run in try #require(record["runs"] as? [[String: Any]]) {
                let overload = try #require(run["overload"] as? [String: Any])
                let trials = [overload] + (run["zero_loss_trials"] as? [[String: Any]] ?? [])
                    + (run["latency"] as? [[String: Any]] ?? []).compactMap { $0["trial"] as? [String: Any] }
                for t in trials {
                    let sent = try #require(t["sent"] as? Int), received = try #require(t["received"] as? Int)
                    #expect(sent > 0 && received <= sent)
                }
                // The zero-loss rate is the offered rate of a passing search trial (0 if none passed).
                let zeroLoss = try #require(run["zero_loss_pps"] as? Double)
                let passing = (run["zero_loss_trials"] as? [[String: Any]] ?? []).filter { ($0["lost"] as? Int) == 0 }
                    .compactMap { $0["offered_pps"] as? Double }
                #expect(zeroLoss == (passing.max() ?? 0))
                #expect(zeroLoss <= (overload["offered_pps"] as? Double ?? 0) * 1.05)
            }
        }
        let markdown = try String(contentsOfFile: out + "/results.md", encoding: .utf8)
        #expect(markdown.contains("| shunt | 64 | 1 |"))
        #expect(Self.parsesAsXML(out + "/throughput.svg"))
        #expect(Self.parsesAsXML(out + "/latency-cdf.svg"))
    }

    @Test func mirrorForwardersCountTheCopiesAtTheMonitorPorts() throws {
        let traffic = TrafficGate.exclusive()  // shunt bench floods veths: no Lab may be alive (see TrafficGate)
        defer { traffic.release() }
        let out = NSTemporaryDirectory() + "shunt-bench-mirror-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let bench = try BenchProcess(["--forwarders", "shunt-flows,shunt-mirror1,shunt-xdp-mirror2", "--sizes", "64", "--flows", "1",
                                      "--repeats", "1", "--trial-seconds", "0.5", "--search-steps", "1", "--latency-fractions", "0.5",
                                      "--out", out])
        let status = bench.finish(timeout: 120)
        #expect(status == 0, "\(bench.stderr)")
        #expect(bench.namespaces.isEmpty)  // the monitor namespace too
        #expect(bench.stderr.contains("namespaces shuntb\(bench.pid)-{gen,fwd,sink,mon}"), "\(bench.stderr)")
        #expect(bench.stderr.contains("shunt-mirror1 64B 1 flow: overload:") && bench.stderr.contains("copies at the monitors"))

        let data = try #require(FileManager.default.contents(atPath: out + "/results.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let summary = try #require(json["summary"] as? [[String: Any]])
        func summaryOf(_ f: String) -> [String: Any]? { summary.first { ($0["case"] as? [String: Any])?["forwarder"] as? String == f } }
        let plain = try #require(summaryOf("shunt-flows"))
        #expect(!plain.keys.contains { $0.contains("mirror") })
        // One session: one copy per delivered frame; two: two. Sane, not exact: an overloaded
        // forwarder may copy a frame on the way in and lose it on the way out.
        for (f, copies) in [("shunt-mirror1", 1.0), ("shunt-xdp-mirror2", 2.0)] {
            let s = try #require(summaryOf(f), "\(f)")
            let ratio = try #require((s["overload_mirror_copies_per_delivered"] as? [String: Any])?["median"] as? Double, "\(f)")
            #expect(ratio > copies * 0.9 && ratio < copies * 1.1, "\(f): \(ratio)")
        }
        // The XDP fast path made the kernel's copies (all but those of the flow's first frames).
        let share = try #require((summaryOf("shunt-xdp-mirror2")?["overload_mirror_fast_path_share"] as? [String: Any])?["median"] as? Double)
        #expect(share > 0.5)
        #expect(summaryOf("shunt-mirror1")?["overload_mirror_fast_path_share"] == nil)

        let records = try #require(json["runs"] as? [[String: Any]])
        for record in records {
            let forwarder = try #require((record["case"] as? [String: Any])?["forwarder"] as? String)
            for run in try #require(record["runs"] as? [[String: Any]]) {
                let trials = [run["overload"] as? [String: Any]].compactMap { $0 } + (run["zero_loss_trials"] as? [[String: Any]] ?? [])
                    + (run["latency"] as? [[String: Any]] ?? []).compactMap { $0["trial"] as? [String: Any] }
                for t in trials {
                    if forwarder == "shunt-flows" {
                        #expect(t["mirror_received"] == nil && t["mirror_copied"] == nil)
                        continue
                    }
                    let received = try #require(t["mirror_received"] as? Int, "\(forwarder): \(t)")
                    let copied = try #require(t["mirror_copied"] as? Int, "\(forwarder): \(t)")
                    let sent = try #require(t["sent"] as? Int)
                    // Copies are counted where they arrive, at most what the sessions made, at most one per session and frame sent.
                    #expect(received > 0 && received <= copied, "\(forwarder): \(t)")
                    #expect(copied <= sent * (forwarder == "shunt-mirror1" ? 1 : 2), "\(forwarder): \(t)")
                    #expect((t["mirror_fast_path"] != nil) == (forwarder == "shunt-xdp-mirror2"), "\(forwarder): \(t)")
                }
            }
        }
        let markdown = try String(contentsOfFile: out + "/results.md", encoding: .utf8)
        #expect(markdown.contains("mirror copies per delivered frame (overload)"))
        #expect(markdown.contains("% in kernel |"))
        let settings = (json["manifest"] as? [String: Any])?["settings"] as? [String: String]
        #expect(settings?["mirror_sessions"]?.hasPrefix("span-in,src=fwd0,dir=in,to=fwd2; span-out,src=fwd1,dir=out,to=fwd3") == true)
    }

    @Test func sigintStopsTheChildrenAndRemovesTheNamespaces() throws {
        let traffic = TrafficGate.exclusive()  // shunt bench floods veths: no Lab may be alive (see TrafficGate)
        defer { traffic.release() }
        let out = NSTemporaryDirectory() + "shunt-bench-int-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let bench = try BenchProcess(["--forwarders", "shunt", "--sizes", "64", "--flows", "1", "--repeats", "1",
                                      "--trial-seconds", "30", "--out", out])
        // Wait until a trial runs: the forwarder, the sink and the generator are children.
        var children: [Int32] = []
        func commands() -> [String] {
            children.map { p in
                String(decoding: (FileManager.default.contents(atPath: "/proc/\(p)/cmdline") ?? Data()).map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            }
        }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            children = Self.children(of: bench.pid)
            let c = commands()
            if c.contains(where: { $0.contains(" forward ") }) && c.contains(where: { $0.contains(" sink ") })
                && c.contains(where: { $0.contains(" gen ") }) { break }
            usleep(100_000)
        }
        #expect(children.count >= 3, "\(commands()) \(bench.stderr)")
        #expect(!bench.namespaces.isEmpty)
        kill(bench.pid, SIGINT)
        let status = bench.finish(timeout: 40)
        #expect(status == 130, "\(bench.stderr)")
        #expect(bench.stderr.contains("interrupted by SIGINT"))
        #expect(bench.namespaces.isEmpty)
        for child in children { #expect(kill(child, 0) != 0, "child \(child) still there") }
    }

    /// An impatient user: SIGINT again and again while the run cleans up. The cleanup still runs
    /// to its end (before, every further signal stopped the command it was waiting for, such as
    /// `ip netns del`, and namespaces were left behind).
    @Test func repeatedSigintsDoNotCutTheCleanupShort() throws {
        let traffic = TrafficGate.exclusive()  // shunt bench floods veths: no Lab may be alive (see TrafficGate)
        defer { traffic.release() }
        let out = NSTemporaryDirectory() + "shunt-bench-int2-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let bench = try BenchProcess(["--forwarders", "shunt", "--sizes", "64", "--flows", "1", "--repeats", "1",
                                      "--trial-seconds", "30", "--out", out])
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && !bench.stderr.contains("starting shunt") { usleep(50_000) }
        #expect(!bench.namespaces.isEmpty, "\(bench.stderr)")
        // Every 5 ms until it exits (at most 40 s).
        let end = Date().addingTimeInterval(40)
        while Date() < end && bench.child.isRunning {
            bench.child.signal(SIGINT)
            usleep(5_000)
        }
        let status = bench.finish(timeout: 40)
        #expect(status == 130, "\(bench.stderr)")
        #expect(bench.namespaces.isEmpty, "\(bench.namespaces) \(bench.stderr)")
    }

    @Test func badInputIsOneLineAndCreatesNothing() throws {
        let cases: [([String], String)] = [
            (["--forwarders", "shunt,nosuch"], "unknown forwarder \"nosuch\""),
            (["--forwarders", "shunt-mirror3"], "unknown forwarder \"shunt-mirror3\""),
            (["--forwarders", "shunt-mirror1,shunt-mirror1"], "names a forwarder twice"),
            (["--sizes", "64,9001"], "frame size 9001 is outside 64...1518"),
            (["--sizes", "60"], "frame size 60 is outside"),
            (["--repeats", "0"], "--repeats must be at least 1"),
            (["--trial-seconds", "0"], "--trial-seconds must be more than 0"),
            (["--latency-fractions", "0.5,1.5"], "outside (0, 1]"),
            (["--loss-tolerance", "100"], "--loss-tolerance"),
            (["--sizes", "64,abc"], "--sizes: not a list of numbers"),
        ]
        for (args, message) in cases {
            let bench = try BenchProcess(args + ["--out", NSTemporaryDirectory() + "shunt-bench-never"])
            let status = bench.finish(timeout: 20)
            let lines = bench.stderr.split(separator: "\n")
            #expect(status == 2, "\(args)")
            #expect(lines.count == 1 && lines[0].hasPrefix("shunt bench: ") && lines[0].contains(message), "\(args): \(bench.stderr)")
            #expect(bench.namespaces.isEmpty)
            #expect(!FileManager.default.fileExists(atPath: NSTemporaryDirectory() + "shunt-bench-never"))
        }
    }

    @Test func aMissingToolSkipsItsForwarderNamingThePackage() throws {
        // A PATH with the tools every run needs, but not dpdk-testpmd.
        let bin = NSTemporaryDirectory() + "shunt-bench-path-\(getpid())"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: bin) }
        for tool in ["ip", "ethtool"] {
            let real = try #require(["/usr/sbin/", "/sbin/", "/usr/bin/"].map { $0 + tool }.first { FileManager.default.isExecutableFile(atPath: $0) })
            try FileManager.default.createSymbolicLink(atPath: "\(bin)/\(tool)", withDestinationPath: real)
        }
        let bench = try BenchProcess(["--forwarders", "testpmd", "--out", bin + "/out"], env: ["PATH=\(bin)"])
        let status = bench.finish(timeout: 20)
        #expect(status == 2)
        #expect(bench.stderr.contains("shunt bench: skipping testpmd: dpdk-testpmd is not installed (Debian package: dpdk-dev)"))
        #expect(bench.stderr.contains("shunt bench: no forwarder left to run"))
        #expect(bench.namespaces.isEmpty)
    }

    /// c-tpacket runs the tpacket-fwd built next to the benchmarked shunt: a shunt without one
    /// beside it (here a link to it in an empty directory) skips the forwarder, naming the path.
    @Test func cTPacketIsSkippedWithoutTpacketFwdBesideShunt() throws {
        let dir = NSTemporaryDirectory() + "shunt-bench-alone-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/shunt", withDestinationPath: shuntExecutable)
        let bench = try BenchProcess(["--forwarders", "c-tpacket,c-tpacket-v2", "--shunt", "\(dir)/shunt", "--out", dir + "/out"])
        let status = bench.finish(timeout: 20)
        #expect(status == 2)
        #expect(bench.stderr.contains("shunt bench: skipping c-tpacket: \(dir)/tpacket-fwd is missing (swift build -c release builds it next to shunt)"),
                "\(bench.stderr)")
        #expect(bench.stderr.contains("shunt bench: skipping c-tpacket-v2: "))
        #expect(bench.stderr.contains("shunt bench: no forwarder left to run"))
        #expect(bench.namespaces.isEmpty)
    }
}
