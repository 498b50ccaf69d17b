import CShunt
import ShuntCore
import ShuntPipeline
import ShuntRing

/// A file the user named, as the caller read it (once).
public struct NamedText: Sendable {
    public var path: String
    public var text: String
    public init(path: String, text: String) {
        self.path = path
        self.text = text
    }
}

/// What the user asked `shunt forward` for, as given: flag values and the texts of the files
/// they named. `ForwarderPlan.make` checks it; nothing here has been looked at yet.
public struct ForwarderRequest: Sendable {
    public var ports: [String] = []
    public var workers = 1
    public var mode: ForwardingMode?
    public var datapath: DatapathKind?
    public var flowFile: NamedText?
    /// `--groups FILE`: OpenFlow groups, one per line, loaded before the flows.
    public var groupFile: NamedText?
    /// `--config FILE` (YAML: bridges, tunnels, mirrors).
    public var configFile: NamedText?
    /// The files the configuration names (bridges' flow files), by the name it gives them;
    /// `ForwarderPlan.filesIncluded(by:)` says which to read.
    public var includedFiles: [String: NamedText] = [:]
    public var vxlan: [String] = []
    public var mirrors: [String] = []
    public var fixPeers = false
    public var cacheSize = 65536
    public var maxFlows = 65536
    public var upcallBudget = 50_000
    public var idleTimeoutSeconds = 10.0
    public var fanout: FanoutMode = .hash
    public var lowLatency = false
    public var ringVersion: RingVersion?
    public var blockSize = 1 << 16
    /// nil: the ring version's default (`RingGeometry.defaultRX`).
    public var blockCount: Int?
    public var frameSize = 2048
    public var blockTimeoutMs = 1
    public var txFrames = 1024
    public var qdiscBypass = true
    /// sendmmsg from a staging area (the default) or the TX ring.
    public var transmit = TransmitMethod.copy
    public var busyPollMicroseconds: UInt64 = 200
    public var macAgingSeconds = 300.0
    public var macTableSize = 8192
    /// `--neigh-reachable`: nil when not given.
    public var neighbourReachableSeconds: Double?

    public init() {}
}

/// A configuration found wrong before anything was opened: one line, naming what to change.
public struct PlanError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A checked forwarder configuration. Built by `make` from a request without touching the
/// system (no root needed), so every input mistake is found, and unit-tested, in one place;
/// what only the system can tell (interfaces, capabilities, MTUs) `PortSet.open` checks next.
public struct ForwarderPlan: Sendable {
    public var ports: [String]
    public var workers: Int
    public var mode: ForwardingMode
    public var fanout: FanoutMode
    public var ring: RingPortConfig
    public var idle: IdlePolicy
    public var macAgingMs: UInt64
    public var macTableSize: Int
    /// Flow mode: the datapath and its caches.
    public var datapath: FlowDatapathConfig
    /// Flow mode: the initial tables (nil: one flow, `priority=0 actions=NORMAL`).
    public var flowTables: FlowTables?
    /// XDP datapath: enable GRO on veth peers that could not receive redirected frames.
    public var fixPeers: Bool
    /// VXLAN tunnel ports, numbered after the interfaces in this order (flow mode only).
    public var tunnels: [TunnelPort]
    /// How long a remote VTEP's MAC counts as reachable after an ARP answer.
    public var neighbourReachableMs: UInt64 = 30_000
    /// Mirror sessions to start with (flow mode only).
    public var mirrors: [MirrorSpec]
    /// Flow mode: the bridges over the ports (without `bridges:` in the configuration, one
    /// bridge whose OpenFlow ports are the datapath's).
    public var layout: SwitchLayout

    /// Interfaces, then tunnels: every port's name by number - 1.
    public var portNames: [String] { ports + tunnels.map(\.name) }

    /// The files a configuration names, each as the configuration writes it and the path to
    /// read it from (relative names are relative to the configuration's directory). Empty when
    /// the configuration does not parse: `make` reports that.
    public static func filesIncluded(by config: NamedText) -> [(name: String, path: String)] {
        guard let file = try? ConfigFile.parse(config.text) else { return [] }
        let directory = config.path.contains("/") ? String(config.path[..<config.path.lastIndex(of: "/")!]) : "."
        return file.bridges.compactMap(\.flowsPath).map { name in
            (name, name.hasPrefix("/") ? name : "\(directory)/\(name)")
        }
    }

