import COpenBLAS

/// The OpenBLAS backend: convolution as im2col + sgemm, the batch split across threads with
/// cache-sized image chunks per GEMM (see below); GroupNorm as vectorisable loops split over
/// `Engine.parallelFor`.
public struct BLASBackend: ComputeBackend {
    /// How convolutions use the threads.
    public enum ConvThreading: Sendable {
        /// Split the batch across threads, single-threaded BLAS per worker (default).
        case splitBatch
        /// One thread drives chunks sequentially; OpenBLAS and the copy loops use all threads.
        case threadedBLAS
    }
    public var convThreading: ConvThreading

    public init(convThreading: ConvThreading = .splitBatch) { self.convThreading = convThreading }
    public var name: String { "openblas" }

    public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// The batch split across threads (`Engine.splitWork`), single-threaded sgemm per item.
    public func batchedSgemm(_ g: BatchedGemm, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
        let buffers = UncheckedSendable((a, b, c))
        Engine.splitWork(g.batch) { _, items in
            let (a, b, c) = buffers.value
            for i in items {
                sgemm(transA: g.transA, transB: g.transB, m: g.m, n: g.n, k: g.k, alpha: g.alpha, a: a + i * g.strideA, lda: g.lda,
                      b: b + i * g.strideB, ldb: g.ldb, beta: 0, c: c + i * g.strideC, ldc: g.ldc)
            }
        }
    }

    public func siluForward(count: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, sigmoid: UnsafeMutablePointer<Float>?) {
        SiLUKernels.forward(count: count, x: x, y: y, sigmoid: sigmoid)
    }

    public func siluBackward(count: Int, x: UnsafePointer<Float>, sigmoid: UnsafePointer<Float>?, dy: UnsafePointer<Float>,
                             dx: UnsafeMutablePointer<Float>) {
        guard let sigmoid else { preconditionFailure("siluBackward: OpenBLAS reads the gate its forward kept") }
        SiLUKernels.backward(count: count, x: x, sigmoid: sigmoid, dy: dy, dx: dx)
    }

    // MARK: convolution
    //
    // The batch is split across the engine's threads (`Engine.splitWork`); each worker runs
    // single-threaded OpenBLAS on chunks of its images: im2col into a per-thread column buffer
    // sized to stay in the core's L2, one GEMM per chunk, and the layout change to NCHW. No
    // synchronisation between BLAS threads, and the columns never leave the core's cache.
    // With a batch of one image (sampling a single image), BLAS uses all threads instead.

    /// Images per GEMM chunk: a column buffer (K x chunk*P floats) of at most ~1 MB (half the
    /// L2 of this machine's cores), at least one image.
    func chunkImages(_ p: Conv2dShape) -> Int {
        if Self.isPointwise(p) { return 1 }  // the image itself is the column matrix
        let kk = p.inChannels * p.kernel * p.kernel, plane = p.outHeight * p.outWidth
        let budget = convThreading == .splitBatch ? 1 << 20 : 8 << 20
        return min(p.batch, max(1, budget / (4 * kk * plane)))
    }

    /// Output rows per GEMM when a single image's columns exceed the ~1 MB budget (large images,
    /// "same" padding only): the image is processed in horizontal bands so the column buffer
    /// stays in L2 (measured +15 % GEMM+copy rate for 64 channels at 32x32). Nil = whole images.
    func bandRows(_ p: Conv2dShape) -> Int? {
        guard convThreading == .splitBatch, !Self.isPointwise(p), p.outHeight == p.height, p.outWidth == p.width else { return nil }
        let kk = p.inChannels * p.kernel * p.kernel
        guard 4 * kk * p.height * p.width > 1 << 20 else { return nil }
        return max(1, (1 << 20) / (4 * kk * p.width))
    }

