import CDNNL
import Foundation

/// The oneDNN backend: convolutions (forward, backward-data, backward-weights, with bias) run as
/// oneDNN primitives in the layouts oneDNN picks for this CPU (format `any`, e.g. nChw8c on
/// AVX2). Networks whose channel counts allow it keep their activations in that blocked layout
/// (`activationBlock`, `Tensor.blocked(_:)`), so those convolutions reorder only the OIHW
/// weights; NCHW activations are reordered at each call. fp32 1x1 convolutions between NCHW
/// buffers run as matmuls instead (no reorders).
/// SiLU runs as oneDNN's swish kernels, batched matmuls (attention) as its matmul and
/// attention's softmax as its softmax; single sgemm calls and GroupNorm stay on OpenBLAS / our
/// loops (`fallback`).
///
/// Primitives are created once per (geometry, bias, precision, thread count) and reused. Results
/// are bit-reproducible for a given oneDNN version, effective ISA and thread count: oneDNN's
/// kernels and their reduction order are chosen from exactly these (the cache key includes the
/// thread count, and `Engine.exclusive` serialises engine compute as for OpenBLAS).
public struct OneDNNBackend: ComputeBackend {
    public let precision: Precision
    /// Where the ops oneDNN does not cover here go (and the self-check's reference).
    public let fallback: BLASBackend
    let primitives: OneDNNConvCache
    let swish = OneDNNSwish()
    let matmuls = OneDNNMatmuls()
    let softmax = OneDNNSoftmax()

    public enum Failure: Error, CustomStringConvertible {
        case unavailable(String)
        case unsupported(String)
        public var description: String {
            switch self { case .unavailable(let s), .unsupported(let s): s }
        }
    }

    /// fp32 1x1 convolutions as matmuls (the default); off runs them as convolution primitives,
    /// for benchmarks comparing the two.
    public let pointwiseAsMatmul: Bool

    /// Fails when oneDNN cannot be loaded or the precision cannot run on this CPU.
    /// `blockedActivations: false` keeps networks NCHW (every convolution reorders) and
    /// `fusedGroupNormSiLU: false` runs GroupNorm and oneDNN's swish apart and `winograd: false`
    /// runs fp32 3x3 convolutions as direct ones, for benchmarks.
    public init(precision: Precision = .fp32, fallback: BLASBackend = BLASBackend(), pointwiseAsMatmul: Bool = true,
                blockedActivations: Bool = true, fusedGroupNormSiLU: Bool = true, winograd: Bool = true) throws {
        if let e = OneDNN.loadError { throw Failure.unavailable(e) }
        if let e = precision.unsupportedReason { throw Failure.unsupported(e) }
        (self.precision, self.fallback, self.pointwiseAsMatmul) = (precision, fallback, pointwiseAsMatmul)
        self.fusedGroupNormSiLU = fusedGroupNormSiLU
        // fp32 3x3 convolutions run as Winograd F(4x4, 3x3) where oneDNN implements it (AVX-512):
        // 1.46-2.61x the speed of its direct kernels on the U-Nets' shapes, outputs within ~3e-6
        // relative of them. oneDNN has no bf16 Winograd on x86, so bf16 stays direct.
        primitives = OneDNNConvCache(dtype: precision == .bf16 ? Int32(PD_DNNL_BF16) : Int32(PD_DNNL_F32), winograd: winograd)
        // Networks keep their activations in the layout oneDNN's convolutions pick here (asked of
        // a 3x3 convolution of the U-Net's kind). In bf16 the activations stay fp32 in that
        // layout: a convolution then converts its input to bf16 in place of a full reorder.
        activationBlock = blockedActivations ? primitives.activationBlock() : 1
    }

    /// The channel block of oneDNN's convolutions on this CPU (8 on AVX2, 16 on AVX-512).
    public let activationBlock: Int

    public var name: String { precision == .fp32 ? "onednn" : "onednn-bf16" }

    /// Bumped whenever a change alters the bits this backend computes, so stage keys made on it
    /// (`engine.numerics`) never restore results of older numerics. 1: convolutions; 2: also
    /// SiLU's gate and attention's batched products; 3: 1x1 convolutions as matmuls; 4: U-Net
    /// activations kept in oneDNN's blocked layout; 5: SiLU as swish (forward in one pass, the
    /// backward recomputing the gate); 6: bf16 networks' activations blocked too, attention's
    /// softmax on oneDNN, blocked GroupNorm's statistics in one pass; 7: GroupNorm and SiLU fused
    /// on blocked activations (our sigmoid in place of oneDNN's swish); 8: fp32 3x3 convolutions
    /// as Winograd F(4x4, 3x3) where oneDNN has it.
    public static let numericsRevision = 8

