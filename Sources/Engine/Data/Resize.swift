import Foundation

/// Resampling filters. Both are applied separably and antialiased: when shrinking by a factor
/// s the kernel is stretched by s, so every input pixel contributes (the scheme of PIL's
/// `Image.resize`, which EDM's dataset tool uses with LANCZOS).
public enum ResizeFilter: String, Sendable, CaseIterable {
    /// Area average; for an integer downscale factor k it is the exact mean of each k x k block.
    case box
    /// Lanczos with 3 lobes: sharper, the usual choice for preparing image data sets.
    case lanczos3

    var support: Double { self == .box ? 0.5 : 3 }

    func kernel(_ x: Double) -> Double {
        switch self {
        case .box:
            return x >= -0.5 && x < 0.5 ? 1 : 0
        case .lanczos3:
            if x == 0 { return 1 }
            if abs(x) >= 3 { return 0 }
            let px = Double.pi * x
            return 3 * sin(px) * sin(px / 3) / (px * px)
        }
    }
}

/// Per output pixel: the first input index and the normalised weights of the inputs from there.
struct ResampleTaps {
    var starts: [Int]
    var weights: [[Float]]

    init(inSize: Int, outSize: Int, filter: ResizeFilter) {
        let scale = Double(inSize) / Double(outSize)
        let stretch = max(scale, 1)
        let support = filter.support * stretch
        starts = []
        weights = []
        for i in 0..<outSize {
            let center = (Double(i) + 0.5) * scale
            let lo = max(Int((center - support + 0.5).rounded(.down)), 0)
            let hi = min(Int((center + support + 0.5).rounded(.down)), inSize)
            var w = (lo..<hi).map { filter.kernel((Double($0) + 0.5 - center) / stretch) }
            let total = w.reduce(0, +)
            if total != 0 { w = w.map { $0 / total } }
            starts.append(lo)
            weights.append(w.map(Float.init))
        }
    }
}

extension ByteImage {
    /// Resamples to `newWidth` x `newHeight` (horizontal pass, then vertical; the intermediate is
    /// kept in Float so only the final value is rounded).
    public func resized(width newWidth: Int, height newHeight: Int, filter: ResizeFilter) -> ByteImage {
        if newWidth == width && newHeight == height { return self }
        let c = channels
        let horizontal = ResampleTaps(inSize: width, outSize: newWidth, filter: filter)
        let vertical = ResampleTaps(inSize: height, outSize: newHeight, filter: filter)
        var rows = [Float](repeating: 0, count: height * newWidth * c)
        pixels.withUnsafeBufferPointer { src in
            for y in 0..<height {
                for x in 0..<newWidth {
                    let start = horizontal.starts[x], w = horizontal.weights[x]
                    for ch in 0..<c {
                        var acc: Float = 0
                        for k in 0..<w.count { acc += w[k] * Float(src[(y * width + start + k) * c + ch]) }
                        rows[(y * newWidth + x) * c + ch] = acc
                    }
                }
            }
        }
        var out = [UInt8](repeating: 0, count: newHeight * newWidth * c)
        for y in 0..<newHeight {
            let start = vertical.starts[y], w = vertical.weights[y]
            for i in 0..<(newWidth * c) {
                var acc: Float = 0
                for k in 0..<w.count { acc += w[k] * rows[(start + k) * newWidth * c + i] }
                out[y * newWidth * c + i] = UInt8(max(0, min(255, acc.rounded())))
            }
        }
        return ByteImage(width: newWidth, height: newHeight, channels: c, pixels: out)
    }
}

/// How an image of any size becomes resolution x resolution.
public enum FitMode: String, Sendable, CaseIterable {
    /// Keep the whole image: shrink (never enlarge) so the longer side fits, then centre it on a
    /// square canvas of the source's background colour. Fashion-MNIST 28x28 -> 32x32 is a pure pad.
    case pad
    /// Crop the central square (side = the shorter side), then resize it to the resolution
    /// (down or up).
    case centerCropResize = "center-crop-resize"
}

extension ByteImage {
    public func fitted(to resolution: Int, mode: FitMode, filter: ResizeFilter, background: UInt8) -> ByteImage {
        switch mode {
        case .pad:
            var image = self
            if width > resolution || height > resolution {
                let scale = Double(resolution) / Double(max(width, height))
                let w = min(resolution, max(1, Int((Double(width) * scale).rounded())))
                let h = min(resolution, max(1, Int((Double(height) * scale).rounded())))
                image = resized(width: w, height: h, filter: filter)
            }
            return image.padded(toSquare: resolution, background: background)
        case .centerCropResize:
            let side = min(width, height)
            let square = cropped(x: (width - side) / 2, y: (height - side) / 2, width: side, height: side)
            return square.resized(width: resolution, height: resolution, filter: filter)
        }
    }
}
