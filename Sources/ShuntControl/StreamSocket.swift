import Glibc
import ShuntSystem

/// An owned UNIX stream socket with deadline-bounded whole-message reads and writes (the
/// client's end, and the server's liveness probe; the server itself polls all its connections
/// at once: `ServeLoop`). Closed when the owner goes away.
///
/// Every wait is a `poll` on the socket. The socket itself may be blocking: reads and writes are
/// `MSG_DONTWAIT`.
struct StreamSocket: ~Copyable {
    let fd: Int32

    init(adopting fd: Int32) { self.fd = fd }

    /// A new AF_UNIX stream socket, close-on-exec (`extraType`: e.g. `SOCK_NONBLOCK`).
    init(extraType: Int32 = 0) throws(SystemError) {
        fd = try Sys.socket(domain: AF_UNIX,
                            type: Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | extraType,
                            protocol: 0)
    }

    deinit { Sys.close(fd) }

    enum ReadOutcome: Equatable {
        /// Everything up to the end of the stream (or up to the first newline, when asked).
        case complete([UInt8])
        /// More than `limit` bytes came; the rest was not read.
        case tooLarge
        case timedOut
    }

    enum WriteOutcome {
        case complete
        /// The peer closed its side (EPIPE/ECONNRESET) before taking everything.
        case peerClosed
        case timedOut
    }

    /// Reads until the peer shuts down its write side, at most `limit` bytes, before `deadline`
    /// (CLOCK_MONOTONIC ns). With `endingAtNewline`, returns as soon as a newline comes, with the
    /// bytes up to and including it (what follows is not read): a control message is one line,
    /// so the answer is whole even if the peer then resets the connection.
    func readToEnd(limit: Int, endingAtNewline: Bool = false, deadline: UInt64) throws(SystemError) -> ReadOutcome {
        var message: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        defer { chunk.deallocate() }
        while true {
            switch try Sys.receive(fd, into: chunk) {
            case .processed(0):
                return .complete(message)
            case .processed(let n):
                let received = UnsafeRawBufferPointer(rebasing: chunk[0..<n])
                if endingAtNewline, let newline = received.firstIndex(of: UInt8(ascii: "\n")) {
                    guard message.count + newline + 1 <= limit else { return .tooLarge }
                    message.append(contentsOf: received[...newline])
                    return .complete(message)
                }
                guard message.count + n <= limit else { return .tooLarge }
                message.append(contentsOf: received)
            case .wouldBlock:
                if try wait(for: Int16(POLLIN), deadline: deadline) == .timedOut { return .timedOut }
            }
        }
    }

    /// Writes all of `bytes` before `deadline` (CLOCK_MONOTONIC ns).
    func writeAll(_ bytes: [UInt8], deadline: UInt64) throws(SystemError) -> WriteOutcome {
        var offset = 0
        while offset < bytes.count {
            let attempt = bytes.withUnsafeBytes { buffer in
                Result { () throws(SystemError) -> IOResult<Int> in
                    try Sys.send(fd, UnsafeRawBufferPointer(rebasing: buffer[offset...]))
                }
            }
            let result: IOResult<Int>
            switch attempt {
            case .success(let r): result = r
            case .failure(let error) where error.errno == EPIPE || error.errno == ECONNRESET: return .peerClosed
            case .failure(let error): throw error
            }
            switch result {
            case .processed(let n):
                offset += n
            case .wouldBlock:
                if try wait(for: Int16(POLLOUT), deadline: deadline) == .timedOut { return .timedOut }
            }
        }
        return .complete
    }

    enum WaitOutcome { case ready, timedOut }

    /// Waits until the socket has `events` (or an error or hang-up, which the next call reports)
    /// or the deadline passes.
    func wait(for events: Int16, deadline: UInt64) throws(SystemError) -> WaitOutcome {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let now = Sys.monotonicNanoseconds()
            if now >= deadline { return .timedOut }
            let timeoutMs = Int32(clamping: (deadline - now + 999_999) / 1_000_000)
            // 0: timeout or signal; the deadline check above decides.
            if try Sys.poll(&entry, count: 1, timeoutMs: timeoutMs) > 0 { return .ready }
        }
    }
}
