import CShunt
import Glibc

/// VETH_INFO_PEER from linux/veth.h (not in Glibc's module; the value is uapi and fixed).
private let vethInfoPeer: UInt16 = 1

extension NetlinkSocket {
    /// RTM_NEWLINK: a veth pair `name` <-> `peer` in this namespace, one queue each, down.
    public mutating func createVethPair(name: String, peer: String) throws(SystemError) {
        precondition(netlinkProtocol == .route, "RTM_NEWLINK needs a NETLINK_ROUTE socket")
        var request = NetlinkRequest(type: UInt16(RTM_NEWLINK), flags: UInt16(NLM_F_CREATE | NLM_F_EXCL),
                                     summary: "RTM_NEWLINK veth \"\(name)\" peer \"\(peer)\"")
        var header = ifinfomsg()
        header.ifi_family = UInt8(AF_UNSPEC)
        request.appendHeader(header)
        request.addAttribute(UInt16(IFLA_IFNAME), string: name)
        request.addNested(UInt16(IFLA_LINKINFO)) { info in
            info.addAttribute(UInt16(IFLA_INFO_KIND), string: "veth")
            info.addNested(UInt16(IFLA_INFO_DATA)) { data in
                data.addNested(vethInfoPeer) { p in
                    var peerHeader = ifinfomsg()
                    peerHeader.ifi_family = UInt8(AF_UNSPEC)
                    p.appendHeader(peerHeader)
                    p.addAttribute(UInt16(IFLA_IFNAME), string: peer)
                }
            }
        }
        _ = try transact(request)
    }

    /// RTM_NEWLINK on an existing interface: sets it up.
    public mutating func setLinkUp(index: Int32) throws(SystemError) {
        _ = try transact(Self.linkRequest(UInt16(RTM_NEWLINK), index: index, setFlags: UInt32(IFF_UP),
                                          summary: "RTM_NEWLINK ifindex \(index) up"))
    }

    /// RTM_DELLINK (a veth takes its peer with it).
    public mutating func deleteLink(index: Int32) throws(SystemError) {
        _ = try transact(Self.linkRequest(UInt16(RTM_DELLINK), index: index, setFlags: 0, summary: "RTM_DELLINK ifindex \(index)"))
    }

    /// A request about the interface `index` that sets `setFlags` (and changes only those).
    private static func linkRequest(_ type: UInt16, index: Int32, setFlags: UInt32, summary: String) -> NetlinkRequest {
        var request = NetlinkRequest(type: type, summary: summary)
        var header = ifinfomsg()
        header.ifi_family = UInt8(AF_UNSPEC)
        header.ifi_index = index
        header.ifi_flags = setFlags
        header.ifi_change = setFlags
        request.appendHeader(header)
        return request
    }
}
