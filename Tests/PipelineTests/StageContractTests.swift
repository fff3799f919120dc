import Foundation
import Testing
@testable import Pipeline

/// The stage contract: an artifact holds content only, so recomputing a key gives the same
/// digest for every kind, and early cutoff holds below every stage. Measurements (wall seconds,
/// speeds) live in the store beside the result.
@Suite struct StageContractTests {
    /// Every engine kind plus a table, at tiny settings: 20 labelled 16x16 images in two classes.
    static func writeProject(_ f: Fixture) throws {
        try Reliability.writePNGFolder(f.url("data/classes/a"), count: 10, size: 16)
        try Reliability.writePNGFolder(f.url("data/classes/b"), count: 10, size: 16)
        try f.write("pipelines/all.yaml", """
            stages:
              data: {kind: dataset, source: png-folder, path: data/classes, resolution: 16, channels: 1}
              featurenet: {kind: featurenet, needs: [data], name: tiny-net, steps: 4, batch_size: 4, holdout: 4}
              refstats: {kind: refstats, needs: [data, featurenet], kid_features: 16, swd_images: 4, batch_size: 4}
              train:
                kind: train
                needs: [data]
                model_channels: 8
                channel_mult: [1, 2]
                num_blocks: 1
                attention_levels: [1]
                batch: 2
                kimg: 0.02
                lr: 0.002
                lr_rampup_kimg: 0.01
                ema_kimg: 0.01
                tick_kimg: 0.005
                checkpoint_kimg: 0.01
              sample: {kind: sample, needs: [train], num_images: 6, batch: 4, steps: 3}
              fid: {kind: fid, needs: [sample, refstats], kid_subsets: 2, kid_subset_size: 3, batch_size: 3}
            """)
        try f.write("experiments/all.yaml", """
            pipeline: ../pipelines/all.yaml
            tables:
              summary:
                columns:
                  FD: fid.FD_tiny-net
                  train seconds: train.wall_seconds
            """)
    }

    static let engineStages = ["data", "featurenet", "refstats", "train", "sample", "fid"]

    /// Artifact digest of each instance in a run's summary.
    static func artifacts(_ f: Fixture) throws -> [String: String] {
        let store = try Store(root: f.storeURL)
        var out: [String: String] = [:]
        for (cell, key) in try store.currentKeys(scope: "experiments/all.yaml") {
            out[cell] = try store.result(forKey: key)?.artifact
        }
        return out
    }

    static func actions(_ s: RunSummary) -> [String: StageAction] {
        Dictionary(uniqueKeysWithValues: s.lines.map { ($0.id, $0.action) })
    }