    /// Checks `request` and builds the plan; the first problem is the error.
    public static func make(_ request: ForwarderRequest) throws(PlanError) -> ForwarderPlan {
        let r = request
        try checkFlags(r)
        let (tunnelSpecs, mirrorSpecs, bridgeSpecs) = try records(r)
        if !bridgeSpecs.isEmpty { return try withBridges(r, bridgeSpecs, mirrors: mirrorSpecs) }
        let flowMode = r.mode == .flows || r.flowFile != nil || r.groupFile != nil || r.datapath != nil || !tunnelSpecs.isEmpty
            || r.configFile != nil || !mirrorSpecs.isEmpty
        let mode = flowMode ? .flows : (r.mode ?? (r.ports.count == 2 ? .xconnect : .normal))
        try checkPorts(r.ports, mode: mode, tunnels: tunnelSpecs.count)
        let tunnels: [TunnelPort]
        do throws(TunnelSpecError) { tunnels = try TunnelSpec.resolveAll(tunnelSpecs, interfaces: r.ports) } catch {
            throw PlanError("\(r.configFile != nil && r.vxlan.isEmpty ? r.configFile!.path : "--vxlan"): \(error)")
        }
        do throws(MirrorSpecError) {
            try MirrorControl.validate(mirrorSpecs, ports: PortNames(r.ports + tunnels.map(\.name)),
                                       interfaceCount: r.ports.count, tunnels: tunnels)
        } catch { throw PlanError(error.description) }
        var tables: FlowTables? = nil
        if flowMode, r.flowFile != nil || r.groupFile != nil {
            tables = try flowTables(r.flowFile, groups: r.groupFile, ports: r.ports + tunnels.map(\.name), maxFlows: r.maxFlows)
            // Groups alone: the default flow stays.
            if r.flowFile == nil {
                _ = try? tables!.add(FlowRule(priority: 0, actions: [.normal]))
            }
        }
        let names = PortNames(r.ports + tunnels.map(\.name), notSwitched: Set(tunnels.map(\.underlayPort)))
        var plan = ForwarderPlan(
            ports: r.ports, workers: r.workers, mode: mode, fanout: r.fanout, ring: try ring(r),
            idle: IdlePolicy(busyPollMicroseconds: r.busyPollMicroseconds), macAgingMs: UInt64(r.macAgingSeconds * 1000),
            macTableSize: r.macTableSize, datapath: datapath(r), flowTables: tables, fixPeers: r.fixPeers, tunnels: tunnels,
            mirrors: mirrorSpecs, layout: .single(names))
        try plan.setNeighbourReachable(r)
        return plan
    }

    /// A configuration with `bridges:`: the ports, tunnels and flows all come from it.
    static func withBridges(_ r: ForwarderRequest, _ specs: [BridgeSpec], mirrors: [MirrorSpec]) throws(PlanError)
        -> ForwarderPlan
    {
        let path = r.configFile?.path ?? "--config"
        if !r.ports.isEmpty { throw PlanError("\(path) has bridges: their ports replace --port; drop --port") }
        if r.flowFile != nil { throw PlanError("\(path) has bridges: each names its flow file (flows:); drop --flows") }
        if !r.vxlan.isEmpty { throw PlanError("\(path) has bridges: tunnels are bridge ports (type: vxlan); drop --vxlan") }
        if r.groupFile != nil { throw PlanError("\(path) has bridges: give each bridge's groups with shunt ctl --bridge NAME add-groups; drop --groups") }
        let bridged: BridgePlan
        do throws(PlanError) { bridged = try BridgePlan.make(specs, flowFiles: r.includedFiles, maxFlows: r.maxFlows) } catch {
            throw PlanError("\(path): \(error)")
        }
        if bridged.interfaces.count + bridged.tunnels.count > Int(SHUNT_MAX_PORTS) {
            throw PlanError("at most \(SHUNT_MAX_PORTS) ports (interfaces and tunnels) are supported, got \(bridged.interfaces.count + bridged.tunnels.count)")
        }
        do throws(MirrorSpecError) {
            try MirrorControl.validate(mirrors, ports: PortNames(bridged.interfaces + bridged.tunnels.map(\.name)),
                                       interfaceCount: bridged.interfaces.count, tunnels: bridged.tunnels)
        } catch { throw PlanError(error.description) }
        var plan = ForwarderPlan(
            ports: bridged.interfaces, workers: r.workers, mode: .flows, fanout: r.fanout, ring: try ring(r),
            idle: IdlePolicy(busyPollMicroseconds: r.busyPollMicroseconds), macAgingMs: UInt64(r.macAgingSeconds * 1000),
            macTableSize: r.macTableSize, datapath: datapath(r), flowTables: bridged.tables, fixPeers: r.fixPeers,
            tunnels: bridged.tunnels, mirrors: mirrors, layout: bridged.layout)
        try plan.setNeighbourReachable(r)
        return plan
    }

