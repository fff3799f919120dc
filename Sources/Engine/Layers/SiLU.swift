import Foundation

/// SiLU (swish): y = x * s with s = sigmoid(x); dy/dx = s * (1 + x * (1 - s)).
/// Forward keeps x, and s where the backend's backward reads it (`siluKeepsGate`: OpenBLAS,
/// whose backward then needs no second exp); with `retainsForBackward` off (sampling) it keeps
/// nothing and gives the same outputs.
public final class SiLU: Layer {
    public var retainsForBackward = true
    public let backend: any ComputeBackend
    private var input: Tensor?
    private var sigmoid: [Float] = []

    public init(backend: any ComputeBackend = Engine.defaultBackend) { self.backend = backend }
    public func namedParameters() -> [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor) -> Tensor {
        input = retainsForBackward ? x : nil
        guard retainsForBackward && backend.siluKeepsGate else {
            sigmoid = []
            return Tensor(shape: x.shape) { y in
                x.data.withUnsafeBufferPointer { xp in
                    backend.siluForward(count: xp.count, x: xp.baseAddress!, y: y.baseAddress!, sigmoid: nil)
                }
            }
        }
        var s = [Float](unsafeUninitializedCapacity: x.count) { _, n in n = x.count }
        let y = Tensor(shape: x.shape) { y in
            x.data.withUnsafeBufferPointer { xp in s.withUnsafeMutableBufferPointer { sp in
                backend.siluForward(count: xp.count, x: xp.baseAddress!, y: y.baseAddress!, sigmoid: sp.baseAddress!)
            } }
        }
        sigmoid = s
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input, sigmoid.count == x.count || !backend.siluKeepsGate else {
            preconditionFailure("SiLU.backward without a forward that retained its input (retainsForBackward)")
        }
        defer { input = nil; sigmoid = [] }
        precondition(dy.shape == x.shape, "SiLU.backward: dy shape \(dy.shape)")
        return Tensor(shape: x.shape) { dx in
            x.data.withUnsafeBufferPointer { xp in dy.data.withUnsafeBufferPointer { gp in sigmoid.withUnsafeBufferPointer { sp in
                backend.siluBackward(count: xp.count, x: xp.baseAddress!, sigmoid: sp.isEmpty ? nil : sp.baseAddress!, dy: gp.baseAddress!,
                                     dx: dx.baseAddress!)
            } } }
        }
    }
}
