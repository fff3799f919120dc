import Foundation
import Testing
@testable import Engine
@testable import Stages

@Suite struct TrainStageTests {
    @Test func trainsAndWritesWeightsLogAndMetrics() throws {
        let root = TrainSampleSupport.tempDir("train")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = try TrainSampleSupport.tinyDataset(in: root)
        let (ctx, outcome) = try TrainSampleSupport.train(data: data, root: root, input: "dataset")
        let files = try FileManager.default.contentsOfDirectory(atPath: ctx.outputDirectory.path).sorted()
        #expect(files == ["config.json", "ema.pdt", "state.pdt", "training_log.jsonl"])
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
        let first = TrainSampleSupport.context(name: "train", inputs: ["d": data], root: root, isCancelled: { cancel() })
        #expect(throws: StageCancelled.self) { _ = try TrainStage().run(TrainSampleSupport.tinyTrain, context: first) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: first.outputDirectory.path).isEmpty, "no outputs when interrupted")
        var second = TrainSampleSupport.context(name: "train", inputs: ["d": data], root: root)
        second.workDirectory = first.workDirectory
        let resumed = try TrainStage().run(TrainSampleSupport.tinyTrain, context: second)
        let (freshContext, fresh) = try TrainSampleSupport.train(data: data, root: root, workTag: "fresh")
        #expect(resumed.metrics["counted_kimg"] == fresh.metrics["counted_kimg"])
        #expect(resumed.metrics["final_loss"] == fresh.metrics["final_loss"])
        let a = try Data(contentsOf: second.outputDirectory.appendingPathComponent("ema.pdt"))
        let b = try Data(contentsOf: freshContext.outputDirectory.appendingPathComponent("ema.pdt"))
        #expect(a == b, "the resumed run's EMA weights are byte-identical to an uninterrupted run's")
    }

    @Test func aResumedRunKeepsTheTimesOfItsEarlierSnapshots() throws {
        let root = TrainSampleSupport.tempDir("resume-snapshots")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = try TrainSampleSupport.tinyDataset(in: root)
        var config = TrainSampleSupport.tinyTrain
        config.snapshotKimg = 0.01
        let cancel = CancelAfter(6)
        let first = TrainSampleSupport.context(name: "train", inputs: ["d": data], root: root, isCancelled: { cancel() })
        #expect(throws: StageCancelled.self) { _ = try TrainStage().run(config, context: first) }
        let before = TrainingSnapshots.list(in: first.workDirectory)
        #expect(!before.isEmpty, "the interrupted run made a snapshot before it stopped")
        var second = TrainSampleSupport.context(name: "train", inputs: ["d": data], root: root)
        second.workDirectory = first.workDirectory
        let resumed = try TrainStage().run(config, context: second)
        let (_, fresh) = try TrainSampleSupport.train(config, data: data, root: root, workTag: "fresh")
        let times = { (o: StageOutcome) in Set(o.measurements.keys.filter { $0.hasPrefix("wall_seconds_at.") }) }
        #expect(times(fresh).count == 4, "\(times(fresh).sorted())")
        #expect(times(resumed) == times(fresh), "every snapshot has its time, those before the interruption too")
    }

    @Test func nonFiniteLossFailsNamingTheStep() throws {
        let root = TrainSampleSupport.tempDir("nan")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = try TrainSampleSupport.tinyDataset(in: root)
        var config = TrainSampleSupport.tinyTrain
        (config.lr, config.lrRampupKimg) = (1e36, 0)
        let ctx = TrainSampleSupport.context(name: "train", inputs: ["d": data], root: root)
        do {
            _ = try TrainStage().run(config, context: ctx)
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
        var config = TrainSampleSupport.tinyTrain
        config.data = "missing"
        #expect(throws: StageError.self) { _ = try TrainSampleSupport.train(config, data: data, root: root) }
        // Patch sizes 2, 4, 8 with three halvings (divisor 4): R/4 = 2 is not a multiple of 4.
        var deep = TrainSampleSupport.tinyTrain
        deep.channelMult = [1, 1, 1]
        do {
            _ = try TrainSampleSupport.train(deep, data: data, root: root)
            Issue.record("trained with patches not divisible by the downsampling")
        } catch let e as StageError { #expect(e.message.contains("resolution")) }
        // Attention at a level that does not exist is caught by validate.
        var attention = TrainStage.Config()
        attention.attentionLevels = [5]
        #expect(TrainStage().validate(attention).map(\.field) == ["attention_levels"])
    }

    /// `checkpoint_kimg` is operational (kept out of the stage key): it must not change a byte of the artifact.
    @Test func checkpointIntervalDoesNotChangeTheArtifact() throws {
        let root = TrainSampleSupport.tempDir("ckpt")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = try TrainSampleSupport.tinyDataset(in: root)
        var never = TrainSampleSupport.tinyTrain
        never.checkpointKimg = 0
        let (often, oftenOutcome) = try TrainSampleSupport.train(data: data, root: root, workTag: "often")
        let (rarely, rarelyOutcome) = try TrainSampleSupport.train(never, data: data, root: root, workTag: "never")
        for file in ["ema.pdt", "config.json", "training_log.jsonl"] {
            #expect(try Data(contentsOf: often.outputDirectory.appendingPathComponent(file))
                    == Data(contentsOf: rarely.outputDirectory.appendingPathComponent(file)), "\(file)")
        }
        #expect(oftenOutcome.metrics == rarelyOutcome.metrics)
        #expect(TrainStage.Config.fields.filter(\.isOperational).map(\.name) == ["checkpoint_kimg"])
    }

    /// Defaults live in the config's property initialisers; decoding a partial field map fills them in.
    @Test func decodingFillsDefaultsAndNamesBadFields() throws {
        let kind = TrainStage()
        let config = try kind.decode(["kimg": .int(3), "batch": .double(16)])
        #expect(config.kimg == 3 && config.batch == 16 && config.realP == 0.5 && config.checkpointKimg == 5)
        #expect(kind.fields.first { $0.name == "real_p" }?.defaultValue == .double(0.5))
        #expect(kind.fields.first { $0.name == "kimg" }?.defaultValue == nil, "kimg is required")
        do {
            _ = try kind.decode(["kimg": .double(1e300), "batch": .string("many"), "real_pp": .double(0.5)])
            Issue.record("decoded an out-of-range kimg")
        } catch let e as ConfigErrors {
            #expect(e.problems.map(\.field) == ["batch", "kimg", "real_pp"])
            #expect(e.problems.map(\.reason) == [.type, .value, .unknown])
        }
        #expect(throws: ConfigErrors.self) { _ = try kind.decode([:]) }
    }
}
