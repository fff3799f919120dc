/// A Float32 tensor in contiguous row-major storage (NCHW for images).
///
/// A value type: copies share storage until one of them is written (Swift arrays
/// are copy-on-write), so passing tensors around and reshaping are cheap.
public struct Tensor: Sendable, Equatable {
    public private(set) var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not match \(data.count) elements")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    /// A tensor whose storage is written once by `initializer` (no zero-fill first).
    public init(shape: [Int], unsafeUninitialized initializer: (UnsafeMutableBufferPointer<Float>) -> Void) {
        let n = shape.reduce(1, *)
        self.shape = shape
        self.data = [Float](unsafeUninitializedCapacity: n) { buf, count in
            initializer(buf)
            count = n
        }
    }

    /// Standard-normal entries times `scale` from a seeded generator.
    public init(randomNormal shape: [Int], scale: Float = 1, using rng: inout RandomGenerator) {
        self.init(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() * scale })
    }

    /// Uniform entries in [low, high) from a seeded generator.
    public init(randomUniform shape: [Int], low: Float, high: Float, using rng: inout RandomGenerator) {
        self.init(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.uniform(low, high) })
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }

    /// The same elements under another shape with equal element count (no copy).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, data: data)
    }

    /// Images n ..< n+count of an NCHW (or any leading-batch) tensor, copied contiguously.
    public func batchSlice(_ range: Range<Int>) -> Tensor {
        let per = count / shape[0]
        var s = shape; s[0] = range.count
        return Tensor(shape: s, data: Array(data[range.lowerBound * per ..< range.upperBound * per]))
    }

    /// Elementwise `self += other` (equal shapes).
    public mutating func add(_ other: Tensor, scale: Float = 1) {
        precondition(shape == other.shape, "add: shapes \(shape) and \(other.shape) differ")
        data.withUnsafeMutableBufferPointer { d in
            other.data.withUnsafeBufferPointer { o in
                for i in 0..<d.count { d[i] += scale * o[i] }
            }
        }
    }

    /// Every element multiplied by `k`.
    public func scaled(_ k: Float) -> Tensor {
        Tensor(shape: shape) { out in data.withUnsafeBufferPointer { d in for i in 0..<d.count { out[i] = d[i] * k } } }
    }

    /// Sum over all elements in Double.
    public func sum() -> Double {
        data.withUnsafeBufferPointer { d in var s = 0.0; for v in d { s += Double(v) }; return s }
    }
}

extension Tensor {
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "+: shapes \(a.shape) and \(b.shape) differ")
        return Tensor(shape: a.shape) { out in
            a.data.withUnsafeBufferPointer { x in b.data.withUnsafeBufferPointer { y in
                for i in 0..<x.count { out[i] = x[i] + y[i] }
            } }
        }
    }
}