    public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        fallback.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                       beta: beta, c: c, ldc: ldc)
    }

    public func batchedSgemm(_ g: BatchedGemm, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
        matmuls.run(g, a: a, b: b, c: c)
    }

    public func conv2dForward(_ p: Conv2dShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>) {
        if runsAsMatmul(p) { return pointwiseForward(p, x: x, weight: weight, bias: bias, y: y) }
        primitives.run(p, bias: bias != nil, "forward") { conv in
            pd_dnnl_conv_forward(conv, x, weight, bias, y)
        }
    }

    /// oneDNN overwrites the weight and bias gradients; the seam accumulates, so they are
    /// computed into scratch and added (the layers' gradients start at zero each step, where the
    /// addition is exact).
    public func conv2dBackward(_ p: Conv2dShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                               dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?) {
        if runsAsMatmul(p) { return pointwiseBackward(p, x: x, weight: weight, dy: dy, dx: dx, dWeight: dWeight, dBias: dBias) }
        if let dx {
            primitives.run(p, bias: dBias != nil, "backward-data") { conv in pd_dnnl_conv_backward_data(conv, weight, dy, dx) }
        }
        convBackwardWeights(p, x: x, dy: dy, dWeight: dWeight, dBias: dBias)
    }

    func convBackwardWeights(_ p: Conv2dShape, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                             dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?) {
        let wCount = p.outChannels * p.inChannels * p.kernel * p.kernel
        let tmp = Scratch.buffer(.gemmOut, count: wCount + p.outChannels)
        primitives.run(p, bias: dBias != nil, "backward-weights") { conv in
            pd_dnnl_conv_backward_weights(conv, x, dy, tmp, dBias == nil ? nil : tmp + wCount)
        }
        for i in 0..<wCount { dWeight[i] += tmp[i] }
        if let dBias { for i in 0..<p.outChannels { dBias[i] += tmp[wCount + i] } }
    }

    public func groupNormForward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                 beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                 mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        fallback.groupNormForward(p, x: x, gamma: gamma, beta: beta, y: y, mean: mean, rstd: rstd)
    }

    public func groupNormBackward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                  mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                  dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>,
                                  dBeta: UnsafeMutablePointer<Float>) {
        fallback.groupNormBackward(p, x: x, gamma: gamma, mean: mean, rstd: rstd, dy: dy, dx: dx, dGamma: dGamma, dBeta: dBeta)
    }

    /// Fused where activations are blocked (every GroupNorm of a blocked U-Net): our kernel in one
    /// pass, where oneDNN's swish would read and write the normalised activations once more each way.
    public func fusesGroupNormSiLU(_ p: GroupNormShape) -> Bool { fusedGroupNormSiLU && p.block > 1 }
    let fusedGroupNormSiLU: Bool

    public func groupNormSiLUForward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                     beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                     mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        precondition(fusesGroupNormSiLU(p), "oneDNN fuses GroupNorm and SiLU on blocked activations only")
        GroupNormKernels.blockedSiLUForward(p, x: x, gamma: gamma, beta: beta, y: y, mean: mean, rstd: rstd)
    }

    public func groupNormSiLUBackward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                      beta: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                      dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                      dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>) {
        precondition(fusesGroupNormSiLU(p), "oneDNN fuses GroupNorm and SiLU on blocked activations only")
        GroupNormKernels.blockedSiLUBackward(p, x: x, gamma: gamma, beta: beta, mean: mean, rstd: rstd, dy: dy, dx: dx,
                                             dGamma: dGamma, dBeta: dBeta)
    }

    // MARK: 1x1 convolutions as matmuls
    //
    // A 1x1 convolution of NCHW images is one matrix product per image, y_n = W x_n, which the
    // matmul primitive reads in place. The convolution primitive reorders the activations to
    // nChw8c and back at every call: ~40 % of a 1x1 convolution's time (DNNL_VERBOSE).

    func runsAsMatmul(_ p: Conv2dShape) -> Bool {
        pointwiseAsMatmul && precision == .fp32 && p.kernel == 1 && p.padding == 0 && p.isPlain
    }

    /// Below 16x16 the per-image weight-gradient products are too small (`pdpipe-bench
    /// conv-backends`: 0.7x the primitive at 8x8, 1.0-1.6x from 16x16 up); there the primitive,
    /// which reduces over the batch itself, computes the weight gradients.
    static func weightGradientsAsMatmul(_ p: Conv2dShape) -> Bool { p.height * p.width >= 256 }

    /// The products of a 1x1 convolution: y_n = W x_n, dx_n = W^T dy_n (one W for all images),
    /// and the per-image weight gradients dy_n x_n^T.
    static func pointwiseProducts(_ p: Conv2dShape) -> (forward: BatchedGemm, backwardData: BatchedGemm, weights: BatchedGemm) {
        let (n, cin, cout, plane) = (p.batch, p.inChannels, p.outChannels, p.height * p.width)
        return (BatchedGemm(batch: n, m: cout, n: plane, k: cin, lda: cin, ldb: plane, ldc: plane,
                            strideA: 0, strideB: cin * plane, strideC: cout * plane),
                BatchedGemm(batch: n, m: cin, n: plane, k: cout, transA: true, lda: cin, ldb: plane, ldc: plane,
                            strideA: 0, strideB: cout * plane, strideC: cin * plane),
                BatchedGemm(batch: n, m: cout, n: cin, k: plane, transB: true, lda: plane, ldb: plane, ldc: cin,
                            strideA: cout * plane, strideB: cin * plane, strideC: cout * cin))
    }

    func pointwiseForward(_ p: Conv2dShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                          bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>) {
        let (cout, plane) = (p.outChannels, p.height * p.width)
        matmuls.run(Self.pointwiseProducts(p).forward, a: weight, b: x, c: y)
        guard let bias else { return }
        Engine.parallelFor(p.batch * cout, costPerItem: plane) { rows in
            for r in rows { let b = bias[r % cout], row = y + r * plane; for j in 0..<plane { row[j] += b } }
        }
    }

    func pointwiseBackward(_ p: Conv2dShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                           dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>,
                           dBias: UnsafeMutablePointer<Float>?) {
        let (n, cin, cout, plane) = (p.batch, p.inChannels, p.outChannels, p.height * p.width)
        let products = Self.pointwiseProducts(p)
        if let dx { matmuls.run(products.backwardData, a: weight, b: dy, c: dx) }
        guard Self.weightGradientsAsMatmul(p) else { return convBackwardWeights(p, x: x, dy: dy, dWeight: dWeight, dBias: dBias) }
        // dW = sum_n dy_n x_n^T: per-image products, then summed in image order.
        let perImage = Scratch.buffer(.gemmOut, count: n * cout * cin)
        matmuls.run(products.weights, a: dy, b: x, c: perImage)
        Engine.parallelFor(cout * cin, costPerItem: n) { entries in
            for i in entries {
                var s: Float = 0
                for image in 0..<n { s += perImage[image * cout * cin + i] }
                dWeight[i] += s
            }
        }
        guard let dBias else { return }
        // db[o] = sum over images and pixels of dy (in Double: up to batch x P terms).
        Engine.parallelFor(cout, costPerItem: n * plane) { channels in
            for o in channels {
                var s = 0.0
                for image in 0..<n { let row = dy + (image * cout + o) * plane; for j in 0..<plane { s += Double(row[j]) } }
                dBias[o] += Float(s)
            }
        }
    }

    /// SiLU as oneDNN's swish kernels: the forward in one pass (no gate kept: `sigmoid` is left
    /// untouched), the backward recomputing the gate from x.
    public var siluKeepsGate: Bool { false }

    public func siluForward(count: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, sigmoid: UnsafeMutablePointer<Float>?) {
        swish.forward(count: count, x: x, y: y)
    }

    public func siluBackward(count: Int, x: UnsafePointer<Float>, sigmoid: UnsafePointer<Float>?, dy: UnsafePointer<Float>,
                             dx: UnsafeMutablePointer<Float>) {
        swish.backward(count: count, x: x, dy: dy, dx: dx)
    }

    public func softmaxRows(_ m: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        softmax.forward(m, rows: rows, cols: cols)
    }

    /// Implementation names oneDNN chose for a geometry (forward, backward-data, backward-weights),
    /// creating the primitives if needed; for reports and benchmarks.
    public func implementations(_ p: Conv2dShape, bias: Bool = true) -> [String] {
        guard runsAsMatmul(p) else { return primitives.implementations(p, bias: bias) }
        let products = Self.pointwiseProducts(p)
        let viaMatmul = [products.forward, products.backwardData].map { "matmul " + matmuls.implementation($0) }
        return viaMatmul + [Self.weightGradientsAsMatmul(p) ? "matmul " + matmuls.implementation(products.weights)
                                                      : primitives.implementations(p, bias: bias)[2]]
    }
}

