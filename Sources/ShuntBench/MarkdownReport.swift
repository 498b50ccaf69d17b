import Foundation

/// results.md: one table row per forwarder, frame size and flow count; medians with (min-max)
/// over the repeats; † marks a value the generator limited (a lower bound of the forwarder's).
public enum MarkdownReport {
    public static func render(_ results: BenchResults) -> String {
        let m = results.manifest
        var lines: [String] = []
        lines.append("# shunt bench" + (results.incomplete ? " (INTERRUPTED: partial results)" : ""))
        lines.append("")
        lines.append("\(m.date) · kernel \(m.kernel) · \(m.cpuModel) × \(m.cpus) CPUs · "
            + "\(m.settings["repeats"] ?? "?") interleaved repeat\(m.settings["repeats"] == "1" ? "" : "s") · median (min–max)")
        if m.shuntReleaseBuild == false { lines += ["", "**shunt was a debug build: its numbers are not representative.**"] }
        if let g = m.generator {
            lines += ["", "Generator: `shunt gen --engine \(g.engine)` (\(g.choice)); its ceiling in this run, 64 B into a sink "
                + "with no forwarder: \(String(format: "%.3f", g.ceilingPPS / 1e6)) Mpps sent, "
                + "\(String(format: "%.3f", g.deliveredPPS / 1e6)) Mpps counted."]
        }
        if m.settings["quick"] == "true" { lines += ["", "**--quick: short trials and a coarse search; a smoke run, not a measurement.**"] }
        lines.append("")
        // The mirror column only when a mirror forwarder ran.
        let mirrors = results.summary.contains { $0.overloadMirrorCopiesPerDelivered != nil }
        var header = ["forwarder", "frame B", "flows", "overload Mpps (delivered)", "zero-loss Mpps"]
        if mirrors { header.append("mirror copies per delivered frame (overload)") }
        header += results.latencyFractions.map { "p50 / p99 µs at \(percent($0)) of zero-loss" }
        header += results.latencyRates.map { "p50 / p99 µs at \(rate($0))" }
        lines.append("| " + header.joined(separator: " | ") + " |")
        lines.append("|" + String(repeating: "---|", count: header.count))
        for s in results.summary {
            var cells = [s.benchCase.forwarder, "\(s.benchCase.frameSize)", "\(s.benchCase.flows)",
                         mpps(s.overloadDeliveredPPS, limited: s.overloadGeneratorLimited > 0),
                         mpps(s.zeroLossPPS, limited: s.zeroLossGeneratorLimited > 0)]
            if mirrors { cells.append(mirrorCell(s)) }
            let points = results.latencyFractions.map { fraction in s.latency.first { $0.ratePPS == nil && $0.fraction == fraction } }
                + results.latencyRates.map { rate in s.latency.first { $0.ratePPS == rate } }
            for l in points {
                if let l, let p50 = l.p50Us, let p99 = l.p99Us {
                    cells.append("\(us(p50)) / \(us(p99))")
                } else {
                    cells.append("–")
                }
            }
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        lines.append("")
        if results.summary.contains(where: { $0.overloadGeneratorLimited > 0 || $0.zeroLossGeneratorLimited > 0 }) {
            lines.append("† generator-limited in at least one repeat, so a lower bound: in overload the generator offered "
                + "less than 1.1x what the forwarder delivered; in the zero-loss search the generator fell more than 2 % short "
                + "of the rate asked in the passing trial.")
            lines.append("")
        }
        if mirrors {
            lines.append("Mirror copies per delivered frame: probes counted at the monitor ports (the far ends of "
                + "the analysis ports fwd2 and fwd3) over probes counted at the sink, in the overload trials. N sessions "
                + "make N copies per frame when the mirror keeps up; less means copies were lost, more that frames were "
                + "copied on the way in and lost on the way out. \"in kernel\": the share of the copies the XDP fast "
                + "path made (the rest went through the slow path).")
            lines.append("")
        }
        let tolerance = m.settings["loss_tolerance_pct"].flatMap(Double.init).map(trim) ?? "0"
        lines.append("Frame sizes are on the wire (with FCS; the generator sends 4 bytes less). Overload: the generator "
            + "flat out, delivered = probes at the sink / the generator's sending time. Zero-loss: the highest rate the "
            + "generator offered (measured at the generator) in a trial that lost at most \(tolerance) %, "
            + "in a \(m.settings["search_steps"] ?? "?")-step search of \(m.settings["trial_seconds"] ?? "?") s trials. "
            + "Latency: one-way, generator send stamp to sink arrival (XDP sink: bucket lower bounds), at the given "
            + "fractions of each repeat's zero-loss rate. Generator on CPU \(m.generatorCPU), forwarder on CPU \(m.forwarderCPU).")
        if !results.skipped.isEmpty {
            lines.append("")
            lines.append("Skipped: " + results.skipped.map { "\($0.forwarder) (\($0.reason))" }.joined(separator: "; ") + ".")
        }
        let tools = m.tools.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: "; ")
        lines.append("")
        lines.append("shunt \(m.shuntGitCommit.map { String($0.prefix(12)) } ?? "(no git commit)")"
            + (m.shuntGitDirty == true ? " (dirty)" : "") + (m.shuntReleaseBuild == true ? ", release build" : "")
            + ". Tools: \(tools).")
        return lines.joined(separator: "\n") + "\n"
    }

    static func mpps(_ s: Spread?, limited: Bool) -> String {
        guard let s else { return "–" }
        let f = { (x: Double) in String(format: "%.3f", x / 1e6) }
        return "\(f(s.median)) (\(f(s.min))–\(f(s.max)))" + (limited ? " †" : "")
    }

    static func mirrorCell(_ s: CaseSummary) -> String {
        guard let c = s.overloadMirrorCopiesPerDelivered else { return "–" }
        let f = { (x: Double) in String(format: "%.3f", x) }
        var cell = c.min == c.max ? f(c.median) : "\(f(c.median)) (\(f(c.min))–\(f(c.max)))"
        if let k = s.overloadMirrorFastPathShare {
            // Rounded down: "100 %" only when the kernel made every copy.
            cell += ", \(String(format: "%.1f", (k.median * 1000).rounded(.down) / 10)) % in kernel"
        }
        return cell
    }

    static func us(_ s: Spread) -> String {
        s.min == s.max ? trim(s.median) : "\(trim(s.median)) (\(trim(s.min))–\(trim(s.max)))"
    }

    /// A number without a needless ".0" (3, 0.5, 1e+06).
    public static func trim(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(format: "%g", x)
    }

    public static func percent(_ fraction: Double) -> String { trim(fraction * 100) + " %" }

    /// A fixed latency-trial rate: "10 kpps", "1.5 Mpps".
    public static func rate(_ pps: Double) -> String {
        pps >= 1e6 ? trim(pps / 1e6) + " Mpps" : pps >= 1e3 ? trim(pps / 1e3) + " kpps" : trim(pps) + " pps"
    }
}
