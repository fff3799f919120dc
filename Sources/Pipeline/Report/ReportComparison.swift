import Foundation
import Stages

/// Two reports side by side: two experiments (`--compare B.yaml`) or two runs of one experiment
/// (`--run A --compare-run B`). Cells and table rows are matched by their labels (`real_p=0.5`);
/// every value appears as A, B and Δ = B - A.
public struct ReportComparison: Sendable {
    public var a: ExperimentReport
    public var b: ExperimentReport
    public var nameA: String
    public var nameB: String

    public init(_ a: ExperimentReport, _ b: ExperimentReport, nameA: String, nameB: String) {
        self.a = a; self.b = b; self.nameA = nameA; self.nameB = nameB
    }

    /// Cell labels of A, then those only in B.
    public var labels: [String] {
        var out = a.cells.map(\.label)
        for c in b.cells where !out.contains(c.label) { out.append(c.label) }
        return out
    }

    /// Metric columns whose value differs between A and B in at least one cell (a cell missing
    /// from one side counts as different).
    public var columns: [String] {
        let cellsA = Dictionary(uniqueKeysWithValues: a.cells.map { ($0.label, $0) })
        let cellsB = Dictionary(uniqueKeysWithValues: b.cells.map { ($0.label, $0) })
        var all: [String] = []
        for c in a.metricColumns + a.shared.map(\.column) + b.metricColumns + b.shared.map(\.column) where !all.contains(c) { all.append(c) }
        return all.filter { col in labels.contains { cellsA[$0]?.metrics[col] != cellsB[$0]?.metrics[col] } }
    }

    public var cellHeader: [String] { ["cell"] + columns.flatMap { ["\($0) (A)", "\($0) (B)", "Δ \($0)"] } }

    public var cellRows: [[String]] {
        let cellsA = Dictionary(uniqueKeysWithValues: a.cells.map { ($0.label, $0) })
        let cellsB = Dictionary(uniqueKeysWithValues: b.cells.map { ($0.label, $0) })
        return labels.map { label in
            [label] + columns.flatMap { col -> [String] in
                let x = cellsA[label]?.metrics[col], y = cellsB[label]?.metrics[col]
                let d = x.flatMap { x in y.map { $0 - x } }
                return [x.map(ExperimentReport.format) ?? "", y.map(ExperimentReport.format) ?? "", d.map(ExperimentReport.signed) ?? ""]
            }
        }
    }

    /// (cell, param, A value, B value) for params that differ between matched cells.
    public var paramDifferences: [[String]] {
        let cellsB = Dictionary(uniqueKeysWithValues: b.cells.map { ($0.label, $0) })
        var rows: [[String]] = []
        for ca in a.cells {
            guard let cb = cellsB[ca.label] else { continue }
            for k in Set(ca.params.keys).union(cb.params.keys).sorted() where ca.params[k] != cb.params[k] {
                rows.append([ca.label, k, ca.params[k]?.shortDescription ?? "", cb.params[k]?.shortDescription ?? ""])
            }
        }
        return rows
    }

    /// Tables with the same name in both reports, row by row (rows matched by their labels).
    public var tables: [(title: String, header: [String], rows: [[String]], numericFrom: Int)] {
        var out: [(title: String, header: [String], rows: [[String]], numericFrom: Int)] = []
        for ta in a.tables {
            guard let tb = b.tables.first(where: { $0.name == ta.name }) else { continue }
            var columns = ta.columns
            for c in tb.columns where !columns.contains(c) { columns.append(c) }
            var keys = ta.rows.map(\.labels)
            for r in tb.rows where !keys.contains(r.labels) { keys.append(r.labels) }
            let header = ta.rowHeaders + columns.flatMap { ["\($0) (A)", "\($0) (B)", "Δ \($0)"] }
            let rows = keys.map { key -> [String] in
                let ra = ta.rows.first { $0.labels == key }, rb = tb.rows.first { $0.labels == key }
                return key + columns.flatMap { col -> [String] in
                    let sa = ta.columns.firstIndex(of: col).flatMap { i in ra?.values[i] }
                    let sb = tb.columns.firstIndex(of: col).flatMap { i in rb?.values[i] }
                    let d = sa.flatMap { x in sb.map { $0.mean - x.mean } }
                    return [ta.cellText(sa), tb.cellText(sb), d.map(ExperimentReport.signed) ?? ""]
                }
            }
            out.append((ta.title.isEmpty ? ta.name : ta.title, header, rows, ta.rowHeaders.count))
        }
        return out
    }

