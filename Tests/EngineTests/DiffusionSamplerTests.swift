import Foundation
import Testing
@testable import Engine

@Suite struct DiffusionSamplerTests {
    @Test func sigmaScheduleEndpointsAndMonotone() {
        let sampler = HeunSampler(steps: 18)
        let t = sampler.timeSteps
        #expect(t.count == 19)
        #expect(abs(t[0] - 80) < 1e-9 && abs(t[17] - 0.002) < 1e-12 && t[18] == 0)
        #expect(zip(t, t.dropFirst()).allSatisfy { $0 > $1 })
        #expect(sampler.evaluations == 35)
        // rho = 1 makes the schedule linear in sigma.
        let linear = HeunSampler(steps: 5, sigmaMin: 1, sigmaMax: 5, rho: 1).timeSteps
        #expect(zip(linear, [5.0, 4, 3, 2, 1, 0]).allSatisfy { abs($0 - $1) < 1e-9 })
    }

    @Test func diracDataIsReachedExactly() {
        // For data concentrated at y0 the ideal denoiser is D = y0; the last Euler step to t = 0 lands on y0.
        let y0: [Float] = [0.3, -0.7, 0.1, 0.9]
        let out = HeunSampler(steps: 6).sample(first: 0, count: 3, channels: 1, height: 2, width: 2, seed: 1) { x, _ in
            Tensor(shape: x.shape, data: (0..<x.count).map { y0[$0 % 4] })
        }
        for (i, v) in out.data.enumerated() { #expect(abs(v - y0[i % 4]) < 1e-5) }
    }

    @Test func gaussianDataFollowsTheProbabilityFlowODE() {
        // Data N(0, s^2): D(x; t) = x s^2 / (s^2 + t^2); the ODE maps x(t0) to x(0) = x(t0) s / sqrt(s^2 + t0^2).
        // Heun is second order: the relative error shrinks ~4x when the steps double (0.37% at 64 steps).
        let s = 0.5
        func relativeErrors(steps: Int) -> [Double] {
            let sampler = HeunSampler(steps: steps)
            let t0 = sampler.timeSteps[0]
            let out = sampler.sample(first: 0, count: 2, channels: 1, height: 2, width: 2, seed: 9) { x, t in
                let k = Float(s * s / (s * s + t * t))
                return Tensor(shape: x.shape, data: x.data.map { $0 * k })
            }
            return (0..<2).flatMap { k -> [Double] in
                var rng = RandomGenerator(seed: 9, stream: UInt64(k))
                return (0..<4).map { e in
                    let expected = Double(rng.normal()) * t0 * s / (s * s + t0 * t0).squareRoot()
                    return (Double(out.data[k * 4 + e]) - expected) / expected
                }
            }
        }
        let coarse = relativeErrors(steps: 32), fine = relativeErrors(steps: 64)
        for (c, f) in zip(coarse, fine) {
            #expect(abs(f) < 0.005)
            #expect((3.5...4.8).contains(c / f), "error ratio \(c / f)")
        }
    }

    @Test func imageKIsIndependentOfBatchSize() {
        // A nonlinear denoiser and churn on: batch 5 == batches 2 + 3.
        let sampler = HeunSampler(steps: 5, sChurn: 10, sMin: 0.01, sMax: 50, sNoise: 1.007)
        let denoiser: (Tensor, Double) -> Tensor = { x, t in
            Tensor(shape: x.shape, data: x.data.map { tanhf($0) / Float(1 + t) })
        }
        let all = sampler.sample(first: 0, count: 5, channels: 2, height: 4, width: 4, seed: 42, denoiser: denoiser)
        let a = sampler.sample(first: 0, count: 2, channels: 2, height: 4, width: 4, seed: 42, denoiser: denoiser)
        let b = sampler.sample(first: 2, count: 3, channels: 2, height: 4, width: 4, seed: 42, denoiser: denoiser)
        #expect(all.data == a.data + b.data)
        let other = sampler.sample(first: 0, count: 2, channels: 2, height: 4, width: 4, seed: 43, denoiser: denoiser)
        #expect(other.data != a.data)
    }

    @Test func uint8ConversionClipsAndTransposes() {
        let t = Tensor(shape: [1, 2, 1, 2], data: [-1, 1, 2, -3])
        // NHWC: pixel 0 = (c0 -1 -> 0.5 -> 0, c1 2 -> 383 -> 255), pixel 1 = (c0 1 -> 255.5 -> 255, c1 -3 -> 0).
        #expect(HeunSampler.toUInt8NHWC(t) == [0, 255, 255, 0])
        #expect(HeunSampler.toUInt8NHWC(Tensor(shape: [1, 1, 1, 1], data: [0])) == [128])
    }
}
