/// The built-in stage kinds, by YAML name. Each kind's file adds itself here.
public enum StageRegistry {
    public static let kinds: [any StageKind] = [
        ShellStage(), DatasetStage(), TrainStage(), SampleStage(),
        FeatureNetStage(), RefStatsStage(), FIDStage(), PatchStatsStage(), PatchFDStage(), TableStage(),
        DenoiseStage(), MemorizationStage(),
    ]

    public static func kind(named name: String) -> (any StageKind)? {
        kinds.first { $0.name == name }
    }
}
