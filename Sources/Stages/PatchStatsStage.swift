import Engine
import Foundation

/// `kind: patchstats` — reference statistics of a data set's PATCHES at the sizes Patch Diffusion
/// trains on (R/4, R/2 and R unless `sizes` says otherwise): `patches_per_image` patches per image
/// at each size below R (one at R, its only position), at seeded uniform positions
/// (`PatchSamplingRule`), their features' mean and covariance per size. A `patchfd` stage cuts a
/// sample set by the same rule and reports `PatchFD_<size>_<extractor>`. The key holds only the
/// data set, the extractor and these fields, so every experiment on that data set shares one result.
///
/// Extractors (every one must take every size):
/// - `featurenet` (default): the consumed domain feature network (Fashion-MNIST: the
///   `fmnist-classifier`), each patch resized to the network's input side with Lanczos-3. It is
///   the network the full-image FD uses, so at size R the patch FD IS the full-image FD (one patch
///   at (0, 0)), and the smaller sizes are scored by features that know the domain's strokes and
///   textures; its features of an upscaled 8x8 patch are still a fixed embedding of that patch.
/// - `random-cnn`: a seeded, never-trained CNN per size at the patch's native side (no resampling,
///   no labels; sizes must be multiples of 8). Distances at different sizes then come from
///   different networks and are compared across samples, not across sizes.
///
/// One streaming pass (`PatchStatisticsBuilder`): memory is the running sums per size (130 KB at
/// 128-d features) plus one batch of patches and its activations, whatever the number of images.
///
/// Output: `patchstats.json` (rule, extractor, counts), `size<s>/` per size in the refstats format,
/// `extractor.json`, and for `featurenet` a copy of the network (`featurenet/`). Inputs: one
/// dataset artifact, and for `extractor: featurenet` one featurenet artifact.
public struct PatchStatsStage: StageKind {
    public init() {}
    public var name: String { "patchstats" }
    public var version: Int { 1 }
    public var engineUse: EngineUse { .instrument }

    public enum Extractor: String, Sendable, CaseIterable, ConfigEnum {
        case featurenet, randomCNN = "random-cnn"
    }

    public struct Config: StageConfig, Equatable {
        public var extractor = Extractor.featurenet
        /// Empty: R/4, R/2 and R of the consumed data set.
        public var sizes: [Int] = []
        public var patchesPerImage = 4
        /// 0: all images.
        public var maxImages = 0
        public var batchSize = 50
        public var seed = 0

        public init() {}

        public static let fields: [ConfigField<Config>] = [
            .field("extractor", \.extractor,
                   help: "featurenet (a consumed featurenet stage; patches resized to its input) or random-cnn (one seeded CNN per size, native side, multiples of 8)"),
            // Sizes beyond 4096 pixels would not fit the engine's memory for one batch anyway.
            .field("sizes", \.sizes, help: "patch sides in pixels; empty: R/4, R/2 and R of the data set",
                   check: .list(count: 0...8, items: 1...4096)),
            // Each patch costs one feature-network pass: 64 per image already is 64x a refstats pass.
            .field("patches_per_image", \.patchesPerImage, help: "patches per image at each size below R (R itself: one)",
                   check: .between(1, 64)),
            .field("max_images", \.maxImages, help: "images used (seeded random subset); 0: all",
                   check: RefStatsStage.Config.count(atMost: 10_000_000)),
            .field("batch_size", \.batchSize, help: "images per batch (x patches_per_image patches)", check: .between(1, 1024)),
            .field("seed", \.seed, help: "patch positions, image subset and random-cnn weights", check: .between(0, maxSeed)),
        ]
    }

    public func validate(_ config: Config) -> [ConfigProblem] {
        var out: [ConfigProblem] = []
        if Set(config.sizes).count != config.sizes.count { out.append(ConfigProblem("sizes", "lists a size twice: \(config.sizes)")) }
        if config.extractor == .randomCNN, let problem = PatchFeatureExtractor.randomCNNProblem(sizes: config.sizes) {
            out.append(ConfigProblem("sizes", problem))
        }
        return out
    }

    /// The sizes of `config` on `resolution`-pixel images, or why they do not fit (spec time and run time).
    public static func sizes(_ config: Config, resolution: Int) -> Result<[Int], StageError> {
        let sizes = config.sizes.isEmpty ? PatchSamplingRule.defaultSizes(resolution: resolution) : config.sizes
        if let problem = PatchSamplingRule.problem(sizes: sizes, resolution: resolution) { return .failure(StageError(problem)) }
        if config.extractor == .randomCNN, let problem = PatchFeatureExtractor.randomCNNProblem(sizes: sizes) {
            return .failure(StageError(problem))
        }
        return .success(sizes)
    }

