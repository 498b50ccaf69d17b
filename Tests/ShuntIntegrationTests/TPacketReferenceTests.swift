import Foundation
import Glibc
import ShuntTestSupport
import Testing

/// Benchmarks/tpacket-fwd, built next to shunt (a dependency of this test target).
let tpacketForwarderExecutable: String =
    URL(fileURLWithPath: shuntExecutable).deletingLastPathComponent().appendingPathComponent("tpacket-fwd").path

/// tpacket-fwd, the C reference forwarder of `shunt bench` (c-tpacket, c-tpacket-v2), between two
/// veths: what it forwards arrives whole, and the counts it prints at the end say so too.
@Suite("tpacket-fwd, the C reference forwarder", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason))
struct TPacketReferenceTests {
    /// Its `key=value` counts line, parsed.
    static func counts(_ stdout: String) -> [String: UInt64] {
        guard let line = stdout.split(separator: "\n").last(where: { $0.hasPrefix("rx_a=") }) else { return [:] }
        var out: [String: UInt64] = [:]
        for field in line.split(separator: " ") {
            let pair = field.split(separator: "=", maxSplits: 1)
            if pair.count == 2, let n = UInt64(pair[1]) { out[String(pair[0])] = n }
        }
        return out
    }

    /// 200 rounds of the simple IMIX (7 x 60, 4 x 566, 1 x 1514 bytes without FCS), 2400 frames at
    /// 10 kpps from `shunt gen` through tpacket-fwd into `shunt sink`: every frame arrives with its
    /// bytes, none lost or reordered; tpacket-fwd counts them in on p0 and out on p1, nothing the
    /// other way, nothing dropped.
    @Test(arguments: ["v3", "v2"])
    func forwardsEveryFrameAndCountsIt(ring: String) throws {
        let lab = try Lab()
        let sink = try ShuntCommandProcess(namespace: lab.ns("sink"), arguments: [
            "sink", "--port", lab.interface("sink"), "--engine", "ring", "--json"])
        let forwarder = try SpawnedProcess(["ip", "netns", "exec", lab.fwd, tpacketForwarderExecutable, "--ring", ring,
                                            lab.port(0), lab.port(1)])
        let deadline = Date().addingTimeInterval(10)
        while forwarder.isRunning && Date() < deadline && !forwarder.stdout.contains("forwarding p0 <-> p1") { usleep(10_000) }
        try #require(forwarder.stdout.contains("forwarding p0 <-> p1"), "not ready: \(forwarder.stdout) \(forwarder.stderr)")

        let frames: UInt64 = 2400
        let gen = try run(["timeout", "-s", "KILL", "30", "ip", "netns", "exec", lab.ns("gen"), shuntExecutable, "gen",
                           "--port", lab.interface("gen"), "--engine", "ring", "--imix", "--rate", "10000", "--count", "\(frames)"]).out
        Thread.sleep(forTimeInterval: 0.3)  // the last V3 block is handed over after its 1 ms timeout
        forwarder.signal(SIGINT)
        let status = forwarder.wait(timeout: 10)
        let (final, sinkStatus) = try sink.stop()

        #expect(gen.contains("\"sent\":\(frames),"), "\(gen)")
        #expect(status == 0, "\(forwarder.stderr)")
        let counts = Self.counts(forwarder.stdout)
        #expect(counts["rx_a"] == frames && counts["tx_b"] == frames, "\(forwarder.stdout)")
        #expect(counts["rx_b"] == 0 && counts["tx_a"] == 0, "\(forwarder.stdout)")
        #expect(counts["tx_ring_full"] == 0 && counts["too_large"] == 0 && counts["kernel_drops"] == 0, "\(forwarder.stdout)")
        #expect(sinkStatus == 0)
        #expect(jsonNumber(final, "received") == frames && jsonNumber(final, "probes") == frames, "\(final)")
        #expect(jsonNumber(final, "bytes") == frames / 12 * (7 * 60 + 4 * 566 + 1514), "\(final)")
        #expect(final["lost"] as? Int == 0 && final["duplicated"] as? Int == 0 && final["out_of_order"] as? Int == 0, "\(final)")
    }

    /// Setup failures say what is wrong, with exit status 2.
    @Test func aMissingInterfaceIsRefusedWithStatus2() throws {
        let lab = try Lab()
        let r = try run(["ip", "netns", "exec", lab.fwd, tpacketForwarderExecutable, lab.port(0), "nosuch0"], check: false)
        #expect(r.status == 2 && r.err.contains("no interface named 'nosuch0'"), "\(r)")
        #expect(!r.out.contains("forwarding"))
    }
}
