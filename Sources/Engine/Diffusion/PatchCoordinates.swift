/// Coordinate channels (docs/patch-diffusion.md section 2): two planes [x, y] holding the
/// pixel's position in the FULL image, x = column j + c, y = row i + r, each mapped by
/// coord = 2 * idx / (R - 1) - 1 so the full grid spans [-1, 1] from top-left to bottom-right.
public enum PatchCoordinates {
    /// The normalised coordinate of pixel index `index` in an image of `resolution` pixels.
    @inline(__always)
    public static func normalized(_ index: Int, resolution: Int) -> Float {
        2 * Float(index) / Float(resolution - 1) - 1
    }

    /// [2, size, size] planes (x then y) for a patch at `offset` of an image normalised by `resolution`.
    /// With `size` > `resolution` (sampling larger than trained) values extend past +1 (extrapolation).
    public static func planes(size: Int, offset: PatchOffset, resolution: Int) -> [Float] {
        var out = [Float](repeating: 0, count: 2 * size * size)
        for r in 0..<size {
            let y = normalized(offset.row + r, resolution: resolution)
            for c in 0..<size {
                out[r * size + c] = normalized(offset.column + c, resolution: resolution)
                out[size * size + r * size + c] = y
            }
        }
        return out
    }

    /// [N, 2, size, size] coordinates for a batch of patches.
    public static func batch(size: Int, offsets: [PatchOffset], resolution: Int) -> Tensor {
        var data: [Float] = []
        data.reserveCapacity(offsets.count * 2 * size * size)
        for o in offsets { data += planes(size: size, offset: o, resolution: resolution) }
        return Tensor(shape: [offsets.count, 2, size, size], data: data)
    }

    /// Full-grid coordinates for sampling `count` images of `size` x `size`. `normalizingResolution`
    /// is the trained resolution (coordinates extrapolate when size is larger) or `size` itself
    /// (the larger grid is squeezed into [-1, 1]).
    public static func fullGrid(count: Int, size: Int, normalizingResolution: Int) -> Tensor {
        batch(size: size, offsets: Array(repeating: PatchOffset(row: 0, column: 0), count: count),
              resolution: normalizingResolution)
    }
}

/// One training round's patches: clean images in [-1, 1] and their coordinate planes.
public struct PatchBatch {
    public var size: Int
    public var offsets: [PatchOffset]
    /// [N, C, s, s], uint8 / 127.5 - 1.
    public var images: Tensor
    /// [N, 2, s, s].
    public var coordinates: Tensor

    /// Crops image `indices[k]` at `offsets[k]` (NHWC uint8 -> NCHW float).
    public init(source: some TrainingImageSet, indices: [Int], size s: Int, offsets: [PatchOffset]) {
        precondition(indices.count == offsets.count, "PatchBatch: one offset per image")
        let (r, ch) = (source.resolution, source.channels)
        var data = [Float](repeating: 0, count: indices.count * ch * s * s)
        data.withUnsafeMutableBufferPointer { out in
            for (k, index) in indices.enumerated() {
                let o = offsets[k]
                precondition(o.row >= 0 && o.column >= 0 && o.row + s <= r && o.column + s <= r,
                             "PatchBatch: patch \(s) at \(o) outside \(r)x\(r)")
                source.withImage(index) { img in
                    for c in 0..<ch {
                        let plane = (k * ch + c) * s * s
                        for y in 0..<s {
                            let row = ((o.row + y) * r + o.column) * ch + c
                            for x in 0..<s { out[plane + y * s + x] = Float(img[row + x * ch]) / 127.5 - 1 }
                        }
                    }
                }
            }
        }
        self.size = s
        self.offsets = offsets
        images = Tensor(shape: [indices.count, ch, s, s], data: data)
        coordinates = PatchCoordinates.batch(size: s, offsets: offsets, resolution: r)
    }
}
