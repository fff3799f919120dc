import Foundation

/// A file of named Float32 tensors plus a JSON metadata record: used for checkpoints,
/// exported EMA weights and the PyTorch cross-check.
///
/// Layout: magic "PDTENSOR", UInt64 little-endian header length, the JSON header
/// {"metadata": "<json>", "tensors": [{"name", "shape", "offset"}]}, zero padding to a
/// multiple of 64 bytes, then the tensors' little-endian Float32 data back to back
/// (`offset` counts bytes from the start of the data section).
/// Writes are atomic: a temporary file in the same directory, fsync, rename, fsync of the directory.
public struct TensorArchive {
    public var metadata: Data
    public var tensors: [(name: String, tensor: Tensor)]

    public init(metadata: Data = Data("{}".utf8), tensors: [(name: String, tensor: Tensor)]) {
        (self.metadata, self.tensors) = (metadata, tensors)
    }

    struct Entry: Codable { var name: String; var shape: [Int]; var offset: Int }
    struct Header: Codable { var metadata: String; var tensors: [Entry] }
    static let magic = Data("PDTENSOR".utf8)

    /// JSON with sorted keys, so equal contents give equal bytes (the store's early cutoff relies on it).
    public static func canonicalJSON(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(value)
    }

    public func tensor(named name: String) -> Tensor? { tensors.first { $0.name == name }?.tensor }

    public func encoded() throws -> Data {
        var entries: [Entry] = []
        var offset = 0
        for t in tensors {
            entries.append(Entry(name: t.name, shape: t.tensor.shape, offset: offset))
            offset += t.tensor.count * 4
        }
        let header = try Self.canonicalJSON(Header(metadata: String(decoding: metadata, as: UTF8.self), tensors: entries))
        var out = Self.magic
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(header)
        out.append(Data(count: (64 - out.count % 64) % 64))
        out.reserveCapacity(out.count + offset)
        for t in tensors {
            t.tensor.data.withUnsafeBufferPointer { buf in
                #if _endian(big)
                for v in buf { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
                #else
                out.append(UnsafeBufferPointer(start: UnsafeRawPointer(buf.baseAddress!).assumingMemoryBound(to: UInt8.self), count: buf.count * 4))
                #endif
            }
        }
        return out
    }

    public init(decoding data: Data, source: String) throws {
        func fail(_ why: String) -> DiffusionError { DiffusionError("\(source): not a tensor archive (\(why))") }
        guard data.count >= 16, data.prefix(8) == Self.magic else { throw fail("bad magic") }
        let headerLength = data.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))) }
        guard headerLength > 0, 16 + headerLength <= data.count else { throw fail("bad header length") }
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: data.subdata(in: 16 ..< 16 + headerLength)) }
        catch { throw fail("header: \(error)") }
        let start = 16 + headerLength + (64 - (16 + headerLength) % 64) % 64
        var tensors: [(name: String, tensor: Tensor)] = []
        for e in header.tensors {
            let n = e.shape.reduce(1, *)
            guard e.offset >= 0, start + e.offset + 4 * n <= data.count else { throw fail("tensor \(e.name) out of bounds") }
            var values = [Float](repeating: 0, count: n)
            data.withUnsafeBytes { raw in
                for i in 0..<n {
                    values[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: start + e.offset + 4 * i, as: UInt32.self)))
                }
            }
            tensors.append((e.name, Tensor(shape: e.shape, data: values)))
        }
        self.init(metadata: Data(header.metadata.utf8), tensors: tensors)
    }

    public static func read(_ url: URL) throws -> TensorArchive {
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) }
        catch { throw DiffusionError("\(url.path): cannot read (\(error.localizedDescription))") }
        return try TensorArchive(decoding: data, source: url.path)
    }

    /// Atomic write (temporary file, fsync, rename, directory fsync).
    public func write(to url: URL) throws {
        try AtomicFile.write(try encoded(), to: url)
    }
}

/// Writes a whole file so that readers see the old content or the new, never a torn one.
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws {
        let dir = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil) else {
            throw DiffusionError("\(tmp.path): cannot create")
        }
        let handle = try FileHandle(forWritingTo: tmp)
        do {
            try handle.write(contentsOf: data)
            try handle.synchronize()
            try handle.close()
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(at: tmp)
            throw DiffusionError("\(url.path): write failed (\(error.localizedDescription))")
        }
        guard rename(tmp.path, url.path) == 0 else {
            try? FileManager.default.removeItem(at: tmp)
            throw DiffusionError("\(url.path): rename failed (errno \(errno))")
        }
        let fd = open(dir.path, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
    }
}

/// A diffusion-engine failure with a message naming the place (file, step); the stages map it to StageError.
public struct DiffusionError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