    /// im2col of output rows `rows` of image `n` for "same" padding: col[(ci*k+ky)*k+kx, i] for
    /// i in 0..<rows.count*W.
    func im2colBand(_ p: Conv2dShape, x: UnsafePointer<Float>, image n: Int, rows: Range<Int>, col: UnsafeMutablePointer<Float>) {
        let (w, k, pad, cin) = (p.width, p.kernel, p.padding, p.inChannels)
        let plane = p.height * w, base = rows.lowerBound * w, len = rows.count * w
        for row in 0..<cin * k * k {
            let ci = row / (k * k), dy = (row / k) % k - pad, dx = row % k - pad
            let shift = dy * w + dx
            // Absolute output index i reads src[i + shift] when 0 <= i + shift < plane.
            let lo = min(len, max(0, -shift - base)), hi = max(lo, min(len, plane - shift - base))
            let src = x + (n * cin + ci) * plane + base + shift
            let dst = col + row * len
            if lo > 0 { dst.update(repeating: 0, count: lo) }
            if hi > lo { (dst + lo).update(from: src + lo, count: hi - lo) }
            if hi < len { (dst + hi).update(repeating: 0, count: len - hi) }
            if dx < 0 { for r in 0..<rows.count { for c in 0..<min(w, -dx) { dst[r * w + c] = 0 } } }
            if dx > 0 { for r in 0..<rows.count { for c in max(0, w - dx)..<w { dst[r * w + c] = 0 } } }
        }
    }

    /// 1x1 without padding: im2col of one image is the image itself ([Cin, P]), so no copy.
    static func isPointwise(_ p: Conv2dShape) -> Bool { p.kernel == 1 && p.padding == 0 }

    /// The column matrix of `images`: the input itself for a single pointwise image, else `col` filled by im2col.
    func columns(_ p: Conv2dShape, x: UnsafePointer<Float>, images: Range<Int>, col: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        if Self.isPointwise(p) && images.count == 1 { return x + images.lowerBound * p.inChannels * p.height * p.width }
        im2col(p, x: x, images: images, col: col)
        return UnsafePointer(col)
    }

    func split(_ count: Int, _ body: (_ worker: Int, _ range: Range<Int>) -> Void) {
        if convThreading == .splitBatch { Engine.splitWork(count, body) } else { body(0, 0..<count) }
    }

    /// Batch shards of the weight-gradient reduction: fixed, so results never depend on the
    /// thread count; 4 keeps up to 4 cores busy at a memory cost of 4 weight-sized slices.
    static let gradientShards = 4

    public func conv2dForward(_ p: Conv2dShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>) {
        precondition(p.isPlain, "OpenBLAS convolutions take NCHW activations (activationBlock 1), got \(p)")
        let kk = p.inChannels * p.kernel * p.kernel, plane = p.outHeight * p.outWidth, cout = p.outChannels
        let chunk = chunkImages(p)
        if let band = bandRows(p) {
            split(p.batch) { _, mine in
                let col = Scratch.buffer(.col, count: kk * band * p.width)
                for n in mine {
                    for r0 in stride(from: 0, to: p.height, by: band) {
                        let rows = r0..<min(p.height, r0 + band), cols = rows.count * p.width
                        im2colBand(p, x: x, image: n, rows: rows, col: col)
                        let dst = y + n * cout * plane + r0 * p.width
                        sgemm(transA: false, transB: false, m: cout, n: cols, k: kk, alpha: 1, a: weight, lda: kk,
                              b: col, ldb: cols, beta: 0, c: dst, ldc: plane)
                        if let bias { for c in 0..<cout { let b = bias[c], r = dst + c * plane; for i in 0..<cols { r[i] += b } } }
                    }
                }
            }
            return
        }
        split(p.batch) { _, mine in
            let col = Scratch.buffer(.col, count: kk * chunk * plane)
            let out = Scratch.buffer(.gemmOut, count: cout * chunk * plane)
            for n0 in stride(from: mine.lowerBound, to: mine.upperBound, by: chunk) {
                let images = n0..<min(mine.upperBound, n0 + chunk)
                let cols = columns(p, x: x, images: images, col: col)
                gemmToImages(m: cout, k: kk, plane: plane, a: weight, col: cols, images: images, scratch: out, y: y, bias: bias)
            }
        }
    }

