import CShunt
import Glibc

// What `shunt doctor` reads about interfaces beyond XDPPeers' redirect readiness: each link's
// MTU, driver and offloads (in its own namespace, for a veth peer elsewhere), and the kernel
// vxlan devices of a namespace with their UDP port. Read-only: nothing here changes a setting.

/// The offloads of one interface that decide whether forwarded flows can leave the slow path.
/// Read with the legacy ethtool_value ioctls, which every driver answers from its features.
public struct Offloads: Sendable, Equatable {
    /// ETHTOOL_GTXCSUM: the stack leaves TX checksums to the device (CHECKSUM_PARTIAL skbs).
    public var txChecksum: Bool
    /// ETHTOOL_GTSO: TCP segmentation is left to the device: frames up to 64 KiB leave the stack.
    public var tso: Bool
    /// ETHTOOL_GGRO: received TCP segments are merged before taps (AF_PACKET) see them; on a
    /// veth it also gives the device the NAPI ring that XDP redirects into its peer need.
    public var gro: Bool
    /// ETH_FLAG_LRO of ETHTOOL_GFLAGS: the NIC merges received segments.
    public var lro: Bool

    public init(txChecksum: Bool, tso: Bool, gro: Bool, lro: Bool) {
        (self.txChecksum, self.tso, self.gro, self.lro) = (txChecksum, tso, gro, lro)
    }
}

/// One interface as RTM_GETLINK describes it, plus what a vxlan device carries.
public struct LinkRecord: Sendable, Equatable {
    public let index: Int32
    public let name: String
    public let flags: UInt32
    /// IFLA_INFO_KIND ("veth", "vxlan", "bridge", ...); nil for loopback and physical NICs.
    public let kind: String?
    public let mtu: Int
    /// IFLA_MASTER: the bridge (or bond) this interface is a port of.
    public let master: Int32?
    /// Some XDP program is attached (IFLA_XDP_ATTACHED or a program id).
    public let hasXDP: Bool
    /// IFLA_INFO_DATA of a vxlan device; nil for other kinds.
    public let vxlan: VXLANSettings?

    public var isUp: Bool { flags & UInt32(IFF_UP) != 0 }
}

/// A kernel vxlan device's settings (IFLA_VXLAN_*), enough to say which UDP port it uses and to
/// write the command that creates it again.
public struct VXLANSettings: Sendable, Equatable {
    public let vni: UInt32?
    /// IFLA_VXLAN_PORT in host order: the destination (and listening) UDP port.
    public let dstport: UInt16
    public let local: String?
    /// IFLA_VXLAN_GROUP: the unicast remote or the multicast group.
    public let remote: String?
    /// IFLA_VXLAN_LINK: the underlay's ifindex.
    public let underlay: Int32?
    public let ttl: UInt8?
    /// IFLA_VXLAN_COLLECT_METADATA (`external`): the VNI and remote come per packet.
    public let external: Bool

    public init(vni: UInt32?, dstport: UInt16, local: String?, remote: String?, underlay: Int32?, ttl: UInt8?, external: Bool) {
        (self.vni, self.dstport, self.local, self.remote) = (vni, dstport, local, remote)
        (self.underlay, self.ttl, self.external) = (underlay, ttl, external)
    }
}

/// An interface's link record with its offloads and driver, read in its own namespace.
public struct InterfaceSettings: Sendable, Equatable {
    public let link: LinkRecord
    /// nil when the ethtool ioctls failed (the device answers none).
    public let offloads: Offloads?
    /// The driver: the link kind for virtual devices, else DRIVER= from sysfs, "loopback" for
    /// lo; nil if unknown.
    public let driver: String?
}

public enum InterfaceSurvey {
    /// Every interface of the calling thread's namespace (an RTM_GETLINK dump).
    public static func links() throws(SystemError) -> [LinkRecord] {
        var route = try NetlinkSocket(.route)
        return try route.transact(linkRequest(name: nil)).compactMap(record)
    }

    /// The interface `name` with its offloads and driver, read in the named namespace
    /// (/run/netns/NAME) or, with nil, in the calling thread's. A missing one fails with ENODEV.
    public static func settings(of name: String, namespace: String?) throws(SystemError) -> InterfaceSettings {
        let read = { () throws(SystemError) -> InterfaceSettings in
            var route = try NetlinkSocket(.route)
            guard let link = try route.transact(linkRequest(name: name)).compactMap(record).first else {
                throw SystemError(errno: EPROTO, call: "RTM_GETLINK \"\(name)\" (no RTM_NEWLINK in the reply)")
            }
            let loopback = link.flags & UInt32(IFF_LOOPBACK) != 0 ? "loopback" : nil
            return InterfaceSettings(link: link, offloads: try? offloads(of: name),
                                     driver: link.kind ?? sysfsDriver(of: name) ?? loopback)
        }
        try XDPPeers.checkName(name)
        guard let namespace else { return try read() }
        return try XDPPeers.inNamespace(namespace, read)
    }

    /// The xdp-features of `ifindex` (NETDEV_CMD_DEV_GET), as XDPPeers reads them; nil when the
    /// kernel has no `netdev` family (before Linux 6.3).
    public static func xdpFeatures(ifindex: Int32) throws(SystemError) -> XDPFeatures? {
        try XDPPeers.xdpFeatures(ifindex: ifindex)
    }

    /// The name under /run/netns of the calling thread's network namespace, or nil when it has
    /// none there (the host's, usually).
    public static func currentNamespaceName() -> String? {
        guard let own = try? Sys.fileIdentity("/proc/thread-self/ns/net"),
              let names = try? Sys.directoryEntries("/run/netns") else { return nil }
        return names.sorted().first { (try? Sys.fileIdentity("/run/netns/\($0)")) == own }
    }

