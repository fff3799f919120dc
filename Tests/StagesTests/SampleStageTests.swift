import Foundation
import Testing
@testable import Engine
@testable import Stages

@Suite struct SampleStageTests {
    @Test func samplesAreADatasetArtifactIndependentOfBatch() throws {
        let root = TrainSampleSupport.tempDir("sample")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = try TrainSampleSupport.tinyDataset(in: root)
        let train = TrainSampleSupport.context(TrainStage(), name: "train", params: TrainSampleSupport.tinyTrain, inputs: ["d": data], root: root)
        _ = try TrainStage().run(train)

        func sample(_ extra: [String: ParamValue]) throws -> (URL, StageOutcome) {
            var params: [String: ParamValue] = ["num_images": .int(5), "steps": .int(4), "s_churn": .double(5), "s_min": .double(0.01), "s_max": .double(10)]
            for (k, v) in extra { params[k] = v }
            let ctx = TrainSampleSupport.context(SampleStage(), name: "sample", params: params, inputs: ["train": train.outputDirectory], root: root)
            return (ctx.outputDirectory, try SampleStage().run(ctx))
        }
        let (a, outcome) = try sample(["batch": .int(5)])
        let (b, _) = try sample(["batch": .int(2)])
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: a.path)) == ["images.bin", "manifest.json", "grid.png"])
        #expect(try Data(contentsOf: a.appendingPathComponent("images.bin")) == Data(contentsOf: b.appendingPathComponent("images.bin")))
        let artifact = try DatasetArtifact.open(directory: a)
        #expect(artifact.count == 5 && artifact.resolution == 8 && artifact.channels == 3)
        #expect(outcome.metrics["evaluations_per_image"] == 7)
        let grid = try readPNG(a.appendingPathComponent("grid.png"))
        #expect(grid.width == 3 * 8 && grid.height == 2 * 8)
        // A different seed gives different images; a larger canvas works with extrapolated coordinates.
        let (c, _) = try sample(["seed": .int(1)])
        #expect(try Data(contentsOf: c.appendingPathComponent("images.bin")) != Data(contentsOf: a.appendingPathComponent("images.bin")))
        let (big, _) = try sample(["resolution": .int(16), "num_images": .int(2)])
        #expect(try DatasetArtifact.open(directory: big).resolution == 16)
    }

    @Test func missingModelIsNamed() throws {
        let root = TrainSampleSupport.tempDir("nomodel")
        defer { try? FileManager.default.removeItem(at: root) }
        let ctx = TrainSampleSupport.context(SampleStage(), name: "sample", params: [:], inputs: ["train": root], root: root)
        do { _ = try SampleStage().run(ctx); Issue.record("sampled without weights") }
        catch let e as StageError { #expect(e.message.contains("ema.pdt")) }
        #expect(SampleStage().validate(TrainSampleSupport.params(SampleStage(), ["sigma_min": .double(100)])).map(\.field) == ["sigma_min"])
    }
}
