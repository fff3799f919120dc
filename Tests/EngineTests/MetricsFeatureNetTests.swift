import Foundation
import Testing
@testable import Engine

@Suite struct MetricsFeatureNetTests {
    @Test func crossEntropyGradientMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 4)
        let logits = Tensor(randomNormal: [3, 5], scale: 2, using: &rng)
        let labels = [4, 0, 2]
        let (loss, grad) = softmaxCrossEntropy(logits: logits, labels: labels)
        // Closed form for one row: log Σ exp − z_label.
        let row0 = logits.data[0..<5].map { Double($0) }
        let lse0 = log(row0.map { exp($0) }.reduce(0, +))
        let row = (0..<3).map { i in (0..<5).map { Double(logits.data[i * 5 + $0]) } }
        let expected = (0..<3).map { i in log(row[i].map { exp($0) }.reduce(0, +)) - row[i][labels[i]] }.reduce(0, +) / 3
        #expect(abs(loss - expected) < 1e-5 && lse0 > 0)
        for k in [0, 4, 7, 14] {
            var plus = logits, minus = logits
            plus.data[k] += 1e-2; minus.data[k] -= 1e-2
            let fd = (softmaxCrossEntropy(logits: plus, labels: labels).loss - softmaxCrossEntropy(logits: minus, labels: labels).loss) / 2e-2
            #expect(abs(fd - Double(grad.data[k])) < 1e-3, "logit \(k)")
        }
    }

    @Test func networkGradientMatchesFiniteDifferences() {
        let net = ConvFeatureNet(.init(channels: 1, resolution: 8, classes: 3), seed: 1)
        var rng = RandomGenerator(seed: 2)
        let x = Tensor(randomNormal: [2, 1, 8, 8], using: &rng)
        let labels = [0, 2]
        func loss() -> Double { softmaxCrossEntropy(logits: net.logits(x), labels: labels).loss }
        net.zeroGrad()
        net.backward(softmaxCrossEntropy(logits: net.logits(x), labels: labels).gradient)
        // One entry of every parameter tensor, by central differences in Float32.
        for (name, p) in net.namedParameters() {
            let k = p.value.count / 2
            let saved = p.value.data[k], h: Float = 1e-2
            p.value.data[k] = saved + h; let up = loss()
            p.value.data[k] = saved - h; let down = loss()
            p.value.data[k] = saved
            let numeric = (up - down) / Double(2 * h), analytic = Double(p.grad.data[k])
            #expect(abs(numeric - analytic) < 2e-3 + 0.05 * abs(analytic), "\(name)[\(k)]: numeric \(numeric), analytic \(analytic)")
        }
    }

    @Test func trainsToHighAccuracyAndRoundTripsThroughFiles() throws {
        let dir = try MetricsPythonReference.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (train, trainLabels) = MetricsSyntheticImages.patterns(300, seed: 1)
        let (test, testLabels) = MetricsSyntheticImages.patterns(90, seed: 2)
        try MetricsSyntheticImages.writeArtifact(train, labels: trainLabels, to: dir.appendingPathComponent("train"))
        try MetricsSyntheticImages.writeArtifact(test, labels: testLabels, split: "test", to: dir.appendingPathComponent("test"))
        var training = FeatureNetTraining()
        training.steps = 60
        training.batchSize = 32
        training.learningRate = 3e-3
        let trainSet = try DatasetArtifact.open(directory: dir.appendingPathComponent("train"))
        let testSet = try DatasetArtifact.open(directory: dir.appendingPathComponent("test"))
        let untrained = FeatureNetTraining.accuracy(ConvFeatureNet(.init(channels: 1, resolution: 16, classes: 3), seed: 0), testSet, indices: Array(0..<90))
        let result = try training.train(trainSet, test: testSet)
        #expect(result.testCount == 90)
        #expect(result.testAccuracy > 0.9, "accuracy \(result.testAccuracy) (untrained \(untrained))")
        let out = dir.appendingPathComponent("net")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try FeatureNetFile.write(result.network, name: "pattern-classifier", testAccuracy: result.testAccuracy,
                                 testImages: 90, labelNames: trainSet.labelNames, to: out)
        let (file, loaded) = try FeatureNetFile.load(out)
        #expect(file.name == "pattern-classifier")
        let batch = testSet.batch(indices: [0, 1, 2])
        // Same weights -> same features (up to the rounding of the BLAS kernel in use).
        let (f1, f2) = (loaded.features(batch).data, result.network.features(batch).data)
        let scale = f2.map(abs).max()!
        #expect(zip(f1, f2).allSatisfy { abs($0 - $1) <= 1e-5 * scale } && scale > 0)
    }

    /// FD under the random CNN, and under a briefly trained classifier, ranks
    /// real < blurred < noise against reference statistics of other real images.
    @Test func extractorsRankRealBelowBlurredBelowNoise() throws {
        let (reference, labels) = MetricsSyntheticImages.patterns(600, seed: 10)
        let real = MetricsSyntheticImages.patterns(300, seed: 11).images
        let blurred = MetricsSyntheticImages.blurred(MetricsSyntheticImages.patterns(300, seed: 12).images)
        let noise = MetricsSyntheticImages.noise([300, 1, 16, 16], seed: 13)

        let dir = try MetricsPythonReference.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try MetricsSyntheticImages.writeArtifact(reference, labels: labels, to: dir)
        var training = FeatureNetTraining()
        (training.steps, training.batchSize, training.learningRate) = (60, 32, 3e-3)
        let classifier = try training.train(try DatasetArtifact.open(directory: dir), test: nil, holdout: 60).network

        for extractor in [try ConvNetFeatureExtractor.randomCNN(channels: 1, resolution: 16, seed: 0) as any FeatureExtractor,
                          ConvNetFeatureExtractor(name: "pattern-classifier", network: classifier)] {
            func stats(_ t: Tensor) -> FeatureMoments { var m = FeatureMoments(dimension: extractor.dimension); m.add(extractor.features(t)); return m }
            let ref = stats(reference)
            func fd(_ t: Tensor) throws -> Double {
                let s = stats(t)
                return try frechetDistance(mean1: s.mean, covariance1: s.covariance(), mean2: ref.mean, covariance2: ref.covariance())
            }
            let (dReal, dBlur, dNoise) = (try fd(real), try fd(blurred), try fd(noise))
            #expect(dReal < dBlur && dBlur < dNoise, "\(extractor.name): real \(dReal), blurred \(dBlur), noise \(dNoise)")
        }
    }
}
