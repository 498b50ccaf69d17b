import Foundation
import Glibc
import ShuntTestSupport

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
    private let command: ShuntCommandProcess
    /// This forwarder's own control socket (so tests never meet the default path).
    let controlPath: String
    private static let counter = NSLock()
    nonisolated(unsafe) private static var next = 0

    init(namespace: String, arguments: [String], readyTimeout: Double = 10) throws {
        Self.counter.lock()
        Self.next += 1
        controlPath = "/tmp/shuntt-\(getpid())-\(Self.next).ctl"
        Self.counter.unlock()
        command = try ShuntCommandProcess(namespace: namespace,
                                          arguments: ["forward", "--json", "--control", controlPath] + arguments,
                                          readyTimeout: readyTimeout)
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

    /// What the forwarder wrote to stderr so far.
    var stderr: String { command.child.stderr }

    /// The `{"type":"ready",...}` line the forwarder printed when it started.
    var readyLine: String { (try? command.waitForLine(timeout: 0) { $0.contains("\"type\":\"ready\"") }) ?? "" }

    /// SIGINT, then the final statistics as per-port dictionaries keyed by port name.
    func stop() throws -> FinalStats {
        let (final, status) = try command.stop()
        return FinalStats(object: final, exitStatus: status)
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

    init(object: [String: Any], exitStatus: Int32) {
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
