import Engine
import Foundation

/// `kind: refstats` — reference statistics of a dataset artifact under one feature
/// extractor, computed once and reused by every `fid` stage: mean and covariance
/// (Float64), a KID feature subset, SWD patch descriptors, and the extractor itself
/// (`extractor.json`, plus the trained network for `extractor: featurenet`).
///
/// Inputs: the dataset artifact, and for `extractor: featurenet` a featurenet artifact.
public struct RefStatsStage: StageKind {
    public init() {}
    public var name: String { "refstats" }
    // 2: measurements (seconds, speeds) left the artifact for the store.
    public var version: Int { 2 }
    public var engineUse: EngineUse { .instrument }

    public enum Extractor: String, Sendable, CaseIterable, ConfigEnum {
        case featurenet, inceptionV3 = "inception-v3", randomCNN = "random-cnn"
    }

    public struct Config: StageConfig, Equatable {
        public var extractor = Extractor.featurenet
        /// Empty: weights/ in the project, then ~/.cache/torch/hub/checkpoints/.
        public var weights = ""
        /// 0: all images.
        public var maxImages = 0
        public var kidFeatures = 5000
        /// 0: no SWD.
        public var swdImages = 1024
        public var batchSize = 50
        public var seed = 0

        public init() {}

        public static let fields: [ConfigField<Config>] = [
            .field("extractor", \.extractor,
                   help: "featurenet (a consumed featurenet stage), inception-v3 (FID; needs the weights file) or random-cnn"),
            .field("weights", \.weights,
                   help: "inception-v3 weights \(InceptionV3.weightsFileName); empty: weights/ in the project, then ~/.cache/torch/hub/checkpoints/"),
            .field("max_images", \.maxImages, help: "images used (seeded random subset); 0: all", check: count(atMost: 10_000_000)),
            // 100k rows of 2048-d Inception features are 800 MB, and KID's cost grows with the square.
            .field("kid_features", \.kidFeatures, help: "feature rows kept for KID", check: count(atMost: 100_000)),
            // The SWD of Karras et al. uses 16384 images x 128 patches per level; more is memory without precision.
            .field("swd_images", \.swdImages, help: "images whose patches are kept for SWD; 0: no SWD", check: count(atMost: 16_384)),
            .field("batch_size", \.batchSize, help: "images per feature-extraction batch", check: .between(1, 4096)),
            .field("seed", \.seed, help: "image order and random-cnn seed", check: .between(0, maxSeed)),
        ]

        static func count(atMost high: Int) -> Check<Int> {
            Check("0...\(high)") { $0 < 0 ? "must be 0 or a positive count" : $0 > high ? "must be at most \(high)" : nil }
        }
    }

    public func externalPaths(_ config: Config, projectDirectory: URL) -> [URL] {
        guard config.extractor == .inceptionV3 else { return [] }
        let path = config.weights
        let given = path.isEmpty ? nil : (path.hasPrefix("/") ? URL(fileURLWithPath: path) : projectDirectory.appendingPathComponent(path))
        return (try? InceptionV3.locateWeights(path: given, projectDirectory: projectDirectory)).map { [$0] } ?? []
    }

    public func run(_ config: Config, context: StageContext) throws -> StageOutcome {
        try Engine.exclusive(threads: context.engineThreads) { try compute(config, context: context) }
    }

