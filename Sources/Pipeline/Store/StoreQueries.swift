import Foundation
import GRDB

/// Read-only queries for `show`, `gc`, `cache du` and cost estimates (kept apart from the write path).
extension Store {
    /// When a key's result was recorded (nil when it is not stored).
    public func recordedAt(key: String) throws -> Date? {
        try db.read { db in
            try Double.fetchOne(db, sql: "SELECT created_at FROM results WHERE key = ?", arguments: [key])
        }.map(Date.init(timeIntervalSince1970:))
    }

    /// The run's start time, nil when unknown.
    public func runStarted(_ id: String) throws -> Date? {
        try db.read { db in
            try Double.fetchOne(db, sql: "SELECT started_at FROM runs WHERE id = ?", arguments: [id])
        }.map(Date.init(timeIntervalSince1970:))
    }

    /// Every recorded result (for retention and size accounting).
    public func allResults() throws -> [StoredResult] {
        try db.read { db in try Row.fetchAll(db, sql: "SELECT * FROM results").map(Self.decode) }
    }

    /// Results of one stage kind's stages, newest first; `stages` are the stage names of that kind.
    public func results(stages: [String], limit: Int = 200) throws -> [StoredResult] {
        guard !stages.isEmpty else { return [] }
        let marks = stages.map { _ in "?" }.joined(separator: ",")
        var arguments = StatementArguments(stages)
        arguments += [limit]
        return try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM results WHERE stage IN (\(marks)) ORDER BY created_at DESC LIMIT ?",
                             arguments: arguments).map(Self.decode)
        }
    }

    /// Keys referred to by the `keep` most recent runs (computed, restored or up to date in them).
    public func keysOfRecentRuns(_ keep: Int) throws -> (keys: Set<String>, runs: [String]) {
        try db.read { db in
            let ids = try String.fetchAll(db, sql: "SELECT id FROM runs ORDER BY started_at DESC LIMIT ?", arguments: [keep])
            var keys = Set<String>()
            for id in ids {
                keys.formUnion(try String.fetchAll(db, sql: "SELECT key FROM run_stages WHERE run_id = ? AND key IS NOT NULL", arguments: [id]))
            }
            return (keys, ids)
        }
    }

    /// Every (scope, cell id, key) the store points cells at.
    public func allCells() throws -> [(scope: String, cellID: String, key: String)] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT scope, cell_id, key FROM cells").map { ($0["scope"], $0["cell_id"], $0["key"]) }
        }
    }
}

extension Store {
    /// Forgets results (gc retention) in one transaction; cells pointing at them then show as never run.
    public func forgetResults(keys: [String]) throws {
        guard !keys.isEmpty else { return }
        try db.write { db in
            for k in keys { try db.execute(sql: "DELETE FROM results WHERE key = ?", arguments: [k]) }
        }
    }
}
