import Foundation
import Testing
@testable import Engine

/// The faster elementwise and GroupNorm kernels give the same bits as the plain loops they
/// replace (a training run must not change when only the speed does). Sizes are above
/// `Engine.parallelFor`'s inline threshold, so the threaded paths run.
@Suite struct ElementwiseKernelTests {
    @Test(arguments: [1, 7, 64, 1024])
    func groupStatisticsAreBitIdenticalToOneGroupAtATime(length: Int) {
        var rng = RandomGenerator(seed: 31)
        let groups = 13  // three blocks of four and a remainder
        let x = Tensor(randomNormal: [groups * length], scale: 5, using: &rng) + Tensor(repeating: 3, shape: [groups * length])
        var mean = [Float](repeating: .nan, count: groups), rstd = mean
        x.data.withUnsafeBufferPointer { xp in mean.withUnsafeMutableBufferPointer { mp in rstd.withUnsafeMutableBufferPointer { rp in
            // Two ranges, as parallelFor splits them: blocks start at each range's own lower bound.
            GroupNormKernels.statistics(xp.baseAddress!, length: length, eps: 1e-6, range: 0..<6, mean: mp.baseAddress!, rstd: rp.baseAddress!)
            GroupNormKernels.statistics(xp.baseAddress!, length: length, eps: 1e-6, range: 6..<groups, mean: mp.baseAddress!, rstd: rp.baseAddress!)
        } } }
        for g in 0..<groups {
            let part = Array(x.data[g * length ..< (g + 1) * length])
            var s: Double = 0
            for v in part { s += Double(v) }
            let m = s / Double(length)
            var q: Double = 0
            for v in part { q += (Double(v) - m) * (Double(v) - m) }
            #expect(mean[g].bitPattern == Float(m).bitPattern)
            #expect(rstd[g].bitPattern == Float(1 / (q / Double(length) + 1e-6).squareRoot()).bitPattern)
        }
    }

    @Test(arguments: [1, 9, 64])
    func channelSumsAreBitIdenticalToOneChannelAtATime(length: Int) {
        var rng = RandomGenerator(seed: 32)
        let channels = 21
        let x = Tensor(randomNormal: [channels * length], using: &rng), dy = Tensor(randomNormal: [channels * length], using: &rng)
        let centres = (0..<channels).map { Float($0 % 3) * 0.25 - 0.1 }
        var sums = [Float](repeating: .nan, count: 2 * channels)
        x.data.withUnsafeBufferPointer { xp in dy.data.withUnsafeBufferPointer { dp in sums.withUnsafeMutableBufferPointer { sp in
            GroupNormKernels.channelSums(x: xp.baseAddress!, dy: dp.baseAddress!, length: length, range: 0..<channels,
                                         centre: { centres[$0] }, sums: sp.baseAddress!)
        } } }
        for c in 0..<channels {
            var sdy: Float = 0, sdyx: Float = 0
            for i in c * length ..< (c + 1) * length { sdy += dy.data[i]; sdyx += dy.data[i] * (x.data[i] - centres[c]) }
            #expect(sums[2 * c].bitPattern == sdy.bitPattern && sums[2 * c + 1].bitPattern == sdyx.bitPattern)
        }
    }

