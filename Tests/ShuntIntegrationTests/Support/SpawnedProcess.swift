import Foundation
import Glibc
import ShuntSystem

/// A child process started with posix_spawn (Sys.spawn), its output going to temporary files,
/// reaped with waitpid (Sys.reap). Foundation's Process is not used: on Linux its exit
/// monitoring races with other children (a hang in waitUntilExit, swift-corelibs-foundation
/// issue 4795, and an abort "Attempted to read an unowned reference" seen when a test's deinit
/// waited while other suites started and ended processes).
/// Killed and reaped on deinit if still running.
final class SpawnedProcess {
    let pid: pid_t
    let arguments: [String]
    let stdoutPath: String
    let stderrPath: String
    private var exit: ChildExit?

    /// Runs `/usr/bin/env ARGS`.
    init(_ arguments: [String]) throws {
        let base = FileManager.default.temporaryDirectory.path + "/shunt-child-\(getpid())-\(UUID().uuidString.prefix(12))"
        stdoutPath = base + ".out"
        stderrPath = base + ".err"
        self.arguments = arguments
        pid = try Sys.spawn("/usr/bin/env", arguments, stdout: stdoutPath, stderr: stderrPath)
    }

    deinit {
        if isRunning {
            Sys.signal(pid, SIGKILL)
            _ = wait()
        }
        try? FileManager.default.removeItem(atPath: stdoutPath)
        try? FileManager.default.removeItem(atPath: stderrPath)
    }

    var isRunning: Bool {
        if exit == nil { exit = Sys.reap(pid, block: false) }
        return exit == nil
    }

    /// Blocks until the child ends; its exit status (128 + signal if killed).
    @discardableResult
    func wait() -> Int32 {
        if exit == nil { exit = Sys.reap(pid, block: true) }
        return exit?.status ?? -1
    }

    /// Waits up to `timeout` seconds, then kills; the exit status.
    func wait(timeout: Double) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning && Date() < deadline { usleep(20_000) }
        if isRunning { Sys.signal(pid, SIGKILL) }
        return wait()
    }

    /// Sends `signal` unless the child has already been reaped (its pid may be reused then).
    func signal(_ signal: Int32) {
        if isRunning { Sys.signal(pid, signal) }
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
}
