import Foundation
import Glibc
@testable import ShuntControl
import ShuntSystem
import Synchronization

/// A client on a raw socket that does exactly what the test says: sends some bytes, or nothing,
/// ends its side or not, reads or not.
final class RawClient: @unchecked Sendable {
    let socket: StreamSocket

    init(_ path: String) throws {
        socket = try StreamSocket()
        try Sys.connectUnix(socket.fd, path: path)
    }

    func send(_ bytes: [UInt8]) throws {
        let outcome = try socket.writeAll(bytes, deadline: Sys.monotonicNanoseconds() + 2_000_000_000)
        guard case .complete = outcome else { throw SystemError(errno: ETIMEDOUT, call: "RawClient.send") }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Shuts down the write side: the end of the request.
    func end() throws { try Sys.shutdown(socket.fd, how: Int32(SHUT_WR)) }

    /// Whether the server has sent anything or ended its side yet.
    var heardBack: Bool {
        var entry = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) > 0
    }

    /// Everything the server sends up to the end of its side, which must be one response line.
    func answer(withinMs ms: UInt64 = 2000) throws -> ControlResponse {
        let deadline = Sys.monotonicNanoseconds() + ms * 1_000_000
        guard case .complete(let bytes) = try socket.readToEnd(limit: 1 << 20, deadline: deadline) else {
            throw SystemError(errno: ETIMEDOUT, call: "RawClient.answer")
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.hasSuffix("\n"), text.filter({ $0 == "\n" }).count == 1 else {
            throw SystemError(errno: EBADMSG, call: "RawClient.answer: not one line: \(text.prefix(200))")
        }
        return try WireCoding.decode(ControlResponse.self, from: bytes)
    }
}

/// Polls `condition` every 2 ms for up to `ms`; whether it became true.
func waitUntil(ms: UInt64, _ condition: () -> Bool) -> Bool {
    let deadline = Sys.monotonicNanoseconds() + ms * 1_000_000
    while !condition() {
        if Sys.monotonicNanoseconds() >= deadline { return false }
        usleep(2000)
    }
    return true
}

/// A `show` from a well-behaved client: its answer and how long it took, in ms.
func timedShow(_ path: String) throws -> (ControlResponse, UInt64) {
    let start = Sys.monotonicNanoseconds()
    let response = try ControlClient.send(ControlRequest(command: "show"), to: path, timeoutSeconds: 5)
    return (response, (Sys.monotonicNanoseconds() - start) / 1_000_000)
}

/// Runs `body` on a thread whose file-system identity is nobody's (setfsuid and setfsgid act on
/// the calling thread only), so the kernel checks the socket's permissions as for a user that
/// is not root. The thread ends with the test's `body`.
func asNobody<R: Sendable>(_ body: @escaping @Sendable () -> R) throws -> R {
    typealias SetID = @convention(c) (UInt32) -> Int32
    // Glibc's module map leaves out <sys/fsuid.h>.
    guard let setfsuid = dlsym(nil, "setfsuid"), let setfsgid = dlsym(nil, "setfsgid") else {
        throw SystemError(errno: ENOSYS, call: "dlsym(setfsuid)")
    }
    let setUID = unsafeBitCast(setfsuid, to: SetID.self)
    let setGID = unsafeBitCast(setfsgid, to: SetID.self)
    let result = Mutex<R?>(nil)
    let thread = try WorkerThread(name: "as-nobody") {
        _ = setGID(65534)
        _ = setUID(65534)
        let r = body()
        _ = setUID(0)
        _ = setGID(0)
        result.withLock { $0 = r }
    }
    thread.join()
    return result.withLock { $0! }
}

/// A flow table that changes while clients read it. Each `edit` makes a new generation: two
/// adds (the flow numbered by its generation), then a removal of the oldest flow. `show` lists the table with its
/// generation. It notes whether it was ever entered twice at once (the server promises one
/// request at a time).
final class ChangingFlowsHandler: ControlHandler {
    private let table = Mutex<(generation: Int, flows: [Int])>((0, []))
    private let busy = Atomic<Bool>(false)
    private let overlap = Atomic<Bool>(false)

    var overlapped: Bool { overlap.load(ordering: .relaxed) }
    var generation: Int { table.withLock { $0.generation } }

    func handle(_ request: ControlRequest) -> ControlResponse {
        if busy.exchange(true, ordering: .acquiring) { overlap.store(true, ordering: .relaxed) }
        defer { busy.store(false, ordering: .releasing) }
        switch request.command {
        case "edit":
            // The handler, not the writer, numbers the edits: a writer's request that was
            // refused or timed out then leaves no gap between what was applied and `expectedShow`.
            table.withLock { t in
                if t.generation % 3 == 2 {
                    if !t.flows.isEmpty { t.flows.removeFirst() }
                } else {
                    t.flows.append(t.generation)
                }
                t.generation += 1
            }
            return .success("")
        case "show":
            let (generation, flows) = table.withLock { ($0.generation, $0.flows) }
            usleep(100)  // a window for a second request to come in, were the server to allow it
            return .success(Self.show(generation: generation, flows: flows))
        default:
            return .failure("unknown command \(request.command)")
        }
    }

    static func show(generation: Int, flows: [Int]) -> String {
        "generation=\(generation) flows=\(flows.count)\n" + flows.map { "priority=\($0),actions=drop\n" }.joined()
    }

    /// The writer's request: the next edit of the sequence, two adds then a delete.
    static let edit = ControlRequest(command: "edit")

    /// What `show` answers once edits 0..<generation are applied.
    static func expectedShow(generation: Int) -> String {
        var flows: [Int] = []
        for k in 0..<generation {
            if k % 3 == 2 { if !flows.isEmpty { flows.removeFirst() } } else { flows.append(k) }
        }
        return show(generation: generation, flows: flows)
    }
}
