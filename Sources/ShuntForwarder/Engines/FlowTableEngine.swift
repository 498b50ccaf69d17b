import CShunt
import Glibc
import ShuntBPF
import ShuntCore
import ShuntPipeline
import ShuntRing
import ShuntSystem

/// `--mode flows`: OpenFlow-style flow tables, with VXLAN tunnel ports and mirror sessions, on
/// the afpacket datapath (Swift workers only) or the XDP datapath (the kernel flow cache in
/// front, the workers as its slow path, a revalidator keeping it consistent).
enum FlowTableEngine: ForwardingEngine {
    static let mode = ForwardingMode.flows

    static func build(_ plan: ForwarderPlan, ports: PortSet) throws(ForwarderError) -> EngineParts {
        let infos = ports.interfaces
        let table = MACLearningTable(capacity: plan.macTableSize, agingMs: plan.macAgingMs)
        let (tunnelRuntime, warnings) = tunnels(plan, interfaces: infos)
        let kernel = plan.datapath.kind == .xdp ? try loadFastPath(plan, interfaces: infos) : nil
        let datapath = FlowDatapath(
            config: plan.datapath, ports: plan.portNames,
            tables: plan.flowTables ?? defaultFlowTables(bridges: plan.layout.bridges.count, maxFlows: plan.datapath.maxFlows),
            writers: plan.workers + 1, macTable: table, kernel: kernel, kernelPortLimit: UInt32(plan.ports.count),
            kernelTunnelPorts: kernel == nil ? 0 : TunnelFastPath.kernelTunnelPorts(plan.tunnels),
            underlays: Set(plan.tunnels.map(\.underlayPort)), layout: plan.layout)
        let ring = plan.ring
        let mirrorControl = MirrorControl(
            registry: datapath.mirrors, ports: datapath.portNames, interfaceCount: infos.count, tunnels: plan.tunnels,
            workers: plan.workers,
            maxCaptured: max(ring.rx.maxFrameLength(for: ring.version, rx: true), ring.tx.maxFrameLength(for: ring.version, rx: false)),
            kernel: kernel)
        var parts = EngineParts(workers: (0..<plan.workers).map {
            FlowWorker(index: $0, ports: ports.rings[$0], datapath: datapath, idle: plan.idle, tunnels: tunnelRuntime)
        })
        parts.macTable = table
        parts.flowDatapath = datapath
        parts.mirrorControl = mirrorControl
        parts.tunnelRuntime = tunnelRuntime
        parts.warnings = warnings
        if let kernel, let kernelPath = datapath.kernel {
            parts.fastPath = kernel
            var tunnelFastPath: TunnelFastPath? = nil
            if let tunnelRuntime {
                do { tunnelFastPath = try TunnelFastPath(kernel: kernel, runtime: tunnelRuntime) } catch {
                    throw .xdp("writing the tunnel ports into the XDP fast path failed: \(error)")
                }
            }
            parts.revalidator = Revalidator(datapath: datapath, kernel: kernelPath, tunnels: tunnelFastPath)
            // Attach last: until now every frame went to the rings (the slow path).
            parts.xdpAttachments = try attach(kernel, to: infos)
        }
        return parts
    }

    /// The tunnels as the workers use them, and a warning per tunnel whose underlay MTU cannot
    /// carry the largest tenant frame.
    static func tunnels(_ plan: ForwarderPlan, interfaces infos: [InterfaceInfo]) -> (TunnelRuntime?, [String]) {
        let tunnels = plan.tunnels
        guard !tunnels.isEmpty else { return (nil, []) }
        let runtime = TunnelRuntime(tunnels: tunnels, interfaceMACs: infos.map { MACAddress(value: $0.hardwareAddress) },
                                    interfaceMTUs: infos.map(\.mtu), neighbourReachableMs: plan.neighbourReachableMs)
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
        return (runtime, warnings)
    }

    /// Loads the XDP flow cache with every interface as a port, after checking that redirects
    /// into the ports will not be dropped silently.
    static func loadFastPath(_ plan: ForwarderPlan, interfaces infos: [InterfaceInfo]) throws(ForwarderError) -> FlowCacheProgram {
        let caps = Capabilities.current()
        guard caps.has(Capabilities.bpf) || caps.has(Capabilities.sysAdmin) else {
            throw .xdp("the XDP datapath needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN; run shunt as root or use --datapath afpacket")
        }
        try checkRedirectPeers(infos.map(\.name), fix: plan.fixPeers)
        do {
            let program = try FlowCacheProgram(maxEntries: UInt32(plan.datapath.cacheSize))
            for (i, info) in infos.enumerated() {
                try program.setPort(number: UInt32(i + 1), ifindex: info.index)
            }
            return program
        } catch {
            throw .xdp("loading the XDP flow cache failed: \(error)")
        }
    }

    /// Attaches the program to every interface; all or none.
    static func attach(_ kernel: FlowCacheProgram, to infos: [InterfaceInfo]) throws(ForwarderError) -> [XDPAttachment] {
        var attachments: [XDPAttachment] = []
        for info in infos {
            do { attachments.append(try kernel.attach(ifindex: info.index)) } catch {
                attachments.removeAll()
                throw .xdp("attaching XDP to \(info.name) failed: \(error)")
            }
        }
        return attachments
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

    /// An OVS bridge's default table, in every bridge: every packet to NORMAL.
    static func defaultFlowTables(bridges: Int, maxFlows: Int) -> FlowTables {
        var tables = FlowTables(maxRules: maxFlows)
        for b in 0..<bridges {
            var rule = try! FlowSyntax.parseFlow("priority=0,actions=NORMAL", ports: PortNames([]))
            rule.bridge = UInt16(b)
            _ = try! tables.add(rule)
        }
        return tables
    }
}
