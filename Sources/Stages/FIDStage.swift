import Engine
import Foundation

/// `kind: fid` — distances between a sample artifact and a refstats artifact, with the
/// extractor the refstats were computed with: `FD_<extractor>` (`FID` only with the
/// Inception-v3 weights), `KID_<extractor>` (mean, and `_std` over subsets), the
/// multi-scale `SWD` (x 10³, per level `SWD_<resolution>` and averaged) when the
/// refstats kept patch descriptors, and the sample count.
///
/// Inputs: the samples (a dataset-format artifact) and the refstats artifact.
public struct FIDStage: StageKind {
    public init() {}
    public var name: String { "fid" }
    // 2: measurements (seconds, speeds) left the artifact for the store.
    public var version: Int { 2 }
    public var engineUse: EngineUse { .instrument }

    public struct Config: StageConfig, Equatable {
        /// 0: all samples.
        public var maxImages = 0
        public var kidSubsets = 100
        public var kidSubsetSize = 1000
        public var swd = true
        public var weights = ""
        public var batchSize = 50
        public var seed = 0

        public init() {}

        public static let fields: [ConfigField<Config>] = [
            .field("max_images", \.maxImages, help: "samples used (seeded random subset); 0: all",
                   check: Check("0...10000000") {
                       $0 < 0 ? "must be 0 or a positive count" : $0 > 10_000_000 ? "must be at most 10000000" : nil
                   }),
            // KID costs subsets x size^2 kernel evaluations of feature dot products (2048-d for Inception).
            .field("kid_subsets", \.kidSubsets, help: "KID subsets (torch-fidelity/clean-fid default 100)", check: .between(1, 1000)),
            .field("kid_subset_size", \.kidSubsetSize, help: "KID subset size (clipped to the smaller set)", check: .between(1, 10_000)),
            .field("swd", \.swd, help: "also report the sliced Wasserstein distance when the refstats kept patches"),
            .field("weights", \.weights, help: "inception-v3 weights (as in refstats)"),
            .field("batch_size", \.batchSize, help: "images per feature-extraction batch", check: .between(1, 4096)),
            .field("seed", \.seed, help: "seed of subsets and projections", check: .between(0, maxSeed)),
        ]
    }

    public func run(_ config: Config, context: StageContext) throws -> StageOutcome {
        try Engine.exclusive(threads: context.engineThreads) { try compute(config, context: context) }
    }

    func compute(_ p: Config, context: StageContext) throws -> StageOutcome {
        var refURL: URL?, samples: DatasetArtifact?
        for (name, url) in context.inputs.sorted(by: { $0.key < $1.key }) {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent(FeatureStatistics.manifestName).path) {
                guard refURL == nil else { throw StageError("fid: more than one refstats input") }
                refURL = url
            } else {
                guard samples == nil else { throw StageError("fid: more than one sample input") }
                samples = try FeatureNetStage.openDataset(url, input: name)
            }
        }
        guard let refURL, let samples else { throw StageError("fid: needs a sample artifact and a refstats artifact as inputs") }
        do {
            let reference = try FeatureStatistics(contentsOf: refURL)
            let spec = try ExtractorSpec.read(from: refURL)
            guard samples.channels == spec.channels, samples.resolution == spec.resolution else {
                throw StageError("fid: samples are \(samples.channels)-channel \(samples.resolution)x\(samples.resolution), the reference statistics \(spec.channels)-channel \(spec.resolution)x\(spec.resolution)")
            }
            let extractor = try Self.extractor(spec, refstats: refURL, weights: p.weights, context: context)
            let seed = UInt64(p.seed)
            var options = FeatureStatisticsOptions()
            options.maxImages = p.maxImages
            // KID draws subsets of ~1000; 10k sample rows are plenty and bound memory (50k x 2048 floats would be 400 MB).
            options.kidFeatures = max(10_000, p.kidSubsetSize)
            options.batchSize = p.batchSize
            options.seed = seed
            let wantSWD = p.swd && reference.patches != nil
            if wantSWD, let ref = reference.patches {
                options.swd = ref.config
                options.swdImages = ref.imageCount
            }
            let started = Date()
            let stats = try FeatureStatisticsBuilder.compute(samples, extractor: extractor, options: options,
                                                             progress: RefStatsStage.progress(context, label: extractor.name))
            var metrics: [String: Double] = ["samples": Double(stats.count)]
            let fd = try stats.frechetDistance(to: reference)
            metrics[spec.frechetMetricName] = fd
            let kid = try KernelDistance(stats.kidFeatures, reference.kidFeatures, dimension: stats.dimension,
                                         subsets: p.kidSubsets, subsetSize: p.kidSubsetSize, seed: seed)
            metrics[spec.kernelMetricName] = kid.mean
            metrics[spec.kernelMetricName + "_std"] = kid.standardDeviation
            var summary = String(format: "%@ %.4f, %@ %.5f ± %.5f", spec.frechetMetricName, fd, spec.kernelMetricName, kid.mean, kid.standardDeviation)
            if wantSWD, let ref = reference.patches, let ours = stats.patches {
                let swd = try SlicedWassersteinDistance(ours, ref, seed: seed)
                metrics["SWD"] = swd.average
                for (level, value) in swd.perLevel.enumerated() { metrics["SWD_\(samples.resolution >> level)"] = value }
                summary += String(format: ", SWD %.2f", swd.average)
            }
            context.emit(.log("fid: \(stats.count) samples: \(summary)"))
            return StageOutcome(metrics: metrics, measurements: ["seconds": Date().timeIntervalSince(started)])
        } catch let error as MetricsError {
            throw StageError("fid: \(error.message)")
        }
    }

    /// Rebuilds the extractor a refstats artifact was computed with.
    static func extractor(_ spec: ExtractorSpec, refstats: URL, weights path: String, context: StageContext) throws -> any FeatureExtractor {
        switch spec.kind {
        case "featurenet":
            let (file, net) = try FeatureNetFile.load(refstats.appendingPathComponent(ExtractorSpec.featureNetDirectory))
            return ConvNetFeatureExtractor(name: file.name, network: net)
        case "inception-v3":
            let url = try InceptionV3.locateWeights(path: path.isEmpty ? nil : context.path(path), projectDirectory: context.projectDirectory)
            let bytes = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
            if let expected = spec.weightsBytes, expected != bytes {
                throw StageError("fid: \(url.path) has \(bytes) bytes, but the reference statistics were computed with a \(expected)-byte weights file")
            }
            return InceptionFeatureExtractor(network: try InceptionV3(contentsOf: url))
        case "random-cnn":
            return try ConvNetFeatureExtractor.randomCNN(channels: spec.channels, resolution: spec.resolution, seed: spec.seed)
        default:
            throw StageError("fid: \(refstats.path)/\(ExtractorSpec.fileName): unknown extractor kind \(spec.kind)")
        }
    }
}
