import Engine
import Foundation

/// `kind: sample` — draws images from a `train` stage's EMA weights with EDM's Heun sampler
/// (docs/edm.md section 5), full-grid coordinates fixed for all steps.
///
/// Image k uses its own random stream of `seed`, so it is the same for any `batch`.
/// Outputs the images in the dataset artifact layout (`images.bin`, `manifest.json`, so
/// evaluation stages read them like a data set) and `grid.png` of the first 64.
/// `resolution` larger than trained samples a larger canvas: with `coordinates: extrapolate`
/// the coordinates continue past +1 (the paper's extrapolation), with `rescale` they span [-1, 1].
public struct SampleStage: StageKind {
    public init() {}

    public var name: String { "sample" }
    // 2: measurements (seconds, speeds) left the artifact for the store.
    public var version: Int { 2 }
    public var engineUse: EngineUse { .model }

    public struct Config: StageConfig, Equatable {
        /// Name of the consumed train stage; empty: the only input.
        public var model = ""
        /// 0: the final weights; else the snapshot at this counted kimg.
        public var atKimg = 0.0
        public var numImages = 64
        public var seed = 0
        /// Kept in the key: the images are claimed, not proven, bit-identical for any batch size.
        public var batch = 64
        public var steps = 18
        public var sigmaMin = 0.002
        public var sigmaMax = 80.0
        public var rho = 7.0
        public var sChurn = 0.0
        public var sMin = 0.0
        public var sMax = 1e9
        public var sNoise = 1.0
        /// 0: the trained resolution.
        public var resolution = 0
        public var coordinates = ImageGenerator.CoordinateMode.extrapolate
        /// Convolution precision of the sampling network (any trained model samples in either).
        public var precision = Precision.fp32

        public init() {}

        public static let fields: [ConfigField<Config>] = [
            .field("model", \.model, help: "name of the consumed train stage; empty: the only input"),
            .field("at_kimg", \.atKimg,
                   help: "sample the training's EMA snapshot at this counted kimg (its snapshot_kimg multiples); 0: the final weights",
                   check: .between(0, 100_000)),
            // Twice the 50k of the FID standard; every image is held in memory before it is written.
            .field("num_images", \.numImages, check: .between(1, 100_000)),
            .field("seed", \.seed, check: .between(0, maxSeed)),
            .field("batch", \.batch, help: "images per network call (does not change the images)", check: .between(1, 4096)),
            // EDM samples with 18-256 steps; each step is two network evaluations per image.
            .field("steps", \.steps, help: "Heun steps N (2N - 1 network evaluations)", check: .between(1, 1000)),
            // Noise levels in units of the data (sigma_data = 0.5); EDM's sigma_max is 80.
            .field("sigma_min", \.sigmaMin, check: .positive(atMost: 10_000)),
            .field("sigma_max", \.sigmaMax, check: .positive(atMost: 10_000)),
            .field("rho", \.rho, check: .positive(atMost: 1000)),
            .field("s_churn", \.sChurn, help: "stochasticity (EDM S_churn; 0 = deterministic)", check: .between(0, 1000)),
            .field("s_min", \.sMin, check: .between(0, 1e9)),
            .field("s_max", \.sMax, help: "EDM S_max (1e9: no upper limit)", check: .between(0, 1e9)),
            .field("s_noise", \.sNoise, check: .positive(atMost: 100)),
            // As for data sets; a larger canvas is memory in proportion to its area.
            .field("resolution", \.resolution, help: "output size; 0: the trained resolution", check: .between(0, 4096)),
            .field("coordinates", \.coordinates,
                   help: "coordinates of a canvas larger than trained: extrapolate (past +1) or rescale (into [-1, 1])"),
            .field("precision", \.precision, help: "convolution precision: fp32, or bf16 mixed precision (native bf16 CPUs only)",
                   keyOmittedAtDefault: true, check: .runsHere),
        ]
    }

    /// Every sample is held in memory before the artifact is written: at most this many pixel bytes.
    public static let maxPixelBytes = 16_000_000_000.0

    public func validate(_ config: Config) -> [ConfigProblem] {
        var problems: [ConfigProblem] = []
        if config.sigmaMin >= config.sigmaMax {
            problems.append(ConfigProblem("sigma_min", "must be below sigma_max (\(describeNumber(config.sigmaMax)))"))
        }
        // With resolution 0 the size is the trained one, known at run time (checked there).
        if config.resolution > 0, let message = Self.memoryProblem(count: config.numImages, resolution: config.resolution, channels: 3) {
            problems.append(ConfigProblem("num_images", message))
        }
        return problems
    }

