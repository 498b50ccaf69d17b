import Foundation
import Glibc

/// A `shunt` command with JSON-line output running in the background inside a namespace (e.g.
/// `shunt sink --json`): started, waited for until its ready line, stopped with SIGINT, its
/// final line read back. Killed on deinit if still running (also when a test fails).
final class ShuntCommandProcess {
    let process = Process()
    private let stdout = Pipe()
    private let stderr = Pipe()
    private var buffer = Data()
    private(set) var lines: [String] = []

    init(namespace: String, arguments: [String], readyTimeout: Double = 10) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", namespace, shuntExecutable] + arguments
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try waitForLine(timeout: readyTimeout) { $0.contains("\"type\":\"ready\"") }
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
        throw LabError.timeout("a line from `shunt \(process.arguments?.dropFirst(4).first ?? "")` (stderr: \(err))")
    }

    /// SIGINT, then the `{"type":"final",...}` line parsed, and the exit status.
    func stop() throws -> (final: [String: Any], exitStatus: Int32) {
        kill(process.processIdentifier, SIGINT)
        let line = try waitForLine(timeout: 10) { $0.contains("\"type\":\"final\"") }
        process.waitUntilExit()
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        return (object, process.terminationStatus)
    }
}
