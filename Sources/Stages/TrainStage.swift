import Engine
import Foundation

/// `kind: train` — Patch Diffusion training of a DDPM++ U-Net on a dataset artifact
/// (docs/patch-diffusion.md, docs/edm.md). `real_p: 1` is exactly EDM's full-image baseline.
///
/// Outputs: `ema.pdt` (EMA weights + network config; what `sample` reads), `config.json`
/// (the resolved training configuration), `training_log.jsonl` (one line per tick: kimg, loss,
/// seconds per kimg, images/s, lr, patch-size histogram). Checkpoints go to the work directory
/// every `checkpoint_kimg` and on interruption; the next run resumes from the last one and ends
/// at the same counted kimg.
public struct TrainStage: StageKind {
    public init() {}

    public var name: String { "train" }
    public var version: Int { 1 }

    // `.inf` passes a plain sign test and would train forever or poison the weights: require finite.
    static func positive(_ v: ParamValue) -> String? {
        let d = v.doubleValue ?? 0
        return d > 0 && d.isFinite ? nil : "must be positive and finite"
    }
    static func nonNegative(_ v: ParamValue) -> String? {
        let d = v.doubleValue ?? -1
        return d >= 0 && d.isFinite ? nil : "must be zero or positive and finite"
    }

    public var params: [ParamSpec] {
        [
            ParamSpec("data", .string, default: .string(""),
                      help: "name of the consumed dataset stage; empty: the only input"),
            ParamSpec("real_p", .double, default: .double(0.5), help: "full-image ratio p (1 = EDM baseline, 0 = patches only)",
                      check: { (0...1).contains($0.doubleValue ?? -1) ? nil : "must be between 0 and 1" }),
            ParamSpec("schedule", .oneOf(PatchSchedule.Kind.allCases.map(\.rawValue)), default: .string("stochastic"),
                      help: "patch-size schedule: stochastic (one size drawn per round) or progressive"),
            ParamSpec("coords", .bool, default: .bool(true), help: "feed the [x, y] coordinate channels (false: the no-coordinates ablation)"),
            ParamSpec("model_channels", .int, default: .int(64), help: "U-Net base width",
                      check: { ($0.intValue ?? 0) >= 4 && ($0.intValue ?? 0) % 2 == 0 ? nil : "must be an even number >= 4" }),
            ParamSpec("channel_mult", .list(.int), default: .list([.int(1), .int(2), .int(2)]), help: "width multiplier per level"),
            ParamSpec("num_blocks", .int, default: .int(2), help: "residual blocks per level", check: Self.positive),
            ParamSpec("attention_levels", .list(.int), default: .list([.int(1)]),
                      help: "levels (0 = full resolution) with self-attention; a patch keeps attention at the same level"),
            ParamSpec("dropout", .double, default: .double(0.0),
                      check: { (0..<1).contains($0.doubleValue ?? -1) ? nil : "must be in [0, 1)" }),
            ParamSpec("batch", .int, default: .int(32), help: "B, images per round before the patch multiplier", check: Self.positive),
            ParamSpec("kimg", .double, help: "training length in counted kimg (a patch counts as one image)", check: Self.positive),
            // The optimiser runs in float32: a rate beyond Float's range would become inf there.
            ParamSpec("lr", .double, default: .double(1e-3), help: "Adam learning rate", check: {
                Self.positive($0) ?? (($0.doubleValue ?? 0) <= Double(Float.greatestFiniteMagnitude) ? nil : "must be finite in float32 (at most 3.4e38)")
            }),
            ParamSpec("lr_rampup_kimg", .double, default: .double(10_000), help: "linear LR warm-up length (EDM: 10000)", check: Self.nonNegative),
            ParamSpec("ema_kimg", .double, default: .double(500), help: "EMA half-life in counted kimg (EDM: ema 0.5 Mimg)", check: Self.positive),
            ParamSpec("ema_rampup", .double, default: .double(0.05), help: "EMA half-life at most this times the counted images (0: off)",
                      check: Self.nonNegative),
            ParamSpec("seed", .int, default: .int(0), check: { ($0.intValue ?? -1) >= 0 ? nil : "must be a non-negative integer" }),
            ParamSpec("checkpoint_kimg", .double, default: .double(5), help: "checkpoint interval in counted kimg (0: only when interrupted)",
                      check: Self.nonNegative),
            ParamSpec("tick_kimg", .double, default: .double(1), help: "log interval in counted kimg", check: Self.positive),
        ]
    }

