import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import ShuntBench
import Testing

/// Results of a made-up run: two forwarders, two sizes, one flow count, three repeats.
func syntheticResults(incomplete: Bool = false) -> BenchResults {
    var runs: [BenchCase: [CaseRun]] = [:]
    for (fi, name) in ["fast", "slow"].enumerated() {
        for size in [64, 1518] {
            let rate = (fi == 0 ? 1_000_000.0 : 400_000.0) * (size == 64 ? 1 : 0.8)
            runs[BenchCase(forwarder: name, frameSize: size, flows: 1)] = (1...3).map { r in
                let zl = rate * (0.95 + 0.02 * Double(r))
                let overload = Trial(askedPPS: nil, sent: 4_000_000, received: UInt64(rate * 2), offeredPPS: 2_000_000, generatorSeconds: 2,
                                     vethDrops: VethDrops(intoForwarder: 7, outOfForwarder: 0))
                let lat = Trial(askedPPS: zl / 2, sent: UInt64(zl), received: UInt64(zl), offeredPPS: zl / 2, generatorSeconds: 2,
                                latencyUs: LatencyQuantiles(min: 2, p50: Double(3 + fi * 10 + r), p90: 20, p99: Double(40 + r),
                                                            p999: 90, max: 300, samples: UInt64(zl)))
                return CaseRun(repeatIndex: r, overload: overload, search: [lat], zeroLossPPS: zl,
                               zeroLossGeneratorLimited: fi == 0 && r == 2, latency: [LatencyRun(fraction: 0.5, trial: lat)])
            }
        }
    }
    let manifest = Manifest(date: "2026-11-22T04:00:00Z", kernel: "6.18.0-test", cpuModel: "Test CPU <v2>", cpus: 2,
                            generatorCPU: 0, forwarderCPU: 1,
                            settings: ["repeats": "3", "trial_seconds": "2", "search_steps": "7", "loss_tolerance_pct": "0"],
                            tools: ["iproute2": "ip utility, iproute2-6.1.0"], shuntBinary: "/x/.build/release/shunt",
                            shuntReleaseBuild: true, shuntGitCommit: "0123456789abcdef", shuntGitDirty: false, wallSeconds: 12)
    return BenchResults(manifest: manifest, forwarders: ["fast", "slow"], frameSizes: [64, 1518], flows: [1],
                        latencyFractions: [0.5], skipped: [SkippedForwarder(forwarder: "testpmd", reason: "dpdk-testpmd is not installed (Debian package: dpdk-dev)")],
                        runs: runs, incomplete: incomplete)
}

/// Parses SVG (XML) and collects the elements' names and attributes.
final class SVGCollector: NSObject, XMLParserDelegate {
    var elements: [(name: String, attributes: [String: String])] = []
    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        elements.append((name, attributes))
    }

    static func parse(_ svg: String) -> SVGCollector? {
        let c = SVGCollector()
        let p = XMLParser(data: Data(svg.utf8))
        p.delegate = c
        return p.parse() ? c : nil
    }
}

@Suite struct BenchReportTests {
    @Test func summaryHasMediansOverTheRepeats() {
        let r = syntheticResults()
        #expect(r.summary.count == 4)
        let fast64 = r.summary.first { $0.benchCase == BenchCase(forwarder: "fast", frameSize: 64, flows: 1) }!
        #expect(fast64.repeats == 3)
        #expect(abs(fast64.zeroLossPPS!.median - 990_000) < 1e-6)
        #expect(abs(fast64.zeroLossPPS!.min - 970_000) < 1e-6 && abs(fast64.zeroLossPPS!.max - 1_010_000) < 1e-6)
        #expect(fast64.zeroLossGeneratorLimited == 1)
        #expect(fast64.overloadDeliveredPPS!.median == 1_000_000)
        #expect(fast64.latency[0].p50Us!.median == 5)
        #expect(fast64.latency[0].medianTrial?.p99 == 42)
    }

    @Test func jsonHasStableKeysAndRoundTrips() throws {
        let r = syntheticResults()
        let data = try r.json()
        let object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let topKeys: Set<String> = ["schema", "manifest", "forwarders", "frame_sizes", "flows", "latency_fractions",
                                    "latency_rates_pps", "skipped", "summary", "runs", "incomplete"]
        #expect(Set(object.keys) == topKeys)
        #expect(object["schema"] as? String == "shunt-bench/1")
        let manifest = object["manifest"] as! [String: Any]
        #expect(manifest["kernel"] as? String == "6.18.0-test")
        #expect(manifest["shunt_release_build"] as? Bool == true)
        let summary = (object["summary"] as! [[String: Any]])[0]
        #expect((summary["case"] as! [String: Any])["frame_size"] as? Int == 64)
        #expect((summary["zero_loss_pps"] as! [String: Any])["median"] != nil)
        let firstCase = (object["runs"] as! [[String: Any]])[0]
        let firstRun = (firstCase["runs"] as! [[String: Any]])[0]
        let trial = firstRun["overload"] as! [String: Any]
        let trialKeys: Set<String> = ["asked_pps", "sent", "received", "lost", "loss_pct", "offered_pps", "delivered_pps",
                                      "generator_s", "generator_fell_short", "latency_us", "veth_drops"]
        #expect(Set(trial.keys) == trialKeys)
        #expect(trial["asked_pps"] is NSNull)
        #expect((trial["veth_drops"] as? [String: Any])?["gen0_to_fwd0"] as? Int == 7)
        let decoded = try JSONDecoder().decode(BenchResults.self, from: data)
        #expect(decoded == r)
        #expect(try decoded.json() == data)  // sorted keys: byte for byte the same
    }

