import Foundation
import Testing
@testable import Engine

/// Activations in channel blocks (`Tensor.blocked(_:)`): the layout against its definition, and
/// every op that sees channels or pixels, run on blocked tensors, against the same op on NCHW.
struct BlockedLayoutTests {
    static func relative(_ a: Tensor, _ b: Tensor) -> Double { BackendSelection.relativeL2(a.data, b.data) }

    @Test(arguments: [4, 8, 16]) func blockedPutsEachElementWhereTheLayoutSays(block: Int) {
        let (n, c, h, w) = (2, 32, 3, 5)
        let x = LayerGradientTests.input([n, c, h, w])
        let y = x.blocked(block)
        #expect(y.shape == [n, c / block, h, w, block])
        #expect(y.imageGeometry == (n, c, h, w, block))
        for i in 0..<n { for ch in 0..<c { for r in 0..<h { for s in 0..<w {
            let plain = ((i * c + ch) * h + r) * w + s
            let blocked = (((i * (c / block) + ch / block) * h + r) * w + s) * block + ch % block
            #expect(y.data[blocked] == x.data[plain])
        } } } }
        #expect(y.unblocked() == x)
        #expect(y.blocked(block) == y && x.blocked(1) == x)
    }

    /// Resampling, the embedding add and its backward, and concatenation compute the same values
    /// per element in both layouts, so they agree bit for bit.
    @Test(arguments: [8, 16]) func parameterFreeOpsGiveNCHWsBits(block: Int) {
        let x = LayerGradientTests.input([3, 32, 8, 6], seed: 2), xb = x.blocked(block)
        let e = LayerGradientTests.input([3, 32], seed: 3)
        for layer in [Downsample2x(), Upsample2x()] as [any Layer] {
            let y = layer.forward(x), dy = LayerGradientTests.input(y.shape, seed: 4)
            let dx = layer.backward(dy)
            let yb = layer.forward(xb), dxb = layer.backward(dy.blocked(block))
            #expect(yb.unblocked() == y, "\(type(of: layer)) forward")
            #expect(dxb.unblocked() == dx, "\(type(of: layer)) backward")
        }
        #expect(addChannelwise(xb, e).unblocked() == addChannelwise(x, e))
        #expect(sumSpatial(xb) == sumSpatial(x))
        let other = LayerGradientTests.input([3, 16, 8, 6], seed: 5)
        let joined = concatChannels(xb, other.blocked(block))
        #expect(joined.unblocked() == concatChannels(x, other))
        let (a, b) = splitChannels(joined, at: 32)
        #expect(a == xb && b == other.blocked(block))
    }

