import Glibc

/// A failed system call: the errno and the call's name, captured before anything else could run.
public struct SystemError: Error, CustomStringConvertible, Equatable, Sendable {
    public let errno: Int32
    public let call: String

    public init(errno: Int32, call: String) {
        self.errno = errno
        self.call = call
    }

    public var description: String {
        "\(call): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// The outcome of a non-blocking call that may have nothing to do.
public enum IOResult<T> {
    case processed(T)
    case wouldBlock
}
