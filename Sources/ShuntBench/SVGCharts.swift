import Foundation

/// The two charts of a run, as hand-written SVG (no dependencies, readable in any browser).
public enum SVGCharts {
    static let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                          "#9c755f", "#bab0ac"]

    /// Grouped bars: one group per frame size and flow count, one bar per forwarder, height the
    /// median zero-loss rate (or, with `overload`, the overload delivered rate), a whisker from min
    /// to max; bars the generator limited carry "≥" above them.
    public static func throughput(_ results: BenchResults, overload: Bool = false) -> String {
        let groups = results.frameSizes.flatMap { s in results.flows.map { (s, $0) } }
        let forwarders = results.forwarders
        let value: (CaseSummary) -> Spread? = { overload ? $0.overloadDeliveredPPS : $0.zeroLossPPS }
        let limited: (CaseSummary) -> Bool = {
            overload ? $0.overloadGeneratorLimited > 0 : $0.zeroLossGeneratorLimited > 0
        }
        func summary(_ f: String, _ g: (Int, Int)) -> CaseSummary? {
            results.summary.first { $0.benchCase == BenchCase(forwarder: f, frameSize: g.0, flows: g.1) }
        }
        let top = niceCeiling(results.summary.compactMap { value($0)?.max }.max() ?? 0)
        let barWidth = 18.0, gap = 24.0, left = 70.0, plotTop = 50.0, plotHeight = 300.0
        let groupWidth = Double(max(1, forwarders.count)) * barWidth + gap
        let width = left + Double(groups.count) * groupWidth + 190
        let height = plotTop + plotHeight + 70
        var svg = header(width: width, height: height)
        let title = overload ? "Overload throughput, delivered (Mpps)" : "Zero-loss throughput (Mpps)"
        svg += text(left, 24, title + ": median, whiskers min–max", size: 15, weight: "bold")
        svg += axis(left: left, top: plotTop, height: plotHeight, width: Double(groups.count) * groupWidth, maximum: top,
                    label: { String(format: "%.2f", $0 / 1e6) })
        for (gi, g) in groups.enumerated() {
            let x0 = left + Double(gi) * groupWidth + gap / 2
            for (fi, f) in forwarders.enumerated() {
                guard let s = summary(f, g), let v = value(s) else { continue }
                let x = x0 + Double(fi) * barWidth
                let y = { (pps: Double) in plotTop + plotHeight - (top > 0 ? pps / top * plotHeight : 0) }
                svg += "<rect class=\"bar\" data-forwarder=\"\(escape(f))\" x=\"\(r(x))\" y=\"\(r(y(v.median)))\" "
                    + "width=\"\(r(barWidth - 2))\" height=\"\(r(plotTop + plotHeight - y(v.median)))\" "
                    + "fill=\"\(palette[fi % palette.count])\"><title>\(escape(f)) \(g.0) B \(g.1) flow\(g.1 == 1 ? "" : "s"): "
                    + "\(String(format: "%.3f", v.median / 1e6)) Mpps</title></rect>\n"
                let cx = x + (barWidth - 2) / 2
                svg += "<line x1=\"\(r(cx))\" x2=\"\(r(cx))\" y1=\"\(r(y(v.min)))\" y2=\"\(r(y(v.max)))\" stroke=\"#000\"/>\n"
                if limited(s) { svg += text(cx - 4, y(v.max) - 4, "≥", size: 10) }
            }
            svg += text(x0, plotTop + plotHeight + 18, "\(g.0) B, \(g.1) flow\(g.1 == 1 ? "" : "s")", size: 11)
        }
        svg += legend(forwarders, x: width - 170, y: plotTop)
        if results.summary.contains(where: limited) {
            svg += text(left, height - 20, "≥: generator-limited in a repeat (a lower bound)", size: 11)
        }
        return svg + "</svg>\n"
    }

    /// Latency CDFs, one curve per forwarder, for one frame size, flow count and fraction of the
    /// zero-loss rate (the sink reports quantiles, so each curve is drawn through min, p50, p90,
    /// p99, p99.9 and max of the repeat with the median p99). The x axis is logarithmic.
    public static func latencyCDF(_ results: BenchResults, frameSize: Int, flows: Int, fraction: Double) -> String {
        let curves: [(String, [(fraction: Double, microseconds: Double)])] = results.forwarders.compactMap { f in
            guard let s = results.summary.first(where: { $0.benchCase == BenchCase(forwarder: f, frameSize: frameSize, flows: flows) }),
                  let q = s.latency.first(where: { $0.ratePPS == nil && $0.fraction == fraction })?.medianTrial else { return nil }
            let points = q.cdfPoints
            return points.isEmpty ? nil : (f, points)
        }
        let all = curves.flatMap { $0.1.map { Swift.max(1, $0.microseconds) } }
        let lowDecade = floor(log10(all.min() ?? 1)), highDecade = Swift.max(lowDecade + 1, ceil(log10((all.max() ?? 10) * 1.01)))
        let left = 70.0, plotTop = 50.0, plotWidth = 520.0, plotHeight = 300.0
        let width = left + plotWidth + 190, height = plotTop + plotHeight + 70
        func x(_ us: Double) -> Double { left + (log10(Swift.max(1, us)) - lowDecade) / (highDecade - lowDecade) * plotWidth }
        func y(_ f: Double) -> Double { plotTop + plotHeight - f * plotHeight }
        var svg = header(width: width, height: height)
        svg += text(left, 24, "Latency CDF, \(frameSize) B, \(flows) flow\(flows == 1 ? "" : "s"), at \(MarkdownReport.percent(fraction)) of zero-loss", size: 15, weight: "bold")
        svg += "<rect x=\"\(r(left))\" y=\"\(r(plotTop))\" width=\"\(r(plotWidth))\" height=\"\(r(plotHeight))\" fill=\"none\" stroke=\"#888\"/>\n"
        for f in stride(from: 0.0, through: 1.0, by: 0.25) {
            svg += "<line x1=\"\(r(left))\" x2=\"\(r(left + plotWidth))\" y1=\"\(r(y(f)))\" y2=\"\(r(y(f)))\" stroke=\"#ddd\"/>\n"
            svg += text(left - 36, y(f) + 4, String(format: "%.2f", f), size: 11)
        }
        var decade = lowDecade
        while decade <= highDecade {
            let us = pow(10, decade)
            svg += "<line x1=\"\(r(x(us)))\" x2=\"\(r(x(us)))\" y1=\"\(r(plotTop))\" y2=\"\(r(plotTop + plotHeight))\" stroke=\"#ddd\"/>\n"
            svg += text(x(us) - 8, plotTop + plotHeight + 16, MarkdownReport.trim(us), size: 11)
            decade += 1
        }
        svg += text(left + plotWidth / 2 - 60, plotTop + plotHeight + 36, "one-way latency, µs (log)", size: 12)
        for (i, curve) in curves.enumerated() {
            // A step function: the latency stays at a quantile's value until the next fraction.
            var d = ""
            for (j, p) in curve.1.enumerated() {
                d += j == 0 ? "M\(r(x(p.microseconds))),\(r(y(p.fraction)))" : " H\(r(x(p.microseconds))) V\(r(y(p.fraction)))"
            }
            svg += "<path class=\"cdf\" data-forwarder=\"\(escape(curve.0))\" d=\"\(d)\" fill=\"none\" stroke-width=\"2\" "
                + "stroke=\"\(palette[(results.forwarders.firstIndex(of: curve.0) ?? i) % palette.count])\"/>\n"
        }
        if curves.isEmpty { svg += text(left + 20, plotTop + 40, "no latency measured", size: 13) }
        svg += legend(curves.map(\.0), x: width - 170, y: plotTop, colorIndex: { results.forwarders.firstIndex(of: $0) ?? 0 })
        return svg + "</svg>\n"
    }

    // MARK: pieces

    static func header(width: Double, height: Double) -> String {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            + "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(r(width))\" height=\"\(r(height))\" "
            + "viewBox=\"0 0 \(r(width)) \(r(height))\" font-family=\"sans-serif\">\n"
            + "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
    }

    static func axis(left: Double, top: Double, height: Double, width: Double, maximum: Double,
                     label: (Double) -> String) -> String {
        var s = "<line x1=\"\(r(left))\" x2=\"\(r(left))\" y1=\"\(r(top))\" y2=\"\(r(top + height))\" stroke=\"#000\"/>\n"
        s += "<line x1=\"\(r(left))\" x2=\"\(r(left + width))\" y1=\"\(r(top + height))\" y2=\"\(r(top + height))\" stroke=\"#000\"/>\n"
        for i in 0...4 {
            let v = maximum * Double(i) / 4
            let y = top + height - Double(i) / 4 * height
            s += "<line x1=\"\(r(left))\" x2=\"\(r(left + width))\" y1=\"\(r(y))\" y2=\"\(r(y))\" stroke=\"#eee\"/>\n"
            s += text(left - 44, y + 4, label(v), size: 11)
        }
        return s
    }

    static func legend(_ names: [String], x: Double, y: Double, colorIndex: ((String) -> Int)? = nil) -> String {
        var s = ""
        for (i, n) in names.enumerated() {
            let c = palette[(colorIndex?(n) ?? i) % palette.count]
            s += "<rect x=\"\(r(x))\" y=\"\(r(y + Double(i) * 18))\" width=\"12\" height=\"12\" fill=\"\(c)\"/>\n"
            s += text(x + 18, y + Double(i) * 18 + 10, n, size: 12)
        }
        return s
    }

    static func text(_ x: Double, _ y: Double, _ t: String, size: Int, weight: String = "normal") -> String {
        "<text x=\"\(r(x))\" y=\"\(r(y))\" font-size=\"\(size)\" font-weight=\"\(weight)\">\(escape(t))</text>\n"
    }

    /// The smallest 1, 2 or 5 x 10^n at or above x (a round top for the axis).
    static func niceCeiling(_ x: Double) -> Double {
        guard x > 0 else { return 1 }
        let e = pow(10, floor(log10(x)))
        for m in [1.0, 2, 5, 10] where m * e >= x { return m * e }
        return 10 * e
    }

    static func r(_ x: Double) -> String { String(format: "%.1f", x) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
