import Foundation
import Testing
@testable import Engine

/// The oneDNN backend against the OpenBLAS backend (an independent im2col + sgemm computation),
/// against finite differences, for reproducibility, and the start-up selection / fallback.
/// Skipped where libdnnl2 is not installed.
@Suite(.enabled(if: OneDNN.isAvailable, "oneDNN (libdnnl2) not installed"))
struct BackendOneDNNTests {
    /// Geometries of the U-Net (3x3 "same", 1x1 skips, odd channel counts of the input conv with
    /// coordinates, batch 1 of single-image sampling) plus odd sizes and padding 0.
    static let shapes: [Conv2dShape] = [
        Conv2dShape(batch: 4, inChannels: 3, outChannels: 16, height: 16, width: 16, kernel: 3, padding: 1),
        Conv2dShape(batch: 2, inChannels: 32, outChannels: 32, height: 8, width: 8, kernel: 3, padding: 1),
        Conv2dShape(batch: 2, inChannels: 48, outChannels: 32, height: 8, width: 8, kernel: 1, padding: 0),
        // 1x1 from 16x16 up: weight gradients from per-image matmuls too (below, from the primitive).
        Conv2dShape(batch: 3, inChannels: 12, outChannels: 20, height: 16, width: 16, kernel: 1, padding: 0),
        Conv2dShape(batch: 1, inChannels: 16, outChannels: 8, height: 4, width: 4, kernel: 3, padding: 1),
        Conv2dShape(batch: 3, inChannels: 5, outChannels: 7, height: 5, width: 9, kernel: 3, padding: 0),
        Conv2dShape(batch: 2, inChannels: 6, outChannels: 4, height: 1, width: 2, kernel: 3, padding: 1),
    ]

    /// fp32: outputs and every gradient within relative L2 1e-5 of OpenBLAS (both accumulate in
    /// Float32 in different orders; measured ~1e-7), with accumulation into existing gradients.
    @Test(arguments: shapes, [true, false])
    func convMatchesOpenBLAS(shape: Conv2dShape, bias: Bool) throws {
        let dnnl = try OneDNNBackend()
        let ours = ConvResults(dnnl, shape, bias: bias, seed: 21)
        let reference = ConvResults(BLASBackend(), shape, bias: bias, seed: 21)
        for (name, a, r) in zip4(["y", "dx", "dW", "dB"], ours.all, reference.all) {
            let e = BackendSelection.relativeL2(a, r)
            #expect(e < 1e-5, "\(name) of \(shape) bias=\(bias): relative L2 \(e)")
        }
    }

    /// fp32 3x3 convolutions with channels in blocks of 16 run as Winograd F(4x4, 3x3) where
    /// oneDNN has it (AVX-512), direct elsewhere and when turned off; either way every output and
    /// gradient stays within 1e-5 of OpenBLAS and of oneDNN's direct kernels.
    @Test(arguments: [Conv2dShape(batch: 4, inChannels: 32, outChannels: 32, height: 16, width: 16, kernel: 3, padding: 1),
                      Conv2dShape(batch: 2, inChannels: 48, outChannels: 16, height: 8, width: 8, kernel: 3, padding: 1),
                      Conv2dShape(batch: 3, inChannels: 16, outChannels: 32, height: 4, width: 4, kernel: 3, padding: 1)])
    func winogradConvMatchesDirectAndOpenBLAS(shape: Conv2dShape) throws {
        let winograd = try OneDNNBackend(), direct = try OneDNNBackend(winograd: false)
        let hasWinograd = OneDNN.effectiveISA?.includes(.avx512Core) == true
        for (i, impl) in winograd.implementations(shape).enumerated() {
            #expect(impl.contains("wino") == hasWinograd, "direction \(i) of \(shape): \(impl)")
        }
        #expect(direct.implementations(shape).allSatisfy { !$0.contains("wino") })
        let ours = ConvResults(winograd, shape, bias: true, seed: 31)
        let references = [ConvResults(direct, shape, bias: true, seed: 31), ConvResults(BLASBackend(), shape, bias: true, seed: 31)]
        for reference in references {
            for (name, a, r) in zip4(["y", "dx", "dW", "dB"], ours.all, reference.all) {
                let e = BackendSelection.relativeL2(a, r)
                #expect(e < 1e-5, "\(name) of \(shape): relative L2 \(e)")
            }
        }
    }

