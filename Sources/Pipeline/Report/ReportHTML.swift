import Foundation
import Stages

/// A self-contained HTML page (XHTML-compatible markup, so it also parses as XML): tables, the
/// cell table, deltas, differing params, loss curves and Fréchet distances as inline SVG, and
/// every cell's sample grid inlined as a base64 PNG.
extension ExperimentReport {
    public var html: String {
        var body = "<h1>Report: \(HTML.escape(title))</h1>\n"
        if !description.isEmpty { body += "<p class=\"desc\">\(HTML.escape(description))</p>\n" }
        body += "<p class=\"meta\">Experiment <code>\(HTML.escape(file))</code>"
            + (runID.map { ", run <code>\(HTML.escape($0))</code>" } ?? "") + ".</p>\n"
        for note in notes { body += "<p class=\"note\">\(HTML.escape(note))</p>\n" }
        if !tables.isEmpty {
            body += "<h2>Tables</h2>\n"
            for t in tables { body += Self.htmlTable(t) }
        }
        body += "<h2>Cells</h2>\n"
        body += HTMLPage.table(header: cellHeader, rows: cells.map(cellRow), numericFrom: axisNames.count,
                               highlight: cells.map { $0.label == baselineLabel })
        if !shared.isEmpty {
            body += "<p class=\"shared\">Same in every cell: "
                + shared.map { "<code>\(HTML.escape($0.column))</code> = \(HTML.escape(Self.format($0.value)))" }.joined(separator: ", ") + "</p>\n"
        }
        if let baselineLabel {
            body += "<h2>Deltas against the baseline \(HTML.escape(baselineLabel))</h2>\n"
            let deltaCells = cells.filter { baselineOf[$0.label] != nil && baselineOf[$0.label] != $0.label }
            body += HTMLPage.table(header: ["cell"] + metricColumns.map { "Δ " + $0 },
                                   rows: deltaCells.map { c in [c.label] + deltaRow(c).map { $0.map(Self.signed) ?? "" } }, numericFrom: 1)
        }
        if !differingParams.isEmpty {
            body += "<h2>Params that differ between cells</h2>\n"
            body += HTMLPage.table(header: ["cell"] + differingParams,
                                   rows: cells.map { c in [c.label] + differingParams.map { c.params[$0]?.shortDescription ?? "" } })
        }
        // With curve tables (cells along an axis such as sample.at_kimg), one cell per curve, at
        // its last point, stands for the rest in the loss chart, the bars and the grids.
        let alongs = Set(tables.compactMap(\.along))
        let shown = alongs.isEmpty ? cells : Self.lastAlong(cells, axes: alongs)
        let curves = shown.filter { !$0.lossCurve.isEmpty }
        if !curves.isEmpty {
            body += "<h2>Training loss</h2>\n<div class=\"chart\">"
                + SVGChart.lines(curves.map { ($0.label, $0.lossCurve, false) }, xLabel: "counted kimg", yLabel: "loss") + "</div>\n"
        }
        let fdColumns = Array(Set(cells.flatMap { frechet($0).map(\.column) })).sorted()
        if !fdColumns.isEmpty {
            body += "<h2>Fréchet distance</h2>\n"
            if !alongs.isEmpty { body += "<p class=\"note\">At the last point along \(HTML.escape(alongs.sorted().joined(separator: ", "))); the curves above show the rest.</p>\n" }
            for col in fdColumns {
                let bars = shown.compactMap { c in c.metrics[col].map { (c.label, $0) } }
                body += "<div class=\"chart\">" + SVGChart.bars(bars, yLabel: col) + "</div>\n"
            }
        }
        let grids = shown.filter { $0.grid != nil }
        if !grids.isEmpty {
            body += "<h2>Samples</h2>\n<div class=\"grids\">\n"
            for c in grids { body += HTMLPage.figure(c.grid!, caption: c.label + (c.gridStage.map { " (\($0))" } ?? "")) }
            body += "</div>\n"
        }
        return HTMLPage.page(title: "Report: " + title, body: body)
    }

    /// The cells at the largest value of the `along` axes among the cells that agree on every other axis.
    static func lastAlong(_ cells: [Cell], axes: Set<String>) -> [Cell] {
        var best: [String: Cell] = [:]
        var order: [String] = []
        for c in cells {
            let rest = c.assignment.filter { !axes.contains($0.key) }.map { "\($0.key)=\($0.value.shortDescription)" }.joined(separator: ",")
            let position = c.assignment.filter { axes.contains($0.key) }.compactMap(\.value.doubleValue)
            if let b = best[rest] {
                let bp = b.assignment.filter { axes.contains($0.key) }.compactMap(\.value.doubleValue)
                if position.lexicographicallyPrecedes(bp) || position == bp { continue }
            } else { order.append(rest) }
            best[rest] = c
        }
        return order.map { best[$0]! }
    }

