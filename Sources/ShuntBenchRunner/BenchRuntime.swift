import Foundation
import Glibc
import ShuntLab
import ShuntRuntime
import ShuntSystem

// `shunt bench`'s processes, commands and signals. Every child is started through the
// Supervisor, recorded by PID, and stopped by that PID only. SIGINT and SIGTERM are blocked in
// shunt and polled (sigtimedwait) between steps and while waiting, so an interruption always
// reaches the cleanup (as `Supervisor.Stopped`, thrown once).

public struct BenchFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

final class BenchRuntime {
    /// Per-run scratch directory (OVS database and sockets, command output), removed at the end.
    let scratch: String
    let supervisor: Supervisor
    private var commandCount = 0

    init(scratch: String, supervisor: Supervisor) {
        self.scratch = scratch
        self.supervisor = supervisor
    }

    /// The absolute path of `tool` on PATH, or nil.
    static func which(_ tool: String) -> String? { Sys.findExecutable(tool) }

    /// Throws `Supervisor.Stopped` if SIGINT or SIGTERM is pending (only the first time: the
    /// cleanup that follows must not be cut short by a second Ctrl-C).
    func checkSignal() throws {
        try supervisor.checkStop()
    }

    /// Sleeps, waking at once for SIGINT or SIGTERM, which it throws (once) as `Supervisor.Stopped`.
    func pause(_ seconds: Double) throws {
        try supervisor.sleep(nanoseconds: UInt64(max(0, seconds) * 1e9))
    }

    /// Starts a child (argv[0] resolved on PATH), its output appended to the files.
    func start(_ argv: [String], stdout: String, stderr: String, environment: [String] = []) throws -> pid_t {
        guard let path = Self.which(argv[0]) else { throw BenchFailure("\(argv[0]) not found on PATH") }
        return try supervisor.spawn(path, Array(argv.dropFirst()), label: argv.joined(separator: " "), stdout: stdout,
                                    stderr: stderr, environment: environment)
    }

    /// The child's exit if it has ended (reaped and forgotten), nil while it runs.
    func exited(_ pid: pid_t) -> ChildExit? { supervisor.exited(pid) }

    /// Waits up to `timeout` seconds for the child to end; nil if it still runs.
    func wait(_ pid: pid_t, timeout: Double) throws -> ChildExit? { try supervisor.wait(for: pid, timeout: timeout) }

    /// Signals the child, waits up to `timeout` seconds, then SIGKILL. Never throws: used in cleanup.
    @discardableResult
    func stop(_ pid: pid_t, signal: Int32 = SIGTERM, timeout: Double = 10) -> ChildExit {
        supervisor.stop(pid, signal: signal, timeout: timeout)
    }

    /// Signals every child in `pids` first, then waits for each as `stop` does: the children
    /// stop at nearly the same moment (the sinks of one trial end their counts together).
    func stop(together pids: [pid_t], signal: Int32 = SIGTERM, timeout: Double = 10) -> [ChildExit] {
        supervisor.stop(together: pids, signal: signal, timeout: timeout)
    }

    /// Stops every child still running (SIGTERM, then SIGKILL).
    func stopAll() { supervisor.stopAllChildren() }

    /// Runs a command to completion; its status and output.
    @discardableResult
    func run(_ argv: [String], check: Bool = true, timeout: Double = 60,
             environment: [String] = []) throws -> (status: Int32, out: String, err: String) {
        commandCount += 1
        let out = "\(scratch)/cmd-\(commandCount).out", err = "\(scratch)/cmd-\(commandCount).err"
        defer {
            try? Sys.unlink(out)
            try? Sys.unlink(err)
        }
        let pid = try start(argv, stdout: out, stderr: err, environment: environment)
        var exit: ChildExit?
        do {
            exit = try wait(pid, timeout: timeout)
        } catch {
            stop(pid, timeout: 3)
            throw error
        }
        if exit == nil {
            stop(pid, timeout: 3)
            throw BenchFailure("`\(argv.joined(separator: " "))` did not finish in \(Int(timeout)) s")
        }
        let o = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        let e = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        let status = exit!.status
        if check && status != 0 {
            let detail = e.split(separator: "\n").last.map(String.init) ?? "exit status \(status)"
            throw BenchFailure("`\(argv.joined(separator: " "))` failed: \(detail)")
        }
        return (status, o, e)
    }

