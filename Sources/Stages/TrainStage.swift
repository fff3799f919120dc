import Engine
import Foundation

/// `kind: train` — Patch Diffusion training of a DDPM++ U-Net on a dataset artifact
/// (docs/patch-diffusion.md, docs/edm.md). `real_p: 1` is exactly EDM's full-image baseline.
///
/// Outputs: `ema.pdt` (EMA weights + network config; what `sample` reads), `config.json`
/// (the resolved training configuration), `training_log.jsonl` (one line per tick: kimg, step,
/// loss, lr, patch-size histogram), `state.pdt` (weights, EMA, Adam moments and RNG states: what
/// a longer run continues from) and, with `snapshot_kimg`, `snapshots/ema-<kimg>.pdt`. Speeds are
/// measurements: they go to the run log and the store. Checkpoints go to the work directory every
/// `checkpoint_kimg` and on interruption; the next run resumes from the last one and ends at the
/// same counted kimg.
public struct TrainStage: StageKind {
    public init() {}

    public var name: String { "train" }
    // 2: measurements (seconds, speeds) left the artifact for the store.
    public var version: Int { 2 }
    public var engineUse: EngineUse { .model }

    /// The fields of a train stage. Bounds keep memory and time finite: a batch, width or length
    /// beyond them could not run on a CPU here, and would otherwise abort in an allocation or
    /// overflow an integer conversion mid-run.
    public struct Config: StageConfig, Equatable {
        /// Name of the consumed dataset stage; empty: the only input.
        public var data = ""
        public var realP = 0.5
        public var schedule = PatchSchedule.Kind.stochastic
        public var coords = true
        public var modelChannels = 64
        public var channelMult = [1, 2, 2]
        public var numBlocks = 2
        public var attentionLevels = [1]
        public var dropout = 0.0
        public var batch = 32
        /// Required: there is no sensible default length.
        public var kimg = 0.0
        public var lr = 1e-3
        public var lrRampupKimg = 10_000.0
        public var emaKimg = 500.0
        public var emaRampup = 0.05
        public var seed = 0
        /// Operational: training checkpoints to the work directory only to survive interruption.
        public var checkpointKimg = 5.0
        /// Not operational: it sets the lines of training_log.jsonl.
        public var tickKimg = 1.0
        /// Not operational: snapshots are part of the artifact. 0: none.
        public var snapshotKimg = 0.0
        /// Convolution precision (bf16: mixed precision on CPUs with native bf16 kernels).
        public var precision = Precision.fp32

        public init() {}

        /// 100 Mimg: above EDM's CIFAR-10 budget (200 Mimg on 8 GPUs) scaled to a CPU, years of training here;
        /// it also keeps the step count (kimg * 1000 / B) far inside Int.
        public static let maxKimg = 100_000.0

