/// GroupNorm's reductions, four independent sums at a time.
///
/// A sum of one group (or one channel) is a chain of dependent additions: a scalar loop waits
/// one FP-add latency per element, and the compiler may not reorder it. Summing four
/// neighbouring groups in one loop, each into its own accumulator, keeps every group's own
/// order, so the results are bit-identical to one group at a time (`oneGroupAtATimeForward`,
/// checked by the tests and by `pdpipe-bench norm-ab`), while the CPU overlaps the four chains.
/// (Four SIMD lanes filled element by element measured slower: the inserts cost more than
/// the scalar adds.) Groups and channels of an NCHW tensor are contiguous, `length` apart.
public enum GroupNormKernels {
    /// Mean and 1/sqrt(var + eps) of the groups `range` (each `length` floats, group k at
    /// x + k * length): two passes in Double, as `reference(...)` writes out for one group.
    public static func statistics(_ x: UnsafePointer<Float>, length: Int, eps: Float, range: Range<Int>,
                                  mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        var k = range.lowerBound
        while k + 4 <= range.upperBound {
            let (p0, p1, p2, p3) = (x + k * length, x + (k + 1) * length, x + (k + 2) * length, x + (k + 3) * length)
            var (s0, s1, s2, s3) = (0.0, 0.0, 0.0, 0.0)
            for i in 0..<length { s0 += Double(p0[i]); s1 += Double(p1[i]); s2 += Double(p2[i]); s3 += Double(p3[i]) }
            let m = SIMD4(s0, s1, s2, s3) / Double(length)
            var (v0, v1, v2, v3) = (0.0, 0.0, 0.0, 0.0)
            for i in 0..<length {
                let (e0, e1, e2, e3) = (Double(p0[i]) - m[0], Double(p1[i]) - m[1], Double(p2[i]) - m[2], Double(p3[i]) - m[3])
                v0 += e0 * e0; v1 += e1 * e1; v2 += e2 * e2; v3 += e3 * e3
            }
            let rs = 1.0 / (SIMD4(v0, v1, v2, v3) / Double(length) + Double(eps)).squareRoot()
            for lane in 0..<4 { mean[k + lane] = Float(m[lane]); rstd[k + lane] = Float(rs[lane]) }
            k += 4
        }
        for g in k..<range.upperBound {
            (mean[g], rstd[g]) = reference(x + g * length, length: length, eps: eps)
        }
    }

    /// One group's mean and 1/sqrt(var + eps), two-pass in Double for accuracy on large groups.
    public static func reference(_ xs: UnsafePointer<Float>, length: Int, eps: Float) -> (mean: Float, rstd: Float) {
        var s: Double = 0
        for i in 0..<length { s += Double(xs[i]) }
        let m = s / Double(length)
        var v: Double = 0
        for i in 0..<length { let d = Double(xs[i]) - m; v += d * d }
        return (Float(m), Float(1.0 / (v / Double(length) + Double(eps)).squareRoot()))
    }

    /// For the channels `range` (each `length` floats, channel k at x + k * length, its group's
    /// mean at `centre(k)`): sums[2k] = sum(dy), sums[2k + 1] = sum(dy * (x - mean)), each in
    /// the order of `channelSumsReference`.
    public static func channelSums(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, length: Int, range: Range<Int>,
                                   centre: (Int) -> Float, sums: UnsafeMutablePointer<Float>) {
        var k = range.lowerBound
        while k + 4 <= range.upperBound {
            let (x0, x1, x2, x3) = (x + k * length, x + (k + 1) * length, x + (k + 2) * length, x + (k + 3) * length)
            let (d0, d1, d2, d3) = (dy + k * length, dy + (k + 1) * length, dy + (k + 2) * length, dy + (k + 3) * length)
            let (m0, m1, m2, m3) = (centre(k), centre(k + 1), centre(k + 2), centre(k + 3))
            var (a0, a1, a2, a3): (Float, Float, Float, Float) = (0, 0, 0, 0)
            var (b0, b1, b2, b3): (Float, Float, Float, Float) = (0, 0, 0, 0)
            for i in 0..<length {
                a0 += d0[i]; b0 += d0[i] * (x0[i] - m0)
                a1 += d1[i]; b1 += d1[i] * (x1[i] - m1)
                a2 += d2[i]; b2 += d2[i] * (x2[i] - m2)
                a3 += d3[i]; b3 += d3[i] * (x3[i] - m3)
            }
            (sums[2 * k], sums[2 * k + 1], sums[2 * k + 2], sums[2 * k + 3]) = (a0, b0, a1, b1)
            (sums[2 * k + 4], sums[2 * k + 5], sums[2 * k + 6], sums[2 * k + 7]) = (a2, b2, a3, b3)
            k += 4
        }
        for c in k..<range.upperBound {
            let s = channelSumsReference(x: x + c * length, dy: dy + c * length, length: length, centre: centre(c))
            sums[2 * c] = s.dy; sums[2 * c + 1] = s.dyx
        }
    }

