/// The seam between layers and the numeric kernels.
///
/// Layers call only these entry points for their heavy work, so a second
/// implementation (e.g. oneDNN) can replace `BLASBackend` without touching the
/// layers' callers: construct layers with `backend:` or change `Engine.defaultBackend`.
/// Buffers are Float32, row-major; images are NCHW.
public protocol ComputeBackend: Sendable {
    var name: String { get }

    /// C = alpha * op(A) * op(B) + beta * C, row-major (CBLAS semantics).
    func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
               a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
               beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int)

    /// Independent products C_i = alpha * op(A_i) * op(B_i) for i in 0..<batch (C overwritten),
    /// e.g. attention's per-image matrices; geometry, strides and alpha in `g`.
    func batchedSgemm(_ g: BatchedGemm, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>)

    /// y[N, Cout, H', W'] = conv(x[N, Cin, H, W], w[Cout, Cin, k, k]) + bias, stride 1, padding `pad`.
    func conv2dForward(_ p: Conv2dShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                       bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>)
    /// Given dy, returns dx (overwritten) and accumulates into dWeight / dBias.
    func conv2dBackward(_ p: Conv2dShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                        dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?)

    /// GroupNorm forward: y = (x - mean_g) * rstd_g * gamma_c + beta_c; writes mean/rstd per (n, g).
    func groupNormForward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                          beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                          mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>)
    /// GroupNorm backward: writes dx, accumulates dGamma / dBeta.
    func groupNormBackward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                           mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                           dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>,
                           dBeta: UnsafeMutablePointer<Float>)

    /// GroupNorm then SiLU, y = silu(GroupNorm(x)), as one pass over memory where
    /// `fusesGroupNormSiLU` says so (the layers call GroupNorm and SiLU in turn elsewhere);
    /// writes mean/rstd as `groupNormForward` does.
    func groupNormSiLUForward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                              beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                              mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>)
    /// Its backward from x (GroupNorm's output recomputed): writes dx, accumulates dGamma / dBeta.
    func groupNormSiLUBackward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                               beta: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                               dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                               dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>)
    /// Whether the two calls above run fused for this geometry.
    func fusesGroupNormSiLU(_ p: GroupNormShape) -> Bool

    /// SiLU forward over `count` values: y = x * sigmoid(x); with `sigmoid` given (backends that
    /// keep the gate, `siluKeepsGate`), also stores the gate sigmoid(x) there for the backward.
    func siluForward(count: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, sigmoid: UnsafeMutablePointer<Float>?)
    /// SiLU backward: dx = dy * s * (1 + x * (1 - s)) with s = sigmoid(x), read from the kept
    /// gate when the backend keeps one, else computed anew from x.
    func siluBackward(count: Int, x: UnsafePointer<Float>, sigmoid: UnsafePointer<Float>?, dy: UnsafePointer<Float>,
                      dx: UnsafeMutablePointer<Float>)
    /// Whether the backward reads a gate kept by the forward (OpenBLAS: saves an exp per element)
    /// or recomputes it (oneDNN: one pass fewer over memory in the forward).
    var siluKeepsGate: Bool { get }

    /// Softmax of each row of an [rows, cols] buffer, in place (attention's scores).
    func softmaxRows(_ m: UnsafeMutablePointer<Float>, rows: Int, cols: Int)

    /// The channel block the backend's convolutions compute in (oneDNN: 8 on AVX2, 16 on
    /// AVX-512). A network whose channel counts are multiples of it keeps its activations in that
    /// layout between convolutions (`Tensor.blocked(_:)`), so they need no reorders; 1: NCHW.
    var activationBlock: Int { get }
}

extension ComputeBackend {
    public var activationBlock: Int { 1 }
    public var siluKeepsGate: Bool { true }
    public func fusesGroupNormSiLU(_ p: GroupNormShape) -> Bool { false }

