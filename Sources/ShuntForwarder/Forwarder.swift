import CShunt
import Glibc
import ShuntBPF
import ShuntCore
import ShuntPipeline
import ShuntRing
import ShuntSystem

/// How frames choose their output.
public enum ForwardingMode: String, CaseIterable, Sendable {
    /// Port pairs 1<->2, 3<->4, ...: every frame leaves on its port's partner.
    case xconnect
    /// A MAC-learning switch over all ports (Open vSwitch's NORMAL).
    case normal
    /// OpenFlow-style flow tables (`--flows`), on the datapath chosen with `--datapath`.
    case flows
}

public struct ForwarderConfig: Sendable {
    public var ports: [String]
    public var workers: Int
    public var mode: ForwardingMode
    public var fanout: FanoutMode
    public var ring: RingPortConfig
    public var idle: IdlePolicy
    public var macAgingMs: UInt64
    public var macTableSize: Int
    /// Flow mode: the datapath and its caches.
    public var datapath = FlowDatapathConfig()
    /// Flow mode: the initial tables (default: one flow, `priority=0 actions=NORMAL`).
    public var flowTables: FlowTables?
    /// XDP datapath: enable GRO on veth peers that could not receive redirected frames.
    public var fixPeers = false
    /// VXLAN tunnel ports, numbered after the interfaces in this order (flow mode only).
    public var tunnels: [TunnelSpec] = []
    /// Mirror sessions to start with (flow mode only); more with `shunt ctl mirror add`.
    public var mirrors: [MirrorSpec] = []

    public init(ports: [String], workers: Int = 1, mode: ForwardingMode? = nil, fanout: FanoutMode = .hash,
                ring: RingPortConfig = RingPortConfig(), idle: IdlePolicy = IdlePolicy(busyPollMicroseconds: 200),
                macAgingMs: UInt64 = 300_000, macTableSize: Int = 8192) {
        self.ports = ports
        self.workers = workers
        self.mode = mode ?? (ports.count == 2 ? .xconnect : .normal)
        self.fanout = fanout
        self.ring = ring
        self.idle = idle
        self.macAgingMs = macAgingMs
        self.macTableSize = macTableSize
    }
}

public enum ForwarderError: Error, CustomStringConvertible {
    case tooFewPorts(mode: ForwardingMode, count: Int)
    case oddPortCount(Int)
    case duplicatePort(String)
    case workers(Int)
    case missingCapability
    case setup(RingSetupError)
    case thread(SystemError)
    case xdp(String)
    case peerNotReady(port: String, detail: String)
    case tunnel(String)
    case mirror(String)

    public var description: String {
        switch self {
        case .tooFewPorts(let mode, let n):
            "\(mode.rawValue) mode needs at least two ports, got \(n); give another with --port IF"
        case .oddPortCount(let n):
            "xconnect pairs ports (1<->2, 3<->4, ...) but \(n) ports were given; add or remove one, or use --mode normal"
        case .duplicatePort(let p):
            "port '\(p)' is given twice; each interface can be a port once"
        case .workers(let n):
            "--workers must be between 1 and 64, got \(n)"
        case .missingCapability:
            "opening AF_PACKET rings needs CAP_NET_RAW and CAP_NET_ADMIN; run shunt as root (e.g. `sudo shunt forward ...`)"
        case .setup(let e): e.description
        case .thread(let e): "starting a worker thread failed: \(e)"
        case .xdp(let message): message
        case .peerNotReady(let port, let detail):
            "XDP redirect into port \(port) would drop frames silently: \(detail)"
        case .tunnel(let message): message
        case .mirror(let message): message
        }
    }
}

