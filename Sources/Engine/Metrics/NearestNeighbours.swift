import Foundation

/// Pixel-space nearest neighbours of generated images among the training images: the memorisation
/// test for diffusion models. A sample whose nearest training image is much closer than its second
/// nearest (d1 / d2 < 1/3, the criterion of Carlini et al. 2023 and Yoon et al. 2023) is counted as
/// a near-copy; the median d1 of the samples, next to the same for held-out real images, shows how
/// close samples sit to the training set in general.
public enum NearestNeighbours {
    /// For each query row: the Euclidean distances to its nearest and second-nearest reference rows
    /// and the nearest one's index. Rows are `dimension` floats. Squared distances as
    /// |q|^2 + |r|^2 - 2 q.r with the dot products from one sgemm per block of queries.
    public static func nearestTwo(queries: [Float], references: [Float], dimension d: Int,
                                  backend: any ComputeBackend = Engine.defaultBackend) -> [(d1: Double, d2: Double, index: Int)] {
        let n = queries.count / d, m = references.count / d
        precondition(m >= 2, "NearestNeighbours: need at least two reference rows")
        func norms(_ x: [Float], _ rows: Int) -> [Double] {
            (0..<rows).map { r in (0..<d).reduce(0.0) { $0 + Double(x[r * d + $1]) * Double(x[r * d + $1]) } }
        }
        let qn = norms(queries, n), rn = norms(references, m)
        let block = 256
        var out: [(d1: Double, d2: Double, index: Int)] = []
        out.reserveCapacity(n)
        var dots = [Float](repeating: 0, count: block * m)
        var first = 0
        while first < n {
            let rows = min(block, n - first)
            queries.withUnsafeBufferPointer { q in
                references.withUnsafeBufferPointer { r in
                    dots.withUnsafeMutableBufferPointer { c in
                        backend.sgemm(transA: false, transB: true, m: rows, n: m, k: d, alpha: 1,
                                      a: q.baseAddress! + first * d, lda: d, b: r.baseAddress!, ldb: d, beta: 0, c: c.baseAddress!, ldc: m)
                    }
                }
            }
            for i in 0..<rows {
                var (b1, b2, index) = (Double.infinity, Double.infinity, -1)
                for j in 0..<m {
                    let s = max(0, qn[first + i] + rn[j] - 2 * Double(dots[i * m + j]))
                    if s < b1 { (b2, b1, index) = (b1, s, j) } else if s < b2 { b2 = s }
                }
                out.append((b1.squareRoot(), b2.squareRoot(), index))
            }
            first += rows
        }
        return out
    }
}
