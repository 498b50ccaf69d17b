import Foundation
import ShuntTestSupport
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

    @Test func badFlowFileNamesLineAndColumn() throws {
        let lab = try Lab()
        let path = NSTemporaryDirectory() + "shuntt-badflows-\(getpid()).txt"
        try "# two good flows, then a bad one\ntable=0,priority=1,in_port=1,actions=output:2\ntable=0,in_port=2,dl_src=fa:16:3e:zz:13:af,actions=output:1\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try forward(lab, ["--port", "p0", "--port", "p1", "--flows", path, "--no-control"])
        #expect(r.status == 2)
        #expect(r.err.contains("line 3, column 26"), "\(r.err)")
        #expect(r.err.contains("fa:16:3e:zz:13:af"), "\(r.err)")
        let missing = try forward(lab, ["--port", "p0", "--port", "p1", "--flows", "/nonexistent/flows", "--no-control"])
        #expect(missing.status == 2 && missing.err.contains("cannot read flow file /nonexistent/flows"))
    }

    @Test func flowOptionsNeedFlowMode() throws {
        let lab = try Lab()
        let r = try forward(lab, ["--port", "p0", "--port", "p1", "--mode", "xconnect", "--datapath", "xdp"])
        #expect(r.status != 0 && r.err.contains("cannot be combined with --mode xconnect"))
    }

    /// shunt ctl against a forwarder: a bad flow is refused with its column and changes nothing.
    @Test func ctlRejectsBadFlowsAndAppliesNothing() throws {
        let lab = try Lab()
        let fwd = try ForwarderProcess(namespace: lab.fwd, arguments: ["--port", "p0", "--port", "p1", "--datapath", "afpacket"])
        let before = try fwd.ctl(["dump-flows"]).out
        let bad = try fwd.ctl(["add-flow", "table=0,priority=5,in_port=1,actions=output:2,bogus_action"], check: false)
        #expect(bad.status == 2 && bad.err.contains("column"), "\(bad.err)")
        let file = NSTemporaryDirectory() + "shuntt-ctlflows-\(getpid()).txt"
        try "table=0,priority=7,in_port=1,actions=output:2\ntable=0,priority=8,in_port=9999999999,actions=drop\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let badFile = try fwd.ctl(["add-flows", file], check: false)
        #expect(badFile.status == 2 && badFile.err.contains("line 2"), "\(badFile.err)")
        #expect(try fwd.ctl(["dump-flows"]).out == before, "a refused edit must change nothing")
        try fwd.ctl(["add-flow", "table=0,priority=5,in_port=p0,actions=output:p1"])
        #expect(try fwd.ctl(["dump-flows"]).out.contains("priority=5,in_port=1 actions=output:2"))
        try fwd.ctl(["del-flows", "--strict", "table=0,priority=5,in_port=1"])
        #expect(try fwd.ctl(["dump-flows"]).out == before)
        _ = try fwd.stop()
    }
}

/// `shunt gen` refuses bad input with one line on stderr and a non-zero exit, before sending.
@Suite("shunt gen refuses bad input", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason))
struct GenCommandLineTests {
    func gen(_ lab: Lab, _ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try run(["timeout", "-s", "KILL", "30", "ip", "netns", "exec", lab.ns("gen"), shuntExecutable, "gen",
                 "--port", lab.interface("gen"), "--count", "10"] + args, check: false)
    }