/// A running forwarder: its workers, their rings, and the statistics they keep.
public final class Forwarder {
    public let config: ForwarderConfig
    public let interfaces: [InterfaceInfo]
    /// VXLAN tunnel ports (numbered after the interfaces).
    public let tunnels: [TunnelPort]
    let tunnelRuntime: TunnelRuntime?
    /// Interfaces, then tunnels: every port's name by number - 1.
    public var portNames: [String] { interfaces.map(\.name) + tunnels.map(\.name) }
    /// Warnings for the user found at start (e.g. no MTU headroom for a tunnel).
    public private(set) var warnings: [String] = []
    public let macTable: MACLearningTable?
    /// Flow mode: the tables and caches.
    public let flowDatapath: FlowDatapath?
    /// XDP datapath: the loaded flow cache program (its counters, attachments).
    private let fastPath: FlowCacheProgram?
    private let revalidator: Revalidator?
    /// Flow mode: the mirror sessions.
    public private(set) var mirrorControl: MirrorControl? = nil
    private var xdpAttachments: [XDPAttachment] = []
    /// How the XDP program is attached on each port ("native" or "generic"), XDP datapath only.
    public private(set) var xdpModes: [String] = []
    private let workers: [any WorkerLoop]
    private let stop = StopFlag()
    private var threads: [WorkerThread] = []
    /// Kernel counters per worker and port, accumulated here (reading them resets the kernel's).
    private var kernelOffered: [[UInt64]]
    private var kernelRingFull: [[UInt64]]
    private var stopped = false
    public let startedNs = Sys.monotonicNanoseconds()