    /// One channel's sum(dy) and sum(dy * (x - centre)), sequentially in Float.
    public static func channelSumsReference(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, length: Int,
                                            centre: Float) -> (dy: Float, dyx: Float) {
        var sdy: Float = 0, sdyx: Float = 0
        for i in 0..<length { sdy += dy[i]; sdyx += dy[i] * (x[i] - centre) }
        return (sdy, sdyx)
    }

    /// The forward's second pass for the groups `range` (image n, group g at n * groups + g):
    /// y = (x - mean) * rstd * gamma + beta, per channel as y = x * a + b.
    public static func normalize(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                 beta: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                 y: UnsafeMutablePointer<Float>, range: Range<Int>) {
        let cpg = p.channels / p.groups, len = cpg * p.spatial
        for ng in range {
            let base = ng * len, g0 = (ng % p.groups) * cpg
            for c in 0..<cpg {
                let a = rstd[ng] * gamma[g0 + c], b = beta[g0 + c] - mean[ng] * a
                let xc = x + base + c * p.spatial, yc = y + base + c * p.spatial
                for i in 0..<p.spatial { yc[i] = xc[i] * a + b }
            }
        }
    }

    /// The backward from the per-(image, channel) sums (sums[2 nc] = sum(dy), sums[2 nc + 1] =
    /// sum(dy * xhat)): dBeta and dGamma accumulate them over the batch, and
    /// dx = rstd * (g*dy - mean(g*dy) - xhat * mean(g*dy*xhat)) over each group.
    public static func backward(fromSums sums: UnsafePointer<Float>, _ p: GroupNormShape, x: UnsafePointer<Float>,
                                gamma: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>) {
        let cpg = p.channels / p.groups, len = cpg * p.spatial, c = p.channels
        for n in 0..<p.batch {
            for ch in 0..<c { dBeta[ch] += sums[2 * (n * c + ch)]; dGamma[ch] += sums[2 * (n * c + ch) + 1] }
        }
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

    /// The forward with one group at a time (`reference`): the engine's forward before the
    /// interleaved kernels, kept as the baseline of tests and `pdpipe-bench norm-ab`.
    public static func oneGroupAtATimeForward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                              beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                              mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        let len = p.channels / p.groups * p.spatial
        Engine.parallelFor(p.batch * p.groups, costPerItem: len * 3) { r in
            for ng in r { (mean[ng], rstd[ng]) = reference(x + ng * len, length: len, eps: p.eps) }
            normalize(p, x: x, gamma: gamma, beta: beta, mean: mean, rstd: rstd, y: y, range: r)
        }
    }

    /// The backward with one channel at a time (`channelSumsReference`), likewise.
    public static func oneChannelAtATimeBackward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                                 mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                                 dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>,
                                                 dBeta: UnsafeMutablePointer<Float>) {
        let cpg = p.channels / p.groups, c = p.channels
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: 2 * p.batch * c)
        defer { sums.deallocate() }
        Engine.parallelFor(p.batch * c, costPerItem: p.spatial * 2) { r in
            for nc in r {
                let ng = (nc / c) * p.groups + (nc % c) / cpg
                let s = channelSumsReference(x: x + nc * p.spatial, dy: dy + nc * p.spatial, length: p.spatial, centre: mean[ng])
                sums[2 * nc] = s.dy; sums[2 * nc + 1] = s.dyx * rstd[ng]
            }
        }
        backward(fromSums: sums, p, x: x, gamma: gamma, mean: mean, rstd: rstd, dy: dy, dx: dx, dGamma: dGamma, dBeta: dBeta)
    }
}
