import Foundation

/// One line of the training log (one per tick).
public struct TrainingTick: Sendable, Equatable, Codable {
    public var kimg: Double
    public var step: Int
    /// Mean weighted loss per element (lambda (D - y)^2 averaged over C*s*s and the ticks' patches),
    /// comparable across patch sizes; the optimised objective sums over elements (see EDMLoss).
    public var loss: Double
    public var secondsPerKimg: Double
    public var imagesPerSecond: Double
    public var learningRate: Double
    /// Rounds per patch size during the tick, keyed by the size ("8", "16", "32").
    public var patchSizeHistogram: [String: Int]
}

/// What a finished run reports.
public struct TrainingResult: Sendable {
    public var steps: Int
    public var countedKimg: Double
    public var wallSeconds: Double
    public var finalLoss: Double
    public var ticks: [TrainingTick]
    public var trainingFlopsPerCountedImage: Double
    public var resumedFromStep: Int?
}

/// Raised when `isCancelled` turned true; a checkpoint was written first (if a work directory was given).
public struct TrainingCancelled: Error, Sendable {
    public let step: Int
}

/// Patch Diffusion training (docs/patch-diffusion.md, docs/edm.md sections 1-3) of a SongUNet on a set of images,
/// with EMA, LR warm-up, checkpoints and exact resume.
///
/// Per optimiser step: draw a patch size s (one per round), load m(s) * B images at random,
/// crop each at its own random offset, compute EDM's loss on cat(c_in x, coords) with the
/// reference reduction, Adam step at the warmed-up rate, EMA update. Every random draw comes
/// from one generator (plus the dropout layers' own), all saved in checkpoints, so an
/// interrupted and resumed run ends with the same weights as an uninterrupted one.
public final class PatchDiffusionTrainer {
    public let config: TrainingConfig
    public let net: SongUNet
    let images: any TrainingImageSet
    let adam: Adam
    public internal(set) var ema: EMA
    public internal(set) var step = 0
    var rng: RandomGenerator
    var ticks: [TrainingTick] = []
    /// Seconds spent in training steps so far (resumed runs continue the count).
    public internal(set) var wallSeconds = 0.0
    // The tick in progress.
    var tick = TickAccumulator()
    /// The log as it stood before the end of training closed a partial tick: what a longer run
    /// continues from, so extending ends with the same log as training to the longer total at once.
    var logBeforeFinalTick: (ticks: [TrainingTick], tick: TickAccumulator)?

    struct TickAccumulator: Codable {
        var lossSum = 0.0, rounds = 0, seconds = 0.0, startImages = 0.0
        var histogram: [String: Int] = [:]
    }

    public init(config: TrainingConfig, images: any TrainingImageSet) throws {
        guard images.resolution == config.resolution else {
            throw DiffusionError("training resolution \(config.resolution) but the images are \(images.resolution)x\(images.resolution)")
        }
        guard images.channels == config.network.imageChannels else {
            throw DiffusionError("the network has \(config.network.imageChannels) image channels but the images have \(images.channels)")
        }
        guard images.trainingImageCount > 0 else { throw DiffusionError("no training images") }
        let problems = config.network.problems(resolution: config.realP < 1 ? config.resolution : nil)
        if let p = problems.first { throw DiffusionError("\(p.field): \(p.message)") }
        if config.resolution % config.network.sizeDivisor != 0 {
            throw DiffusionError("resolution \(config.resolution) is not a multiple of \(config.network.sizeDivisor)")
        }
        self.config = config
        self.images = images
        net = SongUNet(config: config.network, seed: config.seed)
        adam = Adam(parameters: net.parameters)
        ema = EMA(from: net.parameters)
        rng = RandomGenerator(seed: config.seed, stream: 1)
    }

    public var countedImages: Double { config.trainingSchedule.countedImages(afterSteps: step) }
    public var isFinished: Bool { step >= config.trainingSchedule.totalSteps }

    /// One optimiser step; returns the round's loss (mean over patches of the per-patch sum).
    @discardableResult
    public func trainStep() throws -> Double {
        let sched = config.trainingSchedule
        let counted = sched.countedImages(afterSteps: step)
        let (batch, _) = Self.drawRound(config: config, images: images, progress: counted / (config.totalKimg * 1000), using: &rng)
        let s = batch.size
        net.isTraining = true
        net.zeroGrad()
        let loss = config.loss.forwardBackward(net, batch: batch, using: &rng)
        guard loss.isFinite else {
            // A NaN's sign bit depends on the kernels that produced it: say "nan" either way.
            throw DiffusionError("non-finite loss (\(loss.isNaN ? "nan" : "\(loss)")) at step \(step) (\(String(format: "%.3f", counted / 1000)) counted kimg, patch size \(s))")
        }
        adam.step(lr: Float(sched.learningRate(countedImages: counted)))
        ema.update(from: net.parameters, beta: Float(sched.emaBeta(countedImages: counted)))
        step += 1
        tick.lossSum += loss / Double(config.network.imageChannels * s * s)
        tick.rounds += 1
        tick.histogram[String(s), default: 0] += 1
        return loss
    }

    /// One round's patches, drawn in this order from `rng`: the size, then m(s) B image indices,
    /// then their offsets. Also returns the indices (for the reference check of a round).
    public static func drawRound(config: TrainingConfig, images: some TrainingImageSet, progress: Double,
                                 using rng: inout RandomGenerator) -> (PatchBatch, indices: [Int]) {
        let patches = config.patchSchedule
        let s = patches.drawSize(progress: progress, using: &rng)
        let n = patches.multiplier(forSize: s) * config.batch
        let indices = (0..<n).map { _ in rng.integer(upTo: images.trainingImageCount - 1) }
        let offsets = (0..<n).map { _ in patches.drawOffset(size: s, using: &rng) }
        return (PatchBatch(source: images, indices: indices, size: s, offsets: offsets), indices)
    }