    /// `--neigh-reachable`, which only tunnels use.
    mutating func setNeighbourReachable(_ r: ForwarderRequest) throws(PlanError) {
        guard let seconds = r.neighbourReachableSeconds else { return }
        guard seconds >= 0.1 && seconds <= 3600 else {
            throw PlanError("--neigh-reachable must be between 0.1 and 3600 seconds, got \(seconds)")
        }
        if tunnels.isEmpty {
            throw PlanError("--neigh-reachable is for tunnel ports (--vxlan, or vxlan ports in --config); there are none")
        }
        neighbourReachableMs = UInt64(seconds * 1000)
    }

    static func datapath(_ r: ForwarderRequest) -> FlowDatapathConfig {
        var datapath = FlowDatapathConfig()
        datapath.kind = r.datapath ?? .afpacket
        datapath.cacheSize = r.cacheSize
        datapath.maxFlows = r.maxFlows
        datapath.upcallBudgetPerSecond = r.upcallBudget
        datapath.idleTimeoutMs = UInt64(r.idleTimeoutSeconds * 1000)
        return datapath
    }

    /// Flag values that are wrong on their own, or together.
    static func checkFlags(_ r: ForwarderRequest) throws(PlanError) {
        if r.ports.isEmpty && r.configFile == nil {
            throw PlanError("give the interfaces to forward between: --port IF --port IF (or bridges in --config FILE)")
        }
        guard (1...64).contains(r.workers) else { throw PlanError("--workers must be between 1 and 64, got \(r.workers)") }
        if r.macAgingSeconds <= 0 { throw PlanError("--mac-aging must be more than 0") }
        if r.txFrames < 1 { throw PlanError("--tx-frames must be at least 1") }
        if r.lowLatency && r.ringVersion == .v3 { throw PlanError("--low-latency uses TPACKET_V2 rings; drop --ring-version v3") }
        if let mode = r.mode, mode != .flows && (r.flowFile != nil || r.groupFile != nil || r.datapath != nil) {
            throw PlanError("--flows, --groups and --datapath run flow tables; they cannot be combined with --mode \(mode.rawValue)")
        }
        if r.cacheSize < 1 || r.cacheSize > 16_777_216 { throw PlanError("--cache-size must be between 1 and 16777216") }
        if r.maxFlows < 1 || r.maxFlows > 1_048_576 { throw PlanError("--max-flows must be between 1 and 1048576") }
        if r.upcallBudget < 1 { throw PlanError("--upcall-budget must be at least 1 per second") }
        if r.idleTimeoutSeconds <= 0 { throw PlanError("--idle-timeout must be more than 0 seconds") }
        if r.fixPeers && r.datapath != .xdp { throw PlanError("--fix-peers is for --datapath xdp") }
        if let mode = r.mode, mode != .flows && !r.mirrors.isEmpty {
            throw PlanError("mirror sessions (--mirror) run on flow tables (the default table is NORMAL); drop --mode \(mode.rawValue)")
        }
        if let mode = r.mode, mode != .flows && (!r.vxlan.isEmpty || r.configFile != nil) {
            throw PlanError("tunnel ports (--vxlan) run on flow tables (the default table is NORMAL); drop --mode \(mode.rawValue)")
        }
    }

