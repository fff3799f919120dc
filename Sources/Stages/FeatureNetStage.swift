import Engine
import Foundation

/// `kind: featurenet` — trains the domain feature network (a small CNN classifier) on a
/// labelled dataset artifact and saves it (`featurenet.json` + `weights.f32`). Its
/// penultimate features give FD_<name>; its test accuracy is reported as a metric.
///
/// Inputs: one dataset artifact (a seeded `holdout` of it is the test set), or two, of
/// which the one with `split: test` is the test set.
public struct FeatureNetStage: StageKind {
    public init() {}
    public var name: String { "featurenet" }
    // 2: measurements (seconds, speeds) left the artifact for the store.
    public var version: Int { 2 }
    public var engineUse: EngineUse { .instrument }

    public struct Config: StageConfig, Equatable {
        public var name = "fmnist-classifier"
        public var steps = 1500
        public var batchSize = 64
        public var learningRate = 1e-3
        public var holdout = 5000
        public var seed = 0

        public init() {}

        public static let fields: [ConfigField<Config>] = [
            .field("name", \.name, help: "extractor name carried by every distance computed with this network (FD_<name>)",
                   check: Check("letters, digits, - and _") { s in
                       !s.isEmpty && s.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" } && s != "inception-v3"
                           ? nil : "must be a non-empty name of letters, digits, - and _ (and not inception-v3)"
                   }),
            // The default 1500 steps take about a minute here; 100k is over an hour of CPU per 1500.
            .field("steps", \.steps, help: "Adam steps", check: .between(1, 100_000)),
            .field("batch_size", \.batchSize, help: "images per step", check: .between(1, 4096)),
            .field("learning_rate", \.learningRate, help: "Adam learning rate", check: .learningRate),
            .field("holdout", \.holdout, help: "test images held out of a single input dataset (at most a fifth of it)",
                   check: .between(1, 2_000_000)),
            .field("seed", \.seed, help: "initialisation and shuffling seed", check: .between(0, maxSeed)),
        ]
    }

    public func run(_ config: Config, context: StageContext) throws -> StageOutcome {
        try Engine.exclusive(threads: context.engineThreads) { try compute(config, context: context) }
    }

    func compute(_ p: Config, context: StageContext) throws -> StageOutcome {
        let datasets = try context.inputs.sorted { $0.key < $1.key }.map { (name: $0.key, artifact: try Self.openDataset($0.value, input: $0.key)) }
        let train: DatasetArtifact, test: DatasetArtifact?
        switch datasets.count {
        case 1: (train, test) = (datasets[0].artifact, nil)
        case 2:
            let tests = datasets.filter { $0.artifact.manifest.split == "test" }
            guard tests.count == 1 else {
                throw StageError("featurenet: with two dataset inputs, exactly one must be a split: test set (inputs: \(datasets.map(\.name).joined(separator: ", ")))")
            }
            test = tests[0].artifact
            train = datasets.first { $0.artifact.manifest.split != "test" }!.artifact
        default:
            throw StageError("featurenet: expects one or two dataset inputs, got \(datasets.count)")
        }
        var training = FeatureNetTraining()
        training.steps = p.steps
        training.batchSize = p.batchSize
        training.learningRate = Float(p.learningRate)
        training.seed = UInt64(p.seed)
        let netName = p.name
        let started = Date()
        var lastLoss = 0.0
        do {
            let emit = context.emit, cancelled = context.isCancelled
            let result = try training.train(train, test: test, holdout: p.holdout) { step, steps, loss in
                if cancelled() { throw StageCancelled() }
                lastLoss = loss
                if step % 10 == 0 || step == steps {
                    emit(.progress(completed: Double(step), total: Double(steps), unit: "steps", detail: String(format: "loss %.4f", loss)))
                }
            }
            try FeatureNetFile.write(result.network, name: netName, testAccuracy: result.testAccuracy, testImages: result.testCount,
                                     labelNames: train.labelNames, to: context.outputDirectory)
            let seconds = Date().timeIntervalSince(started)
            context.emit(.log(String(format: "featurenet: %@ test accuracy %.4f on %d images after %d steps (%.1f s)",
                                     netName, result.testAccuracy, result.testCount, training.steps, seconds)))
            return StageOutcome(metrics: ["test_accuracy": result.testAccuracy, "test_images": Double(result.testCount),
                                          "final_loss": lastLoss],
                                measurements: ["seconds": seconds])
        } catch let error as MetricsError {
            throw StageError("featurenet: \(error.message)")
        }
    }

    static func openDataset(_ url: URL, input: String) throws -> DatasetArtifact {
        do { return try DatasetArtifact.open(directory: url) } catch let error as DataError {
            throw StageError("input \(input): not a dataset artifact (\(error.message))")
        }
    }
}
