/// Inverted dropout: in training, zero each element with probability `p` and scale the
/// rest by 1/(1-p); identity when `isTraining` is false or p == 0. The mask comes from
/// the layer's own seeded generator (`rng`, checkpointable), so runs are reproducible.
public final class Dropout: Layer {
    public let p: Float
    public var isTraining = true
    public var rng: RandomGenerator
    private var mask: [Float]?

    public init(p: Float, seed: UInt64) {
        precondition(p >= 0 && p < 1, "Dropout: p must be in [0, 1)")
        self.p = p
        rng = RandomGenerator(seed: seed)
    }

    public func namedParameters() -> [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor) -> Tensor {
        guard isTraining && p > 0 else { mask = nil; return x }
        let keep = 1 / (1 - p)
        var m = [Float](repeating: 0, count: x.count)
        for i in 0..<m.count where rng.uniform() >= p { m[i] = keep }
        mask = m
        return Tensor(shape: x.shape) { y in
            x.data.withUnsafeBufferPointer { xp in for i in 0..<xp.count { y[i] = xp[i] * m[i] } }
        }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let m = mask else { return dy }
        defer { mask = nil }
        precondition(dy.count == m.count, "Dropout.backward: dy shape \(dy.shape)")
        return Tensor(shape: dy.shape) { dx in
            dy.data.withUnsafeBufferPointer { g in m.withUnsafeBufferPointer { mp in for i in 0..<g.count { dx[i] = g[i] * mp[i] } } }
        }
    }
}
