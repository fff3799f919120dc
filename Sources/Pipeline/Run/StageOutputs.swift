import Foundation

/// Where a stage's outputs are, for `pdpipe show` and `pdpipe checkout`.
public struct StageOutput: Sendable, Encodable {
    public struct File: Sendable, Encodable { public var path: String; public var bytes: Int64 }
    public var id: String
    /// `up-to-date`, `restorable` (a stored key the cell does not point at yet), or `stale`
    /// (the spec changed; shown is the cell's last recorded result).
    public var state: String
    public var reason: String
    public var key: String
    public var digest: String
    public var path: String
    public var files: [File]
    public var metrics: [String: Double]
    /// Measurements of the computation (today: wall seconds).
    public var seconds: Double
    public var run: String
    public var recordedAt: Date?

    public var totalBytes: Int64 { files.reduce(0) { $0 + $1.bytes } }
}

public struct OutputError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

extension Runner {
    /// The stored outputs of the instances that `targets` (stage names or cell ids) name. A target
    /// the spec would (re)compute shows the cell's last recorded result, marked `stale`; one never
    /// computed is an error naming it.
    public func outputs(_ targets: [String]) throws -> [StageOutput] {
        var options = RunOptions()
        options.targets = targets
        let lines = try plan(options)
        let wanted = Set(try select(targets).filter { Self.matches($0, targets) }.map(\.id))
        let current = try store.currentKeys(scope: scope)
        var result: [StageOutput] = []
        var missing: [String] = []
        for line in lines where wanted.contains(line.id) {
            var state = line.action == .upToDate ? "up-to-date" : line.action == .restore ? "restorable" : "stale"
            var stored = try line.key.flatMap { try store.result(forKey: $0) }
            if stored == nil, let last = current[line.id] { stored = try store.result(forKey: last); state = "stale" }
            guard let r = stored, FileManager.default.fileExists(atPath: store.objectURL(r.artifact).path) else {
                missing.append("\(line.id) (\(line.reason.isEmpty ? "not stored" : line.reason))")
                continue
            }
            let dir = store.objectURL(r.artifact)
            let files = try Digest.files(under: dir).map { rel -> StageOutput.File in
                var st = stat()
                return StageOutput.File(path: rel, bytes: stat(dir.path + "/" + rel, &st) == 0 ? Int64(st.st_size) : 0)
            }
            result.append(StageOutput(id: line.id, state: state, reason: state == "stale" ? line.reason : "", key: r.key,
                                      digest: r.artifact, path: dir.path, files: files, metrics: r.metrics,
                                      seconds: r.seconds, run: r.runID, recordedAt: try store.recordedAt(key: r.key)))
        }
        if !missing.isEmpty {
            throw OutputError("not computed yet (run `pdpipe run` first): " + missing.joined(separator: ", "))
        }
        return result
    }

    /// Materialises outputs under `directory/<cell id>/`: hard links to the store's objects where
    /// the file system allows, else copies, all read-only (a write through a hard link would change
    /// the stored object). A directory is replaced only if an earlier checkout made it.
    public func checkout(_ outputs: [StageOutput], into directory: URL) throws -> [(output: StageOutput, directory: URL, linked: Int, copied: Int)] {
        let fm = FileManager.default
        var done: [(output: StageOutput, directory: URL, linked: Int, copied: Int)] = []
        for o in outputs {
            let target = directory.appendingPathComponent(o.id.replacingOccurrences(of: "/", with: "_"))
            let marker = target.appendingPathComponent(Self.checkoutMarker)
            if fm.fileExists(atPath: target.path) {
                guard fm.fileExists(atPath: marker.path) else {
                    throw OutputError("\(target.path) exists and was not made by `pdpipe checkout`; move it or pick another -o")
                }
                try fm.removeItem(at: target)
            }
            var linked = 0, copied = 0
            for f in o.files {
                let source = URL(fileURLWithPath: o.path).appendingPathComponent(f.path)
                let dest = target.appendingPathComponent(f.path)
                try fm.createDirectory(at: dest.deletingLastPathComponent(), withIntermediateDirectories: true)
                // Read-only before linking: the link shares the object's inode (and so its mode).
                chmod(source.path, Self.readOnlyMode(source.path))
                if link(source.path, dest.path) == 0 { linked += 1 } else {
                    try fm.copyItem(at: source, to: dest)
                    chmod(dest.path, Self.readOnlyMode(dest.path))
                    copied += 1
                }
            }
            try Data((o.digest + "\n").utf8).write(to: marker)
            done.append((o, target, linked, copied))
        }
        return done
    }

    static let checkoutMarker = ".pdpipe-checkout"

    static func readOnlyMode(_ path: String) -> mode_t {
        var st = stat()
        guard stat(path, &st) == 0 else { return 0o444 }
        return st.st_mode & 0o555
    }
}