    /// `--latency-rates`: trials at a fixed rate are summarised apart from the fractions of
    /// the zero-loss rate, and get their own column.
    @Test func fixedRateLatencyHasItsOwnSummaryAndColumn() throws {
        var runs: [BenchCase: [CaseRun]] = [:]
        let c = BenchCase(forwarder: "fast", frameSize: 64, flows: 1)
        runs[c] = (1...3).map { r in
            let overload = Trial(askedPPS: nil, sent: 1000, received: 1000, offeredPPS: 1_000_000, generatorSeconds: 1)
            func latency(_ p50: Double) -> Trial {
                Trial(askedPPS: 10_000, sent: 20_000, received: 20_000, offeredPPS: 10_000, generatorSeconds: 2,
                      latencyUs: LatencyQuantiles(min: 1, p50: p50, p90: p50, p99: p50 * 2, p999: p50 * 3, max: p50 * 4, samples: 20_000))
            }
            return CaseRun(repeatIndex: r, overload: overload, search: [], zeroLossPPS: 500_000, zeroLossGeneratorLimited: false,
                           latency: [LatencyRun(fraction: 0.5, trial: latency(100 + Double(r))),
                                     LatencyRun(ratePPS: 10_000, trial: latency(Double(r)))])
        }
        let base = syntheticResults()
        let r = BenchResults(manifest: base.manifest, forwarders: ["fast"], frameSizes: [64], flows: [1], latencyFractions: [0.5],
                             latencyRates: [10_000], skipped: [], runs: runs, incomplete: false)
        let s = try #require(r.summary.first)
        #expect(s.latency.count == 2)
        #expect(s.latency[0].ratePPS == nil && s.latency[0].p50Us?.median == 102)
        #expect(s.latency[1].ratePPS == 10_000 && s.latency[1].p50Us?.median == 2 && s.latency[1].p50Us?.min == 1)
        let md = MarkdownReport.render(r)
        #expect(md.contains("p50 / p99 µs at 50 % of zero-loss | p50 / p99 µs at 10 kpps |"))
        let row = try #require(md.split(separator: "\n").first { $0.hasPrefix("| fast") })
        #expect(row.hasSuffix("| 102 (101–103) / 204 (202–206) | 2 (1–3) / 4 (2–6) |"), "\(row)")
        #expect(try JSONDecoder().decode(BenchResults.self, from: r.json()) == r)
    }

    @Test func markdownTableHasARowPerCaseAndMarksLowerBounds() {
        let md = MarkdownReport.render(syntheticResults())
        let rows = md.split(separator: "\n").filter { $0.hasPrefix("| fast") || $0.hasPrefix("| slow") }
        #expect(rows.count == 4)
        #expect(rows[0] == "| fast | 64 | 1 | 1.000 (1.000–1.000) | 0.990 (0.970–1.010) † | 5 (4–6) / 42 (41–43) |")
        #expect(rows[2].hasPrefix("| slow | 64 | 1 | 0.400 (0.400–0.400) | 0.396 (0.388–0.404) |"))
        #expect(md.contains("† generator-limited"))
        #expect(md.contains("kernel 6.18.0-test"))
        #expect(md.contains("Skipped: testpmd (dpdk-testpmd is not installed (Debian package: dpdk-dev))"))
        #expect(!md.contains("INTERRUPTED"))
        #expect(MarkdownReport.render(syntheticResults(incomplete: true)).contains("INTERRUPTED"))
    }

    @Test func throughputChartIsWellFormedWithABarPerForwarderAndSize() throws {
        let svg = SVGCharts.throughput(syntheticResults())
        let parsed = try #require(SVGCollector.parse(svg))
        #expect(parsed.elements.first?.name == "svg")
        let bars = parsed.elements.filter { $0.attributes["class"] == "bar" }
        #expect(bars.count == 4)
        #expect(bars.filter { $0.attributes["data-forwarder"] == "fast" }.count == 2)
        #expect(bars.filter { $0.attributes["data-forwarder"] == "slow" }.count == 2)
        // The faster forwarder's 64-byte bar is the taller one.
        let heights: [Double] = bars.map { Double($0.attributes["height"]!)! }
        #expect(heights[0] > heights[1])
        #expect(svg.contains("≥"))
    }