    /// Direct and Winograd kernels (oneDNN runs even these 3 -> 4 channels as Winograd on AVX-512,
    /// padding the channels). The check's loss is quadratic in each input and weight, so central
    /// differences are exact at any step: a step of 0.1 keeps Winograd's fp32 rounding (~1e-6
    /// relative, not smooth in the inputs) out of the numeric derivative, which at 0.01 it is not.
    @Test(arguments: [(3, 1, true), (1, 0, true), (3, 0, false)].flatMap { c in [true, false].map { (c.0, c.1, c.2, $0) } })
    func conv2dGradientsMatchFiniteDifferences(kernel: Int, padding: Int, bias: Bool, winograd: Bool) throws {
        let dnnl = try OneDNNBackend(winograd: winograd)
        var rng = RandomGenerator(seed: 11)
        let conv = Conv2d(inChannels: 3, outChannels: 4, kernel: kernel, padding: padding, bias: bias, rng: &rng, backend: dnnl)
        LayerGradientTests.randomize(conv)
        let failures = GradientCheck(h: 0.1).check(conv, input: LayerGradientTests.input([3, 3, 5, 7]))
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func selfAttentionGradientsMatchFiniteDifferences() throws {
        let dnnl = try OneDNNBackend()
        var rng = RandomGenerator(seed: 14)
        let layer = SelfAttention(channels: 4, projInit: .xavierUniform, rng: &rng, backend: dnnl)
        LayerGradientTests.randomize(layer)
        let failures = GradientCheck().check(layer, input: LayerGradientTests.input([2, 4, 3, 5]))
        #expect(failures.isEmpty, "\(failures)")
    }

    /// A backend's primitives are cached and used by whichever thread runs the next stage, so one
    /// made on one thread must run on another with the same bytes. (oneDNN's default scratchpad
    /// lives in the creating thread's storage: Winograd convolutions run elsewhere crashed.)
    @Test func primitivesRunOnAnotherThreadThanTheirCreator() async throws {
        let dnnl = try OneDNNBackend()
        let p = Conv2dShape(batch: 4, inChannels: 32, outChannels: 32, height: 16, width: 16, kernel: 3, padding: 1)
        let here = ConvResults(dnnl, p, bias: true, seed: 41)
        let there = await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: ConvResults(dnnl, p, bias: true, seed: 41)) }.start()
        }
        #expect(here.all == there.all)
    }

    /// Same configuration, same bytes: twice on one backend and once on a fresh one (new primitives).
    @Test func bitReproducibleForAThreadCount() throws {
        let p = Conv2dShape(batch: 8, inChannels: 32, outChannels: 32, height: 16, width: 16, kernel: 3, padding: 1)
        let a = ConvResults(try OneDNNBackend(), p, bias: true, seed: 5)
        let b = ConvResults(try OneDNNBackend(), p, bias: true, seed: 5)
        let dnnl = try OneDNNBackend()
        _ = ConvResults(dnnl, p, bias: true, seed: 6)
        let c = ConvResults(dnnl, p, bias: true, seed: 5)
        #expect(a.all == b.all)
        #expect(a.all == c.all)
    }

    /// The whole U-Net (convs and SiLU's gate on oneDNN, the rest unchanged) against the OpenBLAS path: output
    /// and every parameter gradient within relative L2 1e-4 (deeper chains of fp32 rounding).
    /// The experiments' U-Net kind with 16 model channels: its activations stay in oneDNN's blocks
    /// (8 or 16 channels) between the first and last convolutions.
    static let blockable = UNetConfig(imageChannels: 3, coordinates: true, modelChannels: 16, channelMult: [1, 2],
                                      numBlocks: 1, attentionLevels: [1], dropout: 0)

    @Test(arguments: [DiffusionUNetTests.tiny, blockable]) func unetGradientsMatchOpenBLAS(config: UNetConfig) throws {
        let dnnl = try OneDNNBackend()
        let (y1, g1) = Self.outputAndGradients(config, dnnl), (y0, g0) = Self.outputAndGradients(config, BLASBackend())
        #expect(BackendSelection.relativeL2(y1.data, y0.data) < 1e-4)
        #expect(g1.count == g0.count)
        for (i, (a, r)) in zip(g1, g0).enumerated() where r.contains(where: { $0 != 0 }) {
            let e = BackendSelection.relativeL2(a, r)
            #expect(e < 1e-4, "gradient \(i): relative L2 \(e)")
        }
    }

    /// The U-Net's output and its input and parameter gradients for one random cotangent.
    static func outputAndGradients(_ config: UNetConfig, _ backend: any ComputeBackend) -> (Tensor, [[Float]]) {
        let net = Engine.withBackend(backend) { SongUNet(config: config, seed: 3) }
        if config == Self.blockable && backend is OneDNNBackend { #expect(net.activationBlock > 1) }
        DiffusionUNetTests.randomize(net, seed: 4)
        var rng = RandomGenerator(seed: 5)
        let x = Tensor(randomNormal: [2, config.inChannels, 8, 8], using: &rng)
        net.zeroGrad()
        let y = net.forward(x, noiseLabels: [0.3, -0.8])
        let dx = net.backwardToInput(Tensor(randomNormal: y.shape, using: &rng))
        return (y, [dx.data] + net.parameters.map(\.grad.data))
    }

    /// bf16 mixed precision through the whole U-Net (blocked activations, as a bf16 network runs)
    /// against the fp32 OpenBLAS path. The stated bound: output within relative L2 3e-2, every
    /// gradient tensor within 1e-1 and their median within 5e-2 (bf16 keeps 8 mantissa bits: up to
    /// 4e-3 per rounding, and a gradient passes through up to a dozen bf16 convolutions; measured
    /// on avx512_core_bf16: output 8e-3, median 1.7e-2, worst 3.5e-2). A bf16 run that fell back to
    /// fp32 would be ~1e-6 and fail the lower bound.
    @Test(.enabled(if: Precision.bf16.unsupportedReason == nil, "no native bf16 kernels on this CPU"))
    func bf16UNetGradientsMatchOpenBLASLoosely() throws {
        let bf16 = try OneDNNBackend(precision: .bf16)
        let (y1, g1) = Self.outputAndGradients(Self.blockable, bf16), (y0, g0) = Self.outputAndGradients(Self.blockable, BLASBackend())
        let ey = BackendSelection.relativeL2(y1.data, y0.data)
        #expect(ey > 1e-4 && ey < 3e-2, "output: relative L2 \(ey)")
        #expect(g1.count == g0.count)
        var errors: [Double] = []
        for (i, (a, r)) in zip(g1, g0).enumerated() where r.contains(where: { $0 != 0 }) {
            let e = BackendSelection.relativeL2(a, r)
            errors.append(e)
            #expect(e < 1e-1, "gradient \(i): relative L2 \(e)")
        }
        let median = errors.sorted()[errors.count / 2]
        #expect(median > 1e-4 && median < 5e-2, "median gradient error \(median)")
    }

    /// Softmax rows from oneDNN against exp(x - max) / sum exp(x - max) in Float64, with
    /// attention's row lengths (8x8, 16x16) and rows large enough to be split across threads.
    @Test(arguments: [(3, 5), (128, 64), (2048, 256)]) func softmaxMatchesItsDefinition(rows: Int, cols: Int) throws {
        let dnnl = try OneDNNBackend()
        var rng = RandomGenerator(seed: UInt64(rows))
        let x = Tensor(randomNormal: [rows * cols], scale: 4, using: &rng).data
        var y = x
        dnnl.softmaxRows(&y, rows: rows, cols: cols)
        var worst = 0.0
        for r in 0..<rows {
            let row = x[r * cols ..< (r + 1) * cols].map(Double.init), top = row.max()!
            let e = row.map { exp($0 - top) }, total = e.reduce(0, +)
            for j in 0..<cols { worst = max(worst, abs(Double(y[r * cols + j]) - e[j] / total) / (e[j] / total + 1e-30)) }
        }
        #expect(worst < 1e-5, "largest relative error \(worst)")
    }

    /// SiLU from oneDNN's swish kernels against x / (1 + exp(-x)) and its derivative
    /// s (1 + x (1 - s)) in Float64, elementwise, over sizes below and above the threads' split
    /// and values out to where exp saturates. oneDNN keeps no gate: `sigmoid` stays untouched.
    @Test(arguments: [1, 7, 40_000]) func siluMatchesItsDefinition(count: Int) throws {
        let dnnl = try OneDNNBackend()
        #expect(!dnnl.siluKeepsGate)
        var rng = RandomGenerator(seed: UInt64(count))
        var x = Tensor(randomNormal: [count], scale: 6, using: &rng).data
        for (i, v) in [-100, -30, -1e-6, 0, 1e-6, 30, 100].enumerated() where i < count { x[i] = Float(v) }
        let dy = Tensor(randomNormal: [count], using: &rng).data
        var y = [Float](repeating: .nan, count: count), dx = y, s = y
        dnnl.siluForward(count: count, x: x, y: &y, sigmoid: &s)
        dnnl.siluBackward(count: count, x: x, sigmoid: nil, dy: dy, dx: &dx)
        #expect(s.allSatisfy { $0.isNaN })
        for i in 0..<count {
            let v = Double(x[i]), gate = 1 / (1 + exp(-v)), slope = gate * (1 + v * (1 - gate))
            // Relative 1e-6 (forward) and 2e-6 (backward; near x = -1.28, where the slope crosses
            // zero, against the largest term), absolute 1e-30 where the gate is subnormal in Float
            // (x < -87): oneDNN flushes those to 0.
            #expect(abs(Double(y[i]) - v * gate) <= 1e-6 * abs(v * gate) + 1e-30, "silu(\(x[i])) = \(y[i])")
            let want = Double(dy[i]) * slope, scale = abs(Double(dy[i])) * max(abs(slope), gate, abs(v) * gate * (1 - gate))
            #expect(abs(Double(dx[i]) - want) <= 2e-6 * scale + 1e-30, "silu'(\(x[i])) dy = \(dx[i]), want \(want)")
        }
    }

    /// On oneDNN too, sampling mode (nothing kept for backward) gives the training forward's bits,
    /// and the layer's gradient matches finite differences.
    @Test func siluLayerOnOneDNN() throws {
        let dnnl = try OneDNNBackend()
        var rng = RandomGenerator(seed: 34)
        let x = Tensor(randomNormal: [2, 16, 32, 32], scale: 4, using: &rng)
        let retaining = SiLU(backend: dnnl), sampling = SiLU(backend: dnnl)
        sampling.retainsForBackward = false
        #expect(retaining.forward(x).data == sampling.forward(x).data)
        let failures = GradientCheck().check(SiLU(backend: dnnl), input: LayerGradientTests.input([3, 2, 5, 7]).scaled(2))
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func selfCheckPassesAndSelectionPicksOneDNN() throws {
        #expect(BackendSelection.selfCheckError(try OneDNNBackend()) < BackendSelection.tolerance)
        let (b, r) = BackendSelection.decide(setting: "auto", makeOneDNN: { try OneDNNBackend() })
        #expect(b.name == "onednn" && r.backend == "onednn")
        // Unset means auto: oneDNN where it loads and agrees with OpenBLAS.
        #expect(BackendSelection.decide(setting: nil, makeOneDNN: { try OneDNNBackend() }).0.name == "onednn")
        #expect(r.description.contains("oneDNN \(OneDNN.version!)"))
        #expect(BackendSelection.decide(setting: "onednn", makeOneDNN: { try OneDNNBackend() }).0.name == "onednn")
    }

    @Test func layersBuiltInABackendScopeUseIt() throws {
        let dnnl = try OneDNNBackend()
        var rng = RandomGenerator(seed: 1)
        let inside = Engine.withBackend(dnnl) { Conv2d(inChannels: 1, outChannels: 1, kernel: 3, rng: &rng) }
        let outside = Conv2d(inChannels: 1, outChannels: 1, kernel: 3, rng: &rng)
        #expect(inside.backend.name == "onednn")
        let net = Engine.withBackend(dnnl) { SongUNet(config: DiffusionUNetTests.tiny, seed: 3) }
        #expect(net.siluLayers.allSatisfy { $0.backend.name == "onednn" })
        #expect(outside.backend.name == Engine.defaultBackend.name)
    }

    /// bf16 runs only with native bf16 kernels; here (AVX2 or AVX-512 without BF16) it must be
    /// refused with a reason, never emulated or silently run in fp32. Where it runs: relative L2
    /// against fp32 below 1e-2 (bf16 has 8 mantissa bits: ~2e-3 expected).
    @Test func bf16OnlyWithNativeKernels() throws {
        let native = OneDNN.effectiveISA?.hasNativeBF16 ?? false
        #expect((Precision.bf16.unsupportedReason == nil) == native)
        guard native else {
            #expect(throws: OneDNNBackend.Failure.self) { try OneDNNBackend(precision: .bf16) }
            #expect(throws: OneDNNBackend.Failure.self) { try Engine.backend(for: .bf16) }
            return
        }
        let p = Conv2dShape(batch: 4, inChannels: 32, outChannels: 32, height: 8, width: 8, kernel: 3, padding: 1)
        let bf = ConvResults(try OneDNNBackend(precision: .bf16), p, bias: true, seed: 9)
        let fp = ConvResults(BLASBackend(), p, bias: true, seed: 9)
        for (a, r) in zip(bf.all, fp.all) { #expect(BackendSelection.relativeL2(a, r) < 1e-2) }
    }
}

/// Selection logic without the library (runs everywhere).
@Suite struct BackendSelectionTests {
    struct Broken: Error, CustomStringConvertible { var description: String { "libdnnl.so.2: cannot open shared object file" } }

    @Test func fallsBackWhenOneDNNIsMissing() {
        let (b, r) = BackendSelection.decide(setting: "auto", makeOneDNN: { throw Broken() })
        #expect(b.name == "openblas")
        #expect(r.detail.contains("fallback") && r.detail.contains("cannot open"))
        #expect(BackendSelection.decide(setting: "onednn", makeOneDNN: { throw Broken() }).0.name == "openblas")
        #expect(BackendSelection.decide(setting: nil, makeOneDNN: { throw Broken() }).0.name == "openblas")
    }

    @Test(.enabled(if: OneDNN.isAvailable)) func fallsBackWhenTheSelfCheckFails() {
        let (b, r) = BackendSelection.decide(setting: "onednn", makeOneDNN: { try OneDNNBackend() }, check: { _ in 0.3 })
        #expect(b.name == "openblas")
        #expect(r.selfCheckError == 0.3 && r.detail.contains("self-check"))
        let nan = BackendSelection.decide(setting: "auto", makeOneDNN: { try OneDNNBackend() }, check: { _ in .nan })
        #expect(nan.0.name == "openblas")
    }

    @Test func openblasWhenAskedOrUnknown() {
        var made = false
        let (b, r) = BackendSelection.decide(setting: "openblas", makeOneDNN: { made = true; throw Broken() })
        #expect(b.name == "openblas" && r.detail == "PDPIPE_BACKEND=openblas" && !made)
        let (u, ur) = BackendSelection.decide(setting: "cuda", makeOneDNN: { throw Broken() })
        #expect(u.name == "openblas" && ur.detail.contains("unknown"))
    }

    /// The self-check's metric flags a wrong convolution, batched product, SiLU or softmax (it
    /// compares with OpenBLAS).
    @Test(arguments: [Off.Fault.conv, .matmul, .silu, .siluBackward, .softmax]) func selfCheckDetectsAWrongOp(fault: Off.Fault) {
        #expect(BackendSelection.selfCheckError(BLASBackend()) == 0)
        #expect(BackendSelection.selfCheckError(Off(fault: nil)) == 0)
        #expect(BackendSelection.selfCheckError(Off(fault: fault)) > BackendSelection.tolerance)
    }

    /// OpenBLAS with one output off by 0.01 in the op named by `fault`.
    struct Off: ComputeBackend {
        enum Fault: Sendable { case conv, matmul, silu, siluBackward, softmax }
        let fault: Fault?
        let inner = BLASBackend()
        var name: String { "off" }
        func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                   b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
            inner.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                        beta: beta, c: c, ldc: ldc)
        }
        func batchedSgemm(_ g: BatchedGemm, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
            inner.batchedSgemm(g, a: a, b: b, c: c)
            if fault == .matmul { c[0] += 0.01 }
        }
        func conv2dForward(_ p: Conv2dShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>) {
            inner.conv2dForward(p, x: x, weight: weight, bias: bias, y: y)
            if fault == .conv { y[0] += 0.01 }
        }
        func conv2dBackward(_ p: Conv2dShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                            dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?) {
            inner.conv2dBackward(p, x: x, weight: weight, dy: dy, dx: dx, dWeight: dWeight, dBias: dBias)
        }
        func groupNormForward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                              y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
            inner.groupNormForward(p, x: x, gamma: gamma, beta: beta, y: y, mean: mean, rstd: rstd)
        }
        func groupNormBackward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                               rstd: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                               dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>) {
            inner.groupNormBackward(p, x: x, gamma: gamma, mean: mean, rstd: rstd, dy: dy, dx: dx, dGamma: dGamma, dBeta: dBeta)
        }
        func siluForward(count: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, sigmoid: UnsafeMutablePointer<Float>?) {
            inner.siluForward(count: count, x: x, y: y, sigmoid: sigmoid)
            if fault == .silu { y[0] += 0.01 }
        }
        var siluKeepsGate: Bool { inner.siluKeepsGate }
        func siluBackward(count: Int, x: UnsafePointer<Float>, sigmoid: UnsafePointer<Float>?, dy: UnsafePointer<Float>,
                          dx: UnsafeMutablePointer<Float>) {
            inner.siluBackward(count: count, x: x, sigmoid: sigmoid, dy: dy, dx: dx)
            if fault == .siluBackward { dx[0] += 0.01 }
        }
        func softmaxRows(_ m: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
            inner.softmaxRows(m, rows: rows, cols: cols)
            if fault == .softmax { m[0] += 0.01 }
        }
    }
}

private func zip4<A, B, C>(_ a: [A], _ b: [B], _ c: [C]) -> [(A, B, C)] {
    zip(a, zip(b, c)).map { ($0, $1.0, $1.1) }
}