    var intro: String { "A = \(nameA), B = \(nameB); Δ = B - A." }

    public var markdown: String {
        var out = "# Comparison: \(nameA) vs \(nameB)\n\n\(intro)\n"
        for t in tables { out += "\n### \(t.title)\n\n" + MarkdownTable.render(header: t.header, rows: t.rows, numericFrom: t.numericFrom) }
        out += "\n## Cells\n\n" + (columns.isEmpty ? "No metric differs between A and B.\n"
            : MarkdownTable.render(header: cellHeader, rows: cellRows, numericFrom: 1))
        let params = paramDifferences
        if !params.isEmpty {
            out += "\n## Params that differ between A and B\n\n" + MarkdownTable.render(header: ["cell", "param", "A", "B"], rows: params)
        }
        return out
    }

    public var csv: String { CSV.render([cellHeader] + cellRows) }

    public var json: String {
        "{\"a\":" + a.json.trimmingCharacters(in: .whitespacesAndNewlines) + ",\"b\":" + b.json.trimmingCharacters(in: .whitespacesAndNewlines)
            + ",\"name_a\":" + Digest.jsonString(nameA) + ",\"name_b\":" + Digest.jsonString(nameB) + "}\n"
    }

    public var html: String {
        var body = "<h1>Comparison: \(HTML.escape(nameA)) vs \(HTML.escape(nameB))</h1>\n<p class=\"meta\">\(HTML.escape(intro))</p>\n"
        for t in tables { body += "<h3>\(HTML.escape(t.title))</h3>\n" + HTMLPage.table(header: t.header, rows: t.rows, numericFrom: t.numericFrom) }
        body += "<h2>Cells</h2>\n" + (columns.isEmpty ? "<p class=\"meta\">No metric differs between A and B.</p>\n"
            : HTMLPage.table(header: cellHeader, rows: cellRows, numericFrom: 1))
        let params = paramDifferences
        if !params.isEmpty {
            body += "<h2>Params that differ between A and B</h2>\n" + HTMLPage.table(header: ["cell", "param", "A", "B"], rows: params)
        }
        let series = a.cells.filter { !$0.lossCurve.isEmpty }.map { ("A " + $0.label, $0.lossCurve, false) }
            + b.cells.filter { !$0.lossCurve.isEmpty }.map { ("B " + $0.label, $0.lossCurve, true) }
        if !series.isEmpty {
            body += "<h2>Training loss (A solid, B dashed)</h2>\n<div class=\"chart\">"
                + SVGChart.lines(series, xLabel: "counted kimg", yLabel: "loss") + "</div>\n"
        }
        let cellsA = Dictionary(uniqueKeysWithValues: a.cells.map { ($0.label, $0) })
        let cellsB = Dictionary(uniqueKeysWithValues: b.cells.map { ($0.label, $0) })
        let withGrids = labels.filter { cellsA[$0]?.grid != nil || cellsB[$0]?.grid != nil }
        if !withGrids.isEmpty {
            body += "<h2>Samples (A | B)</h2>\n"
            for label in withGrids {
                body += "<div class=\"grids\">"
                for (side, cell) in [("A", cellsA[label]), ("B", cellsB[label])] {
                    if let g = cell?.grid { body += HTMLPage.figure(g, caption: "\(side) \(label)") }
                }
                body += "</div>\n"
            }
        }
        return HTMLPage.page(title: "Comparison: \(nameA) vs \(nameB)", body: body)
    }
}