    /// The tunnels and mirror sessions: the configuration file's first, then the flags'.
    static func records(_ r: ForwarderRequest) throws(PlanError) -> ([TunnelSpec], [MirrorSpec], [BridgeSpec]) {
        var file = ConfigFile()
        if let config = r.configFile {
            do throws(ConfigFile.Invalid) { file = try ConfigFile.parse(config.text) } catch {
                throw PlanError("\(config.path): \(error)")
            }
        }
        var tunnels = file.tunnels
        for text in r.vxlan {
            do throws(TunnelSpecError) { tunnels.append(try TunnelSpec.parse(text)) } catch {
                throw PlanError("--vxlan: \(error)")
            }
        }
        var mirrors = file.mirrors
        for text in r.mirrors {
            do throws(MirrorSpecError) { mirrors.append(try MirrorSpec.parse(text)) } catch {
                throw PlanError(error.description)
            }
        }
        return (tunnels, mirrors, file.bridges)
    }

    /// Port counts the mode cannot use.
    static func checkPorts(_ ports: [String], mode: ForwardingMode, tunnels: Int) throws(PlanError) {
        var seen = Set<String>()
        for p in ports where !seen.insert(p).inserted {
            throw PlanError("port '\(p)' is given twice; each interface can be a port once")
        }
        guard ports.count >= 2 else {
            throw PlanError("\(mode.rawValue) mode needs at least two ports, got \(ports.count); give another with --port IF")
        }
        if mode == .xconnect && ports.count % 2 != 0 {
            throw PlanError("xconnect pairs ports (1<->2, 3<->4, ...) but \(ports.count) ports were given; add or remove one, or use --mode normal")
        }
        if ports.count + tunnels > Int(SHUNT_MAX_PORTS) {
            throw PlanError("at most \(SHUNT_MAX_PORTS) ports (interfaces and tunnels) are supported, got \(ports.count + tunnels)")
        }
    }

    /// The RX and TX ring geometry the flags describe, checked.
    static func ring(_ r: ForwarderRequest) throws(PlanError) -> RingPortConfig {
        let version: RingVersion = r.lowLatency ? .v2 : (r.ringVersion ?? .v2)
        let blockCount = r.blockCount ?? RingGeometry.defaultRX(version).blockCount
        let rx = RingGeometry(blockSize: r.blockSize, blockCount: blockCount, frameSize: r.frameSize,
                              blockTimeoutMs: version == .v3 ? r.blockTimeoutMs : 0)
        let framesPerBlock = max(1, (1 << 16) / max(r.frameSize, 1))
        let tx = RingGeometry(blockSize: 1 << 16, blockCount: max(1, (r.txFrames + framesPerBlock - 1) / framesPerBlock),
                              frameSize: r.frameSize, blockTimeoutMs: 0)
        do throws(RingGeometry.Invalid) { try rx.validate(for: version, rx: true) } catch {
            throw PlanError(RingSetupError.invalidGeometry("RX", error).description)
        }
        do throws(RingGeometry.Invalid) { try tx.validate(for: version, rx: false) } catch {
            throw PlanError(RingSetupError.invalidGeometry("TX", error).description)
        }
        return RingPortConfig(version: version, rx: rx, tx: tx, qdiscBypass: r.qdiscBypass, transmit: r.transmit)
    }

    /// A flow file's rules as tables; an error names the file, line and column.
    /// The tables of a flow file, after the groups of a group file (flows may use them).
    static func flowTables(_ file: NamedText?, groups: NamedText?, ports: [String], maxFlows: Int) throws(PlanError)
        -> FlowTables
    {
        var tables = FlowTables(maxRules: maxFlows)
        if let groups {
            do {
                for group in try GroupSyntax.parseGroupFile(groups.text, ports: PortNames(ports)) {
                    try tables.addGroup(group, replace: false)
                }
            } catch {
                throw PlanError("\(groups.path): \(error)")
            }
        }
        guard let file else { return tables }
        do {
            let rules = try FlowSyntax.parseFlowFile(file.text, ports: PortNames(ports))
            for rule in rules { _ = try tables.add(rule) }
            return tables
        } catch {
            throw PlanError("\(file.path): \(error)")
        }
    }
}
