import Foundation

/// SiLU (swish): y = x * sigmoid(x); dy/dx = s * (1 + x * (1 - s)).
public final class SiLU: Layer {
    private var input: Tensor?
    public init() {}
    public func namedParameters() -> [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor) -> Tensor {
        input = x
        return Tensor(shape: x.shape) { y in
            x.data.withUnsafeBufferPointer { xp in
                let (src, dst) = (xp.baseAddress!, y.baseAddress!)
                Engine.parallelFor(xp.count, costPerItem: 8) { r in
                    for i in r { let v = src[i]; dst[i] = v / (1 + expf(-v)) }
                }
            }
        }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("SiLU.backward before forward") }
        precondition(dy.shape == x.shape, "SiLU.backward: dy shape \(dy.shape)")
        return Tensor(shape: x.shape) { dx in
            x.data.withUnsafeBufferPointer { xp in dy.data.withUnsafeBufferPointer { gp in
                let (src, g, dst) = (xp.baseAddress!, gp.baseAddress!, dx.baseAddress!)
                Engine.parallelFor(xp.count, costPerItem: 8) { r in
                    for i in r {
                        let v = src[i], s = 1 / (1 + expf(-v))
                        dst[i] = g[i] * s * (1 + v * (1 - s))
                    }
                }
            } }
        }
    }
}
