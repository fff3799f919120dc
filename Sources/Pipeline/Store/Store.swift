import Foundation
import GRDB

/// A recorded stage result: key -> artifact digest, with its content metrics, the measurements
/// of the computation that made it (not part of the artifact) and its key components.
public struct StoredResult: Sendable {
    public var key: String
    public var stage: String
    public var cellID: String
    public var artifact: String
    /// Content metrics (the artifact's `metrics.json`).
    public var metrics: [String: Double]
    /// Wall seconds, speeds...: how the computation went, kept beside the result.
    public var measurements: [String: Double] = [:]
    /// Host, threads, BLAS kernel of the computation.
    public var environment: [String: String] = [:]
    /// Key components (name -> canonical JSON), for `why`.
    public var components: [String: String]
    public var seconds: Double
    public var runID: String
    /// The key without its budget field, and the budget (see `StageKey.lineage`).
    public var lineage: String? = nil
    public var budget: Double? = nil

    /// Metrics and measurements under one namespace (`train.wall_seconds` in tables and reports).
    public var values: [String: Double] { metrics.merging(measurements) { content, _ in content } }
}

/// `.pdpipe/`: SQLite (WAL) for keys, runs and file digests; `objects/<digest>/` for artifacts;
/// `tmp/` for outputs being written; `work/<key>/` for checkpoints; `locks/`; `logs/<run>/`.
public final class Store: Sendable {
    public let root: URL
    private let pool: DatabasePool?
    /// SQLite. A store opened for a Slurm job (`database: false`) has none: jobs never touch it
    /// (the driver alone records), and a use by mistake stops the job instead of writing over NFS.
    var db: DatabasePool {
        guard let pool else { preconditionFailure("this store was opened without its database (a Slurm job)") }
        return pool
    }
    var hasDatabase: Bool { pool != nil }
    /// (device, inode) of the database file when opened: see `databaseProblem()`.
    let databaseIdentity: [UInt64]?

    public var objects: URL { root.appendingPathComponent("objects") }
    public var tmp: URL { root.appendingPathComponent("tmp") }
    public var work: URL { root.appendingPathComponent("work") }
    public var locks: URL { root.appendingPathComponent("locks") }
    public var logs: URL { root.appendingPathComponent("logs") }

    public init(root: URL, database: Bool = true) throws {
        self.root = root.standardizedFileURL
        for d in ["", "objects", "tmp", "work", "locks", "logs"] { try Self.makeDirectory(root.appendingPathComponent(d)) }
        guard database else { (pool, databaseIdentity) = (nil, nil); return }
        // Creating the database, switching it to WAL and migrating take SQLite's exclusive lock, and
        // SQLite reports "database is locked" at once (no busy wait) when several processes do it
        // together. Processes opening the store therefore take turns on a file lock for this step.
        let opening = lockedFile(root.appendingPathComponent("locks/open.lock").path)
        defer { if opening >= 0 { flock(opening, LOCK_UN); close(opening) } }
        var config = Configuration()
        config.busyMode = .timeout(30)
        // WAL + synchronous=NORMAL: a power cut may lose the last commits (stages show as missing and
        // rerun) but never leaves a half-written record; objects are fsynced before they are recorded.
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        let db = try DatabasePool(path: root.appendingPathComponent("pdpipe.sqlite").path, configuration: config)
        pool = db
        databaseIdentity = Self.fileIdentity(root.appendingPathComponent("pdpipe.sqlite").path)
        FaultPoint.hit("store-opened")
        // Read-only commands should not write: migrate only when something is missing.
        let migrator = Self.migrator
        if try !db.read({ try migrator.hasCompletedMigrations($0) }) { try migrator.migrate(db) }
    }

    /// Why a run could not write here (nil when it can): checked before a run starts, so a
    /// read-only store fails with its path instead of an SQLite error halfway.
    public func writeProblem() -> String? {
        let paths = [root, objects, tmp, work, locks, logs].map(\.path) + [root.appendingPathComponent("pdpipe.sqlite").path]
        for path in paths where access(path, W_OK) != 0 {
            return "`\(path)` is not writable (\(String(cString: strerror(errno))))"
        }
        return nil
    }

