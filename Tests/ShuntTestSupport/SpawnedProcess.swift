import Foundation
import Glibc
import ShuntSystem

/// A child process started with posix_spawn (Sys.spawn), its output going to temporary files,
/// reaped with waitpid (Sys.reap). Foundation's Process is not used: on Linux its exit
/// monitoring races with other children (a hang in waitUntilExit, swift-corelibs-foundation
/// issue 4795, and an abort "Attempted to read an unowned reference" seen when a test's deinit
/// waited while other suites started and ended processes).
/// Killed and reaped on deinit if still running.
public final class SpawnedProcess {
    public let pid: pid_t
    public let arguments: [String]
    public let stdoutPath: String
    public let stderrPath: String
    private var exit: ChildExit?

    /// Runs `/usr/bin/env ARGS`.
    public init(_ arguments: [String]) throws {
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

    public var isRunning: Bool {
        if exit == nil { exit = Sys.reap(pid, block: false) }
        return exit == nil
    }

    /// Blocks until the child ends; its exit status (128 + signal if killed).
    @discardableResult
    public func wait() -> Int32 {
        if exit == nil { exit = Sys.reap(pid, block: true) }
        return exit?.status ?? -1
    }

    /// Waits up to `timeout` seconds, then kills; the exit status.
    public func wait(timeout: Double) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning && Date() < deadline { usleep(20_000) }
        if isRunning { Sys.signal(pid, SIGKILL) }
        return wait()
    }

    /// Sends `signal` unless the child has already been reaped (its pid may be reused then).
    public func signal(_ signal: Int32) {
        if isRunning { Sys.signal(pid, signal) }
    }

    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
}

/// A command that exited with a non-zero status.
public struct CommandFailed: Error, CustomStringConvertible {
    public let command: String
    public let status: Int32
    public let stderr: String
    public var description: String { "`\(command)` exited with \(status): \(stderr)" }
}

/// Runs a command (`/usr/bin/env ARGS`) to its end; its exit status and output. A non-zero
/// status throws `CommandFailed` when `check` is set. Output goes through temporary files, so
/// there is no pipe to drain while waiting.
@discardableResult
public func run(_ args: [String], check: Bool = true) throws -> (status: Int32, out: String, err: String) {
    let child = try SpawnedProcess(args)
    let status = child.wait()
    let out = child.stdout, err = child.stderr
    if check && status != 0 {
        throw CommandFailed(command: args.joined(separator: " "), status: status, stderr: err)
    }
    return (status, out, err)
}
