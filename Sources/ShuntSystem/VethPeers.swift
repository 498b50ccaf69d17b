import CShunt
import Glibc

// Whether XDP_REDIRECT into an interface can deliver, and the veth peer that decides it.
//
// bpf_redirect_map() into a veth hands frames to the peer's NAPI ring (veth_xdp_xmit), which
// exists only while the peer is up and has an XDP program or GRO enabled; otherwise the frames
// are dropped without a trace. Kernels with the `netdev` generic netlink family (Linux 6.3+)
// say whether the ring is there: the veth then advertises NETDEV_XDP_ACT_NDO_XMIT in its
// xdp-features, and redirects through __xdp_enqueue fail with EOPNOTSUPP without it.
//
// The veth driver recomputes that bit only at some events: when the veth itself is opened,
// when the peer's GRO changes while the peer is up, when the peer's XDP program or the queue
// counts change. Switching GRO on while the peer is down and bringing the peer up afterwards
// leaves the bit off (seen on Linux 6.18), even though the peer's NAPI then runs. So
// `enableGRO` re-applies GRO that is already on, and the peer should be up when it is called.

/// The kernel's `enum netdev_xdp_act`: what XDP can do with a device (NETDEV_A_DEV_XDP_FEATURES).
public struct XDPFeatures: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// `NETDEV_XDP_ACT_BASIC`: XDP_ABORTED, XDP_DROP, XDP_PASS and XDP_TX.
    public static let basic = XDPFeatures(rawValue: UInt64(CSHUNT_NETDEV_XDP_ACT_BASIC))
    /// `NETDEV_XDP_ACT_REDIRECT`: a program on this device may redirect out of it.
    public static let redirect = XDPFeatures(rawValue: UInt64(CSHUNT_NETDEV_XDP_ACT_REDIRECT))
    /// `NETDEV_XDP_ACT_NDO_XMIT`: frames may be redirected into this device (ndo_xdp_xmit).
    public static let ndoXmit = XDPFeatures(rawValue: UInt64(CSHUNT_NETDEV_XDP_ACT_NDO_XMIT))
    /// `NETDEV_XDP_ACT_XSK_ZEROCOPY`: AF_XDP zero-copy.
    public static let xskZeroCopy = XDPFeatures(rawValue: UInt64(CSHUNT_NETDEV_XDP_ACT_XSK_ZEROCOPY))
    /// `NETDEV_XDP_ACT_HW_OFFLOAD`: programs can be offloaded to the NIC.
    public static let hardwareOffload = XDPFeatures(rawValue: UInt64(CSHUNT_NETDEV_XDP_ACT_HW_OFFLOAD))
    /// `NETDEV_XDP_ACT_RX_SG`: multi-buffer frames on receive.
    public static let receiveScatterGather = XDPFeatures(rawValue: UInt64(CSHUNT_NETDEV_XDP_ACT_RX_SG))
    /// `NETDEV_XDP_ACT_NDO_XMIT_SG`: multi-buffer frames may be redirected into this device.
    public static let ndoXmitScatterGather = XDPFeatures(rawValue: UInt64(CSHUNT_NETDEV_XDP_ACT_NDO_XMIT_SG))
}

/// The other end of a veth pair.
public struct VethPeer: Sendable, Equatable {
    public let name: String
    /// The peer's ifindex in its own namespace.
    public let ifindex: Int32
    /// The named namespace (/run/netns/NAME) holding the peer; nil if the peer is in the
    /// namespace of the thread that asked.
    public let namespace: String?
    /// GRO is on (ETHTOOL_GGRO): the peer keeps a NAPI ring that redirected frames can enter.
    public let groEnabled: Bool
    /// Some XDP program is attached to the peer (IFLA_XDP), which also gives it that ring.
    public let hasXDP: Bool
    /// IFF_UP. A peer that is down receives nothing, redirected or not.
    public let isUp: Bool

    public init(name: String, ifindex: Int32, namespace: String?, groEnabled: Bool, hasXDP: Bool, isUp: Bool) {
        self.name = name
        self.ifindex = ifindex
        self.namespace = namespace
        self.groEnabled = groEnabled
        self.hasXDP = hasXDP
        self.isUp = isUp
    }
}

