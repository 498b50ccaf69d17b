import ShuntPipeline
import ShuntRing
import Testing

@testable import ShuntForwarder

/// The plan is checked without the system: every mistake in flags, flow files and the YAML
/// configuration is one line, found here, before anything is opened.
@Suite("Forwarder plan: bad input")
struct ForwarderPlanTests {
    static func request(_ change: (inout ForwarderRequest) -> Void = { _ in }) -> ForwarderRequest {
        var r = ForwarderRequest()
        r.ports = ["p0", "p1"]
        change(&r)
        return r
    }

    /// The first problem `make` finds, or "none".
    static func problem(_ change: (inout ForwarderRequest) -> Void) -> String {
        do throws(PlanError) {
            _ = try ForwarderPlan.make(request(change))
            return "none"
        } catch { return error.description }
    }

    static func config(_ yaml: String) -> (inout ForwarderRequest) -> Void {
        { $0.configFile = NamedText(path: "lab.yaml", text: yaml) }
    }

    static let tunnel = "vx1,local=192.0.2.1,remote=192.0.2.2,dev=p1"

    @Test func defaultsAndModes() throws {
        #expect(try ForwarderPlan.make(Self.request()).mode == .xconnect)
        #expect(try ForwarderPlan.make(Self.request { $0.ports = ["a", "b", "c"] }).mode == .normal)
        let flows = try ForwarderPlan.make(Self.request { $0.datapath = .xdp; $0.fixPeers = true })
        #expect(flows.mode == .flows && flows.datapath.kind == .xdp && flows.flowTables == nil)
        let tunnel = try ForwarderPlan.make(Self.request { $0.vxlan = [Self.tunnel] })
        #expect(tunnel.mode == .flows && tunnel.portNames == ["p0", "p1", "vx1"] && tunnel.tunnels[0].port == 3)
        let low = try ForwarderPlan.make(Self.request { $0.lowLatency = true })
        #expect(low.ring.version == .v2 && low.ring.rx.blockTimeoutMs == 0)
        // The default ring mode (issue 14): V2 RX with 32768 frames, sendmmsg TX.
        let ring = try ForwarderPlan.make(Self.request()).ring
        #expect(ring.version == .v2 && ring.rx.blockCount == 1024 && ring.rx.frameCount == 32768 && ring.transmit == .copy)
        let v3 = try ForwarderPlan.make(Self.request { $0.ringVersion = .v3; $0.transmit = .ring }).ring
        #expect(v3.version == .v3 && v3.rx.blockCount == 64 && v3.rx.blockTimeoutMs == 1 && v3.transmit == .ring)
        #expect(try ForwarderPlan.make(Self.request { $0.blockCount = 32 }).ring.rx.blockCount == 32)
    }

