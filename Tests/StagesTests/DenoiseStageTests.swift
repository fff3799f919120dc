import Foundation
import Testing
@testable import Engine
@testable import Stages

/// The `denoise` stage: its loss equals the training loss's own computation on the same noisy full
/// images, does not depend on the batch, and places the weights on the training's trajectory.
@Suite struct DenoiseStageTests {
    @Test func lossEqualsTheTrainingLossOnFullImagesAndIgnoresTheBatch() throws {
        let root = TrainSampleSupport.tempDir("denoise")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = try TrainSampleSupport.tinyDataset(in: root)
        var config = TrainSampleSupport.tinyTrain
        config.realP = 0.5
        let (trainContext, _) = try TrainSampleSupport.train(config, data: data, root: root)
        let model = trainContext.outputDirectory

        var c = DenoiseStage.Config()
        (c.model, c.data, c.numImages, c.sigmas, c.batch) = ("train", "data", 6, [0.05, 0.7, 12], 4)
        let ctx = TrainSampleSupport.context(name: "denoise", inputs: ["train": model, "data": data], root: root)
        let metrics = try DenoiseStage().run(c, context: ctx).metrics

        // Independent path: EDMLoss (what training minimises), on the same noise, full-grid coordinates.
        let (net, _) = try SongUNet.loadEMA(model.appendingPathComponent("ema.pdt"))
        let images = try DatasetArtifact.open(directory: data).batch(indices: Array(0..<6))
        let plane = images.count / 6
        for sigma in c.sigmas {
            var noisy = images
            for k in 0..<6 {
                var rng = RandomGenerator(seed: 0, stream: UInt64(k))
                for e in (k * plane)..<((k + 1) * plane) { noisy.data[e] += Float(sigma) * rng.normal() }
            }
            let coords = PatchCoordinates.fullGrid(count: 6, size: 8, normalizingResolution: 8)
            let expected = EDMLoss().forwardBackward(net, clean: images, noisy: noisy, sigmas: Array(repeating: sigma, count: 6),
                                                     coordinates: coords)
            let got = try #require(metrics[DenoiseStage.metricName(sigma: sigma)])
            #expect(abs(got - expected) <= 1e-4 * abs(expected), "sigma \(sigma): \(got) vs \(expected)")
        }
        #expect(abs(metrics["loss_mean"]! - c.sigmas.map { metrics[DenoiseStage.metricName(sigma: $0)]! }.reduce(0, +) / 3) < 1e-12)

        c.batch = 1
        let single = try DenoiseStage().run(c, context: TrainSampleSupport.context(name: "denoise", inputs: ["train": model, "data": data], root: root))
        for sigma in c.sigmas {
            let (a, b) = (single.metrics[DenoiseStage.metricName(sigma: sigma)]!, metrics[DenoiseStage.metricName(sigma: sigma)]!)
            #expect(abs(a - b) <= 1e-5 * abs(b))
        }

        // 0.04 kimg at B = 2 with p = 0.5: steps from the weights, full images from the log's patch counts.
        let steps = try #require(metrics["steps"])
        let full = try #require(metrics["full_images"])
        var fullFromLog = 0
        let log = try String(contentsOf: model.appendingPathComponent("training_log.jsonl"), encoding: .utf8)
        for line in log.split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            fullFromLog += (object["patch_size_histogram"] as! [String: Int])["8"] ?? 0
        }
        #expect(full == Double(fullFromLog * 2) && full > 0 && full < steps * 2)
        #expect(metrics["counted_kimg"]! >= 0.04)
    }

    @Test func aDataSetOfAnotherResolutionIsAClearError() throws {
        let root = TrainSampleSupport.tempDir("denoise-bad")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = try TrainSampleSupport.tinyDataset(in: root)
        let (trainContext, _) = try TrainSampleSupport.train(data: data, root: root)
        var c = DenoiseStage.Config()
        (c.model, c.data, c.numImages) = ("train", "data", 7)
        let ctx = TrainSampleSupport.context(name: "denoise", inputs: ["train": trainContext.outputDirectory, "data": data], root: root)
        #expect(throws: StageError.self) { try DenoiseStage().run(c, context: ctx) }
        do { _ = try DenoiseStage().run(c, context: ctx) } catch let e as StageError {
            #expect(e.message == "denoise: num_images is 7 but the data set has 6 images")
        }
    }
}
