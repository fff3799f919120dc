import Foundation

/// Start-up choice of the compute backend, like `BLASKernel` for the OpenBLAS kernel.
///
/// `PDPIPE_BACKEND`: unset or `auto` = oneDNN when it loads and passes the self-check, else
/// OpenBLAS with the reason (oneDNN's fp32 convolutions make a training step ~1.2x faster on an
/// AVX2 EPYC, results/diffusion-bench.md); `onednn` = the same, named explicitly; `openblas` =
/// OpenBLAS. Stage keys name a backend other than OpenBLAS (`engine.backend`), since results of
/// the two differ in the last bits: a result computed on one is never restored for the other.
/// The self-check runs small convolutions (3x3 and 1x1, with and without bias, forward,
/// backward-data and backward-weights), a batched matmul and SiLU (forward and backward) on both
/// backends and compares them.
public enum BackendSelection {
    public struct Report: Sendable, Equatable, CustomStringConvertible {
        /// The backend in use ("openblas" or "onednn").
        public var backend: String
        /// Library and ISA of oneDNN when in use, else why not.
        public var detail: String
        /// Relative L2 error of the oneDNN self-check against OpenBLAS (nil if not run).
        public var selfCheckError: Double?

        public var description: String {
            let check = selfCheckError.map { ", self-check error \(String(format: "%.1e", $0))" } ?? ""
            return "backend \(backend): \(detail)\(check)"
        }
    }

    /// Relative L2 error accepted from an fp32 oneDNN convolution against OpenBLAS (both
    /// accumulate in Float32 in different orders: ~1e-7 measured).
    public static let tolerance = 1e-4

    /// The decision from the setting and what oneDNN does on this machine; `makeOneDNN` and
    /// `check` are parameters so tests can simulate a missing or broken library.
    static func decide(setting: String?, makeOneDNN: () throws -> OneDNNBackend,
                       check: (OneDNNBackend) -> Double = { selfCheckError($0) }) -> (any ComputeBackend, Report) {
        let blas = BLASBackend()
        let s = (setting ?? "auto").lowercased()
        switch s {
        case "openblas", "blas":
            return (blas, Report(backend: blas.name, detail: "PDPIPE_BACKEND=\(s)", selfCheckError: nil))
        case "auto", "", "onednn", "dnnl":
            let dnnl: OneDNNBackend
            do { dnnl = try makeOneDNN() } catch {
                return (blas, Report(backend: blas.name, detail: "fallback: \(error)", selfCheckError: nil))
            }
            let err = check(dnnl)
            guard err < tolerance else {
                return (blas, Report(backend: blas.name, detail: "fallback: \(OneDNN.description) failed its self-check",
                                     selfCheckError: err))
            }
            return (dnnl, Report(backend: dnnl.name, detail: OneDNN.description, selfCheckError: err))
        default:
            return (blas, Report(backend: blas.name, detail: "unknown PDPIPE_BACKEND=\(setting ?? s) (openblas | onednn | auto)",
                                 selfCheckError: nil))
        }
    }

    /// Largest relative L2 error of `backend`'s convolutions, batched matmul (attention's strided,
    /// transposed shape), SiLU and softmax against OpenBLAS on small inputs.
    public static func selfCheckError(_ backend: any ComputeBackend) -> Double {
        let reference = BLASBackend()
        var rng = RandomGenerator(seed: 0xD11)
        var worst = 0.0
        let shapes = [Conv2dShape(batch: 3, inChannels: 5, outChannels: 8, height: 9, width: 7, kernel: 3, padding: 1),
                      Conv2dShape(batch: 2, inChannels: 16, outChannels: 6, height: 6, width: 6, kernel: 1, padding: 0),
                      // 16 channels in and out: oneDNN's fp32 Winograd kernels where it has them.
                      Conv2dShape(batch: 2, inChannels: 16, outChannels: 16, height: 8, width: 8, kernel: 3, padding: 1)]
        for p in shapes {
            for bias in [true, false] {
                let seed = rng.next()
                let results = [backend, reference].map { b in ConvResults(b, p, bias: bias, seed: seed) }
                for (a, r) in zip(results[0].all, results[1].all) { worst = max(worst, relativeL2(a, r)) }
            }
        }
        let g = BatchedGemm(batch: 2, m: 6, n: 6, k: 4, transA: true, lda: 18, ldb: 18, ldc: 6,
                            strideA: 72, strideB: 72, strideC: 36, alpha: 0.5)
        let a = (0..<144).map { _ in rng.uniform(-1, 1) }, b = (0..<144).map { _ in rng.uniform(-1, 1) }
        let x = (0..<1000).map { _ in rng.uniform(-8, 8) }, dy = (0..<1000).map { _ in rng.uniform(-1, 1) }
        let results = [backend, reference].map { backend in
            var c = [Float](repeating: .nan, count: 72), y = [Float](repeating: .nan, count: x.count), dx = y, gate = y
            var scores = x
            backend.batchedSgemm(g, a: a, b: b, c: &c)
            backend.softmaxRows(&scores, rows: 10, cols: 100)
            gate.withUnsafeMutableBufferPointer { s in
                let kept = backend.siluKeepsGate ? s.baseAddress : nil
                backend.siluForward(count: x.count, x: x, y: &y, sigmoid: kept)
                backend.siluBackward(count: x.count, x: x, sigmoid: kept.map { UnsafePointer($0) }, dy: dy, dx: &dx)
            }
            return [c, y, dx, scores]
        }
        for (a, r) in zip(results[0], results[1]) { worst = max(worst, relativeL2(a, r)) }
        return worst
    }

