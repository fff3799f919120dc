import Foundation

/// SiLU (swish): y = x * s with s = sigmoid(x); dy/dx = s * (1 + x * (1 - s)).
/// Forward keeps x and s, so backward needs no second exp; with `retainsForBackward` off
/// (sampling) it writes y only, the same bits with a third of the memory traffic.
public final class SiLU: Layer {
    public var retainsForBackward = true
    private var input: Tensor?
    private var sigmoid: [Float] = []
    public init() {}
    public func namedParameters() -> [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor) -> Tensor {
        guard retainsForBackward else {
            (input, sigmoid) = (nil, [])
            return Tensor(shape: x.shape) { y in
                x.data.withUnsafeBufferPointer { xp in
                    let (src, dst) = (xp.baseAddress!, y.baseAddress!)
                    Engine.parallelFor(xp.count, costPerItem: 8) { r in
                        for i in r { let v = src[i], e = 1 / (1 + expf(-v)); dst[i] = v * e }
                    }
                }
            }
        }
        input = x
        var s = [Float](unsafeUninitializedCapacity: x.count) { _, n in n = x.count }
        let y = Tensor(shape: x.shape) { y in
            x.data.withUnsafeBufferPointer { xp in s.withUnsafeMutableBufferPointer { sp in
                let (src, sig, dst) = (xp.baseAddress!, sp.baseAddress!, y.baseAddress!)
                Engine.parallelFor(xp.count, costPerItem: 8) { r in
                    for i in r { let v = src[i], e = 1 / (1 + expf(-v)); sig[i] = e; dst[i] = v * e }
                }
            } }
        }
        sigmoid = s
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input, sigmoid.count == x.count else {
            preconditionFailure("SiLU.backward without a forward that retained its input (retainsForBackward)")
        }
        defer { input = nil; sigmoid = [] }
        precondition(dy.shape == x.shape, "SiLU.backward: dy shape \(dy.shape)")
        return Tensor(shape: x.shape) { dx in
            x.data.withUnsafeBufferPointer { xp in dy.data.withUnsafeBufferPointer { gp in sigmoid.withUnsafeBufferPointer { sp in
                let (src, g, sig, dst) = (xp.baseAddress!, gp.baseAddress!, sp.baseAddress!, dx.baseAddress!)
                Engine.parallelFor(xp.count, costPerItem: 4) { r in
                    for i in r { let v = src[i], s = sig[i]; dst[i] = g[i] * s * (1 + v * (1 - s)) }
                }
            } } }
        }
    }
}