        public static let fields: [ConfigField<Config>] = [
            .field("data", \.data, help: "name of the consumed dataset stage; empty: the only input"),
            .field("real_p", \.realP, help: "full-image ratio p (1 = EDM baseline, 0 = patches only)", check: .between(0, 1)),
            .field("schedule", \.schedule, help: "patch-size schedule: stochastic (one size drawn per round) or progressive"),
            .field("coords", \.coords, help: "feed the [x, y] coordinate channels (false: the no-coordinates ablation)"),
            // 1024 base channels is 64x the parameters of EDM's 128-channel DDPM++ (56 M): ~3.6 G parameters,
            // ~57 GB in float32 with gradients, Adam moments and EMA.
            .field("model_channels", \.modelChannels, help: "U-Net base width", check: Check("even, 4...1024") {
                $0 >= 4 && $0 % 2 == 0 ? ($0 <= 1024 ? nil : "must be at most 1024") : "must be an even number >= 4"
            }),
            // At most 8 levels (7 halvings, 512 -> 4) and x16 the base width per level.
            .field("channel_mult", \.channelMult, help: "width multiplier per level", check: .list(count: 1...8, items: 1...16)),
            .field("num_blocks", \.numBlocks, help: "residual blocks per level", check: .between(1, 16)),
            .field("attention_levels", \.attentionLevels, check: .list(count: 0...8, items: 0...7)),
            .field("dropout", \.dropout, check: Check("[0, 1)") { (0..<1).contains($0) ? nil : "must be in [0, 1)" }),
            // EDM's largest published batch (ImageNet-64); x16 patches per round at R/4.
            .field("batch", \.batch, help: "B, images per round before the patch multiplier", check: .between(1, 4096)),
            .field("kimg", \.kimg, help: "training length in counted kimg (a patch counts as one image)", required: true,
                   check: .positive(atMost: maxKimg)),
            .field("lr", \.lr, help: "Adam learning rate", check: .learningRate),
            .field("lr_rampup_kimg", \.lrRampupKimg, help: "linear LR warm-up length (EDM: 10000)", check: .between(0, 1_000_000)),
            .field("ema_kimg", \.emaKimg, help: "EMA half-life in counted kimg (EDM: ema 0.5 Mimg)", check: .positive(atMost: 1_000_000)),
            .field("ema_rampup", \.emaRampup, help: "EMA half-life at most this times the counted images (0: off)", check: .between(0, 1000)),
            .field("seed", \.seed, check: .between(0, maxSeed)),
            .field("checkpoint_kimg", \.checkpointKimg, help: "checkpoint interval in counted kimg (0: only when interrupted)",
                   operational: true, check: .between(0, maxKimg)),
            .field("tick_kimg", \.tickKimg, help: "log interval in counted kimg", check: .positive(atMost: maxKimg)),
            .field("snapshot_kimg", \.snapshotKimg,
                   help: "keep the EMA weights every this many counted kimg in snapshots/ (0: none); `sample` picks one with at_kimg",
                   check: .between(0, maxKimg)),
            .field("precision", \.precision, help: "convolution precision: fp32, or bf16 mixed precision (native bf16 CPUs only)",
                   keyOmittedAtDefault: true, check: .runsHere),
        ]
    }

    public func validate(_ config: Config) -> [ConfigProblem] {
        Self.network(config, imageChannels: 1).problems().filter { $0.field != "channels" }.map { ConfigProblem($0.field, $0.message) }
    }

    static func network(_ c: Config, imageChannels: Int) -> UNetConfig {
        UNetConfig(imageChannels: imageChannels, coordinates: c.coords, modelChannels: c.modelChannels, channelMult: c.channelMult,
                   numBlocks: c.numBlocks, attentionLevels: c.attentionLevels, dropout: c.dropout)
    }

    /// The training configuration for a config and a data set of the given geometry.
    public static func trainingConfig(_ c: Config, resolution: Int, channels: Int) -> TrainingConfig {
        TrainingConfig(
            network: network(c, imageChannels: channels), resolution: resolution, realP: c.realP, schedule: c.schedule,
            batch: c.batch, totalKimg: c.kimg, learningRate: c.lr, lrRampupKimg: c.lrRampupKimg, emaHalfLifeKimg: c.emaKimg,
            emaRampupRatio: c.emaRampup > 0 ? c.emaRampup : nil, seed: UInt64(c.seed), tickKimg: c.tickKimg)
    }

    /// The input directory named by `field` (or the only input when the field is empty).
    static func input(_ context: StageContext, field: String, named wanted: String) throws -> URL {
        if !wanted.isEmpty {
            guard let url = context.inputs[wanted] else {
                throw StageError("\(context.stageName): \(field) '\(wanted)' is not among the consumed stages (\(context.inputs.keys.sorted().joined(separator: ", ")))")
            }
            return url
        }
        guard context.inputs.count == 1, let only = context.inputs.values.first else {
            throw StageError("\(context.stageName): consumes \(context.inputs.count) stages; set \(field) to the one to read")
        }
        return only
    }

    public func run(_ config: Config, context: StageContext) throws -> StageOutcome {
        try Engine.exclusive(threads: context.engineThreads) { try compute(config, context: context) }
    }

    /// A longer `kimg` continues the recorded shorter run (`state.pdt`), ending bit-identical to
    /// training to the longer total from scratch: nothing before the old total depends on the total...
    public var budgetField: String? { "kimg" }

    /// ...except in the progressive schedule, whose patch sizes follow the fraction of the total.
    public func extensionProblem(_ config: Config) -> String? {
        config.schedule == .progressive && config.realP < 1 ? "the progressive schedule's patch sizes depend on the total kimg" : nil
    }

