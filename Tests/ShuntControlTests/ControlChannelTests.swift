import Foundation
import Glibc
@testable import ShuntControl
import ShuntSystem
import Testing

/// The control channel end to end: a real `ControlServer` on a socket under /tmp, real clients.
@Suite struct ControlChannelTests {
    @Test func eachCommandRoundTrips() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let handler = EchoHandler()
            let server = try ControlServer(path: path, handler: handler)
            try server.start()
            defer { server.stop() }

            let requests = [
                ControlRequest(command: "add-flow", arguments: ["table=0,priority=10,in_port=1,actions=output:2"]),
                ControlRequest(command: "add-flows", arguments: ["priority=1,actions=drop\npriority=2,in_port=2,actions=output:1\n"]),
                ControlRequest(command: "del-flows", arguments: ["in_port=1"], flags: ["strict"]),
                ControlRequest(command: "del-flows"),
                ControlRequest(command: "dump-flows", json: true),
                ControlRequest(command: "show"),
                ControlRequest(command: "dump-cache", json: true),
            ]
            for request in requests {
                let response = try ControlClient.send(request, to: path)
                #expect(response == .success(EchoHandler.echo(request)))
            }
            #expect(handler.requests == requests)
        }
    }

    @Test func failedCommandComesBackAsFailure() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let server = try ControlServer(path: path, handler: EchoHandler())
            try server.start()
            defer { server.stop() }

            let response = try ControlClient.send(ControlRequest(command: "fail", arguments: ["300"]), to: path)
            #expect(!response.ok)
            #expect(response.error == "no such table: 300")
            #expect(response.exitCode == 2)
            #expect(response.output == "")
        }
    }

    @Test func largeRequestArrivesIntact() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let handler = EchoHandler()
            let server = try ControlServer(path: path, handler: handler)
            try server.start()
            defer { server.stop() }

            // 2 MiB of flows, with characters JSON must escape and some that are not ASCII.
            var text = ""
            var i = 0
            while text.utf8.count < 2 << 20 {
                text += "table=\(i % 250),priority=\(i % 65536),in_port=\(i % 7),actions=output:\(i % 5) # \"é\"\t\\\n"
                i += 1
            }
            let response = try ControlClient.send(ControlRequest(command: "size", arguments: [text]), to: path)
            #expect(response == .success("\(text.utf8.count)"))
            #expect(handler.requests.first?.arguments == [text])
        }
    }

    @Test func oversizeRequestIsRejectedAndTheServerCarriesOn() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let handler = EchoHandler()
            let server = try ControlServer(path: path, handler: handler, maxRequestBytes: 1 << 20)
            try server.start()
            defer { server.stop() }

            let big = String(repeating: "priority=1,actions=drop\n", count: (2 << 20) / 24)
            let response = try ControlClient.send(ControlRequest(command: "add-flows", arguments: [big]), to: path)
            #expect(!response.ok)
            #expect(response.exitCode == 2)
            #expect(response.error == "request too large: more than 1048576 bytes (1 MiB); split it into smaller parts")
            #expect(handler.requests.isEmpty)

            let next = try ControlClient.send(ControlRequest(command: "show"), to: path)
            #expect(next.ok)
        }
    }

    @Test func clientRefusesRequestsOverTheProtocolLimit() throws {
        let request = ControlRequest(command: "add-flows", arguments: [String(repeating: "x", count: ControlProtocol.maxRequestBytes)])
        let size = WireCoding.encode(request).count
        #expect(size > ControlProtocol.maxRequestBytes)
        // Refused before connecting: there is no server at this path.
        #expect(throws: ControlError.requestTooLarge(bytes: size, limit: ControlProtocol.maxRequestBytes)) {
            try ControlClient.send(request, to: "/tmp/shunt-ctl-test-nowhere.ctl")
        }
        #expect(ControlProtocol.maxRequestBytes == 16 << 20)
    }

    @Test func secondServerOnALivePathIsRefused() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let first = try ControlServer(path: path, handler: EchoHandler())
            try first.start()
            defer { first.stop() }

            let pid = ProcessInfo.processInfo.processIdentifier
            let error = #expect(throws: ControlError.self) { try ControlServer(path: path, handler: EchoHandler()) }
            #expect(error == .alreadyListening(path: path, pid: pid))
            #expect(error?.description == "a shunt forwarder is already listening on \(path) (pid \(pid)); stop it or choose another --control path")

            // The first one is untouched.
            #expect(try ControlClient.send(ControlRequest(command: "show"), to: path).ok)
        }
    }

    @Test func secondServerIsRefusedEvenBeforeTheFirstStarts() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let first = try ControlServer(path: path, handler: EchoHandler())
            defer { first.stop() }
            // Listening already: connections wait in the backlog until start().
            #expect(throws: ControlError.alreadyListening(path: path, pid: ProcessInfo.processInfo.processIdentifier)) {
                try ControlServer(path: path, handler: EchoHandler())
            }
        }
    }

    @Test func staleSocketFileIsReplaced() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            // A server that died without cleaning up: bound, then closed, file left behind.
            let dead = try StreamSocket()
            try Sys.bindUnix(dead.fd, path: path)
            try Sys.listen(dead.fd, backlog: 1)
            _ = consume dead
            #expect(try Sys.fileStatus(path).isSocket)

            #expect(throws: ControlError.staleSocket(path: path)) {
                try ControlClient.send(ControlRequest(command: "show"), to: path)
            }

            let server = try ControlServer(path: path, handler: EchoHandler())
            try server.start()
            defer { server.stop() }
            #expect(try ControlClient.send(ControlRequest(command: "show"), to: path) == .success("show [] json=false flags=\n"))
        }
    }

    @Test func fileThatIsNotASocketIsLeftAlone() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            try "precious".write(toFile: path, atomically: false, encoding: .utf8)
            #expect(throws: ControlError.notASocket(path: path)) {
                try ControlServer(path: path, handler: EchoHandler())
            }
            #expect(throws: ControlError.notASocket(path: path)) {
                try ControlClient.send(ControlRequest(command: "show"), to: path)
            }
            #expect(try String(contentsOfFile: path, encoding: .utf8) == "precious")
        }
    }

    @Test func missingSocketNamesTheFix() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let error = #expect(throws: ControlError.self) {
                try ControlClient.send(ControlRequest(command: "dump-flows"), to: path)
            }
            #expect(error == .noServer(path: path))
            #expect(error?.description == "no shunt forwarder is listening on \(path); start one with `shunt forward --control \(path) ...` or pass --control")
        }
    }

    @Test func pathTooLongIsRefused() throws {
        let path = "/tmp/" + String(repeating: "d", count: 120) + "/shunt.ctl"
        #expect(throws: ControlError.pathTooLong(path: path)) { try ControlServer(path: path, handler: EchoHandler()) }
        #expect(throws: ControlError.pathTooLong(path: path)) { try ControlClient.send(ControlRequest(command: "show"), to: path) }
    }

    @Test func socketIsRootOnlyAndItsDirectoryIsCreated() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/run/shunt/shunt.ctl"
            let server = try ControlServer(path: path, handler: EchoHandler())
            defer { server.stop() }
            let socket = try Sys.fileStatus(path)
            #expect(socket.isSocket)
            #expect(socket.permissions == 0o600)
            let parent = try Sys.fileStatus("\(dir)/run/shunt")
            #expect(parent.isDirectory)
            #expect(parent.permissions & 0o700 == 0o700)
            #expect(parent.permissions & 0o022 == 0)
        }
    }

    @Test func silentClientDoesNotHoldUpTheNext() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let server = try ControlServer(path: path, handler: EchoHandler(), requestTimeoutMilliseconds: 200)
            try server.start()
            defer { server.stop() }

            // Connects and sends nothing, not even the end of the stream.
            let silent = try StreamSocket()
            try Sys.connectUnix(silent.fd, path: path)

            let start = Sys.monotonicNanoseconds()
            let response = try ControlClient.send(ControlRequest(command: "show"), to: path, timeoutSeconds: 5)
            let elapsedMs = (Sys.monotonicNanoseconds() - start) / 1_000_000
            #expect(response.ok)
            #expect(elapsedMs < 2000, "the next client waited \(elapsedMs) ms")

            // The silent client was told why it was dropped.
            guard case .complete(let answer) = try silent.readToEnd(limit: 1 << 16, deadline: Sys.monotonicNanoseconds() + 1_000_000_000) else {
                Issue.record("no answer for the silent client")
                return
            }
            let decoded = try WireCoding.decode(ControlResponse.self, from: answer)
            #expect(decoded == .failure("timed out after 200 ms waiting for the request (one JSON line, then end of stream)"))
        }
    }

    @Test func stopRemovesTheSocketFileAndDoesNotWaitForAStuckClient() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let server = try ControlServer(path: path, handler: EchoHandler(), requestTimeoutMilliseconds: 30_000)
            try server.start()
            let silent = try StreamSocket()
            try Sys.connectUnix(silent.fd, path: path)
            usleep(50_000)  // let the server take the connection and wait for its request

            let start = Sys.monotonicNanoseconds()
            server.stop()
            let elapsedMs = (Sys.monotonicNanoseconds() - start) / 1_000_000
            #expect(elapsedMs < 2000, "stop() took \(elapsedMs) ms")
            #expect(!exists(path))
            server.stop()  // idempotent

            #expect(throws: ControlError.noServer(path: path)) {
                try ControlClient.send(ControlRequest(command: "show"), to: path)
            }
            _ = silent
        }
    }

    @Test func releasingTheServerStopsItAndRemovesTheFile() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            do {
                let server = try ControlServer(path: path, handler: EchoHandler())
                try server.start()
                #expect(try ControlClient.send(ControlRequest(command: "show"), to: path).ok)
            }
            #expect(!exists(path))
        }
    }

    @Test func stopLeavesAFileThatIsNoLongerOurs() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let server = try ControlServer(path: path, handler: EchoHandler())
            // Someone removed our socket by hand and another process put its own there.
            try Sys.unlink(path)
            let other = try StreamSocket()
            try Sys.bindUnix(other.fd, path: path)
            server.stop()
            #expect(try Sys.fileStatus(path).isSocket)
        }
    }

    @Test func concurrentClientsAllGetTheirOwnAnswer() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let handler = EchoHandler()
            let server = try ControlServer(path: path, handler: handler)
            try server.start()
            defer { server.stop() }

            let requests = (0..<20).map { ControlRequest(command: "add-flow", arguments: ["priority=\($0),actions=drop"]) }
            let responses = try onThreads(requests.count) { i in
                Result { () throws(ControlError) in try ControlClient.send(requests[i], to: path) }
            }
            for (request, response) in zip(requests, responses) {
                #expect(try response.get() == .success(EchoHandler.echo(request)))
            }
            #expect(Set(handler.requests.map(\.arguments)) == Set(requests.map(\.arguments)))
        }
    }

    @Test func malformedRequestsGetAnErrorResponse() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/shunt.ctl"
            let handler = EchoHandler()
            let server = try ControlServer(path: path, handler: handler)
            try server.start()
            defer { server.stop() }

            func ask(_ text: String) throws -> ControlResponse {
                let answer = try rawExchange(path, Array(text.utf8))
                #expect(answer.hasSuffix("\n") && answer.filter { $0 == "\n" }.count == 1, "one line: \(answer)")
                return try WireCoding.decode(ControlResponse.self, from: Array(answer.utf8))
            }
            let example = "expected one JSON object such as {\"version\":1,\"command\":\"show\"}"
            #expect(try ask("dump-flows\n") == .failure("malformed request: not a JSON object; \(example)"))
            #expect(try ask("{\"arguments\":[]}\n") == .failure("malformed request: \"command\" is missing; \(example)"))
            #expect(try ask("{\"command\":\"show\",\"json\":\"yes\"}") == .failure("malformed request: \"json\" has the wrong type; \(example)"))
            #expect(try ask("{\"version\":2,\"command\":\"show\"}\n") == .failure("unsupported control protocol version 2: this forwarder speaks version 1 (are shunt forward and shunt ctl the same build?)"))
            #expect(handler.requests.isEmpty)

            // Everything but the command may be left out (for socat and friends).
            #expect(try ask("{\"command\":\"show\"}\n") == .success("show [] json=false flags=\n"))
            #expect(handler.requests == [ControlRequest(command: "show")])
        }
    }

    @Test func wireFormatIsOneVersionedJSONLine() throws {
        let request = ControlRequest(command: "del-flows", arguments: ["in_port=1"], flags: ["strict"], json: false)
        #expect(String(decoding: WireCoding.encode(request), as: UTF8.self)
            == "{\"arguments\":[\"in_port=1\"],\"command\":\"del-flows\",\"flags\":[\"strict\"],\"json\":false,\"version\":1}\n")
        #expect(String(decoding: WireCoding.encode(ControlResponse.success("a/b\n")), as: UTF8.self)
            == "{\"exit_code\":0,\"ok\":true,\"output\":\"a/b\\n\",\"version\":1}\n")
        #expect(String(decoding: WireCoding.encode(ControlResponse.failure("bad", exitCode: 2)), as: UTF8.self)
            == "{\"error\":\"bad\",\"exit_code\":2,\"ok\":false,\"output\":\"\",\"version\":1}\n")
    }
}

