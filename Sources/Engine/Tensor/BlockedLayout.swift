/// Activations in channel blocks: an image tensor [N, C, H, W] stored as [N, C/b, H, W, b], so
/// element (n, c, h, w) sits at [n, c / b, h, w, c % b] (oneDNN's nChw8c / nChw16c). oneDNN's
/// convolutions compute in this layout; a network that keeps its activations in it between
/// convolutions saves the two reorders around every call (`bench/onednn-layouts`). The shape
/// says the layout: rank 4 is NCHW, rank 5 is blocked with b = shape[4].
///
/// Elementwise operations (adds, SiLU, dropout, scaling) do not care about the layout; those
/// that see channels or pixels (convolutions, GroupNorm, resampling, the embedding add,
/// concatenation along channels) handle both.
extension Tensor {
    /// (batch, channels, height, width, block) of an NCHW (block 1) or blocked image tensor.
    public var imageGeometry: (batch: Int, channels: Int, height: Int, width: Int, block: Int) { Self.imageGeometry(shape) }

    public static func imageGeometry(_ shape: [Int]) -> (batch: Int, channels: Int, height: Int, width: Int, block: Int) {
        switch shape.count {
        case 4: return (shape[0], shape[1], shape[2], shape[3], 1)
        case 5: return (shape[0], shape[1] * shape[4], shape[2], shape[3], shape[4])
        default: preconditionFailure("expected an image tensor [N, C, H, W] or [N, C/b, H, W, b], got \(shape)")
        }
    }

    /// The shape of an image tensor of this geometry in channel blocks of `block` (1: NCHW).
    public static func imageShape(batch: Int, channels: Int, height: Int, width: Int, block: Int) -> [Int] {
        precondition(block >= 1 && channels % block == 0, "\(channels) channels do not split into blocks of \(block)")
        return block == 1 ? [batch, channels, height, width] : [batch, channels / block, height, width, block]
    }

    /// This image tensor in channel blocks of `block` (1: NCHW).
    public func blocked(_ block: Int) -> Tensor {
        let g = imageGeometry
        guard g.block != block else { return self }
        guard g.block == 1 else { return unblocked().blocked(block) }
        let plane = g.height * g.width
        return Tensor(shape: Self.imageShape(batch: g.batch, channels: g.channels, height: g.height, width: g.width, block: block)) { out in
            data.withUnsafeBufferPointer { x in
                for n in 0..<g.batch { for c in 0..<g.channels {
                    let src = x.baseAddress! + (n * g.channels + c) * plane
                    let dst = out.baseAddress! + ((n * g.channels + c - c % block) * plane) + c % block
                    for i in 0..<plane { dst[i * block] = src[i] }
                } }
            }
        }
    }

    /// This image tensor in NCHW.
    public func unblocked() -> Tensor {
        let g = imageGeometry
        guard g.block > 1 else { return self }
        let (plane, block) = (g.height * g.width, g.block)
        return Tensor(shape: [g.batch, g.channels, g.height, g.width]) { out in
            data.withUnsafeBufferPointer { x in
                for n in 0..<g.batch { for c in 0..<g.channels {
                    let src = x.baseAddress! + ((n * g.channels + c - c % block) * plane) + c % block
                    let dst = out.baseAddress! + (n * g.channels + c) * plane
                    for i in 0..<plane { dst[i] = src[i * block] }
                } }
            }
        }
    }
}