/// Primitives created once per key (everything that selects a kernel, the thread count
/// included) and reused; `destroy` frees one.
final class OneDNNPrimitives<Key: Hashable>: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [Key: OpaquePointer] = [:]
    private let destroy: (OpaquePointer) -> Void
    /// A training run sees a handful of geometries per patch size; far more means shapes churn
    /// (e.g. many batch sizes), so the oldest buffers are dropped rather than kept forever.
    static var capacity: Int { 96 }

    init(destroy: @escaping (OpaquePointer) -> Void) { self.destroy = destroy }
    deinit { for (_, c) in entries { destroy(c) } }

    /// The primitive for `key`, made by `create` (called under the lock) on first use.
    func primitive(_ key: Key, create: () -> OpaquePointer) -> OpaquePointer {
        lock.lock(); defer { lock.unlock() }
        if let c = entries[key] { return c }
        if entries.count >= Self.capacity {
            for (_, c) in entries { destroy(c) }
            entries.removeAll()
        }
        let c = create()
        entries[key] = c
        return c
    }
}

/// The convolution primitives of one backend, keyed by everything that selects a kernel.
final class OneDNNConvCache: Sendable {
    struct Key: Hashable { var shape: Conv2dShape, bias: Bool, threads: Int }
    let dtype: Int32
    let winograd: Bool
    private let entries = OneDNNPrimitives<Key>(destroy: { pd_dnnl_conv_destroy($0) })

