import Testing
@testable import Engine

/// Every layer's backward against central finite differences (see GradientCheck for tolerances).
@Suite struct LayerGradientTests {
    static func input(_ shape: [Int], seed: UInt64 = 1) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor(randomNormal: shape, using: &rng)
    }

    /// Randomises every parameter so that no gradient is trivially zero (e.g. GroupNorm's beta).
    static func randomize(_ m: some Module, seed: UInt64 = 3) {
        var rng = RandomGenerator(seed: seed)
        for p in m.parameters { p.value = Tensor(randomNormal: p.shape, scale: 0.5, using: &rng) }
    }

    @Test(arguments: [(3, 1), (1, 0)])
    func conv2dOddShapes(kernel: Int, padding: Int) {
        var rng = RandomGenerator(seed: 11)
        let conv = Conv2d(inChannels: 2, outChannels: 4, kernel: kernel, padding: padding, rng: &rng)
        Self.randomize(conv)
        let failures = GradientCheck().check(conv, input: Self.input([3, 2, 5, 7]))
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func conv2dWithoutBiasTinyImage() {
        var rng = RandomGenerator(seed: 12)
        let conv = Conv2d(inChannels: 3, outChannels: 2, kernel: 3, bias: false, rng: &rng)
        let failures = GradientCheck().check(conv, input: Self.input([2, 3, 1, 2]))
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func linear() {
        var rng = RandomGenerator(seed: 13)
        let layer = Linear(inFeatures: 5, outFeatures: 3, rng: &rng)
        Self.randomize(layer)
        let failures = GradientCheck().check(layer, input: Self.input([3, 5]))
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func groupNorm() {
        let layer = GroupNorm(channels: 6, groups: 3, minChannelsPerGroup: 1, eps: 1e-6)
        Self.randomize(layer)
        let failures = GradientCheck().check(layer, input: Self.input([3, 6, 5, 7]))
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func groupNormOnVectors() {
        let layer = GroupNorm(channels: 8, groups: 2, minChannelsPerGroup: 1)
        Self.randomize(layer)
        let failures = GradientCheck().check(layer, input: Self.input([2, 8]))
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func silu() {
        let failures = GradientCheck().check(SiLU(), input: Self.input([3, 2, 5, 7]).scaled(2))
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func selfAttention() {
        var rng = RandomGenerator(seed: 14)
        let layer = SelfAttention(channels: 4, projInit: .xavierUniform, rng: &rng)
        Self.randomize(layer)
        let failures = GradientCheck().check(layer, input: Self.input([2, 4, 3, 5]))
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func downsample() {
        let failures = GradientCheck().check(Downsample2x(), input: Self.input([3, 2, 6, 4]))
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func upsample() {
        let failures = GradientCheck().check(Upsample2x(), input: Self.input([3, 2, 5, 7]))
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func dropoutBackwardUsesTheForwardMask() {
        let layer = Dropout(p: 0.3, seed: 5)
        let x = Self.input([3, 4, 5, 7])
        let y = layer.forward(x)
        let g = Self.input([3, 4, 5, 7], seed: 9)
        let dx = layer.backward(g)
        var dropped = 0
        for i in 0..<x.count {
            // Each element is either dropped (0) or kept and scaled by 1/(1-p), in y and dx alike.
            if y.data[i] == 0 { dropped += 1; #expect(dx.data[i] == 0) } else {
                #expect(abs(y.data[i] - x.data[i] / 0.7) < 1e-5)
                #expect(abs(dx.data[i] - g.data[i] / 0.7) < 1e-5)
            }
        }
        let rate = Double(dropped) / Double(x.count)
        #expect(abs(rate - 0.3) < 0.08, "drop rate \(rate)")
        layer.isTraining = false
        #expect(layer.forward(x) == x)
    }
}
