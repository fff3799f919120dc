import Foundation

/// Learning-rate warm-up, EMA half-life with ramp, and counted-image bookkeeping
/// (docs/edm.md section 3, docs/patch-diffusion.md section 3). A patch counts as one image; a step counts B * m_avg images.
public struct TrainingSchedule: Sendable, Equatable, Codable {
    /// B, images per round before the patch multiplier.
    public var batch: Int
    /// m_avg of the patch schedule.
    public var averageMultiplier: Double
    public var learningRate: Double
    public var lrRampupKimg: Double
    /// EMA half-life in counted kimg.
    public var emaHalfLifeKimg: Double
    /// The EMA ramp: half-life at most `emaRampupRatio` times the counted images so far (EDM 0.05; nil = off).
    public var emaRampupRatio: Double?
    public var totalKimg: Double

    public init(batch: Int, averageMultiplier: Double, learningRate: Double, lrRampupKimg: Double,
                emaHalfLifeKimg: Double, emaRampupRatio: Double? = 0.05, totalKimg: Double) {
        (self.batch, self.averageMultiplier, self.learningRate, self.lrRampupKimg) = (batch, averageMultiplier, learningRate, lrRampupKimg)
        (self.emaHalfLifeKimg, self.emaRampupRatio, self.totalKimg) = (emaHalfLifeKimg, emaRampupRatio, totalKimg)
    }

    /// Counted images per optimiser step: B * m_avg.
    public var countedImagesPerStep: Double { Double(batch) * averageMultiplier }

    /// Steps to reach `totalKimg` counted kimg (the last step may overshoot by less than one step).
    public var totalSteps: Int { Int((totalKimg * 1000 / countedImagesPerStep).rounded(.up)) }

    /// Counted images after `step` optimiser steps (exact, so resume lands on the same number).
    public func countedImages(afterSteps step: Int) -> Double { Double(step) * countedImagesPerStep }

    /// lr * min(counted_img / (lr_rampup_kimg * 1000), 1), evaluated at the counted images before the step (as EDM does).
    public func learningRate(countedImages: Double) -> Double {
        guard lrRampupKimg > 0 else { return learningRate }
        return learningRate * min(countedImages / (lrRampupKimg * 1000), 1)
    }

    /// beta = 0.5 ^ (B m_avg / h), h = min(half-life, ratio * counted) in images. Like the learning rate it is
    /// evaluated at the counted images before the step (EDM: so the first step has lr 0 and copies the net into the EMA).
    public func emaBeta(countedImages: Double) -> Double {
        var h = emaHalfLifeKimg * 1000
        if let r = emaRampupRatio { h = min(h, r * countedImages) }
        return pow(0.5, countedImagesPerStep / max(h, 1e-8))
    }
}
