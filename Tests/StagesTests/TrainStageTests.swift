import Foundation
import Testing
@testable import Engine
@testable import Stages

@Suite struct TrainStageTests {
    @Test func trainsAndWritesWeightsLogAndMetrics() throws {
        let root = TrainSampleSupport.tempDir("train")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = try TrainSampleSupport.tinyDataset(in: root)
        let ctx = TrainSampleSupport.context(TrainStage(), name: "train", params: TrainSampleSupport.tinyTrain, inputs: ["dataset": data], root: root)
        let outcome = try TrainStage().run(ctx)
        let files = try FileManager.default.contentsOfDirectory(atPath: ctx.outputDirectory.path).sorted()
        #expect(files == ["config.json", "ema.pdt", "training_log.jsonl"])
        // 0.04 counted kimg at B = 2, m_avg 1.9: ceil(40 / 3.8) = 11 steps.
        #expect(outcome.metrics["steps"] == 11)
        #expect(abs(outcome.metrics["counted_kimg"]! - 11 * 3.8 / 1000) < 1e-12)
        #expect(outcome.metrics["final_loss"]!.isFinite && outcome.metrics["flops_per_counted_image"]! > 0)
        let lines = try String(contentsOf: ctx.outputDirectory.appendingPathComponent("training_log.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        #expect(lines.count >= 3)
        let last = try JSONSerialization.jsonObject(with: Data(lines.last!.utf8)) as! [String: Any]
        // Content only: speeds are measurements, reported beside the result.
        #expect(Set(last.keys) == ["kimg", "step", "loss", "learning_rate", "patch_size_histogram"])
        #expect((outcome.measurements["wall_seconds"] ?? 0) > 0 && outcome.metrics["wall_seconds"] == nil)
        let weights = try TensorArchive.read(ctx.outputDirectory.appendingPathComponent("ema.pdt"))
        let meta = try JSONDecoder().decode(EMAWeightsMetadata.self, from: weights.metadata)
        #expect(meta.network.imageChannels == 3 && meta.network.coordinates && meta.resolution == 8)
    }

    @Test func resumesAfterInterruptToTheSameCountedKimg() throws {
        let root = TrainSampleSupport.tempDir("resume")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = try TrainSampleSupport.tinyDataset(in: root)
        let cancel = CancelAfter(5)
        let first = TrainSampleSupport.context(TrainStage(), name: "train", params: TrainSampleSupport.tinyTrain, inputs: ["d": data],
                                               root: root, isCancelled: { cancel() })
        #expect(throws: StageCancelled.self) { _ = try TrainStage().run(first) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: first.outputDirectory.path).isEmpty, "no outputs when interrupted")
        var second = TrainSampleSupport.context(TrainStage(), name: "train", params: TrainSampleSupport.tinyTrain, inputs: ["d": data], root: root)
        second.workDirectory = first.workDirectory
        let resumed = try TrainStage().run(second)
        let freshContext = TrainSampleSupport.context(TrainStage(), name: "train", params: TrainSampleSupport.tinyTrain,
                                                      inputs: ["d": data], root: root, workTag: "fresh")
        let fresh = try TrainStage().run(freshContext)
        #expect(resumed.metrics["counted_kimg"] == fresh.metrics["counted_kimg"])
        #expect(resumed.metrics["final_loss"] == fresh.metrics["final_loss"])
        let a = try Data(contentsOf: second.outputDirectory.appendingPathComponent("ema.pdt"))
        let b = try Data(contentsOf: freshContext.outputDirectory.appendingPathComponent("ema.pdt"))
        #expect(a == b, "the resumed run's EMA weights are byte-identical to an uninterrupted run's")
    }

    @Test func nonFiniteLossFailsNamingTheStep() throws {
        let root = TrainSampleSupport.tempDir("nan")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = try TrainSampleSupport.tinyDataset(in: root)
        var params = TrainSampleSupport.tinyTrain
        params["lr"] = .double(1e36)
        params["lr_rampup_kimg"] = .double(0)
        let ctx = TrainSampleSupport.context(TrainStage(), name: "train", params: params, inputs: ["d": data], root: root)
        do {
            _ = try TrainStage().run(ctx)
            Issue.record("finished with lr 1e36")
        } catch let e as StageError {
            #expect(e.message.contains("non-finite loss") && e.message.contains("step"), "\(e.message)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: ctx.outputDirectory.path).isEmpty)
    }

    @Test func badInputsAreNamed() throws {
        let root = TrainSampleSupport.tempDir("bad")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = try TrainSampleSupport.tinyDataset(in: root)
        var params = TrainSampleSupport.tinyTrain
        params["data"] = .string("missing")
        #expect(throws: StageError.self) {
            _ = try TrainStage().run(TrainSampleSupport.context(TrainStage(), name: "train", params: params, inputs: ["d": data], root: root))
        }
        // Patch sizes 2, 4, 8 with three halvings (divisor 4): R/4 = 2 is not a multiple of 4.
        var deep = TrainSampleSupport.tinyTrain
        deep["channel_mult"] = .list([.int(1), .int(1), .int(1)])
        do {
            _ = try TrainStage().run(TrainSampleSupport.context(TrainStage(), name: "train", params: deep, inputs: ["d": data], root: root))
            Issue.record("trained with patches not divisible by the downsampling")
        } catch let e as StageError { #expect(e.message.contains("resolution")) }
        // Attention at a level that does not exist is caught by validate.
        let problems = TrainStage().validate(TrainSampleSupport.params(TrainStage(), ["attention_levels": .list([.int(5)])]))
        #expect(problems.map(\.field) == ["attention_levels"])
    }
}
