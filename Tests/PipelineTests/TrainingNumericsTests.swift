import Foundation
import Testing
@testable import Pipeline

/// Training numerics through the CLI (issue 7.6): a learning rate that makes the weights blow up
/// fails the train stage at the step where the loss stops being finite, names that step, and
/// caches nothing; rates that are not finite (in float32) are spec errors before any work.
@Suite struct TrainingNumericsTests {
    static func pipeline(lr: String) -> String {
        """
        stages:
          data:
            kind: dataset
            source: png-folder
            path: data/imgs
            resolution: 8
            channels: 3
          train:
            kind: train
            needs: [data]
            model_channels: 8
            channel_mult: [1, 2]
            num_blocks: 1
            batch: 2
            kimg: 0.05
            lr: \(lr)
            lr_rampup_kimg: 0
            checkpoint_kimg: 0.01
          after:
            kind: shell
            needs: [train]
            cmd: cksum < ${inputs.train}/ema.pdt > sum.txt
            outs: [sum.txt]
        """
    }

    @Test func blownUpWeightsFailTheStageNamingTheStepAndCacheNothing() throws {
        let f = try Fixture()
        try Reliability.writePNGFolder(f.url("data/imgs"))
        try f.write("pipelines/nan.yaml", Self.pipeline(lr: "1.0e+30"))
        let r = try CLITests.pdpipe(["run", "pipelines/nan.yaml"], in: f.dir)
        #expect(r.status == 1)
        // Step 0 runs on the initial weights (finite loss); Adam's first update moves every weight by
        // about lr * sign(g) = 1e30, so the next forward pass overflows float32: step 1.
        // (NaN's printed sign depends on the kernel that produced it.)
        #expect(["nan", "-nan", "inf", "-inf"].contains { r.out.contains("FAILED train: train: non-finite loss (\($0)) at step 1 ") }, "\(r.out)")
        #expect(r.out.contains("SKIPPED after (upstream `train` did not complete)"))
        // Nothing cached for train or after: only the dataset is recorded, and only its object stored.
        let rows = try Reliability.results(f.storeURL)
        #expect(rows.map(\.stage) == ["data"])
        let objects = try FileManager.default.contentsOfDirectory(atPath: f.storeURL.appendingPathComponent("objects").path)
        #expect(objects == rows.map(\.artifact))
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.storeURL.appendingPathComponent("tmp").path).isEmpty)
        // The stage log keeps the failure with its step, and the next status still wants to run train.
        let logs = try CLITests.pdpipe(["logs"], in: f.dir)
        #expect(logs.out.contains("failed train — train: non-finite loss"))
        let status = try CLITests.pdpipe(["status", "pipelines/nan.yaml"], in: f.dir)
        #expect(status.out.contains("RUN train (never run)"))

        // Control: the same configuration with a sane rate trains, so the failure is the rate's.
        try f.write("pipelines/ok.yaml", Self.pipeline(lr: "0.002"))
        let ok = try CLITests.pdpipe(["run", "pipelines/ok.yaml"], in: f.dir)
        #expect(ok.status == 0, "\(ok.out)")
    }

    @Test func nonFiniteRatesAreSpecErrors() throws {
        let f = try Fixture()
        try Reliability.writePNGFolder(f.url("data/imgs"))
        for (lr, message) in [(".inf", "must be positive and finite"), (".nan", "must be positive and finite"),
                              ("1.0e+39", "must be finite in float32")] {
            try f.write("pipelines/bad.yaml", Self.pipeline(lr: lr))
            let r = try CLITests.pdpipe(["run", "pipelines/bad.yaml"], in: f.dir)
            #expect(r.status == 2)
            #expect(r.err.contains("pipelines/bad.yaml:16:9: field `lr` of stage `train`: \(message)"), "\(lr): \(r.err)")
        }
        #expect(!FileManager.default.fileExists(atPath: f.storeURL.path))
    }
}
