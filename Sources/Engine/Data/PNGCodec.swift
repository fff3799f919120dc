import CPNG
import Foundation

/// PNG reading and writing through libpng's simplified API (`png_image`), which does its own
/// setjmp/longjmp error recovery inside libpng and reports failures as a message: nothing
/// unwinds through Swift frames.
///
/// Reading accepts every PNG colour type and bit depth (gray, gray+alpha, RGB, RGBA, palette with
/// or without tRNS; 1-16 bits) and returns 8-bit samples with the file's channel layout
/// (1/2/3/4; palette becomes RGB or RGBA). 16-bit files without gamma information are taken as
/// sRGB-encoded like 8-bit ones, so 16 -> 8 bits is a plain rescale (as in PIL and OpenCV), not a
/// linear-to-sRGB conversion.
public enum PNGCodec {
    public static func decode(_ data: [UInt8], name: String) throws -> ByteImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        let begun = data.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard begun != 0 else { throw DataError("\(name): not a readable PNG (\(message(of: &image)))") }
        // Keep the file's gray/colour and alpha; ask for 8-bit, non-premultiplied samples.
        let layout = image.format & (PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
        image.format = layout
        image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
        let channels = Int(layout & PNG_FORMAT_FLAG_COLOR != 0 ? 3 : 1) + Int(layout & PNG_FORMAT_FLAG_ALPHA != 0 ? 1 : 0)
        let width = Int(image.width), height = Int(image.height)
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let finished = pixels.withUnsafeMutableBytes {
            png_image_finish_read(&image, nil, $0.baseAddress, 0, nil)
        }
        guard finished != 0 else { throw DataError("\(name): corrupt or truncated PNG (\(message(of: &image)))") }
        return ByteImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// Encodes an 8-bit image (1-4 channels) as PNG bytes.
    public static func encode(_ picture: ByteImage) throws -> [UInt8] {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(picture.width)
        image.height = UInt32(picture.height)
        image.format = UInt32(picture.channels >= 3 ? PNG_FORMAT_FLAG_COLOR : 0) | UInt32(picture.hasAlpha ? PNG_FORMAT_FLAG_ALPHA : 0)
        defer { png_image_free(&image) }
        var size: png_alloc_size_t = 0
        let sized = picture.pixels.withUnsafeBytes {
            png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, 0, nil)
        }
        guard sized != 0, size > 0 else { throw DataError("PNG encoding failed (\(message(of: &image)))") }
        var out = [UInt8](repeating: 0, count: Int(size))
        let written = out.withUnsafeMutableBytes { dst in
            picture.pixels.withUnsafeBytes {
                png_image_write_to_memory(&image, dst.baseAddress, &size, 0, $0.baseAddress, 0, nil)
            }
        }
        guard written != 0 else { throw DataError("PNG encoding failed (\(message(of: &image)))") }
        out.removeSubrange(Int(size)...)
        return out
    }

    private static func message(of image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            let chars = raw.prefix { $0 != 0 }
            return String(decoding: chars, as: UTF8.self)
        }
    }
}

/// Reads and decodes a PNG file (errors name the file).
public func readPNG(_ url: URL) throws -> ByteImage {
    try PNGCodec.decode(try readFileBytes(url), name: url.path)
}

/// Encodes and writes a PNG file atomically.
public func writePNG(_ image: ByteImage, to url: URL) throws {
    let bytes = try PNGCodec.encode(image)
    do {
        try Data(bytes).write(to: url, options: .atomic)
    } catch {
        throw DataError("\(url.path): cannot write PNG (\(error.localizedDescription))")
    }
}
