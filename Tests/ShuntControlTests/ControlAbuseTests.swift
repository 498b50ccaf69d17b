import Foundation
import Glibc
@testable import ShuntControl
import ShuntSystem
import Synchronization
import Testing

/// The control socket under abuse: garbage, oversized and half requests, silent and slow
/// clients, too many clients at once. Real sockets, a real server with short time limits; each
/// test checks the exact error answer, that the connection is closed after it, and that a
/// well-behaved client is served while the bad one is still misbehaving.
@Suite struct ControlAbuseTests {
    static let timeoutMs = 400
    static let example = "expected one JSON object such as {\"version\":1,\"command\":\"show\"}"

    /// A server with `timeoutMs` to send the request and to take the answer.
    private func withServer(handler: some ControlHandler = EchoHandler(), maxConnections: Int = 64,
                            maxRequestBytes: Int = ControlProtocol.maxRequestBytes,
                            _ body: (String, ControlServer) throws -> Void) throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let server = try ControlServer(path: path, handler: handler, requestTimeoutMilliseconds: Self.timeoutMs,
                                           responseTimeoutMilliseconds: Self.timeoutMs, maxConnections: maxConnections,
                                           maxRequestBytes: maxRequestBytes)
            try server.start()
            defer { server.stop() }
            try body(path, server)
        }
    }

    /// A `show` from a good client succeeds, long before the bad client's time is up.
    private func expectServed(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (response, ms) = try timedShow(path)
        #expect(response == .success("show [] json=false flags=\n"), sourceLocation: sourceLocation)
        #expect(ms < UInt64(Self.timeoutMs) / 2, "the good client waited \(ms) ms", sourceLocation: sourceLocation)
    }

    @Test func garbageIsAnsweredAtOnceThenClosed() throws {
        try withServer { path, server in
            var garbage = (0..<200_000).map { _ in UInt8.random(in: 0...255) }
            garbage[0] = 0xff
            // Without ending the stream: the first byte says enough.
            let open = try RawClient(path)
            try open.send(garbage)
            #expect(try open.answer(withinMs: 200) == .failure("malformed request: not a JSON object; \(Self.example)"))
            try expectServed(path)
            // The same with the end of the stream, as `socat` sends it.
            let ended = try RawClient(path)
            try ended.send(garbage)
            try ended.end()
            #expect(try ended.answer(withinMs: 200) == .failure("malformed request: not a JSON object; \(Self.example)"))
            #expect(waitUntil(ms: 1000) { server.openConnections == 0 })
            try expectServed(path)
        }
    }

    @Test func oversizedRequestIsAnsweredWithTheLimitThenClosed() throws {
        try withServer(maxRequestBytes: 64 << 10) { path, server in
            // An object that never ends, without the end of the stream: answered at the limit.
            let client = try RawClient(path)
            try client.send("{\"command\":\"add-flows\",\"arguments\":[\"" + String(repeating: "a", count: 200_000))
            #expect(try client.answer(withinMs: 200) == .failure("request too large: more than 65536 bytes; split it into smaller parts"))
            try expectServed(path)

            // A whole one, through the client: the answer comes back as the server's error.
            let big = ControlRequest(command: "add-flows", arguments: [String(repeating: "priority=1,actions=drop\n", count: 10_000)])
            let response = try ControlClient.send(big, to: path, timeoutSeconds: 2)
            #expect(response == .failure("request too large: more than 65536 bytes; split it into smaller parts"))
            #expect(waitUntil(ms: 1000) { server.openConnections == 0 })
        }
    }

    @Test func eachMalformedRequestGetsItsMessage() throws {
        try withServer { path, _ throws in
            let ask = { (text: String) throws -> ControlResponse in
                let client = try RawClient(path)
                try client.send(text)
                try client.end()
                return try client.answer()
            }
            #expect(try ask("GET / HTTP/1.0\r\n\r\n") == .failure("malformed request: not a JSON object; \(Self.example)"))
            #expect(try ask("[{\"command\":\"show\"}]\n") == .failure("malformed request: not a JSON object; \(Self.example)"))
            #expect(try ask(" \n") == .failure("malformed request: not a JSON object; \(Self.example)"))
            #expect(try ask("{\"command\":show}\n") == .failure("malformed request: not a JSON object; \(Self.example)"))
            #expect(try ask("{\"command\":\"show\"") == .failure("malformed request: the request ended after 17 bytes, inside its JSON object; \(Self.example)"))
            #expect(try ask("{\"json\":true}\n") == .failure("malformed request: \"command\" is missing; \(Self.example)"))
            #expect(try ask("{\"command\":7}\n") == .failure("malformed request: \"command\" has the wrong type; \(Self.example)"))
            #expect(try ask("{\"version\":0,\"command\":\"show\"}\n") == .failure("unsupported control protocol version 0: this forwarder speaks version 1 (are shunt forward and shunt ctl the same build?)"))
            // Braces and quotes inside strings do not end the object early.
            #expect(try ask("{\"command\":\"x}\\\"{\",\"arguments\":[\"]\"]}\n") == .success("x}\"{ []] json=false flags=\n"))
        }
    }

    @Test func requestIsAnsweredWithoutTheEndOfTheStream() throws {
        try withServer { path, _ in
            // As `nc -U` without -N sends it: the line, and the connection left open.
            let client = try RawClient(path)
            try client.send("{\"command\":\"show\",\"json\":true}\n")
            #expect(try client.answer(withinMs: 200) == .success("show [] json=true flags=\n"))
            // Written over several lines and sends, as by hand.
            let pretty = try RawClient(path)
            try pretty.send("{\n  \"command\": \"dump-flows\",\n")
            usleep(20_000)
            try pretty.send("  \"flags\": [\"strict\"]\n}\n")
            #expect(try pretty.answer(withinMs: 200) == .success("dump-flows [] json=false flags=strict\n"))
        }
    }

    @Test func silentClientIsTimedOutWhileOthersAreServed() throws {
        try withServer { path, server in
            let silent = try RawClient(path)
            try expectServed(path)
            try expectServed(path)
            #expect(!silent.heardBack)
            #expect(try silent.answer() == .failure("timed out after 400 ms waiting for the request (one JSON line, then end of stream)"))
            #expect(waitUntil(ms: 1000) { server.openConnections == 0 })
        }
    }

    @Test func halfRequestIsTimedOutWhileOthersAreServed() throws {
        try withServer { path, server in
            let half = try RawClient(path)
            try half.send("{\"command\":\"sh")
            try expectServed(path)
            #expect(!half.heardBack)
            #expect(try half.answer() == .failure("timed out after 400 ms waiting for the rest of the request (14 bytes so far, no complete JSON object)"))
            #expect(waitUntil(ms: 1000) { server.openConnections == 0 })
        }
    }

    @Test func drippingClientIsCutOffAtTheRequestDeadline() throws {
        try withServer { path, _ in
            // One byte every 40 ms: each read is quick, the request never done in time.
            let drip = try RawClient(path)
            let start = Sys.monotonicNanoseconds()
            var sent = 0
            try drip.send("{")
            while !drip.heardBack && sent < 50 {
                usleep(40_000)
                try? drip.send(" ")
                sent += 1
            }
            let ms = (Sys.monotonicNanoseconds() - start) / 1_000_000
            let answer = try drip.answer()
            #expect(answer.error?.hasPrefix("timed out after 400 ms waiting for the rest of the request (") == true)
            #expect(answer.error?.hasSuffix(" bytes so far, no complete JSON object)") == true)
            #expect(ms >= 380 && ms < 1000, "cut off after \(ms) ms")
        }
    }

    @Test func clientThatDoesNotReadItsAnswerIsDropped() throws {
        try withServer { path, server in
            // 2 MiB cannot sit in the socket buffers: the server waits for the client to read.
            let slow = try RawClient(path)
            try slow.send(Array(WireCoding.encode(ControlRequest(command: "big", arguments: ["\(2 << 20)"]))))
            try slow.end()
            #expect(waitUntil(ms: 1000) { slow.heardBack })
            let answeredAt = Sys.monotonicNanoseconds()
            try expectServed(path)
            try expectServed(path)
            #expect(waitUntil(ms: 200) { server.openConnections == 1 })

            // It reads a little now and then; 400 ms after the answer began the server gives up.
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
            defer { chunk.deallocate() }
            var received = 0
            while server.openConnections > 0 && Sys.monotonicNanoseconds() - answeredAt < 2_000_000_000 {
                usleep(20_000)
                if case .processed(let n)? = try? Sys.receive(slow.socket.fd, into: chunk) { received += n }
            }
            let ms = (Sys.monotonicNanoseconds() - answeredAt) / 1_000_000
            #expect(ms >= 380 && ms < 1000, "dropped after \(ms) ms")
            // What was in the buffers, then the end of the stream: never the whole answer.
            guard case .complete(let rest) = try slow.socket.readToEnd(limit: 16 << 20, deadline: Sys.monotonicNanoseconds() + 1_000_000_000) else {
                Issue.record("the server did not close the connection")
                return
            }
            #expect(received + rest.count < 2 << 20)
            try expectServed(path)
        }
    }

    @Test func clientsOverTheCapGetAnErrorAtOnce() throws {
        try withServer(maxConnections: 3) { path, server in
            let silent = try (0..<3).map { _ in try RawClient(path) }
            #expect(waitUntil(ms: 1000) { server.openConnections == 3 })

            let busy = ControlResponse.failure("too many control connections: 3 are being served; try again", exitCode: 1)
            let start = Sys.monotonicNanoseconds()
            #expect(try ControlClient.send(ControlRequest(command: "show"), to: path, timeoutSeconds: 2) == busy)
            let ms = (Sys.monotonicNanoseconds() - start) / 1_000_000
            #expect(ms < UInt64(Self.timeoutMs) / 2, "refusing took \(ms) ms")
            // A request larger than what the server reads on refusing (the client is still writing
            // when the connection closes): the answer still reaches the client.
            let large = ControlRequest(command: "add-flows", arguments: [String(repeating: "x", count: 2 << 20)])
            #expect(try ControlClient.send(large, to: path, timeoutSeconds: 2) == busy)
            #expect(server.refusedConnections == 2)

            // Room again once they are gone.
            _ = consume silent
            #expect(waitUntil(ms: 1000) { server.openConnections == 0 })
            try expectServed(path)
        }
    }

    @Test func requestThatComesWhileTheHandlerIsBusyIsServedNotTimedOut() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let handler = EchoHandler(delaySeconds: 0.3)
            let server = try ControlServer(path: path, handler: handler, requestTimeoutMilliseconds: 100)
            try server.start()
            defer { server.stop() }
            // Accepted first, its request sent while another request holds the handler for
            // longer than the request time limit.
            let waiting = try RawClient(path)
            #expect(waitUntil(ms: 1000) { server.openConnections == 1 })
            let slow = try WorkerThread(name: "slow-client") {
                _ = try? ControlClient.send(ControlRequest(command: "slow"), to: path)
            }
            #expect(waitUntil(ms: 1000) { handler.requests.count == 1 })
            try waiting.send("{\"command\":\"show\"}\n")
            try waiting.end()
            slow.join()
            #expect(try waiting.answer() == .success("show [] json=false flags=\n"))
        }
    }

    @Test func fiftyClientsShowWhileFlowsChange() throws {
        let handler = ChangingFlowsHandler()
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let server = try ControlServer(path: path, handler: handler)
            try server.start()
            defer { server.stop() }

            let done = Atomic<Bool>(false)
            let writer = try WorkerThread(name: "flow-writer") {
                while !done.load(ordering: .relaxed) {
                    _ = try? ControlClient.send(ChangingFlowsHandler.edit, to: path)
                }
            }
            let answers = try onThreads(50) { _ in
                (0..<4).map { _ in Result { () throws(ControlError) in try ControlClient.send(ControlRequest(command: "show"), to: path) } }
            }
            done.store(true, ordering: .relaxed)
            writer.join()

            var generations = Set<Int>()
            for (client, shows) in answers.enumerated() {
                var last = -1
                for show in shows {
                    let response = try show.get()
                    guard response.ok, response.output.hasPrefix("generation="),
                          let generation = Int(response.output.prefix { $0 != " " }.dropFirst("generation=".count))
                    else {
                        Issue.record("client \(client): show was answered \(response)")
                        continue
                    }
                    #expect(response == .success(ChangingFlowsHandler.expectedShow(generation: generation)), "client \(client)")
                    #expect(generation >= last, "client \(client) went back from generation \(last) to \(generation)")
                    last = generation
                    generations.insert(generation)
                }
            }
            #expect(generations.count > 1, "the flows did not change during the shows")
            #expect(!handler.overlapped, "two requests were handled at once")
        }
    }

    @Test func socketStaysRootOnly() throws {
        try withServer { path, _ in
            // Whatever was sent to it, the socket file is still 0600.
            let garbage = try RawClient(path)
            try garbage.send("garbage")
            _ = try garbage.answer()
            #expect(try Sys.fileStatus(path).permissions == 0o600)

            guard geteuid() == 0 else { return }  // the check below needs another identity
            let denied = try asNobody { Result { () throws(ControlError) in try ControlClient.send(ControlRequest(command: "show"), to: path) } }
            #expect(throws: ControlError.permissionDenied(path: path)) { try denied.get() }
            // The same caller gets through a socket open to all: the mode is what keeps it out.
            try Sys.chmod(path, mode: 0o666)
            let allowed = try asNobody { Result { () throws(ControlError) in try ControlClient.send(ControlRequest(command: "show"), to: path) } }
            #expect(try allowed.get().ok)
        }
    }
}
