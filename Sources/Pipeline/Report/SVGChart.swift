import Foundation
import Stages

/// Small inline SVG charts for the HTML report: line charts (loss curves) and bar charts (FD per
/// cell). Plain XML, no scripts, so the page stays self-contained and parses as XHTML.
public enum SVGChart {
    public static let width = 520.0, height = 280.0
    public static let left = 60.0, right = 16.0, top = 14.0, bottom = 40.0
    public static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    /// Linear map from data ranges to the plot area (y grows downwards in SVG).
    public struct Scale: Sendable {
        public var xmin, xmax, ymin, ymax: Double
        public init(xs: [Double], ys: [Double], yFromZero: Bool = false) {
            xmin = xs.min() ?? 0; xmax = xs.max() ?? 1
            ymin = yFromZero ? min(0, ys.min() ?? 0) : (ys.min() ?? 0); ymax = ys.max() ?? 1
            if xmax <= xmin { xmin -= 0.5; xmax += 0.5 }
            if ymax <= ymin { ymin -= 0.5; ymax += 0.5 }
        }
        public func x(_ v: Double) -> Double { left + (v - xmin) / (xmax - xmin) * (width - left - right) }
        public func y(_ v: Double) -> Double { top + (1 - (v - ymin) / (ymax - ymin)) * (height - top - bottom) }
    }

    static func n(_ v: Double) -> String { String(format: "%.2f", v) }

    /// `points` attribute of a polyline.
    public static func points(_ data: [(x: Double, y: Double)], _ s: Scale) -> String {
        data.map { n(s.x($0.x)) + "," + n(s.y($0.y)) }.joined(separator: " ")
    }

    static func open(_ label: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(HTML.escape(label))\">"
    }

    static func axes(_ s: Scale, xLabel: String, yLabel: String, xTicks: Bool = true) -> String {
        var out = "<g class=\"axes\" stroke=\"#444\" stroke-width=\"1\">"
        out += "<line x1=\"\(n(left))\" y1=\"\(n(height - bottom))\" x2=\"\(n(width - right))\" y2=\"\(n(height - bottom))\" />"
        out += "<line x1=\"\(n(left))\" y1=\"\(n(top))\" x2=\"\(n(left))\" y2=\"\(n(height - bottom))\" /></g>"
        out += "<g font-size=\"11\" font-family=\"sans-serif\" fill=\"#333\">"
        for i in 0...4 {
            let v = s.ymin + (s.ymax - s.ymin) * Double(i) / 4
            out += "<text x=\"\(n(left - 4))\" y=\"\(n(s.y(v) + 4))\" text-anchor=\"end\">\(HTML.escape(ResultTableFormat.short(v)))</text>"
        }
        if xTicks {
            for v in [s.xmin, (s.xmin + s.xmax) / 2, s.xmax] {
                out += "<text x=\"\(n(s.x(v)))\" y=\"\(n(height - bottom + 14))\" text-anchor=\"middle\">\(HTML.escape(ResultTableFormat.short(v)))</text>"
            }
        }
        out += "<text x=\"\(n((left + width - right) / 2))\" y=\"\(n(height - 6))\" text-anchor=\"middle\">\(HTML.escape(xLabel))</text>"
        out += "<text x=\"12\" y=\"\(n((top + height - bottom) / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 12 \(n((top + height - bottom) / 2)))\">\(HTML.escape(yLabel))</text>"
        return out + "</g>"
    }

