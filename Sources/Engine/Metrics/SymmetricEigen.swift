import COpenBLAS

/// Eigen-decomposition of a real symmetric matrix (LAPACK `dsyevd`, divide and conquer).
public struct SymmetricEigen: Sendable {
    /// Ascending eigenvalues.
    public var values: [Double]
    /// Row-major n x n; column k is the unit eigenvector of `values[k]`.
    public var vectors: [Double]
    public var n: Int { values.count }

    /// `matrix` is n x n row-major and must be symmetric (only one triangle is read).
    public init(_ matrix: [Double], n: Int) throws {
        precondition(matrix.count == n * n)
        // LAPACK is column-major: the transpose of a symmetric matrix is itself, and
        // the returned column-major eigenvector matrix is read back transposed below.
        var a = matrix
        var w = [Double](repeating: 0, count: n)
        var jobz = Int8(UInt8(ascii: "V")), uplo = Int8(UInt8(ascii: "U"))
        var nn = Int32(n), lda = Int32(max(n, 1)), info: Int32 = 0
        var lwork: Int32 = -1, liwork: Int32 = -1
        var workQuery = [Double](repeating: 0, count: 1)
        var iworkQuery = [Int32](repeating: 0, count: 1)
        dsyevd_(&jobz, &uplo, &nn, &a, &lda, &w, &workQuery, &lwork, &iworkQuery, &liwork, &info)
        guard info == 0 else { throw MetricsError("dsyevd workspace query failed (info \(info))") }
        lwork = Int32(workQuery[0]); liwork = iworkQuery[0]
        var work = [Double](repeating: 0, count: Int(lwork))
        var iwork = [Int32](repeating: 0, count: Int(liwork))
        dsyevd_(&jobz, &uplo, &nn, &a, &lda, &w, &work, &lwork, &iwork, &liwork, &info)
        guard info == 0 else { throw MetricsError("dsyevd did not converge (info \(info))") }
        values = w
        // a holds eigenvectors as columns in column-major order = rows in row-major; transpose.
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for k in 0..<n { v[i * n + k] = a[k * n + i] } }
        vectors = v
    }

    /// V · diag(f(λ)) · Vᵀ, row-major n x n.
    public func reconstructed(_ f: (Double) -> Double) -> [Double] {
        let n = self.n
        var scaled = vectors
        for i in 0..<n { for k in 0..<n { scaled[i * n + k] *= f(values[k]) } }
        var out = [Double](repeating: 0, count: n * n)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(n),
                    1.0, scaled, Int32(n), vectors, Int32(n), 0.0, &out, Int32(n))
        return out
    }
}

/// A metrics computation that cannot proceed (bad shapes, LAPACK failure, bad file).
public struct MetricsError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