    /// One line, "shunt gen: ...", containing `text`; non-zero exit, nothing on stdout.
    func expectRefused(_ r: (status: Int32, out: String, err: String), _ text: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        let lines = r.err.split(separator: "\n")
        #expect(r.status != 0, "exit \(r.status)", sourceLocation: sourceLocation)
        #expect(lines.count == 1 && lines[0].hasPrefix("shunt gen: ") && r.err.contains(text), "\(r.err)",
                sourceLocation: sourceLocation)
        #expect(!r.out.contains("\"type\":\"final\""), sourceLocation: sourceLocation)
    }

    @Test func badInput() throws {
        let lab = try Lab(["gen"])
        let cases: [([String], String)] = [
            (["--port", "nosuch9"], "no interface named 'nosuch9'"),
            (["--rate", "0"], "--rate must be more than 0"),
            (["--engine", "xdp", "--rate", "50000000"], "beyond what --engine xdp can pace"),
            (["--rate", "50000000"], "beyond what --engine auto can pace"),
            (["--engine", "afxdp", "--rate", "4000000"], "beyond what --engine afxdp can pace"),
            (["--engine", "ring", "--rate", "3000000"], "beyond what --engine ring can pace"),
            (["--engine", "xdp", "--imix"], "--imix needs --engine afxdp or ring"),
            (["--size", "59"], "--size must be between 60 and 9000"),
            (["--size", "9001"], "--size must be between 60 and 9000"),
            (["--size", "1515"], "does not fit gen0's MTU 1500"),
            (["--engine", "ring", "--imix", "--size", "100"], "--imix or --size, not both"),
            (["--src-port", "2000-1000"], "--src-port: reversed range"),
            (["--dst-ip", "10.0.0.9-10.0.0.1"], "--dst-ip: reversed range"),
            (["--dst-ip", "10.0.0"], "--dst-ip: not an IPv4 address"),
            (["--src-port", "1-2-3"], "--src-port: malformed range"),
            (["--flows", "4", "--src-port", "1-2"], "give one of them"),
            (["--src-port", "0-65535", "--dst-port", "0-65535"], "at most 1048576"),
            (["--threads", "4096"], "--threads must be between 1 and the number of CPUs"),
            (["--count", "1", "--threads", "2"], "at least 1 per thread"),
            (["--src-ip", "10.0.0.1", "--dst-ip", "fd00::2"], "--src-ip 10.0.0.1 is IPv4 but the frames are IPv6"),
            (["--ipv6", "--dst-ip", "10.0.0.2"], "do not mix IPv4 and IPv6"),
            (["--ipv6", "--size", "77"], "an IPv6 frame needs at least 78 bytes"),
            (["--ipv6", "--engine", "ring", "--imix"], "--imix with IPv6"),
            (["--dst-ip", "fd00::1-fd01::1"], "varies more than the last 32 bits"),
            (["--src-ip", "fd00::1::2"], "--src-ip: not an IPv6 address"),
        ]
        for (args, text) in cases {
            expectRefused(try gen(lab, args), text)
        }
    }

    /// Jumbo frames: the xdp engine's live frames end at 3408 bytes (a page) and the afxdp
    /// engine's at 4096 (a UMEM chunk), each refusal pointing to the ring engine, which sends up
    /// to the MTU (9000 + 14 here, capped at 9000). auto picks an engine that takes the size and
    /// says which on one line.
    @Test func jumboFramesNeedTheRingEngine() throws {
        let lab = try Lab(["gen"], mtu: 9000)
        expectRefused(try gen(lab, ["--engine", "xdp", "--size", "4000"]), "use --engine ring")
        expectRefused(try gen(lab, ["--engine", "afxdp", "--size", "4097"]), "use --engine ring")
        let ok = try gen(lab, ["--size", "9000", "--engine", "ring"])
        #expect(ok.status == 0 && ok.out.contains("\"sent\":10"), "\(ok.err)")
        let auto = try gen(lab, ["--size", "9000"])
        #expect(auto.status == 0 && auto.out.contains("\"sent\":10") && auto.out.contains("\"engine\":\"ring\""), "\(auto.err)")
        #expect(auto.err.contains("9000-byte frames are beyond XDP live frames") && auto.err.contains("using the ring engine"),
                "\(auto.err)")
        if GeneratorEngines.probe.afxdpAvailable {
            let chunk = try gen(lab, ["--size", "4096"])
            #expect(chunk.status == 0 && chunk.out.contains("\"sent\":10") && chunk.out.contains("\"engine\":\"afxdp\""),
                    "\(chunk.err)")
        }
        let page = try gen(lab, ["--size", "3408"])
        #expect(page.status == 0 && page.out.contains("\"sent\":10"), "\(page.err)")
        #expect(page.out.contains("\"engine\":\"\(GeneratorEngines.probe.auto)\""), "\(page.out)")
    }

    /// `--engine auto` says on one line which engine it took and why, and the JSON names it;
    /// `--list-engines` reports the same choice.
    @Test func autoSaysWhichEngineAndWhy() throws {
        let lab = try Lab(["gen"])
        let r = try gen(lab, [])
        let expected = GeneratorEngines.probe.auto
        #expect(r.status == 0 && r.out.contains("\"engine\":\"\(expected)\"") && r.out.contains("\"sent\":10"), "\(r)")
        let lines = r.err.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("shunt gen: ") && lines[0].hasSuffix("using the \(expected) engine"),
                "\(r.err)")
        if !GeneratorEngines.liveFramesAllowed {
            #expect(lines.first?.contains("XDP live frames refused by this kernel") == true, "\(r.err)")
        }
        let list = try run(["ip", "netns", "exec", lab.ns("gen"), shuntExecutable, "gen", "--list-engines",
                            "--port", lab.interface("gen")])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(list.out.utf8)) as? [String: Any])
        #expect(object["type"] as? String == "engines" && object["auto"] as? String == expected, "\(list.out)")
        #expect((object["ring"] as? [String: Any])?["available"] as? Bool == true)
    }

    /// An engine named on the command line that cannot run here is one line and exit 2, never a
    /// silent fallback: xdp where live frames are refused, afxdp on a queue the veth lacks.
    @Test func aNamedEngineThatCannotRunIsRefused() throws {
        let lab = try Lab(["gen"])
        if !GeneratorEngines.liveFramesAllowed {
            let r = try gen(lab, ["--engine", "xdp"])
            expectRefused(r, "--engine xdp: XDP live frames refused by this kernel")
            #expect(r.status == 2)
        }
        let r = try gen(lab, ["--engine", "afxdp", "--threads", "2"])
        expectRefused(r, "--engine afxdp:")
        #expect(r.status == 2 && r.err.contains("no queue 1"), "\(r.err)")
    }
}
