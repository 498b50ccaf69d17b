import Foundation
@testable import ShuntControl
import ShuntSystem
import Synchronization
import Glibc

/// The other side of the protocol under test: answers each request with a line that echoes it,
/// and keeps every request it got.
final class EchoHandler: ControlHandler {
    private let received = Mutex<[ControlRequest]>([])
    private let delaySeconds: Double

    init(delaySeconds: Double = 0) { self.delaySeconds = delaySeconds }

    var requests: [ControlRequest] { received.withLock { $0 } }

    func handle(_ request: ControlRequest) -> ControlResponse {
        received.withLock { $0.append(request) }
        switch request.command {
        case "fail":
            return .failure("no such table: \(request.arguments.first ?? "")", exitCode: 2)
        case "slow":
            Thread.sleep(forTimeInterval: delaySeconds)
            return .success("slow done\n")
        case "size":
            return .success("\(request.arguments.map(\.utf8.count).reduce(0, +))")
        case "big":
            return .success(String(repeating: "x", count: Int(request.arguments.first ?? "") ?? 0))
        default:
            return .success(Self.echo(request))
        }
    }

    static func echo(_ request: ControlRequest) -> String {
        "\(request.command) [\(request.arguments.joined(separator: "|"))] json=\(request.json) flags=\(request.flags.joined(separator: ","))\n"
    }
}

/// A fresh directory under /tmp, removed afterwards.
func withTempDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let dir = "/tmp/shunt-ctl-test-\(UInt32.random(in: 0...UInt32.max))-\(ProcessInfo.processInfo.processIdentifier)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

/// Whether anything (of any type) is at `path`.
func exists(_ path: String) -> Bool {
    (try? Sys.fileStatus(path)) != nil
}

/// A raw connection to `path`: sends `bytes` as they are (then end of stream unless
/// `finish` is false), returns everything the server sends back.
func rawExchange(_ path: String, _ bytes: [UInt8], finish: Bool = true, timeoutSeconds: UInt64 = 5) throws -> String {
    let socket = try StreamSocket()
    try Sys.connectUnix(socket.fd, path: path)
    let deadline = Sys.monotonicNanoseconds() + timeoutSeconds * 1_000_000_000
    _ = try socket.writeAll(bytes, deadline: deadline)
    if finish { try Sys.shutdown(socket.fd, how: Int32(SHUT_WR)) }
    guard case .complete(let answer) = try socket.readToEnd(limit: 1 << 20, deadline: deadline) else {
        throw SystemError(errno: ETIMEDOUT, call: "rawExchange")
    }
    return String(decoding: answer, as: UTF8.self)
}

/// Runs `body(i)` for i in 0..<count on `count` threads at once, and returns the results in order.
func onThreads<R: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> R) throws -> [R] {
    let results = Mutex<[Int: R]>([:])
    let threads = try (0..<count).map { i in
        try WorkerThread(name: "client-\(i)") {
            let r = body(i)
            results.withLock { $0[i] = r }
        }
    }
    threads.forEach { $0.join() }
    return results.withLock { r in (0..<count).map { r[$0]! } }
}
