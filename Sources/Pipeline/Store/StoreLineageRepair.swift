import Foundation
import GRDB
import Stages

extension Store {
    /// Recomputes the recorded lineages with the current rule (`StageKey.lineage(of:budgetField:)`).
    ///
    /// Lineages recorded before v4 compared a budget param's text with the field's (`80` against
    /// `80.0`), so a run whose budget was a whole number in YAML kept its budget param in the
    /// lineage and no longer run could extend it. Keys are unchanged: only the column that finds the
    /// shorter run is rewritten, from the components stored beside each result.
    static func registerLineageRepair(_ m: inout DatabaseMigrator) {
        m.registerMigration("v4-numeric-lineage") { db in
            for row in try Row.fetchAll(db, sql: "SELECT key, components FROM results WHERE lineage IS NOT NULL") {
                let text: String = row["components"]
                guard let components = try? JSONDecoder().decode([String: String].self, from: Data(text.utf8)),
                      let kindName = components["kind"].flatMap({ try? JSONDecoder().decode(String.self, from: Data($0.utf8)) }),
                      let field = StageRegistry.kind(named: kindName)?.budgetField,
                      let repaired = StageKey.lineage(of: components, budgetField: field) else { continue }
                try db.execute(sql: "UPDATE results SET lineage = ?, budget = ? WHERE key = ?",
                               arguments: [repaired.lineage, repaired.budget, row["key"] as String])
            }
        }
    }
}