/// Whether frames an XDP program redirects into `interface` can arrive.
public struct RedirectReadiness: Sendable {
    public let interface: String
    public let ifindex: Int32
    /// NETDEV_A_DEV_XDP_FEATURES; nil if the kernel has no `netdev` family (before Linux 6.3).
    public let xdpFeatures: XDPFeatures?
    /// Whether the interface advertises NETDEV_XDP_ACT_NDO_XMIT; nil if the kernel cannot say.
    public var acceptsRedirect: Bool? { xdpFeatures.map { $0.contains(.ndoXmit) } }
    /// IFLA_INFO_KIND is "veth".
    public let isVeth: Bool
    /// The veth's peer; nil when the interface is not a veth, or its peer lives in a namespace
    /// with no name under /run/netns that this process can find.
    public let peer: VethPeer?
}

public enum XDPPeers {
    /// Reports whether XDP_REDIRECT into `interface` (in the calling thread's network namespace)
    /// can deliver and, for a veth, describes its peer, entering the peer's namespace if needed.
    /// A missing interface fails with ENODEV.
    public static func readiness(of interface: String) throws(SystemError) -> RedirectReadiness {
        try checkName(interface)
        var route = try NetlinkSocket(.route)
        let link = try route.link(named: interface)
        let features = try xdpFeatures(ifindex: link.index)
        let isVeth = link.kind == "veth"
        return RedirectReadiness(
            interface: link.name,
            ifindex: link.index,
            xdpFeatures: features,
            isVeth: isVeth,
            peer: isVeth ? try peer(of: link, using: &route) : nil
        )
    }

    /// Turns GRO on for `peer` (ETHTOOL_SGRO in its namespace) so that the veth in front of it
    /// accepts redirected frames. If GRO is on already, it is switched off and on again, which
    /// makes the driver recompute the veth's NDO_XMIT bit (see the top of this file); that
    /// restarts the peer's NAPI, and frames queued in it at that moment are dropped.
    ///
    /// Bring the peer up first: while it is down, the driver does not update the veth's bit.
    /// A peer with `namespace == nil` is looked for in the calling thread's namespace. Fails with
    /// ENODEV if the peer is gone or has another ifindex by now, and with EOPNOTSUPP if GRO
    /// reads back off.
    public static func enableGRO(on peer: VethPeer) throws(SystemError) {
        let enable = { () throws(SystemError) in
            var route = try NetlinkSocket(.route)
            guard try route.link(named: peer.name).index == peer.ifindex else {
                throw SystemError(
                    errno: ENODEV, call: "veth peer \"\(peer.name)\" (ifindex is no longer \(peer.ifindex))")
            }
            let control = try InterfaceControlSocket()
            let name = peer.name
            let getGRO = { () throws(SystemError) -> Bool in
                try ethtool("ETHTOOL_GGRO", name) { () throws(SystemError) in
                    try Sys.ethtoolValue(UInt32(ETHTOOL_GGRO), interface: name, using: control.fd) != 0
                }
            }
            let setGRO = { (on: Bool) throws(SystemError) in
                try ethtool("ETHTOOL_SGRO", name) { () throws(SystemError) in
                    try Sys.setEthtoolValue(UInt32(ETHTOOL_SGRO), on ? 1 : 0, interface: name, using: control.fd)
                }
            }
            if try getGRO() { try setGRO(false) }
            try setGRO(true)
            if try !getGRO() { throw SystemError(errno: EOPNOTSUPP, call: "ETHTOOL_SGRO \"\(name)\" (GRO stayed off)") }
        }
        if let namespace = peer.namespace {
            try inNamespace(namespace, enable)
        } else {
            try enable()
        }
    }

    // MARK: steps