    /// y[n, 0..<m, P] = A[m, k] * col[k, images*P] (+ bias), for the images of one chunk. A single
    /// image's product is already in NCHW order, so it is written in place; several images go
    /// through `scratch` and are reordered.
    func gemmToImages(m: Int, k: Int, plane: Int, a: UnsafePointer<Float>, col: UnsafePointer<Float>,
                      images: Range<Int>, scratch: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>,
                      bias: UnsafePointer<Float>?) {
        let np = images.count * plane
        if images.count == 1 {
            let dst = y + images.lowerBound * m * plane
            sgemm(transA: false, transB: false, m: m, n: np, k: k, alpha: 1, a: a, lda: k, b: col, ldb: np, beta: 0, c: dst, ldc: np)
            if let bias { for c in 0..<m { let b = bias[c], row = dst + c * plane; for i in 0..<plane { row[i] += b } } }
            return
        }
        sgemm(transA: false, transB: false, m: m, n: np, k: k, alpha: 1, a: a, lda: k, b: col, ldb: np, beta: 0, c: scratch, ldc: np)
        for j in 0..<images.count {
            for c in 0..<m {
                let b = bias?[c] ?? 0
                let src = scratch + c * np + j * plane, dst = y + ((images.lowerBound + j) * m + c) * plane
                for i in 0..<plane { dst[i] = src[i] + b }
            }
        }
    }

