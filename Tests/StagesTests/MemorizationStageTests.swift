import Foundation
import Testing
@testable import Engine
@testable import Stages

/// Nearest neighbours against a brute-force computation, and the `memorization` stage on samples
/// that are copies of training images versus samples that are new images.
@Suite struct MemorizationStageTests {
    @Test func nearestTwoMatchesBruteForce() {
        var rng = RandomGenerator(seed: 4)
        let (n, m, d) = (300, 40, 27)  // more queries than one sgemm block
        let q = (0..<(n * d)).map { _ in rng.uniform(-1, 1) }, r = (0..<(m * d)).map { _ in rng.uniform(-1, 1) }
        let got = NearestNeighbours.nearestTwo(queries: q, references: r, dimension: d)
        for i in 0..<n {
            let dist = (0..<m).map { j in (0..<d).reduce(0.0) { $0 + pow(Double(q[i * d + $1] - r[j * d + $1]), 2) }.squareRoot() }
            let sorted = dist.enumerated().sorted { $0.element < $1.element }
            #expect(got[i].index == sorted[0].offset)
            #expect(abs(got[i].d1 - sorted[0].element) < 1e-4 && abs(got[i].d2 - sorted[1].element) < 1e-4)
        }
    }

    /// A dataset artifact of `count` 8x8 grey images made by `pixel(image, index)`.
    static func dataset(_ root: URL, _ name: String, count: Int, pixel: (Int, Int) -> UInt8) throws -> URL {
        let r = 8
        let pixels = (0..<count).flatMap { k in (0..<(r * r)).map { pixel(k, $0) } }
        let manifest = DatasetManifest(source: "test", split: nil, sourceDigest: "0", sourceFiles: nil, sourceFileCount: 0, count: count,
                                       resolution: r, channels: 1, labelNames: [], hflip: false, fit: "none", filter: "none",
                                       subset: nil, layout: DatasetArtifact.layout(count: count, imageBytes: r * r))
        let out = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try DatasetArtifact.write(pixels: pixels, labels: Array(repeating: -1, count: count), manifest: manifest, to: out)
        return out
    }

    @Test func copiesOfTrainingImagesAreFoundAndNewImagesAreNot() throws {
        let root = TrainSampleSupport.tempDir("memo")
        defer { try? FileManager.default.removeItem(at: root) }
        // Training and held-out images: independent random textures. "Copies": training images 0..19
        // with a little noise; "new": held-out images.
        func texture(_ seed: UInt64) -> (Int, Int) -> UInt8 {
            { k, i in var g = RandomGenerator(seed: seed, stream: UInt64(k * 64 + i)); return UInt8(g.integer(upTo: 255)) }
        }
        let train = try Self.dataset(root, "train", count: 50, pixel: texture(1))
        let heldout = try Self.dataset(root, "heldout", count: 20, pixel: texture(2))
        let copies = try Self.dataset(root, "copies", count: 20) { k, i in
            var g = RandomGenerator(seed: 3, stream: UInt64(k * 64 + i))
            return UInt8(clamping: Int(texture(1)(k, i)) + g.integer(upTo: 6) - 3)
        }
        var c = MemorizationStage.Config()
        (c.samples, c.train, c.heldout) = ("s", "t", "h")
        func run(_ samples: URL) throws -> [String: Double] {
            let ctx = TrainSampleSupport.context(name: "memorization", inputs: ["s": samples, "t": train, "h": heldout], root: root)
            return try MemorizationStage().run(c, context: ctx).metrics
        }
        let copied = try run(copies)
        #expect(copied["copies_fraction"] == 1)
        #expect(copied["nn_distance_ratio"]! < 0.1)
        let fresh = try run(heldout)
        #expect(fresh["copies_fraction"] == 0)
        #expect(fresh["nn_distance_ratio"] == 1)  // the held-out images themselves
    }
}
