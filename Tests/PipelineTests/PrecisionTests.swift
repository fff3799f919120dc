import Engine
import Foundation
import Testing
@testable import Pipeline

/// `precision: fp32 | bf16` on train and sample: fp32 is the default and leaves the keys recorded
/// before the field existed valid; bf16 enters the key, and where the CPU has no native bf16
/// kernels it is refused at validation with the field's place, before any work.
@Suite struct PrecisionTests {
    static func pipeline(train: String = "", sample: String = "") -> String {
        """
        stages:
          data: {kind: dataset, source: png-folder, path: data/imgs, resolution: 8, channels: 1}
          train:
            kind: train
            needs: [data]
            model_channels: 8
            channel_mult: [1, 2]
            num_blocks: 1
            attention_levels: []
            batch: 2
            kimg: 0.01
            lr_rampup_kimg: 0.005
            ema_kimg: 0.005
            tick_kimg: 0.005\(train)
          sample: {kind: sample, needs: [train], num_images: 2, batch: 2, steps: 2\(sample)}
        """
    }

    @Test func fp32WrittenOutKeepsTheKeysOfTheDefault() throws {
        let f = try Fixture()
        try Reliability.writePNGFolder(f.url("data/imgs"), count: 4, size: 8)
        try f.write("pipelines/p.yaml", Self.pipeline())
        #expect(!(try f.run("pipelines/p.yaml", jobs: 1)).failed)
        try f.write("pipelines/p.yaml", Self.pipeline(train: "\n    precision: fp32", sample: ", precision: fp32"))
        let again = try f.run("pipelines/p.yaml", jobs: 1)
        #expect(again.lines.allSatisfy { $0.action == .upToDate }, "\(again.lines.map { "\($0.id) \($0.action)" })")
    }

    @Test func bf16IsRefusedWithoutNativeKernelsOrTrainsUnderItsOwnKey() throws {
        let f = try Fixture()
        try Reliability.writePNGFolder(f.url("data/imgs"), count: 4, size: 8)
        try f.write("pipelines/p.yaml", Self.pipeline(train: "\n    precision: bf16"))
        guard let reason = Precision.bf16.unsupportedReason else {
            // Native bf16: it trains and samples, under a key of its own.
            let bf16 = try f.run("pipelines/p.yaml", jobs: 1)
            #expect(!bf16.failed)
            let key = try Store(root: f.storeURL).currentKeys(scope: "pipelines/p.yaml")["train"]
            try f.write("pipelines/p.yaml", Self.pipeline())
            let fp32 = try f.run("pipelines/p.yaml", jobs: 1)
            #expect(fp32.lines.first { $0.id == "train" }?.action == .run)
            #expect(try Store(root: f.storeURL).currentKeys(scope: "pipelines/p.yaml")["train"] != key)
            return
        }
        let result = try CLITests.pdpipe(["run", "pipelines/p.yaml"], in: f.dir)
        #expect(result.status == 2)
        #expect(result.err.contains("pipelines/p.yaml:15:16:") && result.err.contains("precision") && result.err.contains(reason),
                "\(result.err)")
        let objects = f.storeURL.appendingPathComponent("objects").path
        let stored = (try? FileManager.default.contentsOfDirectory(atPath: objects)) ?? []
        #expect(stored.isEmpty, "nothing was computed: \(stored)")
    }
}
