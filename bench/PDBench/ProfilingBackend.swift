import Engine
import Foundation

/// Forwards every call to another backend and times it by op. An op's time is the wall time
/// during which at least one of its calls runs (the union of their intervals): attention calls
/// sgemm from two threads at once, and summing both would count that time twice.
final class ProfilingBackend: ComputeBackend, @unchecked Sendable {
    enum Op: String, CaseIterable {
        case convForward = "conv forward", convBackward = "conv backward", matmul = "matmul", normForward = "GroupNorm forward",
             normBackward = "GroupNorm backward", silu = "SiLU"
    }

    let inner: any ComputeBackend
    private let lock = NSLock()
    private var running: [Op: Int] = [:]
    private var since: [Op: UInt64] = [:]
    private var nanoseconds: [Op: UInt64] = [:]
    private var flopCount: [Op: Double] = [:]

    init(wrapping inner: any ComputeBackend) { self.inner = inner }

    var name: String { inner.name }
    var activationBlock: Int { inner.activationBlock }

    /// Seconds and FLOPs per op since the last `reset`.
    var totals: [Op: (seconds: Double, flops: Double)] {
        lock.lock(); defer { lock.unlock() }
        return Dictionary(uniqueKeysWithValues: Op.allCases.map { ($0, (Double(nanoseconds[$0] ?? 0) * 1e-9, flopCount[$0] ?? 0)) })
    }

    func reset() {
        lock.lock(); defer { lock.unlock() }
        (nanoseconds, flopCount) = ([:], [:])
    }

    private func timed(_ op: Op, flops: Double, _ body: () -> Void) {
        lock.lock()
        if running[op, default: 0] == 0 { since[op] = DispatchTime.now().uptimeNanoseconds }
        running[op, default: 0] += 1
        flopCount[op, default: 0] += flops
        lock.unlock()
        body()
        lock.lock()
        running[op]! -= 1
        if running[op] == 0 { nanoseconds[op, default: 0] += DispatchTime.now().uptimeNanoseconds - since[op]! }
        lock.unlock()
    }

    func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
               b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        timed(.matmul, flops: 2 * Double(m) * Double(n) * Double(k)) {
            inner.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                        beta: beta, c: c, ldc: ldc)
        }
    }

    func batchedSgemm(_ g: BatchedGemm, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
        timed(.matmul, flops: g.flops) { inner.batchedSgemm(g, a: a, b: b, c: c) }
    }

    func conv2dForward(_ p: Conv2dShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                       y: UnsafeMutablePointer<Float>) {
        timed(.convForward, flops: p.forwardFlops) { inner.conv2dForward(p, x: x, weight: weight, bias: bias, y: y) }
    }

    func conv2dBackward(_ p: Conv2dShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                        dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?) {
        timed(.convBackward, flops: p.forwardFlops * (dx == nil ? 1 : 2)) {
            inner.conv2dBackward(p, x: x, weight: weight, dy: dy, dx: dx, dWeight: dWeight, dBias: dBias)
        }
    }

    func groupNormForward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                          y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        timed(.normForward, flops: 0) { inner.groupNormForward(p, x: x, gamma: gamma, beta: beta, y: y, mean: mean, rstd: rstd) }
    }

    func groupNormBackward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                           rstd: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                           dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>) {
        timed(.normBackward, flops: 0) {
            inner.groupNormBackward(p, x: x, gamma: gamma, mean: mean, rstd: rstd, dy: dy, dx: dx, dGamma: dGamma, dBeta: dBeta)
        }
    }

    /// Fused GroupNorm + SiLU counts as GroupNorm (the breakdown says so).
    func fusesGroupNormSiLU(_ p: GroupNormShape) -> Bool { inner.fusesGroupNormSiLU(p) }

    func groupNormSiLUForward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                              y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        timed(.normForward, flops: 0) { inner.groupNormSiLUForward(p, x: x, gamma: gamma, beta: beta, y: y, mean: mean, rstd: rstd) }
    }

    func groupNormSiLUBackward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                               mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                               dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>) {
        timed(.normBackward, flops: 0) {
            inner.groupNormSiLUBackward(p, x: x, gamma: gamma, beta: beta, mean: mean, rstd: rstd, dy: dy, dx: dx,
                                        dGamma: dGamma, dBeta: dBeta)
        }
    }

    func siluForward(count: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, sigmoid: UnsafeMutablePointer<Float>?) {
        timed(.silu, flops: 0) { inner.siluForward(count: count, x: x, y: y, sigmoid: sigmoid) }
    }

    var siluKeepsGate: Bool { inner.siluKeepsGate }

    /// Untimed: softmax stays in "rest", as PyTorch's does in its breakdown.
    func softmaxRows(_ m: UnsafeMutablePointer<Float>, rows: Int, cols: Int) { inner.softmaxRows(m, rows: rows, cols: cols) }

    func siluBackward(count: Int, x: UnsafePointer<Float>, sigmoid: UnsafePointer<Float>?, dy: UnsafePointer<Float>,
                      dx: UnsafeMutablePointer<Float>) {
        timed(.silu, flops: 0) { inner.siluBackward(count: count, x: x, sigmoid: sigmoid, dy: dy, dx: dx) }
    }
}
