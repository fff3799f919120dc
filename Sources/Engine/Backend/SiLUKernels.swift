import Foundation

/// SiLU (swish) loops: y = x * s with s = sigmoid(x) = 1 / (1 + exp(-x)); dy/dx = s * (1 + x * (1 - s)).
/// The OpenBLAS backend's SiLU (oneDNN runs its own swish kernels).
enum SiLUKernels {
    /// y = x * sigmoid(x); stores the gate in `sigmoid` when given (one pass, libm's expf).
    static func forward(count: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, sigmoid: UnsafeMutablePointer<Float>?) {
        guard let sigmoid else {
            Engine.parallelFor(count, costPerItem: 8) { r in
                for i in r { let v = x[i], s = 1 / (1 + expf(-v)); y[i] = v * s }
            }
            return
        }
        Engine.parallelFor(count, costPerItem: 8) { r in
            for i in r { let v = x[i], s = 1 / (1 + expf(-v)); sigmoid[i] = s; y[i] = v * s }
        }
    }

    static func backward(count: Int, x: UnsafePointer<Float>, sigmoid: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>) {
        Engine.parallelFor(count, costPerItem: 4) { r in
            for i in r { let v = x[i], s = sigmoid[i]; dx[i] = dy[i] * s * (1 + v * (1 - s)) }
        }
    }
}
