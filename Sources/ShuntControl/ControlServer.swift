#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import ShuntSystem
import Synchronization

/// The forwarder's end of the control channel: a UNIX stream socket at `path`, served by one
/// thread that polls every connection without blocking on any (wire format: `ControlProtocol`).
///
/// `init` claims the path: it refuses a path where another server answers, replaces a stale
/// socket file, and leaves the socket mode 0600 (root only). `start()` starts the thread;
/// `stop()` (or deinit) ends it and removes the socket file.
///
/// Each connection has `requestTimeoutMilliseconds` to send its request and
/// `responseTimeoutMilliseconds` to take the answer; a client that is slow, stops halfway or
/// never reads holds only its own connection, and only that long. Malformed, oversized and late
/// requests get an error response, then the connection is closed. At most `maxConnections` are
/// served at once; one more is answered "too many control connections" at once. The handler runs
/// on the server thread, one request at a time: it is the only code that can hold the others up.
public final class ControlServer: Sendable {
    public let path: String
    private let loop: ServeLoop
    private let state = Mutex(State())

    private struct State: ~Copyable {
        var thread: WorkerThread?
        var started = false
        var stopped = false
    }

    /// Claims `path` and listens on it; call `start()` to serve.
    ///
    /// - Parameters:
    ///   - requestTimeoutMilliseconds: how long a client may take to send its whole request,
    ///     from connecting.
    ///   - responseTimeoutMilliseconds: how long a client may take to read the whole response.
    ///   - maxConnections: connections served at once (each may hold a request up to
    ///     `maxRequestBytes`); more are refused with an error response.
    ///   - maxRequestBytes: larger requests get an error response.
    public init(path: String, handler: some ControlHandler, requestTimeoutMilliseconds: Int = 5000,
                responseTimeoutMilliseconds: Int = 5000, maxConnections: Int = 64,
                maxRequestBytes: Int = ControlProtocol.maxRequestBytes) throws(ControlError) {
        precondition(requestTimeoutMilliseconds > 0 && responseTimeoutMilliseconds > 0 && maxConnections > 0
                     && maxRequestBytes > 0)
        guard path.utf8.count < Sys.unixPathCapacity, !path.isEmpty else { throw .pathTooLong(path: path) }
        self.path = path

        try Self.createParentDirectory(of: path)
        try Self.removeStaleSocket(at: path)

        let listenFD: Int32
        do {
            listenFD = try Sys.socket(domain: AF_UNIX, type: Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
                                          | Int32(SOCK_NONBLOCK.rawValue), protocol: 0)
        } catch {
            throw .system(error, path: path)
        }
        do {
            try Sys.bindUnix(listenFD, path: path)
        } catch {
            Sys.close(listenFD)
            // Someone bound the path between the check above and here.
            if error.errno == EADDRINUSE { throw .alreadyListening(path: path, pid: nil) }
            throw ControlError(error, path: path)
        }
        let identity: FileStatus
        let wake: (Int32, Int32)
        do {
            // Nobody can connect before listen(), so the socket is never open to others.
            try Sys.chmod(path, mode: 0o600)
            identity = try Sys.fileStatus(path)
            try Sys.listen(listenFD, backlog: 128)
            wake = try Sys.socketPair(domain: AF_UNIX, type: Int32(SOCK_STREAM.rawValue))
        } catch {
            Sys.close(listenFD)
            try? Sys.unlink(path)
            throw ControlError(error, path: path)
        }
        let limits = ConnectionLimits(requestTimeoutNs: UInt64(requestTimeoutMilliseconds) * 1_000_000,
                                      responseTimeoutNs: UInt64(responseTimeoutMilliseconds) * 1_000_000,
                                      maxRequestBytes: maxRequestBytes, maxConnections: maxConnections)
        loop = ServeLoop(listenFD: listenFD, wakeReader: wake.0, wakeWriter: wake.1, socketIdentity: identity,
                         handler: handler, limits: limits, status: ServeLoopStatus())
    }

