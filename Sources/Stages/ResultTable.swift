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

    public init(name: String, title: String, rowKeys: [String], rowHeaders: [String], aggregateOver: [String],
                baseline: [String], columns: [String], formulas: [String], precision: Int, rows: [Row]) {
        self.name = name; self.title = title; self.rowKeys = rowKeys; self.rowHeaders = rowHeaders
        self.aggregateOver = aggregateOver; self.baseline = baseline; self.columns = columns
        self.formulas = formulas; self.precision = precision; self.rows = rows
    }

    public static func format(_ v: Double, precision: Int) -> String {
        if !v.isFinite { return v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf") }
        if v == v.rounded() && abs(v) < 1e9 { return String(Int(v)) }
        return String(format: "%.\(max(1, precision))g", v)
    }

    /// `mean ± std` (or the value of a single cell).
    public func cellText(_ s: Stat?) -> String {
        guard let s else { return "" }
        let m = Self.format(s.mean, precision: precision)
        guard let std = s.std else { return m }
        return m + " ± " + Self.format(std, precision: max(1, precision - 1))
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
            let n = rows.map(\.cells.count).max() ?? 0
            notes.append("mean ± std (n - 1) over \(aggregateOver.joined(separator: ", ")) (\(n) cells per row)")
        }
        if !baseline.isEmpty { notes.append("baseline: " + baseline.joined(separator: ", ")) }
        if !notes.isEmpty { out += "\n" + notes.joined(separator: "; ") + "\n" }
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
