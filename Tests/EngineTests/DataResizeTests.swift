import Foundation
import Testing
@testable import Engine

@Suite("Data: resizing and fitting")
struct DataResizeTests {
    func randomImage(width: Int, height: Int, channels: Int, seed: UInt64) -> ByteImage {
        ByteImage(width: width, height: height, channels: channels, pixels: fixtureBytes(width * height * channels, seed: seed))
    }

    @Test("box downscale by an integer factor is the exact mean of each block", arguments: [2, 3, 4])
    func boxIsBlockMean(factor: Int) {
        let image = randomImage(width: 12 * factor / 2, height: 24, channels: 3, seed: UInt64(factor))
        let w = image.width / factor, h = image.height / factor
        let out = image.resized(width: w, height: h, filter: .box)
        var expected = [UInt8]()
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 {
                    var sum = 0
                    for dy in 0..<factor { for dx in 0..<factor { sum += Int(image.pixels[((y * factor + dy) * image.width + x * factor + dx) * 3 + c]) } }
                    expected.append(UInt8((Double(sum) / Double(factor * factor)).rounded()))
                }
            }
        }
        #expect(out.pixels == expected)
    }

    /// Lanczos-3 straight from its definition, non-separable, in Double: every output pixel is
    /// the normalised 2-d sum over ALL input pixels of L(dx / sx') * L(dy / sy'), the kernel
    /// stretched by the downscale factor (antialiasing).
    func lanczosReference(_ image: ByteImage, width: Int, height: Int) -> [UInt8] {
        func lanczos(_ t: Double) -> Double {
            if t == 0 { return 1 }
            if abs(t) >= 3 { return 0 }
            return sin(.pi * t) / (.pi * t) * sin(.pi * t / 3) / (.pi * t / 3)
        }
        let sx = Double(image.width) / Double(width), sy = Double(image.height) / Double(height)
        var out = [UInt8]()
        for j in 0..<height {
            let cy = (Double(j) + 0.5) * sy
            let wy = (0..<image.height).map { lanczos((Double($0) + 0.5 - cy) / max(sy, 1)) }
            for i in 0..<width {
                let cx = (Double(i) + 0.5) * sx
                let wx = (0..<image.width).map { lanczos((Double($0) + 0.5 - cx) / max(sx, 1)) }
                for c in 0..<image.channels {
                    var sum = 0.0, norm = 0.0
                    for y in 0..<image.height where wy[y] != 0 {
                        for x in 0..<image.width where wx[x] != 0 {
                            sum += wx[x] * wy[y] * Double(image.pixels[(y * image.width + x) * image.channels + c])
                            norm += wx[x] * wy[y]
                        }
                    }
                    out.append(UInt8(max(0, min(255, (sum / norm).rounded()))))
                }
            }
        }
        return out
    }

    @Test("Lanczos-3 matches a direct 2-d reference (down and up, non-square)",
          arguments: [(68, 64, 32, 30), (68, 64, 17, 16), (10, 7, 23, 16)])
    func lanczosAgainstReference(inW: Int, inH: Int, outW: Int, outH: Int) {
        // A smooth pattern plus noise, so both ringing and averaging matter.
        var image = randomImage(width: inW, height: inH, channels: 3, seed: 11)
        for y in 0..<inH { for x in 0..<inW { image.pixels[(y * inW + x) * 3] = UInt8((x * 255) / inW) } }
        let out = image.resized(width: outW, height: outH, filter: .lanczos3)
        let reference = lanczosReference(image, width: outW, height: outH)
        let diffs = zip(out.pixels, reference).map { abs(Int($0) - Int($1)) }
        #expect(diffs.max()! <= 1)
        #expect(Double(diffs.filter { $0 == 0 }.count) / Double(diffs.count) > 0.98)
    }

    @Test("a constant image stays constant under both filters")
    func constantPreserved() {
        let image = ByteImage(width: 37, height: 29, channels: 1, filledWith: 173)
        for filter in ResizeFilter.allCases {
            #expect(image.resized(width: 11, height: 13, filter: filter).pixels.allSatisfy { $0 == 173 })
            #expect(image.resized(width: 50, height: 41, filter: filter).pixels.allSatisfy { $0 == 173 })
        }
    }

    @Test("pad centres without resampling when the image fits; shrinks the longer side otherwise")
    func pad() {
        let small = randomImage(width: 28, height: 28, channels: 1, seed: 5)
        let padded = small.fitted(to: 32, mode: .pad, filter: .lanczos3, background: 0)
        #expect(padded.width == 32 && padded.height == 32)
        for y in 0..<32 {
            for x in 0..<32 {
                let inside = (2..<30).contains(x) && (2..<30).contains(y)
                #expect(padded.pixels[y * 32 + x] == (inside ? small.pixels[(y - 2) * 28 + x - 2] : 0))
            }
        }
        let wide = randomImage(width: 136, height: 128, channels: 3, seed: 6)
        let fitted = wide.fitted(to: 32, mode: .pad, filter: .box, background: 255)
        let shrunk = wide.resized(width: 32, height: 30, filter: .box)
        #expect(Array(fitted.pixels[0..<(32 * 3)]) == [UInt8](repeating: 255, count: 96))  // top pad row
        #expect(Array(fitted.pixels[(32 * 3)..<(31 * 32 * 3)]) == shrunk.pixels)
    }

    @Test("center-crop-resize takes the central square before resizing")
    func centerCrop() {
        let wide = randomImage(width: 136, height: 128, channels: 3, seed: 8)
        let out = wide.fitted(to: 32, mode: .centerCropResize, filter: .box)
        let square = wide.cropped(x: 4, y: 0, width: 128, height: 128)
        #expect(out == square.resized(width: 32, height: 32, filter: .box))
        #expect(square.pixels[0..<3] == wide.pixels[12..<15])
    }
}

extension ByteImage {
    fileprivate func fitted(to r: Int, mode: FitMode, filter: ResizeFilter) -> ByteImage {
        fitted(to: r, mode: mode, filter: filter, background: 0)
    }
}
