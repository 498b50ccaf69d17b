import Glibc
import ShuntSystem

/// `shunt ctl`'s end of the control channel: one request, one response, one connection.
public enum ControlClient {
    /// Sends `request` to the server on `path` and waits for its response, `timeoutSeconds` in
    /// all (connecting, sending, waiting for the command, reading the answer).
    ///
    /// Throws when the channel fails (nobody listening, no permission, timeout, garbage); a
    /// command that failed is a response with `ok == false`.
    public static func send(_ request: ControlRequest, to path: String,
                            timeoutSeconds: Int = 10) throws(ControlError) -> ControlResponse {
        precondition(timeoutSeconds > 0, "timeoutSeconds must be positive")
        guard path.utf8.count < Sys.unixPathCapacity, !path.isEmpty else { throw .pathTooLong(path: path) }
        let message = WireCoding.encode(request)
        guard message.count <= ControlProtocol.maxRequestBytes else {
            throw .requestTooLarge(bytes: message.count, limit: ControlProtocol.maxRequestBytes)
        }
        let deadline = Sys.monotonicNanoseconds() + UInt64(timeoutSeconds) * 1_000_000_000

        do {
            let socket = try StreamSocket()
            // connect() blocks only while the server's backlog is full; this bounds that wait.
            try Sys.setsockopt(socket.fd, level: SOL_SOCKET, name: SO_SNDTIMEO,
                               value: timeval(tv_sec: timeoutSeconds, tv_usec: 0))
            do {
                try Sys.connectUnix(socket.fd, path: path)
            } catch {
                switch error.errno {
                case ENOENT: throw ControlError.noServer(path: path)
                case ECONNREFUSED:
                    if let status = try? Sys.fileStatus(path), !status.isSocket { throw ControlError.notASocket(path: path) }
                    throw ControlError.staleSocket(path: path)
                case EACCES, EPERM: throw ControlError.permissionDenied(path: path)
                case EAGAIN: throw ControlError.timedOut(path: path, seconds: timeoutSeconds)
                default: throw ControlError(error, path: path)
                }
            }

            switch try socket.writeAll(message, deadline: deadline) {
            case .complete:
                try? Sys.shutdown(socket.fd, how: Int32(SHUT_WR))
            case .peerClosed:
                break  // the server stopped reading (e.g. too many connections): its answer says why
            case .timedOut:
                throw ControlError.timedOut(path: path, seconds: timeoutSeconds)
            }

            let answer: [UInt8]
            // The answer is one line: it is whole at its newline, even if the server then resets
            // the connection (it does when it refused this one before reading all of the request).
            switch try socket.readToEnd(limit: ControlProtocol.maxResponseBytes, endingAtNewline: true, deadline: deadline) {
            case .complete(let bytes): answer = bytes
            case .tooLarge:
                throw ControlError.malformedResponse(path: path, detail: "more than \(ControlProtocol.maxResponseBytes) bytes")
            case .timedOut:
                throw ControlError.timedOut(path: path, seconds: timeoutSeconds)
            }
            guard !answer.isEmpty else {
                throw ControlError.malformedResponse(path: path, detail: "the forwarder closed the connection without answering")
            }
            do {
                return try WireCoding.decode(ControlResponse.self, from: answer)
            } catch {
                let start = String(decoding: answer.prefix(80), as: UTF8.self)
                throw ControlError.malformedResponse(path: path, detail: "not a control response: \(start)")
            }
        } catch let error as ControlError {
            throw error
        } catch let error as SystemError {
            if error.errno == ECONNRESET {
                throw .malformedResponse(path: path, detail: "the forwarder reset the connection without answering")
            }
            throw ControlError(error, path: path)
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
    }
}
