import Foundation
import Glibc
import ShuntTestSupport

/// A `shunt` command with JSON-line output running in the background inside a namespace (e.g.
/// `shunt sink --json`): started, waited for until its ready line, stopped with SIGINT, its
/// final line read back. Killed on deinit if still running (also when a test fails).
final class ShuntCommandProcess {
    let child: SpawnedProcess
    private let subcommand: String
    private var stdoutFile: FileHandle?
    private var buffer = Data()
    private(set) var lines: [String] = []

    init(namespace: String, arguments: [String], readyTimeout: Double = 10) throws {
        subcommand = arguments.first ?? ""
        child = try SpawnedProcess(["ip", "netns", "exec", namespace, shuntExecutable] + arguments)
        try waitForLine(timeout: readyTimeout) { $0.contains("\"type\":\"ready\"") }
    }

    var pid: Int32 { child.pid }

    /// Reads what the child wrote to its output file since the last call, split into lines.
    private func readNewLines() {
        if stdoutFile == nil { stdoutFile = FileHandle(forReadingAtPath: child.stdoutPath) }
        guard let file = stdoutFile, let data = try? file.readToEnd(), !data.isEmpty else { return }
        buffer.append(data)
        while let nl = buffer.firstIndex(of: 0x0A) {
            lines.append(String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self))
            buffer.removeSubrange(buffer.startIndex...nl)
        }
    }

    @discardableResult
    func waitForLine(timeout: Double, _ predicate: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let running = child.isRunning  // before reading, so a line written just before exit is seen
            readNewLines()
            if let line = lines.first(where: predicate) { return line }
            if !running || Date() >= deadline { break }
            usleep(10_000)
        }
        throw LabError.timeout("a line from `shunt \(subcommand)` (stderr: \(child.stderr))")
    }

    /// SIGINT, then the `{"type":"final",...}` line parsed, and the exit status.
    func stop() throws -> (final: [String: Any], exitStatus: Int32) {
        child.signal(SIGINT)
        let line = try waitForLine(timeout: 10) { $0.contains("\"type\":\"final\"") }
        let status = child.wait(timeout: 10)
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        return (object, status)
    }
}
