import Engine
import Foundation

/// `kind: memorization` — how close generated images are to the training images, in pixel space
/// (`NearestNeighbours`): the test of whether a model trained long on a small data set copies it.
/// Metrics: `copies_fraction` (samples whose nearest training image is closer than `ratio` times
/// their second nearest: near-copies), `nn_distance_median` (samples to their nearest training
/// image), the same for as many held-out real images (`heldout_nn_distance_median`), and their
/// ratio `nn_distance_ratio` (below 1: samples sit closer to the training images than new real
/// images do). `nearest.png`: the 16 samples with the smallest d1/d2, each beside its nearest
/// training image (sample above, training image below).
///
/// Inputs: the samples, the training data set and a held-out data set, named by `samples`,
/// `train` and `heldout` (all of one resolution and channel count).
public struct MemorizationStage: StageKind {
    public init() {}
    public var name: String { "memorization" }
    public var version: Int { 1 }
    public var engineUse: EngineUse { .instrument }

    public struct Config: StageConfig, Equatable {
        public var samples = ""
        public var train = ""
        public var heldout = ""
        /// Carlini et al. 2023: d1 < d2 / 3 marks a copy.
        public var ratio = 1.0 / 3
        /// 0: every sample.
        public var maxImages = 0

        public init() {}

        public static let fields: [ConfigField<Config>] = [
            .field("samples", \.samples, help: "name of the consumed sample stage", required: true),
            .field("train", \.train, help: "name of the consumed training data set", required: true),
            .field("heldout", \.heldout, help: "name of the consumed held-out data set", required: true),
            .field("ratio", \.ratio, help: "d1 / d2 below this marks a near-copy", check: Check("(0, 1)") { $0 > 0 && $0 < 1 ? nil : "must be in (0, 1)" }),
            .field("max_images", \.maxImages, help: "samples used (the first ones); 0: all", check: .between(0, 1_000_000)),
        ]
    }

    public func run(_ config: Config, context: StageContext) throws -> StageOutcome {
        try Engine.exclusive(threads: context.engineThreads) { try compute(config, context: context) }
    }

    /// The first `count` images of a data set as rows of floats in [-1, 1].
    static func rows(_ data: DatasetArtifact, count: Int) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(count * data.resolution * data.resolution * data.channels)
        for i in 0..<count { out += data.image(at: i).map { Float($0) / 127.5 - 1 } }
        return out
    }

    static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    func compute(_ c: Config, context: StageContext) throws -> StageOutcome {
        let open = { (field: String, name: String) throws -> DatasetArtifact in
            try FeatureNetStage.openDataset(try TrainStage.input(context, field: field, named: name), input: name)
        }
        let samples = try open("samples", c.samples), train = try open("train", c.train), heldout = try open("heldout", c.heldout)
        for (name, d) in [(c.train, train), (c.heldout, heldout)] where d.resolution != samples.resolution || d.channels != samples.channels {
            throw StageError("\(context.stageName): `\(name)` is \(d.resolution)x\(d.resolution)x\(d.channels), the samples "
                             + "\(samples.resolution)x\(samples.resolution)x\(samples.channels)")
        }
        guard train.count >= 2 else { throw StageError("\(context.stageName): the training set needs at least two images") }
        let n = c.maxImages > 0 ? min(c.maxImages, samples.count) : samples.count
        let d = samples.resolution * samples.resolution * samples.channels
        let reference = Self.rows(train, count: train.count)
        let ours = NearestNeighbours.nearestTwo(queries: Self.rows(samples, count: n), references: reference, dimension: d)
        let real = NearestNeighbours.nearestTwo(queries: Self.rows(heldout, count: min(n, heldout.count)), references: reference, dimension: d)
        let copies = ours.filter { $0.d1 < c.ratio * $0.d2 }.count
        let median = Self.median(ours.map(\.d1)), heldoutMedian = Self.median(real.map(\.d1))
        context.emit(.log(String(format: "memorization: %d of %d samples are near-copies; median distance %.3f (held-out real: %.3f)",
                                 copies, n, median, heldoutMedian)))

        // The closest 16 (by d1 / d2), sample above its nearest training image.
        let closest = ours.indices.sorted { ours[$0].d1 / ours[$0].d2 < ours[$1].d1 / ours[$1].d2 }.prefix(16)
        func image(_ data: DatasetArtifact, _ i: Int) -> ByteImage {
            ByteImage(width: data.resolution, height: data.resolution, channels: data.channels, pixels: Array(data.image(at: i)))
        }
        let top = closest.map { image(samples, $0) }, bottom = closest.map { image(train, ours[$0].index) }
        try writeGridPNG(images: top + bottom, columns: top.count, to: context.outputDirectory.appendingPathComponent("nearest.png"))
        return StageOutcome(metrics: [
            "copies_fraction": Double(copies) / Double(n),
            "nn_distance_median": median,
            "heldout_nn_distance_median": heldoutMedian,
            "nn_distance_ratio": median / heldoutMedian,
            "samples": Double(n),
        ])
    }
}
