import Engine

/// Analytic work of a planned `train` or `sample` stage, for run-time estimates before anything
/// runs (the U-Net is built from its fields only to count FLOPs; no data is read).
public enum StageCost {
    /// Training FLOPs per counted image of a `train` stage's fields on images of the given geometry.
    public static func trainingFlopsPerCountedImage(_ fields: [String: ParamValue], resolution: Int, channels: Int) -> Double? {
        guard let fields = try? TrainStage().decode(fields) else { return nil }
        let config = TrainStage.trainingConfig(fields, resolution: resolution, channels: channels)
        guard config.network.problems().isEmpty else { return nil }
        return SongUNet(config: config.network, seed: 0).trainingFlopsPerCountedImage(schedule: config.patchSchedule)
    }

    /// Forward FLOPs of one network evaluation at `resolution` for a model trained with `trainFields`.
    public static func forwardFlops(trainFields: [String: ParamValue], resolution: Int, channels: Int) -> Double? {
        guard let fields = try? TrainStage().decode(trainFields) else { return nil }
        let network = TrainStage.network(fields, imageChannels: channels)
        guard network.problems().isEmpty else { return nil }
        return SongUNet(config: network, seed: 0).forwardFlops(height: resolution, width: resolution)
    }
}
