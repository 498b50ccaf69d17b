import Glibc
import ShuntSystem

/// Why the control channel could not carry a request (not why a command failed: that is a
/// `ControlResponse` with `ok: false`). Each description names the problem and the way out.
public enum ControlError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The socket path does not fit in `sockaddr_un` (107 bytes at most).
    case pathTooLong(path: String)
    /// Client: nothing at the path.
    case noServer(path: String)
    /// Client: a socket file is there but nobody listens on it (a forwarder died without cleanup).
    case staleSocket(path: String)
    /// The caller may not open the socket (it is root-only).
    case permissionDenied(path: String)
    /// Client: no complete response within the time limit.
    case timedOut(path: String, seconds: Int)
    /// Client: the server closed without answering, or the answer is not a response.
    case malformedResponse(path: String, detail: String)
    /// Client: the request is larger than `ControlProtocol.maxRequestBytes`.
    case requestTooLarge(bytes: Int, limit: Int)
    /// Server: another server answers on the path (pid of the process that listens, if known).
    case alreadyListening(path: String, pid: Int32?)
    /// The path exists and is not a socket (the server leaves it alone).
    case notASocket(path: String)
    /// Any other failed system call.
    case system(SystemError, path: String)

    public var description: String {
        switch self {
        case .pathTooLong(let path):
            return "control socket path too long (at most \(Sys.unixPathCapacity - 1) bytes): \(path)"
        case .noServer(let path):
            return "no shunt forwarder is listening on \(path); start one with `shunt forward --control \(path) ...` or pass --control"
        case .staleSocket(let path):
            return "no shunt forwarder is listening on \(path) (the socket is left over from one that is gone); start one with `shunt forward --control \(path) ...` or pass --control"
        case .permissionDenied(let path):
            return "permission denied on \(path): the control socket is for root only; run as root (sudo)"
        case .timedOut(let path, let seconds):
            return "the shunt forwarder on \(path) did not answer within \(seconds) s"
        case .malformedResponse(let path, let detail):
            return "bad answer from \(path): \(detail)"
        case .requestTooLarge(let bytes, let limit):
            return "request too large: \(bytes) bytes, the control channel takes at most \(limit) (\(limit >> 20) MiB); split it into smaller parts"
        case .alreadyListening(let path, let pid):
            let who = pid.map { " (pid \($0))" } ?? ""
            return "a shunt forwarder is already listening on \(path)\(who); stop it or choose another --control path"
        case .notASocket(let path):
            return "\(path) exists and is not a socket; remove it or choose another --control path"
        case .system(let error, let path):
            return "\(path): \(error)"
        }
    }
}

extension ControlError {
    /// A failed system call on `path`, with the errnos that have a clearer name named.
    init(_ error: SystemError, path: String) {
        switch error.errno {
        case EACCES, EPERM: self = .permissionDenied(path: path)
        case ENAMETOOLONG: self = .pathTooLong(path: path)
        default: self = .system(error, path: path)
        }
    }
}