/// The client against servers that misbehave (played by raw sockets in the test).
@Suite struct ControlClientErrorTests {
    /// Listens on `path` and answers one connection with `reply` (after reading the request).
    private func fakeServer(at path: String, reply: [UInt8], delayMs: UInt32 = 0) throws -> WorkerThread {
        let listener = try Sys.socket(domain: AF_UNIX, type: Int32(SOCK_STREAM.rawValue), protocol: 0)
        try Sys.bindUnix(listener, path: path)
        try Sys.listen(listener, backlog: 1)
        return try WorkerThread(name: "fake-server") {
            defer { Sys.close(listener) }
            guard case .processed(let fd)? = try? Sys.accept(listener) else { return }
            let connection = StreamSocket(adopting: fd)
            _ = try? connection.readToEnd(limit: 1 << 20, deadline: Sys.monotonicNanoseconds() + 5_000_000_000)
            usleep(delayMs * 1000)
            _ = try? connection.writeAll(reply, deadline: Sys.monotonicNanoseconds() + 5_000_000_000)
        }
    }

    @Test func garbageAnswer() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/fake.ctl"
            let thread = try fakeServer(at: path, reply: Array("HTTP/1.0 400 Bad Request\r\n".utf8))
            defer { thread.join() }
            #expect(throws: ControlError.malformedResponse(path: path, detail: "not a control response: HTTP/1.0 400 Bad Request\r\n")) {
                try ControlClient.send(ControlRequest(command: "show"), to: path)
            }
        }
    }

    @Test func noAnswer() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/fake.ctl"
            let thread = try fakeServer(at: path, reply: [])
            defer { thread.join() }
            #expect(throws: ControlError.malformedResponse(path: path, detail: "the forwarder closed the connection without answering")) {
                try ControlClient.send(ControlRequest(command: "show"), to: path)
            }
        }
    }

    @Test func slowAnswerTimesOut() throws {
        try withTempDirectory { dir in
            let path = "\(dir)/fake.ctl"
            let thread = try fakeServer(at: path, reply: WireCoding.encode(ControlResponse.success("late")), delayMs: 1500)
            defer { thread.join() }
            let start = Sys.monotonicNanoseconds()
            let error = #expect(throws: ControlError.self) {
                try ControlClient.send(ControlRequest(command: "show"), to: path, timeoutSeconds: 1)
            }
            #expect(error == .timedOut(path: path, seconds: 1))
            #expect(error?.description == "the shunt forwarder on \(path) did not answer within 1 s")
            let elapsedMs = (Sys.monotonicNanoseconds() - start) / 1_000_000
            #expect(elapsedMs >= 900 && elapsedMs < 1400, "gave up after \(elapsedMs) ms")
        }
    }
}
