import Crypto
import Foundation
import Stages

/// Content digests (SHA-256, hex) and the canonical JSON that stage keys are hashed from.
public enum Digest {
    public static func hex(_ data: some DataProtocol) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    public static func hex(_ string: String) -> String { hex(Data(string.utf8)) }

    /// SHA-256 of a regular file's bytes, streamed in 1 MiB chunks. Anything else (a FIFO, a device
    /// such as /dev/zero) is refused: reading it would block or never end. The check is made on the
    /// opened descriptor (non-blocking open), so a file swapped for a FIFO in between cannot hang us.
    public static func file(_ url: URL) throws -> String {
        let fd = open(url.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            // A file removed meanwhile is reported as Foundation does, so callers that treat a
            // vanished object as missing (a concurrent verifier removing it) still recognise it.
            if errno == ENOENT { throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: url.path]) }
            throw StoreError("cannot read `\(url.path)`: \(String(cString: strerror(errno)))")
        }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw StoreError("cannot read `\(url.path)`: \(String(cString: strerror(errno)))") }
        if let what = specialFileKind(st.st_mode) { throw StoreError("`\(url.path)` is \(what), not a regular file") }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// "a FIFO", "a character device"... for a mode that is neither a regular file nor a directory.
    static func specialFileKind(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG, S_IFDIR: return nil
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "a special file"
        }
    }

    /// Regular files under `dir`, as sorted relative paths. Symlinks to regular files count as files
    /// (hashed through their target); symlinked directories are not entered; a special file anywhere
    /// (FIFO, device, socket) or a dangling symlink is an error. Directories whose standardized path
    /// is in `excluding` are skipped (the store, when a dep contains it).
    static func files(under dir: URL, excluding: Set<String> = []) throws -> [String] {
        var result: [String] = []
        let base = dir.standardizedFileURL.path
        func walk(_ path: String, _ rel: String) throws {
            let names: [String]
            // Foundation's error as is (a directory removed meanwhile is "no such file", see `file`).
            names = try FileManager.default.contentsOfDirectory(atPath: path)
            for name in names {
                let full = path + "/" + name, childRel = rel.isEmpty ? name : rel + "/" + name
                var st = stat()
                guard lstat(full, &st) == 0 else { continue }  // removed while we listed
                switch st.st_mode & S_IFMT {
                case S_IFDIR:
                    if !excluding.contains(full) { try walk(full, childRel) }
                case S_IFREG:
                    result.append(childRel)
                case S_IFLNK:
                    var target = stat()
                    guard stat(full, &target) == 0 else { throw StoreError("`\(full)` is a dangling symbolic link") }
                    if let what = specialFileKind(target.st_mode) { throw StoreError("`\(full)` links to \(what)") }
                    if target.st_mode & S_IFMT == S_IFREG { result.append(childRel) }
                default:
                    throw StoreError("`\(full)` is \(specialFileKind(st.st_mode) ?? "a special file"), not a regular file or directory")
                }
            }
        }
        try walk(base, "")
        return result.sorted()
    }

    static func isExecutable(_ path: String) -> Bool {
        let mode = (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0
        return mode & 0o100 != 0
    }

    /// Digest of a directory tree: sorted (relative path, file SHA-256, exec bit).
    /// `fileDigest` lets callers memoise per-file hashes.
    public static func tree(_ dir: URL, excluding: Set<String> = [],
                            fileDigest: (URL) throws -> String = { try Digest.file($0) }) throws -> String {
        var listing = ""
        for rel in try files(under: dir, excluding: excluding) {
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