    static func htmlTable(_ t: ResultTable) -> String {
        var out = t.title.isEmpty ? "<h3>\(HTML.escape(t.name))</h3>\n" : "<h3>\(HTML.escape(t.title))</h3>\n"
        out += HTMLPage.table(header: t.header, rows: t.textRows, numericFrom: t.rowHeaders.count, highlight: t.rows.map(\.isBaseline))
        var notes: [String] = []
        if !t.aggregateOver.isEmpty { notes.append("mean ± std over " + t.aggregateOver.joined(separator: ", ")) }
        if !t.baseline.isEmpty { notes.append("baseline " + t.baseline.joined(separator: ", ")) }
        if let along = t.along { notes.append("values at the last point along \(along)") }
        notes.append("formulas: " + zip(t.columns, t.formulas).map { "\($0) = \($1)" }.joined(separator: "; "))
        return out + "<p class=\"tnote\">\(HTML.escape(notes.joined(separator: "; ")))</p>\n" + curveCharts(t)
    }

    /// With `along`: each plotted column against the axis and against each `versus` column, one
    /// line per row through the means, the band mean ± std over the aggregated cells.
    static func curveCharts(_ t: ResultTable) -> String {
        guard let along = t.along, let curves = t.curves, !curves.isEmpty else { return "" }
        let versus = t.versus ?? []
        let xName = along.split(separator: ".").last.map(String.init) ?? along
        var out = ""
        for (c, column) in t.columns.enumerated() where !versus.contains(column) {
            guard curves.contains(where: { $0.values.contains { $0[c] != nil } }) else { continue }
            var xAxes: [(label: String, column: Int?)] = [(xName, nil)]
            xAxes += versus.compactMap { v in t.columns.firstIndex(of: v).map { (v, $0) } }
            for x in xAxes {
                let series = curves.map { curve -> (label: String, points: [(x: Double, mean: Double, low: Double, high: Double)]) in
                    let label = zip(t.rowHeaders, curve.labels).map { "\($0)=\($1)" }.joined(separator: ", ")
                    let points = curve.at.indices.compactMap { i -> (x: Double, mean: Double, low: Double, high: Double)? in
                        guard let y = curve.values[i][c], y.mean.isFinite else { return nil }
                        let xv = x.column.map { curve.values[i][$0]?.mean ?? .nan } ?? curve.at[i]
                        guard xv.isFinite else { return nil }
                        let spread = y.std ?? 0
                        return (xv, y.mean, y.mean - spread, y.mean + spread)
                    }
                    return (label, points)
                }
                out += "<div class=\"chart\">" + SVGChart.bands(series, xLabel: x.label, yLabel: column) + "</div>\n"
            }
        }
        return out
    }
}

/// Page frame and building blocks shared by reports and comparisons.
public enum HTMLPage {
    static let style = """
        body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }
        table { border-collapse: collapse; margin: 8px 0 4px 0; font-size: 13px; }
        th, td { border: 1px solid #ccc; padding: 3px 8px; }
        th { background: #f0f0f0; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; }
        tr.baseline td { background: #fff5d6; }
        .grids { display: flex; flex-wrap: wrap; gap: 12px; }
        figure { margin: 0; text-align: center; font-size: 12px; }
        figure img { image-rendering: pixelated; width: 256px; height: auto; border: 1px solid #ccc; }
        .desc, .meta, .note, .shared, .tnote { font-size: 13px; }
        .note { color: #a33; }
        .wide { overflow-x: auto; }
        .chart { display: inline-block; margin: 4px 12px 4px 0; }
        """

    public static func page(title: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
        <head>
        <meta charset="utf-8" />
        <title>\(HTML.escape(title))</title>
        <style>
        \(style)
        </style>
        </head>
        <body>
        \(body)</body>
        </html>

        """
    }

    public static func table(header: [String], rows: [[String]], numericFrom: Int = Int.max, highlight: [Bool] = []) -> String {
        var out = "<div class=\"wide\"><table>\n<thead><tr>" + header.map { "<th>\(HTML.escape($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for (i, r) in rows.enumerated() {
            out += i < highlight.count && highlight[i] ? "<tr class=\"baseline\">" : "<tr>"
            out += r.enumerated().map { j, v in j >= numericFrom ? "<td class=\"num\">\(HTML.escape(v))</td>" : "<td>\(HTML.escape(v))</td>" }.joined()
            out += "</tr>\n"
        }
        return out + "</tbody>\n</table></div>\n"
    }

    /// A PNG inlined as a data URI.
    public static func figure(_ png: URL, caption: String) -> String {
        guard let data = try? Data(contentsOf: png) else { return "" }
        return "<figure><img src=\"data:image/png;base64,\(data.base64EncodedString())\" alt=\"\(HTML.escape(caption))\" /><figcaption>\(HTML.escape(caption))</figcaption></figure>\n"
    }
}