    @Test func groupNormLayerIsBitIdenticalToOneGroupAtATime() {
        var rng = RandomGenerator(seed: 36)
        let (n, c, r) = (5, 24, 12)  // 6 groups of 4 channels: 30 groups, 120 channels (remainders for both)
        let gn = GroupNorm(channels: c)
        gn.gamma.value = Tensor(randomNormal: [c], using: &rng)
        gn.beta.value = Tensor(randomNormal: [c], using: &rng)
        let x = Tensor(randomNormal: [n, c, r, r], scale: 3, using: &rng), dy = Tensor(randomNormal: [n, c, r, r], using: &rng)
        let y = gn.forward(x), dx = gn.backward(dy)
        let p = GroupNormShape(batch: n, channels: c, spatial: r * r, groups: gn.groups, eps: gn.eps)
        var (yRef, dxRef) = ([Float](repeating: 0, count: x.count), [Float](repeating: 0, count: x.count))
        var mean = [Float](repeating: 0, count: n * gn.groups), rstd = mean
        var dGamma = [Float](repeating: 0, count: c), dBeta = dGamma
        x.data.withUnsafeBufferPointer { xp in gn.gamma.value.data.withUnsafeBufferPointer { gp in gn.beta.value.data.withUnsafeBufferPointer { bp in
            dy.data.withUnsafeBufferPointer { dp in
                GroupNormKernels.oneGroupAtATimeForward(p, x: xp.baseAddress!, gamma: gp.baseAddress!, beta: bp.baseAddress!,
                                                        y: &yRef, mean: &mean, rstd: &rstd)
                GroupNormKernels.oneChannelAtATimeBackward(p, x: xp.baseAddress!, gamma: gp.baseAddress!, mean: mean, rstd: rstd,
                                                           dy: dp.baseAddress!, dx: &dxRef, dGamma: &dGamma, dBeta: &dBeta)
            }
        } } }
        #expect(y.data.map(\.bitPattern) == yRef.map(\.bitPattern))
        #expect(dx.data.map(\.bitPattern) == dxRef.map(\.bitPattern))
        #expect(gn.gamma.grad.data.map(\.bitPattern) == dGamma.map(\.bitPattern) && gn.beta.grad.data.map(\.bitPattern) == dBeta.map(\.bitPattern))
    }

    @Test func wiringHelpersMatchPlainLoopsOnLargeTensors() {
        var rng = RandomGenerator(seed: 33)
        let (n, c, plane) = (4, 16, 32 * 32)
        let x = Tensor(randomNormal: [n, c, 32, 32], using: &rng), z = Tensor(randomNormal: [n, c, 32, 32], using: &rng)
        let e = Tensor(randomNormal: [n, c], using: &rng)
        let added = addChannelwise(x, e), sums = sumSpatial(x), scaled = addScaled(x, z, scale: 0.7)
        let joined = concatChannels(x, Tensor(randomNormal: [n, 3, 32, 32], using: &rng))
        for nc in 0..<n * c {
            var s: Float = 0
            for i in 0..<plane {
                let k = nc * plane + i
                #expect(added.data[k] == x.data[k] + e.data[nc])
                #expect(scaled.data[k] == (x.data[k] + z.data[k]) * 0.7)
                s += x.data[k]
            }
            #expect(sums.data[nc].bitPattern == s.bitPattern)
            let (b, ch) = (nc / c, nc % c)
            #expect(Array(joined.data[(b * (c + 3) + ch) * plane ..< (b * (c + 3) + ch + 1) * plane]) == Array(x.data[nc * plane ..< (nc + 1) * plane]))
        }
    }

    @Test func siluWithoutRetainingGivesTheSameOutput() {
        var rng = RandomGenerator(seed: 34)
        let x = Tensor(randomNormal: [2, 16, 32, 32], scale: 4, using: &rng)
        let retaining = SiLU(), sampling = SiLU()
        sampling.retainsForBackward = false
        #expect(retaining.forward(x).data == sampling.forward(x).data)
    }

    @Test func aForwardOnlyNetworkGivesTheSameBits() {
        let config = UNetConfig(imageChannels: 1, coordinates: false, modelChannels: 16, channelMult: [1, 2], numBlocks: 1,
                                attentionLevels: [1], dropout: 0)
        let net = SongUNet(config: config, seed: 5)
        var rng = RandomGenerator(seed: 35)
        let x = Tensor(randomNormal: [3, 1, 8, 8], using: &rng)
        let noise: [Float] = [-1.2, 0.3, 2.5]
        let training = net.forward(x, noiseLabels: noise)
        net.isTraining = false
        net.retainsForBackward = false
        #expect(net.forward(x, noiseLabels: noise).data == training.data)
        // Evaluation mode alone still allows a backward (gradients of a loss in eval mode).
        net.retainsForBackward = true
        _ = net.forward(x, noiseLabels: noise)
        #expect(net.backwardToInput(Tensor(repeating: 1, shape: training.shape)).shape == x.shape)
    }
}
