import Glibc
import ShuntSystem

/// `shunt forward --metrics ADDR:PORT`: an HTTP endpoint for Prometheus scrapes. `GET /metrics`
/// answers with what `render` returns (the text exposition format), anything else with 404 or
/// 405. One thread serves one connection at a time: a request must arrive within two seconds
/// and the answer leave within two more, so a silent or slow client costs a scrape at most that
/// long and never the forwarder (the render closure only reads counters).
public final class MetricsServer: @unchecked Sendable {
    /// The port bound (the one asked for, or the kernel's choice for 0).
    public let port: UInt16
    private let listenFD: Int32
    /// Shutting down `wakeWriter` makes `wakeReader` readable for good: the thread's stop signal.
    private let wakeReader: Int32
    private let wakeWriter: Int32
    private let render: @Sendable () -> String
    private var thread: WorkerThread?
    static let ioTimeoutNs: UInt64 = 2_000_000_000
    static let maxRequestBytes = 8192

    /// Binds and listens; `start()` serves.
    public init(address: UInt32, port: UInt16, render: @escaping @Sendable () -> String) throws(SystemError) {
        let fd = try Sys.socket(domain: AF_INET, type: Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
                                | Int32(SOCK_NONBLOCK.rawValue), protocol: 0)
        do {
            try Sys.bindInet(fd, address: address, port: port)
            try Sys.listen(fd, backlog: 16)
            self.port = try Sys.boundInetPort(fd)
            (wakeReader, wakeWriter) = try Sys.socketPair(domain: AF_UNIX, type: Int32(SOCK_STREAM.rawValue))
        } catch {
            Sys.close(fd)
            throw error
        }
        listenFD = fd
        self.render = render
    }

    public func start() throws(SystemError) {
        let loop = Loop(listenFD: listenFD, wakeReader: wakeReader, render: render)
        thread = try WorkerThread(name: "shunt-metrics") { loop.run() }
    }

    /// Ends the thread and closes the socket.
    public func stop() {
        try? Sys.shutdown(wakeWriter, how: Int32(SHUT_WR))
        thread?.join()
        thread = nil
    }

    deinit {
        stop()
        [listenFD, wakeReader, wakeWriter].forEach(Sys.close)
    }

    private struct Loop: Sendable {
        let listenFD: Int32
        let wakeReader: Int32
        let render: @Sendable () -> String

        func run() {
            while wait(listenFD, events: Int16(POLLIN), deadline: nil) == .ready {
                guard case .processed(let fd)? = try? Sys.accept(listenFD) else { continue }
                serve(fd)
                Sys.close(fd)
            }
        }

        enum Readiness { case ready, timedOut, stopping }

        /// Waits for `events` on `fd`, the stop signal, or the deadline.
        func wait(_ fd: Int32, events: Int16, deadline: UInt64?) -> Readiness {
            var fds = [pollfd(fd: fd, events: events, revents: 0), pollfd(fd: wakeReader, events: Int16(POLLIN), revents: 0)]
            while true {
                let now = Sys.monotonicNanoseconds()
                if let deadline, now >= deadline { return .timedOut }
                let timeout = deadline.map { Int32(min(($0 - now) / 1_000_000 + 1, 1000)) } ?? 1000
                guard let n = try? Sys.poll(&fds, count: 2, timeoutMs: timeout) else { return .stopping }
                if fds[1].revents != 0 { return .stopping }
                if n > 0 && fds[0].revents != 0 { return .ready }
            }
        }

        /// Reads the request head, answers, returns; errors just end the connection.
        func serve(_ fd: Int32) {
            let deadline = Sys.monotonicNanoseconds() + MetricsServer.ioTimeoutNs
            var request: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 2048)
            while !request.contains(subsequence: [13, 10, 13, 10]) && !request.contains(subsequence: [10, 10]) {
                guard request.count < MetricsServer.maxRequestBytes else { return respond(fd, Self.status(431)) }
                guard wait(fd, events: Int16(POLLIN), deadline: deadline) == .ready else { return }
                let got = buffer.withUnsafeMutableBytes { try? Sys.receive(fd, into: $0) }
                guard case .processed(let n)? = got, n > 0 else { return }
                request += buffer[0..<n]
            }
            let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
            guard line.count >= 2 else { return respond(fd, Self.status(400)) }
            guard line[0] == "GET" || line[0] == "HEAD" else { return respond(fd, Self.status(405)) }
            guard line[1] == "/metrics" || line[1].hasPrefix("/metrics?") else { return respond(fd, Self.status(404)) }
            let body = render()
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
            respond(fd, line[0] == "HEAD" ? head : head + body)
        }

        static func status(_ code: Int) -> String {
            let reason = [400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                          431: "Request Header Fields Too Large"][code] ?? "Error"
            let body = code == 404 ? "only /metrics is served here\n" : "\(reason)\n"
            return "HTTP/1.1 \(code) \(reason)\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\n"
                + "Connection: close\r\n\r\n\(body)"
        }

        func respond(_ fd: Int32, _ text: String) {
            let bytes = Array(text.utf8)
            let deadline = Sys.monotonicNanoseconds() + MetricsServer.ioTimeoutNs
            var sent = 0
            while sent < bytes.count {
                guard wait(fd, events: Int16(POLLOUT), deadline: deadline) == .ready else { return }
                let r = bytes[sent...].withUnsafeBytes { try? Sys.send(fd, $0) }
                guard case .processed(let n)? = r else {
                    if case .wouldBlock? = r { continue }
                    return
                }
                sent += n
            }
        }
    }
}

extension Array where Element == UInt8 {
    fileprivate func contains(subsequence: [UInt8]) -> Bool {
        guard count >= subsequence.count else { return false }
        for i in 0...(count - subsequence.count) where self[i..<i + subsequence.count].elementsEqual(subsequence) {
            return true
        }
        return false
    }
}
