import Foundation

/// A computed table: what a `table` stage writes as `table.json` (and renders as `table.md`,
/// `table.csv`), and what `pdpipe report` shows.
public struct ResultTable: Codable, Sendable, Equatable {
    /// One aggregated value: mean over the row's cells, sample standard deviation (n - 1) when n > 1.
    public struct Stat: Codable, Sendable, Equatable {
        public var mean: Double
        public var std: Double?
        /// The per-cell values, in the row's cell order.
        public var values: [Double]
        /// Curves that never reached a `reach(...)` target (left out of mean and std); nil: none.
        public var unreached: Int?
        /// `values` may hold NaN for a curve that never reached its target: the statistics are
        /// over the others, and nil when none reached it.
        public init?(reaching values: [Double]) {
            guard !values.isEmpty else { return nil }
            let reached = values.filter { !$0.isNaN }
            guard !reached.isEmpty else {
                self.init(values)  // all NaN: a NaN mean, no spread
                (std, unreached) = (nil, values.count)
                return
            }
            self.init(reached)
            self.values = values
            if reached.count < values.count { unreached = values.count - reached.count }
        }
        public init(_ values: [Double]) {
            self.values = values
            mean = values.reduce(0, +) / Double(values.count)
            if values.count > 1 {
                let m = mean
                // Identical values have no spread (the mean's rounding would otherwise show ~1e-17).
                if values.allSatisfy({ $0 == values[0] }) { std = 0; return }
                std = (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
            }
        }
    }

    public struct Row: Codable, Sendable, Equatable {
        /// Values of the row axes (display form), in `rowKeys` order.
        public var labels: [String]
        /// Cell labels (`real_p=0.5,seed=0`) of the cells aggregated into this row.
        public var cells: [String]
        /// One entry per column (nil: not computable, e.g. a division by zero gave no finite value).
        public var values: [Stat?]
        public var isBaseline: Bool
    }

    public var name: String
    public var title: String
    /// Row axes (dotted matrix keys) and their header names.
    public var rowKeys: [String]
    public var rowHeaders: [String]
    public var aggregateOver: [String]
    /// Baseline cell as `key=value` strings (empty: none).
    public var baseline: [String]
    public var columns: [String]
    public var formulas: [String]
    /// Significant digits in md/csv.
    public var precision: Int
    public var rows: [Row]
    /// With `along`: the matrix axis the curves run along, the columns the report also plots
    /// curves against (`versus`), and per row and column the value at every point of the curve.
    public var along: String?
    public var versus: [String]?
    public var curves: [Curve]?

    /// One row's curve: at each value of the `along` axis, each column's mean ± std over the
    /// row's curves (the aggregated cells) that have that point; `reach` columns are absent (nil).
    public struct Curve: Codable, Sendable, Equatable {
        public var labels: [String]
        public var at: [Double]
        public var values: [[Stat?]]
    }

    public init(name: String, title: String, rowKeys: [String], rowHeaders: [String], aggregateOver: [String],
                baseline: [String], columns: [String], formulas: [String], precision: Int, rows: [Row],
                along: String? = nil, versus: [String]? = nil, curves: [Curve]? = nil) {
        self.name = name; self.title = title; self.rowKeys = rowKeys; self.rowHeaders = rowHeaders
        self.aggregateOver = aggregateOver; self.baseline = baseline; self.columns = columns
        self.formulas = formulas; self.precision = precision; self.rows = rows
        self.along = along; self.versus = versus; self.curves = curves
    }

