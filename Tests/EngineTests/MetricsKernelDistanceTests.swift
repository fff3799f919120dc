import Foundation
import Testing
@testable import Engine

@Suite struct MetricsKernelDistanceTests {
    @Test func kidMatchesNaiveUnbiasedMMDOnATinyExample() throws {
        // Subset size = set size: every subset is a permutation of the whole set, so
        // each subset's MMD² equals the naive full-set estimate.
        let d = 3
        let x: [Float] = [0.1, -0.5, 1.2, 0.7, 0.3, -0.2, -1.1, 0.4, 0.9, 0.0, 0.8, -0.6]
        let y: [Float] = [1.0, 1.5, 0.2, -0.3, 0.9, 1.4, 0.6, -1.2, 0.3, 2.0, 0.1, 0.5]
        let m = 4
        func k(_ a: [Float], _ i: Int, _ b: [Float], _ j: Int) -> Double {
            var dot = 0.0
            for t in 0..<d { dot += Double(a[i * d + t]) * Double(b[j * d + t]) }
            return pow(dot / Double(d) + 1, 3)
        }
        var xx = 0.0, yy = 0.0, xy = 0.0
        for i in 0..<m { for j in 0..<m {
            if i != j { xx += k(x, i, x, j); yy += k(y, i, y, j) }
            xy += k(x, i, y, j)
        } }
        let expected = xx / Double(m * (m - 1)) + yy / Double(m * (m - 1)) - 2 * xy / Double(m * m)
        let kid = try KernelDistance(x, y, dimension: d, subsets: 5, subsetSize: 10, seed: 3)
        #expect(kid.subsetSize == 4)
        #expect(abs(kid.mean - expected) < 1e-5 * abs(expected))
        #expect(kid.standardDeviation < 1e-5 * abs(expected))
    }

    @Test func kidIsNearZeroForOneDistributionAndLargeForShiftedOne() throws {
        let d = 16
        var rng = RandomGenerator(seed: 11)
        let a = (0..<(600 * d)).map { _ in rng.normal() }
        let b = (0..<(600 * d)).map { _ in rng.normal() }
        let shifted = (0..<(600 * d)).map { _ in rng.normal() + 0.5 }
        let same = try KernelDistance(a, b, dimension: d, subsets: 20, subsetSize: 200, seed: 1)
        let different = try KernelDistance(a, shifted, dimension: d, subsets: 20, subsetSize: 200, seed: 1)
        // Unbiased: same-distribution MMD² scatters around 0 within a few standard errors.
        #expect(abs(same.mean) < 4 * same.standardDeviation / 20.0.squareRoot() + 1e-4)
        // Mean shift 0.5 in every coordinate: E k-difference ≈ 3(|δ|²/d)²... well above the noise.
        #expect(different.mean > 20 * max(abs(same.mean), same.standardDeviation))
        // Reproducible from the seed (same subsets), up to the rounding of whichever sgemm
        // kernel the process's BLAS uses at the moment (other tests may switch it).
        let again = try KernelDistance(a, b, dimension: d, subsets: 20, subsetSize: 200, seed: 1)
        let other = try KernelDistance(a, b, dimension: d, subsets: 20, subsetSize: 200, seed: 2)
        #expect(abs(again.mean - same.mean) < 1e-6 * same.standardDeviation)
        #expect(abs(other.mean - same.mean) > 1e-3 * same.standardDeviation)
    }
}
