/// An 8-bit image in interleaved HWC order: 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels.
public struct ByteImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && (1...4).contains(channels), "bad image geometry")
        precondition(pixels.count == width * height * channels, "pixel count does not match \(width)x\(height)x\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    public init(width: Int, height: Int, channels: Int, filledWith value: UInt8) {
        self.init(width: width, height: height, channels: channels,
                  pixels: [UInt8](repeating: value, count: width * height * channels))
    }

    public var hasAlpha: Bool { channels == 2 || channels == 4 }
    /// Colour channels without alpha: 1 for gray, 3 for RGB.
    public var colorChannels: Int { channels >= 3 ? 3 : 1 }

    /// Alpha-composites over a uniform background (`out = c*a + bg*(1-a)`, rounded); images
    /// without alpha are returned unchanged.
    public func compositedOver(background: UInt8) -> ByteImage {
        guard hasAlpha else { return self }
        let color = colorChannels
        var out = [UInt8](repeating: 0, count: width * height * color)
        let bg = Int(background)
        pixels.withUnsafeBufferPointer { src in
            for p in 0..<(width * height) {
                let a = Int(src[p * channels + color])
                for c in 0..<color {
                    let v = Int(src[p * channels + c]) * a + bg * (255 - a)
                    out[p * color + c] = UInt8((v + 127) / 255)
                }
            }
        }
        return ByteImage(width: width, height: height, channels: color, pixels: out)
    }

    /// Converts between gray and RGB (alpha must have been composited first).
    /// RGB -> gray uses the ITU-R 601 luma weights (as PIL's `convert("L")`).
    public func converted(toChannels target: Int) -> ByteImage {
        precondition(!hasAlpha, "composite alpha before converting channels")
        precondition(target == 1 || target == 3, "channels must be 1 or 3")
        if target == channels { return self }
        let n = width * height
        var out = [UInt8](repeating: 0, count: n * target)
        if target == 3 {
            for p in 0..<n { let v = pixels[p]; out[3 * p] = v; out[3 * p + 1] = v; out[3 * p + 2] = v }
        } else {
            for p in 0..<n {
                let luma = 299 * Int(pixels[3 * p]) + 587 * Int(pixels[3 * p + 1]) + 114 * Int(pixels[3 * p + 2])
                out[p] = UInt8((luma + 500) / 1000)
            }
        }
        return ByteImage(width: width, height: height, channels: target, pixels: out)
    }

    /// The sub-rectangle starting at (x, y).
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) -> ByteImage {
        precondition(x >= 0 && y >= 0 && x + w <= width && y + h <= height, "crop outside the image")
        var out = [UInt8](repeating: 0, count: w * h * channels)
        for row in 0..<h {
            let src = ((y + row) * width + x) * channels
            out.replaceSubrange(row * w * channels..<(row + 1) * w * channels,
                                with: pixels[src..<src + w * channels])
        }
        return ByteImage(width: w, height: h, channels: channels, pixels: out)
    }

    /// Places this image centred on a `size` x `size` canvas of `background` (image must fit).
    public func padded(toSquare size: Int, background: UInt8) -> ByteImage {
        precondition(width <= size && height <= size, "image larger than the canvas")
        var out = ByteImage(width: size, height: size, channels: channels, filledWith: background)
        let x0 = (size - width) / 2, y0 = (size - height) / 2
        for row in 0..<height {
            let dst = ((y0 + row) * size + x0) * channels
            out.pixels.replaceSubrange(dst..<dst + width * channels,
                                       with: pixels[row * width * channels..<(row + 1) * width * channels])
        }
        return out
    }

    /// Mirror image (left <-> right).
    public func flippedHorizontally() -> ByteImage {
        var out = self
        for y in 0..<height {
            for x in 0..<width {
                let src = (y * width + (width - 1 - x)) * channels, dst = (y * width + x) * channels
                for c in 0..<channels { out.pixels[dst + c] = pixels[src + c] }
            }
        }
        return out
    }
}
