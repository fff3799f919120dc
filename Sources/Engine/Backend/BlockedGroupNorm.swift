import CEngineSupport

/// GroupNorm on activations in channel blocks of b (`Tensor.blocked(_:)`, b a multiple of 8),
/// written out in Swift as the reference the C kernels reproduce bit for bit:
/// element (n, c, i) at x[n][c / b][i][c % b]. Each pass walks a block's pixels eight channels
/// at a time (one SIMD vector per pixel), then combines the channels of each group:
///
///     mean_g = sum_{c in g, i} x / (|g| S),   var_g = sum_{c in g, i} x^2 / (|g| S) - mean_g^2
///     y  = (x - mean_g) * rstd_g * gamma_c + beta_c
///     dx = rstd_g * (gamma_c dy - mean_g(gamma dy) - xhat * mean_g(gamma dy xhat))
///
/// Statistics in Double, in one pass (var = E[x^2] - mean^2: Double's 53 bits leave far more
/// than Float's 24 even when the mean is 1000x the spread), two pixels per step so two chains of
/// additions overlap; gradient sums in Float, as the NCHW kernels. The order of the additions
/// differs from theirs (per channel first, then per group). Images are split across threads.
extension GroupNormKernels {
    /// The kernels the backends call: the reference's arithmetic in C, compiled for AVX-512, AVX2
    /// and baseline and picked at load time (Sources/CEngineSupport/groupnorm_blocked.c), since
    /// Swift's SIMD types compile to baseline SSE2 in a portable binary. Same bits as the
    /// reference (tests).
    public static func blockedForward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                      beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                      mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        let (b, s, c) = (p.block, p.spatial, p.channels)
        precondition(b % 8 == 0 && b <= 64 && c % b == 0, "GroupNorm: \(c) channels in blocks of \(b)")
        Engine.parallelFor(p.batch, costPerItem: 2 * c * s) { images in
            let scratch = UnsafeMutablePointer<Double>.allocate(capacity: 2 * c)
            defer { scratch.deallocate() }
            pd_groupnorm_blocked_forward(images.lowerBound, images.upperBound, b, c, s, p.groups, p.eps, x, gamma, beta, y,
                                         mean, rstd, scratch)
        }
    }

    public static func blockedBackward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                       mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                       dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>,
                                       dBeta: UnsafeMutablePointer<Float>) {
        let (b, s, c) = (p.block, p.spatial, p.channels)
        precondition(b % 8 == 0 && b <= 64 && c % b == 0 && p.groups <= 256, "GroupNorm: \(c) channels in blocks of \(b), \(p.groups) groups")
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: 2 * p.batch * c)
        defer { sums.deallocate() }
        Engine.parallelFor(p.batch, costPerItem: 4 * c * s) { images in
            _ = pd_groupnorm_blocked_backward(images.lowerBound, images.upperBound, b, c, s, p.groups, x, gamma, mean, rstd, dy, dx, sums)
        }
        for n in 0..<p.batch {
            for ch in 0..<c { dBeta[ch] += sums[2 * (n * c + ch)]; dGamma[ch] += sums[2 * (n * c + ch) + 1] }
        }
    }

    /// GroupNorm then SiLU on blocks in one pass (y = z sigmoid(z), z as `blockedForward` computes
    /// it; the sigmoid's exponential a polynomial to ~2 ulp): one read of x and one write of y
    /// where the two layers read and write twice.
    public static func blockedSiLUForward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                          beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                          mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        let (b, s, c) = (p.block, p.spatial, p.channels)
        precondition(b % 8 == 0 && b <= 64 && c % b == 0, "GroupNorm: \(c) channels in blocks of \(b)")
        Engine.parallelFor(p.batch, costPerItem: 4 * c * s) { images in
            let scratch = UnsafeMutablePointer<Double>.allocate(capacity: 2 * c)
            defer { scratch.deallocate() }
            pd_groupnorm_silu_blocked_forward(images.lowerBound, images.upperBound, b, c, s, p.groups, p.eps, x, gamma, beta, y,
                                              mean, rstd, scratch)
        }
    }

    /// Its backward: z recomputed from x, dz = dy s (1 + z (1 - s)), then GroupNorm's backward.
    public static func blockedSiLUBackward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                           beta: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                           dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                           dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>) {
        let (b, s, c) = (p.block, p.spatial, p.channels)
        precondition(b % 8 == 0 && b <= 64 && c % b == 0 && p.groups <= 256, "GroupNorm: \(c) channels in blocks of \(b), \(p.groups) groups")
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: 2 * p.batch * c)
        defer { sums.deallocate() }
        Engine.parallelFor(p.batch, costPerItem: 6 * c * s) { images in
            _ = pd_groupnorm_silu_blocked_backward(images.lowerBound, images.upperBound, b, c, s, p.groups, x, gamma, beta,
                                                   mean, rstd, dy, dx, sums)
        }
        for n in 0..<p.batch {
            for ch in 0..<c { dBeta[ch] += sums[2 * (n * c + ch)]; dGamma[ch] += sums[2 * (n * c + ch) + 1] }
        }
    }

    typealias Lanes = SIMD8<Float>

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> Lanes { UnsafeRawPointer(p).loadUnaligned(as: Lanes.self) }
    @inline(__always) static func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self)
    }
    @inline(__always) static func widened(_ v: Lanes) -> SIMD8<Double> {
        SIMD8(Double(v[0]), Double(v[1]), Double(v[2]), Double(v[3]), Double(v[4]), Double(v[5]), Double(v[6]), Double(v[7]))
    }

    public static func blockedForwardReference(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                      beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                      mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        let (b, s, c, groups) = (p.block, p.spatial, p.channels, p.groups)
        let cpg = c / groups, count = Double(cpg * s)
        precondition(b % 8 == 0 && c % b == 0, "GroupNorm: \(c) channels in blocks of \(b)")
        Engine.parallelFor(p.batch, costPerItem: 2 * c * s) { images in
            var sums = [Double](repeating: 0, count: c), squares = sums
            for n in images {
                let xn = x + n * c * s, yn = y + n * c * s
                // Channels first ..< first + 8 lie side by side in one block; a pixel is b floats on.
                for first in stride(from: 0, to: c, by: 8) {
                    let xs = xn + (first - first % b) * s + first % b
                    var (s0, s1, q0, q1) = (SIMD8<Double>(), SIMD8<Double>(), SIMD8<Double>(), SIMD8<Double>())
                    var i = 0
                    while i + 2 <= s {
                        let (u, v) = (widened(load(xs + i * b)), widened(load(xs + (i + 1) * b)))
                        s0 += u; q0 += u * u; s1 += v; q1 += v * v
                        i += 2
                    }
                    if i < s { let u = widened(load(xs + i * b)); s0 += u; q0 += u * u }
                    let (sum, square) = (s0 + s1, q0 + q1)
                    for l in 0..<8 { (sums[first + l], squares[first + l]) = (sum[l], square[l]) }
                }
                for g in 0..<groups {
                    var (sum, square) = (0.0, 0.0)
                    for ch in g * cpg ..< (g + 1) * cpg { sum += sums[ch]; square += squares[ch] }
                    let m = sum / count, variance = max(0, square / count - m * m)
                    mean[n * groups + g] = Float(m)
                    rstd[n * groups + g] = Float(1.0 / (variance + Double(p.eps)).squareRoot())
                }
                for first in stride(from: 0, to: c, by: 8) {
                    let offset = (first - first % b) * s + first % b
                    var scale = Lanes(), shift = Lanes()
                    for l in 0..<8 {
                        let ch = first + l, ng = n * groups + ch / cpg
                        scale[l] = rstd[ng] * gamma[ch]
                        shift[l] = beta[ch] - mean[ng] * scale[l]
                    }
                    let (xs, ys) = (xn + offset, yn + offset)
                    for i in 0..<s { store(load(xs + i * b) * scale + shift, ys + i * b) }
                }
            }
        }
    }

    public static func blockedBackwardReference(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                       mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                       dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>,
                                       dBeta: UnsafeMutablePointer<Float>) {
        let (b, s, c, groups) = (p.block, p.spatial, p.channels, p.groups)
        let cpg = c / groups, count = Float(cpg * s)
        precondition(b % 8 == 0 && c % b == 0, "GroupNorm: \(c) channels in blocks of \(b)")
        // Per (image, channel): sum(dy) and sum(dy * xhat), for dGamma/dBeta and for dx.
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: 2 * p.batch * c)
        defer { sums.deallocate() }
        Engine.parallelFor(p.batch, costPerItem: 4 * c * s) { images in
            var meanGammaDy = [Float](repeating: 0, count: groups), meanGammaDyXhat = meanGammaDy
            for n in images {
                let (xn, dyn, dxn) = (x + n * c * s, dy + n * c * s, dx + n * c * s)
                for first in stride(from: 0, to: c, by: 8) {
                    let offset = (first - first % b) * s + first % b
                    let (xs, ds) = (xn + offset, dyn + offset)
                    var centre = Lanes(), sumDy = Lanes(), sumDyX = Lanes()
                    for l in 0..<8 { centre[l] = mean[n * groups + (first + l) / cpg] }
                    for i in 0..<s {
                        let d = load(ds + i * b)
                        sumDy += d
                        sumDyX += d * (load(xs + i * b) - centre)
                    }
                    for l in 0..<8 {
                        let ch = first + l
                        sums[2 * (n * c + ch)] = sumDy[l]
                        sums[2 * (n * c + ch) + 1] = sumDyX[l] * rstd[n * groups + ch / cpg]
                    }
                }
                for g in 0..<groups {
                    var (sa, sb): (Float, Float) = (0, 0)
                    for ch in g * cpg ..< (g + 1) * cpg { sa += gamma[ch] * sums[2 * (n * c + ch)]; sb += gamma[ch] * sums[2 * (n * c + ch) + 1] }
                    (meanGammaDy[g], meanGammaDyXhat[g]) = (sa / count, sb / count)
                }
                // dx = rs (gamma dy - mean(gamma dy) - (x - m) rs mean(gamma dy xhat)), as per-lane coefficients.
                for first in stride(from: 0, to: c, by: 8) {
                    let offset = (first - first % b) * s + first % b
                    let (xs, ds, out) = (xn + offset, dyn + offset, dxn + offset)
                    var centre = Lanes(), dyScale = Lanes(), xScale = Lanes(), shift = Lanes()
                    for l in 0..<8 {
                        let ch = first + l, g = ch / cpg, rs = rstd[n * groups + g]
                        centre[l] = mean[n * groups + g]
                        dyScale[l] = rs * gamma[ch]
                        xScale[l] = -rs * rs * meanGammaDyXhat[g]
                        shift[l] = -rs * meanGammaDy[g]
                    }
                    for i in 0..<s { store(dyScale * load(ds + i * b) + (load(xs + i * b) - centre) * xScale + shift, out + i * b) }
                }
            }
        }
        for n in 0..<p.batch {
            for ch in 0..<c { dBeta[ch] += sums[2 * (n * c + ch)]; dGamma[ch] += sums[2 * (n * c + ch) + 1] }
        }
    }
}