    /// NETDEV_CMD_DEV_GET: the xdp-features of `ifindex`, or nil without the `netdev` family.
    static func xdpFeatures(ifindex: Int32) throws(SystemError) -> XDPFeatures? {
        var generic = try NetlinkSocket(.generic)
        guard let family = try generic.genericFamilyID(named: CSHUNT_NETDEV_FAMILY_NAME) else { return nil }
        var request = NetlinkRequest(type: family, summary: "NETDEV_CMD_DEV_GET ifindex \(ifindex)")
        request.appendHeader(genlmsghdr(
            cmd: UInt8(CSHUNT_NETDEV_CMD_DEV_GET), version: UInt8(CSHUNT_NETDEV_FAMILY_VERSION), reserved: 0))
        request.addAttribute(UInt16(CSHUNT_NETDEV_A_DEV_IFINDEX), UInt32(bitPattern: ifindex))
        let replies = try generic.transact(request)
        let attributes = replies.first?.attributes(afterHeaderOf: MemoryLayout<genlmsghdr>.size)
        return attributes?[UInt16(CSHUNT_NETDEV_A_DEV_XDP_FEATURES)]?.u64.map(XDPFeatures.init(rawValue:))
    }

    /// Finds and describes the peer of the veth `link`.
    static func peer(of link: LinkDescription, using route: inout NetlinkSocket) throws(SystemError) -> VethPeer? {
        // Older kernels leave IFLA_LINK out when the peer's ifindex equals the veth's own, which
        // can happen only across namespaces (ifindexes are per namespace).
        guard let peerIndex = link.link ?? (link.linkNamespaceID != nil ? link.index : nil), peerIndex > 0 else {
            return nil  // IFLA_LINK 0: the peer is being deleted
        }
        guard let nsid = link.linkNamespaceID else {
            return try describePeer(index: peerIndex, namespace: nil)
        }
        guard let namespace = namespaceName(id: nsid, using: &route) else { return nil }
        return try inNamespace(namespace) { () throws(SystemError) in
            try describePeer(index: peerIndex, namespace: namespace)
        }
    }

    /// The name under /run/netns of the namespace our namespace knows as `id`. Entries that
    /// vanish or are not namespaces are skipped.
    static func namespaceName(id: Int32, using route: inout NetlinkSocket) -> String? {
        guard id >= 0, let names = try? Sys.directoryEntries("/run/netns") else { return nil }
        for name in names.sorted() {
            guard let fd = try? Sys.open("/run/netns/\(name)", flags: O_RDONLY | O_CLOEXEC) else { continue }
            defer { Sys.close(fd) }
            if let found = try? route.namespaceID(of: fd), found == id { return name }
        }
        return nil
    }

    /// Reads the veth peer `index` of the calling thread's current namespace.
    static func describePeer(index: Int32, namespace: String?) throws(SystemError) -> VethPeer {
        var route = try NetlinkSocket(.route)
        let link = try route.link(index: index)
        let control = try InterfaceControlSocket()
        let gro = try ethtool("ETHTOOL_GGRO", link.name) { () throws(SystemError) in
            try Sys.ethtoolValue(UInt32(ETHTOOL_GGRO), interface: link.name, using: control.fd)
        }
        return VethPeer(
            name: link.name, ifindex: index, namespace: namespace, groEnabled: gro != 0, hasXDP: link.hasXDP,
            isUp: link.isUp)
    }

    // MARK: helpers

    /// Interface names are 1 to 15 bytes (IFNAMSIZ - 1) without '/' or white space.
    static func checkName(_ name: String) throws(SystemError) {
        let bytes = Array(name.utf8)
        let valid = !bytes.isEmpty && bytes.count < Int(IFNAMSIZ) && name != "." && name != ".."
            && !bytes.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 })
        if !valid { throw SystemError(errno: EINVAL, call: "interface name \"\(name)\"") }
    }

    /// Runs `body` with the calling thread in the named namespace.
    static func inNamespace<R>(_ name: String, _ body: () throws(SystemError) -> R) throws(SystemError) -> R {
        do {
            return try NetworkNamespace.run(in: name, body)
        } catch let error as SystemError {
            throw SystemError(errno: error.errno, call: "\(error.call) in namespace \"\(name)\"")
        } catch {
            // NetworkNamespace.run and `body` throw only SystemError.
            preconditionFailure("unexpected error \(error)")
        }
    }

    /// Names the ethtool command and interface in an ioctl's error.
    static func ethtool<R>(
        _ command: String, _ interface: String, _ body: () throws(SystemError) -> R
    ) throws(SystemError) -> R {
        do throws(SystemError) {
            return try body()
        } catch {
            throw SystemError(errno: error.errno, call: "\(error.call) \(command) \"\(interface)\"")
        }
    }
}