    public static func relativeL2(_ a: [Float], _ b: [Float]) -> Double {
        var d = 0.0, n = 0.0
        for (x, y) in zip(a, b) { d += Double(x - y) * Double(x - y); n += Double(y) * Double(y) }
        let e = (d / max(n, 1e-30)).squareRoot()
        return e.isNaN || a.count != b.count ? .infinity : e
    }

    nonisolated(unsafe) private static var configured: Report?
    private static let lock = NSLock()

    /// Chooses once per process, sets `Engine.defaultBackend`, and returns the report.
    @discardableResult
    public static func configure(environment: [String: String] = ProcessInfo.processInfo.environment) -> Report {
        lock.lock(); defer { lock.unlock() }
        if let configured { return configured }
        let (backend, report) = decide(setting: environment["PDPIPE_BACKEND"], makeOneDNN: { try OneDNNBackend() })
        Engine.setDefaultBackend(backend)
        configured = report
        return report
    }

    /// The report of `configure()`, or OpenBLAS if it was never called.
    public static var report: Report {
        lock.lock(); defer { lock.unlock() }
        return configured ?? Report(backend: Engine.defaultBackend.name, detail: "not configured", selfCheckError: nil)
    }
}

/// Forward output, input gradient, weight and bias gradients of one convolution on one backend,
/// from inputs drawn from `seed` (the same for every backend).
struct ConvResults {
    let y, dx, dw, db: [Float]
    var all: [[Float]] { [y, dx, dw, db] }

    init(_ backend: any ComputeBackend, _ p: Conv2dShape, bias: Bool, seed: UInt64) {
        var rng = RandomGenerator(seed: seed)
        let x = (0..<p.batch * p.inChannels * p.height * p.width).map { _ in rng.uniform(-1, 1) }
        let w = (0..<p.outChannels * p.inChannels * p.kernel * p.kernel).map { _ in rng.uniform(-1, 1) }
        let b = (0..<p.outChannels).map { _ in rng.uniform(-1, 1) }
        let dy = (0..<p.batch * p.outChannels * p.outHeight * p.outWidth).map { _ in rng.uniform(-1, 1) }
        var y = [Float](repeating: .nan, count: dy.count), dx = [Float](repeating: .nan, count: x.count)
        // Gradients accumulate: start from a non-zero value to check that they add, not overwrite.
        var dw = [Float](repeating: 0.5, count: w.count), db = [Float](repeating: 0.5, count: p.outChannels)
        y.withUnsafeMutableBufferPointer { yp in
            b.withUnsafeBufferPointer { bp in
                backend.conv2dForward(p, x: x, weight: w, bias: bias ? bp.baseAddress! : nil, y: yp.baseAddress!)
            }
        }
        dx.withUnsafeMutableBufferPointer { dxp in
            dw.withUnsafeMutableBufferPointer { dwp in
                db.withUnsafeMutableBufferPointer { dbp in
                    backend.conv2dBackward(p, x: x, weight: w, dy: dy, dx: dxp.baseAddress!, dWeight: dwp.baseAddress!,
                                           dBias: bias ? dbp.baseAddress! : nil)
                }
            }
        }
        (self.y, self.dx, self.dw, self.db) = (y, dx, dw, db)
    }
}
