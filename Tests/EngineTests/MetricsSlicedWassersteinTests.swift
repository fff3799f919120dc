import Foundation
import Testing
@testable import Engine

@Suite struct MetricsSlicedWassersteinTests {
    @Test(.enabled(if: MetricsPythonReference.available, "python3 with numpy/scipy not installed"))
    func laplacianPyramidMatchesScipyNdimage() throws {
        // ProGAN's pyr_down / pyr_up written with scipy.ndimage.convolve(mode='mirror').
        let (c, h, w) = (2, 32, 20)
        var rng = RandomGenerator(seed: 2)
        let image = (0..<(c * h * w)).map { _ in rng.uniform() }
        let dir = try MetricsPythonReference.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("image.f32"), output = dir.appendingPathComponent("pyramid.f32")
        try MetricsPythonReference.write(image, to: input)
        let script = """
        import sys, numpy as np, scipy.ndimage
        g = np.float32([1, 4, 6, 4, 1]); g = np.outer(g, g); g /= g.sum()
        def down(x): return scipy.ndimage.convolve(x, g[None], mode='mirror')[:, ::2, ::2]
        def up(x):
            r = np.zeros((x.shape[0], x.shape[1] * 2, x.shape[2] * 2), np.float32); r[:, ::2, ::2] = x
            return scipy.ndimage.convolve(r, g[None] * 4.0, mode='mirror')
        x = np.fromfile(sys.argv[1], np.float32).reshape(2, 32, 20).astype(np.float64)
        p = [x]
        for _ in range(1): p.append(down(p[-1])); p[-2] = p[-2] - up(p[-1])
        np.concatenate([l.ravel() for l in p]).astype(np.float32).tofile(sys.argv[2])
        """
        _ = try MetricsPythonReference.run(script, arguments: [input.path, output.path])
        let reference = try RawArrayFile.read(Float.self, from: output, count: c * h * w + c * 16 * 10)
        // minimumSize 10 gives exactly two levels (32x20 and 16x10), like the script.
        let levels = LaplacianPyramid.levels(image, channels: c, height: h, width: w, minimumSize: 10)
        #expect(levels.count == 2 && levels[1].height == 16 && levels[1].width == 10)
        let ours = levels.flatMap(\.data)
        let maxDiff = zip(ours, reference).map { abs($0 - $1) }.max() ?? .infinity
        #expect(maxDiff < 1e-5)
    }

    /// "Real" images: smooth blobs plus sharp random stripes; "blurred" applies a box blur.
    static func structuredImages(_ n: Int, seed: UInt64, blurred: Bool = false) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        let s = 32
        var data = [Float](repeating: 0, count: n * s * s)
        for i in 0..<n {
            let (cx, cy, r) = (rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(4, 10))
            let period = Int(rng.uniform(3, 6))
            for y in 0..<s { for x in 0..<s {
                let inside = (Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy) < r * r
                data[i * s * s + y * s + x] = (inside ? 0.8 : -0.8) + ((x / period) % 2 == 0 ? 0.2 : -0.2)
            } }
        }
        if blurred {
            var out = data
            for i in 0..<n { for y in 0..<s { for x in 0..<s {
                var sum: Float = 0, count: Float = 0
                for dy in -2...2 { for dx in -2...2 where (0..<s).contains(y + dy) && (0..<s).contains(x + dx) {
                    sum += data[i * s * s + (y + dy) * s + x + dx]; count += 1
                } }
                out[i * s * s + y * s + x] = sum / count
            } } }
            data = out
        }
        return Tensor(shape: [n, 1, s, s], data: data)
    }

    @Test func swdRanksRealBelowBlurredBelowNoise() throws {
        var config = SlicedWassersteinConfig()
        config.patchesPerImage = 32
        config.repeats = 2
        func descriptors(_ images: Tensor, seed: UInt64) -> PatchDescriptors {
            var p = PatchDescriptors(channels: 1, config: config); p.add(images, seed: seed); return p
        }
        var rng = RandomGenerator(seed: 99)
        let reference = descriptors(Self.structuredImages(120, seed: 1), seed: 10)
        let real = descriptors(Self.structuredImages(120, seed: 2), seed: 11)
        let blurred = descriptors(Self.structuredImages(120, seed: 3, blurred: true), seed: 12)
        let noise = descriptors(Tensor(shape: [120, 1, 32, 32], data: (0..<(120 * 1024)).map { _ in rng.normal() }), seed: 13)
        let dReal = try SlicedWassersteinDistance(real, reference).average
        let dBlur = try SlicedWassersteinDistance(blurred, reference).average
        let dNoise = try SlicedWassersteinDistance(noise, reference).average
        #expect(reference.levels.count == 2)
        #expect(dReal < dBlur && dBlur < dNoise, "real \(dReal), blurred \(dBlur), noise \(dNoise)")
        #expect(dReal < 0.5 * dBlur)
    }
}
