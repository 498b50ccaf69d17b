import Foundation
import Glibc
import ShuntTestSupport
import Testing

/// Whether tcpdump (the lab's capture; Debian: tcpdump) is installed.
let tcpdumpInstalled: Bool = ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"].contains {
    FileManager.default.isExecutableFile(atPath: $0)
}

/// The `key=value` fields of a lab script's last `RESULT ...` line.
func resultFields(_ output: String) -> [String: String] {
    var result: [String: String] = [:]
    if let line = output.split(separator: "\n").last(where: { $0.hasPrefix("RESULT ") }) {
        for pair in line.split(separator: " ").dropFirst() {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { result[String(kv[0])] = String(kv[1]) }
        }
    }
    return result
}

/// `Scripts/mirror-lab.sh` run as a user would, both variants with a small `--count`: the test
/// reads what the script printed (its `RESULT key=value ...` line) and checks that the lab left
/// nothing behind.
@Suite("Scripts/mirror-lab.sh", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason),
       .enabled(if: tcpdumpInstalled, "tcpdump is not installed: install it (Scripts/install-deps.sh) to run the mirror lab"))
struct MirrorLabTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Scripts/mirror-lab.sh").path
    let count = 3

    struct LabRun {
        let status: Int32
        let output: String
        let result: [String: String]
        /// Namespaces and processes the run left behind (should be none).
        let leftovers: [String]

        subscript(_ key: String) -> Int? { result[key].flatMap { Int($0) } }
    }

    /// Runs the lab under `timeout` (TERM, which the script traps and cleans up after) with its
    /// own namespace prefix and temporary directory, then looks for what it may have left.
    func runLab(variant: String) throws -> LabRun {
        let prefix = "\(testNamespacePrefix ?? "shuntt")\(getpid())-mlab\(variant)-"
        let tmp = NSTemporaryDirectory() + "shuntt-mlab-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let traffic = TrafficGate.shared()  // the lab's namespaces are its own, not a Lab's
        defer { traffic.release() }
        let r = try run(["TMPDIR=\(tmp)", "timeout", "-k", "10", "60", "bash", Self.script, "--variant", variant,
                         "--count", "\(count)", "--shunt", shuntExecutable, "--prefix", prefix], check: false)
        let result = resultFields(r.out)
        var leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? [])
            .filter { $0.hasPrefix(prefix) }
        leftovers += ((try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []).map { "\(tmp)/\($0)" }
        // OVS runs with its files in the run's directory under `tmp`: no process may still name it.
        for pid in ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []) where Int32(pid) != nil {
            guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
            let text = String(decoding: cmdline.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            if text.contains(tmp) { leftovers.append("process \(pid): \(text)") }
        }
        return LabRun(status: r.status, output: r.out + r.err, result: result, leftovers: leftovers)
    }

    /// Both pings answered; the capture saw each of client 1's echo requests and replies, both
    /// ways (2*count each); the session copied every packet it selected and dropped none.
    func checkCommon(_ lab: LabRun, variant: String) {
        #expect(lab.status == 0, "\(lab.output)")
        #expect(lab.result["variant"] == variant, "no RESULT line: \(lab.output)")
        #expect(lab["ping12_tx"] == count && lab["ping12_rx"] == count, "\(lab.result)")
        #expect(lab["ping21_tx"] == count && lab["ping21_rx"] == count, "\(lab.result)")
        #expect(lab["cap_requests"] == 2 * count, "\(lab.output)")
        #expect(lab["cap_replies"] == 2 * count, "\(lab.output)")
        #expect(lab["mirror_dropped"] == 0, "\(lab.result)")
        #expect((lab["mirror_selected"] ?? 0) >= 4 * count && lab["mirror_mirrored"] == lab["mirror_selected"],
                "\(lab.result)")
        #expect(lab.leftovers.isEmpty, "\(lab.leftovers)")
        // The script's own time (a suite's reported time also counts waiting for a thread).
        #expect((lab["seconds"] ?? .max) < 60, "\(lab.result)")
    }

    @Test func shuntVariantMirrorsToTheCaptureNamespace() throws {
        let lab = try runLab(variant: "shunt")
        checkCommon(lab, variant: "shunt")
        // The capture is the copies plus NORMAL's floods to s3: at least every copy arrived.
        #expect((lab["cap_all"] ?? 0) >= (lab["mirror_mirrored"] ?? .max), "\(lab.result)")
    }

    @Test(.enabled(if: ovsInstalled, "Open vSwitch is not installed: install openvswitch-switch (Scripts/install-deps.sh) to run the lab's ovs variant"))
    func ovsVariantRemoteMirrorsThroughOpenVSwitch() throws {
        let lab = try runLab(variant: "ovs")
        checkCommon(lab, variant: "ovs")
        // OVS decapsulated every copy (and NORMAL's floods to vxm) and output them by its one
        // flow to o2; the capture saw exactly what OVS sent.
        let flow = lab["ovs_flow_packets"]
        #expect((flow ?? 0) >= (lab["mirror_mirrored"] ?? .max), "\(lab.result)")
        #expect(lab["ovs_vxlan_rx"] == flow && lab["ovs_cap_tx"] == flow && lab["cap_all"] == flow, "\(lab.result)")
    }
}
