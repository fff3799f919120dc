/// Parameter-free helpers for U-Net wiring, each with its backward next to it.

/// Concatenates NCHW tensors along channels (U-Net skip connections).
public func concatChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.rank == 4 && b.rank == 4 && a.shape[0] == b.shape[0] && a.shape[2...] == b.shape[2...],
                 "concatChannels: shapes \(a.shape) and \(b.shape)")
    let (n, ca, cb) = (a.shape[0], a.shape[1], b.shape[1])
    let plane = a.shape[2] * a.shape[3]
    return Tensor(shape: [n, ca + cb, a.shape[2], a.shape[3]]) { out in
        a.data.withUnsafeBufferPointer { ap in b.data.withUnsafeBufferPointer { bp in
            let (pa, pb, po) = (ap.baseAddress!, bp.baseAddress!, out.baseAddress!)
            Engine.parallelFor(n, costPerItem: (ca + cb) * plane) { r in
                for i in r {
                    let o = po + i * (ca + cb) * plane
                    o.update(from: pa + i * ca * plane, count: ca * plane)
                    (o + ca * plane).update(from: pb + i * cb * plane, count: cb * plane)
                }
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
            let (px, pe, po) = (xp.baseAddress!, ep.baseAddress!, out.baseAddress!)
            Engine.parallelFor(ep.count, costPerItem: plane) { r in
                for nc in r {
                    let v = pe[nc], s = px + nc * plane, d = po + nc * plane
                    for i in 0..<plane { d[i] = s[i] + v }
                }
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
            let (pd, po) = (d.baseAddress!, out.baseAddress!)
            // Each (n, c) is summed in order (sequential Float adds), whichever thread takes it.
            Engine.parallelFor(out.count, costPerItem: plane) { r in
                for nc in r {
                    var s: Float = 0
                    let p = pd + nc * plane
                    for i in 0..<plane { s += p[i] }
                    po[nc] = s
                }
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
            let (px, py, po) = (x.baseAddress!, y.baseAddress!, out.baseAddress!)
            Engine.parallelFor(x.count, costPerItem: 2) { r in
                for i in r { po[i] = (px[i] + py[i]) * scale }
            }
        } }
    }
}
