import ShuntSystem

/// Everything `shunt doctor` found out, as plain values: `DoctorProbe` reads them from the
/// kernel, `Diagnosis` turns them into checks without touching the system (unit-tested).
public struct DoctorFacts: Sendable {
    /// The name under /run/netns of the namespace doctor runs in (nil: none, e.g. the host's).
    /// Fixes for this namespace are written `ip netns exec NAME ...` when it has one.
    public var namespace: String?
    /// The command line as given, for fixes that run it again (`sudo ...`).
    public var commandLine: [String] = []
    public var userID: UInt32 = 0
    /// Effective capabilities (the CapEff bits of /proc/self/status).
    public var capabilities: UInt64 = 0
    public var ports: [PortFacts] = []
    /// Kernel vxlan devices of this namespace.
    public var vxlanDevices: [VXLANDeviceFacts] = []
    /// Linux bridges of this namespace (their names).
    public var bridges: [String] = []
    /// net.bridge.bridge-nf-call-* as (key, value); nil when /proc/sys/net/bridge is absent
    /// (br_netfilter not loaded).
    public var bridgeNetfilter: [(key: String, value: Int)]?
    /// /proc/self/mounts; nil if unreadable.
    public var mounts: String?
    public var engines: EngineFacts?
    public var cpus: Int = 1
    /// `--workers N`, if given.
    public var workers: Int?

    public init() {}
}

/// One `--port` interface, and for a veth its peer.
public struct PortFacts: Sendable {
    public var name: String
    public var isUp = true
    public var mtu = 1500
    /// "veth", "vxlan", ... for virtual devices, else the driver's name from sysfs; nil if unknown.
    public var driver: String?
    public var isVeth = false
    /// Some XDP program is attached to the port itself.
    public var hasXDP = false
    /// That program, as "'name' (id N)", when the kernel names it.
    public var xdpProgram: String?
    /// A bpf_link of some process holds that program: `ip link ... xdp off` cannot remove it.
    public var xdpProgramThroughLink = false
    /// nil when unreadable.
    public var offloads: Offloads?
    /// NETDEV_A_DEV_XDP_FEATURES; nil when the kernel does not report them (before Linux 6.3).
    public var xdpFeatures: XDPFeatures?
    /// Why `xdpFeatures` could not be read, if it could not (nil also when the kernel has none).
    public var featuresError: String?
    /// The veth's peer; nil for other devices or when it could not be read (`peerError`: say
    /// XDPPeers' readiness check could not enter its namespace).
    public var peer: PeerFacts?
    public var peerError: String?

    public init(name: String) { self.name = name }

    /// NETDEV_XDP_ACT_NDO_XMIT: frames redirected into the port are taken; nil: cannot tell.
    public var acceptsRedirect: Bool? { xdpFeatures.map { $0.contains(.ndoXmit) } }
}

/// A veth peer: XDPPeers' view (GRO, XDP, up) plus its offloads and MTU, read in its namespace.
public struct PeerFacts: Sendable {
    public var name: String
    /// The named namespace holding it; nil: the same namespace as the port.
    public var namespace: String?
    public var isUp = true
    public var gro = false
    public var hasXDP = false
    /// nil when unreadable.
    public var offloads: Offloads?
    public var mtu: Int?

    public init(name: String, namespace: String?) { (self.name, self.namespace) = (name, namespace) }
}

/// A kernel vxlan device: the settings `ip link add ... type vxlan` takes.
public struct VXLANDeviceFacts: Sendable {
    public var name: String
    public var settings: VXLANSettings
    /// The underlay's name (IFLA_VXLAN_LINK), the bridge it is a port of.
    public var underlay: String?
    public var master: String?

    public init(name: String, settings: VXLANSettings, underlay: String? = nil, master: String? = nil) {
        (self.name, self.settings, self.underlay, self.master) = (name, settings, underlay, master)
    }
}

/// What `shunt gen --list-engines` reports, probed on one port.
public struct EngineFacts: Sendable {
    /// The interface probed (the first --port, else lo).
    public var port: String
    /// nil: live frames allowed; else the errno name of the refusal ("EPERM").
    public var liveFramesRefusal: String?
    /// "copy mode, 1 TX queue" when an AF_XDP socket opened; else nil and `afxdpError`.
    public var afxdp: String?
    public var afxdpError: String?
    /// The engine `--engine auto` takes: xdp, afxdp or ring.
    public var auto: String
    /// Why the engines could not be probed at all (then the fields above say nothing).
    public var probeError: String?

    public init(port: String, liveFramesRefusal: String?, afxdp: String?, afxdpError: String?, auto: String) {
        (self.port, self.liveFramesRefusal, self.afxdp, self.afxdpError, self.auto) = (port, liveFramesRefusal, afxdp, afxdpError, auto)
    }

    public init(port: String, probeError: String) {
        (self.port, self.auto, self.probeError) = (port, "ring", probeError)
    }
}
