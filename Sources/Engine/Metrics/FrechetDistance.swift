import COpenBLAS

/// Fréchet distance between Gaussians N(mu1, S1) and N(mu2, S2):
/// |mu1 − mu2|² + Tr(S1) + Tr(S2) − 2 Tr((S1 S2)^½).
///
/// Tr((S1 S2)^½) is computed without a non-symmetric square root: S1 S2 is similar
/// to A = S1^½ S2 S1^½ (symmetric positive semi-definite), so the trace is Σ √eig(A).
/// Both decompositions are symmetric (`dsyevd`); eigenvalues that round-off pushes
/// slightly below zero (near-singular covariances, N < D) are clamped to zero.
public func frechetDistance(mean1: [Double], covariance1: [Double],
                            mean2: [Double], covariance2: [Double]) throws -> Double {
    let d = mean1.count
    guard mean2.count == d, covariance1.count == d * d, covariance2.count == d * d else {
        throw MetricsError("Fréchet distance: feature dimensions differ (\(mean1.count) vs \(mean2.count))")
    }
    var meanTerm = 0.0
    for i in 0..<d { meanTerm += (mean1[i] - mean2[i]) * (mean1[i] - mean2[i]) }
    var traces = 0.0
    for i in 0..<d { traces += covariance1[i * d + i] + covariance2[i * d + i] }

    let sqrtS1 = try SymmetricEigen(covariance1, n: d).reconstructed { $0 > 0 ? $0.squareRoot() : 0 }
    var tmp = [Double](repeating: 0, count: d * d)
    var a = [Double](repeating: 0, count: d * d)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(d), Int32(d), Int32(d),
                1.0, sqrtS1, Int32(d), covariance2, Int32(d), 0.0, &tmp, Int32(d))
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(d), Int32(d), Int32(d),
                1.0, tmp, Int32(d), sqrtS1, Int32(d), 0.0, &a, Int32(d))
    // Symmetrise away the round-off asymmetry before the symmetric solver reads one triangle.
    for i in 0..<d { for j in (i + 1)..<d {
        let s = 0.5 * (a[i * d + j] + a[j * d + i]); a[i * d + j] = s; a[j * d + i] = s
    } }
    let eig = try SymmetricEigen(a, n: d)
    let traceSqrt = eig.values.reduce(0.0) { $0 + ($1 > 0 ? $1.squareRoot() : 0) }
    return meanTerm + traces - 2 * traceSqrt
}

extension FeatureStatistics {
    /// Fréchet distance between two sets of feature statistics (same extractor).
    public func frechetDistance(to other: FeatureStatistics) throws -> Double {
        guard extractor == other.extractor else {
            throw MetricsError("Fréchet distance between features of different extractors (\(extractor) vs \(other.extractor))")
        }
        return try gaussianFrechetDistance(mean, covariance, other.mean, other.covariance)
    }
}

/// The free function under another name, callable from members named `frechetDistance`.
private func gaussianFrechetDistance(_ m1: [Double], _ s1: [Double], _ m2: [Double], _ s2: [Double]) throws -> Double {
    try frechetDistance(mean1: m1, covariance1: s1, mean2: m2, covariance2: s2)
}
