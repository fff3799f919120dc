import Foundation

/// One-head self-attention as in EDM's DDPM++ UNetBlock (without the norm and residual,
/// which the block owns): qkv = 1x1 conv C -> 3C, with EDM's channel layout
/// (channel 3c+j is q/k/v for j = 0/1/2), w = softmax_k(q^T k / sqrt(C)),
/// a[c, q] = sum_k w[q, k] v[c, k], output = proj(a) with a 1x1 conv C -> C.
public final class SelfAttention: Layer {
    public let channels: Int
    public let qkv: Conv2d
    public let proj: Conv2d
    let backend: any ComputeBackend
    // Cached per forward: the qkv output [N, 3C, P] (q, k, v read in place, rows 3P apart) and
    // the attention weights [N, P, P].
    private var t: Tensor?
    private var w: [Float] = []

    public init(channels: Int, projInit: WeightInit = .nearZero, rng: inout RandomGenerator,
                backend: any ComputeBackend = Engine.defaultBackend) {
        self.channels = channels
        qkv = Conv2d(inChannels: channels, outChannels: 3 * channels, kernel: 1, rng: &rng, backend: backend)
        proj = Conv2d(inChannels: channels, outChannels: channels, kernel: 1, initialization: projInit, rng: &rng, backend: backend)
        self.backend = backend
    }

    public func namedParameters() -> [(name: String, parameter: Parameter)] {
        prefixed("qkv", qkv) + prefixed("proj", proj)
    }

    /// Row and image strides of the per-image products. In the qkv buffer channel c of q/k/v is
    /// row 3c + 0/1/2, so q, k and v are [C, P] matrices at offsets 0, P, 2P with rows 3P apart;
    /// plain [C, P] and [P, P] buffers have rows P apart.
    private static func strides(c: Int, p: Int) -> (qkvRow: Int, qkvImage: Int, image: Int, square: Int) {
        (3 * p, 3 * c * p, c * p, p * p)
    }

    public func forward(_ x: Tensor) -> Tensor {
        let g = x.imageGeometry
        precondition(g.channels == channels, "SelfAttention: expected \(channels) channels, got \(x.shape)")
        let (n, c, p) = (g.batch, channels, g.height * g.width)
        let (row3, image3, image, square) = Self.strides(c: c, p: p)
        // The products read channels as matrix rows, so q, k, v and the mixed values are NCHW
        // whatever the input's layout; the two 1x1 convolutions change the layout on the way.
        (qkv.outputBlock, proj.outputBlock) = (1, g.block)
        let t = qkv.forward(x)
        self.t = t
        w = [Float](repeating: 0, count: n * p * p)
        var a = Tensor(zeros: [n, c, g.height, g.width])
        // S[q, k] = sum_c Q[c, q] K[c, k] / sqrt(C)
        let scores = BatchedGemm(batch: n, m: p, n: p, k: c, transA: true, lda: row3, ldb: row3, ldc: p,
                                 strideA: image3, strideB: image3, strideC: square, alpha: 1 / Float(c).squareRoot())
        // A[c, q] = sum_k V[c, k] W[q, k]
        let mix = BatchedGemm(batch: n, m: c, n: p, k: p, transB: true, lda: row3, ldb: p, ldc: p,
                              strideA: image3, strideB: square, strideC: image)
        t.data.withUnsafeBufferPointer { tp in w.withUnsafeMutableBufferPointer { wp in a.data.withUnsafeMutableBufferPointer { ap in
            let (tb, wb) = (tp.baseAddress!, wp.baseAddress!)
            backend.batchedSgemm(scores, a: tb, b: tb + p, c: wb)
            backend.softmaxRows(wb, rows: n * p, cols: p)
            backend.batchedSgemm(mix, a: tb + 2 * p, b: wb, c: ap.baseAddress!)
        } } }
        return proj.forward(a)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let da = proj.backward(dy)
        let (n, c, p) = (da.shape[0], channels, da.shape[2] * da.shape[3])
        guard let t, w.count == n * p * p else { preconditionFailure("SelfAttention.backward before forward") }
        defer { self.t = nil; w = [] }
        let (row3, image3, image, square) = Self.strides(c: c, p: p)
        let scale = 1 / Float(c).squareRoot()
        var dt = Tensor(zeros: t.shape)
        var dw = [Float](repeating: 0, count: n * p * p)
        // dV[c, k] = sum_q dA[c, q] W[q, k]                 (into the qkv gradient, v rows)
        let dV = BatchedGemm(batch: n, m: c, n: p, k: p, lda: p, ldb: p, ldc: row3, strideA: image, strideB: square, strideC: image3)
        // dW[q, k] = sum_c dA[c, q] V[c, k]
        let dW = BatchedGemm(batch: n, m: p, n: p, k: c, transA: true, lda: p, ldb: row3, ldc: p,
                             strideA: image, strideB: image3, strideC: square)
        // dQ[c, q] = sum_k K[c, k] dS[q, k] / sqrt(C);  dK[c, k] = sum_q Q[c, q] dS[q, k] / sqrt(C)
        let dQ = BatchedGemm(batch: n, m: c, n: p, k: p, transB: true, lda: row3, ldb: p, ldc: row3,
                             strideA: image3, strideB: square, strideC: image3, alpha: scale)
        let dK = BatchedGemm(batch: n, m: c, n: p, k: p, lda: row3, ldb: p, ldc: row3,
                             strideA: image3, strideB: square, strideC: image3, alpha: scale)
        da.data.withUnsafeBufferPointer { dap in t.data.withUnsafeBufferPointer { tp in w.withUnsafeBufferPointer { wp in
            dw.withUnsafeMutableBufferPointer { dwp in dt.data.withUnsafeMutableBufferPointer { dtp in
                let (dab, tb, wb, dwb, dtb) = (dap.baseAddress!, tp.baseAddress!, wp.baseAddress!, dwp.baseAddress!, dtp.baseAddress!)
                backend.batchedSgemm(dV, a: dab, b: wb, c: dtb + 2 * p)
                backend.batchedSgemm(dW, a: dab, b: tb + 2 * p, c: dwb)
                // Softmax backward in place: dS = W * (dW - rowsum(dW * W)).
                Engine.parallelFor(n * p, costPerItem: 4 * p) { rows in
                    for row in rows {
                        let wr = wb + row * p, dr = dwb + row * p
                        var s: Float = 0
                        for j in 0..<p { s += wr[j] * dr[j] }
                        for j in 0..<p { dr[j] = wr[j] * (dr[j] - s) }
                    }
                }
                backend.batchedSgemm(dQ, a: tb + p, b: dwb, c: dtb)
                backend.batchedSgemm(dK, a: tb, b: dwb, c: dtb + p)
            } }
        } } }
        return qkv.backward(dt)
    }
}

/// Numerically stable softmax of each row, in place (sequential: called per worker).
func sequentialSoftmaxRows(_ m: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
    do {
        for row in 0..<rows {
            let x = m + row * cols
            var mx = -Float.infinity
            for j in 0..<cols { mx = max(mx, x[j]) }
            var s: Float = 0
            for j in 0..<cols { let e = expf(x[j] - mx); x[j] = e; s += e }
            let inv = 1 / s
            for j in 0..<cols { x[j] *= inv }
        }
    }
}