    /// Waits until `file` has a line containing `text`; fails if the child ends or time runs out.
    func waitForLine(_ file: String, containing text: String, pid: pid_t, timeout: Double, what: String,
                     errorFile: String? = nil) throws {
        let deadline = Sys.monotonicNanoseconds() + UInt64(timeout * 1e9)
        while true {
            if let s = try? String(contentsOfFile: file, encoding: .utf8), s.contains(text) { return }
            if let exit = supervisor.exited(pid) {
                throw BenchFailure("\(what) exited (status \(exit.status)) before it was ready\(lastLine(errorFile))")
            }
            if Sys.monotonicNanoseconds() >= deadline {
                throw BenchFailure("\(what) was not ready after \(Int(timeout)) s\(lastLine(errorFile))")
            }
            try pause(0.02)
        }
    }

    func lastLine(_ file: String?) -> String {
        guard let file, let s = try? String(contentsOfFile: file, encoding: .utf8),
              let line = s.split(separator: "\n").last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty })
        else { return "" }
        return ": " + line
    }

    /// The `{"type":"final",...}` line of a shunt command's output, parsed.
    static func finalReport(_ file: String) -> [String: Any]? {
        guard let s = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        for line in s.split(separator: "\n").reversed() where line.contains("\"type\":\"final\"") {
            return (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
        return nil
    }
}

/// The gen -- fwd -- sink namespaces:
///
///     [P-gen] gen0 <-veth-> fwd0 [P-fwd: the forwarder] fwd1 <-veth-> sink0 [P-sink]
///
/// and, when a mirror forwarder runs, the analysis ports with their far ends in a monitor
/// namespace, where `shunt sink` counts the copies:
///
///                                                [P-fwd] fwd2 <-veth-> mon0 [P-mon]
///                                                        fwd3 <-veth-> mon1
struct BenchLab {
    let prefix: String
    /// Analysis ports to build (0: no monitor namespace), fwd2... with mon0... as far ends.
    var monitorPorts = 0
    var gen: String { prefix + "gen" }
    var fwd: String { prefix + "fwd" }
    var sink: String { prefix + "sink" }
    var mon: String { prefix + "mon" }
    var namespaces: [String] { [gen, fwd, sink] + (monitorPorts > 0 ? [mon] : []) }

    /// The forwarder's name of analysis port `i` (from 0), and its far end's in the monitor namespace.
    static func analysisPort(_ i: Int) -> String { "fwd\(2 + i)" }
    static func monitorPort(_ i: Int) -> String { "mon\(i)" }

    /// The lab as every other lab is described (Sources/ShuntLab): GRO on fwd0, since xdp_gen's
    /// XDP_TX frames reach it only through its NAPI, and on the monitor ports' peers, since the
    /// XDP fast path's copies are redirects into the analysis ports (shunt forward checks its
    /// ports' peers at start; the monitors' xdp_sink is attached only during trials).
    var topology: LabTopology {
        var t = LabTopology.genFwdSink(prefix: prefix, monitorPorts: monitorPorts)
        t.disableIPv6 = BenchRuntime.which("sysctl") != nil
        return t
    }

    func up(_ rt: BenchRuntime) throws {
        try LabBuilder(topology) { try rt.run($0) }.up()
    }

    /// Removes the namespaces (their veths go with them). Never throws: used in cleanup.
    func down(_ rt: BenchRuntime) {
        LabBuilder(topology) { _ = try rt.run($0, check: false, timeout: 20) }.down()
    }

    /// Namespaces with this prefix that still exist.
    func leftovers() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []).filter { $0.hasPrefix(prefix) }
    }

    /// The TX `dropped` counter of `device` in `namespace` (stats64), or nil.
    func txDropped(_ rt: BenchRuntime, _ namespace: String, _ device: String) -> UInt64? {
        guard let r = try? rt.run(["ip", "-n", namespace, "-s", "-j", "link", "show", device], check: false, timeout: 10),
              let list = (try? JSONSerialization.jsonObject(with: Data(r.out.utf8))) as? [[String: Any]],
              let stats = list.first?["stats64"] as? [String: Any], let tx = stats["tx"] as? [String: Any]
        else { return nil }
        return (tx["dropped"] as? NSNumber)?.uint64Value
    }

    /// Writes `value` to a sysfs or procfs file as seen from the fwd namespace (`ip netns exec`
    /// mounts that namespace's /sys).
    func writeInFwd(_ rt: BenchRuntime, _ path: String, _ value: String) throws {
        try rt.run(["ip", "netns", "exec", fwd, "sh", "-c", "echo \(value) > \(path)"])
    }
}
