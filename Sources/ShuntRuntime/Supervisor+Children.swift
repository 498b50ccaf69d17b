import Glibc
import ShuntSystem

// The child processes a command starts (`shunt bench`: forwarders, sinks, generators, tools).
// Each is recorded by its PID when it starts and stopped by that PID only (never by name),
// SIGKILL after a timeout; whatever still runs when the supervisor goes away is ended then.

extension Supervisor {
    /// Starts `path` (an absolute path) with `arguments`, output appended to the files (see
    /// `Sys.spawn`), and records it under `label` until it is reaped.
    public func spawn(_ path: String, _ arguments: [String], label: String, stdout: String, stderr: String,
                      environment: [String] = []) throws(SystemError) -> pid_t {
        let pid = try Sys.spawn(path, arguments, stdout: stdout, stderr: stderr, environment: environment)
        children[pid] = label
        return pid
    }

    /// The children not reaped yet, by PID, with their labels.
    public var runningChildren: [pid_t: String] { children }

    /// The child's exit if it has ended (reaped and forgotten), nil while it runs.
    public func exited(_ pid: pid_t) -> ChildExit? {
        guard children[pid] != nil, let exit = Sys.reap(pid, block: false) else { return nil }
        children[pid] = nil
        return exit
    }

    /// Waits up to `timeout` seconds for the child to end; nil if it still runs. Throws
    /// `Stopped` as `sleep` does.
    public func wait(for pid: pid_t, timeout: Double) throws(Stopped) -> ChildExit? {
        let deadline = Sys.monotonicNanoseconds() + UInt64(timeout * 1e9)
        while true {
            if let exit = Sys.reap(pid, block: false) {
                children[pid] = nil
                return exit
            }
            if Sys.monotonicNanoseconds() >= deadline { return nil }
            try sleep(nanoseconds: 10_000_000)
        }
    }

    /// Signals the child, waits up to `timeout` seconds, then SIGKILL. Never throws: used in cleanup.
    @discardableResult
    public func stop(_ pid: pid_t, signal: Int32 = SIGTERM, timeout: Double = 10) -> ChildExit {
        stop(together: [pid], signal: signal, timeout: timeout)[0]
    }

    /// Signals every child in `pids` first, then waits for each as `stop` does: the children
    /// stop at nearly the same moment (the sinks of one trial end their counts together).
    public func stop(together pids: [pid_t], signal: Int32 = SIGTERM, timeout: Double = 10) -> [ChildExit] {
        for pid in pids where children[pid] != nil { Sys.signal(pid, signal) }
        return pids.map { reapOrKill($0, signal: signal, timeout: timeout) }
    }

    /// Stops every child still running (SIGTERM, then SIGKILL after 3 s).
    public func stopAllChildren() {
        for pid in children.keys.sorted() { stop(pid, timeout: 3) }
    }

    /// Waits up to `timeout` seconds for a signalled child, then SIGKILL.
    private func reapOrKill(_ pid: pid_t, signal: Int32, timeout: Double) -> ChildExit {
        guard children[pid] != nil else { return .exited(0) }
        let deadline = Sys.monotonicNanoseconds() + UInt64(timeout * 1e9)
        while Sys.monotonicNanoseconds() < deadline {
            if let exit = Sys.reap(pid, block: false) {
                children[pid] = nil
                return exit
            }
            Sys.sleep(nanoseconds: 10_000_000)
        }
        notes("pid \(pid) (\(children[pid] ?? "?")) did not stop on signal \(signal): SIGKILL")
        Sys.signal(pid, SIGKILL)
        let exit = Sys.reap(pid, block: true) ?? .signaled(SIGKILL)
        children[pid] = nil
        return exit
    }
}
