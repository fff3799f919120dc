import Foundation
import Testing
@testable import Engine

/// Forward passes against independent direct computations, and the wiring helpers.
@Suite struct LayerForwardTests {
    @Test(arguments: [(3, 1), (1, 0)])
    func conv2dMatchesDirectConvolution(kernel: Int, padding: Int) {
        var rng = RandomGenerator(seed: 21)
        let (n, cin, cout, h, w) = (3, 3, 5, 5, 7)
        let conv = Conv2d(inChannels: cin, outChannels: cout, kernel: kernel, padding: padding, initialization: .init(scale: 1, biasScale: 1), rng: &rng)
        let x = Tensor(randomNormal: [n, cin, h, w], using: &rng)
        let y = conv.forward(x)
        #expect(y.shape == [n, cout, h, w])
        var worst = 0.0
        for b in 0..<n { for co in 0..<cout { for i in 0..<h { for j in 0..<w {
            var s = Double(conv.bias!.value.data[co])
            for ci in 0..<cin { for ky in 0..<kernel { for kx in 0..<kernel {
                let (iy, ix) = (i + ky - padding, j + kx - padding)
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                s += Double(conv.weight.value.data[((co * cin + ci) * kernel + ky) * kernel + kx]) * Double(x.data[((b * cin + ci) * h + iy) * w + ix])
            } } }
            worst = max(worst, abs(s - Double(y.data[((b * cout + co) * h + i) * w + j])))
        } } } }
        #expect(worst < 1e-5)
    }

    @Test func groupNormNormalisesEachGroup() {
        var rng = RandomGenerator(seed: 22)
        let gn = GroupNorm(channels: 8, groups: 32) // EDM rule: min(32, 8 / 4) = 2 groups
        #expect(gn.groups == 2)
        let x = Tensor(randomNormal: [2, 8, 3, 5], scale: 3, using: &rng) + Tensor(repeating: 1.5, shape: [2, 8, 3, 5])
        let y = gn.forward(x)
        for g in 0..<4 {
            let part = y.data[g * 60 ..< (g + 1) * 60].map(Double.init)
            let m = part.reduce(0, +) / 60
            let v = part.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 60
            #expect(abs(m) < 1e-5 && abs(v - 1) < 1e-4)
        }
    }

    @Test func resamplingFollowsEDMFilter() {
        let x = Tensor(shape: [1, 1, 2, 4], data: [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(Downsample2x().forward(x).data == [3.5, 5.5])
        let up = Upsample2x().forward(Tensor(shape: [1, 1, 1, 2], data: [1, 2]))
        #expect(up.shape == [1, 1, 2, 4] && up.data == [1, 1, 2, 2, 1, 1, 2, 2])
    }

    @Test func positionalEmbeddingClosedForm() {
        let emb = PositionalEmbedding(channels: 8)
        let y = emb([0.5, -2])
        #expect(y.shape == [2, 8])
        for (n, v) in [0.5, -2.0].enumerated() { for c in 0..<4 {
            let f = pow(1e-4, Double(c) / 3)  // endpoint: exponent c / (half - 1)
            #expect(abs(Double(y.data[n * 8 + c]) - cos(v * f)) < 1e-6)
            #expect(abs(Double(y.data[n * 8 + 4 + c]) - sin(v * f)) < 1e-6)
        } }
    }

    @Test func attentionMatchesDirectFormula() {
        var rng = RandomGenerator(seed: 23)
        let (n, c, p) = (2, 3, 6)
        let att = SelfAttention(channels: c, projInit: .xavierUniform, rng: &rng)
        let x = Tensor(randomNormal: [n, c, 2, 3], using: &rng)
        let y = att.forward(x)
        // Direct: qkv 1x1 conv with EDM's interleaved layout, softmax over keys, proj.
        func conv1x1(_ layer: Conv2d, _ input: [Double], cin: Int) -> [Double] {
            var out = [Double](repeating: 0, count: layer.outChannels * p)
            for o in 0..<layer.outChannels { for s in 0..<p {
                var a = Double(layer.bias!.value.data[o])
                for i in 0..<cin { a += Double(layer.weight.value.data[o * cin + i]) * input[i * p + s] }
                out[o * p + s] = a
            } }
            return out
        }
        for b in 0..<n {
            let xi = x.data[b * c * p ..< (b + 1) * c * p].map(Double.init)
            let t = conv1x1(att.qkv, xi, cin: c)
            var a = [Double](repeating: 0, count: c * p)
            for qi in 0..<p {
                var logits = (0..<p).map { ki in (0..<c).reduce(0.0) { $0 + t[(3 * $1) * p + qi] * t[(3 * $1 + 1) * p + ki] } / Double(c).squareRoot() }
                let mx = logits.max()!
                logits = logits.map { exp($0 - mx) }
                let z = logits.reduce(0, +)
                for ch in 0..<c { a[ch * p + qi] = (0..<p).reduce(0.0) { $0 + logits[$1] / z * t[(3 * ch + 2) * p + $1] } }
            }
            let out = conv1x1(att.proj, a, cin: c)
            for i in 0..<c * p { #expect(abs(out[i] - Double(y.data[b * c * p + i])) < 1e-5) }
        }
    }

    @Test func concatSplitAndChannelwiseHelpers() {
        var rng = RandomGenerator(seed: 24)
        let a = Tensor(randomNormal: [2, 3, 2, 2], using: &rng), b = Tensor(randomNormal: [2, 1, 2, 2], using: &rng)
        let cat = concatChannels(a, b)
        #expect(cat.shape == [2, 4, 2, 2])
        #expect(Array(cat.data[16..<20]) == Array(a.data[12..<16]) && Array(cat.data[12..<16]) == b.data[0..<4].map { $0 })
        let (da, db) = splitChannels(cat, at: 3)
        #expect(da == a && db == b)
        let e = Tensor(randomNormal: [2, 3], using: &rng)
        let y = addChannelwise(a, e)
        #expect(abs(y.data[5] - (a.data[5] + e.data[1])) < 1e-7)
        let s = sumSpatial(a)
        let plane: Float = a.data[16..<20].reduce(0, +)
        #expect(abs(s.data[4] - plane) < 1e-5)
        let k = Float(0.5).squareRoot()
        let z = addScaled(a, a, scale: k)
        let expected: Float = 2 * a.data[7] * k
        #expect(abs(z.data[7] - expected) < 1e-6)
    }

    @Test func xavierBoundsAndScaledInit() {
        var rng = RandomGenerator(seed: 25)
        let conv = Conv2d(inChannels: 8, outChannels: 16, kernel: 3, rng: &rng)
        let bound = (6.0 / Float(8 * 9 + 16 * 9)).squareRoot()
        #expect(conv.weight.value.data.allSatisfy { abs($0) <= bound })
        #expect(conv.weight.value.data.map { abs($0) }.max()! > 0.9 * bound)
        #expect(conv.bias!.value.data.allSatisfy { $0 == 0 })
        let small = Conv2d(inChannels: 8, outChannels: 16, kernel: 3, initialization: .nearZero, rng: &rng)
        #expect(small.weight.value.data.allSatisfy { abs($0) <= 1e-5 * bound })
        #expect(small.namedParameters().map(\.name) == ["weight", "bias"])
    }
}
