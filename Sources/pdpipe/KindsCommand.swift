import ArgumentParser
import Foundation
import Stages

/// `pdpipe kinds [KIND]`: the stage kinds and their fields, generated from the typed configs, so
/// the listing cannot drift from what the spec loader accepts.
struct KindsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kinds", abstract: "List stage kinds, or one kind's fields with types, defaults and bounds.")

    @Argument(help: "A stage kind (e.g. train).")
    var kind: String?

    func run() throws {
        guard let name = kind else {
            for k in StageRegistry.kinds {
                print("\(k.name.padding(toLength: 11, withPad: " ", startingAt: 0)) \(k.fields.map(\.name).joined(separator: ", "))")
            }
            return
        }
        guard let k = StageRegistry.kind(named: name) else {
            printError("unknown stage kind `\(name)`; known kinds: \(StageRegistry.kinds.map(\.name).joined(separator: ", "))")
            throw Exit.badSpec
        }
        print(Self.describe(k))
    }

    static func describe(_ kind: any StageKind) -> String {
        var lines = ["kind \(kind.name) (version \(kind.version))\(kind.gathersCells ? ", gathers all matrix cells" : "")"]
        let rows = kind.fields.map { f -> [String] in
            var notes: [String] = []
            if let b = f.bounds { notes.append(b) }
            if f.isOperational { notes.append("operational: not in the stage key") }
            return [f.name, f.type.description, f.defaultValue.map { "default " + ($0 == .string("") ? "\"\"" : $0.shortDescription) } ?? "required",
                    notes.joined(separator: "; "), f.help]
        }
        let widths = (0..<4).map { i in rows.map { $0[i].count }.max() ?? 0 }
        for r in rows {
            let cells = (0..<4).map { r[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) } + [r[4]]
            lines.append("  " + cells.joined(separator: "  ").trimmingCharacters(in: .whitespaces))
        }
        return lines.joined(separator: "\n")
    }
}