    /// Trains to the configured counted kimg, resuming from `workDirectory`'s checkpoint if there is one,
    /// and checkpointing there every `checkpointKimg` counted kimg (0: only when cancelled).
    /// Every `snapshotKimg` counted kimg, `onSnapshot` gets the EMA weights and the multiple of
    /// `snapshotKimg` just reached (the first step at or past it; a resumed run repeats none it passed).
    public func run(workDirectory: URL?, checkpointKimg: Double = 0, snapshotKimg: Double = 0,
                    onSnapshot: (_ kimg: Double, TensorArchive) throws -> Void = { _, _ in },
                    onTick: (TrainingTick) -> Void = { _ in },
                    onStep: (_ kimg: Double, _ loss: Double) -> Void = { _, _ in },
                    isCancelled: () -> Bool = { false }) throws -> TrainingResult {
        try Engine.exclusive {
            try train(workDirectory: workDirectory, checkpointKimg: checkpointKimg, snapshotKimg: snapshotKimg,
                      onSnapshot: onSnapshot, onTick: onTick, onStep: onStep, isCancelled: isCancelled)
        }
    }

    private func train(workDirectory: URL?, checkpointKimg: Double, snapshotKimg: Double,
                       onSnapshot: (_ kimg: Double, TensorArchive) throws -> Void, onTick: (TrainingTick) -> Void,
                       onStep: (_ kimg: Double, _ loss: Double) -> Void, isCancelled: () -> Bool) throws -> TrainingResult {
        var resumedFrom: Int?
        if let dir = workDirectory, let restored = try restoreCheckpoint(from: dir) { resumedFrom = restored }
        let sched = config.trainingSchedule
        let total = sched.totalSteps
        var nextCheckpoint = nextMultiple(of: checkpointKimg * 1000, after: countedImages)
        var nextTick = nextMultiple(of: config.tickKimg * 1000, after: countedImages)
        var nextSnapshot = nextMultiple(of: snapshotKimg * 1000, after: countedImages)
        logBeforeFinalTick = nil
        while step < total {
            if isCancelled() {
                if let dir = workDirectory { try writeCheckpoint(to: dir) }
                throw TrainingCancelled(step: step)
            }
            let t0 = Date()
            let loss = try trainStep()
            let dt = Date().timeIntervalSince(t0)
            wallSeconds += dt
            tick.seconds += dt
            onStep(countedImages / 1000, loss)
            if countedImages >= nextSnapshot {
                // Rounded to a counted image: 3 x 0.04 is 0.12, not 0.12000000000000001.
                let reached = ((countedImages / (snapshotKimg * 1000)).rounded(.down) * snapshotKimg * 1000).rounded() / 1000
                try onSnapshot(reached, try emaArchive())
                nextSnapshot = nextMultiple(of: snapshotKimg * 1000, after: countedImages)
            }
            if countedImages >= nextTick || step == total {
                if countedImages < nextTick { logBeforeFinalTick = (ticks, tick) }
                let record = closeTick()
                ticks.append(record)
                onTick(record)
                nextTick = nextMultiple(of: config.tickKimg * 1000, after: countedImages)
            }
            if let dir = workDirectory, checkpointKimg > 0, countedImages >= nextCheckpoint, step < total {
                try writeCheckpoint(to: dir)
                nextCheckpoint = nextMultiple(of: checkpointKimg * 1000, after: countedImages)
            }
        }
        return TrainingResult(steps: step, countedKimg: countedImages / 1000, wallSeconds: wallSeconds,
                              finalLoss: ticks.last?.loss ?? .nan, ticks: ticks,
                              trainingFlopsPerCountedImage: net.trainingFlopsPerCountedImage(schedule: config.patchSchedule),
                              resumedFromStep: resumedFrom)
    }

    func nextMultiple(of interval: Double, after value: Double) -> Double {
        guard interval > 0 else { return .infinity }
        return ((value / interval).rounded(.down) + 1) * interval
    }

    func closeTick() -> TrainingTick {
        let kimgInTick = (countedImages - tick.startImages) / 1000
        let record = TrainingTick(kimg: countedImages / 1000, step: step, loss: tick.lossSum / Double(max(tick.rounds, 1)),
                                  secondsPerKimg: kimgInTick > 0 ? tick.seconds / kimgInTick : 0,
                                  imagesPerSecond: tick.seconds > 0 ? kimgInTick * 1000 / tick.seconds : 0,
                                  learningRate: config.trainingSchedule.learningRate(countedImages: countedImages),
                                  patchSizeHistogram: tick.histogram)
        tick = TickAccumulator(startImages: countedImages)
        return record
    }

    /// The EMA weights as a named-tensor archive (what sampling loads), metadata = the network config.
    public func emaArchive() throws -> TensorArchive {
        let names = net.namedParameters().map(\.name)
        let meta = EMAWeightsMetadata(network: config.network, resolution: config.resolution, countedKimg: countedImages / 1000,
                                      steps: step)
        return TensorArchive(metadata: try TensorArchive.canonicalJSON(meta), tensors: Array(zip(names, ema.values)).map { ($0.0, $0.1) })
    }
}

/// Metadata of an exported EMA weights file.
public struct EMAWeightsMetadata: Codable, Sendable, Equatable {
    public var format = "pdpipe-unet-weights"
    public var network: UNetConfig
    public var resolution: Int
    public var countedKimg: Double
    public var steps: Int
}
