import Foundation

/// EDM's deterministic/stochastic Heun sampler (Karras et al. 2022, Algorithm 2;
/// docs/edm.md section 5), written against a denoiser closure D(x; t).
///
/// Every image k draws its initial noise and churn noise from its own stream
/// `RandomGenerator(seed:stream: k)`, so image k is identical for any batch size.
public struct HeunSampler: Sendable, Equatable {
    public var steps: Int
    public var sigmaMin: Double
    public var sigmaMax: Double
    public var rho: Double
    public var sChurn: Double
    public var sMin: Double
    public var sMax: Double
    public var sNoise: Double

    public init(steps: Int = 18, sigmaMin: Double = 0.002, sigmaMax: Double = 80, rho: Double = 7,
                sChurn: Double = 0, sMin: Double = 0, sMax: Double = .infinity, sNoise: Double = 1) {
        precondition(steps >= 1, "HeunSampler: at least one step")
        precondition(sigmaMin > 0 && sigmaMax > sigmaMin, "HeunSampler: need 0 < sigma_min < sigma_max")
        (self.steps, self.sigmaMin, self.sigmaMax, self.rho) = (steps, sigmaMin, sigmaMax, rho)
        (self.sChurn, self.sMin, self.sMax, self.sNoise) = (sChurn, sMin, sMax, sNoise)
    }

    /// t_0 .. t_{N-1} by the rho schedule, then t_N = 0 (N + 1 values, decreasing).
    public var timeSteps: [Double] {
        let a = pow(sigmaMax, 1 / rho), b = pow(sigmaMin, 1 / rho)
        let denom = Double(max(steps - 1, 1))
        return (0..<steps).map { i in pow(a + Double(i) / denom * (b - a), rho) } + [0]
    }

    /// Network evaluations per image: 2N - 1.
    public var evaluations: Int { 2 * steps - 1 }

    /// Samples images `first ..< first + count` of seed `seed`, shape [count, C, H, W].
    /// `denoiser(x, t)` returns D(x; t) for the whole batch at one noise level.
    public func sample(first: Int, count: Int, channels: Int, height: Int, width: Int, seed: UInt64,
                       denoiser: (Tensor, Double) -> Tensor) -> Tensor {
        let per = channels * height * width
        var streams = (0..<count).map { RandomGenerator(seed: seed, stream: UInt64(first + $0)) }
        let t = timeSteps
        // x_0 = z * t_0
        var x = [Float](repeating: 0, count: count * per)
        for k in 0..<count { for e in 0..<per { x[k * per + e] = Float(t[0]) * streams[k].normal() } }
        let shape = [count, channels, height, width]

        for i in 0..<steps {
            let (tCur, tNext) = (t[i], t[i + 1])
            // Churn: raise the noise level temporarily.
            let gamma = (sMin...sMax).contains(tCur) ? min(sChurn / Double(steps), 2.0.squareRoot() - 1) : 0
            let tHat = tCur + gamma * tCur
            var xHat = x
            if gamma > 0 {
                let amp = Float((tHat * tHat - tCur * tCur).squareRoot() * sNoise)
                for k in 0..<count { for e in 0..<per { xHat[k * per + e] += amp * streams[k].normal() } }
            }
            // Euler step.
            let d0 = denoiser(Tensor(shape: shape, data: xHat), tHat)
            var dCur = [Float](repeating: 0, count: x.count)
            var xNext = xHat
            let h = Float(tNext - tHat)
            for e in 0..<x.count {
                dCur[e] = (xHat[e] - d0.data[e]) / Float(tHat)
                xNext[e] = xHat[e] + h * dCur[e]
            }
            // Heun correction (not at the last step, where t_next = 0).
            if i < steps - 1 {
                let d1 = denoiser(Tensor(shape: shape, data: xNext), tNext)
                for e in 0..<x.count {
                    let dPrime = (xNext[e] - d1.data[e]) / Float(tNext)
                    xNext[e] = xHat[e] + h * (0.5 * dCur[e] + 0.5 * dPrime)
                }
            }
            x = xNext
        }
        return Tensor(shape: shape, data: x)
    }

    /// uint8 NHWC from NCHW in [-1, 1]: clip(x * 127.5 + 128, 0, 255), truncated as EDM does.
    public static func toUInt8NHWC(_ images: Tensor) -> [UInt8] {
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        var out = [UInt8](repeating: 0, count: n * h * w * c)
        for k in 0..<n { for ch in 0..<c { for y in 0..<h { for x in 0..<w {
            let v = images.data[((k * c + ch) * h + y) * w + x] * 127.5 + 128
            out[((k * h + y) * w + x) * c + ch] = UInt8(min(max(v, 0), 255))
        } } } }
        return out
    }
}