    /// Checks the configuration against the system and opens every ring; throws a one-line,
    /// actionable error for each thing that is wrong. Nothing is left open on failure.
    public init(config: ForwarderConfig) throws(ForwarderError) {
        self.config = config
        guard (1...64).contains(config.workers) else { throw .workers(config.workers) }
        var seen = Set<String>()
        for p in config.ports where !seen.insert(p).inserted { throw .duplicatePort(p) }
        guard config.ports.count >= 2 else { throw .tooFewPorts(mode: config.mode, count: config.ports.count) }
        if config.mode == .xconnect && config.ports.count % 2 != 0 { throw .oddPortCount(config.ports.count) }
        if config.ports.count + config.tunnels.count > Int(SHUNT_MAX_PORTS) {
            throw .xdp("at most \(SHUNT_MAX_PORTS) ports (interfaces and tunnels) are supported, got \(config.ports.count + config.tunnels.count)")
        }
        if !config.tunnels.isEmpty && config.mode != .flows {
            throw .tunnel("tunnel ports need flow tables (the default table is NORMAL); drop --mode \(config.mode.rawValue)")
        }
        let tunnels: [TunnelPort]
        do throws(TunnelSpecError) {
            tunnels = try TunnelSpec.resolveAll(config.tunnels, interfaces: config.ports)
        } catch { throw .tunnel(error.description) }
        self.tunnels = tunnels
        if !config.mirrors.isEmpty {
            guard config.mode == .flows else {
                throw .mirror("mirror sessions run on flow tables (the default table is NORMAL); drop --mode \(config.mode.rawValue)")
            }
            do throws(MirrorSpecError) {
                try MirrorControl.validate(config.mirrors, ports: PortNames(config.ports + tunnels.map(\.name)),
                                           interfaceCount: config.ports.count, tunnels: tunnels)
            } catch { throw .mirror(error.description) }
        }
        let caps = Capabilities.current()
        guard caps.has(Capabilities.netRaw) else { throw .missingCapability }
        do throws(RingGeometry.Invalid) {
            try config.ring.rx.validate(for: config.ring.version, rx: true)
        } catch { throw .setup(.invalidGeometry("RX", error)) }
        do throws(RingGeometry.Invalid) {
            try config.ring.tx.validate(for: config.ring.version, rx: false)
        } catch { throw .setup(.invalidGeometry("TX", error)) }

        var infos: [InterfaceInfo] = []
        for name in config.ports {
            let info: InterfaceInfo
            do throws(RingSetupError) { info = try InterfaceInfo.lookup(name) } catch { throw .setup(error) }
            guard info.isUp else { throw .setup(.interfaceDown(name)) }
            let maxFrame = min(config.ring.rx.maxFrameLength(for: config.ring.version, rx: true),
                               config.ring.tx.maxFrameLength(for: config.ring.version, rx: false))
            if info.mtu + 18 > maxFrame {
                throw .setup(.frameTooSmallForMTU(interface: name, mtu: info.mtu, maxFrame: maxFrame))
            }
            infos.append(info)
        }
        interfaces = infos
        if tunnels.isEmpty {
            tunnelRuntime = nil
        } else {
            tunnelRuntime = TunnelRuntime(tunnels: tunnels, interfaceMACs: infos.map { MACAddress(value: $0.hardwareAddress) },
                                          interfaceMTUs: infos.map(\.mtu))
            // An inner frame as large as a tenant port's MTU allows must fit the underlay after
            // the 50 bytes of encapsulation; otherwise the largest frames drop as tunnel_mtu.
            let tenantMTU = infos.enumerated().filter { i, _ in !tunnels.contains { Int($0.underlayPort) == i + 1 } }
                .map(\.1.mtu).max() ?? 0
            var warnings: [String] = []
            for t in tunnels {
                let underlay = infos[Int(t.underlayPort) - 1]
                if tenantMTU > 0 && !VXLAN.fits(innerLength: tenantMTU + 14, underlayMTU: underlay.mtu) {
                    warnings.append("tunnel \(t.name): underlay \(underlay.name) has MTU \(underlay.mtu), tenant ports up to \(tenantMTU); frames over \(underlay.mtu - 50) bytes of IP will be dropped as tunnel_mtu (raise the underlay MTU to \(tenantMTU + 50) or lower the tenants')")
                }
            }
            self.warnings = warnings
        }

        // Every worker gets a socket on every port; per port, the sockets form one fanout group.
        var rings: [[RingPort]] = Array(repeating: [], count: config.workers)
        do throws(RingSetupError) {
            for info in infos {
                var group: UInt16? = nil
                for w in 0..<config.workers {
                    let fanout: (mode: FanoutMode, group: UInt16?)? = config.workers > 1 ? (config.fanout, group) : nil
                    let port = try RingPort(interface: info, config: config.ring, fanout: fanout)
                    if config.workers > 1 && group == nil {
                        do throws(SystemError) { group = try port.fanoutGroupID() } catch {
                            throw .system(step: "reading the fanout group", interface: info.name, error)
                        }
                    }
                    rings[w].append(port)
                }
            }
        } catch { throw .setup(error) }

        kernelOffered = Array(repeating: Array(repeating: 0, count: infos.count), count: config.workers)
        kernelRingFull = kernelOffered
        switch config.mode {
        case .xconnect:
            macTable = nil
            flowDatapath = nil
            fastPath = nil
            revalidator = nil
            workers = (0..<config.workers).map { Worker(index: $0, ports: rings[$0], stage: CrossConnect(), idle: config.idle) }
        case .normal:
            let table = MACLearningTable(capacity: config.macTableSize, agingMs: config.macAgingMs)
            macTable = table
            flowDatapath = nil
            fastPath = nil
            revalidator = nil
            workers = (0..<config.workers).map {
                Worker(index: $0, ports: rings[$0], stage: LearningSwitch(table: table), idle: config.idle)
            }
        case .flows:
            let table = MACLearningTable(capacity: config.macTableSize, agingMs: config.macAgingMs)
            macTable = table
            var kernel: FlowCacheProgram? = nil
            if config.datapath.kind == .xdp {
                guard caps.has(Capabilities.bpf) || caps.has(Capabilities.sysAdmin) else {
                    throw .xdp("the XDP datapath needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN; run shunt as root or use --datapath afpacket")
                }
                try Self.checkRedirectPeers(infos.map(\.name), fix: config.fixPeers)
                do {
                    let program = try FlowCacheProgram(maxEntries: UInt32(config.datapath.cacheSize))
                    for (i, info) in infos.enumerated() {
                        try program.setPort(number: UInt32(i + 1), ifindex: info.index)
                    }
                    kernel = program
                } catch {
                    throw .xdp("loading the XDP flow cache failed: \(error)")
                }
            }
            let tables = config.flowTables ?? Self.defaultFlowTables(maxFlows: config.datapath.maxFlows)
            let datapath = FlowDatapath(config: config.datapath, ports: config.ports + tunnels.map(\.name), tables: tables,
                                        writers: config.workers + 1, macTable: table, kernel: kernel,
                                        kernelPortLimit: UInt32(config.ports.count),
                                        kernelTunnelPorts: kernel == nil ? 0 : TunnelFastPath.kernelTunnelPorts(tunnels),
                                        underlays: Set(tunnels.map(\.underlayPort)))
            flowDatapath = datapath
            fastPath = kernel
            mirrorControl = MirrorControl(
                registry: datapath.mirrors, ports: datapath.portNames, interfaceCount: infos.count, tunnels: tunnels,
                workers: config.workers,
                maxCaptured: max(config.ring.rx.maxFrameLength(for: config.ring.version, rx: true),
                                 config.ring.tx.maxFrameLength(for: config.ring.version, rx: false)),
                kernel: kernel)
            let tunnelRuntime = self.tunnelRuntime
            workers = (0..<config.workers).map {
                FlowWorker(index: $0, ports: rings[$0], datapath: datapath, idle: config.idle, tunnels: tunnelRuntime)
            }
            if let kernel, let kernelPath = datapath.kernel {
                var tunnelFastPath: TunnelFastPath? = nil
                if let tunnelRuntime {
                    do { tunnelFastPath = try TunnelFastPath(kernel: kernel, runtime: tunnelRuntime) } catch {
                        throw .xdp("writing the tunnel ports into the XDP fast path failed: \(error)")
                    }
                }
                revalidator = Revalidator(datapath: datapath, kernel: kernelPath, tunnels: tunnelFastPath)
                // Attach last: until now every frame went to the rings (the slow path).
                for info in infos {
                    do {
                        let attachment = try kernel.attach(ifindex: info.index)
                        xdpModes.append(attachment.mode.map { "\($0)" } ?? "unknown")
                        xdpAttachments.append(attachment)
                    } catch {
                        xdpAttachments.removeAll()
                        throw .xdp("attaching XDP to \(info.name) failed: \(error)")
                    }
                }
            } else {
                revalidator = nil
            }
        }
    }

