import Foundation
import Testing
@testable import Engine
@testable import Stages

@Suite struct SampleStageTests {
    @Test func samplesAreADatasetArtifactIndependentOfBatch() throws {
        let root = TrainSampleSupport.tempDir("sample")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = try TrainSampleSupport.tinyDataset(in: root)
        let (train, _) = try TrainSampleSupport.train(data: data, root: root)

        func sample(_ change: (inout SampleStage.Config) -> Void) throws -> (URL, StageOutcome) {
            var config = SampleStage.Config()
            (config.numImages, config.steps, config.sChurn, config.sMin, config.sMax) = (5, 4, 5, 0.01, 10)
            change(&config)
            let ctx = TrainSampleSupport.context(name: "sample", inputs: ["train": train.outputDirectory], root: root)
            return (ctx.outputDirectory, try SampleStage().run(config, context: ctx))
        }
        let (a, outcome) = try sample { $0.batch = 5 }
        let (b, _) = try sample { $0.batch = 2 }
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: a.path)) == ["images.bin", "manifest.json", "grid.png"])
        #expect(try Data(contentsOf: a.appendingPathComponent("images.bin")) == Data(contentsOf: b.appendingPathComponent("images.bin")))
        let artifact = try DatasetArtifact.open(directory: a)
        #expect(artifact.count == 5 && artifact.resolution == 8 && artifact.channels == 3)
        #expect(outcome.metrics["evaluations_per_image"] == 7)
        let grid = try readPNG(a.appendingPathComponent("grid.png"))
        #expect(grid.width == 3 * 8 && grid.height == 2 * 8)
        // A different seed gives different images; a larger canvas works with extrapolated coordinates.
        let (c, _) = try sample { $0.seed = 1 }
        #expect(try Data(contentsOf: c.appendingPathComponent("images.bin")) != Data(contentsOf: a.appendingPathComponent("images.bin")))
        let (big, _) = try sample { ($0.resolution, $0.numImages) = (16, 2) }
        #expect(try DatasetArtifact.open(directory: big).resolution == 16)
    }

    @Test func missingModelIsNamed() throws {
        let root = TrainSampleSupport.tempDir("nomodel")
        defer { try? FileManager.default.removeItem(at: root) }
        let ctx = TrainSampleSupport.context(name: "sample", inputs: ["train": root], root: root)
        do { _ = try SampleStage().run(SampleStage.Config(), context: ctx); Issue.record("sampled without weights") }
        catch let e as StageError { #expect(e.message.contains("ema.pdt")) }
        var inverted = SampleStage.Config()
        inverted.sigmaMin = 100
        #expect(SampleStage().validate(inverted).map(\.field) == ["sigma_min"])
    }
}
