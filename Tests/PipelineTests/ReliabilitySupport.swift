import Engine
import Foundation
import GRDB
@testable import Pipeline

/// Helpers of the reliability tests (fault injection, concurrency, bad inputs): a seeded generator,
/// tiny PNG data sets, independent SQL checks and digests of stored results that ignore timings.
enum Reliability {
    /// SplitMix64: a few lines, seeded, independent of the engine's generator.
    struct Random {
        var state: UInt64
        init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
        mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    }

    /// `count` RGB PNGs of `size`x`size` stripes under `dir` (a `png-folder` data set).
    static func writePNGFolder(_ dir: URL, count: Int = 6, size: Int = 8) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for k in 0..<count {
            var pixels = [UInt8](repeating: 0, count: size * size * 3)
            for y in 0..<size { for x in 0..<size { for c in 0..<3 {
                pixels[(y * size + x) * 3 + c] = UInt8(((x + k) % 4 == 0 ? 200 : 30) + c * 10 + y)
            } } }
            try writePNG(ByteImage(width: size, height: size, channels: 3, pixels: pixels),
                         to: dir.appendingPathComponent("img\(k).png"))
        }
    }

    struct Row: Equatable { var key: String; var stage: String; var cellID: String; var artifact: String }

    /// Opens the store's database with GRDB directly (not through `Store`), as an independent check.
    static func database(_ store: URL) throws -> DatabaseQueue {
        var config = Configuration()
        config.busyMode = .timeout(10)
        return try DatabaseQueue(path: store.appendingPathComponent("pdpipe.sqlite").path, configuration: config)
    }

    static func integrityCheck(_ store: URL) throws -> String {
        guard FileManager.default.fileExists(atPath: store.appendingPathComponent("pdpipe.sqlite").path) else { return "ok" }
        return try database(store).read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ") }
    }

    /// Recorded results. A run killed while creating the store may leave no database or one
    /// without tables yet (the next run migrates it): that is a store with no results.
    static func results(_ store: URL) throws -> [Row] {
        guard FileManager.default.fileExists(atPath: store.appendingPathComponent("pdpipe.sqlite").path) else { return [] }
        return try database(store).read { db in
            guard try db.tableExists("results") else { return [] }
            return try GRDB.Row.fetchAll(db, sql: "SELECT key, stage, cell_id, artifact FROM results ORDER BY key").map {
                Row(key: $0["key"], stage: $0["stage"], cellID: $0["cell_id"], artifact: $0["artifact"])
            }
        }
    }

    /// Cell id -> the key it points at (all scopes).
    static func cells(_ store: URL) throws -> [String: String] {
        guard FileManager.default.fileExists(atPath: store.appendingPathComponent("pdpipe.sqlite").path) else { return [:] }
        return try database(store).read { db in
            guard try db.tableExists("cells") else { return [:] }
            var out: [String: String] = [:]
            for row in try GRDB.Row.fetchAll(db, sql: "SELECT cell_id, key FROM cells") { out[row["cell_id"]] = row["key"] }
            return out
        }
    }

    /// `results` and `cells` as text: what a run has recorded as complete.
    static func recordedState(_ store: URL) throws -> String {
        try database(store).read { db in
            let r = try GRDB.Row.fetchAll(db, sql: "SELECT key, stage, cell_id, artifact, metrics FROM results ORDER BY key")
            let c = try GRDB.Row.fetchAll(db, sql: "SELECT scope, cell_id, key FROM cells ORDER BY scope, cell_id")
            return (r + c).map { $0.description }.joined(separator: "\n")
        }
    }

    /// SHA-256 of a file, computed here with Engine-free Foundation + the store's hex helper.
    static func fileDigest(_ url: URL) throws -> String { Digest.hex(try Data(contentsOf: url)) }

    /// Hash of every file (path, size, bytes) and directory under `dir`: "byte-for-byte unchanged".
    static func treeHash(_ dir: URL) -> String {
        let base = dir.standardizedFileURL.path
        var listing = ""
        for rel in (FileManager.default.enumerator(atPath: base)?.allObjects as? [String] ?? []).sorted() {
            let path = base + "/" + rel
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
            if isDir.boolValue { listing += "d " + rel + "\n"; continue }
            let data = FileManager.default.contents(atPath: path) ?? Data()
            listing += "f " + rel + " " + Digest.hex(data) + "\n"
        }
        return Digest.hex(listing)
    }

    /// The `step` recorded in a training checkpoint's metadata.
    static func checkpointStep(_ url: URL) throws -> Int? {
        let archive = try TensorArchive.read(url)
        let meta = try JSONSerialization.jsonObject(with: archive.metadata) as? [String: Any]
        return meta?["step"] as? Int
    }
}