    // MARK: steps

    static func linkRequest(name: String?) -> NetlinkRequest {
        var request = NetlinkRequest(type: UInt16(RTM_GETLINK), flags: name == nil ? UInt16(NLM_F_DUMP) : 0,
                                     summary: name.map { "RTM_GETLINK \"\($0)\"" } ?? "RTM_GETLINK dump")
        var header = ifinfomsg()
        header.ifi_family = UInt8(AF_UNSPEC)
        request.appendHeader(header)
        if let name { request.addAttribute(UInt16(IFLA_IFNAME), string: name) }
        request.addAttribute(UInt16(IFLA_EXT_MASK), UInt32(RTEXT_FILTER_SKIP_STATS))
        return request
    }

    /// An RTM_NEWLINK message as a record; nil for other messages.
    static func record(_ message: NetlinkMessage) -> LinkRecord? {
        guard message.type == UInt16(RTM_NEWLINK), let info = message.header(ifinfomsg.self) else { return nil }
        let attributes = message.attributes(afterHeaderOf: MemoryLayout<ifinfomsg>.size)
        let linkInfo = attributes[UInt16(IFLA_LINKINFO)]?.nested
        let kind = linkInfo?[UInt16(IFLA_INFO_KIND)]?.string
        var hasXDP = false
        if let xdp = attributes[UInt16(IFLA_XDP)]?.nested {
            let attached = xdp[UInt16(IFLA_XDP_ATTACHED)]?.u8 ?? UInt8(XDP_ATTACHED_NONE)
            hasXDP = attached != UInt8(XDP_ATTACHED_NONE) || (xdp[UInt16(IFLA_XDP_PROG_ID)]?.u32 ?? 0) != 0
        }
        let data = linkInfo?[UInt16(IFLA_INFO_DATA)]?.nested
        return LinkRecord(
            index: info.ifi_index, name: attributes[UInt16(IFLA_IFNAME)]?.string ?? "", flags: info.ifi_flags, kind: kind,
            mtu: Int(attributes[UInt16(IFLA_MTU)]?.u32 ?? 0),
            master: attributes[UInt16(IFLA_MASTER)]?.u32.map { Int32(bitPattern: $0) },
            hasXDP: hasXDP, vxlan: kind == "vxlan" ? data.map(vxlanSettings) : nil)
    }

    static func vxlanSettings(_ data: NetlinkAttributes) -> VXLANSettings {
        func address(_ type: Int) -> String? {
            guard let a = data[UInt16(type)], a.payload.count == 4 else { return nil }
            let text = a.payload.map { String($0) }.joined(separator: ".")
            return text == "0.0.0.0" ? nil : text
        }
        let port = data[UInt16(IFLA_VXLAN_PORT)]?.u16.map { UInt16(bigEndian: $0) } ?? 0
        return VXLANSettings(
            vni: data[UInt16(IFLA_VXLAN_ID)]?.u32, dstport: port, local: address(Int(IFLA_VXLAN_LOCAL)),
            remote: address(Int(IFLA_VXLAN_GROUP)), underlay: data[UInt16(IFLA_VXLAN_LINK)]?.u32.map { Int32(bitPattern: $0) },
            ttl: data[UInt16(IFLA_VXLAN_TTL)]?.u8, external: (data[UInt16(IFLA_VXLAN_COLLECT_METADATA)]?.u8 ?? 0) != 0)
    }

    /// The offloads of `name` in the calling thread's namespace.
    static func offloads(of name: String) throws(SystemError) -> Offloads {
        let control = try InterfaceControlSocket()
        func value(_ command: Int32, _ label: String) throws(SystemError) -> UInt32 {
            try XDPPeers.ethtool(label, name) { () throws(SystemError) in
                try Sys.ethtoolValue(UInt32(command), interface: name, using: control.fd)
            }
        }
        let flags = try value(ETHTOOL_GFLAGS, "ETHTOOL_GFLAGS")
        return Offloads(
            txChecksum: try value(ETHTOOL_GTXCSUM, "ETHTOOL_GTXCSUM") != 0, tso: try value(ETHTOOL_GTSO, "ETHTOOL_GTSO") != 0,
            gro: try value(ETHTOOL_GGRO, "ETHTOOL_GGRO") != 0, lro: flags & UInt32(ETH_FLAG_LRO.rawValue) != 0)
    }

    /// DRIVER= of /sys/class/net/NAME/device/uevent (physical devices; `ip netns exec` mounts a
    /// /sys of the namespace, so this finds the namespace's devices there).
    static func sysfsDriver(of name: String) -> String? {
        guard let bytes = try? Sys.readWholeFile("/sys/class/net/\(name)/device/uevent") else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        return text.split(separator: "\n").first { $0.hasPrefix("DRIVER=") }.map { String($0.dropFirst(7)) }
    }
}

extension Sys {
    /// fstat(2) of `path` opened read-only, so following symbolic links: its device and inode
    /// (for a namespace file such as /proc/thread-self/ns/net, the namespace's identity).
    @inline(never)
    public static func fileIdentity(_ path: String) throws(SystemError) -> FileIdentity {
        let fd = try open(path, flags: O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        var st = stat()
        _ = try check(Glibc.fstat(fd, &st), "fstat")
        return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }
}

/// Which file a path names: its device and inode.
public struct FileIdentity: Sendable, Equatable {
    public let device: UInt64
    public let inode: UInt64
}
