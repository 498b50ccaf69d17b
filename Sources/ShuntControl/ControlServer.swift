#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import ShuntSystem
import Synchronization

/// The forwarder's end of the control channel: a UNIX stream socket at `path`, served by one
/// thread that takes one connection at a time (wire format: `ControlProtocol`).
///
/// `init` claims the path: it refuses a path where another server answers, replaces a stale
/// socket file, and leaves the socket mode 0600 (root only). `start()` starts the thread;
/// `stop()` (or deinit) ends it and removes the socket file.
///
/// A client has `requestTimeoutMilliseconds` to send its request (and again to take the
/// response), so a stuck client holds the others up for at most that long. Nothing a client
/// sends or fails to send stops the server; the handler is the only code that can.
public final class ControlServer: Sendable {
    public let path: String
    private let loop: AcceptLoop
    private let state = Mutex(State())

    private struct State: ~Copyable {
        var thread: WorkerThread?
        var started = false
        var stopped = false
    }

    /// Claims `path` and listens on it; call `start()` to serve.
    ///
    /// - Parameters:
    ///   - requestTimeoutMilliseconds: how long a client may take to send its request, and to
    ///     take the response.
    ///   - maxRequestBytes: larger requests get an error response.
    public init(path: String, handler: some ControlHandler, requestTimeoutMilliseconds: Int = 5000,
                maxRequestBytes: Int = ControlProtocol.maxRequestBytes) throws(ControlError) {
        precondition(requestTimeoutMilliseconds > 0 && maxRequestBytes > 0)
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
        loop = AcceptLoop(listenFD: listenFD, wakeReader: wake.0, wakeWriter: wake.1, socketIdentity: identity,
                          handler: handler, timeoutNs: UInt64(requestTimeoutMilliseconds) * 1_000_000,
                          maxRequestBytes: maxRequestBytes)
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

    /// Ends the thread (a request in progress is abandoned, unless the handler is running: that
    /// one finishes), closes the socket and removes its file if it is still ours. Idempotent.
    /// Not from the handler: it would wait for itself.
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

/// What the server thread owns: descriptors, the handler, the limits. Descriptors are closed by
/// `ControlServer.stop()` after the thread has ended.
private struct AcceptLoop: Sendable {
    let listenFD: Int32
    let wakeReader: Int32
    let wakeWriter: Int32
    let socketIdentity: FileStatus
    let handler: any ControlHandler
    let timeoutNs: UInt64
    let maxRequestBytes: Int

    func run() {
        while true {
            let accepted: IOResult<Int32>
            do {
                if try StreamSocket.wait(fd: listenFD, for: Int16(POLLIN), deadline: nil, wake: wakeReader) == .woken {
                    return
                }
                accepted = try Sys.accept(listenFD)
            } catch {
                // Out of descriptors or memory: back off instead of spinning, and stay stoppable.
                if backOff() == .woken { return }
                continue
            }
            guard case .processed(let fd) = accepted else { continue }  // the client left already
            if serve(StreamSocket(adopting: fd)) == .woken { return }
        }
    }

    /// Waits 100 ms, or less if the server is stopping.
    private func backOff() -> Outcome {
        let outcome = try? StreamSocket.wait(fd: -1, for: 0, deadline: Sys.monotonicNanoseconds() + 100_000_000,
                                             wake: wakeReader)
        return outcome == .woken ? .woken : .done
    }

    private enum Outcome { case done, woken }

    /// One connection: read the request, answer, close.
    private func serve(_ connection: consuming StreamSocket) -> Outcome {
        let response: ControlResponse
        do {
            // Excess bytes are read and dropped: closing with unread data would make the client's
            // socket report ECONNRESET before it can read the answer.
            switch try connection.readToEnd(limit: maxRequestBytes, discardingExcess: true,
                                            deadline: Sys.monotonicNanoseconds() + timeoutNs, wake: wakeReader) {
            case .woken:
                return .woken
            case .complete(let bytes) where bytes.isEmpty:
                return .done  // a liveness probe (see ControlServer.removeStaleSocket)
            case .complete(let bytes):
                response = answer(bytes)
            case .tooLarge:
                response = .failure("request too large: more than \(maxRequestBytes) bytes (\(Self.mebibytes(maxRequestBytes))); split it into smaller parts")
            case .timedOut:
                response = .failure("timed out after \(timeoutNs / 1_000_000) ms waiting for the request (one JSON line, then end of stream)")
            }
        } catch {
            return .done  // the client reset the connection: nobody to answer
        }
        let written = try? connection.writeAll(WireCoding.encode(response), deadline: Sys.monotonicNanoseconds() + timeoutNs,
                                               wake: wakeReader)
        return written == .woken ? .woken : .done
    }

    private func answer(_ bytes: [UInt8]) -> ControlResponse {
        let request: ControlRequest
        do {
            request = try WireCoding.decode(ControlRequest.self, from: bytes)
        } catch {
            return .failure("malformed request: \(Self.explain(error)); expected one JSON object such as {\"version\":\(ControlProtocol.version),\"command\":\"show\"}")
        }
        guard request.version == ControlProtocol.version else {
            return .failure("unsupported control protocol version \(request.version): this forwarder speaks version \(ControlProtocol.version) (are shunt forward and shunt ctl the same build?)")
        }
        return handler.handle(request)
    }

    private static func explain(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "\"\(key.stringValue)\" is missing"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "\"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type"
        case DecodingError.dataCorrupted: "not a JSON object"
        default: "\(error)"
        }
    }

    private static func mebibytes(_ bytes: Int) -> String {
        bytes % (1 << 20) == 0 ? "\(bytes >> 20) MiB" : "\(bytes) bytes"
    }
}