    static func memoryProblem(count: Int, resolution: Int, channels: Int) -> String? {
        let bytes = Double(count) * Double(resolution) * Double(resolution) * Double(channels)
        guard bytes > maxPixelBytes else { return nil }
        return String(format: "%d images of %dx%dx%d are %.0f GB of pixels held in memory (at most %.0f GB)",
                      count, resolution, resolution, channels, bytes / 1e9, maxPixelBytes / 1e9)
    }

    public static let weightsFileName = "ema.pdt"

    /// At a snapshot, only that file of the training's artifact: its key survives an extension.
    public func inputFiles(_ config: Config, consumed: [String]) -> [String: [String]] {
        guard config.atKimg > 0 else { return [:] }
        let input = config.model.isEmpty ? (consumed.count == 1 ? consumed[0] : nil) : config.model
        guard let input else { return [:] }
        return [input: [TrainingSnapshots.directory + "/" + TrainingSnapshots.fileName(kimg: config.atKimg)]]
    }

    /// The final EMA weights of a train artifact, or its snapshot at `atKimg` (> 0).
    static func weights(in model: URL, atKimg: Double, stage: String) throws -> URL {
        if atKimg > 0 {
            let snapshots = TrainingSnapshots.list(in: model)
            guard let hit = snapshots.first(where: { abs($0.kimg - atKimg) < 1e-9 }) else {
                throw StageError("\(stage): the training has no snapshot at \(String(format: "%g", atKimg)) kimg ("
                                 + (snapshots.isEmpty ? "it kept none: set snapshot_kimg on the train stage"
                                    : "snapshots: " + snapshots.map { String(format: "%g", $0.kimg) }.joined(separator: ", ")) + ")")
            }
            return hit.url
        }
        let weights = model.appendingPathComponent(weightsFileName)
        guard FileManager.default.fileExists(atPath: weights.path) else {
            throw StageError("\(stage): \(weights.path) not found (is the model input a train stage?)")
        }
        return weights
    }

    public func run(_ config: Config, context: StageContext) throws -> StageOutcome {
        try Engine.exclusive(threads: context.engineThreads) { try compute(config, context: context) }
    }

    func compute(_ p: Config, context: StageContext) throws -> StageOutcome {
        let modelURL = try TrainStage.input(context, field: "model", named: p.model)
        let weights = try Self.weights(in: modelURL, atKimg: p.atKimg, stage: context.stageName)
        let sampler = HeunSampler(steps: p.steps, sigmaMin: p.sigmaMin, sigmaMax: p.sigmaMax, rho: p.rho,
                                  sChurn: p.sChurn, sMin: p.sMin, sMax: p.sMax, sNoise: p.sNoise)
        let count = p.numImages, batch = p.batch
        let seed = UInt64(p.seed)
        let resolution = p.resolution
        do {
            let generator = try Engine.withBackend(try p.precision.backend(stage: context.stageName)) {
                try ImageGenerator(weightsURL: weights, sampler: sampler, outputResolution: resolution > 0 ? resolution : nil,
                                   coordinateMode: p.coordinates)
            }
            let r = generator.outputResolution, c = generator.net.imageChannels
            if let problem = Self.memoryProblem(count: count, resolution: r, channels: c) { throw StageError("\(context.stageName): \(problem)") }
            context.emit(.log("sample: \(count) images \(r)x\(r)x\(c), \(sampler.steps) Heun steps (\(sampler.evaluations) evaluations), seed \(seed)"))
            var pixels: [UInt8] = []
            pixels.reserveCapacity(count * r * r * c)
            let started = Date()
            var first = 0
            while first < count {
                if context.isCancelled() { throw StageCancelled() }
                let n = min(batch, count - first)
                pixels += HeunSampler.toUInt8NHWC(generator.generate(first: first, count: n, seed: seed))
                first += n
                context.emit(.progress(completed: Double(first), total: Double(count), unit: "images", detail: ""))
            }
            let seconds = Date().timeIntervalSince(started)
            try SampleArtifact.write(pixels: pixels, count: count, resolution: r, channels: c, weights: weights,
                                     to: context.outputDirectory)
            return StageOutcome(metrics: ["images": Double(count), "evaluations_per_image": Double(sampler.evaluations)],
                                measurements: ["seconds": seconds, "images_per_second": Double(count) / max(seconds, 1e-9)])
        } catch let e as DiffusionError {
            throw StageError("\(context.stageName): \(e.message)")
        } catch let e as DataError {
            throw StageError("\(context.stageName): \(e.message)")
        }
    }
}

extension ImageGenerator.CoordinateMode: ConfigEnum {}
