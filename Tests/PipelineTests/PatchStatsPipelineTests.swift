import Foundation
import Stages
import Testing
@testable import Pipeline

/// The patchstats stage in pipelines: computed once per (data set, extractor, rule) and restored by
/// every other experiment, its sizes checked against the data set at spec time, and adding it (with
/// patchfd) to the project's pipeline leaves every other stage's key as it was.
@Suite struct PatchStatsPipelineTests {
    static func writeProject(_ f: Fixture) throws {
        try Reliability.writePNGFolder(f.url("data/imgs"), count: 6, size: 32)
        let common = """
            data: {kind: dataset, source: png-folder, path: data/imgs, resolution: 32, channels: 1}
              patches: {kind: patchstats, needs: [data], extractor: random-cnn, patches_per_image: 2, batch_size: 4}
            """
        try f.write("pipelines/a.yaml", """
            params: {eval: {mode: a}}
            stages:
              \(common)
              evaluate: {kind: shell, needs: [patches], params: [eval.mode], cmd: "echo $PDPIPE_STAGE >> '\(f.counter.path)'; ls ${inputs.patches} > files.txt", outs: [files.txt]}
            """)
        try f.write("pipelines/b.yaml", """
            stages:
              \(common)
              other: {kind: shell, needs: [data], cmd: "echo $PDPIPE_STAGE >> '\(f.counter.path)'; ls ${inputs.data} > files.txt", outs: [files.txt]}
            """)
        try f.write("experiments/first.yaml", "pipeline: ../pipelines/a.yaml\nmatrix:\n  eval.mode: [a, b]\n")
        try f.write("experiments/second.yaml", "pipeline: ../pipelines/b.yaml\n")
    }

    @Test func aSecondExperimentRestoresThePatchStatsInsteadOfRecomputing() throws {
        let f = try Fixture()
        try Self.writeProject(f)
        let first = try f.run("experiments/first.yaml")
        #expect(!first.failed, "\(first.lines.map { "\($0.id) \($0.action) \($0.reason)" })")
        #expect(first.lines.first { $0.id == "patches" }?.action == .run)
        #expect(try f.takeExecutions() == ["evaluate@mode=a", "evaluate@mode=b"])

        let plan = try f.plan("experiments/second.yaml")
        #expect(plan["data"] == .restore && plan["patches"] == .restore && plan["other"] == .run)
        let second = try f.run("experiments/second.yaml")
        let line = try #require(second.lines.first { $0.id == "patches" })
        #expect(line.action == .restore)
        #expect(line.key == first.lines.first { $0.id == "patches" }?.key)
        #expect(try f.takeExecutions() == ["other"])
        // Nothing stale is left in either experiment.
        #expect(try f.plan("experiments/first.yaml").values.allSatisfy { $0 == .upToDate })
    }

    @Test func sizesThatDoNotFitTheDataSetAreASpecError() throws {
        let f = try Fixture()
        try Reliability.writePNGFolder(f.url("data/imgs"), count: 2, size: 16)
        try f.write("pipelines/p.yaml", """
            stages:
              data: {kind: dataset, source: png-folder, path: data/imgs, resolution: 16}
              big: {kind: patchstats, needs: [data], sizes: [8, 32]}
              random: {kind: patchstats, needs: [data], extractor: random-cnn}
            """)
        var messages: [String] = []
        do { _ = try SpecLoader.expansion(f.url("pipelines/p.yaml")) } catch let e as SpecError {
            messages = e.diagnostics.map { $0.description.replacingOccurrences(of: f.dir.path + "/", with: "") }
        }
        #expect(messages.contains { $0.hasPrefix("pipelines/p.yaml:3:") && $0.contains("stage `big` cannot cut patches from `data` (16x16): patch size 32 does not fit") },
                "\(messages)")
        #expect(messages.contains { $0.contains("stage `random` cannot cut patches from `data` (16x16): random-cnn takes patches at their own size, which must be a multiple of 8") },
                "\(messages)")
    }

    /// The project's pipelines/fmnist.yaml with patchstats and patchfd against the same file without
    /// them: every stage instance of every experiment keeps its key (long_p's running cells included),
    /// so adding patch metrics recomputes nothing that exists.
    @Test func addingPatchStatsToTheProjectPipelineLeavesEveryOtherKeyUnchanged() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let pipeline = try String(contentsOf: repo.appendingPathComponent("pipelines/fmnist.yaml"), encoding: .utf8)
        #expect(pipeline.contains("kind: patchstats") && pipeline.contains("kind: patchfd"))
        let without = Self.removingStages(["patchstats", "patchfd"], from: pipeline)
        #expect(!without.contains("kind: patch"))
        for experiment in ["long_p", "ablate_p"] {
            var text = try String(contentsOf: repo.appendingPathComponent("experiments/\(experiment).yaml"), encoding: .utf8)
            let f = try Fixture()
            try f.write("pipelines/fmnist.yaml", pipeline)
            try f.write("pipelines/old.yaml", without)
            // Their tables have PatchFD columns, which the old pipeline cannot serve: compare the other stages.
            text = text.components(separatedBy: "\ntables:")[0] + "\n"
            try f.write("experiments/new.yaml", text)
            try f.write("experiments/old.yaml", text.replacingOccurrences(of: "../pipelines/fmnist.yaml", with: "../pipelines/old.yaml"))
            let old = try Self.keys(f, "experiments/old.yaml"), new = try Self.keys(f, "experiments/new.yaml")
            #expect(old.count > 10)
            for (id, key) in old { #expect(new[id] == key, "\(experiment): \(id) changed key") }
            #expect(Set(new.keys).subtracting(old.keys).allSatisfy { $0.hasPrefix("patchstats") || $0.hasPrefix("patchfd") })
        }
    }

    /// Every instance's key, upstream artifacts standing in as one placeholder digest (the upstream
    /// keys are compared themselves).
    static func keys(_ f: Fixture, _ file: String) throws -> [String: String] {
        let expansion = try SpecLoader.expansion(f.url(file))
        let store = try Store(root: f.storeURL)
        var out: [String: String] = [:]
        for inst in expansion.instances {
            out[inst.id] = try StageKey.compute(inst, inputDigests: inst.inputs.mapValues { _ in "upstream" },
                                                projectDirectory: f.dir, store: store).key
        }
        return out
    }

    /// The pipeline text without the named top-level stages (a stage is its `  name:` line and the
    /// more deeply indented lines after it, with the comment lines just above it).
    static func removingStages(_ names: [String], from text: String) -> String {
        var out: [String] = [], skipping = false
        for line in text.components(separatedBy: "\n") {
            let indent = line.prefix { $0 == " " }.count
            if indent == 2, let name = line.split(separator: ":").first.map({ $0.trimmingCharacters(in: .whitespaces) }) {
                skipping = names.contains(name)
                if skipping { while let last = out.last, last.trimmingCharacters(in: .whitespaces).hasPrefix("#") { out.removeLast() } }
            } else if indent < 2 && !line.isEmpty {
                skipping = false
            }
            if !skipping { out.append(line) }
        }
        return out.joined(separator: "\n")
    }
}
