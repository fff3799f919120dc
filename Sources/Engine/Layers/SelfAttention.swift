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
    // Cached per forward: q, k, v as [N, C, P] and the attention weights [N, P, P].
    private var q: [Float] = [], k: [Float] = [], v: [Float] = [], w: [Float] = []
    private var spatialShape: (Int, Int) = (0, 0)

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

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == channels, "SelfAttention: expected [N, \(channels), H, W], got \(x.shape)")
        let (n, c, p) = (x.shape[0], channels, x.shape[2] * x.shape[3])
        spatialShape = (x.shape[2], x.shape[3])
        let t = qkv.forward(x)
        q = [Float](repeating: 0, count: n * c * p); k = q; v = q
        w = [Float](repeating: 0, count: n * p * p)
        var a = Tensor(zeros: x.shape)
        let scale = 1 / Float(c).squareRoot()
        t.data.withUnsafeBufferPointer { tp in
            q.withUnsafeMutableBufferPointer { qp in k.withUnsafeMutableBufferPointer { kp in v.withUnsafeMutableBufferPointer { vp in
                w.withUnsafeMutableBufferPointer { wp in a.data.withUnsafeMutableBufferPointer { ap in
                    let (tb, qb, kb, vb, wb, ab) = (tp.baseAddress!, qp.baseAddress!, kp.baseAddress!, vp.baseAddress!, wp.baseAddress!, ap.baseAddress!)
                    // De-interleave EDM's (c, 3) channel layout.
                    for i in 0..<n { for ch in 0..<c {
                        let src = tb + (i * 3 * c + 3 * ch) * p, dst = (i * c + ch) * p
                        (qb + dst).update(from: src, count: p)
                        (kb + dst).update(from: src + p, count: p)
                        (vb + dst).update(from: src + 2 * p, count: p)
                    } }
                    // Images are independent: split them across threads (single-threaded BLAS each).
                    let shared = UncheckedSendable((qb, kb, vb, wb, ab))
                    Engine.splitWork(n) { _, images in
                        let (qb, kb, vb, wb, ab) = shared.value
                        for i in images {
                            let (qi, ki, vi, wi) = (qb + i * c * p, kb + i * c * p, vb + i * c * p, wb + i * p * p)
                            // S[q, k] = sum_c Q[c, q] K[c, k] / sqrt(C)
                            backend.sgemm(transA: true, transB: false, m: p, n: p, k: c, alpha: scale,
                                          a: qi, lda: p, b: ki, ldb: p, beta: 0, c: wi, ldc: p)
                            softmaxRows(wi, rows: p, cols: p)
                            // A[c, q] = sum_k V[c, k] W[q, k]
                            backend.sgemm(transA: false, transB: true, m: c, n: p, k: p, alpha: 1,
                                          a: vi, lda: p, b: wi, ldb: p, beta: 0, c: ab + i * c * p, ldc: p)
                        }
                    }
                } }
            } } }
        }
        return proj.forward(a)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let da = proj.backward(dy)
        let (n, c, p) = (da.shape[0], channels, da.shape[2] * da.shape[3])
        precondition(w.count == n * p * p, "SelfAttention.backward before forward")
        defer { q = []; k = []; v = []; w = [] }
        let scale = 1 / Float(c).squareRoot()
        var dt = Tensor(zeros: [n, 3 * c, spatialShape.0, spatialShape.1])
        da.data.withUnsafeBufferPointer { dap in
            q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
                w.withUnsafeBufferPointer { wp in dt.data.withUnsafeMutableBufferPointer { dtp in
                    let shared = UncheckedSendable((dap.baseAddress!, qp.baseAddress!, kp.baseAddress!, vp.baseAddress!, wp.baseAddress!, dtp.baseAddress!))
                    // Images are independent: split them across threads, each with its own scratch.
                    Engine.splitWork(n) { _, images in
                        let (dab, qb, kb, vb, wb, dtb) = shared.value
                        let dwb = UnsafeMutablePointer<Float>.allocate(capacity: p * p + 3 * c * p)
                        defer { dwb.deallocate() }
                        let (dqb, dkb, dvb) = (dwb + p * p, dwb + p * p + c * p, dwb + p * p + 2 * c * p)
                        for i in images {
                            let off = i * c * p
                            let (dai, qi, ki, vi, wi) = (dab + off, qb + off, kb + off, vb + off, wb + i * p * p)
                            // dV[c, k] = sum_q dA[c, q] W[q, k]
                            backend.sgemm(transA: false, transB: false, m: c, n: p, k: p, alpha: 1,
                                          a: dai, lda: p, b: wi, ldb: p, beta: 0, c: dvb, ldc: p)
                            // dW[q, k] = sum_c dA[c, q] V[c, k]
                            backend.sgemm(transA: true, transB: false, m: p, n: p, k: c, alpha: 1,
                                          a: dai, lda: p, b: vi, ldb: p, beta: 0, c: dwb, ldc: p)
                            // Softmax backward in place: dS = W * (dW - rowsum(dW * W)).
                            for row in 0..<p {
                                let wr = wi + row * p, dr = dwb + row * p
                                var s: Float = 0
                                for j in 0..<p { s += wr[j] * dr[j] }
                                for j in 0..<p { dr[j] = wr[j] * (dr[j] - s) }
                            }
                            // dQ[c, q] = sum_k K[c, k] dS[q, k] / sqrt(C); dK[c, k] = sum_q Q[c, q] dS[q, k] / sqrt(C)
                            backend.sgemm(transA: false, transB: true, m: c, n: p, k: p, alpha: scale,
                                          a: ki, lda: p, b: dwb, ldb: p, beta: 0, c: dqb, ldc: p)
                            backend.sgemm(transA: false, transB: false, m: c, n: p, k: p, alpha: scale,
                                          a: qi, lda: p, b: dwb, ldb: p, beta: 0, c: dkb, ldc: p)
                            // Re-interleave into the qkv conv's channel layout.
                            for ch in 0..<c {
                                let dst = dtb + (i * 3 * c + 3 * ch) * p
                                dst.update(from: dqb + ch * p, count: p)
                                (dst + p).update(from: dkb + ch * p, count: p)
                                (dst + 2 * p).update(from: dvb + ch * p, count: p)
                            }
                        }
                    }
                } }
            } } }
        }
        return qkv.backward(dt)
    }
}

/// Numerically stable softmax of each row, in place (sequential: called per worker).
func softmaxRows(_ m: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
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
