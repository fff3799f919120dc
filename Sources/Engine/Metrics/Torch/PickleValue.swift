/// The values a PyTorch state-dict pickle can contain. Lists and dicts are
/// reference types because pickle builds them after memoising them.
public indirect enum PickleValue: @unchecked Sendable {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer wider than 64 bits, little-endian two's complement bytes (e.g. torch's legacy magic number).
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// A `module.name` reference (GLOBAL / STACK_GLOBAL).
    case global(module: String, name: String)
    /// A tensor storage named by the persistent id: key, element type name (e.g. `FloatStorage`), element count.
    case storage(key: String, type: String, count: Int)
    /// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...).
    case tensor(TensorReference)
    /// Any other reconstructed object (callable and arguments), kept opaque.
    case object(callable: PickleValue, arguments: PickleValue)
    case mark

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var intValue: Int? {
        switch self { case .int(let v): return v; case .bool(let b): return b ? 1 : 0; default: return nil }
    }
    public var tupleValue: [PickleValue]? {
        switch self { case .tuple(let t): return t; case .list(let l): return l.items; default: return nil }
    }
}

public final class PickleList { public var items: [PickleValue] = [] }

public final class PickleDict {
    /// Insertion order is kept (state dicts are OrderedDicts).
    public var entries: [(key: PickleValue, value: PickleValue)] = []
}

public struct TensorReference: Sendable {
    public var storageKey: String
    public var storageType: String
    public var storageOffset: Int
    public var shape: [Int]
    public var strides: [Int]
}
