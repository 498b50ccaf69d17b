import Foundation
import ShuntTestSupport
import Testing

/// `shunt gen` (each engine this kernel allows: XDP live frames, AF_XDP, TPACKET ring) into
/// `shunt sink` over real veths, straight and through `shunt forward`.
@Suite("shunt sink's ring engine on real veths", .serialized, .enabled(if: canRunNetnsTests, netnsSkipReason))
struct SinkTests {
    /// Runs `shunt gen` to completion in `namespace` and returns its final JSON.
    func generate(_ namespace: String, _ args: [String]) throws -> [String: Any] {
        // A generator that does not stop must not hang the test run.
        let out = try run(["timeout", "-s", "KILL", "30", "ip", "netns", "exec", namespace, shuntExecutable, "gen"] + args).out
        let line = try #require(out.split(separator: "\n").last { $0.contains("\"type\":\"final\"") })
        return try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
    }

    /// XDP_TX frames reach a veth peer only if the peer has GRO on (or an XDP program).
    func enableGRO(_ namespace: String, _ interface: String) throws {
        try run(["ip", "netns", "exec", namespace, "ethtool", "-K", interface, "gro", "on"])
    }

    /// gen0 -> veth -> p0 at 10 kpps for 2 s: 20000 frames (within 1%), all accounted, none
    /// lost, duplicated or reordered, and the latency of a TPACKET_V2 ring (no block timeout)
    /// under a millisecond at the median.
    ///
    /// On 2 cores shared with the other suites the generator is preempted now and then; it then
    /// catches up on its schedule (docs/design/0009), so the count holds. CI saw a 228 ms stall
    /// while other suites built and ran, over the default 100 ms lag bound (a lag skip): the
    /// bound is 1 s here, as what is tested is the count, not the smoothness.
    @Test func generatorStraightIntoTheRingSink() throws {
        let lab = try Lab(["gen"])
        try enableGRO(lab.fwd, lab.port(0))
        let sink = try ShuntCommandProcess(namespace: lab.fwd, arguments: [
            "sink", "--port", lab.port(0), "--engine", "ring", "--json", "--interval", "1"])
        let gen = try generate(lab.ns("gen"), ["--port", lab.interface("gen"), "--rate", "10000", "--duration", "2",
                                               "--max-lag-us", "1000000"])
        Thread.sleep(forTimeInterval: 0.2)
        let (final, status) = try sink.stop()

        #expect(gen["engine"] as? String == GeneratorEngines.probe.auto, "auto picked \(gen["engine"] ?? "?")")
        let sent = jsonNumber(gen, "sent")
        let received = jsonNumber(final, "received")
        #expect(status == 0)
        #expect(final["engine"] as? String == "ring" && final["ring"] as? String == "v2")
        #expect(received >= 19_800 && received <= 20_200, "received \(received) of ~20000 (gen sent \(sent)): \(gen)")
        #expect(gen["rate_reached"] as? Bool == true, "\(gen)")
        #expect(received == sent, "gen sent \(sent), the sink received \(received): \(final)")
        #expect(jsonNumber(final, "probes") == received && jsonNumber(final, "other") == 0)
        #expect(final["lost"] as? Int == 0 && final["duplicated"] as? Int == 0 && final["out_of_order"] as? Int == 0,
                "\(final)")
        #expect(final["ring_dropped"] as? Int == 0)
        let latency = try #require(final["latency_us"] as? [String: Any])
        let p50 = try #require(latency["p50"] as? Double)
        #expect(p50 > 0 && p50 < 1000, "p50 \(p50) us")
        #expect(jsonNumber(latency, "samples") == received)
        let streams = try #require(final["streams"] as? [[String: Any]])
        #expect(streams.count == 1 && streams.first?["stream"] as? Int == 0)
        #expect(sink.lines.contains { $0.contains("\"type\":\"stats\"") }, "no stats line with --interval 1")
    }

    /// The TPACKET TX-ring engine of shunt gen, two streams (two generators one after the
    /// other), into the ring sink: every frame counted per stream, none lost, roughly paced.
    @Test func ringGeneratorIntoTheRingSink() throws {
        let lab = try Lab(["gen"])
        let sink = try ShuntCommandProcess(namespace: lab.fwd, arguments: [
            "sink", "--port", lab.port(0), "--engine", "ring", "--json"])
        let a = try generate(lab.ns("gen"), ["--port", lab.interface("gen"), "--engine", "ring", "--stream", "1",
                                             "--rate", "10000", "--count", "10000"])
        let b = try generate(lab.ns("gen"), ["--port", lab.interface("gen"), "--engine", "ring", "--stream", "2",
                                             "--size", "1000", "--flows", "64", "--count", "5000"])
        Thread.sleep(forTimeInterval: 0.2)
        let (final, status) = try sink.stop()
        #expect(status == 0)
        #expect(a["engine"] as? String == "ring" && jsonNumber(a, "sent") == 10_000 && jsonNumber(b, "sent") == 5_000)
        // Paced, roughly: exact pacing is a benchmark figure, not for a test on a shared machine.
        let pps = (a["pps"] as? Double) ?? 0
        #expect(abs(pps - 10_000) < 1_000, "paced at \(pps) pps")
        #expect(jsonNumber(final, "received") == 15_000, "\(final)")
        #expect(final["lost"] as? Int == 0 && final["duplicated"] as? Int == 0 && final["out_of_order"] as? Int == 0)
        let streams = try #require(final["streams"] as? [[String: Any]])
        let byID = Dictionary(uniqueKeysWithValues: streams.map { (($0["stream"] as? Int) ?? -1, $0) })
        #expect(jsonNumber(byID[1] ?? [:], "received") == 10_000 && jsonNumber(byID[2] ?? [:], "received") == 5_000)
        #expect(jsonNumber(byID[2] ?? [:], "bytes") == 5_000 * 1000)
    }

    /// --imix sends the simple IMIX in turn: 1200 frames are 100 rounds of 7 x 60, 4 x 566 and
    /// 1 x 1514 bytes (without FCS), all received.
    @Test func ringGeneratorSendsIMIX() throws {
        let lab = try Lab(["gen"])
        let sink = try ShuntCommandProcess(namespace: lab.fwd, arguments: [
            "sink", "--port", lab.port(0), "--engine", "ring", "--json"])
        let gen = try generate(lab.ns("gen"), ["--port", lab.interface("gen"), "--engine", "ring", "--imix",
                                               "--rate", "20000", "--count", "1200"])
        Thread.sleep(forTimeInterval: 0.2)
        let (final, _) = try sink.stop()
        #expect(gen["size"] as? String == "imix" && jsonNumber(gen, "sent") == 1200)
        #expect(jsonNumber(final, "received") == 1200 && final["lost"] as? Int == 0, "\(final)")
        #expect(jsonNumber(final, "bytes") == 100 * (7 * 60 + 4 * 566 + 1514), "\(final)")
        let auto = try run(["ip", "netns", "exec", lab.ns("gen"), shuntExecutable, "gen", "--port", lab.interface("gen"),
                           "--imix", "--count", "1"], check: false)
        #expect(auto.status == 0 && auto.err.contains("--imix is beyond the xdp engine") && auto.err.contains("using the "),
                "auto takes IMIX to afxdp or ring: \(auto.err)")
        let xdp = try run(["ip", "netns", "exec", lab.ns("gen"), shuntExecutable, "gen", "--port", lab.interface("gen"),
                           "--imix", "--count", "1", "--engine", "xdp"], check: false)
        #expect(xdp.status != 0 && xdp.err.contains("--imix needs --engine afxdp or ring"))
    }

    /// The AF_XDP engine sends IMIX as the ring engine does (templates rewritten in place in the
    /// UMEM: a slot that held a 1514-byte frame then carries a 60-byte one).
    @Test(.enabled(if: GeneratorEngines.probe.afxdpAvailable, "AF_XDP sockets are not available here"))
    func afxdpGeneratorSendsIMIX() throws {
        let lab = try Lab(["gen"])
        let sink = try ShuntCommandProcess(namespace: lab.fwd, arguments: [
            "sink", "--port", lab.port(0), "--engine", "ring", "--json"])
        let gen = try generate(lab.ns("gen"), ["--port", lab.interface("gen"), "--engine", "afxdp", "--imix",
                                               "--rate", "20000", "--count", "12000"])
        Thread.sleep(forTimeInterval: 0.2)
        let (final, _) = try sink.stop()
        #expect(gen["engine"] as? String == "afxdp" && gen["xsk_mode"] as? String == "copy" && jsonNumber(gen, "sent") == 12000,
                "\(gen)")
        #expect(jsonNumber(gen, "tx_invalid") == 0)
        #expect(jsonNumber(final, "received") == 12000 && final["lost"] as? Int == 0, "\(final)")
        #expect(jsonNumber(final, "bytes") == 1000 * (7 * 60 + 4 * 566 + 1514), "\(final)")
    }

    /// `shunt sink` (auto, the default) uses the ring engine, saying so on one line, where
    /// xdp_sink cannot attach (here: another sink's program holds the port); `--engine xdp` is
    /// refused there with exit 2.
    @Test func sinkAutoFallsBackToTheRingEngine() throws {
        let lab = try Lab(["gen"])
        let holder = try ShuntCommandProcess(namespace: lab.fwd, arguments: [
            "sink", "--port", lab.port(0), "--engine", "xdp", "--json"])
        let sink = ["timeout", "-s", "KILL", "30", "ip", "netns", "exec", lab.fwd, shuntExecutable, "sink",
                    "--port", lab.port(0), "--json", "--duration", "0.3"]
        let auto = try run(sink, check: false)
        let named = try run(sink + ["--engine", "xdp"], check: false)
        _ = try holder.stop()
        #expect(auto.status == 0 && auto.out.contains("\"type\":\"ready\",\"engine\":\"ring\""), "\(auto)")
        #expect(auto.err.contains("shunt sink: xdp_sink cannot attach to \(lab.port(0))") && auto.err.contains("using the ring engine"),
                "\(auto.err)")
        #expect(named.status == 2 && named.err.hasPrefix("shunt sink: \(lab.port(0)) already has XDP program 'xdp_sink' (id "),
                "\(named)")
    }

    /// The in-kernel pump (no live frames needed): 10 kpps for 2 s into the ring sink, every
    /// frame counted once, none lost, in order; its own veth pair is gone afterwards.
    @Test func pumpEngineIntoTheRingSink() throws {
        let lab = try Lab(["gen"])
        try enableGRO(lab.fwd, lab.port(0))  // the pump's frames arrive by XDP redirect
        let sink = try ShuntCommandProcess(namespace: lab.fwd, arguments: [
            "sink", "--port", lab.port(0), "--engine", "ring", "--json"])
        let gen = try generate(lab.ns("gen"), ["--port", lab.interface("gen"), "--engine", "pump", "--rate", "10000",
                                               "--duration", "2", "--stream", "9"])
        Thread.sleep(forTimeInterval: 0.2)
        let (final, _) = try sink.stop()
        #expect(gen["engine"] as? String == "pump" && jsonNumber(gen, "sent") == 20000 && gen["rate_reached"] as? Bool == true,
                "\(gen)")
        #expect(jsonNumber(final, "received") == 20000 && jsonNumber(final, "probes") == 20000, "\(final)")
        #expect(final["lost"] as? Int == 0 && final["duplicated"] as? Int == 0 && final["out_of_order"] as? Int == 0, "\(final)")
        let links = try run(["ip", "-n", lab.ns("gen"), "-o", "link"]).out
        #expect(!links.contains("shpmp"), "the pump's veth pair is left: \(links)")
    }

    /// The live-frames engine itself, where the kernel allows live frames: 10 kpps for 2 s into
    /// the ring sink, every frame accounted. Skipped, with the probe's reason, elsewhere.
    @Test(.enabled(if: GeneratorEngines.liveFramesAllowed, GeneratorEngines.liveFramesSkipReason))
    func xdpEngineIntoTheRingSink() throws {
        let lab = try Lab(["gen"])
        try enableGRO(lab.fwd, lab.port(0))
        let sink = try ShuntCommandProcess(namespace: lab.fwd, arguments: [
            "sink", "--port", lab.port(0), "--engine", "ring", "--json"])
        let gen = try generate(lab.ns("gen"), ["--port", lab.interface("gen"), "--engine", "xdp", "--rate", "10000",
                                               "--duration", "2"])
        Thread.sleep(forTimeInterval: 0.2)
        let (final, _) = try sink.stop()
        #expect(gen["engine"] as? String == "xdp" && jsonNumber(gen, "sent") == 20000, "\(gen)")
        #expect(jsonNumber(final, "received") == 20000 && final["lost"] as? Int == 0, "\(final)")
    }

    /// gen -> p0 [shunt forward, xconnect] p1 -> sink0: the sink receives exactly what the
    /// forwarder says it transmitted out of p1, in order, without duplicates.
    @Test func throughTheForwarderTheSinkSeesEveryFrameSent() throws {
        let lab = try Lab(["gen", "sink"])
        try enableGRO(lab.fwd, lab.port(0))
        let sink = try ShuntCommandProcess(namespace: lab.ns("sink"), arguments: [
            "sink", "--port", lab.interface("sink"), "--engine", "ring", "--json"])
        let fwd = try ForwarderProcess(namespace: lab.fwd, arguments: [
            "--port", lab.port(0), "--port", lab.port(1), "--mode", "xconnect"])
        let gen = try generate(lab.ns("gen"), ["--port", lab.interface("gen"), "--rate", "10000", "--duration", "2",
                                               "--stream", "42"])
        Thread.sleep(forTimeInterval: 0.3)
        let stats = try fwd.stop()
        Thread.sleep(forTimeInterval: 0.2)
        let (final, status) = try sink.stop()

        let tx = stats.value("p1", "tx_packets")
        let received = jsonNumber(final, "received")
        #expect(status == 0 && stats.exitStatus == 0)
        #expect(tx > 0)
        #expect(received == tx, "the forwarder sent \(tx) out of p1, the sink received \(received) (gen sent \(jsonNumber(gen, "sent"))): \(final)")
        #expect(final["ring_dropped"] as? Int == 0)
        #expect(final["duplicated"] as? Int == 0 && final["out_of_order"] as? Int == 0, "\(final)")
        let streams = try #require(final["streams"] as? [[String: Any]])
        #expect(streams.count == 1 && streams.first?["stream"] as? Int == 42)
    }

    /// --threads 2 over ranges, both engines: each thread is its own stream with half the
    /// frames, and every frame reaches the sink.
    @Test(arguments: GeneratorEngines.runnable)
    func threadsAreStreamsOverFlowRanges(engine: String) throws {
        let lab = try Lab(["gen"], queues: 2)  // afxdp: one socket per queue
        try enableGRO(lab.fwd, lab.port(0))
        let sink = try ShuntCommandProcess(namespace: lab.fwd, arguments: [
            "sink", "--port", lab.port(0), "--engine", "ring", "--json"])
        let gen = try generate(lab.ns("gen"), ["--port", lab.interface("gen"), "--engine", engine, "--threads", "2",
                                               "--stream", "5", "--rate", "20000", "--count", "6001",
                                               "--src-ip", "10.9.0.1-10.9.0.3", "--dst-port", "100-101"])
        Thread.sleep(forTimeInterval: 0.2)
        let (final, status) = try sink.stop()
        #expect(status == 0)
        #expect(jsonNumber(gen, "sent") == 6001 && jsonNumber(gen, "threads") == 2 && jsonNumber(gen, "flows") == 6, "\(gen)")
        let perThread = try #require(gen["per_thread"] as? [[String: Any]])
        #expect(perThread.map { jsonNumber($0, "sent") } == [3001, 3000] && perThread.map { jsonNumber($0, "stream") } == [5, 6])
        #expect(jsonNumber(final, "received") == 6001 && final["lost"] as? Int == 0, "\(final)")
        let streams = try #require(final["streams"] as? [[String: Any]])
        let byID = Dictionary(uniqueKeysWithValues: streams.map { (($0["stream"] as? Int) ?? -1, $0) })
        #expect(jsonNumber(byID[5] ?? [:], "received") == 3001 && jsonNumber(byID[6] ?? [:], "received") == 3000, "\(final)")
    }

    /// The frames are valid for a real IP stack: with the sink side's interface addressed and
    /// nothing listening, every frame of every flow reaches UDP (the kernel counts NoPorts, and
    /// no checksum errors), so the IPv4 header checksum and the UDP/IPv6 checksum, fixed up per
    /// frame, are right in both engines. IPv6 at an odd size, so the checksum's padding counts.
    @Test(arguments: GeneratorEngines.runnable, [false, true])
    func theKernelAcceptsEveryFlow(engine: String, ipv6: Bool) throws {
        let lab = try Lab(["gen"])
        try enableGRO(lab.fwd, lab.port(0))
        try run(["ip", "-n", lab.fwd, "link", "set", lab.port(0), "address", "02:00:00:00:00:02"])
        try run(["ip", "-n", lab.fwd, "addr", "add", "10.203.0.2/16", "dev", lab.port(0)])
        if ipv6 {  // Lab turns IPv6 off (no router solicitations in the counts); on for this one
            try run(["ip", "netns", "exec", lab.fwd, "sysctl", "-qw", "net.ipv6.conf.\(lab.port(0)).disable_ipv6=0"])
            try run(["ip", "-n", lab.fwd, "addr", "add", "fd00:203::2/64", "dev", lab.port(0), "nodad"])
        }
        let (counter, errors) = ipv6 ? ("Udp6NoPorts", "Udp6InCsumErrors") : ("Udp:NoPorts", "Ip:InHdrErrors")
        let before = try snmpCounters(lab.fwd)
        let addresses = ipv6 ? ["--src-ip", "fd00:203::1:1-fd00:203::1:19", "--size", "101"] : ["--src-ip", "10.203.1.1-10.203.1.25"]
        let gen = try generate(lab.ns("gen"), ["--port", lab.interface("gen"), "--engine", engine, "--count", "500",
                                               "--rate", "10000", "--src-port", "2000-2003"] + addresses)
        #expect(jsonNumber(gen, "sent") == 500 && jsonNumber(gen, "ip") == (ipv6 ? 6 : 4), "\(gen)")
        var after = before
        for _ in 0..<20 where (after[counter] ?? 0) - (before[counter] ?? 0) < 500 {
            Thread.sleep(forTimeInterval: 0.1)
            after = try snmpCounters(lab.fwd)
        }
        #expect((after[counter] ?? 0) - (before[counter] ?? 0) == 500, "\(counter) went from \(before[counter] ?? -1) to \(after[counter] ?? -1)")
        #expect(after[errors] == before[errors], "\(errors) went from \(before[errors] ?? -1) to \(after[errors] ?? -1)")
    }

    /// IPv6 frames of both engines into the XDP sink and the ring sink: every probe found at
    /// byte 62 and accounted.
    @Test(arguments: ["xdp", "ring"])
    func ipv6ProbesReachBothSinks(sinkEngine: String) throws {
        let lab = try Lab(["gen"])
        try enableGRO(lab.fwd, lab.port(0))
        let sink = try ShuntCommandProcess(namespace: lab.fwd, arguments: [
            "sink", "--port", lab.port(0), "--engine", sinkEngine, "--json"])
        let engines = GeneratorEngines.runnable
        for (stream, engine) in engines.enumerated() {
            _ = try generate(lab.ns("gen"), ["--port", lab.interface("gen"), "--engine", engine, "--ipv6", "--stream", "\(stream + 1)",
                                             "--rate", "10000", "--count", "1000", "--dst-ip", "fd00:203::2-fd00:203::5"])
        }
        Thread.sleep(forTimeInterval: 0.2)
        let (final, status) = try sink.stop()
        let expected = 1000 * engines.count
        #expect(status == 0)
        #expect(jsonNumber(final, "received") == expected && jsonNumber(final, "probes") == expected, "\(final)")
        if sinkEngine == "ring" {
            #expect(final["lost"] as? Int == 0 && final["duplicated"] as? Int == 0 && final["out_of_order"] as? Int == 0, "\(final)")
        }
        let latency = try #require(final["latency_us"] as? [String: Any])
        #expect(jsonNumber(latency, "samples") == expected, "\(final)")
    }

    /// The counters of /proc/net/snmp ("Udp:NoPorts") and /proc/net/snmp6 ("Udp6NoPorts") in
    /// `namespace`.
    func snmpCounters(_ namespace: String) throws -> [String: Int] {
        var out: [String: Int] = [:]
        let v4 = try run(["ip", "netns", "exec", namespace, "cat", "/proc/net/snmp"]).out.split(separator: "\n")
        for (names, values) in zip(v4.indices.dropLast(), v4.indices.dropFirst()) where names % 2 == 0 {
            let n = v4[names].split(separator: " "), v = v4[values].split(separator: " ")
            guard n.first == v.first, let table = n.first else { continue }
            for (name, value) in zip(n.dropFirst(), v.dropFirst()) { out["\(table)\(name)"] = Int(value) }
        }
        let v6 = try run(["ip", "netns", "exec", namespace, "cat", "/proc/net/snmp6"]).out.split(separator: "\n")
        for line in v6 {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if f.count == 2, let v = Int(f[1]) { out[String(f[0])] = v }
        }
        return out
    }
}