    @Test func recomputingEveryKindGivesTheSameDigestAndMeasurementsStayOutOfArtifacts() throws {
        let f = try Fixture()
        try Self.writeProject(f)
        let first = try f.run("experiments/all.yaml", jobs: 1)
        #expect(!first.failed, "\(first.lines.map { "\($0.id) \($0.action) \($0.reason)" })")
        let before = try Self.artifacts(f)
        #expect(Set(before.keys) == Set(Self.engineStages + ["summary"]))

        // Every engine kind recomputed (same key, same thread count): the same bytes.
        let forced = try f.run("experiments/all.yaml", force: Self.engineStages, jobs: 1)
        for id in Self.engineStages { #expect(Self.actions(forced)[id] == .run, "\(id) was recomputed") }
        let after = try Self.artifacts(f)
        for id in Self.engineStages { #expect(after[id] == before[id], "\(id): recomputation changed the artifact") }

        // The table reruns (the train measurements it shows changed) and recomputing it with the
        // same measurements gives the same bytes.
        #expect(Self.actions(forced)["summary"] == .run)
        let table = try Self.artifacts(f)["summary"]
        let again = try f.run("experiments/all.yaml", force: ["summary"], jobs: 1)
        #expect(Self.actions(again)["summary"] == .run)
        #expect(try Self.artifacts(f)["summary"] == table)

        // Measurements are in the store, not in the artifact; the table shows them.
        let store = try Store(root: f.storeURL)
        let trainKey = try #require(try store.currentKeys(scope: "experiments/all.yaml")["train"])
        let train = try #require(try store.result(forKey: trainKey))
        #expect((train.measurements["wall_seconds"] ?? 0) > 0)
        #expect(train.metrics["wall_seconds"] == nil && train.environment["host"] != nil)
        #expect(train.environment["backend"].map { $0.hasPrefix("openblas") || $0.hasPrefix("onednn") } == true && !(train.environment["cpu"] ?? "").isEmpty)
        let object = store.objectURL(train.artifact)
        for file in ["metrics.json", "training_log.jsonl", "config.json"] {
            let text = try String(contentsOf: object.appendingPathComponent(file), encoding: .utf8)
            #expect(!text.contains("second") && !text.contains("checkpoint") && !text.contains("/"), "\(file): \(text.prefix(200))")
        }
        let tableJSON = try String(contentsOf: store.objectURL(table!).appendingPathComponent("table.json"), encoding: .utf8)
        let seconds = train.measurements["wall_seconds"]!
        #expect(tableJSON.contains(String(seconds).prefix(6)), "table shows the recorded wall seconds \(seconds): \(tableJSON)")
        let sample = try #require(try Self.artifacts(f)["sample"])
        let manifest = try String(contentsOf: store.objectURL(sample).appendingPathComponent("manifest.json"), encoding: .utf8)
        #expect(!manifest.contains(f.storeURL.path), "a sample manifest names no store path")
    }

    @Test func earlyCutoffBelowEngineStages() throws {
        let f = try Fixture()
        try Self.writeProject(f)
        #expect(!(try f.run("experiments/all.yaml", jobs: 1)).failed)

        // The dataset rebuilt from the same images: nothing downstream recomputes.
        let data = Self.actions(try f.run("experiments/all.yaml", force: ["data"], jobs: 1))
        #expect(data["data"] == .run)
        for id in ["featurenet", "refstats", "train", "sample", "fid", "summary"] { #expect(data[id] == .upToDate, "\(id): \(data[id]!)") }

        // Training recomputed with the same seed: sampling and evaluation stay up to date. (The
        // table shows the new wall seconds, so it reruns.)
        let train = Self.actions(try f.run("experiments/all.yaml", force: ["train"], jobs: 1))
        #expect(train["train"] == .run)
        for id in ["data", "featurenet", "refstats", "sample", "fid"] { #expect(train[id] == .upToDate, "\(id): \(train[id]!)") }
    }

    /// `status` (plan), `why` (explain), `run -n` and `run` decide every stage alike, on a sweep with
    /// up-to-date, restorable and stale stages.
    @Test func statusWhyDryRunAndRunAgree() throws {
        let f = try Fixture()
        try f.writeScenario()
        try f.run("experiments/sweep.yaml")
        try f.run("experiments/sweep.yaml", overrides: ["eval.mode=slow"])
        // Back to `fast` (stored: RESTORE) with a new lr 0.3 (RUN, and its evaluate after it).
        let overrides = ["train.lr=0.1,0.3"]
        let plan = try f.plan("experiments/sweep.yaml", overrides: overrides)
        #expect(plan["train@lr=0.1"] == .upToDate && plan["evaluate@lr=0.1"] == .restore
                && plan["train@lr=0.3"] == .run && plan["evaluate@lr=0.3"] == .run, "\(plan)")
        let runner = try f.runner("experiments/sweep.yaml", overrides: overrides)
        for (id, action) in plan {
            let why = try runner.explain(id)
            #expect(why.count == 1 && why[0].action == action, "why \(id): \(why.map(\.action)) vs status \(action)")
        }
        let dry = try CLITests.pdpipe(["run", "-n", "experiments/sweep.yaml", "-S", "train.lr=0.1,0.3"], in: f.dir)
        let status = try CLITests.pdpipe(["status", "experiments/sweep.yaml", "-S", "train.lr=0.1,0.3"], in: f.dir)
        for (id, action) in plan {
            #expect(dry.out.contains("\(action.rawValue) \(id)"), "run -n: \(id) \(action)\n\(dry.out)")
            #expect(status.out.contains("\(action.rawValue) \(id)"), "status: \(id) \(action)\n\(status.out)")
        }
        let ran = Self.actions(try f.run("experiments/sweep.yaml", overrides: overrides))
        #expect(ran == plan)
    }
}
