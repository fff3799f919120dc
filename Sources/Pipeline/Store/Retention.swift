import Foundation
import GRDB

/// What `pdpipe gc` keeps: every result the project's experiments and pipelines need as they are now
/// (all matrix cells, default params), every result the last N runs touched, and everything of a
/// run still going; the other results are forgotten and their objects removed.
public struct RetentionPlan: Sendable {
    public struct Item: Sendable {
        public var digest: String
        public var bytes: Int64
        /// Cell ids of the results that pointed at it.
        public var cells: [String]
        public var kind: String
    }
    /// Keys of results kept.
    public var kept: Set<String>
    /// Keys of results to forget.
    public var forgotten: [String]
    /// Objects no kept result refers to.
    public var objects: [Item]
    public var files: [URL]
    public var keepRuns: Int
    public var bytes: Int64 { objects.reduce(0) { $0 + $1.bytes } }
}

public enum Retention {
    /// `experiments/*.yaml` and `pipelines/*.yaml` of the project, sorted.
    public static func specFiles(projectDirectory: URL) -> [URL] {
        ["experiments", "pipelines"].flatMap { sub -> [URL] in
            let dir = projectDirectory.appendingPathComponent(sub)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { dir.appendingPathComponent($0) }
        }
    }

    /// Keys of stored results that the specs need now: every instance whose key can be computed
    /// (its upstream is stored) and is stored. A spec error is thrown (gc must not guess).
    public static func neededKeys(store: Store, files: [URL]) throws -> Set<String> {
        var keys = Set<String>()
        for file in files {
            let expansion = try SpecLoader.expansion(file)
            let lines = try Runner(expansion: expansion, store: store).plan(RunOptions())
            for l in lines where l.action != .run { if let k = l.key { keys.insert(k) } }
        }
        return keys
    }

    public static func plan(store: Store, needed: Set<String>, keepRuns: Int, files: [URL]) throws -> RetentionPlan {
        let recent = try store.keysOfRecentRuns(keepRuns)
        let keep = needed.union(recent.keys)
        let results = try store.allResults()
        let forgotten = results.filter { !keep.contains($0.key) }
        let keptArtifacts = Set(results.filter { keep.contains($0.key) }.map(\.artifact))
        var byArtifact: [String: [StoredResult]] = [:]
        for r in forgotten where !keptArtifacts.contains(r.artifact) { byArtifact[r.artifact, default: []].append(r) }
        let objects = byArtifact.keys.sorted().map { digest -> RetentionPlan.Item in
            let rs = byArtifact[digest]!
            return RetentionPlan.Item(digest: digest, bytes: objectBytes(store.objectURL(digest)),
                                      cells: Array(Set(rs.map(\.cellID))).sorted(), kind: kind(rs[0]))
        }
        return RetentionPlan(kept: keep, forgotten: forgotten.map(\.key), objects: objects, files: files, keepRuns: keepRuns)
    }

    /// Forgets the results first (one transaction), then removes the objects: a crash in between
    /// leaves unreferenced objects, never a result without its object.
    public static func apply(_ plan: RetentionPlan, store: Store) throws {
        try store.forgetResults(keys: plan.forgotten)
        for o in plan.objects {
            let url = store.objectURL(o.digest)
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            try FileManager.default.removeItem(at: url)
        }
    }

    /// The stage kind recorded in a result's key components.
    public static func kind(_ r: StoredResult) -> String {
        let raw = r.components["kind"] ?? "\"?\""
        return raw.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }

    /// Bytes of the files under an object directory (apparent sizes).
    public static func objectBytes(_ url: URL) -> Int64 {
        guard let files = try? Digest.files(under: url) else { return 0 }
        return files.reduce(Int64(0)) { total, rel in
            var st = stat()
            return total + (stat(url.path + "/" + rel, &st) == 0 ? Int64(st.st_size) : 0)
        }
    }

    /// `cache du`: bytes by stage kind and by experiment (scope). An object several scopes use is
    /// counted in each of them, once in the total.
    public static func usage(store: Store) throws -> (byKind: [(String, Int64, Int)], byScope: [(String, Int64, Int)], total: Int64, objects: Int) {
        let results = try store.allResults()
        var sizes: [String: Int64] = [:]
        for r in results where sizes[r.artifact] == nil { sizes[r.artifact] = objectBytes(store.objectURL(r.artifact)) }
        func tally(_ pairs: [(String, String)]) -> [(String, Int64, Int)] {
            var sets: [String: Set<String>] = [:]
            for (group, digest) in pairs { sets[group, default: []].insert(digest) }
            return sets.map { ($0.key, $0.value.reduce(Int64(0)) { $0 + (sizes[$1] ?? 0) }, $0.value.count) }
                .sorted { $0.1 > $1.1 }
        }
        let byKind = tally(results.map { (kind($0), $0.artifact) })
        let artifactOfKey = Dictionary(results.map { ($0.key, $0.artifact) }, uniquingKeysWith: { a, _ in a })
        var scoped: [(String, String)] = []
        var inScope = Set<String>()
        for c in try store.allCells() {
            guard let a = artifactOfKey[c.key] else { continue }
            scoped.append((c.scope, a)); inScope.insert(a)
        }
        for a in sizes.keys where !inScope.contains(a) { scoped.append(("(no current cell)", a)) }
        return (byKind, tally(scoped), sizes.values.reduce(0, +), sizes.count)
    }
}

/// Runs hold this lock shared for their whole duration; `gc` takes it exclusively, so it never
/// removes an object while a run may read or be about to record it. A killed run's hold ends with it.
public final class StoreUseLock: @unchecked Sendable {
    private let fd: Int32

    /// Shared (a run) or exclusive (gc). Blocks; calls `onWait` once if it has to wait.
    public init(store: Store, exclusive: Bool, onWait: () -> Void = {}) throws {
        let path = store.locks.appendingPathComponent("store-use.lock").path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError("cannot open lock file \(path): \(String(cString: strerror(errno)))") }
        let mode = exclusive ? LOCK_EX : LOCK_SH
        if flock(fd, mode | LOCK_NB) != 0 {
            onWait()
            while flock(fd, mode) != 0 && errno == EINTR {}
        }
    }

    /// Held until released or the process exits (not on deinit: a CLI that exits through `exit()`
    /// keeps it to the end without extending the object's lifetime by hand).
    public func release() { flock(fd, LOCK_UN); close(fd) }
}