    init(dtype: Int32, winograd: Bool) { (self.dtype, self.winograd) = (dtype, winograd) }

    /// Runs `body` with the primitives for `p` on the engine's thread count. A failure here means
    /// oneDNN broke after passing its self-check at start-up: stop rather than continue with
    /// garbage.
    func run(_ p: Conv2dShape, bias: Bool, _ what: String, _ body: (OpaquePointer) -> Int32) {
        let threads = Engine.threads
        let conv = primitive(p, bias: bias, threads: threads)
        pd_dnnl_set_threads(Int32(threads))  // per calling thread in OpenMP, so set every time
        guard body(conv) == 0 else { fatalError("oneDNN convolution \(what) failed for \(p)") }
    }

    func primitive(_ p: Conv2dShape, bias: Bool, threads: Int) -> OpaquePointer {
        entries.primitive(Key(shape: p, bias: bias, threads: threads)) {
            // oneDNN sizes its kernels' work split by the OpenMP thread count at creation.
            pd_dnnl_set_threads(Int32(threads))
            var err = [CChar](repeating: 0, count: 512)
            guard let c = pd_dnnl_conv_create(Int32(p.batch), Int32(p.inChannels), Int32(p.outChannels), Int32(p.height),
                                              Int32(p.width), Int32(p.kernel), Int32(p.padding), Int32(p.inputBlock),
                                              Int32(p.outputBlock), bias ? 1 : 0, dtype, 0, winograd ? 1 : 0,
                                              &err, err.count) else {
                fatalError("oneDNN: cannot create a convolution for \(p): \(OneDNN.string(err))")
            }
            return c
        }
    }

    /// The channel block of the layout the forward primitive picks for its input on this CPU.
    func activationBlock() -> Int {
        let probe = Conv2dShape(batch: 8, inChannels: 64, outChannels: 64, height: 16, width: 16, kernel: 3, padding: 1)
        return Int(pd_dnnl_conv_activation_block(primitive(probe, bias: true, threads: Engine.threads)))
    }

    func implementations(_ p: Conv2dShape, bias: Bool) -> [String] {
        let c = primitive(p, bias: bias, threads: Engine.threads)
        // Backward primitives are made on first use: make them by running on zeros once.
        let (x, w, y) = ([Float](repeating: 0, count: p.batch * p.inChannels * p.height * p.width),
                         [Float](repeating: 0, count: p.outChannels * p.inChannels * p.kernel * p.kernel),
                         [Float](repeating: 0, count: p.batch * p.outChannels * p.outHeight * p.outWidth))
        var dx = x, dw = w, db = [Float](repeating: 0, count: p.outChannels)
        pd_dnnl_set_threads(Int32(Engine.threads))
        _ = pd_dnnl_conv_backward_data(c, w, y, &dx)
        db.withUnsafeMutableBufferPointer { dbp in
            _ = pd_dnnl_conv_backward_weights(c, x, y, &dw, bias ? dbp.baseAddress : nil)
        }
        return (0..<3).map { pd_dnnl_conv_impl(c, Int32($0)).map { String(cString: $0) } ?? "none" }
    }
}

