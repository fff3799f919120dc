import COpenBLAS

/// One image's activations, C x H x W row-major (inference-only feature extractors
/// run image by image).
public struct FeatureMap: Sendable {
    public var data: [Float]
    public var channels: Int, height: Int, width: Int

    public init(data: [Float], channels: Int, height: Int, width: Int) {
        precondition(data.count == channels * height * width)
        (self.data, self.channels, self.height, self.width) = (data, channels, height, width)
    }

    /// Channel-wise concatenation (Inception branch outputs).
    public static func concatenate(_ maps: [FeatureMap]) -> FeatureMap {
        FeatureMap(data: maps.flatMap(\.data), channels: maps.reduce(0) { $0 + $1.channels },
                   height: maps[0].height, width: maps[0].width)
    }

    /// k x k max pooling; padded cells never win (PyTorch pads max pooling with -inf).
    public func maxPool(kernel k: Int, stride s: Int, padding p: Int = 0) -> FeatureMap {
        pool(kernel: k, stride: s, padding: p) { values in values.max()! }
    }

    /// k x k average pooling; padded cells are not counted (count_include_pad=False, as
    /// in pytorch-fid's FID Inception blocks).
    public func averagePool(kernel k: Int, stride s: Int, padding p: Int) -> FeatureMap {
        pool(kernel: k, stride: s, padding: p) { values in values.reduce(0, +) / Float(values.count) }
    }

    func pool(kernel k: Int, stride s: Int, padding p: Int, _ reduce: ([Float]) -> Float) -> FeatureMap {
        let oh = (height + 2 * p - k) / s + 1, ow = (width + 2 * p - k) / s + 1
        var out = [Float](repeating: 0, count: channels * oh * ow)
        var window: [Float] = []
        window.reserveCapacity(k * k)
        for c in 0..<channels { for oy in 0..<oh { for ox in 0..<ow {
            window.removeAll(keepingCapacity: true)
            for ky in 0..<k { for kx in 0..<k {
                let y = oy * s - p + ky, x = ox * s - p + kx
                if y >= 0 && y < height && x >= 0 && x < width { window.append(data[(c * height + y) * width + x]) }
            } }
            out[(c * oh + oy) * ow + ox] = reduce(window)
        } } }
        return FeatureMap(data: out, channels: channels, height: oh, width: ow)
    }

    /// Mean over all positions per channel (adaptive average pooling to 1 x 1).
    public func globalAveragePool() -> [Float] {
        let hw = height * width
        return (0..<channels).map { c in data[(c * hw)..<((c + 1) * hw)].reduce(0, +) / Float(hw) }
    }

    /// Bilinear resize with PyTorch's align_corners=False sampling (half-pixel centres,
    /// source coordinates clamped at 0), as F.interpolate in pytorch-fid.
    public func resizedBilinear(height oh: Int, width ow: Int) -> FeatureMap {
        func taps(_ outSize: Int, _ inSize: Int) -> [(Int, Int, Float)] {
            let scale = Float(inSize) / Float(outSize)
            return (0..<outSize).map { o in
                let src = max((Float(o) + 0.5) * scale - 0.5, 0)
                let i0 = min(Int(src), inSize - 1), i1 = min(i0 + 1, inSize - 1)
                return (i0, i1, src - Float(i0))
            }
        }
        let ty = taps(oh, height), tx = taps(ow, width)
        var out = [Float](repeating: 0, count: channels * oh * ow)
        for c in 0..<channels { for oy in 0..<oh {
            let (y0, y1, ly) = ty[oy]
            for ox in 0..<ow {
                let (x0, x1, lx) = tx[ox]
                let base = c * height * width
                let top = (1 - lx) * data[base + y0 * width + x0] + lx * data[base + y0 * width + x1]
                let bottom = (1 - lx) * data[base + y1 * width + x0] + lx * data[base + y1 * width + x1]
                out[(c * oh + oy) * ow + ox] = (1 - ly) * top + ly * bottom
            }
        } }
        return FeatureMap(data: out, channels: channels, height: oh, width: ow)
    }
}