    /// The snapshots up to the shorter run's kimg are the same bytes in the longer run (written at
    /// the same points of the same trajectory); its log, config, state and final weights change.
    public func extensionKeeps(_ path: String, fromBudget budget: Double) -> Bool {
        let prefix = TrainingSnapshots.directory + "/ema-", suffix = ".pdt"
        guard path.hasPrefix(prefix), path.hasSuffix(suffix),
              let kimg = Double(path.dropFirst(prefix.count).dropLast(suffix.count)) else { return false }
        return kimg <= budget + 1e-9
    }

    /// The finished run's state, from which a longer run continues (checkpoint format, content only).
    public static let stateFileName = "state.pdt"

    func compute(_ fields: Config, context: StageContext) throws -> StageOutcome {
        let dataURL = try Self.input(context, field: "data", named: fields.data)
        do {
            let data = try DatasetArtifact.open(directory: dataURL)
            let config = Self.trainingConfig(fields, resolution: data.resolution, channels: data.channels)
            // Layers keep the backend they are built with: bf16 builds the network on oneDNN in bf16.
            let trainer = try Engine.withBackend(try fields.precision.backend(stage: context.stageName)) {
                try PatchDiffusionTrainer(config: config, images: data)
            }
            try FileManager.default.createDirectory(at: context.workDirectory, withIntermediateDirectories: true)
            let emit = context.emit
            let total = config.totalKimg
            emit(.log(String(format: "train: %d images %dx%dx%d, U-Net %d parameters, p = %g (%@), m_avg %.2f, %d steps of B = %d",
                             data.trainingCount, data.resolution, data.resolution, data.channels, trainer.net.parameterCount,
                             config.realP, config.schedule.rawValue, config.patchSchedule.averageMultiplier,
                             config.trainingSchedule.totalSteps, config.batch)))
            // Snapshots collect in the work directory, so an interrupted run keeps those it made.
            let snapshots = context.workDirectory.appendingPathComponent(TrainingSnapshots.directory)
            try FileManager.default.createDirectory(at: snapshots, withIntermediateDirectories: true)
            // Wall seconds at each snapshot (measurements, beside the result): kept in the work
            // directory too, so a run resumed from its checkpoint still has those of earlier snapshots.
            let secondsFile = context.workDirectory.appendingPathComponent("snapshot_seconds.json")
            var snapshotSeconds = (try? JSONDecoder().decode([String: Double].self, from: Data(contentsOf: secondsFile))) ?? [:]
            var (baseSeconds, baseImages) = (0.0, 0.0)
            if let base = context.extending {
                // The continued run's snapshots come with their times.
                for (name, seconds) in base.measurements where name.hasPrefix("wall_seconds_at.") { snapshotSeconds[name] = seconds }
                try Self.copySnapshots(from: base.artifact, to: snapshots)
                let step = try trainer.continueTraining(from: base.artifact.appendingPathComponent(Self.stateFileName))
                (baseSeconds, baseImages) = (base.measurements["wall_seconds"] ?? 0, trainer.countedImages)
                emit(.log(String(format: "train: extending the run that ended at step %d (%.4g counted kimg)", step,
                                 trainer.countedImages / 1000)))
            }
            var lastLoss = Double.nan
            let result = try trainer.run(
                workDirectory: context.workDirectory, checkpointKimg: fields.checkpointKimg, snapshotKimg: fields.snapshotKimg,
                onSnapshot: { kimg, weights in
                    try weights.write(to: snapshots.appendingPathComponent(TrainingSnapshots.fileName(kimg: kimg)))
                    snapshotSeconds["wall_seconds_at." + String(format: "%.10g", kimg)] = baseSeconds + trainer.wallSeconds
                    try JSONEncoder().encode(snapshotSeconds).write(to: secondsFile, options: .atomic)
                },
                onTick: { t in
                    lastLoss = t.loss
                    emit(.log(String(format: "train: kimg %.2f  loss %.4f  %.1f s/kimg  %.1f img/s  sizes %@", t.kimg, t.loss,
                                     t.secondsPerKimg, t.imagesPerSecond,
                                     t.patchSizeHistogram.keys.sorted { Int($0)! < Int($1)! }.map { "\($0):\(t.patchSizeHistogram[$0]!)" }.joined(separator: " "))))
                },
                onStep: { kimg, _ in
                    emit(.progress(completed: min(kimg, total), total: total, unit: "kimg",
                                   detail: lastLoss.isNaN ? "" : String(format: "loss %.4f", lastLoss)))
                },
                isCancelled: context.isCancelled)
            if let step = result.resumedFromStep { emit(.log("train: resumed from the checkpoint at step \(step)")) }

            let out = context.outputDirectory
            try trainer.emaArchive().write(to: out.appendingPathComponent("ema.pdt"))
            try trainer.resumableState().write(to: out.appendingPathComponent(Self.stateFileName))
            if !TrainingSnapshots.list(in: context.workDirectory).isEmpty {
                try FileManager.default.moveItem(at: snapshots, to: out.appendingPathComponent(TrainingSnapshots.directory))
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try (encoder.encode(config) + Data("\n".utf8)).write(to: out.appendingPathComponent("config.json"))
            let line = JSONEncoder()
            line.outputFormatting = [.sortedKeys]
            line.keyEncodingStrategy = .convertToSnakeCase
            var log = Data()
            for t in result.ticks { log += try line.encode(TrainingLogLine(t)) + Data("\n".utf8) }
            try log.write(to: out.appendingPathComponent("training_log.jsonl"))
            return StageOutcome(metrics: [
                "counted_kimg": result.countedKimg,
                "steps": Double(result.steps),
                "flops_per_counted_image": result.trainingFlopsPerCountedImage,
                "final_loss": result.finalLoss,
                "parameters": Double(trainer.net.parameterCount),
            ], measurements: snapshotSeconds.merging([
                // Cumulative over the runs an extension continued; images/s of this run alone.
                "wall_seconds": baseSeconds + result.wallSeconds,
                "images_per_second": (result.countedKimg * 1000 - baseImages) / max(result.wallSeconds, 1e-9),
            ]) { a, _ in a })
        } catch let e as DiffusionError {
            throw StageError("\(context.stageName): \(e.message)")
        } catch let e as DataError {
            throw StageError("\(context.stageName): \(e.message)")
        } catch is TrainingCancelled {
            throw StageCancelled()
        }
    }
}

extension TrainStage {
    /// Copies the snapshots of the run being extended (an extension's artifact holds them all, as a
    /// from-scratch run's would); ones already in the work directory (a resumed extension) stay.
    static func copySnapshots(from artifact: URL, to directory: URL) throws {
        for (_, url) in TrainingSnapshots.list(in: artifact) {
            let target = directory.appendingPathComponent(url.lastPathComponent)
            if !FileManager.default.fileExists(atPath: target.path) { try FileManager.default.copyItem(at: url, to: target) }
        }
    }
}

extension PatchSchedule.Kind: ConfigEnum {}
extension Precision: ConfigEnum {}

extension Check where Value == Precision {
    /// The precision can run on this CPU (bf16 needs native bf16 kernels; never emulated).
    static var runsHere: Check {
        Check("fp32, or bf16 where the CPU has native bf16 kernels") { $0.unsupportedReason }
    }
}

extension Precision {
    /// The backend a network of this precision computes on in a stage (the start-up choice for
    /// fp32); a failure names the stage. Shared by train and sample.
    func backend(stage: String) throws -> any ComputeBackend {
        do { return try Engine.backend(for: self) } catch {
            throw StageError("\(stage): precision \(rawValue): \(error)")
        }
    }
}

extension Check where Value == Double {
    /// Optimisers run in float32: a rate beyond Float's range would become inf there. A huge finite
    /// rate is allowed: its divergence is reported at the step where the loss stops being finite.
    static var learningRate: Check {
        Check("(0, 3.4e38]") { v in
            guard v > 0 && v.isFinite else { return "must be positive and finite" }
            return v <= Double(Float.greatestFiniteMagnitude) ? nil : "must be finite in float32 (at most 3.4e38)"
        }
    }
}

/// One line of `training_log.jsonl`: what a tick computed. Its speeds are measurements, which
/// differ from run to run and so stay out of the artifact.
struct TrainingLogLine: Encodable {
    var kimg: Double
    var step: Int
    var loss: Double
    var learningRate: Double
    var patchSizeHistogram: [String: Int]

    init(_ t: TrainingTick) {
        (kimg, step, loss, learningRate, patchSizeHistogram) = (t.kimg, t.step, t.loss, t.learningRate, t.patchSizeHistogram)
    }
}