    func compute(_ p: Config, context: StageContext) throws -> StageOutcome {
        let kind = p.extractor.rawValue
        let seed = UInt64(p.seed)
        var datasetInput: (String, DatasetArtifact)?
        var featureNetInput: URL?
        for (name, url) in context.inputs.sorted(by: { $0.key < $1.key }) {
            if FeatureNetFile.isFeatureNet(url) {
                guard featureNetInput == nil else { throw StageError("refstats: more than one featurenet input") }
                featureNetInput = url
            } else {
                guard datasetInput == nil else { throw StageError("refstats: more than one dataset input (\(datasetInput!.0), \(name))") }
                datasetInput = (name, try FeatureNetStage.openDataset(url, input: name))
            }
        }
        guard let (_, dataset) = datasetInput else { throw StageError("refstats: needs a dataset input") }
        do {
            let extractor: any FeatureExtractor
            var spec: ExtractorSpec
            switch p.extractor {
            case .featurenet:
                guard let netURL = featureNetInput else {
                    throw StageError("refstats: extractor: featurenet needs a consumed featurenet stage (or set extractor: random-cnn / inception-v3)")
                }
                let (file, net) = try FeatureNetFile.load(netURL)
                guard file.architecture.channels == dataset.channels, file.architecture.resolution == dataset.resolution else {
                    throw StageError("refstats: the feature network takes \(file.architecture.channels)-channel \(file.architecture.resolution)x\(file.architecture.resolution) images, the dataset has \(dataset.channels)-channel \(dataset.resolution)x\(dataset.resolution)")
                }
                extractor = ConvNetFeatureExtractor(name: file.name, network: net)
                spec = ExtractorSpec(kind: kind, name: file.name, channels: dataset.channels, resolution: dataset.resolution, seed: seed)
                let copy = context.outputDirectory.appendingPathComponent(ExtractorSpec.featureNetDirectory)
                try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
                for f in [FeatureNetFile.manifestName, FeatureNetFile.weightsName] {
                    try FileManager.default.copyItem(at: netURL.appendingPathComponent(f), to: copy.appendingPathComponent(f))
                }
            case .inceptionV3:
                let path = p.weights
                let url = try InceptionV3.locateWeights(path: path.isEmpty ? nil : context.path(path),
                                                        projectDirectory: context.projectDirectory)
                context.emit(.log("refstats: Inception-v3 weights \(url.path)"))
                extractor = InceptionFeatureExtractor(network: try InceptionV3(contentsOf: url))
                let bytes = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
                spec = ExtractorSpec(kind: kind, name: "inception-v3", channels: dataset.channels, resolution: dataset.resolution, seed: seed,
                                     weightsFileName: url.lastPathComponent, weightsBytes: bytes)
            case .randomCNN:
                extractor = try ConvNetFeatureExtractor.randomCNN(channels: dataset.channels, resolution: dataset.resolution, seed: seed)
                spec = ExtractorSpec(kind: kind, name: "random-cnn", channels: dataset.channels, resolution: dataset.resolution, seed: seed)
            }
            var options = FeatureStatisticsOptions()
            options.maxImages = p.maxImages
            options.kidFeatures = p.kidFeatures
            options.swdImages = p.swdImages
            options.batchSize = p.batchSize
            options.seed = seed
            let started = Date()
            let stats = try FeatureStatisticsBuilder.compute(dataset, extractor: extractor, options: options,
                                                             progress: Self.progress(context, label: extractor.name))
            try stats.write(to: context.outputDirectory)
            try spec.write(to: context.outputDirectory)
            let seconds = Date().timeIntervalSince(started)
            context.emit(.log(String(format: "refstats: %d images, %d-d %@ features, %.1f s", stats.count, stats.dimension, extractor.name, seconds)))
            return StageOutcome(metrics: ["images": Double(stats.count), "dimension": Double(stats.dimension)],
                                measurements: ["seconds": seconds])
        } catch let error as MetricsError {
            throw StageError("refstats: \(error.message)")
        }
    }

    /// Progress events for feature extraction; stops with StageCancelled on interruption.
    static func progress(_ context: StageContext, label: String) -> (Int, Int) throws -> Void {
        let emit = context.emit, cancelled = context.isCancelled
        return { done, total in
            if cancelled() { throw StageCancelled() }
            emit(.progress(completed: Double(done), total: Double(total), unit: "images", detail: "\(label) features"))
        }
    }
}