    public static func format(_ v: Double, precision: Int) -> String {
        if !v.isFinite { return v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf") }
        if v == v.rounded() && abs(v) < 1e9 { return String(Int(v)) }
        return String(format: "%.\(max(1, precision))g", v)
    }

    /// `mean ± std` (or the value of a single cell).
    public func cellText(_ s: Stat?) -> String {
        guard let s else { return "" }
        if let u = s.unreached, u == s.values.count { return "not reached" + (u > 1 ? " (0 of \(u))" : "") }
        let m = Self.format(s.mean, precision: precision)
        let reached = s.unreached.map { " (\(s.values.count - $0) of \(s.values.count) reached)" } ?? ""
        guard let std = s.std else { return m + reached }
        return m + " ± " + Self.format(std, precision: max(1, precision - 1)) + reached
    }

    public var header: [String] { rowHeaders + columns }

    /// Display rows (row labels, then formatted values).
    public var textRows: [[String]] { rows.map { $0.labels + $0.values.map(cellText) } }

    public var markdown: String {
        var out = ""
        if !title.isEmpty { out += "### \(title)\n\n" }
        out += MarkdownTable.render(header: header, rows: textRows, numericFrom: rowHeaders.count)
        var notes: [String] = []
        if !aggregateOver.isEmpty {
            // With `along`, a row's cells are points of its curves: count the curves.
            let n = along == nil ? rows.map(\.cells.count).max() ?? 0
                : rows.flatMap { $0.values.compactMap { $0?.values.count } }.max() ?? 0
            notes.append("mean ± std (n - 1) over \(aggregateOver.joined(separator: ", ")) (\(n) \(along == nil ? "cells" : "curves") per row)")
        }
        if !baseline.isEmpty { notes.append("baseline: " + baseline.joined(separator: ", ")) }
        if let along { notes.append("values at the last point along \(along); reach(...): interpolated where each curve first reaches the target") }
        if !notes.isEmpty { out += "\n" + notes.joined(separator: "; ") + "\n" }
        if let along, let curves, !curves.isEmpty {
            let alongName = along.split(separator: ".").last.map(String.init) ?? along
            for (c, column) in columns.enumerated() where curves.contains(where: { $0.values.contains { $0[c] != nil } }) {
                out += "\n\(column) along \(alongName):\n\n"
                let points = Set(curves.flatMap(\.at)).sorted()
                let header = [alongName] + curves.map { zip(rowHeaders, $0.labels).map { "\($0)=\($1)" }.joined(separator: ", ") }
                let lines = points.map { x in
                    [Self.format(x, precision: 10)] + curves.map { curve in
                        curve.at.firstIndex(of: x).map { cellText(curve.values[$0][c]) } ?? ""
                    }
                }
                out += MarkdownTable.render(header: header, rows: lines, numericFrom: 0)
            }
        }
        return out
    }

    /// One column per value, plus `<column>_std` when any row aggregates several cells.
    public var csv: String {
        let aggregated = rows.contains { $0.cells.count > 1 }
        var head = rowHeaders
        for c in columns { head.append(c); if aggregated { head.append(c + "_std") } }
        var lines = [head]
        for r in rows {
            var line = r.labels
            for s in r.values {
                line.append(s.map { Self.format($0.mean, precision: 10) } ?? "")
                if aggregated { line.append(s?.std.map { Self.format($0, precision: 10) } ?? "") }
            }
            lines.append(line)
        }
        return CSV.render(lines)
    }

    public var json: Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return (try? e.encode(self)) ?? Data()
    }

    public static func decode(_ data: Data) throws -> ResultTable {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try d.decode(ResultTable.self, from: data)
    }
}

/// GitHub-flavoured markdown tables (numeric columns right-aligned).
public enum MarkdownTable {
    public static func render(header: [String], rows: [[String]], numericFrom: Int = Int.max) -> String {
        func esc(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }
        var out = "| " + header.map(esc).joined(separator: " | ") + " |\n"
        out += "|" + header.indices.map { $0 >= numericFrom ? "---:" : "---" }.joined(separator: "|") + "|\n"
        for r in rows { out += "| " + r.map(esc).joined(separator: " | ") + " |\n" }
        return out
    }
}

/// RFC 4180 CSV.
public enum CSV {
    public static func field(_ s: String) -> String {
        s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
    public static func render(_ lines: [[String]]) -> String {
        lines.map { $0.map(field).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }
}
