/// Mean over H x W per channel: [N, C, H, W] -> [N, C]. Backward spreads dy evenly.
public final class GlobalAveragePool: Layer {
    private var inputShape: [Int]?
    public init() {}
    public func namedParameters() -> [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4, "GlobalAveragePool: expected NCHW, got \(x.shape)")
        inputShape = x.shape
        let (nc, hw) = (x.shape[0] * x.shape[1], x.shape[2] * x.shape[3])
        var y = Tensor(zeros: [x.shape[0], x.shape[1]])
        for p in 0..<nc {
            var s: Float = 0
            for i in 0..<hw { s += x.data[p * hw + i] }
            y.data[p] = s / Float(hw)
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let shape = inputShape else { preconditionFailure("GlobalAveragePool.backward before forward") }
        let (nc, hw) = (shape[0] * shape[1], shape[2] * shape[3])
        precondition(dy.shape == [shape[0], shape[1]], "GlobalAveragePool.backward: dy shape \(dy.shape)")
        var dx = Tensor(zeros: shape)
        for p in 0..<nc {
            let g = dy.data[p] / Float(hw)
            for i in 0..<hw { dx.data[p * hw + i] = g }
        }
        return dx
    }
}
