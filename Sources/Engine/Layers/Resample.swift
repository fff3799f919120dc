/// 2x resampling with EDM's resample_filter = [1, 1]. In EDM the filter is
/// outer([1,1],[1,1]) / 4; down-sampling is a depthwise stride-2 conv with it (2x2 average
/// pooling) and up-sampling a depthwise stride-2 transposed conv with 4x it (each pixel
/// copied to a 2x2 block, i.e. nearest-neighbour). No parameters. NCHW or channel blocks: a
/// plane is one channel (NCHW) or one block of b channels whose pixels hold b values each.
public final class Downsample2x: Layer {
    private var inputShape: [Int]?
    public init() {}
    public func namedParameters() -> [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor) -> Tensor {
        let g = x.imageGeometry
        precondition(g.height % 2 == 0 && g.width % 2 == 0, "Downsample2x: need even H, W, got \(x.shape)")
        inputShape = x.shape
        let (planes, h, w, b) = (g.batch * g.channels / g.block, g.height, g.width, g.block)
        let (ho, wo) = (h / 2, w / 2)
        return Tensor(shape: Tensor.imageShape(batch: g.batch, channels: g.channels, height: ho, width: wo, block: b)) { y in
            x.data.withUnsafeBufferPointer { xp in
                let (src, dst) = (xp.baseAddress!, y.baseAddress!)
                Engine.parallelFor(planes, costPerItem: h * w * b) { r in
                    for p in r {
                        let s = src + p * h * w * b, d = dst + p * ho * wo * b
                        for i in 0..<ho { for j in 0..<wo {
                            let a = s + (2 * i * w + 2 * j) * b, o = d + (i * wo + j) * b
                            for l in 0..<b { o[l] = 0.25 * (a[l] + a[b + l] + a[w * b + l] + a[(w + 1) * b + l]) }
                        } }
                    }
                }
            }
        }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let shape = inputShape else { preconditionFailure("Downsample2x.backward before forward") }
        let g = Tensor.imageGeometry(shape)
        let (planes, h, w, b) = (g.batch * g.channels / g.block, g.height, g.width, g.block)
        let (ho, wo) = (h / 2, w / 2)
        precondition(dy.shape == Tensor.imageShape(batch: g.batch, channels: g.channels, height: ho, width: wo, block: b),
                     "Downsample2x.backward: dy shape \(dy.shape)")
        return Tensor(shape: shape) { dx in
            dy.data.withUnsafeBufferPointer { gp in
                let (src, dst) = (gp.baseAddress!, dx.baseAddress!)
                Engine.parallelFor(planes, costPerItem: h * w * b) { r in
                    for p in r {
                        let s = src + p * ho * wo * b, d = dst + p * h * w * b
                        for i in 0..<h { for j in 0..<w {
                            let a = s + ((i / 2) * wo + j / 2) * b, o = d + (i * w + j) * b
                            for l in 0..<b { o[l] = 0.25 * a[l] }
                        } }
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
        let g = x.imageGeometry
        inputShape = x.shape
        let (planes, h, w, b) = (g.batch * g.channels / g.block, g.height, g.width, g.block)
        let (ho, wo) = (2 * h, 2 * w)
        return Tensor(shape: Tensor.imageShape(batch: g.batch, channels: g.channels, height: ho, width: wo, block: b)) { y in
            x.data.withUnsafeBufferPointer { xp in
                let (src, dst) = (xp.baseAddress!, y.baseAddress!)
                Engine.parallelFor(planes, costPerItem: ho * wo * b) { r in
                    for p in r {
                        let s = src + p * h * w * b, d = dst + p * ho * wo * b
                        for i in 0..<ho { for j in 0..<wo {
                            (d + (i * wo + j) * b).update(from: s + ((i / 2) * w + j / 2) * b, count: b)
                        } }
                    }
                }
            }
        }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let shape = inputShape else { preconditionFailure("Upsample2x.backward before forward") }
        let g = Tensor.imageGeometry(shape)
        let (planes, h, w, b) = (g.batch * g.channels / g.block, g.height, g.width, g.block)
        let (ho, wo) = (2 * h, 2 * w)
        precondition(dy.shape == Tensor.imageShape(batch: g.batch, channels: g.channels, height: ho, width: wo, block: b),
                     "Upsample2x.backward: dy shape \(dy.shape)")
        return Tensor(shape: shape) { dx in
            dy.data.withUnsafeBufferPointer { gp in
                let (src, dst) = (gp.baseAddress!, dx.baseAddress!)
                Engine.parallelFor(planes, costPerItem: ho * wo * b) { r in
                    for p in r {
                        let s = src + p * ho * wo * b, d = dst + p * h * w * b
                        for i in 0..<h { for j in 0..<w {
                            let a = s + (2 * i * wo + 2 * j) * b, o = d + (i * w + j) * b
                            for l in 0..<b { o[l] = a[l] + a[b + l] + a[wo * b + l] + a[(wo + 1) * b + l] }
                        } }
                    }
                }
            }
        }
    }
}
