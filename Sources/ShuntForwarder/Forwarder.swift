import CShunt
import Glibc
import ShuntBPF
import ShuntCore
import ShuntPipeline
import ShuntRing
import ShuntSystem
import Synchronization

/// How frames choose their output.
public enum ForwardingMode: String, CaseIterable, Sendable {
    /// Port pairs 1<->2, 3<->4, ...: every frame leaves on its port's partner.
    case xconnect
    /// A MAC-learning switch over all ports (Open vSwitch's NORMAL).
    case normal
    /// OpenFlow-style flow tables (`--flows`), on the datapath chosen with `--datapath`.
    case flows
}

/// What stopped a forwarder from starting, found on the system (the plan was checked before).
public enum ForwarderError: Error, CustomStringConvertible {
    case missingCapability
    case setup(RingSetupError)
    case thread(SystemError)
    case xdp(String)
    case peerNotReady(port: String, detail: String)
    case mirror(String)
    /// The rings asked for would not fit in memory.
    case ringMemory(String)
    case linkState(SystemError)

    public var description: String {
        switch self {
        case .missingCapability:
            "opening AF_PACKET rings needs CAP_NET_RAW and CAP_NET_ADMIN; run shunt as root (e.g. `sudo shunt forward ...`)"
        case .setup(let e): e.description
        case .thread(let e): "starting a worker thread failed: \(e)"
        case .xdp(let message): message
        case .peerNotReady(let port, let detail):
            "XDP redirect into port \(port) would drop frames silently: \(detail)"
        case .mirror(let message): message
        case .ringMemory(let message): message
        case .linkState(let e): "following the ports' link state (rtnetlink) failed: \(e)"
        }
    }
}

/// A running forwarder: its workers, their rings, and the statistics they keep.
public final class Forwarder {
    public let plan: ForwarderPlan
    public let interfaces: [InterfaceInfo]
    /// VXLAN tunnel ports (numbered after the interfaces).
    public var tunnels: [TunnelPort] { plan.tunnels }
    let tunnelRuntime: TunnelRuntime?
    /// Interfaces, then tunnels: every port's name by number - 1.
    public var portNames: [String] { plan.portNames }
    /// Warnings for the user found at start (e.g. no MTU headroom for a tunnel).
    public let warnings: [String]
    public let macTable: MACLearningTable?
    /// Flow mode: the tables and caches.
    public let flowDatapath: FlowDatapath?
    /// XDP datapath: the loaded flow cache program (its counters, attachments).
    private let fastPath: FlowCacheProgram?
    private let revalidator: Revalidator?
    /// Flow mode: the ports' link state, followed from rtnetlink.
    let linkWatcher: LinkWatcher?
    /// Flow mode: the mirror sessions.
    public let mirrorControl: MirrorControl?
    private var xdpAttachments: [XDPAttachment]
    /// How the XDP program is attached on each port ("native" or "generic"), XDP datapath only.
    public let xdpModes: [String]
    private let workers: [any WorkerLoop]
    private let stop = StopFlag()
    private var threads: [WorkerThread] = []
    private let snapshotLock = Mutex(())
    /// The interfaces' MTUs as last seen by `maintain`.
    private var currentMTUs: [Int] = []
    /// The interfaces' ifindexes now (a reopened port has a new one); `maintain`'s thread only.
    private var portIndexes: [Int32] = []
    /// Kernel counters per worker and port, accumulated here (reading them resets the kernel's).
    private var kernelOffered: [[UInt64]]
    private var kernelRingFull: [[UInt64]]
    private var stopped = false
    public let startedNs = Sys.monotonicNanoseconds()

