import Foundation

/// Trains a `ConvFeatureNet` classifier on a labelled dataset artifact (Adam,
/// softmax cross-entropy, seeded shuffling) and measures its test accuracy.
public struct FeatureNetTraining: Sendable {
    public var steps = 1500
    public var batchSize = 64
    public var learningRate: Float = 1e-3
    public var seed: UInt64 = 0
    public init() {}

    /// `test` nil: `holdout` training images (seeded) are kept out of training and used as the test set.
    public func train(_ train: DatasetArtifact, test: DatasetArtifact?, holdout: Int = 5000,
                      progress: (_ step: Int, _ steps: Int, _ loss: Double) throws -> Void = { _, _, _ in })
        throws -> (network: ConvFeatureNet, testAccuracy: Double, testCount: Int) {
        let classes = train.labelNames.count
        guard classes >= 2 else {
            throw MetricsError("the feature network needs a labelled dataset; \(train.manifest.source) has \(classes) labels")
        }
        if let test, test.labelNames != train.labelNames || test.channels != train.channels || test.resolution != train.resolution {
            throw MetricsError("train and test datasets differ in labels, channels or resolution")
        }
        if let problem = ConvFeatureNet.Architecture.problem(channels: train.channels, resolution: train.resolution) {
            throw MetricsError(problem)
        }
        var rng = RandomGenerator(seed: seed)
        var trainIndices = Array(0..<train.count)
        var testIndices: [Int] = []
        if test == nil {
            trainIndices.shuffle(using: &rng)
            let n = min(holdout, train.count / 5)
            testIndices = Array(trainIndices[0..<n])
            trainIndices = Array(trainIndices[n...])
        } else {
            testIndices = Array(0..<test!.count)
        }
        let net = ConvFeatureNet(.init(channels: train.channels, resolution: train.resolution, classes: classes), seed: seed)
        let adam = Adam(parameters: net.parameters)
        var cursor = trainIndices.count
        for step in 0..<steps {
            var batch: [Int] = []
            while batch.count < batchSize {
                if cursor == trainIndices.count { trainIndices.shuffle(using: &rng); cursor = 0 }
                batch.append(trainIndices[cursor]); cursor += 1
            }
            let (loss, gradient) = softmaxCrossEntropy(logits: net.logits(train.batch(indices: batch)),
                                                       labels: batch.map(train.label(at:)))
            guard loss.isFinite else { throw MetricsError("feature-network loss is \(loss) at step \(step)") }
            net.zeroGrad()
            net.backward(gradient)
            adam.step(lr: learningRate)
            try progress(step + 1, steps, loss)
        }
        let accuracy = Self.accuracy(net, test ?? train, indices: testIndices)
        return (net, accuracy, testIndices.count)
    }

    /// Fraction of `indices` whose argmax logit is the label.
    public static func accuracy(_ net: ConvFeatureNet, _ data: DatasetArtifact, indices: [Int], batchSize: Int = 250) -> Double {
        var correct = 0
        for start in stride(from: 0, to: indices.count, by: batchSize) {
            let batch = Array(indices[start..<min(start + batchSize, indices.count)])
            let logits = net.logits(data.batch(indices: batch))
            let k = logits.shape[1]
            for (i, index) in batch.enumerated() {
                let row = logits.data[(i * k)..<((i + 1) * k)]
                if row.indices.max(by: { row[$0] < row[$1] })! - i * k == data.label(at: index) { correct += 1 }
            }
        }
        return indices.isEmpty ? 0 : Double(correct) / Double(indices.count)
    }
}
