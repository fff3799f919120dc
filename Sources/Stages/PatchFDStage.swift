import Engine
import Foundation

/// `kind: patchfd` — patch-level Fréchet distances of a sample artifact against a patchstats
/// artifact: the samples are cut by the reference's own rule (sizes, patches per image, seeded
/// positions) and embedded by its extractor, giving `PatchFD_<size>_<extractor>` per size.
///
/// A kind of its own rather than a field of `fid`: `fid`'s inputs, fields and version stay as
/// they are, so adding patch metrics to a pipeline leaves every recorded `fid` result (and the
/// tables over it) up to date, and a pipeline can have either without the other.
///
/// Inputs: the samples (a dataset-format artifact) and the patchstats artifact.
public struct PatchFDStage: StageKind {
    public init() {}
    public var name: String { "patchfd" }
    public var version: Int { 1 }
    public var engineUse: EngineUse { .instrument }

    public struct Config: StageConfig, Equatable {
        /// 0: all samples.
        public var maxImages = 0
        public var batchSize = 50

        public init() {}

        public static let fields: [ConfigField<Config>] = [
            .field("max_images", \.maxImages, help: "samples used (a random subset drawn with the patchstats seed); 0: all",
                   check: RefStatsStage.Config.count(atMost: 10_000_000)),
            .field("batch_size", \.batchSize, help: "images per batch (x patches_per_image patches)", check: .between(1, 1024)),
        ]
    }

    /// The metric name of the distance at patch side `size` under extractor `name`.
    public static func metricName(size: Int, extractor name: String) -> String { "PatchFD_\(size)_\(name)" }

    public func run(_ config: Config, context: StageContext) throws -> StageOutcome {
        try Engine.exclusive(threads: context.engineThreads) { try compute(config, context: context) }
    }

    func compute(_ p: Config, context: StageContext) throws -> StageOutcome {
        var refURL: URL?, samples: DatasetArtifact?
        for (name, url) in context.inputs.sorted(by: { $0.key < $1.key }) {
            if PatchStatistics.isPatchStatistics(url) {
                guard refURL == nil else { throw StageError("patchfd: more than one patchstats input") }
                refURL = url
            } else {
                guard samples == nil else { throw StageError("patchfd: more than one sample input") }
                samples = try FeatureNetStage.openDataset(url, input: name)
            }
        }
        guard let refURL, let samples else { throw StageError("patchfd: needs a sample artifact and a patchstats artifact as inputs") }
        do {
            let reference = try PatchStatistics(contentsOf: refURL)
            let spec = try ExtractorSpec.read(from: refURL)
            guard samples.channels == spec.channels, samples.resolution == reference.rule.resolution else {
                throw StageError("patchfd: samples are \(samples.channels)-channel \(samples.resolution)x\(samples.resolution), the patch statistics \(spec.channels)-channel \(reference.rule.resolution)x\(reference.rule.resolution)")
            }
            let extractor = try PatchStatsStage.extractor(spec, sizes: reference.rule.sizes, artifact: refURL)
            let started = Date()
            let stats = try PatchStatisticsBuilder.compute(samples, rule: reference.rule, extractor: extractor, maxImages: p.maxImages,
                                                           batchSize: p.batchSize,
                                                           progress: RefStatsStage.progress(context, label: "\(extractor.name) patch"))
            var metrics: [String: Double] = ["samples": Double(stats.imageCount)]
            var summary: [String] = []
            for (s, fd) in try stats.frechetDistances(to: reference).sorted(by: { $0.key < $1.key }) {
                let name = Self.metricName(size: s, extractor: extractor.name)
                metrics[name] = fd
                summary.append(String(format: "%@ %.4f", name, fd))
            }
            context.emit(.log("patchfd: \(stats.imageCount) samples: \(summary.joined(separator: ", "))"))
            return StageOutcome(metrics: metrics, measurements: ["seconds": Date().timeIntervalSince(started)])
        } catch let error as MetricsError {
            throw StageError("patchfd: \(error.message)")
        }
    }
}
