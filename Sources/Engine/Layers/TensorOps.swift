/// Parameter-free helpers for U-Net wiring, each with its backward next to it.

/// Concatenates image tensors along channels (U-Net skip connections). In NCHW and in channel
/// blocks alike (`Tensor.blocked(_:)`, block counts then concatenate) each image's channels are
/// one contiguous run, so the copy is the same.
public func concatChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
    let (ga, gb) = (a.imageGeometry, b.imageGeometry)
    precondition(ga.batch == gb.batch && ga.height == gb.height && ga.width == gb.width && ga.block == gb.block,
                 "concatChannels: shapes \(a.shape) and \(b.shape)")
    let (n, ca, cb) = (ga.batch, ga.channels, gb.channels)
    let plane = ga.height * ga.width
    return Tensor(shape: Tensor.imageShape(batch: n, channels: ca + cb, height: ga.height, width: ga.width, block: ga.block)) { out in
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
    let g = dy.imageGeometry
    precondition(channels > 0 && channels < g.channels && channels % g.block == 0, "splitChannels: \(dy.shape) at \(channels)")
    let (n, c, plane) = (g.batch, g.channels, g.height * g.width)
    let cb = c - channels
    func part(_ count: Int, from offset: Int) -> Tensor {
        Tensor(shape: Tensor.imageShape(batch: n, channels: count, height: g.height, width: g.width, block: g.block)) { out in
            dy.data.withUnsafeBufferPointer { d in
                for i in 0..<n { (out.baseAddress! + i * count * plane).update(from: d.baseAddress! + (i * c + offset) * plane, count: count * plane) }
            }
        }
    }
    return (part(channels, from: 0), part(cb, from: channels))
}

/// x[N, C, H, W] + e[N, C] broadcast over H, W (the noise embedding added in each block); x in
/// NCHW or in channel blocks.
public func addChannelwise(_ x: Tensor, _ e: Tensor) -> Tensor {
    let g = x.imageGeometry
    precondition(e.shape == [g.batch, g.channels], "addChannelwise: \(x.shape) + \(e.shape)")
    let (plane, b) = (g.height * g.width, g.block)
    return Tensor(shape: x.shape) { out in
        x.data.withUnsafeBufferPointer { xp in e.data.withUnsafeBufferPointer { ep in
            let (px, pe, po) = (xp.baseAddress!, ep.baseAddress!, out.baseAddress!)
            // One (image, channel block) at a time: b channels, each pixel's b values contiguous.
            Engine.parallelFor(ep.count / b, costPerItem: plane * b) { r in
                for nb in r {
                    let v = pe + nb * b, s = px + nb * plane * b, d = po + nb * plane * b
                    if b == 1 {
                        let v = v[0]
                        for i in 0..<plane { d[i] = s[i] + v }
                    } else {
                        for i in 0..<plane { for l in 0..<b { d[i * b + l] = s[i * b + l] + v[l] } }
                    }
                }
            }
        } }
    }
}

/// Backward of `addChannelwise` for the embedding: de[N, C] = sum over H, W of dy (dx is dy
/// itself). Each (n, c) is summed over the pixels in order (sequential Float adds) in either
/// layout, whichever thread takes it, so both layouts give the same bits.
public func sumSpatial(_ dy: Tensor) -> Tensor {
    let g = dy.imageGeometry
    let (plane, b) = (g.height * g.width, g.block)
    return Tensor(shape: [g.batch, g.channels]) { out in
        dy.data.withUnsafeBufferPointer { d in
            let (pd, po) = (d.baseAddress!, out.baseAddress!)
            Engine.parallelFor(out.count / b, costPerItem: plane * b) { r in
                for nb in r {
                    let p = pd + nb * plane * b, o = po + nb * b
                    if b == 1 {
                        var s: Float = 0
                        for i in 0..<plane { s += p[i] }
                        o[0] = s
                    } else {
                        for l in 0..<b { o[l] = 0 }
                        for i in 0..<plane { for l in 0..<b { o[l] += p[i * b + l] } }
                    }
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