    /// Backward. dW += dy * col(x)^T per chunk. For dx, instead of scattering W^T dy back with
    /// col2im (a GEMM with the short inner dimension Cout, writing a Cin*k*k-row buffer), dx is
    /// computed as the "full" correlation of dy with the flipped, transposed kernel:
    /// dx[ci] = sum_co conv(dy[co], flip(W[co, ci])) with padding k-1-pad, i.e. a forward
    /// convolution (im2col + GEMM with inner dimension Cout*k*k) of dy.
    public func conv2dBackward(_ p: Conv2dShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                               dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?) {
        let (k, cin, cout) = (p.kernel, p.inChannels, p.outChannels)
        let kk = cin * k * k, plane = p.outHeight * p.outWidth
        precondition(p.isPlain, "OpenBLAS convolutions take NCHW activations (activationBlock 1), got \(p)")
        precondition(p.padding <= k - 1, "conv2dBackward: padding \(p.padding) > kernel - 1")
        // The transposed problem: input dy [N, Cout, Ho, Wo] -> output dx [N, Cin, H, W].
        let t = Conv2dShape(batch: p.batch, inChannels: cout, outChannels: cin, height: p.outHeight, width: p.outWidth,
                            kernel: k, padding: k - 1 - p.padding)
        let kkT = cout * k * k, planeIn = p.height * p.width
        let chunk = min(chunkImages(p), chunkImages(t))
        // Flipped, transposed kernel: wT[ci, (co*k + ky)*k + kx] = W[co, ci, k-1-ky, k-1-kx].
        let wT = UnsafeMutablePointer<Float>.allocate(capacity: cin * kkT)
        defer { wT.deallocate() }
        if dx != nil {
            for ci in 0..<cin { for co in 0..<cout { for ky in 0..<k { for kx in 0..<k {
                wT[ci * kkT + (co * k + ky) * k + kx] = weight[((co * cin + ci) * k + (k - 1 - ky)) * k + (k - 1 - kx)]
            } } } }
        }
        // The batch is cut into a fixed number of shards (independent of the thread count, so
        // gradients are bitwise the same for any `threads`); each shard accumulates its images'
        // weight and bias gradients into its own slice (cout*kk weight values, then cout bias
        // values), and workers take whole shards. The slices are summed in shard order below.
        let shards = min(p.batch, Self.gradientShards)
        let slice = cout * kk + cout
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: shards * slice)
        defer { partial.deallocate() }
        partial.update(repeating: 0, count: shards * slice)
        split(shards) { _, myShards in
          for shard in myShards {
            let mine = p.batch * shard / shards ..< p.batch * (shard + 1) / shards
            let col = Scratch.buffer(.col, count: max(kk * plane, kkT * planeIn) * chunk)
            let buf = Scratch.buffer(.gemmOut, count: max(cout * plane, cin * planeIn) * chunk)
            let dW = partial + shard * slice, dB = dW + cout * kk
            if dBias != nil {
                for n in mine { for c in 0..<cout {
                    let row = dy + (n * cout + c) * plane
                    var s: Float = 0
                    for i in 0..<plane { s += row[i] }
                    dB[c] += s
                } }
            }
            if let band = bandRows(p), let bandT = bandRows(t) {
                // Large images: horizontal bands (dy's rows are the same band for dW, dx's for dx).
                for n in mine {
                    for r0 in stride(from: 0, to: p.height, by: band) {
                        let rows = r0..<min(p.height, r0 + band), cols = rows.count * p.width
                        im2colBand(p, x: x, image: n, rows: rows, col: col)
                        sgemm(transA: false, transB: true, m: cout, n: kk, k: cols, alpha: 1,
                              a: dy + n * cout * plane + r0 * p.width, lda: plane, b: col, ldb: cols, beta: 1, c: dW, ldc: kk)
                    }
                    guard let dx else { continue }
                    for r0 in stride(from: 0, to: p.height, by: bandT) {
                        let rows = r0..<min(p.height, r0 + bandT), cols = rows.count * p.width
                        im2colBand(t, x: dy, image: n, rows: rows, col: col)
                        sgemm(transA: false, transB: false, m: cin, n: cols, k: kkT, alpha: 1, a: wT, lda: kkT,
                              b: col, ldb: cols, beta: 0, c: dx + n * cin * planeIn + r0 * p.width, ldc: planeIn)
                    }
                }
                continue
            }
            for n0 in stride(from: mine.lowerBound, to: mine.upperBound, by: chunk) {
                let images = n0..<min(mine.upperBound, n0 + chunk)
                let np = images.count * plane
                // dyT [Cout, n*P]: a single image's dy already has this layout.
                var dyT = UnsafePointer(dy + n0 * cout * plane)
                if images.count > 1 {
                    for j in 0..<images.count {
                        for c in 0..<cout {
                            (buf + c * np + j * plane).update(from: dy + ((n0 + j) * cout + c) * plane, count: plane)
                        }
                    }
                    dyT = UnsafePointer(buf)
                }
                // Recompute the columns instead of caching them: memory stays O(input) per layer.
                let cols = columns(p, x: x, images: images, col: col)
                sgemm(transA: false, transB: true, m: cout, n: kk, k: np, alpha: 1,
                      a: dyT, lda: np, b: cols, ldb: np, beta: 1, c: dW, ldc: kk)
                guard let dx else { continue }
                let colsT = columns(t, x: dy, images: images, col: col)
                gemmToImages(m: cin, k: kkT, plane: planeIn, a: wT, col: colsT, images: images, scratch: buf, y: dx, bias: nil)
            }
          }
        }
        let total = cout * kk
        Engine.parallelFor(total, costPerItem: shards) { r in
            for i in r {
                var s = dWeight[i]
                for w in 0..<shards { s += partial[w * slice + i] }
                dWeight[i] = s
            }
        }
        if let dBias {
            for c in 0..<cout { for w in 0..<shards { dBias[c] += partial[w * slice + total + c] } }
        }
    }

    /// col[(ci*k + ky)*k + kx, j*P + oy*Wo + ox] = x[n0 + j, ci, oy + ky - pad, ox + kx - pad] (0 outside),
    /// for the images n0 + j in `images`.
    func im2col(_ p: Conv2dShape, x: UnsafePointer<Float>, images: Range<Int>, col: UnsafeMutablePointer<Float>) {
        let (h, w, k, pad) = (p.height, p.width, p.kernel, p.padding)
        let (ho, wo) = (p.outHeight, p.outWidth)
        let plane = ho * wo, np = images.count * plane, cin = p.inChannels
        if ho == h && wo == w {
            // "Same" padding: each column row is the input plane shifted by (ky-pad)*W + (kx-pad),
            // i.e. one contiguous copy, then the columns that wrapped around a row edge are zeroed.
            for row in 0..<cin * k * k {
                let ci = row / (k * k), dy = (row / k) % k - pad, dx = row % k - pad
                let shift = dy * w + dx
                let lo = min(plane, max(0, -shift)), hi = max(lo, min(plane, plane - shift))
                for (j, n) in images.enumerated() {
                    let src = x + (n * cin + ci) * plane
                    let dst = col + row * np + j * plane
                    if lo > 0 { dst.update(repeating: 0, count: lo) }
                    if hi > lo { (dst + lo).update(from: src + lo + shift, count: hi - lo) }
                    if hi < plane { (dst + hi).update(repeating: 0, count: plane - hi) }
                    if dx < 0 { for oy in 0..<h { for c in 0..<min(w, -dx) { dst[oy * w + c] = 0 } } }
                    if dx > 0 { for oy in 0..<h { for c in max(0, w - dx)..<w { dst[oy * w + c] = 0 } } }
                }
            }
            return
        }
        for row in 0..<cin * k * k {
            do {
                let ci = row / (k * k), ky = (row / k) % k, kx = row % k
                // Valid ox range: 0 <= ox + kx - pad < w.
                let lo = min(wo, max(0, pad - kx)), hi = max(lo, min(wo, w + pad - kx))
                for (j, n) in images.enumerated() {
                    let src = x + (n * cin + ci) * h * w
                    let dst = col + row * np + j * plane
                    for oy in 0..<ho {
                        let iy = oy + ky - pad
                        let d = dst + oy * wo
                        if iy < 0 || iy >= h { d.update(repeating: 0, count: wo); continue }
                        let s = src + iy * w + kx - pad
                        for ox in 0..<lo { d[ox] = 0 }
                        for ox in lo..<hi { d[ox] = s[ox] }
                        for ox in hi..<wo { d[ox] = 0 }
                    }
                }
            }
        }
    }

    // MARK: group norm

    public func groupNormForward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                 beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                 mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        if p.block > 1 { return GroupNormKernels.blockedForward(p, x: x, gamma: gamma, beta: beta, y: y, mean: mean, rstd: rstd) }
        let len = p.channels / p.groups * p.spatial
        Engine.parallelFor(p.batch * p.groups, costPerItem: len * 3) { r in
            GroupNormKernels.statistics(x, length: len, eps: p.eps, range: r, mean: mean, rstd: rstd)
            GroupNormKernels.normalize(p, x: x, gamma: gamma, beta: beta, mean: mean, rstd: rstd, y: y, range: r)
        }
    }

    public func groupNormBackward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                  mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                  dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>,
                                  dBeta: UnsafeMutablePointer<Float>) {
        if p.block > 1 {
            return GroupNormKernels.blockedBackward(p, x: x, gamma: gamma, mean: mean, rstd: rstd, dy: dy, dx: dx,
                                                    dGamma: dGamma, dBeta: dBeta)
        }
        let cpg = p.channels / p.groups, c = p.channels
        // Per (n, channel) sums of dy and dy * xhat: used both for dGamma/dBeta and for dx.
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: 2 * p.batch * c)
        defer { sums.deallocate() }
        func group(_ nc: Int) -> Int { (nc / c) * p.groups + (nc % c) / cpg }
        Engine.parallelFor(p.batch * c, costPerItem: p.spatial * 2) { r in
            GroupNormKernels.channelSums(x: x, dy: dy, length: p.spatial, range: r, centre: { mean[group($0)] }, sums: sums)
            for nc in r { sums[2 * nc + 1] *= rstd[group(nc)] }
        }
        GroupNormKernels.backward(fromSums: sums, p, x: x, gamma: gamma, mean: mean, rstd: rstd, dy: dy, dx: dx,
                                  dGamma: dGamma, dBeta: dBeta)
    }
}
