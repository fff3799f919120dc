import Foundation
import Testing
@testable import Engine
@testable import Stages

/// Patch statistics: the sampling rule, the streaming statistics against a patch-by-patch
/// computation, and the patchstats -> patchfd stages wired by hand as the runner would.
@Suite struct PatchStatsStageTests {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("pdpipe-patchstats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    /// `n` gray `side` x `side` images, NHWC bytes: smooth structured images (a seeded ramp, a disc
    /// and stripes), or uniform noise.
    static func images(_ n: Int, side: Int, seed: UInt64, noise: Bool = false) -> [UInt8] {
        var rng = RandomGenerator(seed: seed)
        var out = [UInt8](repeating: 0, count: n * side * side)
        for i in 0..<n {
            let (cx, cy, r) = (rng.uniform(0, Float(side)), rng.uniform(0, Float(side)), rng.uniform(3, Float(side) / 2))
            let period = rng.uniform(4, 9)
            for y in 0..<side { for x in 0..<side {
                let v: Float
                if noise { v = rng.uniform(0, 255) } else {
                    let inDisc = (Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy) < r * r
                    v = Float(x + y) * 2 + (inDisc ? 120 : 0) + (sinf(Float(y) * 6.28 / period) > 0 ? 40 : 0)
                }
                out[i * side * side + y * side + x] = UInt8(max(0, min(255, v)))
            } }
        }
        return out
    }

    func artifact(_ name: String, pixels: [UInt8], side: Int) throws -> URL {
        let dir = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let n = pixels.count / (side * side)
        let manifest = DatasetManifest(source: "synthetic", split: "train", sourceDigest: "", sourceFiles: nil, sourceFileCount: 0,
                                       count: n, resolution: side, channels: 1, labelNames: [],
                                       hflip: false, fit: "pad", filter: "box", subset: nil,
                                       layout: DatasetArtifact.layout(count: n, imageBytes: side * side))
        try DatasetArtifact.write(pixels: pixels, labels: Array(repeating: -1, count: n), manifest: manifest, to: dir)
        return dir
    }

    func run(_ kind: any StageKind, _ name: String, _ params: [String: ParamValue], inputs: [String: URL]) throws -> (metrics: [String: Double], output: URL) {
        let output = root.appendingPathComponent("out-\(name)")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let context = StageContext(stageName: name, cellID: name, key: name, inputs: inputs, outputDirectory: output,
                                   workDirectory: root.appendingPathComponent("work-\(name)"), projectDirectory: root,
                                   threads: 2, emit: { _ in }, isCancelled: { false })
        return (try kind.run(fields: params, context: context).metrics, output)
    }

    /// The patch cut at `offset` straight from the stored bytes, in [-1, 1].
    static func crop(_ data: DatasetArtifact, image: Int, offset: PatchOffset, size s: Int) -> [Float] {
        let bytes = data.image(at: image), r = data.resolution
        var out: [Float] = []
        for y in 0..<s { for x in 0..<s { out.append(Float(bytes[(offset.row + y) * r + offset.column + x]) / 127.5 - 1) } }
        return out
    }

    // MARK: the sampling rule

    @Test func positionsAreInRangeSeededAndOnePerImageAtFullSize() throws {
        let rule = try PatchSamplingRule(resolution: 32, sizes: [16, 8, 32], patchesPerImage: 5, seed: 3)
        #expect(rule.sizes == [8, 16, 32])
        var rows8 = Set<Int>(), columns8 = Set<Int>()
        for image in 0..<60 {
            for s in rule.sizes {
                let offsets = rule.offsets(image: image, size: s)
                #expect(offsets.count == (s == 32 ? 1 : 5))
                #expect(offsets.allSatisfy { (0...(32 - s)).contains($0.row) && (0...(32 - s)).contains($0.column) })
                if s == 8 { rows8.formUnion(offsets.map(\.row)); columns8.formUnion(offsets.map(\.column)) }
            }
        }
        // 300 draws over 25 positions per axis reach every one, the ends included.
        #expect(rows8 == Set(0...24) && columns8 == Set(0...24))

        let same = try PatchSamplingRule(resolution: 32, sizes: [8, 16, 32], patchesPerImage: 5, seed: 3)
        let other = try PatchSamplingRule(resolution: 32, sizes: [8, 16, 32], patchesPerImage: 5, seed: 4)
        let images = Array(0..<20)
        #expect(images.map { same.offsets(image: $0, size: 8) } == images.map { rule.offsets(image: $0, size: 8) })
        let differing = images.filter { other.offsets(image: $0, size: 8) != rule.offsets(image: $0, size: 8) }
        #expect(differing.count == 20)
        // Each image and size has its own stream: sizes and neighbours do not share positions.
        #expect(rule.offsets(image: 0, size: 8) != rule.offsets(image: 1, size: 8))
        #expect(rule.offsets(image: 0, size: 8).map(\.row) != rule.offsets(image: 0, size: 16).map(\.row))
    }

    @Test func sizesDefaultToQuarterHalfAndFullAndMustFit() throws {
        #expect(PatchSamplingRule.defaultSizes(resolution: 32) == [8, 16, 32])
        #expect(PatchSamplingRule.defaultSizes(resolution: 4) == [1, 2, 4])
        #expect(PatchSamplingRule.defaultSizes(resolution: 2) == [1, 2])
        #expect(throws: MetricsError.self) { try PatchSamplingRule(resolution: 32, sizes: [8, 40], patchesPerImage: 1, seed: 0) }
        #expect(throws: MetricsError.self) { try PatchSamplingRule(resolution: 32, sizes: [8, 8], patchesPerImage: 1, seed: 0) }
        #expect(throws: MetricsError.self) { try PatchSamplingRule(resolution: 32, sizes: [], patchesPerImage: 1, seed: 0) }

        func sizes(_ fields: [String: ParamValue], _ r: Int) throws -> Result<[Int], StageError> {
            PatchStatsStage.sizes(try PatchStatsStage().decode(fields), resolution: r)
        }
        #expect(try sizes([:], 32).get() == [8, 16, 32])
        #expect(try sizes(["sizes": .list([.int(4), .int(12)])], 16).get() == [4, 12])
        #expect(throws: StageError.self) { try sizes(["sizes": .list([.int(64)])], 32).get() }
        // random-cnn takes patches at their own side: 16 // 4 = 4 is too small for three poolings.
        #expect(throws: StageError.self) { try sizes(["extractor": .string("random-cnn")], 16).get() }
        #expect(throws: ConfigErrors.self) { try PatchStatsStage().decode(["extractor": .string("random-cnn"), "sizes": .list([.int(12)])]) }
        #expect(throws: ConfigErrors.self) { try PatchStatsStage().decode(["sizes": .list([.int(8), .int(8)])]) }
    }

    @Test func patchesAreTheBytesAtTheRulesPositions() throws {
        let data = try DatasetArtifact.open(directory: try artifact("d", pixels: Self.images(3, side: 16, seed: 1), side: 16))
        let rule = try PatchSamplingRule(resolution: 16, sizes: [4, 8, 16], patchesPerImage: 2, seed: 9)
        for s in rule.sizes {
            let got = PatchStatisticsBuilder.patches(data, indices: [2, 0], size: s, rule: rule)
            var expected: [Float] = []
            for image in [2, 0] { for o in rule.offsets(image: image, size: s) { expected += Self.crop(data, image: image, offset: o, size: s) } }
            #expect(got.shape == [s == 16 ? 2 : 4, 1, s, s])
            #expect(got.data == expected)
        }
    }

    // MARK: statistics

    /// Mean and unbiased covariance of rows, two-pass in Float64.
    static func moments(_ rows: [[Float]]) -> (mean: [Double], covariance: [Double]) {
        let n = Double(rows.count), d = rows[0].count
        var mean = [Double](repeating: 0, count: d)
        for r in rows { for j in 0..<d { mean[j] += Double(r[j]) / n } }
        var cov = [Double](repeating: 0, count: d * d)
        for r in rows { for i in 0..<d { for j in 0..<d { cov[i * d + j] += (Double(r[i]) - mean[i]) * (Double(r[j]) - mean[j]) / (n - 1) } } }
        return (mean, cov)
    }

    @Test func streamingStatisticsEqualAPatchByPatchComputation() throws {
        let data = try DatasetArtifact.open(directory: try artifact("d", pixels: Self.images(7, side: 32, seed: 2), side: 32))
        let rule = try PatchSamplingRule(resolution: 32, sizes: [8, 16], patchesPerImage: 3, seed: 5)
        let extractor = try PatchFeatureExtractor.randomCNN(channels: 1, sizes: rule.sizes, seed: 11)
        var batches: [Int] = []
        let stats = try PatchStatisticsBuilder.compute(data, rule: rule, extractor: extractor, batchSize: 2) { done, _ in batches.append(done) }
        #expect(batches == [2, 4, 6, 7])
        #expect(stats.imageCount == 7)
        for s in rule.sizes {
            // Independently: every patch cut from the bytes and embedded on its own by a freshly built network.
            let network = try ConvNetFeatureExtractor.randomCNN(channels: 1, resolution: s, seed: 11)
            var rows: [[Float]] = []
            for image in 0..<7 {
                for o in rule.offsets(image: image, size: s) {
                    rows.append(network.features(Tensor(shape: [1, 1, s, s], data: Self.crop(data, image: image, offset: o, size: s))))
                }
            }
            let direct = Self.moments(rows)
            let got = try #require(stats.statistics[s])
            #expect(got.count == 21)
            let scale = direct.covariance.map(abs).max()!
            #expect(zip(got.mean, direct.mean).allSatisfy { abs($0 - $1) < 1e-5 * max(1, abs($1)) })
            #expect(zip(got.covariance, direct.covariance).allSatisfy { abs($0 - $1) < 1e-4 * scale })
        }

        let subset = try PatchStatisticsBuilder.compute(data, rule: rule, extractor: extractor, maxImages: 4)
        #expect(subset.imageCount == 4 && subset.statistics[8]?.count == 12)
        let chosen = PatchStatisticsBuilder.selectImages(count: 7, maxImages: 4, seed: 5)
        #expect(chosen.count == 4 && chosen == chosen.sorted() && Set(chosen).count == 4)
    }

    // MARK: stages

    /// A network saved as a featurenet artifact (untrained: the stages only need fixed features).
    func featureNet(side: Int) throws -> URL {
        let dir = root.appendingPathComponent("featurenet")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let net = ConvFeatureNet(.init(channels: 1, resolution: side, classes: 3), seed: 4)
        try FeatureNetFile.write(net, name: "test-net", testAccuracy: 0, testImages: 0, labelNames: ["a", "b", "c"], to: dir)
        return dir
    }

    @Test func featurenetPatchFDAtFullSizeIsTheFullImageFD() throws {
        let reference = try artifact("ref", pixels: Self.images(24, side: 32, seed: 1), side: 32)
        let samples = try artifact("samples", pixels: Self.images(16, side: 32, seed: 2), side: 32)
        let net = try featureNet(side: 32)
        let ref = try run(RefStatsStage(), "refstats", ["extractor": .string("featurenet"), "swd_images": .int(0)],
                          inputs: ["data": reference, "featurenet": net])
        let fid = try run(FIDStage(), "fid", ["kid_subset_size": .int(8), "kid_subsets": .int(2)],
                          inputs: ["sample": samples, "refstats": ref.output])
        let ps = try run(PatchStatsStage(), "patchstats", ["sizes": .list([.int(8), .int(32)]), "patches_per_image": .int(2)],
                         inputs: ["data": reference, "featurenet": net])
        #expect(ps.metrics == ["images": 24, "patches_8": 48, "patches_32": 24])
        let patch = try run(PatchFDStage(), "patchfd", [:], inputs: ["sample": samples, "patchstats": ps.output])
        #expect(Set(patch.metrics.keys) == ["samples", "PatchFD_8_test-net", "PatchFD_32_test-net"])
        let full = try #require(fid.metrics["FD_test-net"]), atR = try #require(patch.metrics["PatchFD_32_test-net"])
        #expect(full > 0 && abs(atR - full) < 1e-4 * full, "\(atR) vs \(full)")
    }

    @Test func patchFDIsZeroOnTheReferenceAndLargeOnNoise() throws {
        let reference = try artifact("ref", pixels: Self.images(20, side: 32, seed: 1), side: 32)
        let similar = try artifact("similar", pixels: Self.images(20, side: 32, seed: 7), side: 32)
        let noise = try artifact("noise", pixels: Self.images(20, side: 32, seed: 7, noise: true), side: 32)
        let ps = try run(PatchStatsStage(), "patchstats", ["extractor": .string("random-cnn"), "patches_per_image": .int(3), "batch_size": .int(7)],
                         inputs: ["data": reference])
        let itself = try run(PatchFDStage(), "self", [:], inputs: ["sample": reference, "patchstats": ps.output]).metrics
        let near = try run(PatchFDStage(), "similar", [:], inputs: ["sample": similar, "patchstats": ps.output]).metrics
        let far = try run(PatchFDStage(), "noise", ["max_images": .int(10)], inputs: ["sample": noise, "patchstats": ps.output]).metrics
        #expect(far["samples"] == 10 && near["samples"] == 20)
        for s in [8, 16, 32] {
            let name = PatchFDStage.metricName(size: s, extractor: "random-cnn")
            let (a, b, c) = (try #require(itself[name]), try #require(near[name]), try #require(far[name]))
            #expect(abs(a) < 1e-4 * b, "\(name): reference against itself \(a)")
            #expect(b < c, "\(name): similar \(b), noise \(c)")
        }
    }

    @Test func theArtifactHoldsOnlyContentAndIsReproducible() throws {
        let data = try artifact("d", pixels: Self.images(6, side: 32, seed: 3), side: 32)
        let fields: [String: ParamValue] = ["extractor": .string("random-cnn"), "patches_per_image": .int(2), "seed": .int(5)]
        let a = try run(PatchStatsStage(), "a", fields, inputs: ["data": data]).output
        let b = try run(PatchStatsStage(), "b", fields, inputs: ["data": data]).output
        let c = try run(PatchStatsStage(), "c", fields.merging(["batch_size": .int(1)]) { $1 }, inputs: ["data": data]).output
        let files = try FileManager.default.subpathsOfDirectory(atPath: a.path).sorted()
        #expect(files.contains("patchstats.json") && files.contains("extractor.json") && files.contains("size8/covariance.f64"))
        func bytes(_ dir: URL, _ file: String) -> Data? { FileManager.default.contents(atPath: dir.appendingPathComponent(file).path) }
        for f in files where !f.hasPrefix("size") || f.contains(".") {
            #expect(bytes(a, f) == bytes(b, f), "\(f) differs between two runs")
            // The batch size changes only the last bits of the sums, never the description.
            if f.hasSuffix(".json") { #expect(bytes(a, f) == bytes(c, f), "\(f) differs between batch sizes") }
        }
        let manifest = try String(contentsOf: a.appendingPathComponent("patchstats.json"), encoding: .utf8)
        for leak in ["seconds", "time", root.path] { #expect(!manifest.contains(leak)) }
        let read = try PatchStatistics(contentsOf: a)
        #expect(read.rule == (try PatchSamplingRule(resolution: 32, sizes: [8, 16, 32], patchesPerImage: 2, seed: 5)))
        #expect(read.statistics[16]?.count == 12 && read.statistics[32]?.count == 6)
    }
}
