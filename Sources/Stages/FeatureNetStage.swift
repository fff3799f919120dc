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

    public var params: [ParamSpec] {
        @Sendable func positive(_ v: ParamValue) -> String? { (v.intValue ?? 0) >= 1 ? nil : "must be a positive integer" }
        return [
            ParamSpec("name", .string, default: .string("fmnist-classifier"),
                      help: "extractor name carried by every distance computed with this network (FD_<name>)",
                      check: { v in
                          let s = v.stringValue ?? ""
                          return !s.isEmpty && s.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
                              && s != "inception-v3" ? nil : "must be a non-empty name of letters, digits, - and _ (and not inception-v3)"
                      }),
            ParamSpec("steps", .int, default: .int(1500), help: "Adam steps", check: positive),
            ParamSpec("batch_size", .int, default: .int(64), help: "images per step", check: positive),
            ParamSpec("learning_rate", .double, default: .double(1e-3), help: "Adam learning rate",
                      check: { ($0.doubleValue ?? 0) > 0 ? nil : "must be positive" }),
            ParamSpec("holdout", .int, default: .int(5000),
                      help: "test images held out of a single input dataset (at most a fifth of it)", check: positive),
            ParamSpec("seed", .int, default: .int(0), help: "initialisation and shuffling seed",
                      check: { ($0.intValue ?? -1) >= 0 ? nil : "must be a non-negative integer" }),
        ]
    }

    public func run(_ context: StageContext) throws -> StageOutcome {
        try Engine.exclusive(threads: context.engineThreads) { try compute(context) }
    }

    func compute(_ context: StageContext) throws -> StageOutcome {
        let p = context.params
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
        training.steps = p["steps"]?.intValue ?? 1500
        training.batchSize = p["batch_size"]?.intValue ?? 64
        training.learningRate = Float(p["learning_rate"]?.doubleValue ?? 1e-3)
        training.seed = UInt64(p["seed"]?.intValue ?? 0)
        let netName = p["name"]?.stringValue ?? "fmnist-classifier"
        let started = Date()
        var lastLoss = 0.0
        do {
            let emit = context.emit, cancelled = context.isCancelled
            let result = try training.train(train, test: test, holdout: p["holdout"]?.intValue ?? 5000) { step, steps, loss in
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
