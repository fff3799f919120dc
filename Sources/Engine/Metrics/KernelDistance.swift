import COpenBLAS

/// Kernel distance (KID, Bińkowski et al. 2018): the unbiased MMD² between two
/// feature sets under the cubic polynomial kernel k(x, y) = (x·y / d + 1)³,
/// averaged over random subsets as torch-fidelity and clean-fid do (defaults:
/// 100 subsets of 1000, clipped to the smaller set's size).
public struct KernelDistance: Sendable, Equatable {
    public var mean: Double
    public var standardDeviation: Double
    public var subsets: Int
    public var subsetSize: Int

    /// `x` is nx x d and `y` is ny x d, row-major Float32.
    public init(_ x: [Float], _ y: [Float], dimension d: Int, subsets: Int = 100,
                subsetSize: Int = 1000, seed: UInt64 = 0) throws {
        guard d > 0, x.count % d == 0, y.count % d == 0 else {
            throw MetricsError("KID: feature buffers are not multiples of dimension \(d)")
        }
        let nx = x.count / d, ny = y.count / d
        let m = min(subsetSize, nx, ny)
        guard m >= 2, subsets >= 1 else {
            throw MetricsError("KID needs at least 2 feature vectors per set (have \(nx) and \(ny))")
        }
        var rng = RandomGenerator(seed: seed)
        var values: [Double] = []
        var xs = [Float](repeating: 0, count: m * d), ys = xs
        for _ in 0..<subsets {
            Self.gather(x, rows: Self.choose(m, of: nx, &rng), dimension: d, into: &xs)
            Self.gather(y, rows: Self.choose(m, of: ny, &rng), dimension: d, into: &ys)
            values.append(Self.unbiasedMMD2(xs, ys, m: m, d: d))
        }
        let average = values.reduce(0, +) / Double(subsets)
        let variance = values.reduce(0) { $0 + ($1 - average) * ($1 - average) } / Double(subsets)
        mean = average
        standardDeviation = variance.squareRoot()
        self.subsets = subsets
        self.subsetSize = m
    }

    /// MMD²_u = mean_{i≠j} k(xi,xj) + mean_{i≠j} k(yi,yj) − 2 mean_{i,j} k(xi,yj).
    static func unbiasedMMD2(_ x: [Float], _ y: [Float], m: Int, d: Int) -> Double {
        func kernelSum(_ a: [Float], _ b: [Float], offDiagonalOnly: Bool) -> Double {
            var g = [Float](repeating: 0, count: m * m)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(m), Int32(d),
                        1.0 / Float(d), a, Int32(d), b, Int32(d), 0.0, &g, Int32(m))
            var total = 0.0
            for i in 0..<m {
                for j in 0..<m where !(offDiagonalOnly && i == j) {
                    let k = Double(g[i * m + j]) + 1
                    total += k * k * k
                }
            }
            return total
        }
        let pairs = Double(m * (m - 1))
        return kernelSum(x, x, offDiagonalOnly: true) / pairs
            + kernelSum(y, y, offDiagonalOnly: true) / pairs
            - 2 * kernelSum(x, y, offDiagonalOnly: false) / Double(m * m)
    }

    /// m distinct indices from 0..<n (partial Fisher–Yates).
    static func choose(_ m: Int, of n: Int, _ rng: inout RandomGenerator) -> [Int] {
        var pool = Array(0..<n)
        for i in 0..<m { pool.swapAt(i, i + rng.integer(upTo: n - 1 - i)) }
        return Array(pool[0..<m])
    }

    static func gather(_ source: [Float], rows: [Int], dimension d: Int, into out: inout [Float]) {
        for (k, r) in rows.enumerated() {
            for j in 0..<d { out[k * d + j] = source[r * d + j] }
        }
    }
}