    public func validate(_ params: [String: ParamValue]) -> [(field: String, message: String)] {
        guard let network = try? Self.network(params, imageChannels: 1) else { return [] }
        return network.problems().filter { $0.field != "channels" }
    }

    static func network(_ p: [String: ParamValue], imageChannels: Int) throws -> UNetConfig {
        UNetConfig(imageChannels: imageChannels, coordinates: p["coords"]?.boolValue ?? true,
                   modelChannels: p["model_channels"]?.intValue ?? 64,
                   channelMult: (p["channel_mult"]?.listValue ?? []).compactMap(\.intValue),
                   numBlocks: p["num_blocks"]?.intValue ?? 2,
                   attentionLevels: (p["attention_levels"]?.listValue ?? []).compactMap(\.intValue),
                   dropout: p["dropout"]?.doubleValue ?? 0)
    }

    /// The training configuration for resolved params and a data set of the given geometry.
    public static func trainingConfig(_ p: [String: ParamValue], resolution: Int, channels: Int) throws -> TrainingConfig {
        guard let kimg = p["kimg"]?.doubleValue else { throw StageError("train: kimg is required") }
        let ramp = p["ema_rampup"]?.doubleValue ?? 0.05
        return TrainingConfig(
            network: try network(p, imageChannels: channels), resolution: resolution,
            realP: p["real_p"]?.doubleValue ?? 0.5,
            schedule: PatchSchedule.Kind(rawValue: p["schedule"]?.stringValue ?? "") ?? .stochastic,
            batch: p["batch"]?.intValue ?? 32, totalKimg: kimg, learningRate: p["lr"]?.doubleValue ?? 1e-3,
            lrRampupKimg: p["lr_rampup_kimg"]?.doubleValue ?? 10_000, emaHalfLifeKimg: p["ema_kimg"]?.doubleValue ?? 500,
            emaRampupRatio: ramp > 0 ? ramp : nil, seed: UInt64(max(0, p["seed"]?.intValue ?? 0)),
            checkpointKimg: p["checkpoint_kimg"]?.doubleValue ?? 5, tickKimg: p["tick_kimg"]?.doubleValue ?? 1)
    }

    /// The input directory named by `field` (or the only input when the field is empty).
    static func input(_ context: StageContext, field: String) throws -> URL {
        let wanted = context.params[field]?.stringValue ?? ""
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

    public func run(_ context: StageContext) throws -> StageOutcome {
        try Engine.exclusive(threads: context.engineThreads) { try compute(context) }
    }

    func compute(_ context: StageContext) throws -> StageOutcome {
        let dataURL = try Self.input(context, field: "data")
        do {
            let data = try DatasetArtifact.open(directory: dataURL)
            let config = try Self.trainingConfig(context.params, resolution: data.resolution, channels: data.channels)
            let trainer = try PatchDiffusionTrainer(config: config, images: data)
            try FileManager.default.createDirectory(at: context.workDirectory, withIntermediateDirectories: true)
            let emit = context.emit
            let total = config.totalKimg
            emit(.log(String(format: "train: %d images %dx%dx%d, U-Net %d parameters, p = %g (%@), m_avg %.2f, %d steps of B = %d",
                             data.trainingCount, data.resolution, data.resolution, data.channels, trainer.net.parameterCount,
                             config.realP, config.schedule.rawValue, config.patchSchedule.averageMultiplier,
                             config.trainingSchedule.totalSteps, config.batch)))
            var lastLoss = Double.nan
            let result = try trainer.run(
                workDirectory: context.workDirectory,
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
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try (encoder.encode(config) + Data("\n".utf8)).write(to: out.appendingPathComponent("config.json"))
            let line = JSONEncoder()
            line.outputFormatting = [.sortedKeys]
            line.keyEncodingStrategy = .convertToSnakeCase
            var log = Data()
            for t in result.ticks { log += try line.encode(t) + Data("\n".utf8) }
            try log.write(to: out.appendingPathComponent("training_log.jsonl"))
            return StageOutcome(metrics: [
                "wall_seconds": result.wallSeconds,
                "images_per_second": result.countedKimg * 1000 / max(result.wallSeconds, 1e-9),
                "counted_kimg": result.countedKimg,
                "steps": Double(result.steps),
                "flops_per_counted_image": result.trainingFlopsPerCountedImage,
                "final_loss": result.finalLoss,
                "parameters": Double(trainer.net.parameterCount),
            ])
        } catch let e as DiffusionError {
            throw StageError("\(context.stageName): \(e.message)")
        } catch let e as DataError {
            throw StageError("\(context.stageName): \(e.message)")
        } catch is TrainingCancelled {
            throw StageCancelled()
        }
    }
}
