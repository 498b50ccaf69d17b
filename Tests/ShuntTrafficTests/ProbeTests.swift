import CShunt
import Foundation
import ShuntTraffic
import Testing

/// A frame as `shunt gen` sends it: the template with a probe written in.
func genFrame(size: Int = 60, stream: UInt16 = 0, sequence: UInt32, sent: UInt64 = 1_000) -> [UInt8] {
    var f = TestFrameSpec(size: size).bytes()
    Probe(stream: stream, sequence: sequence, sentNanoseconds: sent).write(into: &f)
    return f
}

func parse(_ frame: [UInt8]) -> Probe? {
    frame.withUnsafeBytes { Probe.parse($0) }
}

@Suite struct ProbeTests {
    @Test func layoutFitsTheSmallestFrame() {
        #expect(MemoryLayout<shunt_probe>.size == 16)
        #expect(MemoryLayout<shunt_probe>.offset(of: \.magic) == 0)
        #expect(MemoryLayout<shunt_probe>.offset(of: \.stream) == 2)
        #expect(MemoryLayout<shunt_probe>.offset(of: \.sequence) == 4)
        #expect(MemoryLayout<shunt_probe>.offset(of: \.sent_ns) == 8)
        #expect(Probe.offset == 42 && Probe.size == 16)
        #expect(TestFrameSpec.minimumSize == 58 && TestFrameSpec.minimumSize <= TestFrameSpec.sizes.lowerBound)
        #expect(Probe.magic == 0x5348)
    }

    /// The bytes on the wire: magic and stream big-endian, sequence and time in host order (what
    /// xdp_gen stores through struct shunt_probe on this host).
    @Test func wireBytes() {
        let f = genFrame(stream: 0x0102, sequence: 0x0A0B_0C0D, sent: 0x1122_3344_5566_7788)
        #expect(Array(f[42..<46]) == [0x53, 0x48, 0x01, 0x02])
        var probe = shunt_probe()
        withUnsafeMutableBytes(of: &probe) { $0.copyBytes(from: f[42..<58]) }
        #expect(UInt16(bigEndian: probe.magic) == UInt16(SHUNT_PROBE_MAGIC))
        #expect(UInt16(bigEndian: probe.stream) == 0x0102)
        #expect(probe.sequence == 0x0A0B_0C0D)
        #expect(probe.sent_ns == 0x1122_3344_5566_7788)
    }

    @Test(arguments: [60, 61, 64, 128, 1514])
    func parsesGeneratedFrames(size: Int) {
        let f = genFrame(size: size, stream: 65535, sequence: UInt32.max, sent: 123_456_789)
        #expect(parse(f) == Probe(stream: 65535, sequence: UInt32.max, sentNanoseconds: 123_456_789))
    }

    @Test func shortFrames() {
        let f = genFrame(sequence: 5)
        #expect(parse(Array(f.prefix(58))) == Probe(stream: 0, sequence: 5, sentNanoseconds: 1_000))
        for n in [0, 14, 42, 57] {
            #expect(parse(Array(f.prefix(n))) == nil, "\(n) bytes")
        }
    }

    @Test func otherFrames() {
        let valid = genFrame(sequence: 1)
        func modified(_ change: (inout [UInt8]) -> Void) -> [UInt8] {
            var f = valid
            change(&f)
            return f
        }
        #expect(parse(valid) != nil)
        #expect(parse(modified { $0[12] = 0x86; $0[13] = 0xDD }) == nil)  // IPv6
        #expect(parse(modified { $0[12] = 0x08; $0[13] = 0x06 }) == nil)  // ARP
        #expect(parse(modified { $0[14] = 0x46 }) == nil)  // IPv4 options: the probe is elsewhere
        #expect(parse(modified { $0[23] = 6 }) == nil)  // TCP
        #expect(parse(modified { $0[21] = 0x10 }) == nil)  // a later fragment
        #expect(parse(modified { $0[20] = 0x01 }) == nil)  // a later fragment (high offset bits)
        #expect(parse(modified { $0[20] = 0x20 }) != nil)  // first fragment (MF set): has the probe
        #expect(parse(modified { $0[43] ^= 0xFF }) == nil)  // magic
        #expect(parse(modified { $0[42] = 0x48; $0[43] = 0x53 }) == nil)  // magic byte-swapped
        // An 802.1Q tag in the frame moves the probe: not parsed (rings hand frames over untagged).
        var tagged = valid
        tagged.insert(contentsOf: [0x81, 0x00, 0x00, 0x0A], at: 12)
        #expect(parse(tagged) == nil)
        #expect(parse([UInt8](repeating: 0xEE, count: 60)) == nil)
    }
}

@Suite struct SinkAccountingTests {
    func record(_ a: inout SinkAccounting, _ frame: [UInt8], length: Int? = nil, at now: UInt64) {
        frame.withUnsafeBytes { a.record(frame: $0, length: length ?? frame.count, receivedNanoseconds: now) }
    }

