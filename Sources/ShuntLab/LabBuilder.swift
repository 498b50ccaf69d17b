import ShuntSystem

/// Builds and removes a `LabTopology` with a command runner the caller chooses (the bench's,
/// which records every command; the tests'; `LabBuilder.run` for `shunt lab`).
public struct LabBuilder {
    public typealias Runner = ([String]) throws -> Void

    public let topology: LabTopology
    private let runner: Runner

    public init(_ topology: LabTopology, runner: @escaping Runner = LabBuilder.run) {
        self.topology = topology
        self.runner = runner
    }

    /// Builds the lab; on failure removes what was built and rethrows.
    public func up() throws {
        do {
            for command in topology.upCommands() { try runner(command) }
        } catch {
            down()
            throw error
        }
    }

    /// Removes the lab. Never throws: used in cleanup, also of a half-built lab.
    public func down() {
        for command in topology.downCommands() { _ = try? runner(command) }
    }

    /// A command that failed: its line, exit status and standard error.
    public struct CommandFailed: Error, CustomStringConvertible {
        public let command: [String]
        public let status: Int32
        public let stderr: String
        public var description: String { "`\(command.joined(separator: " "))` exited with \(status): \(stderr)" }
    }

    /// Runs `argv` (found on PATH) and waits; throws when it fails.
    public static func run(_ argv: [String]) throws {
        guard let path = Sys.findExecutable(argv[0]) else {
            throw CommandFailed(command: argv, status: 127, stderr: "\(argv[0]) not found on PATH")
        }
        let err = "/tmp/shunt-lab-\(Sys.processID())-\(Sys.monotonicNanoseconds()).err"
        defer { try? Sys.unlink(err) }
        let status: Int32
        do {
            let pid = try Sys.spawn(path, Array(argv.dropFirst()), stdout: "/dev/null", stderr: err)
            status = Sys.reap(pid, block: true)?.status ?? -1
        } catch {
            throw CommandFailed(command: argv, status: 126, stderr: "\(error)")
        }
        guard status == 0 else {
            let text = (try? Sys.readWholeFile(err)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            throw CommandFailed(command: argv, status: status, stderr: text.trimmingSuffix("\n"))
        }
    }
}

extension String {
    func trimmingSuffix(_ s: String) -> String { hasSuffix(s) ? String(dropLast(s.count)) : self }
}
