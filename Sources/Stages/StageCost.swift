import Engine

/// Analytic work of a planned `train` or `sample` stage, for run-time estimates before anything
/// runs (the U-Net is built from its fields only to count FLOPs; no data is read).
public enum StageCost {
    /// Training FLOPs per counted image of a `train` stage's fields on images of the given geometry.
    public static func trainingFlopsPerCountedImage(_ fields: [String: ParamValue], resolution: Int, channels: Int) -> Double? {
        guard let config = try? TrainStage.trainingConfig(fields, resolution: resolution, channels: channels),
              config.network.problems().isEmpty else { return nil }
        return SongUNet(config: config.network, seed: 0).trainingFlopsPerCountedImage(schedule: config.patchSchedule)
    }

    /// Forward FLOPs of one network evaluation at `resolution` for a model trained with `trainFields`.
    public static func forwardFlops(trainFields: [String: ParamValue], resolution: Int, channels: Int) -> Double? {
        guard let network = try? TrainStage.network(trainFields, imageChannels: channels), network.problems().isEmpty else { return nil }
        return SongUNet(config: network, seed: 0).forwardFlops(height: resolution, width: resolution)
    }
}
