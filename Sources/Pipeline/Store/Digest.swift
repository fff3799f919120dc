import Crypto
import Foundation
import Stages

/// Content digests (SHA-256, hex) and the canonical JSON that stage keys are hashed from.
public enum Digest {
    public static func hex(_ data: some DataProtocol) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    public static func hex(_ string: String) -> String { hex(Data(string.utf8)) }

    /// SHA-256 of a file's bytes, streamed in 1 MiB chunks.
    public static func file(_ url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Regular files under `dir` (following no symlinks out), as sorted relative paths.
    static func files(under dir: URL) throws -> [String] {
        let fm = FileManager.default
        var result: [String] = []
        let base = dir.standardizedFileURL.path
        guard let e = fm.enumerator(atPath: base) else { return [] }
        while let rel = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: base + "/" + rel, isDirectory: &isDir), !isDir.boolValue { result.append(rel) }
        }
        return result.sorted()
    }

    static func isExecutable(_ path: String) -> Bool {
        let mode = (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0
        return mode & 0o100 != 0
    }

    /// Digest of a directory tree: sorted (relative path, file SHA-256, exec bit).
    /// `fileDigest` lets callers memoise per-file hashes.
    public static func tree(_ dir: URL, fileDigest: (URL) throws -> String = { try Digest.file($0) }) throws -> String {
        var listing = ""
        for rel in try files(under: dir) {
            let url = dir.appendingPathComponent(rel)
            listing += rel + "\u{0}" + (try fileDigest(url)) + "\u{0}" + (isExecutable(url.path) ? "x" : "-") + "\n"
        }
        return hex(listing)
    }

    /// Canonical JSON: sorted keys, no spaces, shortest round-trip numbers.
    public static func canonicalJSON(_ v: ParamValue) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d):
            if d.isNaN || d.isInfinite { return "\"\(d)\"" }
            return d.rounded() == d && abs(d) < 1e15 ? String(format: "%.1f", d) : "\(d)"
        case .string(let s): return jsonString(s)
        case .list(let items): return "[" + items.map(canonicalJSON).joined(separator: ",") + "]"
        case .map(let m):
            return "{" + m.keys.sorted().map { jsonString($0) + ":" + canonicalJSON(m[$0]!) }.joined(separator: ",") + "}"
        }
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
