import COpenBLAS

/// The OpenBLAS backend: convolution as im2col + one large sgemm per layer call
/// (the whole batch at once, so BLAS sees big, well-shaped products), GroupNorm as
/// vectorisable loops split over `Engine.parallelFor`.
public struct BLASBackend: ComputeBackend {
    public init() {}
    public var name: String { "openblas" }

    public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    // MARK: convolution

    public func conv2dForward(_ p: Conv2dShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>) {
        let kk = p.inChannels * p.kernel * p.kernel, np = p.batch * p.outHeight * p.outWidth
        let col = Scratch.buffer(.col, count: kk * np)
        im2col(p, x: x, col: col)
        let out = Scratch.buffer(.gemmOut, count: p.outChannels * np)
        sgemm(transA: false, transB: false, m: p.outChannels, n: np, k: kk, alpha: 1,
              a: weight, lda: kk, b: col, ldb: np, beta: 0, c: out, ldc: np)
        // [Cout, N*P] -> [N, Cout, P], adding the bias on the way.
        let plane = p.outHeight * p.outWidth, cout = p.outChannels
        Engine.parallelFor(p.batch * cout, costPerItem: plane) { r in
            for nc in r {
                let n = nc / cout, c = nc % cout
                let b = bias?[c] ?? 0
                let src = out + c * np + n * plane, dst = y + nc * plane
                for i in 0..<plane { dst[i] = src[i] + b }
            }
        }
    }

    public func conv2dBackward(_ p: Conv2dShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                               dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?) {
        let kk = p.inChannels * p.kernel * p.kernel, np = p.batch * p.outHeight * p.outWidth
        let plane = p.outHeight * p.outWidth, cout = p.outChannels
        // dy [N, Cout, P] -> dyT [Cout, N*P]
        let dyT = Scratch.buffer(.gemmOut, count: cout * np)
        Engine.parallelFor(p.batch * cout, costPerItem: plane) { r in
            for nc in r {
                let n = nc / cout, c = nc % cout
                (dyT + c * np + n * plane).update(from: dy + nc * plane, count: plane)
            }
        }
        if let dBias {
            for c in 0..<cout {
                var s: Float = 0
                let row = dyT + c * np
                for i in 0..<np { s += row[i] }
                dBias[c] += s
            }
        }
        // Recompute the columns instead of caching them: memory stays O(input) per layer.
        let col = Scratch.buffer(.col, count: kk * np)
        im2col(p, x: x, col: col)
        sgemm(transA: false, transB: true, m: cout, n: kk, k: np, alpha: 1,
              a: dyT, lda: np, b: col, ldb: np, beta: 1, c: dWeight, ldc: kk)
        guard let dx else { return }
        // dcol = W^T dyT, then scatter-add back to the image (reusing the column buffer).
        sgemm(transA: true, transB: false, m: kk, n: np, k: cout, alpha: 1,
              a: weight, lda: kk, b: dyT, ldb: np, beta: 0, c: col, ldc: np)
        col2im(p, col: col, dx: dx)
    }

    /// col[(ci*k + ky)*k + kx, n*P + oy*Wo + ox] = x[n, ci, oy + ky - pad, ox + kx - pad] (0 outside).
    func im2col(_ p: Conv2dShape, x: UnsafePointer<Float>, col: UnsafeMutablePointer<Float>) {
        let (h, w, k, pad) = (p.height, p.width, p.kernel, p.padding)
        let (ho, wo) = (p.outHeight, p.outWidth)
        let plane = ho * wo, np = p.batch * plane, cin = p.inChannels
        Engine.parallelFor(cin * k * k, costPerItem: np) { r in
            for row in r {
                let ci = row / (k * k), ky = (row / k) % k, kx = row % k
                for n in 0..<p.batch {
                    let src = x + (n * cin + ci) * h * w
                    let dst = col + row * np + n * plane
                    for oy in 0..<ho {
                        let iy = oy + ky - pad
                        let d = dst + oy * wo
                        if iy < 0 || iy >= h { d.update(repeating: 0, count: wo); continue }
                        let s = src + iy * w
                        // Valid ox range: 0 <= ox + kx - pad < w.
                        let lo = min(wo, max(0, pad - kx)), hi = min(wo, w + pad - kx)
                        if lo > 0 { d.update(repeating: 0, count: lo) }
                        if hi > lo { (d + lo).update(from: s + lo + kx - pad, count: hi - lo) }
                        if hi < wo { (d + max(hi, lo)).update(repeating: 0, count: wo - max(hi, lo)) }
                    }
                }
            }
        }
    }

