import Foundation
import Testing
@testable import Engine

@Suite struct DiffusionUNetTests {
    static let tiny = UNetConfig(imageChannels: 1, coordinates: true, modelChannels: 8, channelMult: [1, 2],
                                 numBlocks: 1, attentionLevels: [1], dropout: 0)

    /// EDM initialises the last conv of each block near zero; for a gradient check every path must carry signal.
    static func randomize(_ net: SongUNet, seed: UInt64, scale: Float = 0.35) {
        var rng = RandomGenerator(seed: seed)
        for (name, p) in net.namedParameters() {
            let isNorm = name.contains("norm")
            p.value = Tensor(shape: p.shape, data: p.value.data.map { _ in (isNorm ? 1 : 0) + scale * rng.normal() })
        }
    }

    @Test func shapesParametersAndInit() {
        let net = SongUNet(config: Self.tiny, seed: 1)
        var rng = RandomGenerator(seed: 2)
        let x = Tensor(randomNormal: [2, 3, 8, 8], using: &rng)
        let y = net.forward(x, noiseLabels: [0.1, -0.4])
        #expect(y.shape == [2, 1, 8, 8])
        let names = net.namedParameters().map(\.name)
        #expect(Set(names).count == names.count, "parameter names are unique")
        // Output conv and each block's conv1 start at 1e-5 x xavier; biases at zero (EDM's init_zero / init_bias).
        let outW = net.namedParameters().first { $0.name == "out.conv.weight" }!.parameter.value
        let bound = 1e-5 * (6.0 / Double(8 * 9 + 1 * 9)).squareRoot()
        #expect(outW.data.allSatisfy { abs(Double($0)) <= bound * 1.0001 })
        #expect(net.namedParameters().filter { $0.name.hasSuffix("conv0.bias") }.allSatisfy { $0.parameter.value.data.allSatisfy { $0 == 0 } })
        // Tiny output at init: the net starts as F ~ 0.
        #expect(y.data.allSatisfy { abs($0) < 1e-3 })
        // Same seed, same weights.
        let again = SongUNet(config: Self.tiny, seed: 1)
        #expect(zip(net.parameters, again.parameters).allSatisfy { $0.value == $1.value })
    }

    @Test func backwardMatchesFiniteDifferences() {
        let net = SongUNet(config: Self.tiny, seed: 3)
        Self.randomize(net, seed: 4)
        var rng = RandomGenerator(seed: 5)
        let x = Tensor(randomNormal: [2, 3, 4, 4], using: &rng)
        let labels: [Float] = [0.3, -0.8]
        let y0 = net.forward(x, noiseLabels: labels)
        let r = Tensor(randomNormal: y0.shape, using: &rng)
        func loss() -> Double {
            let y = net.forward(x, noiseLabels: labels)
            return zip(y.data, r.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        net.zeroGrad()
        _ = net.forward(x, noiseLabels: labels)
        let dx = net.backwardToInput(r)
        // Probe a few entries of parameters on every kind of path: embedding MLP, input conv, encoder
        // down/attention blocks, decoder blocks with concatenated skips, skip convs, the output head.
        let probes = ["map.layer0.weight", "map.layer1.bias", "enc.L0.conv.weight", "enc.L0.block0.conv0.weight",
                      "enc.L1.down.skip.weight", "enc.L1.block0.attn.qkv.weight", "enc.L1.block0.affine.weight",
                      "dec.L1.in0.attn.proj.weight", "dec.L1.block1.norm2.weight", "dec.L0.up.conv0.weight",
                      "dec.L0.block0.skip.weight", "dec.L0.block1.norm0.bias", "out.norm.weight", "out.conv.bias"]
        let params = Dictionary(uniqueKeysWithValues: net.namedParameters().map { ($0.name, $0.parameter) })
        let h: Float = 1e-2
        var worst = 0.0
        for name in probes {
            guard let p = params[name] else { Issue.record("no parameter \(name)"); continue }
            for k in 0..<3 {
                let i = rng.integer(upTo: p.value.count - 1)
                let analytic = Double(p.grad.data[i])
                p.value.data[i] += h; let lp = loss()
                p.value.data[i] -= 2 * h; let lm = loss()
                p.value.data[i] += h
                let numeric = (lp - lm) / (2 * Double(h))
                let err = abs(numeric - analytic) / (2e-3 + 1e-2 * abs(analytic))
                worst = max(worst, err)
                #expect(err <= 1, "\(name)[\(i)] probe \(k): numeric \(numeric) analytic \(analytic)")
            }
        }
        var xv = x
        for _ in 0..<4 {
            let i = rng.integer(upTo: x.count - 1)
            xv.data[i] += h
            let lp = zip(net.forward(xv, noiseLabels: labels).data, r.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            xv.data[i] -= 2 * h
            let lm = zip(net.forward(xv, noiseLabels: labels).data, r.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            xv.data[i] += h
            let numeric = (lp - lm) / (2 * Double(h))
            #expect(abs(numeric - Double(dx.data[i])) <= 2e-3 + 1e-2 * abs(numeric), "input[\(i)]: \(numeric) vs \(dx.data[i])")
        }
        if ProcessInfo.processInfo.environment["PDPIPE_GRADCHECK_VERBOSE"] != nil { print("unet gradcheck worst error / tolerance \(worst)") }
    }

    @Test func flopCountMatchesHandCount() {
        // One level, one block, no coordinates: mapping, input conv, enc block, dec in0 (attention), in1,
        // two concatenating blocks with 1x1 skips, output conv. P = 8 * 8.
        let config = UNetConfig(imageChannels: 1, coordinates: false, modelChannels: 4, channelMult: [1], numBlocks: 1,
                                attentionLevels: [], dropout: 0)
        let net = SongUNet(config: config, seed: 0)
        let p = 64.0
        let mapping = 2.0 * 4 * 16 + 2.0 * 16 * 16
        let affine = 2.0 * 16 * 4
        let plainBlock = 2 * (2.0 * 4 * 4 * 9 * p) + affine
        let attention = 2.0 * 4 * 12 * p + 2.0 * 4 * 4 * p + 4.0 * p * p * 4
        let concatBlock = 2.0 * 8 * 4 * 9 * p + 2.0 * 4 * 4 * 9 * p + 2.0 * 8 * 4 * p + affine
        let expected = mapping + 2.0 * 1 * 4 * 9 * p + plainBlock + (plainBlock + attention) + plainBlock
            + 2 * concatBlock + 2.0 * 4 * 1 * 9 * p
        #expect(abs(net.forwardFlops(height: 8, width: 8) - expected) < 1e-6 * expected)
        // Patch schedule: at p = 1 the per-image cost is 3x the full-image forward.
        let full = net.trainingFlopsPerCountedImage(schedule: PatchSchedule(resolution: 32, realP: 1))
        #expect(abs(full - 3 * net.forwardFlops(height: 32, width: 32)) < 1e-6 * full)
    }
}