/// SiLU (swish with alpha 1) primitives, one per element count and thread count.
final class OneDNNSwish: Sendable {
    struct Key: Hashable { var count: Int, threads: Int }
    private let entries = OneDNNPrimitives<Key>(destroy: { pd_dnnl_eltwise_destroy($0) })

    private func primitive(count: Int) -> OpaquePointer {
        let threads = Engine.threads
        let e = entries.primitive(Key(count: count, threads: threads)) {
            pd_dnnl_set_threads(Int32(threads))
            var err = [CChar](repeating: 0, count: 512)
            guard let e = pd_dnnl_eltwise_create(Int32(PD_DNNL_SWISH), count, &err, err.count) else {
                fatalError("oneDNN: cannot create a swish over \(count) values: \(OneDNN.string(err))")
            }
            return e
        }
        pd_dnnl_set_threads(Int32(threads))
        return e
    }

    /// y = x / (1 + exp(-x)) over `count` values.
    func forward(count: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        guard pd_dnnl_eltwise_forward(primitive(count: count), x, y) == 0 else { fatalError("oneDNN swish failed over \(count) values") }
    }

    /// dx = dy * s * (1 + x * (1 - s)), s = sigmoid(x).
    func backward(count: Int, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>) {
        guard pd_dnnl_eltwise_backward(primitive(count: count), x, dy, dx) == 0 else {
            fatalError("oneDNN swish backward failed over \(count) values")
        }
    }
}

/// Row-wise softmax primitives, one per shape and thread count.
final class OneDNNSoftmax: Sendable {
    struct Key: Hashable { var rows: Int, cols: Int, threads: Int }
    private let entries = OneDNNPrimitives<Key>(destroy: { pd_dnnl_softmax_destroy($0) })

    func forward(_ m: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        let threads = Engine.threads
        let s = entries.primitive(Key(rows: rows, cols: cols, threads: threads)) {
            pd_dnnl_set_threads(Int32(threads))
            var err = [CChar](repeating: 0, count: 512)
            guard let s = pd_dnnl_softmax_create(rows, cols, &err, err.count) else {
                fatalError("oneDNN: cannot create a softmax over \(rows) x \(cols): \(OneDNN.string(err))")
            }
            return s
        }
        pd_dnnl_set_threads(Int32(threads))
        guard pd_dnnl_softmax_forward(s, m) == 0 else { fatalError("oneDNN softmax failed over \(rows) x \(cols)") }
    }
}

/// Batched matmul primitives of one backend, one per geometry (strides and alpha included) and
/// thread count.
final class OneDNNMatmuls: Sendable {
    struct Key: Hashable { var gemm: BatchedGemm, threads: Int }
    private let entries = OneDNNPrimitives<Key>(destroy: { pd_dnnl_matmul_destroy($0) })

    func primitive(_ g: BatchedGemm, threads: Int) -> OpaquePointer {
        entries.primitive(Key(gemm: g, threads: threads)) {
            pd_dnnl_set_threads(Int32(threads))
            var err = [CChar](repeating: 0, count: 512)
            guard let mm = pd_dnnl_matmul_create(g.batch, g.m, g.n, g.k, g.transA ? 1 : 0, g.transB ? 1 : 0, g.lda, g.ldb, g.ldc,
                                                 g.strideA, g.strideB, g.strideC, g.alpha, &err, err.count) else {
                fatalError("oneDNN: cannot create a matmul for \(g): \(OneDNN.string(err))")
            }
            return mm
        }
    }

    func run(_ g: BatchedGemm, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
        let threads = Engine.threads
        let mm = primitive(g, threads: threads)
        pd_dnnl_set_threads(Int32(threads))
        guard pd_dnnl_matmul_run(mm, a, b, c) == 0 else { fatalError("oneDNN matmul failed for \(g)") }
    }

    func implementation(_ g: BatchedGemm) -> String {
        pd_dnnl_matmul_impl(primitive(g, threads: Engine.threads)).map { String(cString: $0) } ?? "none"
    }
}
