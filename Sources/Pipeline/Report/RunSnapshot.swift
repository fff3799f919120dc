import Foundation
import GRDB

/// Which key each cell of an experiment had, read from the store only: the current keys, or
/// the keys a given run settled (ran, restored or found up to date).
public struct RunSnapshot: Sendable {
    /// Cell id -> stage key.
    public var keys: [String: String]
    /// The run these keys come from (nil: current keys, no run touched the experiment).
    public var runID: String?
    /// Cell ids the run computed or restored (the rest were up to date or not part of it).
    public var changed: Set<String>

    /// The current keys of `scope`; `runID` (or a unique prefix of one) picks that run's keys instead.
    public static func read(store: Store, scope: String, instanceIDs: [String], runID: String?) throws -> RunSnapshot {
        let ids = Set(instanceIDs)
        if let runID {
            let run = try store.resolveRun(runID)
            let stages = try store.runStageKeys(run).filter { ids.contains($0.cellID) }
            guard !stages.isEmpty else { throw StoreError("run \(run) did not touch this experiment") }
            return RunSnapshot(keys: Dictionary(stages.compactMap { s in s.key.map { (s.cellID, $0) } }) { a, _ in a },
                               runID: run, changed: Set(stages.filter { ["ran", "restored"].contains($0.action) }.map(\.cellID)))
        }
        let current = try store.currentKeys(scope: scope).filter { ids.contains($0.key) }
        // The latest run that touched any of these cells marks what changed.
        for run in try store.runs(limit: 1000) {
            let stages = try store.runStageKeys(run.id).filter { ids.contains($0.cellID) }
            if stages.isEmpty { continue }
            let changed = stages.filter { s in ["ran", "restored"].contains(s.action) && current[s.cellID] == s.key }.map(\.cellID)
            return RunSnapshot(keys: current, runID: run.id, changed: Set(changed))
        }
        return RunSnapshot(keys: current, runID: nil, changed: [])
    }
}

extension Store {
    /// The stages a run settled, with their keys (nil for failures before a key existed).
    func runStageKeys(_ runID: String) throws -> [(cellID: String, key: String?, action: String)] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT cell_id, key, action FROM run_stages WHERE run_id = ? ORDER BY rowid", arguments: [runID]).map {
                ($0["cell_id"], $0["key"], $0["action"])
            }
        }
    }

    /// A run id from an exact id or a unique prefix.
    func resolveRun(_ prefix: String) throws -> String {
        let ids = try db.read { db in
            try String.fetchAll(db, sql: "SELECT id FROM runs WHERE id = ? OR id LIKE ? ORDER BY started_at DESC",
                                arguments: [prefix, prefix.replacingOccurrences(of: "%", with: "") + "%"])
        }
        if ids.contains(prefix) { return prefix }
        guard let first = ids.first else { throw StoreError("no run `\(prefix)` in the store") }
        guard ids.count == 1 else { throw StoreError("run prefix `\(prefix)` is ambiguous: \(ids.prefix(5).joined(separator: ", "))") }
        return first
    }
}
