import Foundation
import Glibc

/// The `shunt` executable built next to the test bundle.
let shuntExecutable: String = {
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [here, here.deletingLastPathComponent()] {
        let path = candidate.appendingPathComponent("shunt").path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".build/debug/shunt").path
}()

/// A `shunt forward --json` run inside a namespace, driven like a user would: started, waited
/// for until it says it is ready, stopped with SIGINT, final statistics read from its output.
final class ForwarderProcess {
    let process = Process()
    private let stdout = Pipe()
    private let stderr = Pipe()
    private var buffer = Data()
    private(set) var lines: [String] = []
    /// This forwarder's own control socket (so tests never meet the default path).
    let controlPath: String
    private static let counter = NSLock()
    nonisolated(unsafe) private static var next = 0

    init(namespace: String, arguments: [String], readyTimeout: Double = 10) throws {
        Self.counter.lock()
        Self.next += 1
        controlPath = "/tmp/shuntt-\(getpid())-\(Self.next).ctl"
        Self.counter.unlock()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", namespace, shuntExecutable, "forward", "--json",
                             "--control", controlPath] + arguments
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try waitForLine(timeout: readyTimeout) { $0.contains("\"type\":\"ready\"") }
    }

    /// Runs `shunt ctl --control <this forwarder's socket> ARGS`.
    @discardableResult
    func ctl(_ args: [String], check: Bool = true) throws -> (status: Int32, out: String, err: String) {
        try run([shuntExecutable, "ctl", "--control", controlPath] + args, check: check)
    }

    /// `shunt ctl show --json`, parsed.
    func show() throws -> [String: Any] {
        let out = try ctl(["show", "--json"]).out
        return try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    @discardableResult
    func waitForLine(timeout: Double, _ predicate: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        let fd = stdout.fileHandleForReading.fileDescriptor
        while Date() < deadline {
            if let line = lines.first(where: predicate) { return line }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 100) > 0 {
                var chunk = [UInt8](repeating: 0, count: 65536)
                let n = read(fd, &chunk, chunk.count)
                if n <= 0 {
                    if !process.isRunning { break }
                    continue
                }
                buffer.append(contentsOf: chunk[0..<n])
                while let nl = buffer.firstIndex(of: 0x0A) {
                    lines.append(String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self))
                    buffer.removeSubrange(buffer.startIndex...nl)
                }
            } else if !process.isRunning {
                break
            }
        }
        if let line = lines.first(where: predicate) { return line }
        let err = String(decoding: stderr.fileHandleForReading.availableData, as: UTF8.self)
        throw LabError.timeout("a line from shunt forward (stderr: \(err))")
    }

    /// SIGINT, then the final statistics as per-port dictionaries keyed by port name.
    func stop() throws -> FinalStats {
        kill(process.processIdentifier, SIGINT)
        let line = try waitForLine(timeout: 10) { $0.contains("\"type\":\"final\"") }
        process.waitUntilExit()
        return try FinalStats(json: line, exitStatus: process.terminationStatus)
    }
}

/// A number at a path of keys in parsed JSON (0 when absent).
func jsonNumber(_ object: [String: Any], _ path: String...) -> UInt64 {
    var current: Any? = object
    for key in path { current = (current as? [String: Any])?[key] }
    return (current as? NSNumber)?.uint64Value ?? 0
}

struct FinalStats {
    let ports: [String: [String: Any]]
    let exitStatus: Int32

    init(json: String, exitStatus: Int32) throws {
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        var ports: [String: [String: Any]] = [:]
        for p in object["ports"] as! [[String: Any]] { ports[p["port"] as! String] = p }
        self.ports = ports
        self.exitStatus = exitStatus
    }

    func value(_ port: String, _ key: String) -> UInt64 { (ports[port]?[key] as? NSNumber)?.uint64Value ?? 0 }
    func drop(_ port: String, _ direction: String, _ reason: String) -> UInt64 {
        ((ports[port]?[direction] as? [String: Any])?[reason] as? NSNumber)?.uint64Value ?? 0
    }
}
