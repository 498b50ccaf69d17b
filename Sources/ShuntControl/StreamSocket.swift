import Glibc
import ShuntSystem

/// An owned UNIX stream socket with deadline-bounded whole-message reads and writes. Closed when
/// the owner goes away.
///
/// Every wait is a `poll` on the socket and, on the server, on its wake-up line, so that
/// `ControlServer.stop()` never waits for a slow client. The socket itself may be blocking:
/// reads and writes are `MSG_DONTWAIT`.
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

    enum ReadOutcome {
        /// Everything up to the end of the stream.
        case complete([UInt8])
        /// More than `limit` bytes came; the rest was not read.
        case tooLarge
        case timedOut
        /// The wake-up line fired (the server is stopping).
        case woken
    }

    enum WriteOutcome {
        case complete
        /// The peer closed its side (EPIPE/ECONNRESET) before taking everything.
        case peerClosed
        case timedOut
        case woken
    }

    /// Reads until the peer shuts down its write side, at most `limit` bytes, before `deadline`
    /// (CLOCK_MONOTONIC ns). Past the limit, returns `.tooLarge` at once, or with
    /// `discardingExcess` reads on to the end (or the deadline) dropping the rest first.
    func readToEnd(limit: Int, discardingExcess: Bool = false, deadline: UInt64,
                   wake: Int32? = nil) throws(SystemError) -> ReadOutcome {
        var message: [UInt8] = []
        var tooLarge = false
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        defer { chunk.deallocate() }
        while true {
            switch try Sys.receive(fd, into: chunk) {
            case .processed(0):
                return tooLarge ? .tooLarge : .complete(message)
            case .processed(let n):
                if tooLarge { continue }
                if message.count + n > limit {
                    guard discardingExcess else { return .tooLarge }
                    tooLarge = true
                    message = []
                    continue
                }
                message.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
            case .wouldBlock:
                switch try wait(for: Int16(POLLIN), deadline: deadline, wake: wake) {
                case .ready: continue
                case .timedOut: return tooLarge ? .tooLarge : .timedOut
                case .woken: return .woken
                }
            }
        }
    }

    /// Writes all of `bytes` before `deadline` (CLOCK_MONOTONIC ns).
    func writeAll(_ bytes: [UInt8], deadline: UInt64, wake: Int32? = nil) throws(SystemError) -> WriteOutcome {
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
                switch try wait(for: Int16(POLLOUT), deadline: deadline, wake: wake) {
                case .ready: continue
                case .timedOut: return .timedOut
                case .woken: return .woken
                }
            }
        }
        return .complete
    }

    enum WaitOutcome { case ready, timedOut, woken }

    /// Waits until the socket has `events` (or an error or hang-up, which the next call reports),
    /// the wake-up line fires, or the deadline passes.
    func wait(for events: Int16, deadline: UInt64?, wake: Int32?) throws(SystemError) -> WaitOutcome {
        try Self.wait(fd: fd, for: events, deadline: deadline, wake: wake)
    }

    static func wait(fd: Int32, for events: Int16, deadline: UInt64?, wake: Int32?) throws(SystemError) -> WaitOutcome {
        var fds = [pollfd(fd: fd, events: events, revents: 0), pollfd(fd: wake ?? -1, events: Int16(POLLIN), revents: 0)]
        while true {
            var timeoutMs: Int32 = -1
            if let deadline {
                let now = Sys.monotonicNanoseconds()
                if now >= deadline { return .timedOut }
                timeoutMs = Int32(clamping: (deadline - now + 999_999) / 1_000_000)
            }
            // poll ignores entries with a negative fd: without a wake-up line only the socket counts.
            let ready = try fds.withUnsafeMutableBufferPointer { (p) throws(SystemError) -> Int in
                try Sys.poll(p.baseAddress!, count: p.count, timeoutMs: timeoutMs)
            }
            if ready == 0 { continue }  // timeout or signal: the deadline check above decides
            if fds[1].revents != 0 { return .woken }
            if fds[0].revents != 0 { return .ready }
        }
    }
}
