import Foundation

/// Reads a PyTorch state dict saved with `torch.save` — both the zip format
/// (PyTorch >= 1.6: `<prefix>/data.pkl` plus raw storages `<prefix>/data/<key>`)
/// and the legacy format (consecutive pickles followed by the raw storages) —
/// into Float32 tensors by parameter name.
public enum TorchCheckpoint {
    public static func load(_ url: URL) throws -> [String: Tensor] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw MetricsError("\(url.path): cannot read file")
        }
        let bytes = [UInt8](data)
        return StoredZipArchive.isZip(bytes) ? try loadZip(bytes, source: url.path) : try loadLegacy(bytes, source: url.path)
    }

    static func loadZip(_ bytes: [UInt8], source: String) throws -> [String: Tensor] {
        let zip = try StoredZipArchive(bytes, source: source)
        guard let pickleName = zip.entries.keys.filter({ $0.hasSuffix("data.pkl") }).min(by: { $0.count < $1.count }) else {
            throw MetricsError("\(source): zip has no data.pkl (not a torch.save checkpoint)")
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        var reader = PickleReader(Array(try zip.data(pickleName)), source: source + ":" + pickleName)
        let root = try reader.load(persistent: storage)
        return try tensors(root, source: source) { key in Array(try zip.data(prefix + "data/" + key)) }
    }

    static func loadLegacy(_ bytes: [UInt8], source: String) throws -> [String: Tensor] {
        var reader = PickleReader(bytes, source: source)
        // torch.serialization's MAGIC_NUMBER 0x1950a86a20f9469cfc6c, pickled little-endian.
        guard case .bigInt(let magic) = try reader.load(), magic == [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19] else {
            throw MetricsError("\(source): neither a zip nor a legacy torch.save checkpoint")
        }
        _ = try reader.load()              // protocol version
        _ = try reader.load()              // sys_info
        let root = try reader.load(persistent: storage)
        guard let keys = try reader.load().tupleValue?.compactMap(\.stringValue) else {
            throw MetricsError("\(source): legacy checkpoint without storage key list")
        }
        // Raw storages follow in key order, each as an Int64 element count then the bytes.
        let types = storageTypes(root)
        var position = reader.position
        var storages: [String: [UInt8]] = [:]
        for key in keys {
            guard position + 8 <= bytes.count else { throw MetricsError("\(source): truncated storage \(key)") }
            let count = bytes[position..<(position + 8)].reversed().reduce(0) { $0 << 8 | Int($1) }
            let size = count * elementSize(types[key] ?? "FloatStorage")
            position += 8
            guard position + size <= bytes.count else { throw MetricsError("\(source): truncated storage \(key)") }
            storages[key] = Array(bytes[position..<(position + size)])
            position += size
        }
        return try tensors(root, source: source) { key in
            guard let s = storages[key] else { throw MetricsError("\(source): storage \(key) missing") }
            return s
        }
    }

    /// Persistent id ('storage', storage_type, key, location, numel[, view]) -> .storage.
    static func storage(_ id: PickleValue) throws -> PickleValue {
        guard let t = id.tupleValue, t.count >= 5, t[0].stringValue == "storage",
              case .global(_, let type) = t[1], let key = t[2].stringValue, let count = t[4].intValue
        else { throw MetricsError("unsupported persistent id in checkpoint") }
        return .storage(key: key, type: type, count: count)
    }

    static func storageTypes(_ root: PickleValue) -> [String: String] {
        var out: [String: String] = [:]
        func visit(_ v: PickleValue) {
            switch v {
            case .tensor(let t): out[t.storageKey] = t.storageType
            case .dict(let d): d.entries.forEach { visit($0.value) }
            case .list(let l): l.items.forEach(visit)
            case .tuple(let t): t.forEach(visit)
            default: break
            }
        }
        visit(root)
        return out
    }

    static func elementSize(_ type: String) -> Int {
        switch type {
        case "DoubleStorage", "LongStorage": return 8
        case "FloatStorage", "IntStorage": return 4
        case "HalfStorage", "BFloat16Storage", "ShortStorage": return 2
        default: return 1
        }
    }

    /// The top-level dict's tensors, gathered through their strides and converted to Float32.
    static func tensors(_ root: PickleValue, source: String, storage: (String) throws -> [UInt8]) throws -> [String: Tensor] {
        var dict = root
        // Some checkpoints wrap the weights: {"state_dict": {...}}.
        if case .dict(let d) = root, let inner = d.entries.first(where: { $0.key.stringValue == "state_dict" })?.value {
            dict = inner
        }
        guard case .dict(let d) = dict else { throw MetricsError("\(source): checkpoint is not a state dict") }
        var cache: [String: [Float]] = [:]
        var out: [String: Tensor] = [:]
        for (key, value) in d.entries {
            guard let name = key.stringValue, case .tensor(let t) = value else { continue }
            if cache[t.storageKey] == nil {
                cache[t.storageKey] = try convert(storage(t.storageKey), type: t.storageType, source: source)
            }
            let elements = cache[t.storageKey]!
            let count = t.shape.reduce(1, *)
            var contiguous = [Int](repeating: 1, count: t.shape.count)
            for axis in stride(from: t.shape.count - 2, through: 0, by: -1) { contiguous[axis] = contiguous[axis + 1] * t.shape[axis + 1] }
            if t.strides == contiguous || count <= 1 {
                guard t.storageOffset + count <= elements.count else { throw MetricsError("\(source): tensor \(name) reads past its storage") }
                out[name] = Tensor(shape: t.shape, data: Array(elements[t.storageOffset..<(t.storageOffset + count)]))
                continue
            }
            var data = [Float](repeating: 0, count: count)
            for flat in 0..<count {
                var rest = flat, offset = t.storageOffset
                for axis in stride(from: t.shape.count - 1, through: 0, by: -1) {
                    offset += (rest % t.shape[axis]) * t.strides[axis]
                    rest /= t.shape[axis]
                }
                guard offset < elements.count else { throw MetricsError("\(source): tensor \(name) reads past its storage") }
                data[flat] = elements[offset]
            }
            out[name] = Tensor(shape: t.shape, data: data)
        }
        return out
    }

    static func convert(_ raw: [UInt8], type: String, source: String) throws -> [Float] {
        func load<T>(_: T.Type, _ f: (T) -> Float) -> [Float] {
            raw.withUnsafeBytes { buffer in
                (0..<(raw.count / MemoryLayout<T>.size)).map { f(buffer.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) }
            }
        }
        switch type {
        case "FloatStorage": return load(Float.self) { $0 }
        case "DoubleStorage": return load(Double.self) { Float($0) }
        case "LongStorage": return load(Int64.self) { Float($0) }
        case "IntStorage": return load(Int32.self) { Float($0) }
        case "ShortStorage": return load(Int16.self) { Float($0) }
        case "ByteStorage", "BoolStorage": return raw.map { Float($0) }
        case "CharStorage": return raw.map { Float(Int8(bitPattern: $0)) }
        default: throw MetricsError("\(source): unsupported storage type \(type)")
        }
    }
}
