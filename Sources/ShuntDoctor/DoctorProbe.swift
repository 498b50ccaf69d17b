import Glibc
import ShuntBPF
import ShuntRuntime
import ShuntSystem
import ShuntTrafficEngines

/// What `shunt doctor` was asked to look at.
public struct DoctorSettings: Sendable {
    public var ports: [String]
    public var workers: Int?
    /// The command line, for fixes that run it again.
    public var commandLine: [String]

    public init(ports: [String], workers: Int? = nil, commandLine: [String] = []) {
        (self.ports, self.workers, self.commandLine) = (ports, workers, commandLine)
    }
}

/// Reads the facts `Diagnosis` judges, from the kernel of the calling thread's namespace. It
/// changes nothing, except that the generator probe loads a program and opens an AF_XDP socket
/// for a moment (as `shunt gen --list-engines` does).
public enum DoctorProbe {
    /// Fails with status 2 (bad usage) for a port that is no interface of this namespace.
    public static func gather(_ settings: DoctorSettings) throws(CommandFailure) -> DoctorFacts {
        var facts = DoctorFacts()
        facts.namespace = InterfaceSurvey.currentNamespaceName()
        facts.commandLine = settings.commandLine
        facts.userID = UInt32(Sys.effectiveUserID())
        facts.capabilities = Capabilities.current().effective
        facts.cpus = Sys.onlineCPUCount()
        facts.workers = settings.workers
        for name in settings.ports { facts.ports.append(try port(name, here: facts.namespace)) }
        let links = (try? InterfaceSurvey.links()) ?? []
        let names = Dictionary(links.map { ($0.index, $0.name) }, uniquingKeysWith: { a, _ in a })
        facts.vxlanDevices = links.compactMap { l in
            l.vxlan.map { VXLANDeviceFacts(name: l.name, settings: $0, underlay: $0.underlay.flatMap { names[$0] },
                                           master: l.master.flatMap { names[$0] }) }
        }
        facts.bridges = links.filter { $0.kind == "bridge" }.map(\.name)
        facts.bridgeNetfilter = bridgeNetfilter()
        facts.mounts = (try? Sys.readWholeFile("/proc/self/mounts")).map { String(decoding: $0, as: UTF8.self) }
        facts.engines = engines(port: settings.ports.first ?? "lo")
        return facts
    }

    /// One port: its link and offloads, XDPPeers' readiness (the check `shunt forward
    /// --datapath xdp` makes at start) and, for a veth, its peer's settings. `here` names this
    /// namespace, which a peer beside the port is in.
    static func port(_ name: String, here: String?) throws(CommandFailure) -> PortFacts {
        let own: InterfaceSettings
        do throws(SystemError) { own = try InterfaceSurvey.settings(of: name, namespace: nil) } catch {
            switch error.errno {
            case ENODEV: throw CommandFailure(status: 2, "no interface named '\(name)' in this network namespace")
            case EINVAL: throw CommandFailure(status: 2, "'\(name)' is not an interface name")
            default: throw CommandFailure(status: 2, "cannot read interface '\(name)': \(error)")
            }
        }
        var p = PortFacts(name: name)
        p.isUp = own.link.isUp
        p.mtu = own.link.mtu
        p.driver = own.driver
        p.isVeth = own.link.kind == "veth"
        p.hasXDP = own.link.hasXDP
        if p.hasXDP, let occupant = XDPOccupant.query(ifindex: own.link.index) {
            let name = occupant.programName.isEmpty ? "" : "'\(occupant.programName)' "
            (p.xdpProgram, p.xdpProgramThroughLink) = ("\(name)(id \(occupant.programID))", occupant.throughLink)
        }
        p.offloads = own.offloads
        let readiness: RedirectReadiness
        do throws(SystemError) { readiness = try XDPPeers.readiness(of: name) } catch {
            // Say entering the peer's namespace was refused: the port's own features still tell.
            if p.isVeth { p.peerError = "\(error)" }
            do throws(SystemError) { p.xdpFeatures = try InterfaceSurvey.xdpFeatures(ifindex: own.link.index) } catch {
                p.featuresError = "\(error)"
            }
            return p
        }
        p.xdpFeatures = readiness.xdpFeatures
        guard readiness.isVeth else { return p }
        guard let peer = readiness.peer else {
            p.peerError = "its namespace has no name under /run/netns"
            return p
        }
        var facts = PeerFacts(name: peer.name, namespace: peer.namespace ?? here)
        (facts.isUp, facts.gro, facts.hasXDP) = (peer.isUp, peer.groEnabled, peer.hasXDP)
        if let settings = try? InterfaceSurvey.settings(of: peer.name, namespace: peer.namespace) {
            facts.offloads = settings.offloads
            facts.mtu = settings.link.mtu
        }
        p.peer = facts
        return p
    }

    /// net.bridge.bridge-nf-call-*; nil when br_netfilter is not loaded (no /proc/sys/net/bridge).
    static func bridgeNetfilter() -> [(key: String, value: Int)]? {
        let keys = ["bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"]
        let values = keys.compactMap { key -> (key: String, value: Int)? in
            guard let bytes = try? Sys.readWholeFile("/proc/sys/net/bridge/\(key)"),
                  let value = Int(String(decoding: bytes, as: UTF8.self).trimmingWhitespace()) else { return nil }
            return (key, value)
        }
        return values.isEmpty ? nil : values
    }

    /// The generator's engines on `port`, as `shunt gen --list-engines` probes them.
    static func engines(port: String) -> EngineFacts {
        let support: Generator.EngineSupport
        do throws(CommandFailure) { support = try Generator.probeEngines(port: port) } catch {
            return EngineFacts(port: port, probeError: error.message)
        }
        let live = support.liveFrames
        switch support.afxdp {
        case .success(let probe):
            let queues = "\(probe.queues) TX queue\(probe.queues == 1 ? "" : "s")"
            return EngineFacts(port: port, liveFramesRefusal: live.isAllowed ? nil : live.errnoName,
                               afxdp: "\(probe.mode.rawValue) mode, \(queues)", afxdpError: nil, auto: support.auto.rawValue)
        case .failure(let error):
            return EngineFacts(port: port, liveFramesRefusal: live.isAllowed ? nil : live.errnoName,
                               afxdp: nil, afxdpError: "\(error)", auto: support.auto.rawValue)
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