    /// One polyline per series, with a legend; `dashed` series are drawn dashed (comparisons).
    public static func lines(_ series: [(label: String, points: [(x: Double, y: Double)], dashed: Bool)],
                             xLabel: String, yLabel: String) -> String {
        let all = series.flatMap(\.points)
        let s = Scale(xs: all.map(\.x), ys: all.map(\.y))
        var out = open(yLabel + " vs " + xLabel) + axes(s, xLabel: xLabel, yLabel: yLabel)
        for (i, line) in series.enumerated() where !line.points.isEmpty {
            let color = palette[i % palette.count]
            out += "<polyline class=\"series\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\"\(line.dashed ? " stroke-dasharray=\"5 3\"" : "") points=\"\(points(line.points, s))\"><title>\(HTML.escape(line.label))</title></polyline>"
        }
        return out + legend(series.map { ($0.label, $0.dashed) }) + "</svg>"
    }

    /// The series' labels in the top right, each beside a stroke of its colour.
    static func legend(_ entries: [(label: String, dashed: Bool)]) -> String {
        var out = "<g font-size=\"11\" font-family=\"sans-serif\">"
        for (i, entry) in entries.enumerated() {
            let y = top + 12 + Double(i) * 14
            let color = palette[i % palette.count]
            out += "<line x1=\"\(n(width - right - 150))\" y1=\"\(n(y - 4))\" x2=\"\(n(width - right - 132))\" y2=\"\(n(y - 4))\" stroke=\"\(color)\" stroke-width=\"2\"\(entry.dashed ? " stroke-dasharray=\"5 3\"" : "") />"
            out += "<text x=\"\(n(width - right - 128))\" y=\"\(n(y))\">\(HTML.escape(entry.label))</text>"
        }
        return out + "</g>"
    }

    /// One line per series through its means, with a shaded band from `low` to `high` (mean ± std
    /// over seeds) and a dot at every point.
    public static func bands(_ series: [(label: String, points: [(x: Double, mean: Double, low: Double, high: Double)])],
                             xLabel: String, yLabel: String) -> String {
        let all = series.flatMap(\.points)
        let s = Scale(xs: all.map(\.x), ys: all.map(\.low) + all.map(\.high))
        var out = open(yLabel + " vs " + xLabel) + axes(s, xLabel: xLabel, yLabel: yLabel)
        for (i, line) in series.enumerated() where !line.points.isEmpty {
            let color = palette[i % palette.count]
            let outline = line.points.map { ($0.x, $0.high) } + line.points.reversed().map { ($0.x, $0.low) }
            out += "<polygon class=\"band\" fill=\"\(color)\" fill-opacity=\"0.18\" stroke=\"none\" points=\"\(points(outline, s))\" />"
            out += "<polyline class=\"series\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(points(line.points.map { ($0.x, $0.mean) }, s))\"><title>\(HTML.escape(line.label))</title></polyline>"
            for p in line.points {
                out += "<circle cx=\"\(n(s.x(p.x)))\" cy=\"\(n(s.y(p.mean)))\" r=\"2.2\" fill=\"\(color)\"><title>\(HTML.escape(line.label)): \(HTML.escape(ResultTableFormat.short(p.x))), \(HTML.escape(ResultTableFormat.short(p.mean)))</title></circle>"
            }
        }
        return out + legend(series.map { ($0.label, false) }) + "</svg>"
    }

    /// Bars from zero, one per labelled value.
    public static func bars(_ bars: [(label: String, value: Double)], yLabel: String) -> String {
        let finite = bars.filter { $0.value.isFinite }
        let s = Scale(xs: [0, Double(max(1, bars.count))], ys: finite.map(\.value), yFromZero: true)
        var out = open(yLabel) + axes(s, xLabel: "cell", yLabel: yLabel, xTicks: false)
        let slot = (width - left - right) / Double(max(1, bars.count))
        out += "<g font-size=\"10\" font-family=\"sans-serif\" fill=\"#333\">"
        for (i, b) in bars.enumerated() where b.value.isFinite {
            let x = left + Double(i) * slot + slot * 0.15
            let y = s.y(max(b.value, 0)), y0 = s.y(0)
            out += "<rect class=\"bar\" x=\"\(n(x))\" y=\"\(n(min(y, y0)))\" width=\"\(n(slot * 0.7))\" height=\"\(n(abs(y0 - y)))\" fill=\"\(palette[i % palette.count])\"><title>\(HTML.escape(b.label)): \(HTML.escape(ResultTableFormat.short(b.value)))</title></rect>"
            out += "<text x=\"\(n(x + slot * 0.35))\" y=\"\(n(min(y, y0) - 3))\" text-anchor=\"middle\">\(HTML.escape(ResultTableFormat.short(b.value)))</text>"
            out += "<text x=\"\(n(x + slot * 0.35))\" y=\"\(n(height - bottom + 13))\" text-anchor=\"middle\">\(HTML.escape(b.label))</text>"
        }
        return out + "</g></svg>"
    }
}

enum ResultTableFormat {
    static func short(_ v: Double) -> String { ResultTable.format(v, precision: 3) }
}

/// XHTML-safe text.
public enum HTML {
    public static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}
