import Foundation
import Testing
import GRDB
@testable import Pipeline
import Stages

/// Training longer continues a recorded shorter run instead of starting over, and ends with the
/// same bytes as training to the longer total from scratch; snapshots give `sample` any point.
@Suite struct ExtensionTests {
    static func writeProject(_ f: Fixture, schedule: String = "stochastic", extraStage: String = "") throws {
        try Reliability.writePNGFolder(f.url("data/imgs"), count: 6, size: 8)
        try f.write("pipelines/p.yaml", """
            params:
              train: {kimg: 0.02}
              sample: {at_kimg: 0}
            stages:
              data: {kind: dataset, source: png-folder, path: data/imgs, resolution: 8, channels: 1}
              train:
                kind: train
                needs: [data]
                schedule: \(schedule)
                model_channels: 8
                channel_mult: [1, 2]
                num_blocks: 1
                attention_levels: [1]
                dropout: 0.1
                batch: 2
                lr: 0.002
                lr_rampup_kimg: 0.01
                ema_kimg: 0.01
                tick_kimg: 0.015
                snapshot_kimg: 0.01
              sample: {kind: sample, needs: [train], num_images: 4, batch: 4, steps: 2}
              \(extraStage)
            """)
    }

    static func artifact(_ f: Fixture, _ cell: String) throws -> String? {
        let store = try Store(root: f.storeURL)
        return try store.currentKeys(scope: "pipelines/p.yaml")[cell].flatMap { try store.result(forKey: $0)?.artifact }
    }

