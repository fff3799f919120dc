import COpenBLAS

/// Streaming mean and covariance of N x D features, accumulated in Float64.
///
/// Batches are centred on a fixed shift (the first batch's mean) before their
/// scatter matrix is added with `dsyrk`, so `Σxxᵀ − n·μμᵀ` does not lose the
/// covariance to cancellation when the mean is large next to the spread.
public struct FeatureMoments: Sendable {
    public let dimension: Int
    public private(set) var count: Int = 0
    private var shift: [Double] = []
    /// Σ (x − shift), length D.
    private var sum: [Double]
    /// Upper triangle of Σ (x − shift)(x − shift)ᵀ, D x D row-major.
    private var scatter: [Double]

    public init(dimension: Int) {
        precondition(dimension > 0)
        self.dimension = dimension
        sum = [Double](repeating: 0, count: dimension)
        scatter = [Double](repeating: 0, count: dimension * dimension)
    }

    /// Adds `features.count / dimension` rows (row-major, one feature vector per row).
    public mutating func add(_ features: [Float]) {
        let d = dimension
        precondition(features.count % d == 0, "feature buffer is not a multiple of dimension \(d)")
        let n = features.count / d
        guard n > 0 else { return }
        if count == 0 {
            shift = [Double](repeating: 0, count: d)
            for i in 0..<n { for j in 0..<d { shift[j] += Double(features[i * d + j]) } }
            for j in 0..<d { shift[j] /= Double(n) }
        }
        var centred = [Double](repeating: 0, count: n * d)
        for i in 0..<n {
            for j in 0..<d {
                let v = Double(features[i * d + j]) - shift[j]
                centred[i * d + j] = v
                sum[j] += v
            }
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(d), Int32(n),
                    1.0, centred, Int32(d), 1.0, &scatter, Int32(d))
        count += n
    }

    public var mean: [Double] {
        precondition(count > 0, "no features accumulated")
        return (0..<dimension).map { shift[$0] + sum[$0] / Double(count) }
    }

    /// Unbiased covariance (divides by N − 1), full symmetric D x D row-major.
    public func covariance() -> [Double] {
        precondition(count > 1, "covariance needs at least two feature vectors")
        let d = dimension, n = Double(count)
        var cov = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            let mi = sum[i] / n
            for j in i..<d {
                let c = (scatter[i * d + j] - n * mi * (sum[j] / n)) / (n - 1)
                cov[i * d + j] = c
                cov[j * d + i] = c
            }
        }
        return cov
    }
}
