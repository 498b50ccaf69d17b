import ShuntCore
import ShuntPipeline

/// The flows of docs' Neutron DVR reference (shared/reference/neutron-dvr.md), verbatim: the
/// canonical text they must parse from and print back to.
enum NeutronDVR {
    /// Host 1, br-tun: port 1 is the patch to br-int, ports 3 and 4 are VXLAN tunnels.
    static let host1BrTun = """
        table=0,priority=1,in_port=1 actions=resubmit(,1)
        table=0,priority=1,in_port=3 actions=resubmit(,4)
        table=0,priority=1,in_port=4 actions=resubmit(,4)
        table=0,priority=0 actions=drop
        table=1,priority=3,arp,dl_vlan=1,arp_tpa=10.0.1.1 actions=drop
        table=1,priority=3,arp,dl_vlan=2,arp_tpa=10.0.2.1 actions=drop
        table=1,priority=2,dl_vlan=1,dl_dst=fa:16:3e:66:13:af actions=drop
        table=1,priority=2,dl_vlan=2,dl_dst=fa:16:3e:69:b4:05 actions=drop
        table=1,priority=1,dl_vlan=1,dl_src=fa:16:3e:66:13:af actions=mod_dl_src:fa:16:3f:fe:49:e9,resubmit(,2)
        table=1,priority=1,dl_vlan=2,dl_src=fa:16:3e:69:b4:05 actions=mod_dl_src:fa:16:3f:fe:49:e9,resubmit(,2)
        table=1,priority=0 actions=resubmit(,2)
        table=2,priority=0,dl_dst=00:00:00:00:00:00/01:00:00:00:00:00 actions=resubmit(,20)
        table=2,priority=0,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=resubmit(,22)
        table=20,priority=2,dl_vlan=2,dl_dst=fa:16:3e:51:99:b8 actions=strip_vlan,set_tunnel:0x3eb,output:4
        """

    /// Host 2, br-tun: tunnelled traffic is mapped from VNI to local VLAN, then delivered to
    /// br-int (port 1) when it comes from a known DVR MAC.
    static let host2BrTun = """
        table=4,priority=1,tun_id=0x3eb actions=mod_vlan_vid:3,resubmit(,9)
        table=4,priority=1,tun_id=0x3e9 actions=mod_vlan_vid:2,resubmit(,9)
        table=4,priority=0 actions=drop
        table=9,priority=1,dl_src=fa:16:3f:fe:49:e9 actions=output:1
        table=9,priority=1,dl_src=fa:16:3f:72:3f:a7 actions=output:1
        table=9,priority=0 actions=resubmit(,10)
        """

    /// Host 2, br-int: port 6 is the patch from br-tun, ports 9 and 12 are VM ports.
    static let host2BrInt = """
        table=0,priority=2,in_port=6,dl_src=fa:16:3f:72:3f:a7 actions=resubmit(,1)
        table=0,priority=2,in_port=6,dl_src=fa:16:3f:fe:49:e9 actions=resubmit(,1)
        table=0,priority=1 actions=NORMAL
        table=1,priority=4,dl_vlan=3,dl_dst=fa:16:3e:51:99:b8 actions=strip_vlan,mod_dl_src:fa:16:3e:69:b4:05,output:12
        table=1,priority=4,dl_vlan=2,dl_dst=fa:16:3e:14:b8:ec actions=strip_vlan,mod_dl_src:fa:16:3e:66:13:af,output:9
        table=1,priority=2,ip,dl_vlan=2,nw_dst=10.0.1.0/24 actions=strip_vlan,mod_dl_src:fa:16:3e:66:13:af,output:9
        table=1,priority=2,ip,dl_vlan=3,nw_dst=10.0.2.0/24 actions=strip_vlan,mod_dl_src:fa:16:3e:69:b4:05,output:12
        """

    static var allLines: [Substring] {
        (host1BrTun + "\n" + host2BrTun + "\n" + host2BrInt).split(separator: "\n")
    }

    /// `count` ports named p1, p2, ... (the reference numbers ports, it does not name them).
    static func ports(_ count: Int) -> PortNames { PortNames((1...count).map { "p\($0)" }) }
}

func mac(_ text: String) -> MACAddress { MACAddress(text)! }

func ipv4(_ text: String) -> UInt32 { IPv4Text.parse(Substring(text))! }

/// A packet key as the datapaths extract it.
func packet(
    inPort: UInt32, src: String = "02:00:00:00:00:01", dst: String = "02:00:00:00:00:02", vlan: UInt16? = nil,
    type: UInt16 = 0x0800, nwSrc: String = "192.0.2.1", nwDst: String = "192.0.2.2", proto: UInt8 = 0,
    tpSrc: UInt16 = 0, tpDst: UInt16 = 0, tunID: UInt64 = 0, frag: UInt8 = 0
) -> FlowKey {
    var k = FlowKey()
    k.inPort = inPort
    k.dlSrc = mac(src)
    k.dlDst = mac(dst)
    if let vlan { k.vlanTCI = FlowKey.vlanPresent | vlan }
    k.dlType = type
    if type == 0x0800 || type == 0x0806 {
        k.nwSrcIPv4 = ipv4(nwSrc)
        k.nwDstIPv4 = ipv4(nwDst)
    }
    k.nwProto = proto
    k.tpSrc = tpSrc
    k.tpDst = tpDst
    k.tunID = tunID
    k.nwFrag = frag
    return k
}
