import Foundation

/// Tiles equally sized images into one picture, row-major, `columns` per row (EDM-style grid,
/// no gutters); unused cells of the last row stay black.
public func imageGrid(_ images: [ByteImage], columns: Int) -> ByteImage {
    precondition(!images.isEmpty && columns > 0, "a grid needs images and at least one column")
    let w = images[0].width, h = images[0].height, c = images[0].channels
    precondition(images.allSatisfy { $0.width == w && $0.height == h && $0.channels == c }, "grid images differ in size")
    let cols = min(columns, images.count), rows = (images.count + cols - 1) / cols
    var grid = ByteImage(width: cols * w, height: rows * h, channels: c, filledWith: 0)
    for (k, image) in images.enumerated() {
        let x0 = (k % cols) * w, y0 = (k / cols) * h
        for y in 0..<h {
            let dst = ((y0 + y) * grid.width + x0) * c
            grid.pixels.replaceSubrange(dst..<dst + w * c, with: image.pixels[y * w * c..<(y + 1) * w * c])
        }
    }
    return grid
}

/// Writes a grid PNG of 8-bit images.
public func writeGridPNG(images: [ByteImage], columns: Int, to url: URL) throws {
    try writePNG(imageGrid(images, columns: columns), to: url)
}

/// Writes a grid PNG of an NCHW tensor with values in [-1, 1] (generated samples, batches):
/// pixel = round((x + 1) * 127.5), clamped. C must be 1 or 3.
public func writeGridPNG(images tensor: Tensor, columns: Int, to url: URL) throws {
    try writePNG(imageGrid(byteImages(fromNCHW: tensor), columns: columns), to: url)
}

/// Converts an NCHW tensor in [-1, 1] to 8-bit HWC images.
public func byteImages(fromNCHW tensor: Tensor) -> [ByteImage] {
    precondition(tensor.rank == 4 && (tensor.shape[1] == 1 || tensor.shape[1] == 3), "expected N x (1|3) x H x W")
    let (n, c, h, w) = (tensor.shape[0], tensor.shape[1], tensor.shape[2], tensor.shape[3])
    return (0..<n).map { i in
        var pixels = [UInt8](repeating: 0, count: h * w * c)
        for ch in 0..<c {
            for p in 0..<(h * w) {
                let v = (tensor.data[(i * c + ch) * h * w + p] + 1) * 127.5
                pixels[p * c + ch] = v.isNaN ? 0 : UInt8(max(0, min(255, v.rounded())))
            }
        }
        return ByteImage(width: w, height: h, channels: c, pixels: pixels)
    }
}
