import Foundation
import Testing
@testable import Engine

@Suite("Data: PNG through libpng")
struct DataPNGTests {
    let width = 13, height = 7

    func randomSamples(_ count: Int, max: Int, seed: UInt64) -> [Int] {
        var rng = RandomGenerator(seed: seed)
        return (0..<count).map { _ in rng.integer(upTo: max) }
    }

    /// 16-bit -> 8-bit as an exact rounding of v * 255 / 65535.
    func to8(_ v: Int) -> UInt8 { UInt8((Double(v) * 255 / 65535).rounded()) }

    @Test("8-bit gray, gray+alpha, RGB, RGBA decode to the same samples", arguments: [(0, 1), (4, 2), (2, 3), (6, 4)])
    func eightBit(colorType: Int, channels: Int) throws {
        let samples = randomSamples(width * height * channels, max: 255, seed: UInt64(colorType))
        let png = handMadePNG(width: width, height: height, bitDepth: 8, colorType: colorType,
                              samples: samples, channelsPerPixel: channels)
        let image = try PNGCodec.decode(png, name: "fixture")
        #expect(image.width == width && image.height == height && image.channels == channels)
        #expect(image.pixels == samples.map(UInt8.init))
    }

    @Test("16-bit gray, RGB, RGBA decode to rounded 8-bit samples", arguments: [(0, 1), (2, 3), (6, 4), (4, 2)])
    func sixteenBit(colorType: Int, channels: Int) throws {
        var samples = randomSamples(width * height * channels, max: 65535, seed: 100 + UInt64(colorType))
        samples[0] = 0; samples[1] = 65535; samples[2] = 32767
        let png = handMadePNG(width: width, height: height, bitDepth: 16, colorType: colorType,
                              samples: samples, channelsPerPixel: channels)
        let image = try PNGCodec.decode(png, name: "fixture")
        #expect(image.channels == channels)
        let expected = samples.map(to8)
        let worst = zip(image.pixels, expected).map { abs(Int($0) - Int($1)) }.max()!
        #expect(worst == 0, "largest difference from round(v*255/65535): \(worst)")
    }

    @Test("palette images (8-bit with tRNS, 4-bit without) expand to RGBA / RGB")
    func palette() throws {
        let palette: [(UInt8, UInt8, UInt8)] = (0..<16).map { (i: Int) -> (UInt8, UInt8, UInt8) in
            (UInt8(i * 16), UInt8(255 - i * 8), UInt8(i * 3))
        }
        let alpha: [UInt8] = [0, 40, 128, 200]  // entries past the tRNS list are opaque
        let indices = randomSamples(width * height, max: 15, seed: 9)

        let withAlpha = try PNGCodec.decode(handMadePNG(width: width, height: height, bitDepth: 8, colorType: 3, samples: indices,
                                                        channelsPerPixel: 1, palette: palette, transparency: alpha), name: "p8")
        #expect(withAlpha.channels == 4)
        let expectedRGBA: [UInt8] = indices.flatMap { (i: Int) -> [UInt8] in
            let a: UInt8 = i < alpha.count ? alpha[i] : 255
            return [palette[i].0, palette[i].1, palette[i].2, a]
        }
        #expect(withAlpha.pixels == expectedRGBA)

        let fourBit = try PNGCodec.decode(handMadePNG(width: width, height: height, bitDepth: 4, colorType: 3, samples: indices,
                                                      channelsPerPixel: 1, palette: palette), name: "p4")
        #expect(fourBit.channels == 3)
        let expectedRGB: [UInt8] = indices.flatMap { (i: Int) -> [UInt8] in [palette[i].0, palette[i].1, palette[i].2] }
        #expect(fourBit.pixels == expectedRGB)

        let bits = randomSamples(width * height, max: 1, seed: 3)
        let oneBit = try PNGCodec.decode(handMadePNG(width: width, height: height, bitDepth: 1, colorType: 0, samples: bits,
                                                     channelsPerPixel: 1), name: "g1")
        #expect(oneBit.pixels == bits.map { UInt8($0 * 255) })
    }

    @Test("encode then decode is lossless for 1-4 channels, through a file", arguments: [1, 2, 3, 4])
    func roundTrip(channels: Int) throws {
        let dir = try makeTemporaryDirectory("png")
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = ByteImage(width: 31, height: 17, channels: channels, pixels: fixtureBytes(31 * 17 * channels, seed: UInt64(channels)))
        let url = dir.appendingPathComponent("x.png")
        try writePNG(image, to: url)
        #expect(try readPNG(url) == image)
    }

    @Test("truncated and non-PNG files are errors naming the file")
    func badFiles() throws {
        let dir = try makeTemporaryDirectory("png")
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = ByteImage(width: 40, height: 40, channels: 3, pixels: fixtureBytes(4800, seed: 1))
        let bytes = try PNGCodec.encode(image)
        let url = dir.appendingPathComponent("cut.png")
        try Data(bytes[0..<(bytes.count * 2 / 3)]).write(to: url)
        var error = #expect(throws: DataError.self) { try readPNG(url) }
        #expect(error?.message.hasPrefix(url.path) == true)

        try Data("not a png".utf8).write(to: url)
        error = #expect(throws: DataError.self) { try readPNG(url) }
        #expect(error?.message.hasPrefix(url.path) == true)

        error = #expect(throws: DataError.self) { try readPNG(dir.appendingPathComponent("missing.png")) }
        #expect(error?.message.contains("missing.png: file not found") == true)
    }
}