    /// Opens the plan's ports and builds its engine; throws a one-line, actionable error for
    /// each thing the system does not allow. Nothing is left open on failure.
    public init(plan: ForwarderPlan) throws(ForwarderError) {
        self.plan = plan
        guard Capabilities.current().has(Capabilities.netRaw) else { throw .missingCapability }
        let ports = try PortSet.open(plan)
        let parts = try ForwardingEngines.engine(for: plan.mode).build(plan, ports: ports)
        interfaces = ports.interfaces
        currentMTUs = ports.interfaces.map(\.mtu)
        portIndexes = ports.interfaces.map(\.index)
        workers = parts.workers
        macTable = parts.macTable
        flowDatapath = parts.flowDatapath
        fastPath = parts.fastPath
        revalidator = parts.revalidator
        mirrorControl = parts.mirrorControl
        tunnelRuntime = parts.tunnelRuntime
        warnings = parts.warnings
        xdpAttachments = parts.xdpAttachments
        xdpModes = parts.xdpAttachments.map { $0.mode.map { "\($0)" } ?? "unknown" }
        kernelOffered = Array(repeating: Array(repeating: 0, count: interfaces.count), count: plan.workers)
        kernelRingFull = kernelOffered
        if let datapath = parts.flowDatapath {
            do throws(SystemError) {
                linkWatcher = try LinkWatcher(interfaces: ports.interfaces) { down in datapath.setDownPorts(down) }
            } catch {
                throw .linkState(error)
            }
        } else {
            linkWatcher = nil
        }
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
        if let mirrorControl, !plan.mirrors.isEmpty {
            do throws(MirrorSpecError) { try mirrorControl.add(plan.mirrors) } catch {
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
        if let linkWatcher {
            do throws(SystemError) {
                threads.append(try WorkerThread(name: "shunt-links") { linkWatcher.run(stop: stop) })
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

    /// Housekeeping for the control thread: ages the MAC table and follows the ports' MTUs
    /// (a frame over an interface's MTU now is dropped as too_large, counted, rather than left
    /// for the kernel to skip silently). Returns a line for each MTU that changed.
    public func maintain() -> [String] {
        macTable?.sweep(nowMs: Sys.monotonicNanoseconds() / 1_000_000)
        var notices: [String] = []
        for (port, ifindex) in linkWatcher?.takeReappeared() ?? [] { notices.append(reopen(port, ifindex: ifindex)) }
        notices += linkWatcher?.takeNotices() ?? []
        for (i, info) in interfaces.enumerated() {
            guard let mtu = try? InterfaceInfo.currentMTU(info.name), mtu != currentMTUs[i] else { continue }
            for worker in workers where i < worker.ports.count { worker.ports[i].updateMTU(mtu) }
            notices.append("port \(info.name): MTU changed from \(currentMTUs[i]) to \(mtu); frames over \(TxRing.longestFrame(mtu: mtu)) bytes are dropped as too_large")
            currentMTUs[i] = mtu
        }
        return notices
    }

    /// A deleted interface was created again under a port's name: opens a ring on it for every
    /// worker (each adopts its own at its next pass, and closes the old one), and on the XDP
    /// datapath attaches the program and points the port's DEVMAP entry at it. The port stays
    /// down until then. Returns the line to log.
    private func reopen(_ i: Int, ifindex: Int32) -> String {
        let name = interfaces[i].name
        if let tunnels = tunnelRuntime, tunnels.tunnels.contains(where: { Int($0.underlayPort) == i + 1 }) {
            return "port \(name): back (ifindex \(ifindex)), but it carries tunnels (its MAC is theirs): restart the forwarder to use it"
        }
        do throws(ForwarderError) {
            let info: InterfaceInfo
            var rings: [RingPort]
            do throws(RingSetupError) {
                info = try InterfaceInfo.lookup(name)
                try PortSet.checkFrameSize(info, plan)
                rings = try PortSet.openRings(info, plan)
            } catch { throw .setup(error) }
            if let fastPath {
                try FlowTableEngine.checkRedirectPeers([name], fix: plan.fixPeers)
                do {
                    let attachment = try fastPath.attach(ifindex: info.index)
                    try? fastPath.removePort(number: UInt32(i + 1), ifindex: portIndexes[i])
                    try fastPath.setPort(number: UInt32(i + 1), ifindex: info.index)
                    portIndexes[i] = info.index
                    if i < xdpAttachments.count { xdpAttachments[i] = attachment }
                } catch {
                    throw .xdp("attaching XDP to \(name) failed: \(error)")
                }
            }
            for (w, worker) in flowWorkers.enumerated() where w < rings.count {
                worker.offerReplacement(port: i, ring: rings[w])
            }
            rings.removeAll()
            // The port counts as up only once every worker has its new ring (each looks at least
            // every poll timeout, 50 ms).
            let deadline = Sys.monotonicNanoseconds() + 2_000_000_000
            while flowWorkers.contains(where: \.hasPendingReplacements) && Sys.monotonicNanoseconds() < deadline {
                Sys.sleep(nanoseconds: 5_000_000)
            }
            currentMTUs[i] = info.mtu
            for worker in workers where i < worker.ports.count { worker.ports[i].updateMTU(info.mtu) }
            linkWatcher?.reopened(i)
            return "port \(name): back (ifindex \(info.index)); reopened\(fastPath != nil ? " with XDP attached" : "")"
        } catch {
            return "port \(name): back (ifindex \(ifindex)), but reopening it failed: \(error); it stays down"
        }
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

    /// Current counters, per worker and per port. Any thread (the statistics loop and the
    /// metrics endpoint both read them): one at a time, since reading the kernel's per-socket
    /// statistics resets them.
    public func snapshot() -> StatsSnapshot {
        snapshotLock.withLock { _ in lockedSnapshot() }
    }

    private func lockedSnapshot() -> StatsSnapshot {
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
            snapshotLock.withLock { _ in stopped = true }
        }
        return snapshot()
    }
}
