#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import ShuntSystem
import Synchronization

/// The limits a `ControlServer` holds each connection to.
struct ConnectionLimits: Sendable {
    /// From accept to the end of the request.
    let requestTimeoutNs: UInt64
    /// From the answer being ready to the client having taken it (and closed its side).
    let responseTimeoutNs: UInt64
    let maxRequestBytes: Int
    /// Connections served at once; more are answered with an error and closed.
    let maxConnections: Int
}

/// What the server thread shows the rest of the process (tests look at it).
final class ServeLoopStatus: Sendable {
    /// Connections held open at the end of the last pass of the loop.
    let openConnections = Atomic<Int>(0)
    /// Connections answered "too many connections" at once.
    let refusedConnections = Atomic<Int>(0)
}

/// The server thread: one `poll` over the wake-up line, the listening socket and every open
/// connection, all non-blocking, so that a client that sends slowly, stops halfway or never reads
/// its answer holds only its own connection, until its deadline. Requests go to the handler one
/// at a time, on this thread, as soon as each is complete.
///
/// Descriptors other than the connections' are closed by `ControlServer.stop()` after the thread
/// has ended.
struct ServeLoop: Sendable {
    let listenFD: Int32
    let wakeReader: Int32
    let wakeWriter: Int32
    let socketIdentity: FileStatus
    let handler: any ControlHandler
    let limits: ConnectionLimits
    let status: ServeLoopStatus

    /// One client, from accept to close.
    private struct Connection {
        enum Phase {
            /// Waiting for the rest of the request.
            case reading
            /// Writing `answer`; reading and dropping whatever the client still sends, so that
            /// closing never leaves unread data (which would reset the client's end).
            case answering
        }

        let fd: Int32
        var phase = Phase.reading
        var deadline: UInt64
        var framer = RequestFramer()
        var answer: [UInt8] = []
        var written = 0
        /// The client has not ended its side yet.
        var inputOpen = true
        var closed = false

        var events: Int16 {
            switch phase {
            case .reading: Int16(POLLIN)
            case .answering: (written < answer.count ? Int16(POLLOUT) : 0) | (inputOpen ? Int16(POLLIN) : 0)
            }
        }
    }

    /// Reads per connection per pass (of `chunk` bytes), so that one fast sender does not starve the rest.
    private static let readsPerPass = 16
    /// Connections accepted per pass.
    private static let acceptsPerPass = 64

    func run() {
        var connections: [Connection] = []
        var fds: [pollfd] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        defer {
            chunk.deallocate()
            for c in connections where !c.closed { Sys.close(c.fd) }
            status.openConnections.store(0, ordering: .relaxed)
        }
        var acceptPausedUntil: UInt64 = 0

        while true {
            var now = Sys.monotonicNanoseconds()
            let acceptPaused = now < acceptPausedUntil
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wakeReader, events: Int16(POLLIN), revents: 0))
            // poll ignores entries with a negative fd.
            fds.append(pollfd(fd: acceptPaused ? -1 : listenFD, events: Int16(POLLIN), revents: 0))
            var wakeAt = acceptPaused ? acceptPausedUntil : UInt64.max
            for c in connections {
                fds.append(pollfd(fd: c.fd, events: c.events, revents: 0))
                wakeAt = min(wakeAt, c.deadline)
            }
            let timeoutMs = wakeAt == .max ? Int32(-1) : Int32(clamping: (wakeAt - min(wakeAt, now) + 999_999) / 1_000_000)
            do {
                _ = try fds.withUnsafeMutableBufferPointer { (p) throws(SystemError) -> Int in
                    try Sys.poll(p.baseAddress!, count: p.count, timeoutMs: timeoutMs)
                }
            } catch {
                // Out of memory: try again shortly rather than spinning.
                usleep(10_000)
                continue
            }
            if fds[0].revents != 0 { return }

            // Ready connections first: a request that came in full while the handler was busy
            // with another is served, not timed out.
            for i in connections.indices where fds[i + 2].revents != 0 {
                progress(&connections[i], revents: fds[i + 2].revents, chunk: chunk)
            }
            now = Sys.monotonicNanoseconds()
            for i in connections.indices where !connections[i].closed && connections[i].deadline <= now {
                expire(&connections[i], chunk: chunk)
            }
            connections.removeAll { $0.closed }