    /// GroupNorm on blocked activations against NCHW (groups within a block, a block per group,
    /// groups spanning blocks), forward and backward; the sums run in another order, so to rounding.
    @Test(arguments: [(32, 8, 8), (32, 8, 16), (64, 32, 8), (128, 32, 16), (96, 2, 8)])
    func groupNormMatchesNCHW(channels: Int, groups: Int, block: Int) {
        func run(_ x: Tensor, _ dy: Tensor) -> (y: Tensor, dx: Tensor, grads: [[Float]]) {
            let norm = GroupNorm(channels: channels, groups: groups, minChannelsPerGroup: 1, backend: BLASBackend())
            LayerGradientTests.randomize(norm, seed: 7)
            norm.zeroGrad()
            let y = norm.forward(x)
            return (y, norm.backward(dy), norm.parameters.map(\.grad.data))
        }
        let x = LayerGradientTests.input([3, channels, 6, 5], seed: 8).scaled(3) + Tensor(repeating: 0.5, shape: [3, channels, 6, 5])
        let dy = LayerGradientTests.input(x.shape, seed: 9)
        let plain = run(x, dy), blocked = run(x.blocked(block), dy.blocked(block))
        #expect(Self.relative(blocked.y.unblocked(), plain.y) < 1e-6)
        #expect(Self.relative(blocked.dx.unblocked(), plain.dx) < 1e-5)
        for (a, r) in zip(blocked.grads, plain.grads) { #expect(BackendSelection.relativeL2(a, r) < 1e-5) }
    }

    /// The C kernels (vectorised for this CPU) give the Swift reference's bits, forward and
    /// backward: odd pixel counts (the odd pixel's tail), a block per group and groups spanning
    /// blocks, enough images for both threads.
    @Test(arguments: [(32, 8, 8, 15), (32, 8, 16, 16), (64, 32, 8, 9), (128, 32, 16, 64), (96, 2, 8, 7), (48, 3, 16, 1)])
    func groupNormKernelsGiveTheReferenceBits(channels: Int, groups: Int, block: Int, spatial: Int) {
        let n = 5, count = n * channels * spatial
        let p = GroupNormShape(batch: n, channels: channels, spatial: spatial, groups: groups, eps: 1e-5, block: block)
        let x = LayerGradientTests.input([count], seed: 21).scaled(3).data.map { $0 + 0.5 }
        let dy = LayerGradientTests.input([count], seed: 22).data
        let gamma = LayerGradientTests.input([channels], seed: 23).data, beta = LayerGradientTests.input([channels], seed: 24).data
        typealias Forward = (GroupNormShape, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>,
                             UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void
        typealias Backward = (GroupNormShape, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                              UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void
        func run(_ forward: Forward, _ backward: Backward) -> [[Float]] {
            var y = [Float](repeating: .nan, count: count), dx = y
            var mean = [Float](repeating: .nan, count: n * groups), rstd = mean
            var dGamma = [Float](repeating: 0.25, count: channels), dBeta = dGamma
            forward(p, x, gamma, beta, &y, &mean, &rstd)
            backward(p, x, gamma, mean, rstd, dy, &dx, &dGamma, &dBeta)
            return [y, mean, rstd, dx, dGamma, dBeta]
        }
        let ours = run({ GroupNormKernels.blockedForward($0, x: $1, gamma: $2, beta: $3, y: $4, mean: $5, rstd: $6) },
                       { GroupNormKernels.blockedBackward($0, x: $1, gamma: $2, mean: $3, rstd: $4, dy: $5, dx: $6, dGamma: $7, dBeta: $8) })
        let reference = run({ GroupNormKernels.blockedForwardReference($0, x: $1, gamma: $2, beta: $3, y: $4, mean: $5, rstd: $6) },
                            { GroupNormKernels.blockedBackwardReference($0, x: $1, gamma: $2, mean: $3, rstd: $4, dy: $5, dx: $6,
                                                                         dGamma: $7, dBeta: $8) })
        for (name, (a, r)) in zip(["y", "mean", "rstd", "dx", "dGamma", "dBeta"], zip(ours, reference)) {
            #expect(a.map(\.bitPattern) == r.map(\.bitPattern), "\(name) differs")
        }
    }
}

/// GroupNorm followed by SiLU in one pass (the oneDNN backend's path on blocked activations) and
/// the unfused composition every other backend gets, both against the definition in Float64:
/// z = GroupNorm(x) (the reference kernel's statistics), y = z sigmoid(z), and the backward
/// through dz = dy s (1 + z (1 - s)) into the reference GroupNorm backward.
struct GroupNormSiLUTests {
    @Test(arguments: [(32, 8, 16, 15, 1.0), (64, 32, 8, 9, 1.0), (48, 3, 16, 4, 40.0)])
    func fusedGroupNormSiLUMatchesItsDefinition(channels: Int, groups: Int, block: Int, spatial: Int, spread: Float) {
        let n = 4, count = n * channels * spatial
        let p = GroupNormShape(batch: n, channels: channels, spatial: spatial, groups: groups, eps: 1e-5, block: block)
        let x = LayerGradientTests.input([count], seed: 31).scaled(3).data.map { $0 + 0.5 }
        let dy = LayerGradientTests.input([count], seed: 32).data
        // spread 40: z spans about -100 ... 100, past the exponential's clamp on both sides.
        let gamma = LayerGradientTests.input([channels], seed: 33).scaled(spread).data
        let beta = LayerGradientTests.input([channels], seed: 34).data

        // The definition: z by the reference kernel, the SiLU and its derivative in Double.
        var z = [Float](repeating: 0, count: count), mean = [Float](repeating: 0, count: n * groups), rstd = mean
        GroupNormKernels.blockedForwardReference(p, x: x, gamma: gamma, beta: beta, y: &z, mean: &mean, rstd: &rstd)
        func sigmoid(_ v: Float) -> Double { 1 / (1 + exp(-Double(v))) }
        let yExpected = z.map { Double($0) * sigmoid($0) }
        let dz = (0..<count).map { i in Float(Double(dy[i]) * sigmoid(z[i]) * (1 + Double(z[i]) * (1 - sigmoid(z[i])))) }
        var dxExpected = [Float](repeating: 0, count: count)
        var dGammaExpected = [Float](repeating: 0, count: channels), dBetaExpected = dGammaExpected
        GroupNormKernels.blockedBackwardReference(p, x: x, gamma: gamma, mean: mean, rstd: rstd, dy: dz, dx: &dxExpected,
                                                  dGamma: &dGammaExpected, dBeta: &dBetaExpected)

        func worst(_ a: [Float], _ e: [Double]) -> Double {
            let scale = max(1, e.map(abs).max()!)
            return zip(a, e).map { abs(Double($0) - $1) }.max()! / scale
        }
        typealias Forward = (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void
        typealias Backward = (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                              UnsafeMutablePointer<Float>) -> Void
        func check(_ name: String, _ forward: Forward, _ backward: Backward) {
            var y = [Float](repeating: .nan, count: count), m = [Float](repeating: .nan, count: n * groups), r = m
            forward(&y, &m, &r)
            #expect(m.map(\.bitPattern) == mean.map(\.bitPattern) && r.map(\.bitPattern) == rstd.map(\.bitPattern), "\(name): statistics")
            #expect(worst(y, yExpected) < 2e-6, "\(name): y off by \(worst(y, yExpected))")
            var dx = [Float](repeating: .nan, count: count)
            var dGamma = [Float](repeating: 0.25, count: channels), dBeta = dGamma  // backward accumulates
            backward(m, r, &dx, &dGamma, &dBeta)
            #expect(worst(dx, dxExpected.map(Double.init)) < 1e-5, "\(name): dx off by \(worst(dx, dxExpected.map(Double.init)))")
            #expect(worst(dGamma.map { $0 - 0.25 }, dGammaExpected.map(Double.init)) < 1e-5, "\(name): dGamma")
            #expect(worst(dBeta.map { $0 - 0.25 }, dBetaExpected.map(Double.init)) < 1e-5, "\(name): dBeta")
        }
        check("fused", { GroupNormKernels.blockedSiLUForward(p, x: x, gamma: gamma, beta: beta, y: $0, mean: $1, rstd: $2) },
              { GroupNormKernels.blockedSiLUBackward(p, x: x, gamma: gamma, beta: beta, mean: $0, rstd: $1, dy: dy, dx: $2,
                                                     dGamma: $3, dBeta: $4) })
        let blas = BLASBackend()
        #expect(!blas.fusesGroupNormSiLU(p))
        check("unfused", { blas.groupNormSiLUForward(p, x: x, gamma: gamma, beta: beta, y: $0, mean: $1, rstd: $2) },
              { blas.groupNormSiLUBackward(p, x: x, gamma: gamma, beta: beta, mean: $0, rstd: $1, dy: dy, dx: $2, dGamma: $3, dBeta: $4) })
    }
}

/// oneDNN's convolutions with blocked inputs and outputs (the U-Net's inner convolutions, its
/// first one from NCHW, its last one and attention's qkv to NCHW) against OpenBLAS on NCHW.
@Suite(.enabled(if: OneDNN.isAvailable, "oneDNN (libdnnl2) not installed"))
struct BlockedOneDNNTests {
    @Test(arguments: [(16, 32, 3, true, true), (5, 32, 3, false, true), (32, 3, 3, true, false),
                      (32, 96, 1, true, false), (32, 32, 1, false, true), (48, 32, 1, true, true)])
    func convolutionsInBlocksMatchOpenBLAS(cin: Int, cout: Int, kernel: Int, blockedInput: Bool, blockedOutput: Bool) throws {
        try Self.checkConvolutionInBlocks(try OneDNNBackend(), cin: cin, cout: cout, kernel: kernel, blockedInput: blockedInput,
                                          blockedOutput: blockedOutput, tolerance: 1e-5)
    }

    /// bf16 convolutions read blocked f32 activations (converted to bf16 inside) and write f32:
    /// within relative L2 1e-2 of OpenBLAS (bf16 rounding of inputs and weights: ~3e-3).
    @Test(.enabled(if: Precision.bf16.unsupportedReason == nil, "no native bf16 kernels on this CPU"),
          arguments: [(16, 32, 3, true, true), (5, 32, 3, false, true), (32, 3, 3, true, false), (48, 32, 1, true, true)])
    func bf16ConvolutionsInBlocksMatchOpenBLAS(cin: Int, cout: Int, kernel: Int, blockedInput: Bool, blockedOutput: Bool) throws {
        try Self.checkConvolutionInBlocks(try OneDNNBackend(precision: .bf16), cin: cin, cout: cout, kernel: kernel,
                                          blockedInput: blockedInput, blockedOutput: blockedOutput, tolerance: 1e-2)
    }

    static func checkConvolutionInBlocks(_ dnnl: OneDNNBackend, cin: Int, cout: Int, kernel: Int, blockedInput: Bool,
                                         blockedOutput: Bool, tolerance: Double) throws {
        let b = dnnl.activationBlock
        try #require(b > 1, "oneDNN picked a plain layout")
        let x = LayerGradientTests.input([3, cin, 8, 8], seed: 12)
        func run(_ backend: any ComputeBackend, inBlock: Int, outBlock: Int) -> (y: Tensor, dx: Tensor, grads: [[Float]]) {
            var rng = RandomGenerator(seed: 13)
            let conv = Conv2d(inChannels: cin, outChannels: cout, kernel: kernel, rng: &rng, backend: backend)
            conv.outputBlock = outBlock
            conv.zeroGrad()
            let y = conv.forward(x.blocked(inBlock))
            let dy = LayerGradientTests.input(y.imageGeometry.block == 1 ? y.shape : y.unblocked().shape, seed: 14)
            let dx = conv.backward(dy.blocked(outBlock))
            return (y.unblocked(), dx.unblocked(), conv.parameters.map(\.grad.data))
        }
        let ours = run(dnnl, inBlock: blockedInput ? b : 1, outBlock: blockedOutput ? b : 1)
        let reference = run(BLASBackend(), inBlock: 1, outBlock: 1)
        #expect(BlockedLayoutTests.relative(ours.y, reference.y) < tolerance)
        #expect(BlockedLayoutTests.relative(ours.dx, reference.dx) < tolerance)
        for (a, r) in zip(ours.grads, reference.grads) { #expect(BackendSelection.relativeL2(a, r) < tolerance) }
    }

    /// A U-Net whose channel counts split into oneDNN's blocks keeps its activations blocked;
    /// one whose counts do not stays NCHW; OpenBLAS is always NCHW.
    @Test func theUNetChoosesItsLayoutFromItsChannels() throws {
        let dnnl = try OneDNNBackend()
        let b = dnnl.activationBlock
        let fits = UNetConfig(imageChannels: 1, coordinates: true, modelChannels: 16, channelMult: [1, 2],
                              numBlocks: 1, attentionLevels: [1], dropout: 0)
        var odd = fits
        odd.modelChannels = 12
        #expect(Engine.withBackend(dnnl) { SongUNet(config: fits, seed: 1) }.activationBlock == b)
        #expect(Engine.withBackend(dnnl) { SongUNet(config: odd, seed: 1) }.activationBlock == 1)
        #expect(Engine.withBackend(BLASBackend()) { SongUNet(config: fits, seed: 1) }.activationBlock == 1)
    }
}

extension BlockedOneDNNTests {
    /// Sampling (no activations kept for a backward, the evaluation-mode forward of the sampler)
    /// gives the training forward's bits in the blocked layout too, and the same U-Net run twice
    /// gives the same bits.
    @Test func blockedUNetForwardIsReproducibleAndSamplingGivesTrainingBits() throws {
        let dnnl = try OneDNNBackend()
        let net = Engine.withBackend(dnnl) { SongUNet(config: BackendOneDNNTests.blockable, seed: 3) }
        try #require(net.activationBlock > 1)
        DiffusionUNetTests.randomize(net, seed: 4)
        let x = LayerGradientTests.input([2, 5, 16, 16], seed: 6)
        let training = net.forward(x, noiseLabels: [0.2, -1.1])
        #expect(net.forward(x, noiseLabels: [0.2, -1.1]) == training)
        net.retainsForBackward = false
        #expect(net.forward(x, noiseLabels: [0.2, -1.1]) == training)
        #expect(training.shape == [2, 3, 16, 16])
    }
}