    /// Starts the thread that serves requests. Once; not after `stop()`.
    public func start() throws(ControlError) {
        let loop = self.loop
        let started = state.withLock { s -> Result<Void, SystemError> in
            precondition(!s.started && !s.stopped, "ControlServer.start() called twice or after stop()")
            // Under the lock, so that a concurrent stop() joins the thread rather than missing it.
            return Result { () throws(SystemError) in
                s.thread = try WorkerThread(name: "shunt-control") { loop.run() }
                s.started = true
            }
        }
        if case .failure(let error) = started { throw .system(error, path: path) }
    }

    /// Ends the thread (open connections are closed without an answer, unless the handler is
    /// running: that request finishes first), closes the socket and removes its file if it is
    /// still ours. Idempotent. Not from the handler: it would wait for itself.
    public func stop() {
        let thread: WorkerThread?? = state.withLock { s in
            if s.stopped { return nil }
            s.stopped = true
            defer { s.thread = nil }
            return .some(s.thread)
        }
        guard let thread else { return }
        try? Sys.shutdown(loop.wakeWriter, how: Int32(SHUT_WR))
        thread?.join()
        Sys.close(loop.listenFD)
        Sys.close(loop.wakeReader)
        Sys.close(loop.wakeWriter)
        // Another process may have replaced the file since (after removing ours by hand): keep theirs.
        if let now = try? Sys.fileStatus(path), now.device == loop.socketIdentity.device,
           now.inode == loop.socketIdentity.inode {
            try? Sys.unlink(path)
        }
    }

    deinit { stop() }

    /// Connections being served (as of the server thread's last pass over them).
    var openConnections: Int { loop.status.openConnections.load(ordering: .relaxed) }
    /// Connections refused so far because `maxConnections` were open.
    var refusedConnections: Int { loop.status.refusedConnections.load(ordering: .relaxed) }

    // MARK: claiming the path

    /// `mkdir -p` of the socket's directory, new directories mode 0755.
    private static func createParentDirectory(of path: String) throws(ControlError) {
        var components = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        components.removeLast()
        var prefix = ""
        for (i, component) in components.enumerated() {
            prefix += (i == 0 ? "" : "/") + component
            if component.isEmpty || component == "." || component == ".." { continue }
            do {
                try Sys.mkdir(prefix, mode: 0o755)
            } catch where error.errno == EEXIST {
                continue
            } catch {
                throw ControlError(error, path: prefix)
            }
        }
    }

    /// Refuses a path where a server answers or that is not a socket; removes a socket file that
    /// nobody answers on (left by a forwarder that was killed).
    private static func removeStaleSocket(at path: String) throws(ControlError) {
        let status: FileStatus
        do {
            status = try Sys.fileStatus(path)
        } catch where error.errno == ENOENT {
            return
        } catch {
            throw ControlError(error, path: path)
        }
        guard status.isSocket else { throw .notASocket(path: path) }
        do {
            let probe = try StreamSocket()
            // A live server with a full backlog makes connect() wait: not for long.
            try Sys.setsockopt(probe.fd, level: SOL_SOCKET, name: SO_SNDTIMEO, value: timeval(tv_sec: 1, tv_usec: 0))
            try Sys.connectUnix(probe.fd, path: path)
            // It answers. Closing without sending anything gets no response.
            throw ControlError.alreadyListening(path: path, pid: Sys.peerProcessID(probe.fd))
        } catch let error as ControlError {
            throw error
        } catch let error as SystemError {
            switch error.errno {
            case ECONNREFUSED: break  // stale: remove it below
            case ENOENT: return  // removed in the meantime
            case EAGAIN: throw .alreadyListening(path: path, pid: nil)  // backlog full: alive
            default: throw ControlError(error, path: path)
            }
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
        do {
            try Sys.unlink(path)
        } catch where error.errno == ENOENT {
            return
        } catch {
            throw ControlError(error, path: path)
        }
    }
}
