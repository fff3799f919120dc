import Foundation
import GRDB

/// Store hygiene (issue 18, item 13): who owns a `running` run, marking runs whose process is gone
/// as `killed`, discarding a failed stage's scratch, and noticing that the database file was
/// deleted under a running process (SQLite keeps writing to the unlinked inode, so every commit
/// "succeeds" and is lost).
extension Store {
    static func registerHygieneMigrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("v3-run-owner") { db in
            // The process that runs it: pid plus its start time (clock ticks after boot) and the boot
            // id, so a recycled pid or a reboot is not taken for the same process.
            try db.execute(sql: """
                ALTER TABLE runs ADD COLUMN pid INTEGER;
                ALTER TABLE runs ADD COLUMN pid_start INTEGER;
                ALTER TABLE runs ADD COLUMN boot_id TEXT;
                """)
        }
    }

    /// Identity of a live process: its start time in clock ticks after boot (field 22 of
    /// /proc/PID/stat), nil when there is no such process.
    static func processStart(_ pid: Int32) -> Int64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may contain spaces or parentheses) start at field 3.
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? Int64(fields[19]) : nil
    }

    static var bootID: String {
        ((try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts a run owned by this process (`beginRun` plus the owner): the runner's call instead of
    /// `beginRun(command:)`, so `markDeadRunsKilled` can tell it from a run whose process is gone.
    public func beginOwnedRun(command: String, pid: Int32 = getpid()) throws -> String {
        let id = try beginRun(command: command)
        try db.write { db in
            try db.execute(sql: "UPDATE runs SET pid = ?, pid_start = ?, boot_id = ? WHERE id = ?",
                           arguments: [Int64(pid), Self.processStart(pid), Self.bootID, id])
        }
        return id
    }

    /// Marks `running` runs whose process is gone (SIGKILL, power cut) as `killed`, with the time it
    /// was noticed as their end; returns their ids. Runs without an owner (made before this was
    /// recorded) are left alone: nothing tells whether they still run.
    @discardableResult
    public func markDeadRunsKilled() throws -> [String] {
        let boot = Self.bootID
        let candidates = try db.read { db in
            try Row.fetchAll(db, sql: "SELECT id, pid, pid_start, boot_id FROM runs WHERE status = 'running' AND pid IS NOT NULL")
        }
        var dead: [String] = []
        for row in candidates {
            let pid: Int64 = row["pid"]
            let start: Int64? = row["pid_start"]
            let runBoot: String? = row["boot_id"]
            let alive = runBoot == boot && Self.processStart(Int32(truncatingIfNeeded: pid)).map { start == nil || $0 == start } == true
            if !alive { dead.append(row["id"]) }
        }
        if dead.isEmpty { return [] }
        try db.write { db in
            for id in dead {
                // Re-checked in the write: the run may have finished meanwhile.
                try db.execute(sql: "UPDATE runs SET status = 'killed', finished_at = ? WHERE id = ? AND status = 'running'",
                               arguments: [Date().timeIntervalSince1970, id])
            }
        }
        return dead
    }

    /// Removes a stage's scratch (`work/<key>/`) after it failed: a failed attempt's files are of no
    /// use to the next one (training resumes only from an interrupted attempt's checkpoints, so call
    /// this for failures, not for interruptions). Call with the stage lock held.
    public func discardWork(key: String) throws {
        let dir = work.appendingPathComponent(key)
        if FileManager.default.fileExists(atPath: dir.path) { try FileManager.default.removeItem(at: dir) }
    }

    /// The database file this store opened, as (device, inode).
    static func fileIdentity(_ path: String) -> [UInt64]? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return [UInt64(st.st_dev), UInt64(st.st_ino)]
    }

    /// Why the results of this process would be lost (nil when they are not): the database file was
    /// deleted or replaced since the store was opened. Check before reporting a run as successful.
    public func databaseProblem() -> String? {
        let path = root.appendingPathComponent("pdpipe.sqlite").path
        guard let now = Self.fileIdentity(path) else {
            return "the store's database `\(path)` was deleted during the run; nothing it recorded was kept"
        }
        if now != databaseIdentity {
            return "the store's database `\(path)` was replaced during the run; what it recorded went to the old file"
        }
        return nil
    }
}
