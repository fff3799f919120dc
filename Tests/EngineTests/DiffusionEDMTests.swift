import Foundation
import Testing
@testable import Engine

/// F(x_in) = w * image channels + v * x-coordinate plane: tiny enough to differentiate by hand.
final class ScalarDenoiser: DenoiserNetwork {
    var w: Float, v: Float
    var gradW = 0.0, gradV = 0.0
    let imageChannels: Int
    let usesCoordinates: Bool
    var isTraining = true
    var lastInput: Tensor?
    var lastNoiseLabels: [Float] = []

    init(channels: Int, coordinates: Bool, w: Float, v: Float) {
        (imageChannels, usesCoordinates, self.w, self.v) = (channels, coordinates, w, v)
    }

    func forward(_ x: Tensor, noiseLabels: [Float]) -> Tensor {
        lastInput = x
        lastNoiseLabels = noiseLabels
        let (n, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let plane = h * wd
        var out = Tensor(zeros: [n, imageChannels, h, wd])
        for k in 0..<n { for c in 0..<imageChannels { for e in 0..<plane {
            var value = w * x.data[(k * cin + c) * plane + e]
            if usesCoordinates { value += v * x.data[(k * cin + imageChannels) * plane + e] }
            out.data[(k * imageChannels + c) * plane + e] = value
        } } }
        return out
    }

    func backward(_ dOut: Tensor) {
        let x = lastInput!
        let (n, cin, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        for k in 0..<n { for c in 0..<imageChannels { for e in 0..<plane {
            let g = Double(dOut.data[(k * imageChannels + c) * plane + e])
            gradW += g * Double(x.data[(k * cin + c) * plane + e])
            if usesCoordinates { gradV += g * Double(x.data[(k * cin + imageChannels) * plane + e]) }
        } } }
    }
}

@Suite struct DiffusionEDMTests {
    @Test func preconditioningMatchesHandValues() {
        let pre = EDMPreconditioning()
        // sigma = 1, sd = 0.5: sigma^2 + sd^2 = 1.25.
        let c = pre.coefficients(sigma: 1)
        #expect(abs(c.cSkip - 0.2) < 1e-12)
        #expect(abs(c.cOut - 0.5 / 1.25.squareRoot()) < 1e-12)
        #expect(abs(c.cIn - 1 / 1.25.squareRoot()) < 1e-12)
        #expect(abs(c.cNoise) < 1e-12)
        #expect(abs(pre.lossWeight(sigma: 1) - 5) < 1e-12)
        // sigma = 2: 4.25; c_noise = ln 2 / 4.
        let d = pre.coefficients(sigma: 2)
        #expect(abs(d.cSkip - 0.25 / 4.25) < 1e-12)
        #expect(abs(d.cOut - 1 / 4.25.squareRoot()) < 1e-12)
        #expect(abs(d.cNoise - 0.693147180559945 / 4) < 1e-12)
        // lambda = 1 / c_out^2 for every sigma: the weighted loss has unit scale.
        for s in [0.002, 0.3, 5.0, 80.0] {
            #expect(abs(pre.lossWeight(sigma: s) * pow(pre.coefficients(sigma: s).cOut, 2) - 1) < 1e-9)
        }
    }

    @Test func networkInputScalesImageAndAppendsUnscaledCoordinates() {
        let pre = EDMPreconditioning()
        let x = Tensor(shape: [1, 1, 2, 2], data: [1, 2, 3, 4])
        let coords = PatchCoordinates.batch(size: 2, offsets: [PatchOffset(row: 0, column: 0)], resolution: 2)
        let input = pre.networkInput(x, sigmas: [1], coordinates: coords)
        #expect(input.shape == [1, 3, 2, 2])
        let cIn = Float(1 / 1.25.squareRoot())
        #expect(Array(input.data[0..<4]) == [1, 2, 3, 4].map { cIn * $0 })
        #expect(Array(input.data[4..<12]) == [-1, 1, -1, 1, -1, -1, 1, 1])
    }

    @Test func lossAndGradientMatchClosedFormAndFiniteDifferences() {
        var rng = RandomGenerator(seed: 11)
        let (n, c, s) = (3, 2, 4)
        let y = Tensor(shape: [n, c, s, s], data: (0..<(n * c * s * s)).map { _ in rng.uniform(-1, 1) })
        let sigmas = [0.1, 1.0, 7.0]
        var noisy = y
        for k in 0..<n { for e in 0..<(c * s * s) { noisy.data[k * c * s * s + e] += Float(sigmas[k]) * rng.normal() } }
        let coords = PatchCoordinates.batch(size: s, offsets: [PatchOffset(row: 0, column: 0), PatchOffset(row: 2, column: 4), PatchOffset(row: 4, column: 1)], resolution: 8)
        let loss = EDMLoss()

        func reference(w: Double, v: Double) -> Double {
            // Independent evaluation in Double: mean over patches of sum lambda (D - y)^2.
            var total = 0.0
            for k in 0..<n {
                let sg = sigmas[k], sd = 0.5
                let cSkip = sd * sd / (sg * sg + sd * sd), cOut = sg * sd / (sg * sg + sd * sd).squareRoot()
                let cIn = 1 / (sg * sg + sd * sd).squareRoot(), lambda = (sg * sg + sd * sd) / (sg * sd * sg * sd)
                for ch in 0..<c { for e in 0..<(s * s) {
                    let i = (k * c + ch) * s * s + e
                    let f = w * cIn * Double(noisy.data[i]) + v * Double(coords.data[k * 2 * s * s + e])
                    let diff = cSkip * Double(noisy.data[i]) + cOut * f - Double(y.data[i])
                    total += lambda * diff * diff
                } }
            }
            return total / Double(n)
        }

        let net = ScalarDenoiser(channels: c, coordinates: true, w: 0.7, v: -0.3)
        let value = loss.forwardBackward(net, clean: y, noisy: noisy, sigmas: sigmas, coordinates: coords)
        #expect(abs(value - reference(w: 0.7, v: -0.3)) / reference(w: 0.7, v: -0.3) < 1e-5)
        let h = 1e-4
        let fdW = (reference(w: 0.7 + h, v: -0.3) - reference(w: 0.7 - h, v: -0.3)) / (2 * h)
        let fdV = (reference(w: 0.7, v: -0.3 + h) - reference(w: 0.7, v: -0.3 - h)) / (2 * h)
        #expect(abs(net.gradW - fdW) <= 1e-3 * max(1, abs(fdW)), "dL/dw \(net.gradW) vs \(fdW)")
        #expect(abs(net.gradV - fdV) <= 1e-3 * max(1, abs(fdV)), "dL/dv \(net.gradV) vs \(fdV)")
        // c_noise = ln(sigma) / 4 reaches the network.
        #expect(zip(net.lastNoiseLabels, sigmas).allSatisfy { abs(Double($0) - log($1) / 4) < 1e-6 })
    }

    @Test func lossReductionSumsElementsAndAveragesPatches() {
        // Perfect denoiser F = 0 with c_skip = 0 is impossible; use w = 0 so D = c_skip * x and compare
        // a batch of one patch repeated twice (same mean) with the single patch.
        let y = Tensor(shape: [1, 1, 2, 2], data: [0.5, -0.5, 0.25, 0])
        let noisy = Tensor(shape: [1, 1, 2, 2], data: [1, 0, -1, 2])
        let net = ScalarDenoiser(channels: 1, coordinates: false, w: 0, v: 0)
        let one = EDMLoss().forwardBackward(net, clean: y, noisy: noisy, sigmas: [1], coordinates: nil)
        // c_skip = 0.2, lambda = 5: sum of 5 * (0.2 x - y)^2.
        let expected = zip(noisy.data, y.data).reduce(0.0) { $0 + 5 * pow(0.2 * Double($1.0) - Double($1.1), 2) }
        #expect(abs(one - expected) < 1e-6)
        let yy = Tensor(shape: [2, 1, 2, 2], data: y.data + y.data)
        let nn = Tensor(shape: [2, 1, 2, 2], data: noisy.data + noisy.data)
        let two = EDMLoss().forwardBackward(net, clean: yy, noisy: nn, sigmas: [1, 1], coordinates: nil)
        #expect(abs(two - one) < 1e-6)
    }

    @Test func sigmaDistributionIsLogNormal() {
        var rng = RandomGenerator(seed: 5)
        let loss = EDMLoss()
        let logs = (0..<20_000).map { _ in log(loss.drawSigma(using: &rng)) }
        let mean = logs.reduce(0, +) / Double(logs.count)
        let sd = (logs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(logs.count)).squareRoot()
        #expect(abs(mean - -1.2) < 0.03 && abs(sd - 1.2) < 0.03)
    }
}
