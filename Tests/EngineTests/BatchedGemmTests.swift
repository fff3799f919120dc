import Testing
@testable import Engine

/// `batchedSgemm` on each backend against a plain Float64 triple loop: transposes, leading
/// dimensions wider than the rows (C's gaps untouched), image strides and alpha.
@Suite struct BatchedGemmTests {
    static let gemms: [BatchedGemm] = [
        // Attention's scores: Q^T K with q and k rows 3P apart in the qkv buffer (C = 8, P = 16).
        BatchedGemm(batch: 3, m: 16, n: 16, k: 8, transA: true, lda: 48, ldb: 48, ldc: 16,
                    strideA: 384, strideB: 384, strideC: 256, alpha: 0.35),
        // Its mix: V W^T.
        BatchedGemm(batch: 2, m: 8, n: 16, k: 16, transB: true, lda: 48, ldb: 16, ldc: 16, strideA: 384, strideB: 256, strideC: 128),
        BatchedGemm(batch: 1, m: 5, n: 7, k: 3, lda: 3, ldb: 7, ldc: 7, strideA: 15, strideB: 21, strideC: 35),
        BatchedGemm(batch: 4, m: 6, n: 9, k: 4, transA: true, transB: true, lda: 6, ldb: 4, ldc: 12,
                    strideA: 24, strideB: 36, strideC: 72, alpha: -2),
    ]

    static var backends: [any ComputeBackend] {
        [BLASBackend()] + ((try? OneDNNBackend()).map { [$0] } ?? [])
    }

    @Test(arguments: gemms) func matchesATripleLoop(g: BatchedGemm) {
        let rowsA = g.transA ? g.k : g.m, rowsB = g.transB ? g.n : g.k
        let countA = (g.batch - 1) * g.strideA + rowsA * g.lda, countB = (g.batch - 1) * g.strideB + rowsB * g.ldb
        let countC = (g.batch - 1) * g.strideC + g.m * g.ldc
        var rng = RandomGenerator(seed: UInt64(g.m * 31 + g.n))
        let a = Tensor(randomNormal: [countA], using: &rng).data, b = Tensor(randomNormal: [countB], using: &rng).data
        var want = [Double](repeating: .nan, count: countC)
        var written = Set<Int>()
        for i in 0..<g.batch { for r in 0..<g.m { for col in 0..<g.n {
            var s = 0.0
            for j in 0..<g.k {
                let x = a[i * g.strideA + (g.transA ? j * g.lda + r : r * g.lda + j)]
                let y = b[i * g.strideB + (g.transB ? col * g.ldb + j : j * g.ldb + col)]
                s += Double(x) * Double(y)
            }
            want[i * g.strideC + r * g.ldc + col] = Double(g.alpha) * s
            written.insert(i * g.strideC + r * g.ldc + col)
        } } }
        for backend in Self.backends {
            var c = [Float](repeating: 7, count: countC)  // 7: a sentinel for the gaps
            backend.batchedSgemm(g, a: a, b: b, c: &c)
            for idx in 0..<countC {
                if written.contains(idx) {
                    #expect(abs(Double(c[idx]) - want[idx]) <= 1e-5 * (1 + abs(want[idx])), "\(backend.name) \(g) at \(idx)")
                } else {
                    #expect(c[idx] == 7, "\(backend.name) wrote into a gap at \(idx)")
                }
            }
        }
    }
}