    /// The adjoint of `im2col`: dx[n, ci, iy, ix] = sum of the col entries that read it.
    func col2im(_ p: Conv2dShape, col: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>) {
        let (h, w, k, pad) = (p.height, p.width, p.kernel, p.padding)
        let (ho, wo) = (p.outHeight, p.outWidth)
        let plane = ho * wo, np = p.batch * plane, cin = p.inChannels
        // Parallel over (n, ci) planes: each dx plane is written by exactly one worker.
        Engine.parallelFor(p.batch * cin, costPerItem: k * k * plane) { r in
            for nci in r {
                let n = nci / cin, ci = nci % cin
                let d = dx + nci * h * w
                d.update(repeating: 0, count: h * w)
                for ky in 0..<k {
                    for kx in 0..<k {
                        let src = col + ((ci * k + ky) * k + kx) * np + n * plane
                        let lo = max(0, pad - kx), hi = min(wo, w + pad - kx)
                        if hi <= lo { continue }
                        for oy in 0..<ho {
                            let iy = oy + ky - pad
                            if iy < 0 || iy >= h { continue }
                            let s = src + oy * wo, dd = d + iy * w + kx - pad
                            for ox in lo..<hi { dd[ox] += s[ox] }
                        }
                    }
                }
            }
        }
    }

    // MARK: group norm

    public func groupNormForward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                 beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                 mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        let cpg = p.channels / p.groups, len = cpg * p.spatial
        Engine.parallelFor(p.batch * p.groups, costPerItem: len * 3) { r in
            for ng in r {
                let base = ng * len
                let xs = x + base
                // Two-pass mean/variance in Double for accuracy on large groups.
                var s: Double = 0
                for i in 0..<len { s += Double(xs[i]) }
                let m = s / Double(len)
                var v: Double = 0
                for i in 0..<len { let d = Double(xs[i]) - m; v += d * d }
                let rs = Float(1.0 / (v / Double(len) + Double(p.eps)).squareRoot())
                let mf = Float(m)
                mean[ng] = mf; rstd[ng] = rs
                let g0 = (ng % p.groups) * cpg
                for c in 0..<cpg {
                    let a = rs * gamma[g0 + c], b = beta[g0 + c] - mf * a
                    let xc = xs + c * p.spatial, yc = y + base + c * p.spatial
                    for i in 0..<p.spatial { yc[i] = xc[i] * a + b }
                }
            }
        }
    }

    public func groupNormBackward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                  mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                  dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>,
                                  dBeta: UnsafeMutablePointer<Float>) {
        let cpg = p.channels / p.groups, len = cpg * p.spatial, c = p.channels
        // Per (n, channel) sums of dy and dy * xhat: used both for dGamma/dBeta and for dx.
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: 2 * p.batch * c)
        defer { sums.deallocate() }
        Engine.parallelFor(p.batch * c, costPerItem: p.spatial * 2) { r in
            for nc in r {
                let ng = (nc / c) * p.groups + (nc % c) / cpg
                let m = mean[ng], rs = rstd[ng]
                let xs = x + nc * p.spatial, ds = dy + nc * p.spatial
                var sdy: Float = 0, sdyx: Float = 0
                for i in 0..<p.spatial { sdy += ds[i]; sdyx += ds[i] * (xs[i] - m) }
                sums[2 * nc] = sdy; sums[2 * nc + 1] = sdyx * rs
            }
        }
        for n in 0..<p.batch {
            for ch in 0..<c { dBeta[ch] += sums[2 * (n * c + ch)]; dGamma[ch] += sums[2 * (n * c + ch) + 1] }
        }
        // dx = rstd * (g*dy - mean(g*dy) - xhat * mean(g*dy*xhat)) over the group.
        Engine.parallelFor(p.batch * p.groups, costPerItem: len * 2) { r in
            for ng in r {
                let n = ng / p.groups, g0 = (ng % p.groups) * cpg
                var a: Float = 0, b: Float = 0
                for cc in 0..<cpg {
                    let ch = g0 + cc
                    a += gamma[ch] * sums[2 * (n * c + ch)]
                    b += gamma[ch] * sums[2 * (n * c + ch) + 1]
                }
                a /= Float(len); b /= Float(len)
                let m = mean[ng], rs = rstd[ng]
                for cc in 0..<cpg {
                    let ch = g0 + cc, off = (n * c + ch) * p.spatial
                    let xs = x + off, ds = dy + off, out = dx + off
                    let g = gamma[ch]
                    for i in 0..<p.spatial {
                        let xh = (xs[i] - m) * rs
                        out[i] = rs * (g * ds[i] - a - xh * b)
                    }
                }
            }
        }
    }
}
