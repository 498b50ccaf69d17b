import Foundation
import Testing

/// Bad input gets one clear line and a non-zero exit, and nothing is left running.
@Suite("shunt forward refuses bad input", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason))
struct CommandLineTests {
    func forward(_ lab: Lab, _ args: [String], prefix: [String] = []) throws -> (status: Int32, err: String) {
        let r = try run(prefix + ["ip", "netns", "exec", lab.fwd, shuntExecutable, "forward", "--duration", "1"] + args, check: false)
        return (r.status, r.err)
    }

    @Test func unknownInterface() throws {
        let lab = try Lab()
        let r = try forward(lab, ["--port", "p0", "--port", "nosuch9"])
        #expect(r.status != 0)
        #expect(r.err.contains("no interface named 'nosuch9'"))
    }

    @Test func interfaceDown() throws {
        let lab = try Lab()
        try run(["ip", "-n", lab.fwd, "link", "set", "p1", "down"])
        let r = try forward(lab, ["--port", "p0", "--port", "p1"])
        #expect(r.status != 0)
        #expect(r.err.contains("'p1' is down") && r.err.contains("ip link set p1 up"))
    }

    @Test func samePortTwice() throws {
        let lab = try Lab()
        let r = try forward(lab, ["--port", "p0", "--port", "p0"])
        #expect(r.status != 0)
        #expect(r.err.contains("'p0' is given twice"))
    }

    @Test func tooFewPortsAndOddPairs() throws {
        let lab = try Lab(["a", "b", "c"])
        let one = try forward(lab, ["--port", "p0"])
        #expect(one.status != 0 && one.err.contains("at least two ports"))
        let three = try forward(lab, ["--port", "p0", "--port", "p1", "--port", "p2", "--mode", "xconnect"])
        #expect(three.status != 0 && three.err.contains("pairs ports"))
    }

    @Test func mtuLargerThanTheRingFrame() throws {
        let lab = try Lab(mtu: 9000)
        let r = try forward(lab, ["--port", "p0", "--port", "p1"])
        #expect(r.status != 0)
        #expect(r.err.contains("MTU 9000") && r.err.contains("--frame-size"))
        // With frames that fit, the same ports work.
        let ok = try forward(lab, ["--port", "p0", "--port", "p1", "--frame-size", "16384", "--block-size", "65536"])
        #expect(ok.status == 0, "\(ok.err)")
    }

    @Test func missingCapabilities() throws {
        let lab = try Lab()
        let r = try forward(lab, ["--port", "p0", "--port", "p1"],
                            prefix: ["setpriv", "--bounding-set", "-net_raw,-net_admin", "--inh-caps", "-all"])
        #expect(r.status != 0)
        #expect(r.err.contains("CAP_NET_RAW") && r.err.contains("root"))
    }

    @Test func badGeometry() throws {
        let lab = try Lab()
        let r = try forward(lab, ["--port", "p0", "--port", "p1", "--block-size", "5000"])
        #expect(r.status != 0)
        #expect(r.err.contains("not a multiple of the 4096-byte page size"))
    }

    @Test func signalStopsCleanlyWithFinalStatistics() throws {
        let lab = try Lab()
        let fwd = try ForwarderProcess(namespace: lab.fwd, arguments: ["--port", "p0", "--port", "p1", "--workers", "2"])
        let stats = try fwd.stop()
        #expect(stats.exitStatus == 0)
        #expect(stats.ports.keys.sorted() == ["p0", "p1"])
    }
}
