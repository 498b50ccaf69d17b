import Glibc

// Child processes for `shunt bench`: posix_spawn with a clean signal state, non-blocking reaping,
// and signals to a known PID (never by name).

/// How a child ended.
public enum ChildExit: Equatable, Sendable {
    case exited(Int32)
    case signaled(Int32)

    /// The shell's convention: the exit status, or 128 + the signal number.
    public var status: Int32 {
        switch self {
        case .exited(let s): s
        case .signaled(let s): 128 + s
        }
    }
}

extension Sys {
    /// Starts `path` (an absolute path) with `arguments` (argv[1...]), standard input from
    /// /dev/null and standard output and error appended to the given files. The child starts with
    /// no signal blocked and default dispositions: shunt blocks SIGINT and SIGTERM in itself, and
    /// the mask would otherwise pass through exec and leave tools like testpmd deaf to them.
    /// `environment` entries ("NAME=value") are added to this process's environment.
    @inline(never)
    public static func spawn(_ path: String, _ arguments: [String], stdout: String, stderr: String,
                             environment: [String] = []) throws(SystemError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // No O_CLOEXEC: glibc closes the target descriptor first, so the open lands on it directly.
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o644)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var env: [String] = []
        var e = environ
        while let entry = e.pointee {
            let s = String(cString: entry)
            let name = s.prefix { $0 != "=" }
            if !environment.contains(where: { $0.hasPrefix(name + "=") }) { env.append(s) }
            e += 1
        }
        env += environment
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup($0) } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid = pid_t()
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        if rc != 0 { throw SystemError(errno: rc, call: "posix_spawn \(path)") }
        return pid
    }

    /// Reaps `pid` if it has ended (or waits for it with `block`); nil while it runs.
    @inline(never)
    public static func reap(_ pid: pid_t, block: Bool) -> ChildExit? {
        var status: Int32 = 0
        while true {
            let rc = waitpid(pid, &status, block ? 0 : WNOHANG)
            if rc == 0 { return nil }
            if rc < 0 {
                if Glibc.errno == EINTR { continue }
                return .exited(-1)  // not our child (any more): nothing left to wait for
            }
            break
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift does not import.
        if status & 0x7f == 0 { return .exited((status >> 8) & 0xff) }
        return .signaled(status & 0x7f)
    }

    /// Whether a process `pid` exists (signal 0: nothing is sent; EPERM still means it exists).
    @inline(never)
    public static func processExists(_ pid: pid_t) -> Bool {
        precondition(pid > 0, "process \(pid): a single process id")
        return Glibc.kill(pid, 0) == 0 || Glibc.errno != ESRCH
    }

    /// Sends `signal` to the one process `pid` (which must be a child this process started).
    @inline(never)
    public static func signal(_ pid: pid_t, _ signal: Int32) {
        precondition(pid > 0, "signal to pid \(pid): only a child's own pid")
        _ = Glibc.kill(pid, signal)
    }
}