    /// XDP redirect into a veth is silently dropped unless the veth's peer has GRO or an XDP
    /// program (the kernel then stops advertising NDO_XMIT). Checks every port; with `fix`,
    /// enables GRO on peers that need it, otherwise refuses with the command that fixes it.
    static func checkRedirectPeers(_ ports: [String], fix: Bool) throws(ForwarderError) {
        for port in ports {
            let readiness: RedirectReadiness
            do throws(SystemError) { readiness = try XDPPeers.readiness(of: port) } catch {
                throw .xdp("checking whether \(port) accepts XDP redirects failed: \(error)")
            }
            // nil: the kernel cannot tell (no netdev netlink family); trust the user.
            guard readiness.acceptsRedirect == false else { continue }
            guard let peer = readiness.peer else {
                let why = readiness.isVeth
                    ? "its veth peer is in a namespace without a name under /run/netns, so shunt cannot fix it"
                    : "the kernel does not advertise XDP transmit (ndo_xdp_xmit) on it"
                throw .peerNotReady(port: port, detail: "\(why); enable GRO or load an XDP program on the peer, or use --datapath afpacket")
            }
            let run = peer.namespace.map { "ip netns exec \($0) " } ?? ""
            guard fix else {
                throw .peerNotReady(port: port, detail: "its veth peer \(peer.name)\(peer.namespace.map { " (namespace \($0))" } ?? "") has neither GRO nor an XDP program; run `\(run)ethtool -K \(peer.name) gro on` or start shunt with --fix-peers")
            }
            do throws(SystemError) {
                try XDPPeers.enableGRO(on: peer)
                let again = try XDPPeers.readiness(of: port)
                if again.acceptsRedirect == false {
                    throw SystemError(errno: EOPNOTSUPP, call: "enabling GRO on \(peer.name)")
                }
            } catch {
                throw .peerNotReady(port: port, detail: "enabling GRO on its peer \(peer.name) did not help (\(error)); is the peer up? try `\(run)ip link set \(peer.name) up`")
            }
        }
    }

    /// An OVS bridge's default table: every packet to NORMAL.
    public static func defaultFlowTables(maxFlows: Int) -> FlowTables {
        var tables = FlowTables(maxRules: maxFlows)
        let rule = try! FlowSyntax.parseFlow("priority=0,actions=NORMAL", ports: PortNames([]))
        _ = try! tables.add(rule)
        return tables
    }

    /// The flow-mode workers (for the control socket).
    var flowWorkers: [FlowWorker] { workers.compactMap { $0 as? FlowWorker } }

    /// Brings the rules' counters up to date with the kernel cache's (XDP datapath).
    func creditKernelCounters() { flowDatapath?.kernel?.creditCounters() }