            if fds[1].revents != 0 {
                for _ in 0..<Self.acceptsPerPass {
                    let accepted: IOResult<Int32>
                    do {
                        accepted = try Sys.accept(listenFD)
                    } catch {
                        // Out of descriptors or memory: leave the backlog be for 100 ms.
                        acceptPausedUntil = Sys.monotonicNanoseconds() + 100_000_000
                        break
                    }
                    guard case .processed(let fd) = accepted else { break }
                    if connections.count >= limits.maxConnections {
                        reclaimAnswered(&connections, chunk: chunk)
                    }
                    if connections.count >= limits.maxConnections {
                        refuse(fd, chunk: chunk)
                        continue
                    }
                    connections.append(Connection(fd: fd, deadline: Sys.monotonicNanoseconds() + limits.requestTimeoutNs))
                }
            }
            status.openConnections.store(connections.count, ordering: .relaxed)
        }
    }

    // MARK: one connection

    private func progress(_ c: inout Connection, revents: Int16, chunk: UnsafeMutableRawBufferPointer) {
        switch c.phase {
        case .reading:
            read(&c, chunk: chunk)
        case .answering:
            if c.written < c.answer.count { write(&c) }
            if !c.closed && c.inputOpen && revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { drain(&c, chunk: chunk) }
            finishIfDone(&c)
        }
    }

    private func read(_ c: inout Connection, chunk: UnsafeMutableRawBufferPointer) {
        for _ in 0..<Self.readsPerPass {
            let n: Int
            do {
                guard case .processed(let count) = try Sys.receive(c.fd, into: chunk) else { return }
                n = count
            } catch {
                close(&c)  // the client reset the connection: nobody to answer
                return
            }
            if n == 0 {
                c.inputOpen = false
                if c.framer.bytes.isEmpty {
                    close(&c)  // a liveness probe (see ControlServer.removeStaleSocket)
                } else if c.framer.isBlank {
                    answer(&c, Self.malformed("not a JSON object"))
                } else {
                    answer(&c, Self.malformed("the request ended after \(c.framer.bytes.count) bytes, inside its JSON object"))
                }
                return
            }
            switch c.framer.append(UnsafeRawBufferPointer(rebasing: chunk[0..<n])) {
            case .complete(let end) where end <= limits.maxRequestBytes:
                answer(&c, respond(to: Array(c.framer.bytes[..<end])))
                return
            case .complete:
                answer(&c, tooLarge)
                return
            case .notAnObject:
                answer(&c, Self.malformed("not a JSON object"))
                return
            case .incomplete:
                if c.framer.bytes.count > limits.maxRequestBytes {
                    answer(&c, tooLarge)
                    return
                }
            }
        }
    }

    /// Queues `response`, sends what the socket takes now, and goes on reading and dropping input.
    private func answer(_ c: inout Connection, _ response: ControlResponse) {
        c.phase = .answering
        c.framer = RequestFramer()  // the request's bytes are not needed any more
        c.answer = WireCoding.encode(response)
        c.written = 0
        c.deadline = Sys.monotonicNanoseconds() + limits.responseTimeoutNs
        write(&c)
        finishIfDone(&c)
    }

    private func write(_ c: inout Connection) {
        while c.written < c.answer.count {
            let written = c.written
            let attempt = c.answer.withUnsafeBytes { buffer in
                Result { () throws(SystemError) -> IOResult<Int> in
                    try Sys.send(c.fd, UnsafeRawBufferPointer(rebasing: buffer[written...]))
                }
            }
            switch attempt {
            case .success(.processed(let n)): c.written += n
            case .success(.wouldBlock): return
            case .failure:
                close(&c)  // the client went away (EPIPE, ECONNRESET): nobody to tell
                return
            }
        }
        // The whole answer is out: end our side, so the client reads it to the end of the stream.
        try? Sys.shutdown(c.fd, how: Int32(SHUT_WR))
    }

    private func drain(_ c: inout Connection, chunk: UnsafeMutableRawBufferPointer) {
        for _ in 0..<Self.readsPerPass {
            switch try? Sys.receive(c.fd, into: chunk) {
            case .processed(let n) where n > 0: continue
            case .wouldBlock: return
            default:  // end of stream, or an error: nothing more will come
                c.inputOpen = false
                return
            }
        }
    }

    private func finishIfDone(_ c: inout Connection) {
        if !c.closed && c.phase == .answering && c.written == c.answer.count && !c.inputOpen { close(&c) }
    }

    private func expire(_ c: inout Connection, chunk: UnsafeMutableRawBufferPointer) {
        switch c.phase {
        case .reading:
            // The rest may have come while the handler was busy with another request, after
            // this pass's poll: take it before calling the request late.
            read(&c, chunk: chunk)
            guard !c.closed && c.phase == .reading else { return }
            let ms = limits.requestTimeoutNs / 1_000_000
            if c.framer.bytes.isEmpty {
                answer(&c, .failure("timed out after \(ms) ms waiting for the request (one JSON line, then end of stream)"))
            } else {
                answer(&c, .failure("timed out after \(ms) ms waiting for the rest of the request (\(c.framer.bytes.count) bytes so far, no complete JSON object)"))
            }
        case .answering:
            // The answer was not taken in time, or the client keeps sending: give up on it.
            close(&c)
        }
    }

    private func close(_ c: inout Connection) {
        guard !c.closed else { return }
        Sys.close(c.fd)
        c.closed = true
    }

    /// At the limit, before refusing: connections whose client has taken its answer and closed
    /// since this pass's poll still count. A client that closes and at once connects again would
    /// otherwise find its own finished connection holding the slot (seen with 50 clients asking in
    /// a loop on a loaded machine).
    private func reclaimAnswered(_ connections: inout [Connection], chunk: UnsafeMutableRawBufferPointer) {
        var probes = connections.map { pollfd(fd: $0.phase == .answering ? $0.fd : -1, events: $0.events, revents: 0) }
        let ready = probes.withUnsafeMutableBufferPointer { p in
            (try? Sys.poll(p.baseAddress!, count: p.count, timeoutMs: 0)) ?? 0
        }
        guard ready > 0 else { return }
        for i in connections.indices where probes[i].revents != 0 {
            progress(&connections[i], revents: probes[i].revents, chunk: chunk)
        }
        connections.removeAll { $0.closed }
    }

    /// Over the connection limit: the answer goes out at once (it fits in an empty socket buffer),
    /// whatever the client has sent already is read and dropped, and the connection is closed.
    private func refuse(_ fd: Int32, chunk: UnsafeMutableRawBufferPointer) {
        status.refusedConnections.add(1, ordering: .relaxed)
        let message = WireCoding.encode(ControlResponse.failure(
            "too many control connections: \(limits.maxConnections) are being served; try again", exitCode: 1))
        _ = message.withUnsafeBytes { try? Sys.send(fd, $0) }
        try? Sys.shutdown(fd, how: Int32(SHUT_WR))
        for _ in 0..<Self.readsPerPass {
            guard case .processed(let n)? = try? Sys.receive(fd, into: chunk), n > 0 else { break }
        }
        Sys.close(fd)
    }

    // MARK: answers

    private var tooLarge: ControlResponse {
        let bytes = limits.maxRequestBytes
        let size = bytes % (1 << 20) == 0 ? "\(bytes) bytes (\(bytes >> 20) MiB)" : "\(bytes) bytes"
        return .failure("request too large: more than \(size); split it into smaller parts")
    }

    private static func malformed(_ what: String) -> ControlResponse {
        .failure("malformed request: \(what); expected one JSON object such as {\"version\":\(ControlProtocol.version),\"command\":\"show\"}")
    }

    private func respond(to bytes: [UInt8]) -> ControlResponse {
        let request: ControlRequest
        do {
            request = try WireCoding.decode(ControlRequest.self, from: bytes)
        } catch {
            return Self.malformed(Self.explain(error))
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
}
