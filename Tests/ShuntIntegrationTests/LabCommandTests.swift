import Foundation
import ShuntTestSupport
import Testing

/// `shunt lab`, the shell front of the one lab description: it builds the benchmarks' lab and
/// removes all of it again.
@Suite("shunt lab builds and removes the namespace lab", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason))
struct LabCommandTests {
    static func namespaces(_ prefix: String) throws -> [String] {
        try run(["ip", "netns", "list"]).out.split(separator: "\n").map { String($0.split(separator: " ")[0]) }
            .filter { $0.hasPrefix(prefix) }.sorted()
    }

    @Test func upThenDown() throws {
        let prefix = "\(testNamespacePrefix ?? "shuntt")\(getpid())lab-"
        defer { _ = try? run([shuntExecutable, "lab", "down", "--prefix", prefix], check: false) }
        try run([shuntExecutable, "lab", "up", "--prefix", prefix, "--monitor-ports", "1"])
        #expect(try Self.namespaces(prefix) == ["fwd", "gen", "mon", "sink"].map { prefix + $0 })
        let addr = try run(["ip", "-n", prefix + "sink", "-br", "addr", "show", "sink0"]).out
        #expect(addr.contains("10.203.0.2/24") && addr.contains("UP"), "\(addr)")
        let gro = try run(["ip", "netns", "exec", prefix + "fwd", "ethtool", "-k", "fwd0"]).out
        #expect(gro.contains("generic-receive-offload: on"))
        // The sides reach each other through fwd only when a forwarder runs: here they do not.
        #expect(try run(["ip", "netns", "exec", prefix + "gen", "ping", "-c", "1", "-W", "1", "10.203.0.2"], check: false).status != 0)
        try run([shuntExecutable, "lab", "down", "--prefix", prefix])
        #expect(try Self.namespaces(prefix).isEmpty)
    }

    @Test func badPrefixIsRefused() throws {
        let r = try run([shuntExecutable, "lab", "up", "--prefix", "has space"], check: false)
        #expect(r.status != 0 && r.err.contains("--prefix"))
    }
}
