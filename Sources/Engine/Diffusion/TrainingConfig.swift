/// Everything that determines a Patch Diffusion training run (PATCH_DIFFUSION.md sections 1-4):
/// its result and nothing else. How often to checkpoint is an operational choice of `run`.
public struct TrainingConfig: Sendable, Equatable, Codable {
    public var network: UNetConfig
    /// R, the (square) training resolution.
    public var resolution: Int
    /// Full-image ratio p.
    public var realP: Double
    public var schedule: PatchSchedule.Kind
    /// B, images per round before the patch multiplier.
    public var batch: Int
    /// Duration in counted kimg (a patch counts as one image).
    public var totalKimg: Double
    public var learningRate: Double
    public var lrRampupKimg: Double
    /// EMA half-life in counted kimg (EDM gives it in Mimg: ema_mimg * 1000).
    public var emaHalfLifeKimg: Double
    /// EDM's ema_rampup_ratio (0.05); nil turns the ramp off.
    public var emaRampupRatio: Double?
    public var seed: UInt64
    /// Log one line every this many counted kimg.
    public var tickKimg: Double
    public var loss: EDMLoss

    public init(network: UNetConfig, resolution: Int, realP: Double = 0.5, schedule: PatchSchedule.Kind = .stochastic,
                batch: Int, totalKimg: Double, learningRate: Double = 1e-3, lrRampupKimg: Double = 10_000,
                emaHalfLifeKimg: Double = 500, emaRampupRatio: Double? = 0.05, seed: UInt64 = 0,
                tickKimg: Double = 1, loss: EDMLoss = EDMLoss()) {
        (self.network, self.resolution, self.realP, self.schedule, self.batch) = (network, resolution, realP, schedule, batch)
        (self.totalKimg, self.learningRate, self.lrRampupKimg) = (totalKimg, learningRate, lrRampupKimg)
        (self.emaHalfLifeKimg, self.emaRampupRatio, self.seed) = (emaHalfLifeKimg, emaRampupRatio, seed)
        (self.tickKimg, self.loss) = (tickKimg, loss)
    }

    public var patchSchedule: PatchSchedule { PatchSchedule(resolution: resolution, realP: realP, kind: schedule) }

    public var trainingSchedule: TrainingSchedule {
        TrainingSchedule(batch: batch, averageMultiplier: patchSchedule.averageMultiplier, learningRate: learningRate,
                         lrRampupKimg: lrRampupKimg, emaHalfLifeKimg: emaHalfLifeKimg, emaRampupRatio: emaRampupRatio,
                         totalKimg: totalKimg)
    }
}

