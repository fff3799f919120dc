/// Fully connected layer: y[N, out] = x[N, in] W^T + b, weight [out, in].
public final class Linear: Layer {
    public let inFeatures, outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?
    public let backend: any ComputeBackend
    private var input: Tensor?

    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true, initialization: WeightInit = .xavierUniform,
                rng: inout RandomGenerator, backend: any ComputeBackend = Engine.defaultBackend) {
        (self.inFeatures, self.outFeatures) = (inFeatures, outFeatures)
        weight = Parameter(WeightInit.xavier([outFeatures, inFeatures], fanIn: inFeatures, fanOut: outFeatures,
                                             scale: initialization.scale, using: &rng))
        self.bias = bias ? Parameter(WeightInit.xavier([outFeatures], fanIn: inFeatures, fanOut: outFeatures,
                                                      scale: initialization.biasScale, using: &rng)) : nil
        self.backend = backend
    }

    public func namedParameters() -> [(name: String, parameter: Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.rank == 2 && x.shape[1] == inFeatures, "Linear: expected [N, \(inFeatures)], got \(x.shape)")
        input = x
        let n = x.shape[0]
        var y = Tensor(zeros: [n, outFeatures])
        if let bias { for i in 0..<n { for o in 0..<outFeatures { y.data[i * outFeatures + o] = bias.value.data[o] } } }
        x.data.withUnsafeBufferPointer { xp in weight.value.data.withUnsafeBufferPointer { wp in
            y.data.withUnsafeMutableBufferPointer { yp in
                backend.sgemm(transA: false, transB: true, m: n, n: outFeatures, k: inFeatures, alpha: 1,
                              a: xp.baseAddress!, lda: inFeatures, b: wp.baseAddress!, ldb: inFeatures,
                              beta: 1, c: yp.baseAddress!, ldc: outFeatures)
            }
        } }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("Linear.backward before forward") }
        defer { input = nil }
        let n = x.shape[0]
        precondition(dy.shape == [n, outFeatures], "Linear.backward: dy shape \(dy.shape)")
        if let bias {
            for i in 0..<n { for o in 0..<outFeatures { bias.grad.data[o] += dy.data[i * outFeatures + o] } }
        }
        var dx = Tensor(zeros: x.shape)
        dy.data.withUnsafeBufferPointer { dyp in
            x.data.withUnsafeBufferPointer { xp in weight.grad.data.withUnsafeMutableBufferPointer { dwp in
                // dW[out, in] += dy^T x
                backend.sgemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: n, alpha: 1,
                              a: dyp.baseAddress!, lda: outFeatures, b: xp.baseAddress!, ldb: inFeatures,
                              beta: 1, c: dwp.baseAddress!, ldc: inFeatures)
            } }
            weight.value.data.withUnsafeBufferPointer { wp in dx.data.withUnsafeMutableBufferPointer { dxp in
                // dx = dy W
                backend.sgemm(transA: false, transB: false, m: n, n: inFeatures, k: outFeatures, alpha: 1,
                              a: dyp.baseAddress!, lda: outFeatures, b: wp.baseAddress!, ldb: inFeatures,
                              beta: 0, c: dxp.baseAddress!, ldc: inFeatures)
            } }
        }
        return dx
    }
}
