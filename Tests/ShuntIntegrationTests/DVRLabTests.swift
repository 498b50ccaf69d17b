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

    func runLab(datapath: String) throws -> (status: Int32, output: String, result: [String: String], leftovers: [String]) {
        let prefix = "\(testNamespacePrefix ?? "shuntt")\(getpid())d\(datapath.prefix(1))"
        let tmp = NSTemporaryDirectory() + "shuntt-dvr-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let traffic = TrafficGate.shared()
        defer { traffic.release() }
        let r = try run(["env", "TMPDIR=\(tmp)", "timeout", "-k", "10", "120", "bash", Self.script, "--datapath", datapath,
                         "--count", "5", "--udp", "1000", "--shunt", shuntExecutable, "--prefix", prefix], check: false)
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
}
