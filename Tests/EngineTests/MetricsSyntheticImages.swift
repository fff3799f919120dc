import Foundation
@testable import Engine

/// Small synthetic image sets for metrics tests: three labelled pattern classes
/// ("real"), their blurred versions, and noise; plus a dataset-artifact writer.
enum MetricsSyntheticImages {
    /// Class 0: horizontal stripes, 1: vertical stripes, 2: a disc; random phase, period,
    /// position, contrast. Values in [-1, 1], NCHW with `channels` identical or tinted planes.
    static func patterns(_ n: Int, size s: Int = 16, channels c: Int = 1, seed: UInt64) -> (images: Tensor, labels: [Int]) {
        var rng = RandomGenerator(seed: seed)
        var data = [Float](repeating: 0, count: n * c * s * s)
        var labels: [Int] = []
        for i in 0..<n {
            let label = i % 3
            labels.append(label)
            let period = Float(rng.uniform(3, 6)), phase = rng.uniform(0, 6.28)
            let (cx, cy, r) = (rng.uniform(5, Float(s) - 5), rng.uniform(5, Float(s) - 5), rng.uniform(3, Float(s) / 3))
            let contrast = rng.uniform(0.6, 0.9)
            for ch in 0..<c { for y in 0..<s { for x in 0..<s {
                let v: Float
                switch label {
                case 0: v = sinf(Float(y) * 6.28 / period + phase) > 0 ? 1 : -1
                case 1: v = sinf(Float(x) * 6.28 / period + phase) > 0 ? 1 : -1
                default: v = (Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy) < r * r ? 1 : -1
                }
                data[((i * c + ch) * s + y) * s + x] = contrast * v * (1 - 0.2 * Float(ch))
            } } }
        }
        return (Tensor(shape: [n, c, s, s], data: data), labels)
    }

    /// 5x5 box blur per plane (a crude generator that lost detail).
    static func blurred(_ t: Tensor) -> Tensor {
        let (planes, h, w) = (t.shape[0] * t.shape[1], t.shape[2], t.shape[3])
        var out = t
        for p in 0..<planes { for y in 0..<h { for x in 0..<w {
            var sum: Float = 0, count: Float = 0
            for dy in -2...2 { for dx in -2...2 where (0..<h).contains(y + dy) && (0..<w).contains(x + dx) {
                sum += t.data[(p * h + y + dy) * w + x + dx]; count += 1
            } }
            out.data[(p * h + y) * w + x] = sum / count
        } } }
        return out
    }

    static func noise(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in max(-1, min(1, 0.6 * rng.normal())) })
    }

    /// Writes `images` ([-1, 1] NCHW) as a dataset artifact (uint8 NHWC, as the dataset stage does).
    static func writeArtifact(_ images: Tensor, labels: [Int]?, split: String = "train", to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let (n, c, s) = (images.shape[0], images.shape[1], images.shape[2])
        var pixels = [UInt8](repeating: 0, count: n * s * s * c)
        for i in 0..<n { for ch in 0..<c { for y in 0..<s { for x in 0..<s {
            let v = images.data[((i * c + ch) * s + y) * s + x]
            pixels[((i * s + y) * s + x) * c + ch] = UInt8(max(0, min(255, (v * 127.5 + 128).rounded(.down))))
        } } } }
        let names = labels == nil ? [] : ["h-stripes", "v-stripes", "disc"]
        let manifest = DatasetManifest(source: "synthetic", split: split, sourceDigest: "", sourceFiles: nil, sourceFileCount: 0,
                                       count: n, resolution: s, channels: c, labelNames: names, hflip: false,
                                       fit: "pad", filter: "box", subset: nil,
                                       layout: DatasetArtifact.layout(count: n, imageBytes: s * s * c))
        try DatasetArtifact.write(pixels: pixels, labels: labels ?? Array(repeating: -1, count: n), manifest: manifest, to: directory)
    }
}
