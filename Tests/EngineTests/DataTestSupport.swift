import CPNG
import Foundation
@testable import Engine

/// Fresh temporary directory for one test.
func makeTemporaryDirectory(_ label: String = "data") throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("pdpipe-\(label)-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// gzip written with zlib directly (deflateInit2 with the gzip wrapper), independent of `Gzip`.
func zlibGzip(_ input: [UInt8]) -> [UInt8] {
    var stream = z_stream()
    precondition(deflateInit2_(&stream, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY,
                               ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK)
    defer { deflateEnd(&stream) }
    var output = [UInt8](repeating: 0, count: input.count + 1024)
    var input = input
    let n = input.withUnsafeMutableBufferPointer { src in
        output.withUnsafeMutableBufferPointer { dst in
            stream.next_in = src.baseAddress; stream.avail_in = uInt(src.count)
            stream.next_out = dst.baseAddress; stream.avail_out = uInt(dst.count)
            precondition(deflate(&stream, Z_FINISH) == Z_STREAM_END)
            return dst.count - Int(stream.avail_out)
        }
    }
    return Array(output[0..<n])
}

/// A minimal PNG encoder written from the specification (zlib `compress` + `crc32`), so PNG
/// decoding is checked against bytes libpng did not produce. Rows are stored with filter 0.
/// `samples` are per-sample values (0...2^bitDepth-1), row-major, `channelsPerPixel` each.
func handMadePNG(width: Int, height: Int, bitDepth: Int, colorType: Int, samples: [Int], channelsPerPixel: Int,
                 palette: [(UInt8, UInt8, UInt8)]? = nil, transparency: [UInt8]? = nil) -> [UInt8] {
    func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
    func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
        let typed = Array(type.utf8) + body
        let crc = typed.withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
        return be32(body.count) + typed + be32(Int(crc))
    }
    var raw: [UInt8] = []
    for y in 0..<height {
        raw.append(0)  // filter type None
        var bits = 0, acc = 0, count = 0
        for x in 0..<(width * channelsPerPixel) {
            let v = samples[y * width * channelsPerPixel + x]
            if bitDepth == 16 { raw += [UInt8(v >> 8), UInt8(v & 0xff)]; continue }
            if bitDepth == 8 { raw.append(UInt8(v)); continue }
            acc = acc << bitDepth | v; bits += bitDepth; count += 1
            if bits == 8 { raw.append(UInt8(acc)); acc = 0; bits = 0 }
        }
        if bits > 0 { raw.append(UInt8(acc << (8 - bits))) }
        _ = count
    }
    var compressedSize = uLong(raw.count + raw.count / 100 + 64)
    var compressed = [UInt8](repeating: 0, count: Int(compressedSize))
    _ = compress(&compressed, &compressedSize, raw, uLong(raw.count))
    var png: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
    png += chunk("IHDR", be32(width) + be32(height) + [UInt8(bitDepth), UInt8(colorType), 0, 0, 0])
    if let palette { png += chunk("PLTE", palette.flatMap { [$0.0, $0.1, $0.2] }) }
    if let transparency { png += chunk("tRNS", transparency) }
    png += chunk("IDAT", Array(compressed[0..<Int(compressedSize)]))
    png += chunk("IEND", [])
    return png
}

/// Deterministic pseudo-random bytes for fixtures.
func fixtureBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = RandomGenerator(seed: seed)
    return (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
}