    @Test func longerKimgExtendsTheRecordedRunAndEqualsTrainingFromScratch() throws {
        let f = try Fixture()
        try Self.writeProject(f)
        #expect(!(try f.run("pipelines/p.yaml", jobs: 1)).failed)
        let short = try #require(try Self.artifact(f, "train"))

        let status = try CLITests.pdpipe(["status", "pipelines/p.yaml", "-S", "train.kimg=0.045"], in: f.dir)
        #expect(status.out.contains("EXTEND train (from 0.02 kimg (key "), "\(status.out)")
        #expect(status.out.contains("RUN sample (upstream `train` will run)"), "\(status.out)")
        let run = try CLITests.pdpipe(["run", "pipelines/p.yaml", "-S", "train.kimg=0.045"], in: f.dir)
        #expect(run.status == 0 && run.out.contains("EXTEND train (from 0.02 kimg"), "\(run.out)")
        #expect(run.out.contains("1 ran, 1 extended"), "\(run.out)")
        let extended = try #require(try Self.artifact(f, "train"))
        #expect(extended != short)
        // Measurements: the wall seconds at every snapshot, those of the continued run included.
        let store0 = try Store(root: f.storeURL)
        let trainKey = try #require(try store0.currentKeys(scope: "pipelines/p.yaml")["train"])
        let measured = try #require(try store0.result(forKey: trainKey)).measurements
        let times = ["0.01", "0.02", "0.03", "0.04"].map { measured["wall_seconds_at.\($0)"] ?? 0 }
        #expect(times.allSatisfy { $0 > 0 } && times == times.sorted(), "\(measured)")

        // The same key computed from scratch (forced): the same bytes, snapshots and log included.
        let scratch = try f.run("pipelines/p.yaml", overrides: ["train.kimg=0.045"], force: ["train"], jobs: 1)
        #expect(scratch.lines.first { $0.id == "train" }?.action == .run)
        #expect(try Self.artifact(f, "train") == extended)
        let object = try Store(root: f.storeURL).objectURL(extended)
        let snapshots = try FileManager.default.contentsOfDirectory(atPath: object.appendingPathComponent("snapshots").path).sorted()
        #expect(snapshots == ["ema-0.01.pdt", "ema-0.02.pdt", "ema-0.03.pdt", "ema-0.04.pdt"])

        // Measurements: the extension's wall seconds include the shorter run's.
        let store = try Store(root: f.storeURL)
        let results = try store.results(forKeys: [try #require(try store.currentKeys(scope: "pipelines/p.yaml")["train"])])
        #expect((results.values.first?.measurements["wall_seconds_at.0.01"] ?? 0) > 0)
    }

    @Test func progressiveScheduleIsNotExtendedAndSaysWhy() throws {
        let f = try Fixture()
        try Self.writeProject(f, schedule: "progressive")
        #expect(!(try f.run("pipelines/p.yaml", jobs: 1)).failed)
        let status = try CLITests.pdpipe(["status", "pipelines/p.yaml", "-S", "train.kimg=0.03"], in: f.dir)
        #expect(status.out.contains("RUN train (changed: field.kimg, param.train.kimg; not extended from 0.02 kimg (key "), "\(status.out)")
        #expect(status.out.contains("the progressive schedule's patch sizes depend on the total kimg"), "\(status.out)")
    }

    @Test func sampleReadsTheSnapshotAtKimgAndNamesTheAvailableOnes() throws {
        let f = try Fixture()
        try Self.writeProject(f)
        #expect(!(try f.run("pipelines/p.yaml", jobs: 1)).failed)
        let final = try #require(try Self.artifact(f, "sample"))
        #expect(!(try f.run("pipelines/p.yaml", overrides: ["sample.at_kimg=0.01"], jobs: 1)).failed)
        let early = try #require(try Self.artifact(f, "sample"))
        #expect(early != final)
        // The snapshot at the final kimg holds the final weights: the same samples.
        #expect(!(try f.run("pipelines/p.yaml", overrides: ["sample.at_kimg=0.02"], jobs: 1)).failed)
        let manifest = try String(contentsOf: try Store(root: f.storeURL).objectURL(try #require(try Self.artifact(f, "sample")))
            .appendingPathComponent("manifest.json"), encoding: .utf8)
        #expect(manifest.contains("ema-0.02.pdt"))

        let missing = try CLITests.pdpipe(["run", "pipelines/p.yaml", "-S", "sample.at_kimg=0.5"], in: f.dir)
        #expect(missing.status == 1)
        #expect(missing.out.contains("the training has no snapshot at 0.5 kimg (snapshots: 0.01, 0.02)"), "\(missing.out)")
    }

    /// A sample at a snapshot keys on that snapshot file, not on the whole training artifact: an
    /// extension that keeps the snapshot leaves it up to date, while a sample of the final weights reruns.
    @Test func snapshotSamplesStayUpToDateWhenTheTrainingIsExtended() throws {
        let f = try Fixture()
        try Self.writeProject(f)
        #expect(!(try f.run("pipelines/p.yaml", overrides: ["sample.at_kimg=0.01"], jobs: 1)).failed)
        let early = try #require(try Self.artifact(f, "sample"))
        // Known before train runs: the extension keeps the shorter run's snapshot, which the sample reads.
        let plan = try f.plan("pipelines/p.yaml", overrides: ["sample.at_kimg=0.01", "train.kimg=0.045"])
        #expect(plan["train"] == .extend && plan["sample"] == .upToDate)
        let status = try CLITests.pdpipe(["status", "pipelines/p.yaml", "-S", "sample.at_kimg=0.01", "-S", "train.kimg=0.045"], in: f.dir)
        #expect(status.out.contains("UP-TO-DATE sample (after `train` extends: the files it reads are its shorter run's)"), "\(status.out)")
        #expect(status.out.contains("1 to run, 0 to restore, 2 up-to-date"), "\(status.out)")
        // A snapshot the shorter run does not hold is not known before train runs.
        let later = try f.plan("pipelines/p.yaml", overrides: ["sample.at_kimg=0.04", "train.kimg=0.045"])
        #expect(later["sample"] == .run)
        let run = try f.run("pipelines/p.yaml", overrides: ["sample.at_kimg=0.01", "train.kimg=0.045"], jobs: 1)
        #expect(run.lines.first { $0.id == "train" }?.action == .extend)
        #expect(run.lines.first { $0.id == "sample" }?.action == .upToDate, "\(run.lines.map { ($0.id, $0.action) })")
        #expect(try Self.artifact(f, "sample") == early)
        let now = try f.plan("pipelines/p.yaml", overrides: ["sample.at_kimg=0.01", "train.kimg=0.045"])
        #expect(now["sample"] == .upToDate && now["train"] == .upToDate)
        // The final weights did change: their sample is computed.
        let final = try f.run("pipelines/p.yaml", overrides: ["train.kimg=0.045"], jobs: 1)
        #expect(final.lines.first { $0.id == "sample" }?.action == .run)
    }

    /// Only files the extension keeps (snapshots up to the old kimg) are known before it runs: a
    /// denoise stage at the same snapshot also reads the training log and config, which change.
    @Test func aConsumerOfTheTrainingLogIsNotDecidedBeforeTheExtension() throws {
        let f = try Fixture()
        try Self.writeProject(f, extraStage: "denoise: {kind: denoise, needs: [train, data], model: train, data: data, "
                                  + "at_kimg: 0.01, sigmas: [1], num_images: 2, batch: 2}")
        let settings = ["sample.at_kimg=0.01", "train.kimg=0.045"]
        #expect(!(try f.run("pipelines/p.yaml", overrides: ["sample.at_kimg=0.01"], jobs: 1)).failed)
        let plan = try f.plan("pipelines/p.yaml", overrides: settings)
        #expect(plan["train"] == .extend && plan["sample"] == .upToDate && plan["denoise"] == .run)
        let run = try f.run("pipelines/p.yaml", overrides: settings, jobs: 1)
        #expect(run.lines.first { $0.id == "sample" }?.action == .upToDate)
        #expect(run.lines.first { $0.id == "denoise" }?.action == .run, "\(run.lines.map { ($0.id, $0.action) })")
        #expect(TrainStage().extensionKeeps("snapshots/ema-0.02.pdt", fromBudget: 0.02))
        #expect(!TrainStage().extensionKeeps("snapshots/ema-0.03.pdt", fromBudget: 0.02))
        #expect(!TrainStage().extensionKeeps("training_log.jsonl", fromBudget: 0.02))
    }

    /// A YAML `kimg: 40` reaches the field as 40.0 and the param as 40: both leave the lineage, so
    /// runs of 40 and 80 whole kimg share it (they did not before v4, and 80 retrained from zero).
    @Test func wholeNumberBudgetsShareALineage() throws {
        func components(_ kimg: Int) -> [String: String] {
            ["kind": "\"train\"", "field.kimg": "\(Double(kimg))", "param.train.kimg": "\(kimg)", "param.train.lr": "0.002",
             "field.seed": "0"]
        }
        let short = StageKey(components: components(40), budgetField: "kimg")
        let long = StageKey(components: components(80), budgetField: "kimg")
        #expect(short.budget == 40 && long.budget == 80)
        #expect(short.lineage != nil && short.lineage == long.lineage)
        #expect(short.key != long.key)
        // Any other change still separates lineages.
        var other = components(80); other["param.train.lr"] = "0.001"
        #expect(StageKey(components: other, budgetField: "kimg").lineage != short.lineage)
    }

    /// Stores written before v4 recorded the old lineage; opening one repairs it from the stored
    /// components, and leaves the key alone.
    @Test func openingAnOlderStoreRepairsItsLineages() throws {
        let f = try Fixture()
        let root = f.storeURL
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let components = ["kind": "\"train\"", "field.kimg": "40.0", "param.train.kimg": "40", "field.seed": "0"]
        let queue = try DatabaseQueue(path: root.appendingPathComponent("pdpipe.sqlite").path)
        try Store.migrator.migrate(queue, upTo: "v3-run-owner")
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO results (key, stage, cell_id, artifact, metrics, components, seconds, run_id, created_at, lineage, budget)
                VALUES ('k40', 'train', 'train', 'abc', '{}', ?, 1, 'r', 0, 'old-rule', 40)
                """, arguments: [String(decoding: try JSONEncoder().encode(components), as: UTF8.self)])
        }
        try queue.close()
        let store = try Store(root: root)
        let repaired = try #require(try store.result(forKey: "k40"))
        let expected = StageKey(components: components, budgetField: "kimg")
        #expect(repaired.lineage == expected.lineage && repaired.budget == 40 && repaired.key == "k40")
        var longer = components; longer["field.kimg"] = "80.0"; longer["param.train.kimg"] = "80"
        #expect(StageKey(components: longer, budgetField: "kimg").lineage == repaired.lineage)
    }
}
