import Foundation
import Stages

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