    @Test func latencyChartHasACurvePerForwarder() throws {
        let svg = SVGCharts.latencyCDF(syntheticResults(), frameSize: 64, flows: 1, fraction: 0.5)
        let parsed = try #require(SVGCollector.parse(svg))
        let curves = parsed.elements.filter { $0.attributes["class"] == "cdf" }
        #expect(curves.map { $0.attributes["data-forwarder"] } == ["fast", "slow"])
        // min, p50, p90, p99, p999, max: a move and five steps of two segments each.
        #expect(curves[0].attributes["d"]!.split(separator: " ").count == 11)
        let empty = SVGCharts.latencyCDF(syntheticResults(), frameSize: 64, flows: 1024, fraction: 0.5)
        #expect(SVGCollector.parse(empty) != nil && empty.contains("no latency measured"))
    }

    @Test func mirrorCopiesAreRecordedSummarisedAndShownOnlyWithAMirrorForwarder() throws {
        var r = syntheticResults()
        #expect(!MarkdownReport.render(r).contains("mirror copies"))
        #expect(r.summary.allSatisfy { $0.overloadMirrorCopiesPerDelivered == nil && $0.overloadMirrorFastPathShare == nil })
        let plain = try JSONSerialization.jsonObject(with: r.json()) as! [String: Any]
        #expect((plain["summary"] as! [[String: Any]]).allSatisfy { !$0.keys.contains { $0.contains("mirror") } })

        // Two sessions on the XDP datapath: 2 copies per delivered frame at the monitors, most made in the kernel.
        let runs: [CaseRun] = (1...3).map { i in
            let delivered = UInt64(100_000 * i)
            let overload = Trial(askedPPS: nil, sent: 4_000_000, received: delivered, offeredPPS: 2_000_000, generatorSeconds: 2,
                                 mirrorReceived: 2 * delivered - UInt64(i - 1) * 1000, mirrorCopied: 2 * delivered,
                                 mirrorFastPath: 2 * delivered - 100, mirrorDropped: 0)
            return CaseRun(repeatIndex: i, overload: overload, search: [], zeroLossPPS: 0, zeroLossGeneratorLimited: false, latency: [])
        }
        let c = BenchCase(forwarder: "shunt-xdp-mirror2", frameSize: 64, flows: 1)
        var all: [BenchCase: [CaseRun]] = [:]
        for record in r.runs { all[record.benchCase] = record.runs }
        all[c] = runs
        r = BenchResults(manifest: r.manifest, forwarders: r.forwarders + [c.forwarder], frameSizes: [64, 1518], flows: [1],
                         latencyFractions: [0.5], skipped: [], runs: all, incomplete: false)
        let s = try #require(r.summary.first { $0.benchCase == c })
        let ratio = try #require(s.overloadMirrorCopiesPerDelivered)
        #expect(ratio.max == 2 && abs(ratio.median - 1.995) < 1e-9 && abs(ratio.min - (2 - 2000.0 / 300_000)) < 1e-9)
        #expect(try #require(s.overloadMirrorFastPathShare).min > 0.999)

        let data = try r.json()
        let object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let summary = (object["summary"] as! [[String: Any]]).first { ($0["case"] as! [String: Any])["forwarder"] as? String == c.forwarder }!
        #expect((summary["overload_mirror_copies_per_delivered"] as? [String: Any])?["median"] as? Double == ratio.median)
        #expect(summary["overload_mirror_fast_path_share"] != nil)
        let record = (object["runs"] as! [[String: Any]]).first { ($0["case"] as! [String: Any])["forwarder"] as? String == c.forwarder }!
        let trial = ((record["runs"] as! [[String: Any]])[0])["overload"] as! [String: Any]
        #expect(trial["mirror_received"] as? Int == 200_000 && trial["mirror_copied"] as? Int == 200_000)
        #expect(trial["mirror_fast_path"] as? Int == 199_900 && trial["mirror_dropped"] as? Int == 0)
        #expect(try JSONDecoder().decode(BenchResults.self, from: data) == r)

        let md = MarkdownReport.render(r)
        #expect(md.contains("| mirror copies per delivered frame (overload) |"))
        #expect(md.contains("| shunt-xdp-mirror2 | 64 | 1 | 0.100 (0.050–0.150) | 0.000 (0.000–0.000) | 1.995 (1.993–2.000), 99.9 % in kernel | – |"))
        #expect(md.contains("| fast | 64 | 1 | 1.000 (1.000–1.000) | 0.990 (0.970–1.010) † | – | 5 (4–6) / 42 (41–43) |"))
        #expect(md.contains("N sessions make N copies per frame"))
    }

    @Test func textIsEscaped() throws {
        // The CPU model has angle brackets; the chart titles and the legend must stay XML.
        var r = syntheticResults()
        r.forwarders = ["a<b&c", "slow"]
        #expect(SVGCollector.parse(SVGCharts.throughput(r)) != nil)
    }
}
