import Foundation
import Stages

/// A first report: one row per matrix cell, columns = swept params then `stage.metric` of the stages
/// whose current results carry metrics. Cells not computed yet show empty values.
public struct Report: Sendable {
    public var columns: [String]
    public var rows: [[String]]

    public init(runner: Runner) throws {
        let exp = runner.expansion
        let current = try runner.store.currentKeys(scope: runner.scope)
        let results = try runner.store.results(forKeys: Array(Set(current.values)))
        let axes = exp.spec.matrix.map(\.key).sorted()
        let names = Expansion.shortNames(axes)
        var metricColumns: [(stage: String, metric: String)] = []
        for st in Expansion.topologicalOrder(exp.spec.stages) {
            var metrics = Set<String>()
            for inst in exp.instances where inst.stage == st.name {
                if let key = current[inst.id], let r = results[key] { metrics.formUnion(r.metrics.keys) }
            }
            metricColumns += metrics.sorted().map { (st.name, $0) }
        }
        columns = axes.map { names[$0]! } + metricColumns.map { "\($0.stage).\($0.metric)" }
        rows = exp.cells.map { cell in
            cell.map { $0.value.shortDescription } + metricColumns.map { col in
                guard let inst = exp.instance(of: col.stage, in: cell), let key = current[inst.id],
                      let v = results[key]?.metrics[col.metric] else { return "" }
                return Report.format(v)
            }
        }
    }

    static func format(_ v: Double) -> String {
        v.rounded() == v && abs(v) < 1e12 ? String(Int(v)) : String(format: "%.6g", v)
    }

    public var markdown: String {
        var out = "| " + columns.joined(separator: " | ") + " |\n"
        out += "|" + columns.map { _ in "---" }.joined(separator: "|") + "|\n"
        for r in rows { out += "| " + r.joined(separator: " | ") + " |\n" }
        return out
    }

    public var csv: String {
        func field(_ s: String) -> String {
            s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        return ([columns] + rows).map { $0.map(field).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }

    public var json: String {
        let objects = rows.map { row in
            ParamValue.map(Dictionary(uniqueKeysWithValues: zip(columns, row).map { ($0, ParamValue.string($1)) }))
        }
        return Digest.canonicalJSON(.list(objects)) + "\n"
    }
}

/// The stage graph as text, Graphviz dot or Mermaid.
public enum DagRenderer {
    public static func text(_ exp: Expansion) -> String {
        Expansion.topologicalOrder(exp.spec.stages).map { st in
            let n = exp.instances.filter { $0.stage == st.name }.count
            let cells = n > 1 ? " (\(n) cells)" : ""
            let needs = st.needs.isEmpty ? "" : " <- " + st.needs.joined(separator: ", ")
            return "\(st.name) [\(st.kind.name)]\(cells)\(needs)"
        }.joined(separator: "\n") + "\n"
    }

    public static func dot(_ exp: Expansion) -> String {
        var out = "digraph pipeline {\n  rankdir=LR;\n"
        for st in exp.spec.stages { out += "  \"\(st.name)\" [label=\"\(st.name)\\n\(st.kind.name)\"];\n" }
        for st in exp.spec.stages { for n in st.needs { out += "  \"\(n)\" -> \"\(st.name)\";\n" } }
        return out + "}\n"
    }

    public static func mermaid(_ exp: Expansion) -> String {
        var out = "graph LR\n"
        for st in exp.spec.stages { out += "  \(st.name)[\"\(st.name) (\(st.kind.name))\"]\n" }
        for st in exp.spec.stages { for n in st.needs { out += "  \(n) --> \(st.name)\n" } }
        return out
    }
}
