import Foundation
import ShuntTestSupport
import Testing

/// `shunt forward --metrics`: scraped with curl inside the forwarder's namespace while it
/// forwards, on both datapaths: the exposition's names and types, and counters that move.
@Suite("Prometheus metrics endpoint", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason),
       .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl"), "curl is not installed (Scripts/install-deps.sh)"))
struct MetricsTests {
    /// The endpoint from the ready line (`"metrics":"127.0.0.1:PORT"`).
    func endpoint(_ fwd: ForwarderProcess) throws -> String {
        let line = fwd.readyLine
        let r = try #require(line.range(of: "\"metrics\":\""), "no metrics in the ready line: \(line)")
        return String(line[r.upperBound...].prefix { $0 != "\"" })
    }

    func scrape(_ lab: Lab, _ endpoint: String, path: String = "/metrics") throws -> (status: Int32, out: String) {
        let r = try run(["ip", "netns", "exec", lab.fwd, "curl", "-s", "-S", "-m", "5", "-w", "\n%{http_code}",
                         "http://\(endpoint)\(path)"], check: false)
        return (r.status, r.out)
    }

    /// The value of one sample line (`name{labels} value`).
    func sample(_ text: String, _ prefix: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(prefix + " ") }.flatMap { Double($0.split(separator: " ").last!) }
    }

    @Test(arguments: ["afpacket", "xdp"])
    func scrapedWhileForwarding(datapath: String) throws {
        let lab = try Lab()
        let flows = NSTemporaryDirectory() + "shuntt-metrics-\(getpid())-\(datapath).flows"
        try "in_port=1 actions=group:1\nin_port=2 actions=output:1\n".write(toFile: flows, atomically: true, encoding: .utf8)
        try "group_id=1,type=indirect,bucket=output:2\n".write(toFile: flows + ".groups", atomically: true, encoding: .utf8)
        defer {
            try? FileManager.default.removeItem(atPath: flows)
            try? FileManager.default.removeItem(atPath: flows + ".groups")
        }
        var args = ["--port", lab.port(0), "--port", lab.port(1), "--flows", flows, "--groups", flows + ".groups", "--datapath", datapath,
                    "--metrics", "127.0.0.1:0"]
        if datapath == "xdp" { args.append("--fix-peers") }
        let fwd = try ForwarderProcess(namespace: lab.fwd, arguments: args)
        let address = try endpoint(fwd)
        let gen = try RawPort(namespace: lab.ns("gen"), interface: lab.interface("gen"))
        let sink = try RawPort(namespace: lab.ns("sink"), interface: lab.interface("sink"))

        let before = try scrape(lab, address)
        #expect(before.status == 0 && before.out.hasSuffix("\n200"), "\(before)")
        // The flow's first frame sets it up; the 99 after it are cache hits.
        try gen.send(ipv4UDPFrame(dst: macB, src: macA, sequence: 0))
        var received = sink.receiveAny(count: 1, timeout: 3)
        for i in 1..<100 { try gen.send(ipv4UDPFrame(dst: macB, src: macA, sequence: UInt32(i))) }
        received += sink.receiveAny(count: 99, timeout: 5)
        #expect(received.count == 100)
        Thread.sleep(forTimeInterval: 0.2)
        let after = try scrape(lab, address).out
        let notFound = try scrape(lab, address, path: "/other").out
        _ = try fwd.stop()

        for family in ["shunt_port_rx_packets_total counter", "shunt_port_tx_bytes_total counter",
                       "shunt_fast_path_hits_total counter", "shunt_upcalls_total counter", "shunt_cache_entries gauge",
                       "shunt_flow_setup_duration_seconds histogram", "shunt_info gauge"] {
            #expect(after.contains("# TYPE \(family)\n"), "missing \(family)")
        }
        #expect(sample(after, "shunt_port_rx_packets_total{port=\"p0\"}") == 100)
        #expect(sample(after, "shunt_port_tx_packets_total{port=\"p1\"}") == 100)
        #expect((sample(before.out, "shunt_port_rx_packets_total{port=\"p0\"}") ?? -1) == 0)
        #expect((sample(after, "shunt_flow_setup_duration_seconds_count") ?? 0) >= 1)
        #expect(sample(after, "shunt_port_link_up{port=\"p0\"}") == 1 && sample(after, "shunt_port_link_up{port=\"p1\"}") == 1)
        // The frames went through group 1 (kernel hits credited before the scrape on xdp).
        #expect(sample(after, "shunt_group_packets_total{bridge=\"br0\",group=\"1\"}") == 100, "\(after)")
        #expect(sample(after, "shunt_group_bucket_packets_total{bridge=\"br0\",group=\"1\",bucket=\"0\"}") == 100)
        #expect(after.contains("shunt_info{mode=\"flows\",datapath=\"\(datapath)\",workers=\"1\"} 1\n"))
        if datapath == "xdp" {
            #expect((sample(after, "shunt_fast_path_hits_total{path=\"xdp\"}") ?? 0) >= 90, "\(after)")
        } else {
            #expect(sample(after, "shunt_fast_path_hits_total{path=\"userspace\"}") == 99, "\(after)")
        }
        #expect(notFound.hasSuffix("\n404") && notFound.contains("only /metrics"), "\(notFound)")
    }

    @Test func badAddressesAreRefused() throws {
        let r = try run([shuntExecutable, "forward", "--port", "a", "--port", "b", "--metrics", "localhost:x"], check: false)
        #expect(r.status == 64 && r.err.contains("--metrics localhost:x: give PORT (127.0.0.1 only) or ADDR:PORT"), "\(r)")
    }
}