    @Test func countsStreamsOtherFramesAndLatency() {
        var a = SinkAccounting()
        // stream 1: 0 1 3 2 2 (2 comes late: out of order; then again: a duplicate); stream 2: 10 12 (11 lost)
        for (i, seq) in [0, 1, 3, 2, 2].enumerated() {
            record(&a, genFrame(stream: 1, sequence: UInt32(seq), sent: 1_000), at: 1_000 + UInt64(i + 1) * 1_000)
        }
        record(&a, genFrame(size: 100, stream: 2, sequence: 10, sent: 10_000), at: 12_000)
        record(&a, genFrame(size: 100, stream: 2, sequence: 12, sent: 10_000), at: 13_000)
        record(&a, [UInt8](repeating: 0xEE, count: 60), at: 14_000)
        a.recordOther(count: 2, bytes: 3000, receivedNanoseconds: 15_000)

        #expect(a.received == 10)
        #expect(a.bytes == 5 * 60 + 2 * 100 + 60 + 3000)
        #expect(a.probes == 7)
        #expect(a.other == 3)
        #expect(a.firstReceivedNanoseconds == 2_000 && a.lastReceivedNanoseconds == 15_000)

        let table = a.streams.snapshot()
        let s1 = table.streams[1]!, s2 = table.streams[2]!
        #expect(s1.received == 5 && s1.lost == 0 && s1.outOfOrder == 1 && s1.duplicated == 1)
        #expect(s2.received == 2 && s2.lost == 1 && s2.bytes == 200)
        #expect(table.total.lost == 1 && table.total.duplicated == 1 && table.total.outOfOrder == 1)

        let latency = a.latency.summary()
        #expect(latency.count == 7)
        #expect(latency.min == 1 && latency.max == 5)  // microseconds
    }

    @Test func receiveTimeBeforeSendTimeIsInvalidNotRecorded() {
        var a = SinkAccounting()
        record(&a, genFrame(sequence: 0, sent: 5_000), at: 4_000)
        #expect(a.probes == 1 && a.latency.count == 0 && a.latency.invalid == 1)
    }

    /// The capture may be shorter than the frame: bytes count the frame's length.
    @Test func bytesAreTheFrameLength() {
        var a = SinkAccounting()
        record(&a, genFrame(sequence: 0), length: 1514, at: 2_000)
        #expect(a.bytes == 1514 && a.streams.snapshot(stream: 0)?.bytes == 1514)
    }
}

@Suite struct SinkReportTests {
    func object(_ line: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test func ringReportHasTheStableKeys() throws {
        var a = SinkAccounting()
        for seq in [0, 2, 1, 1] as [UInt32] {
            genFrame(stream: 3, sequence: seq, sent: 1_000).withUnsafeBytes {
                a.record(frame: $0, length: 60, receivedNanoseconds: 3_500)
            }
        }
        let table = a.streams.snapshot()
        var r = SinkReport(engine: .ring, port: "sink0", latencyJSON: a.latency.summary().json, latencyText: "")
        r.ring = "v2"
        r.received = a.received
        r.bytes = a.bytes
        r.probes = a.probes
        r.sequences = table.total
        r.streams = table.streams.map { (stream: $0.key, stats: $0.value) }
        r.untracked = 0
        r.durationSeconds = 2
        r.ringDropped = 7
        let line = r.json
        #expect(line.hasPrefix("{\"type\":\"final\",\"engine\":\"ring\",\"ring\":\"v2\","))
        let o = try object(line)
        for key in ["received", "bytes", "lost", "duplicated", "out_of_order", "pps", "bps", "duration_s",
                    "ring_dropped", "other", "latency_us", "streams", "probes", "active_pps"] {
            #expect(o[key] != nil, "missing \(key)")
        }
        #expect(o["received"] as? Int == 4 && o["lost"] as? Int == 0)
        #expect(o["duplicated"] as? Int == 1 && o["out_of_order"] as? Int == 1)
        #expect(o["pps"] as? Double == 2 && o["bps"] as? Double == 960)
        #expect(o["ring_dropped"] as? Int == 7)
        let latency = try #require(o["latency_us"] as? [String: Any])
        #expect(Set(latency.keys) == ["min", "p50", "p90", "p99", "p999", "max", "samples"])
        #expect(latency["p50"] as? Double == 2.5 && latency["samples"] as? Int == 4)
        let streams = try #require(o["streams"] as? [[String: Any]])
        #expect(streams.count == 1 && streams[0]["stream"] as? Int == 3 && streams[0]["received"] as? Int == 4)
        #expect(streams[0]["first_seq"] as? Int == 0 && streams[0]["highest_seq"] as? Int == 2)
        #expect(r.text.contains { $0.contains("lost 0, duplicated 1, out of order 1") })
    }

    /// The XDP engine cannot count loss, duplicates or reordering per packet: null, not 0.
    @Test func xdpReportSaysNullForWhatItCannotCount() throws {
        var r = SinkReport(engine: .xdp, port: "sink0", latencyJSON: LatencyHistogram().summaryJSON(), latencyText: "")
        r.received = 10
        r.probes = 9
        r.other = 1
        r.reordered = 0
        let o = try object(r.json)
        #expect(o["engine"] as? String == "xdp")
        for key in ["ring", "lost", "duplicated", "out_of_order", "ring_dropped", "streams"] {
            #expect(o[key] is NSNull, "\(key) should be null")
        }
        #expect(o["received"] as? Int == 10 && o["reordered"] as? Int == 0)
    }

    @Test func statsLine() throws {
        var seq = SequenceStats()
        seq.lost = 3
        let s = SinkInterval(elapsedSeconds: 2, intervalSeconds: 0.5, intervalReceived: 500, intervalBytes: 30_000,
                             received: 1500, bytes: 90_000, sequences: seq, ringDropped: 0)
        let o = try object(s.json)
        #expect(o["type"] as? String == "stats")
        #expect(o["pps"] as? Double == 1000 && o["bps"] as? Double == 480_000)
        #expect(o["received"] as? Int == 1500 && o["lost"] as? Int == 3 && o["ring_dropped"] as? Int == 0)
    }
}