    @Test func flagMistakes() {
        let cases: [((inout ForwarderRequest) -> Void, String)] = [
            ({ $0.ports = [] }, "give the interfaces to forward between: --port IF --port IF (or bridges in --config FILE)"),
            ({ $0.workers = 0 }, "--workers must be between 1 and 64, got 0"),
            ({ $0.workers = 65 }, "--workers must be between 1 and 64, got 65"),
            ({ $0.macAgingSeconds = 0 }, "--mac-aging must be more than 0"),
            ({ $0.txFrames = 0 }, "--tx-frames must be at least 1"),
            ({ $0.lowLatency = true; $0.ringVersion = .v3 }, "--low-latency uses TPACKET_V2 rings; drop --ring-version v3"),
            ({ $0.mode = .xconnect; $0.datapath = .afpacket },
             "--flows, --groups and --datapath run flow tables; they cannot be combined with --mode xconnect"),
            ({ $0.cacheSize = 0 }, "--cache-size must be between 1 and 16777216"),
            ({ $0.maxFlows = 2_000_000 }, "--max-flows must be between 1 and 1048576"),
            ({ $0.upcallBudget = 0 }, "--upcall-budget must be at least 1 per second"),
            ({ $0.idleTimeoutSeconds = 0 }, "--idle-timeout must be more than 0 seconds"),
            ({ $0.fixPeers = true }, "--fix-peers is for --datapath xdp"),
            ({ $0.mode = .normal; $0.mirrors = ["m,src=p0,to=p1"] },
             "mirror sessions (--mirror) run on flow tables (the default table is NORMAL); drop --mode normal"),
            ({ $0.mode = .xconnect; $0.vxlan = [Self.tunnel] },
             "tunnel ports (--vxlan) run on flow tables (the default table is NORMAL); drop --mode xconnect"),
        ]
        for (change, message) in cases { #expect(Self.problem(change) == message) }
    }

    @Test func portMistakes() {
        #expect(Self.problem { $0.ports = ["p0", "p0"] } == "port 'p0' is given twice; each interface can be a port once")
        #expect(Self.problem { $0.ports = ["p0"] } == "normal mode needs at least two ports, got 1; give another with --port IF")
        #expect(Self.problem { $0.ports = ["p0"]; $0.datapath = .afpacket }
            == "flows mode needs at least two ports, got 1; give another with --port IF")
        #expect(Self.problem { $0.ports = ["a", "b", "c"]; $0.mode = .xconnect }
            == "xconnect pairs ports (1<->2, 3<->4, ...) but 3 ports were given; add or remove one, or use --mode normal")
        #expect(Self.problem { $0.ports = (0..<70).map { "p\($0)" } }.hasPrefix("at most 64 ports (interfaces and tunnels) are supported, got 70"))
    }

    @Test func ringMistakes() {
        #expect(Self.problem { $0.blockSize = 5000 } == "invalid RX ring: block size 5000 is not a multiple of the 4096-byte page size")
        #expect(Self.problem { $0.frameSize = 100 }.hasPrefix("invalid RX ring: "))
        #expect(Self.problem { $0.ringVersion = .v3; $0.blockTimeoutMs = 0 }.hasPrefix("invalid RX ring: "))
        #expect(Self.problem { $0.blockTimeoutMs = 0 } == "none")  // the default, V2, has no block timeout
        #expect(Self.problem { $0.lowLatency = true; $0.blockTimeoutMs = 0 } == "none")  // V2 has no block timeout
    }

    @Test func flowFileErrorsNameTheFileAndLine() {
        let bad = Self.problem { $0.flowFile = NamedText(path: "f.txt", text: "priority=1,actions=output:1\nnot a flow\n") }
        #expect(bad.hasPrefix("f.txt: ") && bad.contains("line 2"), "\(bad)")
        let port = Self.problem { $0.flowFile = NamedText(path: "f.txt", text: "in_port=p9,actions=drop\n") }
        #expect(port.hasPrefix("f.txt: ") && port.contains("p9"), "\(port)")
        let tunnelPort = Self.problem {
            $0.vxlan = [Self.tunnel]
            $0.flowFile = NamedText(path: "f.txt", text: "in_port=vx1,actions=output:p0\n")
        }
        #expect(tunnelPort == "none")
    }

    @Test func tunnelMistakesNameWhereTheyCameFrom() {
        #expect(Self.problem { $0.vxlan = ["vx1,local=192.0.2.1,remote=192.0.2.300,dev=p1"] }
            == "--vxlan: tunnel vx1: remote=192.0.2.300 is not an IPv4 address")
        #expect(Self.problem { $0.vxlan = ["vx1,local=192.0.2.1,remote=192.0.2.2,dev=eth9"] }.hasPrefix(
            "--vxlan: tunnel vx1: dev=eth9 is not one of the --port interfaces"))
        #expect(Self.problem { $0.vxlan = ["p0,local=192.0.2.1,remote=192.0.2.2,dev=p1"] }
            == "--vxlan: tunnel p0: the name is already a port or another tunnel")
        #expect(Self.problem(Self.config("tunnels:\n  - name: vx1\n    local: 192.0.2.1\n    remote: 192.0.2.2\n    dev: eth9\n"))
            .hasPrefix("lab.yaml: tunnel vx1: dev=eth9"))
    }

    /// `--neigh-reachable`: a tunnel setting, in range; 30 s when not given.
    @Test func neighbourReachableTime() throws {
        #expect(try ForwarderPlan.make(Self.request { $0.vxlan = [Self.tunnel] }).neighbourReachableMs == 30_000)
        #expect(try ForwarderPlan.make(Self.request { $0.vxlan = [Self.tunnel]; $0.neighbourReachableSeconds = 2 })
            .neighbourReachableMs == 2000)
        #expect(Self.problem { $0.neighbourReachableSeconds = 2 }
            == "--neigh-reachable is for tunnel ports (--vxlan, or vxlan ports in --config); there are none")
        #expect(Self.problem { $0.vxlan = [Self.tunnel]; $0.neighbourReachableSeconds = 0 }
            == "--neigh-reachable must be between 0.1 and 3600 seconds, got 0.0")
        #expect(Self.problem { $0.vxlan = [Self.tunnel]; $0.neighbourReachableSeconds = 7200 }
            == "--neigh-reachable must be between 0.1 and 3600 seconds, got 7200.0")
    }

    @Test func mirrorMistakes() {
        #expect(Self.problem { $0.mirrors = ["m,src=p7,to=p1"] }.contains("p7"))
        #expect(Self.problem { $0.mirrors = ["m,to=p1"] }.contains("src"))
        #expect(Self.problem { $0.mirrors = ["m,src=p0,to=p1", "m,src=p1,to=p0"] }.contains("m"))
    }

    /// Every message of the YAML configuration file.
    @Test func configurationFileMistakes() {
        let cases: [(String, String)] = [
            ("tunnels: [\n", "lab.yaml: not valid YAML"),
            ("- a\n", "lab.yaml: the top level must be a mapping (e.g. `tunnels:`)"),
            ("bridges: []\n", "lab.yaml: bridges must be a list of mappings"),
            ("switches: []\n", "lab.yaml: unknown setting 'switches' (known: bridges, tunnels, mirrors)"),
            ("tunnels: 3\n", "lab.yaml: tunnels must be a list of mappings"),
            ("tunnels: [3]\n", "lab.yaml: tunnels[0] must be a mapping"),
            ("tunnels:\n  - local: 192.0.2.1\n", "lab.yaml: tunnels[0]: name is missing"),
            ("tunnels:\n  - name: vx1\n    ttl: true\n", "lab.yaml: tunnel vx1: ttl takes a value, not true"),
            ("tunnels:\n  - name: vx1\n    local: [1, 2]\n", "lab.yaml: tunnel vx1: local must be a single value"),
            ("tunnels:\n  - name: vx1\n    local: 192.0.2.1\n    remote: 192.0.2.2\n    dev: p1\n    vni: -1\n",
             "lab.yaml: tunnel vx1: vni=-1 must be"),
            ("mirrors: {}\n", "lab.yaml: mirrors must be a list of mappings"),
            ("mirrors: [x]\n", "lab.yaml: mirrors[0] must be a mapping"),
            ("mirrors:\n  - src: p0\n", "lab.yaml: mirrors[0]: name is missing"),
            ("mirrors:\n  - name: m\n    src: []\n    to: p1\n", "lab.yaml: mirror m: src must be a port name or a list of port names"),
            ("mirrors:\n  - name: m\n    src: p0\n    to: {a: 1}\n", "lab.yaml: mirror m: to must be a single value"),
        ]
        for (yaml, message) in cases {
            let p = Self.problem(Self.config(yaml))
            #expect(p.hasPrefix(message), "\(yaml): \(p)")
        }
        let good = Self.config("tunnels:\n  - name: vx1\n    local: 192.0.2.1\n    remote: 192.0.2.2\n    dev: p1\n"
            + "mirrors:\n  - name: m\n    src: [p0, vx1]\n    to: p1\n")
        #expect(Self.problem(good) == "none")
    }

    /// A mapping or a list as a mapping key is refused with its line: Yams.load traps on one
    /// (a nil unwrap in its Constructor), found by fuzzing the configuration (issue 17).
    @Test func complexMappingKeysAreRefused() {
        let cases: [(String, String)] = [
            ("{a: 1}: 2\n", "lab.yaml: line 1: a mapping key must be a plain value, not a mapping or a list"),
            ("[1, 2]: x\n", "lab.yaml: line 1: a mapping key must be a plain value"),
            ("bridges:\n  - {a: 1}: 2\n", "lab.yaml: line 2: a mapping key must be a plain value"),
            ("mirrors:\n  - name: m\n    ? [src]\n    : p0\n", "lab.yaml: line 3: a mapping key must be a plain value"),
        ]
        for (yaml, message) in cases {
            let p = Self.problem(Self.config(yaml))
            #expect(p.hasPrefix(message), "\(yaml): \(p)")
            #expect(ForwarderPlan.filesIncluded(by: NamedText(path: "lab.yaml", text: yaml)).isEmpty)
        }
    }
}
