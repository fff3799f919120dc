import Engine
import Foundation

/// `kind: denoise` — the EDM denoising loss of a training's EMA weights (or a snapshot, `at_kimg`)
/// on full images of a dataset at fixed noise levels (`DenoisingLoss`): what the model has learnt
/// about whole images at each sigma, whatever patch sizes it was trained on. Metrics:
/// `loss_sigma_<sigma>` per level, `loss_mean` over the levels, and where the weights are on the
/// training's trajectory: `steps` (optimizer steps), `counted_kimg` and `full_images` (full-size
/// images the training had seen, from its log's patch-size counts; absent when no log line ends
/// exactly at the weights' step).
///
/// Inputs: the train stage (`model`) and a dataset at the trained resolution (`data`; a held-out
/// split is the natural choice). It reads the weights file, `config.json` and
/// `training_log.jsonl` of the train artifact, and its key holds only those files' digests.
public struct DenoiseStage: StageKind {
    public init() {}
    public var name: String { "denoise" }
    public var version: Int { 1 }
    public var engineUse: EngineUse { .instrument }

    public struct Config: StageConfig, Equatable {
        public var model = ""
        public var data = ""
        public var atKimg = 0.0
        /// Log-spaced over the training distribution (ln sigma ~ N(-1.2, 1.2^2): 95 % in 0.03...3)
        /// and its tails up to sigma_max's scale.
        public var sigmas = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]
        public var numImages = 256
        public var seed = 0
        public var batch = 64

        public init() {}

        public static let fields: [ConfigField<Config>] = [
            .field("model", \.model, help: "name of the consumed train stage"),
            .field("data", \.data, help: "name of the consumed dataset stage (full images at the trained resolution)"),
            .field("at_kimg", \.atKimg, help: "the training's EMA snapshot at this counted kimg; 0: the final weights",
                   check: .between(0, 100_000)),
            .field("sigmas", \.sigmas, help: "noise levels (each one a full pass over the images)", check: Check("1...32 values in (0, 10000]") { s in
                if !(1...32).contains(s.count) { return "must list 1 to 32 noise levels, got \(s.count)" }
                return s.first { !($0 > 0 && $0 <= 10_000) }.map { "noise levels must be in (0, 10000], got \(describeNumber($0))" }
            }),
            .field("num_images", \.numImages, help: "the dataset's first images used", check: .between(1, 100_000)),
            .field("seed", \.seed, help: "seed of the noise (image k: stream k)", check: .between(0, maxSeed)),
            .field("batch", \.batch, help: "images per network call (does not change the result)", check: .between(1, 4096)),
        ]
    }

    static func weightsPath(_ c: Config) -> String {
        c.atKimg > 0 ? TrainingSnapshots.directory + "/" + TrainingSnapshots.fileName(kimg: c.atKimg) : SampleStage.weightsFileName
    }

    public func inputFiles(_ config: Config, consumed: [String]) -> [String: [String]] {
        guard !config.model.isEmpty else { return [:] }
        return [config.model: [Self.weightsPath(config), "config.json", "training_log.jsonl"]]
    }

    public func run(_ config: Config, context: StageContext) throws -> StageOutcome {
        try Engine.exclusive(threads: context.engineThreads) { try compute(config, context: context) }
    }

    /// `0.3` -> `loss_sigma_0.3`.
    public static func metricName(sigma: Double) -> String { "loss_sigma_" + String(format: "%g", sigma) }

    func compute(_ c: Config, context: StageContext) throws -> StageOutcome {
        let model = try TrainStage.input(context, field: "model", named: c.model)
        let dataURL = try TrainStage.input(context, field: "data", named: c.data)
        let weights = try SampleStage.weights(in: model, atKimg: c.atKimg, stage: context.stageName)
        do {
            let (net, meta) = try SongUNet.loadEMA(weights)
            net.retainsForBackward = false  // the loss is evaluated, never differentiated
            let data = try DatasetArtifact.open(directory: dataURL)
            guard data.resolution == meta.resolution, data.channels == meta.network.imageChannels else {
                throw StageError("\(context.stageName): the data set is \(data.resolution)x\(data.resolution)x\(data.channels), "
                                 + "the model was trained on \(meta.resolution)x\(meta.resolution)x\(meta.network.imageChannels)")
            }
            guard data.count >= c.numImages else {
                throw StageError("\(context.stageName): num_images is \(c.numImages) but the data set has \(data.count) images")
            }
            let images = data.batch(indices: Array(0..<c.numImages))
            context.emit(.log("denoise: \(c.numImages) images at \(c.sigmas.count) noise levels, weights at step \(meta.steps)"))
            let losses = DenoisingLoss(seed: UInt64(c.seed), batch: c.batch).evaluate(net, images: images, sigmas: c.sigmas)
            var metrics = Dictionary(uniqueKeysWithValues: zip(c.sigmas.map(Self.metricName), losses))
            metrics["loss_mean"] = losses.reduce(0, +) / Double(losses.count)
            metrics["steps"] = Double(meta.steps)
            metrics["counted_kimg"] = meta.countedKimg
            if let full = try Self.fullImagesSeen(model: model, step: meta.steps, resolution: meta.resolution) { metrics["full_images"] = full }
            return StageOutcome(metrics: metrics)
        } catch let e as DiffusionError {
            throw StageError("\(context.stageName): \(e.message)")
        } catch let e as DataError {
            throw StageError("\(context.stageName): \(e.message)")
        }
    }

    /// Full-size images the training had drawn by `step`: its log's rounds at the full patch size
    /// times the batch, summed over the lines up to the one that ends at `step` (nil if none does).
    static func fullImagesSeen(model: URL, step: Int, resolution: Int) throws -> Double? {
        struct Line: Decodable { var step: Int; var patchSizeHistogram: [String: Int] }
        struct Batch: Decodable { var batch: Int }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        guard let log = try? String(contentsOf: model.appendingPathComponent("training_log.jsonl"), encoding: .utf8),
              let config = try? Data(contentsOf: model.appendingPathComponent("config.json")),
              let batch = try? JSONDecoder().decode(Batch.self, from: config).batch else { return nil }
        var rounds = 0
        for text in log.split(separator: "\n") {
            let line = try decoder.decode(Line.self, from: Data(text.utf8))
            if line.step > step { break }
            rounds += line.patchSizeHistogram[String(resolution)] ?? 0
            if line.step == step { return Double(rounds * batch) }
        }
        return nil
    }
}
