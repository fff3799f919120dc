/// 2x resampling with EDM's resample_filter = [1, 1]. In EDM the filter is
/// outer([1,1],[1,1]) / 4; down-sampling is a depthwise stride-2 conv with it (2x2 average
/// pooling) and up-sampling a depthwise stride-2 transposed conv with 4x it (each pixel
/// copied to a 2x2 block, i.e. nearest-neighbour). No parameters.
public final class Downsample2x: Layer {
    private var inputShape: [Int]?
    public init() {}
    public func namedParameters() -> [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[2] % 2 == 0 && x.shape[3] % 2 == 0, "Downsample2x: need even H, W, got \(x.shape)")
        inputShape = x.shape
        let (nc, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        let (ho, wo) = (h / 2, w / 2)
        return Tensor(shape: [x.shape[0], x.shape[1], ho, wo]) { y in
            x.data.withUnsafeBufferPointer { xp in
                let (src, dst) = (xp.baseAddress!, y.baseAddress!)
                Engine.parallelFor(nc, costPerItem: h * w) { r in
                    for p in r {
                        let s = src + p * h * w, d = dst + p * ho * wo
                        for i in 0..<ho { for j in 0..<wo {
                            let a = s + 2 * i * w + 2 * j
                            d[i * wo + j] = 0.25 * (a[0] + a[1] + a[w] + a[w + 1])
                        } }
                    }
                }
            }
        }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let shape = inputShape else { preconditionFailure("Downsample2x.backward before forward") }
        let (nc, h, w) = (shape[0] * shape[1], shape[2], shape[3])
        let (ho, wo) = (h / 2, w / 2)
        precondition(dy.shape == [shape[0], shape[1], ho, wo], "Downsample2x.backward: dy shape \(dy.shape)")
        return Tensor(shape: shape) { dx in
            dy.data.withUnsafeBufferPointer { gp in
                let (src, dst) = (gp.baseAddress!, dx.baseAddress!)
                Engine.parallelFor(nc, costPerItem: h * w) { r in
                    for p in r {
                        let s = src + p * ho * wo, d = dst + p * h * w
                        for i in 0..<h { for j in 0..<w { d[i * w + j] = 0.25 * s[(i / 2) * wo + j / 2] } }
                    }
                }
            }
        }
    }
}

public final class Upsample2x: Layer {
    private var inputShape: [Int]?
    public init() {}
    public func namedParameters() -> [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4, "Upsample2x: expected NCHW, got \(x.shape)")
        inputShape = x.shape
        let (nc, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        let (ho, wo) = (2 * h, 2 * w)
        return Tensor(shape: [x.shape[0], x.shape[1], ho, wo]) { y in
            x.data.withUnsafeBufferPointer { xp in
                let (src, dst) = (xp.baseAddress!, y.baseAddress!)
                Engine.parallelFor(nc, costPerItem: ho * wo) { r in
                    for p in r {
                        let s = src + p * h * w, d = dst + p * ho * wo
                        for i in 0..<ho { for j in 0..<wo { d[i * wo + j] = s[(i / 2) * w + j / 2] } }
                    }
                }
            }
        }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let shape = inputShape else { preconditionFailure("Upsample2x.backward before forward") }
        let (nc, h, w) = (shape[0] * shape[1], shape[2], shape[3])
        let (ho, wo) = (2 * h, 2 * w)
        precondition(dy.shape == [shape[0], shape[1], ho, wo], "Upsample2x.backward: dy shape \(dy.shape)")
        return Tensor(shape: shape) { dx in
            dy.data.withUnsafeBufferPointer { gp in
                let (src, dst) = (gp.baseAddress!, dx.baseAddress!)
                Engine.parallelFor(nc, costPerItem: ho * wo) { r in
                    for p in r {
                        let s = src + p * ho * wo, d = dst + p * h * w
                        for i in 0..<h { for j in 0..<w {
                            let a = s + 2 * i * wo + 2 * j
                            d[i * w + j] = a[0] + a[1] + a[wo] + a[wo + 1]
                        } }
                    }
                }
            }
        }
    }
}
