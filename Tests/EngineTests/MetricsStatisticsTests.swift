import Foundation
import Testing
@testable import Engine

@Suite struct MetricsStatisticsTests {
    /// Features with a large common offset and small spread, where a naive
    /// single-pass Σxxᵀ − nμμᵀ would lose most digits.
    static func offsetFeatures(n: Int, d: Int, seed: UInt64) -> [Float] {
        var rng = RandomGenerator(seed: seed)
        return (0..<(n * d)).map { i in 1000 + Float(i % d) + 0.01 * rng.normal() }
    }

    @Test func streamingMomentsMatchTwoPassReference() {
        let (n, d) = (500, 6)
        let x = Self.offsetFeatures(n: n, d: d, seed: 1)
        var moments = FeatureMoments(dimension: d)
        // Uneven batches: the result must not depend on how features arrive.
        for range in [0..<7, 7..<200, 200..<499, 499..<500] {
            moments.add(Array(x[(range.lowerBound * d)..<(range.upperBound * d)]))
        }
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += Double(x[i * d + j]) / Double(n) } }
        var cov = [Double](repeating: 0, count: d * d)
        for i in 0..<n { for a in 0..<d { for b in 0..<d {
            cov[a * d + b] += (Double(x[i * d + a]) - mean[a]) * (Double(x[i * d + b]) - mean[b]) / Double(n - 1)
        } } }
        #expect(moments.count == n)
        let got = moments.covariance()
        for j in 0..<d { #expect(abs(moments.mean[j] - mean[j]) < 1e-9) }
        for k in 0..<(d * d) { #expect(abs(got[k] - cov[k]) < 1e-9 * max(1, abs(cov[k])) + 1e-12) }
        // Diagonal ~ 1e-4 (std 0.01), off-diagonal ~ 0: checks the spread survived the offset.
        #expect(abs(got[0] - 1e-4) < 2e-5)
    }

    @Test func frechetDistanceMatchesDiagonalClosedForm() throws {
        let d = 5
        let a: [Double] = [1, 2, 0.5, 3, 0.01], b: [Double] = [4, 0.5, 0.5, 1, 2]
        let mu1: [Double] = [0, 1, 2, 3, 4], mu2: [Double] = [1, 1, 0, 3, 5]
        func diag(_ v: [Double]) -> [Double] {
            var m = [Double](repeating: 0, count: d * d); for i in 0..<d { m[i * d + i] = v[i] }; return m
        }
        var expected = 0.0
        for i in 0..<d { expected += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + pow(a[i].squareRoot() - b[i].squareRoot(), 2) }
        let fd = try frechetDistance(mean1: mu1, covariance1: diag(a), mean2: mu2, covariance2: diag(b))
        #expect(abs(fd - expected) < 1e-10)
    }

    @Test func frechetDistanceIsInvariantToACommonRotation() throws {
        // Rotating both Gaussians by the same orthogonal Q leaves FD unchanged; with
        // diagonal S1, S2 before rotation the closed form still applies.
        let d = 4
        let a: [Double] = [1, 2, 3, 4], b: [Double] = [2, 2, 0.25, 9]
        var rng = RandomGenerator(seed: 7)
        let random = (0..<(d * d)).map { _ in Double(rng.normal()) }
        var sym = random
        for i in 0..<d { for j in 0..<d { sym[i * d + j] = random[i * d + j] + random[j * d + i] } }
        let q = try SymmetricEigen(sym, n: d).vectors
        func rotated(_ v: [Double]) -> [Double] {
            var m = [Double](repeating: 0, count: d * d)
            for i in 0..<d { for j in 0..<d { for k in 0..<d { m[i * d + j] += q[i * d + k] * v[k] * q[j * d + k] } } }
            return m
        }
        let zero = [Double](repeating: 0, count: d)
        let fd = try frechetDistance(mean1: zero, covariance1: rotated(a), mean2: zero, covariance2: rotated(b))
        let expected = (0..<d).reduce(0.0) { $0 + pow(a[$1].squareRoot() - b[$1].squareRoot(), 2) }
        #expect(abs(fd - expected) < 1e-9)
    }

    @Test func frechetDistanceOfIdenticalRankDeficientStatisticsIsZero() throws {
        // N = 8 < D = 20: the covariance is singular; FD(S, S) must still be ~0.
        var moments = FeatureMoments(dimension: 20)
        moments.add(Self.offsetFeatures(n: 8, d: 20, seed: 3).map { $0 / 1000 })
        let cov = moments.covariance()
        let fd = try frechetDistance(mean1: moments.mean, covariance1: cov, mean2: moments.mean, covariance2: cov)
        let trace = (0..<20).reduce(0.0) { $0 + cov[$1 * 20 + $1] }
        #expect(abs(fd) < 1e-6 * trace)
    }

    @Test(.enabled(if: MetricsPythonReference.available, "python3 with numpy/scipy not installed"))
    func frechetDistanceMatchesScipySqrtm() throws {
        let dir = try MetricsPythonReference.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // pytorch-fid's calculate_frechet_distance on the same features (sqrtm with its
        // eps offset fallback), for a well-conditioned case and a near-singular one (N < D).
        let script = """
        import sys, numpy as np
        from scipy import linalg
        d = int(sys.argv[3])
        def stats(p):
            x = np.fromfile(p, dtype=np.float32).astype(np.float64).reshape(-1, d)
            return x.mean(0), np.cov(x, rowvar=False)
        m1, s1 = stats(sys.argv[1]); m2, s2 = stats(sys.argv[2])
        covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
        if not np.isfinite(covmean).all():
            off = np.eye(d) * 1e-6
            covmean = linalg.sqrtm((s1 + off).dot(s2 + off))
        covmean = covmean.real
        print(repr(float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))))
        """
        for (n1, n2, d) in [(400, 300, 12), (30, 25, 40)] {
            var rng = RandomGenerator(seed: UInt64(n1 * d))
            let mixing = (0..<(d * d)).map { _ in rng.normal() / Float(d).squareRoot() }
            func features(_ n: Int, shift: Float) -> [Float] {
                (0..<n).flatMap { _ -> [Float] in
                    let z = (0..<d).map { _ in rng.normal() }
                    return (0..<d).map { j in shift + (0..<d).reduce(Float(0)) { $0 + mixing[j * d + $1] * z[$1] } }
                }
            }
            let x = features(n1, shift: 0), y = features(n2, shift: 0.3)
            let px = dir.appendingPathComponent("x.f32"), py = dir.appendingPathComponent("y.f32")
            try MetricsPythonReference.write(x, to: px)
            try MetricsPythonReference.write(y, to: py)
            let reference = try #require(Double(MetricsPythonReference.run(script, arguments: [px.path, py.path, String(d)])))
            var mx = FeatureMoments(dimension: d), my = FeatureMoments(dimension: d)
            mx.add(x); my.add(y)
            let fd = try frechetDistance(mean1: mx.mean, covariance1: mx.covariance(), mean2: my.mean, covariance2: my.covariance())
            // sqrtm of a singular product is itself only accurate to ~1e-6 relative.
            #expect(abs(fd - reference) < 1e-6 * max(1, abs(reference)), "N=\(n1),\(n2) D=\(d): ours \(fd), scipy \(reference)")
        }
    }

    @Test func statisticsRoundTripThroughFiles() throws {
        let dir = try MetricsPythonReference.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var moments = FeatureMoments(dimension: 3)
        let x = Self.offsetFeatures(n: 10, d: 3, seed: 5)
        moments.add(x)
        var patches = PatchDescriptors(channels: 1, config: SlicedWassersteinConfig())
        patches.add(Tensor(shape: [2, 1, 16, 16], data: (0..<512).map { Float($0 % 17) }), seed: 1)
        let stats = FeatureStatistics(extractor: "test-net", moments: moments, kidFeatures: Array(x[0..<12]), patches: patches)
        try stats.write(to: dir)
        let back = try FeatureStatistics(contentsOf: dir)
        #expect(back.extractor == "test-net" && back.count == 10 && back.dimension == 3)
        #expect(back.mean == stats.mean && back.covariance == stats.covariance && back.kidFeatures == stats.kidFeatures)
        #expect(back.patches?.levels == patches.levels && back.patches?.imageCount == 2)
        // A truncated array file is reported by name.
        try Data(count: 5).write(to: dir.appendingPathComponent("mean.f64"))
        #expect(throws: MetricsError.self) { try FeatureStatistics(contentsOf: dir) }
    }
}
