/// GroupNorm's reductions, several independent sums at a time.
///
/// A sum of one group (or one channel) is a chain of dependent additions: a scalar loop runs
/// at one addition per FP-add latency and the compiler may not reorder it. Summing `lanes`
/// neighbouring groups in the lanes of one SIMD vector keeps each group's own order — lane k is
/// exactly the scalar loop over group k — so the results are bit-identical to one group at a
/// time, while the CPU overlaps the chains. Groups (and channels) of an NCHW tensor are
/// contiguous and `length` apart, which is what makes the lanes cheap to fill.
public enum GroupNormKernels {
    /// Mean and 1/sqrt(var + eps) of the groups `range` (each `length` floats, group k at
    /// x + k * length): two passes in Double, as `reference(...)` writes out for one group.
    public static func statistics(_ x: UnsafePointer<Float>, length: Int, eps: Float, range: Range<Int>,
                           mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        var k = range.lowerBound
        while k + 4 <= range.upperBound {
            let p = (x + k * length, x + (k + 1) * length, x + (k + 2) * length, x + (k + 3) * length)
            var s = SIMD4<Double>.zero
            for i in 0..<length { s += SIMD4(Double(p.0[i]), Double(p.1[i]), Double(p.2[i]), Double(p.3[i])) }
            let m = s / Double(length)
            var v = SIMD4<Double>.zero
            for i in 0..<length {
                let d = SIMD4(Double(p.0[i]), Double(p.1[i]), Double(p.2[i]), Double(p.3[i])) - m
                v += d * d
            }
            let rs = 1.0 / (v / Double(length) + Double(eps)).squareRoot()
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
        while k + 8 <= range.upperBound {
            var m = SIMD8<Float>.zero
            for lane in 0..<8 { m[lane] = centre(k + lane) }
            let xs = x + k * length, ds = dy + k * length
            var sdy = SIMD8<Float>.zero, sdyx = SIMD8<Float>.zero
            for i in 0..<length {
                var xv = SIMD8<Float>.zero, dv = SIMD8<Float>.zero
                for lane in 0..<8 { xv[lane] = xs[lane * length + i]; dv[lane] = ds[lane * length + i] }
                sdy += dv
                sdyx += dv * (xv - m)
            }
            for lane in 0..<8 { sums[2 * (k + lane)] = sdy[lane]; sums[2 * (k + lane) + 1] = sdyx[lane] }
            k += 8
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
}
