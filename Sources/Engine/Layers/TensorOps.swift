/// Parameter-free helpers for U-Net wiring, each with its backward next to it.

/// Concatenates NCHW tensors along channels (U-Net skip connections).
public func concatChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.rank == 4 && b.rank == 4 && a.shape[0] == b.shape[0] && a.shape[2...] == b.shape[2...],
                 "concatChannels: shapes \(a.shape) and \(b.shape)")
    let (n, ca, cb) = (a.shape[0], a.shape[1], b.shape[1])
    let plane = a.shape[2] * a.shape[3]
    return Tensor(shape: [n, ca + cb, a.shape[2], a.shape[3]]) { out in
        a.data.withUnsafeBufferPointer { ap in b.data.withUnsafeBufferPointer { bp in
            for i in 0..<n {
                let o = out.baseAddress! + i * (ca + cb) * plane
                o.update(from: ap.baseAddress! + i * ca * plane, count: ca * plane)
                (o + ca * plane).update(from: bp.baseAddress! + i * cb * plane, count: cb * plane)
            }
        } }
    }
}

/// Backward of `concatChannels`: splits dy into the parts for the first `channels` and the rest.
public func splitChannels(_ dy: Tensor, at channels: Int) -> (Tensor, Tensor) {
    precondition(dy.rank == 4 && channels > 0 && channels < dy.shape[1], "splitChannels: \(dy.shape) at \(channels)")
    let (n, c, plane) = (dy.shape[0], dy.shape[1], dy.shape[2] * dy.shape[3])
    let cb = c - channels
    let a = Tensor(shape: [n, channels, dy.shape[2], dy.shape[3]]) { out in
        dy.data.withUnsafeBufferPointer { d in
            for i in 0..<n { (out.baseAddress! + i * channels * plane).update(from: d.baseAddress! + i * c * plane, count: channels * plane) }
        }
    }
    let b = Tensor(shape: [n, cb, dy.shape[2], dy.shape[3]]) { out in
        dy.data.withUnsafeBufferPointer { d in
            for i in 0..<n { (out.baseAddress! + i * cb * plane).update(from: d.baseAddress! + (i * c + channels) * plane, count: cb * plane) }
        }
    }
    return (a, b)
}

/// x[N, C, H, W] + e[N, C] broadcast over H, W (the noise embedding added in each block).
public func addChannelwise(_ x: Tensor, _ e: Tensor) -> Tensor {
    precondition(x.rank == 4 && e.shape == [x.shape[0], x.shape[1]], "addChannelwise: \(x.shape) + \(e.shape)")
    let plane = x.shape[2] * x.shape[3]
    return Tensor(shape: x.shape) { out in
        x.data.withUnsafeBufferPointer { xp in e.data.withUnsafeBufferPointer { ep in
            for nc in 0..<ep.count {
                let v = ep[nc], s = xp.baseAddress! + nc * plane, d = out.baseAddress! + nc * plane
                for i in 0..<plane { d[i] = s[i] + v }
            }
        } }
    }
}

/// Backward of `addChannelwise` for the embedding: de[N, C] = sum over H, W of dy (dx is dy itself).
public func sumSpatial(_ dy: Tensor) -> Tensor {
    precondition(dy.rank == 4, "sumSpatial: expected NCHW, got \(dy.shape)")
    let plane = dy.shape[2] * dy.shape[3]
    return Tensor(shape: [dy.shape[0], dy.shape[1]]) { out in
        dy.data.withUnsafeBufferPointer { d in
            for nc in 0..<out.count {
                var s: Float = 0
                let p = d.baseAddress! + nc * plane
                for i in 0..<plane { s += p[i] }
                out[nc] = s
            }
        }
    }
}

/// (a + b) * scale, e.g. the residual sum times EDM's skip_scale sqrt(0.5).
/// Backward: both inputs receive dy * scale (use `Tensor.scaled`).
public func addScaled(_ a: Tensor, _ b: Tensor, scale: Float) -> Tensor {
    precondition(a.shape == b.shape, "addScaled: shapes \(a.shape) and \(b.shape)")
    return Tensor(shape: a.shape) { out in
        a.data.withUnsafeBufferPointer { x in b.data.withUnsafeBufferPointer { y in
            for i in 0..<x.count { out[i] = (x[i] + y[i]) * scale }
        } }
    }
}
