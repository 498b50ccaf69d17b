import CShunt
import Glibc
import Testing
@testable import ShuntSystem

/// RTM_NEWLINK replies as the kernel writes them, read into link records (no kernel).
@Suite("Interface survey: link records (no kernel)")
struct InterfaceSurveyTests {
    /// An RTM_NEWLINK for `name` (ifindex 5, up, MTU 1450) with the given IFLA_LINKINFO body.
    func newLink(_ name: String, linkInfo: [UInt8], extra: [UInt8] = []) throws -> NetlinkMessage {
        var info = ifinfomsg()
        info.ifi_index = 5
        info.ifi_flags = UInt32(IFF_UP)
        let body = bytes(of: info) + attribute(Int(IFLA_IFNAME), Array(name.utf8) + [0])
            + attribute(Int(IFLA_MTU), bytes(of: UInt32(1450))) + attribute(Int(IFLA_LINKINFO) | Int(NLA_F_NESTED), linkInfo) + extra
        let collector = try collect([netlinkMessage(type: Int32(RTM_NEWLINK), sequence: 1, body: body)], sequence: 1)
        return try #require(collector.messages.first)
    }

    @Test func vxlanDeviceWithItsPortAndAddresses() throws {
        let data = attribute(Int(IFLA_VXLAN_ID), bytes(of: UInt32(42)))
            + attribute(Int(IFLA_VXLAN_PORT), bytes(of: UInt16(8472).bigEndian))
            + attribute(Int(IFLA_VXLAN_LOCAL), [192, 0, 2, 1]) + attribute(Int(IFLA_VXLAN_GROUP), [192, 0, 2, 2])
            + attribute(Int(IFLA_VXLAN_LINK), bytes(of: UInt32(3))) + attribute(Int(IFLA_VXLAN_TTL), [0])
        let info = attribute(Int(IFLA_INFO_KIND), Array("vxlan".utf8) + [0]) + attribute(Int(IFLA_INFO_DATA) | Int(NLA_F_NESTED), data)
        let record = try #require(InterfaceSurvey.record(try newLink("vx0", linkInfo: info, extra: attribute(Int(IFLA_MASTER), bytes(of: UInt32(9))))))
        #expect(record.name == "vx0" && record.index == 5 && record.isUp && record.mtu == 1450 && record.kind == "vxlan")
        #expect(record.master == 9 && !record.hasXDP)
        let vxlan = try #require(record.vxlan)
        #expect(vxlan == VXLANSettings(vni: 42, dstport: 8472, local: "192.0.2.1", remote: "192.0.2.2", underlay: 3, ttl: 0, external: false))
    }

    /// `external` devices have no VNI; a 0.0.0.0 address is no address.
    @Test func externalDeviceWithoutAddresses() throws {
        let data = attribute(Int(IFLA_VXLAN_PORT), bytes(of: UInt16(4789).bigEndian)) + attribute(Int(IFLA_VXLAN_LOCAL), [0, 0, 0, 0])
            + attribute(Int(IFLA_VXLAN_COLLECT_METADATA), [1])
        let info = attribute(Int(IFLA_INFO_KIND), Array("vxlan".utf8) + [0]) + attribute(Int(IFLA_INFO_DATA) | Int(NLA_F_NESTED), data)
        let vxlan = try #require(InterfaceSurvey.record(try newLink("vxe", linkInfo: info))?.vxlan)
        #expect(vxlan.vni == nil && vxlan.dstport == 4789 && vxlan.local == nil && vxlan.remote == nil && vxlan.external)
    }

    @Test func otherKindsCarryNoVXLANSettings() throws {
        let info = attribute(Int(IFLA_INFO_KIND), Array("veth".utf8) + [0])
        let xdp = attribute(Int(IFLA_XDP) | Int(NLA_F_NESTED), attribute(Int(IFLA_XDP_ATTACHED), [UInt8(XDP_ATTACHED_DRV)]))
        let record = try #require(InterfaceSurvey.record(try newLink("p0", linkInfo: info, extra: xdp)))
        #expect(record.kind == "veth" && record.vxlan == nil && record.master == nil && record.hasXDP)
    }

    @Test func dumpRequestAndNamedRequest() {
        #expect(InterfaceSurvey.linkRequest(name: nil).isDump)
        #expect(!InterfaceSurvey.linkRequest(name: "p0").isDump)
    }
}
