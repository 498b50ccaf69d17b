import Foundation
import Glibc
import ShuntTestSupport
import Testing

/// Whether tshark (the DVR lab reads its captures with it; Debian: tshark) is installed.
let tsharkInstalled: Bool = FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark")

/// `Scripts/dvr-lab.sh` run as a user would, on both datapaths: two compute hosts, each a Shunt
/// forwarder with br-int and br-tun running the reference's flows, VM1 pinging VM2 across the
/// distributed router. Every field of its RESULT line is checked here, not only its exit code.
@Suite("Scripts/dvr-lab.sh (DVR east-west)", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason),
       .enabled(if: tcpdumpInstalled && tsharkInstalled, "tcpdump and tshark are needed: install them (Scripts/install-deps.sh)"))
struct DVRLabTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Scripts/dvr-lab.sh").path

    func runLab(datapath: String, extra: [String] = []) throws
        -> (status: Int32, output: String, result: [String: String], leftovers: [String]) {
        let prefix = "\(testNamespacePrefix ?? "shuntt")\(getpid())d\(datapath.prefix(1))\(extra.isEmpty ? "" : "n")"
        let tmp = NSTemporaryDirectory() + "shuntt-dvr-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let traffic = TrafficGate.shared()
        defer { traffic.release() }
        let r = try run(["env", "TMPDIR=\(tmp)", "timeout", "-k", "10", "180", "bash", Self.script, "--datapath", datapath,
                         "--count", "5", "--udp", "1000", "--shunt", shuntExecutable, "--prefix", prefix] + extra, check: false)
        let result = resultFields(r.out)
        var leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? [])
            .filter { $0.hasPrefix(prefix + "-") }
        leftovers += ((try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []).map { "\(tmp)/\($0)" }
        return (r.status, r.out + r.err, result, leftovers)
    }

    /// A percentage field ("99.95%") as a number.
    func percent(_ text: String?) -> Double? { text.flatMap { Double($0.dropLast()) } }

    @Test(arguments: ["afpacket", "xdp"])
    func bothHostsRouteEastWestWithTheirDVRMACs(datapath: String) throws {
        let lab = try runLab(datapath: datapath)
        let r = lab.result
        #expect(lab.status == 0, "\(lab.output)")
        #expect(r["datapath"] == datapath, "no RESULT line: \(lab.output)")
        #expect(r["pings"] == "10/10", "every ping answered, both ways, from cold: \(r)")
        #expect(r["udp"] == "1000/1000" && r["udp_back"] == "1000/1000", "\(r)")
        #expect(r["h1_inner_src"] == "fa:16:3f:fe:49:e9", "host 1's DVR MAC on the underlay: \(r)")
        #expect(r["h2_inner_src"] == "fa:16:3f:72:3f:a7", "host 2's DVR MAC on the underlay: \(r)")
        #expect(r["vni_to_vm2"] == "0x3eb" && r["vni_to_vm1"] == "0x3e9", "\(r)")
        #expect(r["vm2_sees_src"] == "fa:16:3e:69:b4:05", "VM2 sees its gateway: \(r)")
        #expect(r["gw_arp_on_underlay"] == "0", "\(r)")
        if datapath == "xdp" {
            #expect((percent(r["h1_fastpath"]) ?? 0) >= 99 && (percent(r["h2_fastpath"]) ?? 0) >= 99, "\(r)")
        } else {
            #expect(r["h1_fastpath"] == "n/a" && r["h2_fastpath"] == "n/a", "\(r)")
        }
        #expect(lab.leftovers.isEmpty, "\(lab.leftovers)")
    }

    static let northSouth: [(String, String)] = [("afpacket", "patch"), ("xdp", "patch"), ("afpacket", "veth"), ("xdp", "veth")]

    /// `--north-south`: the network node, the external network, VM1's floating IP leaving from
    /// host 1 and VM3 reaching the outside through the central SNAT; br-int and br-ex joined by
    /// patch ports or by a veth pair. Every RESULT field, the east-west ones included.
    @Test(arguments: northSouth)
    func floatingIPLeavesFromItsHostAndTheRestThroughTheSNATNode(datapath: String, extLink: String) throws {
        let lab = try runLab(datapath: datapath, extra: ["--north-south", "--ext-link", extLink])
        let r = lab.result
        #expect(lab.status == 0, "\(lab.output)")
        #expect(r["datapath"] == datapath && r["ext_link"] == extLink, "no RESULT line: \(lab.output)")
        // East-west beside it, unchanged.
        #expect(r["pings"] == "10/10" && r["udp"] == "1000/1000" && r["udp_back"] == "1000/1000", "\(r)")
        #expect(r["h1_inner_src"] == "fa:16:3f:fe:49:e9" && r["h2_inner_src"] == "fa:16:3f:72:3f:a7", "\(r)")
        #expect(r["vni_to_vm2"] == "0x3eb" && r["vni_to_vm1"] == "0x3e9" && r["vm2_sees_src"] == "fa:16:3e:69:b4:05", "\(r)")
        #expect(r["gw_arp_on_underlay"] == "0" && r["l2_ping"] == "5/5", "\(r)")
        // The floating IP: answered from VM1's own host, NATed, proxy ARP from the fip namespace.
        #expect(r["fip_ping"] == "10/10", "outside -> 172.24.4.5 and VM1 -> outside: \(r)")
        #expect(r["fip_udp"] == "1000/1000" && r["fip_udp_back"] == "1000/1000", "\(r)")
        #expect(r["ext_sees_src"] == "172.24.4.5", "the outside sees the floating IP only: \(r)")
        #expect(r["fip_via"] == "host1", "host 1's external interface, not the network node's: \(r)")
        #expect(r["proxy_arp_mac"] == "fa:16:3e:3b:8e:21" && r["proxy_arp_from"] == "fip1", "\(r)")
        // No floating IP: through the network node, over the tunnel with host 2's DVR MAC.
        #expect(r["snat_ping"] == "5/5" && r["snat_udp"] == "1000/1000" && r["snat_udp_back"] == "1000/1000", "\(r)")
        #expect(r["ext_sees_snat_src"] == "172.24.4.4" && r["snat_via"] == "net", "\(r)")
        #expect(r["snat_tunnel_inner_src"] == "fa:16:3f:72:3f:a7" && r["snat_tunnel_vni"] == "0x3e9", "\(r)")
        let ratios = ["h1_fastpath", "h2_fastpath", "h1_fip_fastpath", "h2_snat_fastpath", "net_fastpath"]
        if datapath == "xdp" {
            for key in ratios { #expect((percent(r[key]) ?? 0) >= 99, "\(key): \(r)") }
        } else {
            for key in ratios { #expect(r[key] == "n/a", "\(key): \(r)") }
        }
        #expect(lab.leftovers.isEmpty, "\(lab.leftovers)")
    }
}
