import ArgumentParser
import Glibc
import ShuntControl
import ShuntCore
import ShuntForwarder
import ShuntPipeline
import ShuntRing
import ShuntRuntime
import ShuntSystem

extension ForwardingMode: ExpressibleByArgument {}
extension DatapathKind: ExpressibleByArgument {}
extension FanoutMode: ExpressibleByArgument {}
extension RingVersion: ExpressibleByArgument {}
extension TransmitMethod: ExpressibleByArgument {}

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forward frames between interfaces through TPACKET mmap rings.",
        discussion: """
            Each worker thread has its own RX and TX ring on every port; per port the workers' \
            sockets share a PACKET_FANOUT group. Statistics are printed every --stats-interval \
            seconds and once more on exit (SIGINT or SIGTERM).

            Latency: TPACKET_V3 rings (the default) hand frames over a block at a time, so at low \
            rates a frame can wait up to --block-timeout-ms. --low-latency switches to TPACKET_V2 \
            rings, which hand over every frame at once (see docs/design/latency-and-ring-versions.md).

            Flow tables: --flows FILE (or --datapath) runs OpenFlow-style tables written in \
            ovs-ofctl syntax (one flow per line, # comments). Without a file the table holds \
            `priority=0,actions=NORMAL`, like a new OVS bridge. --datapath afpacket runs them in \
            the Swift workers; --datapath xdp adds the XDP fast path, which forwards packets of \
            cached flows in the kernel while misses come up to the workers. Change flows live \
            with `shunt ctl add-flow|add-flows|del-flows|dump-flows`; see the state with \
            `shunt ctl show` and `shunt ctl dump-cache`.

            VXLAN tunnel ports: --vxlan NAME,local=IP,remote=IP,dev=IFACE[,vni=N|flow][,dstport=N] \
            adds a port NAME (numbered after the interfaces) whose frames travel in VXLAN over the \
            underlay interface IFACE (one of the --port interfaces) to the remote VTEP. Flows name it \
            like any port (in_port=NAME, output:NAME) and NORMAL switches to it; vni=flow takes the \
            VNI from set_tunnel / tun_id. Shunt answers ARP for the local address on the underlay and \
            resolves the remote's MAC. More options: srcport=MIN-MAX, ttl=N, df, udpcsum, \
            remote_mac=MAC (no ARP). Tunnel ports imply flow tables.

            Bridges: --config FILE with `bridges:` runs several bridges in one forwarder, as \
            ovs-vswitchd does: each has its ports (OpenFlow numbers from `ofport:` or from 1), \
            an optional flow file (default priority=0,actions=NORMAL), access ports (`tag: N`) \
            and trunks (`trunks: [..]`, or all VLANs); patch ports (`type: patch`, `peer:`) join \
            bridges inside one translation. `shunt ctl --bridge NAME` edits and dumps one bridge; \
            `shunt ctl trace` shows a packet's path. See docs/design/0022-bridges.md.

            Examples:
              shunt forward --port veth0 --port veth1 --workers 2 --stats-interval 1
              shunt forward --port p1 --port p2 --flows flows.txt --datapath xdp --fix-peers
              shunt forward --port tap0 --port eth1 --vxlan vx1,local=192.0.2.1,remote=192.0.2.2,dev=eth1,vni=4100
              shunt forward --config Scripts/dvr/host1.yaml --datapath xdp --fix-peers
            """
    )

    @Option(name: .customLong("port"), help: ArgumentHelp("An interface to forward between (repeat; ports are numbered from 1 in this order).", valueName: "IF"))
    var ports: [String] = []

    @Option(name: .customLong("vxlan"), help: ArgumentHelp("A VXLAN tunnel port (repeat): NAME,local=IP,remote=IP,dev=IFACE[,vni=N|flow][,dstport=N][,srcport=MIN-MAX][,ttl=N][,df][,udpcsum][,remote_mac=MAC]. Implies flow tables.", valueName: "SPEC"))
    var vxlan: [String] = []

    @Option(name: .customLong("mirror"), help: ArgumentHelp("A mirror session (repeat): NAME,src=PORT[+PORT...][,dir=in|out|both],to=PORT|pcap:FILE|TUNNELPORT[,sample=N][,snaplen=N][,match=FLOWMATCH] (match= last). Implies flow tables.", valueName: "SPEC"))
    var mirror: [String] = []

    @Option(name: .customLong("config"), help: ArgumentHelp("A YAML configuration file: `bridges:`, bridges with their ports (interface, patch with peer, vxlan; ofport, tag, trunks) and flow files, which replace --port, --flows and --vxlan; `tunnels:`, tunnel ports with the --vxlan keys (name, local, remote, dev, vni, dstport, ...); `mirrors:`, mirror sessions with the --mirror keys. Its entries come before those of --vxlan and --mirror.", valueName: "FILE"))
    var configFile: String?

    @Option(help: "Worker threads; each has a ring on every port.")
    var workers: Int = 1

    @Option(help: "xconnect: ports paired 1<->2, 3<->4 (default for two ports); normal: MAC-learning switch (default otherwise); flows: flow tables (implied by --flows and --datapath).")
    var mode: ForwardingMode?

    @Option(help: ArgumentHelp("Flow tables in ovs-ofctl syntax, one flow per line (implies --mode flows).", valueName: "FILE"))
    var flows: String?

    @Option(help: ArgumentHelp("OpenFlow groups in ovs-ofctl syntax, one per line, for the flows' group:N actions (implies --mode flows).", valueName: "FILE"))
    var groups: String?

    @Option(help: "Flow mode datapath: afpacket (Swift workers only) or xdp (XDP fast path + Swift slow path).")
    var datapath: DatapathKind?

    @Option(help: ArgumentHelp("Control socket for `shunt ctl`.", valueName: "PATH"))
    var control: String = ControlPaths.defaultControlPath

    @Flag(help: "Do not open a control socket.")
    var noControl = false

    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://ADDR:PORT/metrics (a bare PORT listens on 127.0.0.1 only; 0.0.0.0:PORT on every address; port 0 lets the kernel choose, see the ready line).", valueName: "[ADDR:]PORT"))
    var metrics: String?

    @Flag(help: "XDP datapath: enable GRO on veth peers of the ports so redirected frames are not dropped (otherwise shunt refuses to start when a peer is not ready).")
    var fixPeers = false

    @Option(help: "XDP datapath: most entries in the kernel flow cache.")
    var cacheSize: Int = 65536

    @Option(help: "Most flows over all tables.")
    var maxFlows: Int = 65536

    @Option(help: "XDP datapath: kernel cache installs per second; misses beyond it are forwarded by the slow path and counted as lost upcalls.")
    var upcallBudget: Int = 50_000

    @Option(help: "XDP datapath: seconds after which an unused kernel cache entry is removed.")
    var idleTimeout: Double = 10

    @Option(help: "How PACKET_FANOUT spreads a port's frames over workers: hash (keeps flow order), lb, cpu, qm.")
    var fanout: FanoutMode = .hash

    @Flag(help: "TPACKET_V2 rings (the default now; kept for scripts that name it): no block timeout.")
    var lowLatency = false

    @Option(help: "TPACKET version of the rings: v2 (per-frame hand-over, the default) or v3 (block-based RX: fewer wake-ups, but a frame can wait --block-timeout-ms at low rates).")
    var ringVersion: RingVersion?

    @Option(help: "RX ring block size in bytes (a multiple of 4096 and of --frame-size).")
    var blockSize: Int = 1 << 16

    @Option(help: "RX ring blocks (default 1024 with v2: 32768 frames of 2048 B, 64 MiB; 64 with v3, 4 MiB). The kernel may give fewer when memory is short.")
    var blockCount: Int?

    @Option(help: "Ring frame size in bytes: bounds the largest frame (MTU + 18 must fit, after the ring header).")
    var frameSize: Int = 2048

    @Option(help: "TPACKET_V3: milliseconds before a partly filled RX block is handed over (1-1000).")
    var blockTimeoutMs: Int = 1

    @Option(help: "TX ring frames per port and worker (rounded to whole 64 KiB blocks).")
    var txFrames: Int = 1024

    @Option(help: "How frames are sent: copy (sendmmsg, one call per burst: the default, faster for small frames on veths) or ring (PACKET_TX_RING, the kernel sends from the mapped ring without copying the payload).")
    var tx: TransmitMethod = .copy

    @Flag(help: "Send through the qdisc layer (tc and other packet sockets then see forwarded frames; slower).")
    var noQdiscBypass = false

    @Option(help: "Keep polling the rings this many microseconds after the last frame before sleeping.")
    var busyPollUs: UInt64 = 200

    @Option(help: "normal mode: seconds after which an unrefreshed MAC entry is forgotten.")
    var macAging: Double = 300

    @Option(help: ArgumentHelp("Tunnels: seconds a remote VTEP's MAC counts as reachable after an ARP answer (as the kernel's base_reachable_time); after that it is stale: asked again by ARP while the known MAC is still used, for up to 90 s more.", valueName: "S"))
    var neighReachable: Double?

    @Option(help: "Print statistics every S seconds (0: only the final statistics).")
    var statsInterval: Double = 0

    @Option(help: "Stop after S seconds (default: run until SIGINT or SIGTERM).")
    var duration: Double?

    @Flag(help: "Print statistics as JSON lines.")
    var json = false

    func validate() throws {
        if statsInterval < 0 { throw ValidationError("--stats-interval must be 0 or more") }
        if let duration, duration <= 0 { throw ValidationError("--duration must be more than 0") }
        if let metrics, metricsEndpoint == nil {
            throw ValidationError("--metrics \(metrics): give PORT (127.0.0.1 only) or ADDR:PORT, e.g. 9464 or 0.0.0.0:9464")
        }
    }

    /// `--metrics`: the address (host order) and port; a bare port is loopback only.
    var metricsEndpoint: (address: UInt32, port: UInt16)? {
        guard let metrics else { return nil }
        let parts = metrics.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let port = UInt16(parts.last!) else { return nil }
        guard parts.count == 2 else { return (0x7f00_0001, port) }
        guard let address = IPv4Text.parse(parts[0]) else { return nil }
        return (address, port)
    }

    /// The flags as the forwarder's request, with the files they name read (once).
    func request() throws -> ForwarderRequest {
        var r = ForwarderRequest()
        r.ports = ports
        r.workers = workers
        r.mode = mode
        r.datapath = datapath
        r.vxlan = vxlan
        r.mirrors = mirror
        r.fixPeers = fixPeers
        r.cacheSize = cacheSize
        r.maxFlows = maxFlows
        r.upcallBudget = upcallBudget
        r.idleTimeoutSeconds = idleTimeout
        r.fanout = fanout
        r.lowLatency = lowLatency
        r.ringVersion = ringVersion
        r.blockSize = blockSize
        r.blockCount = blockCount
        r.frameSize = frameSize
        r.blockTimeoutMs = blockTimeoutMs
        r.txFrames = txFrames
        r.qdiscBypass = !noQdiscBypass
        r.transmit = tx
        r.busyPollMicroseconds = busyPollUs
        r.macAgingSeconds = macAging
        r.neighbourReachableSeconds = neighReachable
        r.flowFile = try flows.map { NamedText(path: $0, text: try read($0, what: "flow file")) }
        r.groupFile = try groups.map { NamedText(path: $0, text: try read($0, what: "group file")) }
        r.configFile = try configFile.map { NamedText(path: $0, text: try read($0, what: "configuration file")) }
        if let config = r.configFile {
            for (name, path) in ForwarderPlan.filesIncluded(by: config) {
                r.includedFiles[name] = NamedText(path: path, text: try read(path, what: "flow file"))
            }
        }
        return r
    }

    private func read(_ path: String, what: String) throws -> String {
        guard let text = readTextFile(path) else {
            printError("shunt forward: cannot read \(what) \(path)")
            throw ExitCode(2)
        }
        return text
    }

    func run() throws {
        let request = try request()
        let plan: ForwarderPlan
        do throws(PlanError) { plan = try ForwarderPlan.make(request) } catch {
            printError("shunt forward: \(error)")
            throw ExitCode(2)
        }
        let version = plan.ring.version
        let tunnelNames = plan.tunnels.map(\.name)
        // Signals are taken synchronously by this thread; workers inherit the blocked mask.
        let supervisor = Supervisor()
        let forwarder: Forwarder
        switch Result(catching: { () throws(ForwarderError) -> Forwarder in
            let f = try Forwarder(plan: plan)
            try f.start()
            return f
        }) {
        case .success(let f): forwarder = f
        case .failure(let error):
            printError("shunt forward: \(error)")
            throw ExitCode(2)
        }
        var controlServer: ControlServer? = nil
        if !noControl {
            do throws(ControlError) {
                let server = try ControlServer(path: control, handler: FlowControl(forwarder: forwarder))
                try server.start()
                controlServer = server
            } catch {
                _ = forwarder.stopAndCollect()
                printError("shunt forward: control socket: \(error)")
                throw ExitCode(2)
            }
        }
        defer { controlServer?.stop() }
        var metricsServer: MetricsServer? = nil
        if let (address, port) = metricsEndpoint {
            do throws(SystemError) {
                let source = FlowControl(forwarder: forwarder)
                let server = try MetricsServer(address: address, port: port) { source.prometheusText() }
                try server.start()
                metricsServer = server
            } catch {
                controlServer?.stop()
                _ = forwarder.stopAndCollect()
                printError("shunt forward: --metrics \(metrics ?? ""): \(error)")
                throw ExitCode(2)
            }
        }
        defer { metricsServer?.stop() }
        let modeText = plan.mode == .flows ? "flow tables on the \(plan.datapath.kind.rawValue) datapath" : plan.mode.rawValue
        for warning in forwarder.warnings { printError("shunt forward: warning: \(warning)") }
        let allPorts = plan.portNames
        let description = "\(modeText) between \(allPorts.joined(separator: ", ")) with \(workers) worker\(workers == 1 ? "" : "s"), TPACKET_\(version.rawValue.uppercased()) rings"
        if json {
            let datapathField = plan.mode == .flows ? "\"datapath\":\"\(plan.datapath.kind.rawValue)\"," : ""
            let metricsField = metricsServer.map { ",\"metrics\":\"\(IPv4Text.format(metricsEndpoint!.address)):\($0.port)\"" } ?? ""
            emitLine("{\"type\":\"ready\",\"mode\":\"\(plan.mode.rawValue)\",\(datapathField)\"workers\":\(workers),\"ring\":\"\(version.rawValue)\",\"ports\":[\(allPorts.map { "\"\($0)\"" }.joined(separator: ","))]\(metricsField)}")
        } else {
            printError("shunt: forwarding \(description); Ctrl-C to stop")
            if let metricsServer, let (address, _) = metricsEndpoint {
                printError("shunt: metrics at http://\(IPv4Text.format(address)):\(metricsServer.port)/metrics")
            }
        }

        supervisor.begin(duration: duration, reportEvery: statsInterval)
        var previous: StatsSnapshot? = nil
        // Housekeeping at least once a second; statistics every --stats-interval.
        supervisor.run(tickNs: 1_000_000_000, tick: {
            for notice in forwarder.maintain() { printError("shunt forward: \(notice)") }
        }) { _ in
            let snap = forwarder.snapshot()
            emitLine(json ? snap.json(since: previous) : snap.text(since: previous))
            previous = snap
        }
        // No flow edits once the workers and the revalidator are gone.
        controlServer?.stop()
        let final = forwarder.stopAndCollect()
        emitLine(json ? final.json(since: nil) : final.text(since: nil))
        if let mirrorControl = forwarder.mirrorControl {
            var sessions = mirrorControl.status()
            sessions.type = "mirrors"
            if !sessions.mirrors.isEmpty { emitLine(json ? StatusJSON.encode(sessions) : sessions.text) }
        }
    }
}