    /// Unfused: GroupNorm into a buffer, then SiLU.
    public func groupNormSiLUForward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                     beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                     mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        let count = p.batch * p.channels * p.spatial
        let z = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { z.deallocate() }
        groupNormForward(p, x: x, gamma: gamma, beta: beta, y: z, mean: mean, rstd: rstd)
        siluForward(count: count, x: z, y: y, sigmoid: nil)
    }

    /// Unfused: GroupNorm's output again (the same mean and rstd), SiLU's backward, GroupNorm's.
    public func groupNormSiLUBackward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                      beta: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                      dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                      dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>) {
        let count = p.batch * p.channels * p.spatial, groups = p.batch * p.groups
        let z = UnsafeMutablePointer<Float>.allocate(capacity: 3 * count), dz = z + count, gate = z + 2 * count
        let statistics = UnsafeMutablePointer<Float>.allocate(capacity: 2 * groups)
        defer { z.deallocate(); statistics.deallocate() }
        groupNormForward(p, x: x, gamma: gamma, beta: beta, y: z, mean: statistics, rstd: statistics + groups)
        if siluKeepsGate { siluForward(count: count, x: z, y: dz, sigmoid: gate) }  // dz: scratch until below
        siluBackward(count: count, x: z, sigmoid: siluKeepsGate ? UnsafePointer(gate) : nil, dy: dy, dx: dz)
        groupNormBackward(p, x: x, gamma: gamma, mean: mean, rstd: rstd, dy: dz, dx: dx, dGamma: dGamma, dBeta: dBeta)
    }

    /// Our loops (`sequentialSoftmaxRows`), rows split across threads.
    public func softmaxRows(_ m: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        Engine.parallelFor(rows, costPerItem: 4 * cols) { r in sequentialSoftmaxRows(m + r.lowerBound * cols, rows: r.count, cols: cols) }
    }
}

/// Geometry of a stride-1 square-kernel convolution, with the layouts of its activations:
/// `inputBlock` for x and dx, `outputBlock` for y and dy (1: NCHW; b: channel blocks of b,
/// `Tensor.blocked(_:)`, only where the backend's `activationBlock` is b).
public struct Conv2dShape: Hashable, Sendable {
    public var batch, inChannels, outChannels, height, width, kernel, padding: Int
    public var inputBlock, outputBlock: Int
    public init(batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int, kernel: Int, padding: Int,
                inputBlock: Int = 1, outputBlock: Int = 1) {
        (self.batch, self.inChannels, self.outChannels) = (batch, inChannels, outChannels)
        (self.height, self.width, self.kernel, self.padding) = (height, width, kernel, padding)
        (self.inputBlock, self.outputBlock) = (inputBlock, outputBlock)
    }
    public var isPlain: Bool { inputBlock == 1 && outputBlock == 1 }
    public var outHeight: Int { height + 2 * padding - kernel + 1 }
    public var outWidth: Int { width + 2 * padding - kernel + 1 }
    /// Multiply-adds of the forward pass times two (backward costs twice this).
    public var forwardFlops: Double {
        2.0 * Double(batch * outChannels * outHeight * outWidth) * Double(inChannels * kernel * kernel)
    }
}

/// A batch of row-major matrix products: item i reads A at a + i*strideA (op(A) is [m, k]; with
/// `transA` A is stored [k, m]), B at b + i*strideB (op(B) is [k, n]) and writes C [m, n] at
/// c + i*strideC; lda/ldb/ldc are the stored rows' lengths (strides let callers read interleaved
/// buffers in place). A strideA or strideB of 0 uses one matrix for every item.
public struct BatchedGemm: Hashable, Sendable {
    public var batch, m, n, k: Int
    public var transA, transB: Bool
    public var lda, ldb, ldc: Int
    public var strideA, strideB, strideC: Int
    public var alpha: Float
    public init(batch: Int, m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false, lda: Int, ldb: Int, ldc: Int,
                strideA: Int, strideB: Int, strideC: Int, alpha: Float = 1) {
        (self.batch, self.m, self.n, self.k, self.transA, self.transB) = (batch, m, n, k, transA, transB)
        (self.lda, self.ldb, self.ldc, self.strideA, self.strideB, self.strideC) = (lda, ldb, ldc, strideA, strideB, strideC)
        self.alpha = alpha
    }
    public var flops: Double { 2 * Double(batch) * Double(m) * Double(n) * Double(k) }
}

/// GroupNorm's geometry; `block` > 1: the activations are in channel blocks of that size.
public struct GroupNormShape: Hashable, Sendable {
    public var batch, channels, spatial, groups: Int
    public var eps: Float
    public var block: Int
    public init(batch: Int, channels: Int, spatial: Int, groups: Int, eps: Float, block: Int = 1) {
        (self.batch, self.channels, self.spatial, self.groups, self.eps) = (batch, channels, spatial, groups, eps)
        self.block = block
    }
}