    /// The per-port part of the fast path's counters, as port counters (index = port - 1).
    static func fastPathPortCounters(_ s: shunt_fastpath_stats, ports: Int) -> [PortCounters] {
        withUnsafeBytes(of: s.ports) { raw in
            let stride = MemoryLayout<shunt_port_counters>.stride
            return (0..<ports).map { p in
                let c = raw.loadUnaligned(fromByteOffset: (p + 1) * stride, as: shunt_port_counters.self)
                var out = PortCounters()
                out.rxPackets = c.rx_packets
                out.rxBytes = c.rx_bytes
                out.txPackets = c.tx_packets
                out.txBytes = c.tx_bytes
                out.rxDecapsulated = c.rx_decapsulated
                out.txEncapsulated = c.tx_encapsulated
                withUnsafeBytes(of: c.rx_drops) { d in
                    for r in DropReason.allCases {
                        let v = d.load(fromByteOffset: Int(r.rawValue) * 8, as: UInt64.self)
                        if v > 0 { out.rxDrops[r] = v }
                    }
                }
                return out
            }
        }
    }

    /// Kernel fast-path counters summed over CPUs (XDP datapath).
    func fastPathStats() -> shunt_fastpath_stats? { try? fastPath?.stats() }

    /// Starts one thread per worker.
    public func start() throws(ForwarderError) {
        let stop = self.stop
        if let mirrorControl, !config.mirrors.isEmpty {
            do throws(MirrorSpecError) { try mirrorControl.add(config.mirrors) } catch {
                xdpAttachments.removeAll()
                throw .mirror(error.description)
            }
        }
        if let revalidator {
            do throws(SystemError) {
                threads.append(try WorkerThread(name: "shunt-revalidator") { revalidator.run(stop: stop) })
            } catch {
                throw .thread(error)
            }
        }
        for worker in workers {
            do throws(SystemError) {
                threads.append(try WorkerThread(name: "shunt-w\(worker.index)") { worker.run(stop: stop) })
            } catch {
                xdpAttachments.removeAll()
                mirrorControl?.closeOutputs()
                self.stop.set()
                threads.forEach { $0.join() }
                threads.removeAll()
                throw .thread(error)
            }
        }
    }

    /// Housekeeping for the control thread: ages the MAC table.
    public func maintain() {
        macTable?.sweep(nowMs: Sys.monotonicNanoseconds() / 1_000_000)
    }

    private func collectKernelStatistics() {
        for (w, worker) in workers.enumerated() {
            for (p, port) in worker.ports.enumerated() {
                let s = port.takeKernelStatistics()
                kernelOffered[w][p] += s.offered
                kernelRingFull[w][p] += s.ringFull
            }
        }
    }

    /// Current counters, per worker and per port. Call from one control thread.
    public func snapshot() -> StatsSnapshot {
        collectKernelStatistics()
        var perWorker: [[PortCounters]] = []
        for (w, worker) in workers.enumerated() {
            perWorker.append((0..<worker.counters.portCount).map { p in
                var c = worker.counters.snapshot(port: p)
                guard p < interfaces.count else { return c }  // a tunnel port: no ring of its own
                c.kernelOffered = kernelOffered[w][p]
                c.rxDrops[.kernelRingFull] = kernelRingFull[w][p]
                c.rxPackets += kernelRingFull[w][p]
                if stopped {
                    // Frames the kernel put in the ring that no worker read before the stop.
                    let delivered = kernelOffered[w][p] - kernelRingFull[w][p]
                    let read = c.rxPackets - kernelRingFull[w][p]
                    if delivered > read {
                        c.rxDrops[.ringUnread] = delivered - read
                        c.rxPackets += delivered - read
                    }
                }
                return c
            })
        }
        var snapshot = StatsSnapshot(ports: portNames, perWorker: perWorker,
                             elapsedNs: Sys.monotonicNanoseconds() - startedNs, final: stopped)
        if let s = fastPathStats() { snapshot.fastPath = Self.fastPathPortCounters(s, ports: portNames.count) }
        return snapshot
    }

    /// Stops every worker, waits for them, and returns the final counters. Rings and sockets
    /// are released when the forwarder is.
    public func stopAndCollect() -> StatsSnapshot {
        if !stopped {
            // The fast path goes first: without the slow path behind it, it must not keep
            // forwarding. What it still sends up, the workers forward while they drain.
            xdpAttachments.removeAll()
            stop.set()
            threads.forEach { $0.join() }
            threads.removeAll()
            mirrorControl?.closeOutputs()
            stopped = true
        }
        return snapshot()
    }
}