    public func run(_ config: Config, context: StageContext) throws -> StageOutcome {
        try Engine.exclusive(threads: context.engineThreads) { try compute(config, context: context) }
    }

    func compute(_ p: Config, context: StageContext) throws -> StageOutcome {
        var dataset: DatasetArtifact?, featureNetURL: URL?
        for (name, url) in context.inputs.sorted(by: { $0.key < $1.key }) {
            if FeatureNetFile.isFeatureNet(url) {
                guard featureNetURL == nil else { throw StageError("patchstats: more than one featurenet input") }
                featureNetURL = url
            } else {
                guard dataset == nil else { throw StageError("patchstats: more than one dataset input (\(name))") }
                dataset = try FeatureNetStage.openDataset(url, input: name)
            }
        }
        guard let dataset else { throw StageError("patchstats: needs a dataset input") }
        let sizes: [Int]
        switch Self.sizes(p, resolution: dataset.resolution) {
        case .success(let s): sizes = s
        case .failure(let e): throw StageError("patchstats: \(e.message)")
        }
        let seed = UInt64(p.seed)
        do {
            let rule = try PatchSamplingRule(resolution: dataset.resolution, sizes: sizes, patchesPerImage: p.patchesPerImage, seed: seed)
            let spec: ExtractorSpec
            switch p.extractor {
            case .featurenet:
                guard let featureNetURL else {
                    throw StageError("patchstats: extractor: featurenet needs a consumed featurenet stage (or set extractor: random-cnn)")
                }
                let file = try FeatureNetFile.load(featureNetURL).file
                guard file.architecture.channels == dataset.channels else {
                    throw StageError("patchstats: the feature network takes \(file.architecture.channels)-channel images, the dataset has \(dataset.channels)")
                }
                spec = ExtractorSpec(kind: p.extractor.rawValue, name: file.name, channels: dataset.channels, resolution: dataset.resolution, seed: seed)
                let copy = context.outputDirectory.appendingPathComponent(ExtractorSpec.featureNetDirectory)
                try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
                for f in [FeatureNetFile.manifestName, FeatureNetFile.weightsName] {
                    try FileManager.default.copyItem(at: featureNetURL.appendingPathComponent(f), to: copy.appendingPathComponent(f))
                }
            case .randomCNN:
                spec = ExtractorSpec(kind: p.extractor.rawValue, name: "random-cnn", channels: dataset.channels, resolution: dataset.resolution, seed: seed)
            }
            let extractor = try Self.extractor(spec, sizes: sizes, artifact: context.outputDirectory)
            let started = Date()
            let stats = try PatchStatisticsBuilder.compute(dataset, rule: rule, extractor: extractor, maxImages: p.maxImages,
                                                           batchSize: p.batchSize,
                                                           progress: RefStatsStage.progress(context, label: "\(extractor.name) patch"))
            try stats.write(to: context.outputDirectory)
            try spec.write(to: context.outputDirectory)
            let seconds = Date().timeIntervalSince(started)
            context.emit(.log(String(format: "patchstats: %d images, sizes %@, %@ features, %.1f s", stats.imageCount,
                                     sizes.map(String.init).joined(separator: "/"), extractor.name, seconds)))
            var metrics: [String: Double] = ["images": Double(stats.imageCount)]
            for (s, st) in stats.statistics { metrics["patches_\(s)"] = Double(st.count) }
            return StageOutcome(metrics: metrics, measurements: ["seconds": seconds])
        } catch let error as MetricsError {
            throw StageError("patchstats: \(error.message)")
        }
    }

    /// The patch extractor a patchstats artifact describes (`extractor.json`, `featurenet/`).
    static func extractor(_ spec: ExtractorSpec, sizes: [Int], artifact: URL) throws -> PatchFeatureExtractor {
        switch spec.kind {
        case Extractor.featurenet.rawValue:
            let (file, net) = try FeatureNetFile.load(artifact.appendingPathComponent(ExtractorSpec.featureNetDirectory))
            return try .resizing(ConvNetFeatureExtractor(name: file.name, network: net), sizes: sizes)
        case Extractor.randomCNN.rawValue:
            return try .randomCNN(channels: spec.channels, sizes: sizes, seed: spec.seed)
        default:
            throw StageError("patchstats: \(artifact.path)/\(ExtractorSpec.fileName): unknown patch extractor kind \(spec.kind)")
        }
    }
}