    /// `mkdir -p` with the system's reason on failure (read-only file system, permission denied...).
    static func makeDirectory(_ url: URL) throws {
        var path = ""
        for part in url.standardizedFileURL.path.split(separator: "/") {
            path += "/" + part
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
                if !isDir.boolValue { throw StoreError("`\(path)` is a file, not a directory") }
                continue
            }
            if mkdir(path, 0o755) != 0 && errno != EEXIST {
                throw StoreError("cannot create `\(path)`: \(String(cString: strerror(errno)))")
            }
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE results (key TEXT PRIMARY KEY, stage TEXT NOT NULL, cell_id TEXT NOT NULL,
                    artifact TEXT NOT NULL, metrics TEXT NOT NULL, components TEXT NOT NULL,
                    seconds REAL NOT NULL, run_id TEXT NOT NULL, created_at REAL NOT NULL);
                CREATE TABLE cells (scope TEXT NOT NULL, cell_id TEXT NOT NULL, key TEXT NOT NULL,
                    updated_at REAL NOT NULL, PRIMARY KEY (scope, cell_id));
                CREATE TABLE runs (id TEXT PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL,
                    command TEXT NOT NULL, status TEXT NOT NULL);
                CREATE TABLE run_stages (run_id TEXT NOT NULL, cell_id TEXT NOT NULL, key TEXT,
                    action TEXT NOT NULL, seconds REAL NOT NULL, message TEXT NOT NULL DEFAULT '',
                    PRIMARY KEY (run_id, cell_id));
                CREATE TABLE file_digests (path TEXT PRIMARY KEY, size INTEGER NOT NULL,
                    mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, digest TEXT NOT NULL);
                """)
        }
        // Measurements moved out of artifacts: they live beside the result. Lineage and budget
        // find the shorter run a longer one extends.
        m.registerMigration("v2-measurements-lineage") { db in
            try db.execute(sql: """
                ALTER TABLE results ADD COLUMN measurements TEXT NOT NULL DEFAULT '{}';
                ALTER TABLE results ADD COLUMN environment TEXT NOT NULL DEFAULT '{}';
                ALTER TABLE results ADD COLUMN lineage TEXT;
                ALTER TABLE results ADD COLUMN budget REAL;
                CREATE INDEX results_lineage ON results (lineage, budget);
                """)
        }
        registerHygieneMigrations(&m)
        registerLineageRepair(&m)
        return m
    }

    // MARK: results and cells

    public func result(forKey key: String) throws -> StoredResult? {
        try db.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM results WHERE key = ?", arguments: [key]).map(Self.decode)
        }
    }

    /// Results for many keys in one read (no-op status of a large pipeline).
    public func results(forKeys keys: [String]) throws -> [String: StoredResult] {
        try db.read { db in
            var out: [String: StoredResult] = [:]
            for chunk in stride(from: 0, to: keys.count, by: 500) {
                let part = Array(keys[chunk..<min(chunk + 500, keys.count)])
                let marks = part.map { _ in "?" }.joined(separator: ",")
                for row in try Row.fetchAll(db, sql: "SELECT * FROM results WHERE key IN (\(marks))", arguments: StatementArguments(part)) {
                    let r = Self.decode(row); out[r.key] = r
                }
            }
            return out
        }
    }

    static func decode(_ row: Row) -> StoredResult {
        func json<T: Decodable>(_ column: String, _ empty: T) -> T {
            let text: String = row[column] ?? "{}"
            return (try? JSONDecoder().decode(T.self, from: Data(text.utf8))) ?? empty
        }
        return StoredResult(
            key: row["key"], stage: row["stage"], cellID: row["cell_id"], artifact: row["artifact"],
            metrics: json("metrics", [:]), measurements: json("measurements", [:]), environment: json("environment", [:]),
            components: json("components", [:]), seconds: row["seconds"], runID: row["run_id"],
            lineage: row["lineage"], budget: row["budget"])
    }

    /// The recorded result of `lineage` with the largest budget below `budget` whose object is
    /// present: what a longer computation continues from.
    public func longestShorter(lineage: String, below budget: Double) throws -> StoredResult? {
        let rows = try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM results WHERE lineage = ? AND budget < ? ORDER BY budget DESC",
                             arguments: [lineage, budget]).map(Self.decode)
        }
        return rows.first { objectExists($0.artifact) }
    }

    /// The key most recently recorded for each cell of a scope (experiment file).
    public func currentKeys(scope: String) throws -> [String: String] {
        try db.read { db in
            var out: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT cell_id, key FROM cells WHERE scope = ?", arguments: [scope]) {
                out[row["cell_id"]] = row["key"]
            }
            return out
        }
    }

    /// Records a computed result and points the cell at it, in one transaction (the last step of `commit`).
    func record(_ r: StoredResult, scope: String) throws {
        func json<T: Encodable>(_ v: T) throws -> String { String(decoding: try JSONEncoder.sorted.encode(v), as: UTF8.self) }
        let now = Date().timeIntervalSince1970
        let (metrics, measurements, environment, components) = (try json(r.metrics), try json(r.measurements),
                                                                try json(r.environment), try json(r.components))
        try db.write { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO results (key, stage, cell_id, artifact, metrics, measurements, environment,
                    components, seconds, run_id, created_at, lineage, budget)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [r.key, r.stage, r.cellID, r.artifact, metrics, measurements, environment,
                                 components, r.seconds, r.runID, now, r.lineage, r.budget])
            try db.execute(sql: "INSERT OR REPLACE INTO cells (scope, cell_id, key, updated_at) VALUES (?, ?, ?, ?)",
                           arguments: [scope, r.cellID, r.key, now])
            try db.execute(sql: "INSERT OR REPLACE INTO run_stages (run_id, cell_id, key, action, seconds) VALUES (?, ?, ?, 'ran', ?)",
                           arguments: [r.runID, r.cellID, r.key, r.seconds])
        }
    }

    /// Points a cell at an already stored key (restore) and notes it in the run.
    public func markRestored(cellID: String, key: String, scope: String, runID: String) throws {
        let now = Date().timeIntervalSince1970
        try db.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO cells (scope, cell_id, key, updated_at) VALUES (?, ?, ?, ?)",
                           arguments: [scope, cellID, key, now])
            try db.execute(sql: "INSERT OR REPLACE INTO run_stages (run_id, cell_id, key, action, seconds) VALUES (?, ?, ?, 'restored', 0)",
                           arguments: [runID, cellID, key])
        }
    }

    public func noteStages(runID: String, _ notes: [(cellID: String, key: String?, action: String, message: String)]) throws {
        if notes.isEmpty { return }
        try db.write { db in
            for n in notes {
                try db.execute(sql: "INSERT OR REPLACE INTO run_stages (run_id, cell_id, key, action, seconds, message) VALUES (?, ?, ?, ?, 0, ?)",
                               arguments: [runID, n.cellID, n.key, n.action, n.message])
            }
        }
    }

    public func noteStage(runID: String, cellID: String, key: String?, action: String, message: String) throws {
        try db.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO run_stages (run_id, cell_id, key, action, seconds, message) VALUES (?, ?, ?, ?, 0, ?)",
                           arguments: [runID, cellID, key, action, message])
        }
    }

    // MARK: runs

    public func beginRun(command: String) throws -> String {
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
        let id = stamp + "-" + String(UUID().uuidString.prefix(6)).lowercased()
        try db.write { db in
            try db.execute(sql: "INSERT INTO runs (id, started_at, command, status) VALUES (?, ?, ?, 'running')",
                           arguments: [id, Date().timeIntervalSince1970, command])
        }
        return id
    }

    public func finishRun(_ id: String, status: String) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE runs SET finished_at = ?, status = ? WHERE id = ?",
                           arguments: [Date().timeIntervalSince1970, status, id])
        }
    }

    public struct RunInfo: Sendable {
        public var id: String, command: String, status: String, startedAt: Date, finishedAt: Date?
        public var counts: [String: Int]
    }

    public func runs(limit: Int = 20) throws -> [RunInfo] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", arguments: [limit]).map { row in
                let id: String = row["id"]
                var counts: [String: Int] = [:]
                for c in try Row.fetchAll(db, sql: "SELECT action, COUNT(*) AS n FROM run_stages WHERE run_id = ? GROUP BY action", arguments: [id]) {
                    counts[c["action"]] = c["n"]
                }
                let finished: Double? = row["finished_at"]
                return RunInfo(id: id, command: row["command"], status: row["status"],
                               startedAt: Date(timeIntervalSince1970: row["started_at"]),
                               finishedAt: finished.map(Date.init(timeIntervalSince1970:)), counts: counts)
            }
        }
    }

    public func runStages(_ runID: String) throws -> [(cellID: String, action: String, seconds: Double, message: String)] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM run_stages WHERE run_id = ? ORDER BY rowid", arguments: [runID]).map {
                ($0["cell_id"], $0["action"], $0["seconds"], $0["message"])
            }
        }
    }

    /// SQLite's own consistency check ("ok" when the database is sound).
    public func integrityCheck() throws -> String {
        try db.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ") }
    }

    /// Cell ids (of any scope) whose results point at each artifact, for naming bad objects.
    public func cellsByArtifact() throws -> [String: [String]] {
        try db.read { db in
            var out: [String: [String]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT DISTINCT artifact, cell_id FROM results ORDER BY cell_id") {
                out[row["artifact"], default: []].append(row["cell_id"])
            }
            return out
        }
    }

    public func allArtifacts() throws -> Set<String> {
        try db.read { db in Set(try String.fetchAll(db, sql: "SELECT DISTINCT artifact FROM results")) }
    }

    /// Drops the results whose object is gone or corrupt, so they are recomputed.
    public func forgetArtifact(_ digest: String) throws {
        try db.write { db in try db.execute(sql: "DELETE FROM results WHERE artifact = ?", arguments: [digest]) }
    }

    // MARK: external file digests, memoised by (path, size, mtime_ns, inode)

    public func fileDigest(_ url: URL) throws -> String {
        let path = url.standardizedFileURL.path
        guard hasDatabase else { return try Digest.file(url) }  // a job: no memo, hash it
        var st = stat()
        guard stat(path, &st) == 0 else { throw StoreError("cannot read `\(path)`: no such file or directory") }
        if st.st_mode & S_IFMT != S_IFREG { throw StoreError("`\(path)` is \(Digest.specialFileKind(st.st_mode) ?? "a directory"), not a regular file") }
        let size = Int64(st.st_size), inode = Int64(st.st_ino)
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        if let row = try db.read({ db in
            try Row.fetchOne(db, sql: "SELECT * FROM file_digests WHERE path = ?", arguments: [path])
        }), row["size"] as Int64 == size, row["mtime_ns"] as Int64 == mtime, row["inode"] as Int64 == inode {
            return row["digest"]
        }
        let digest = try Digest.file(url)
        try db.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO file_digests (path, size, mtime_ns, inode, digest) VALUES (?, ?, ?, ?, ?)",
                           arguments: [path, size, mtime, inode, digest])
        }
        return digest
    }

    /// Digest of a dependency: a file's content digest, or a directory's tree digest. Only regular
    /// files and directories: a FIFO or a device would block or never end. A directory that holds the
    /// store (`deps: [.]`) is hashed without it, or the stage's own run would change its key.
    public func dependencyDigest(_ url: URL) throws -> String {
        var st = stat()
        guard stat(url.path, &st) == 0 else { throw StoreError("dependency `\(url.path)` does not exist") }
        if st.st_mode & S_IFMT == S_IFDIR {
            return "tree:" + (try Digest.tree(url, excluding: [root.path], fileDigest: fileDigest))
        }
        if let what = Digest.specialFileKind(st.st_mode) {
            throw StoreError("dependency `\(url.path)` is \(what); deps must be regular files or directories")
        }
        return try fileDigest(url)
    }

    public func objectURL(_ digest: String) -> URL { objects.appendingPathComponent(digest) }
}

/// Opens (creating) a lock file and blocks until it is held exclusively; -1 if it cannot be opened.
private func lockedFile(_ path: String) -> Int32 {
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    if fd >= 0 { while flock(fd, LOCK_EX) != 0 && errno == EINTR {} }
    return fd
}

extension Store {
    /// A short human description of an error met while opening or writing the store.
    public static func describe(_ error: Error) -> String {
        if let e = error as? StoreError { return e.description }
        if let e = error as? DatabaseError { return e.message ?? "\(e)" }
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }
}

public struct StoreError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}
