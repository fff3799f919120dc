import Foundation
import Testing
@testable import Pipeline

/// Spec errors: every message is `file:line:column: message`, found before any work.
@Suite struct ValidationTests {
    func errors(_ f: Fixture, _ file: String, overrides: [String] = []) -> [String] {
        do {
            _ = try SpecLoader.load(f.url(file), overrides: overrides)
            return []
        } catch let e as SpecError {
            return e.diagnostics.map { d in
                // Paths are made relative to the fixture so expectations read like the file.
                d.description.replacingOccurrences(of: f.dir.path + "/", with: "")
            }
        } catch { return ["unexpected \(error)"] }
    }

    @Test func unknownKeysSuggestTheNearestName() throws {
        let f = try Fixture()
        try f.write("pipelines/p.yaml", """
            params:
              train:
                lr: 0.1
            stages:
              a:
                kind: shell
                cmdd: echo hi
              b:
                kind: shel
                cmd: echo
            stagez: {}
            """)
        let e = errors(f, "pipelines/p.yaml")
        #expect(e.contains("pipelines/p.yaml:11:1: unknown pipeline key `stagez` (did you mean `stages`?)"))
        #expect(e.contains("pipelines/p.yaml:7:5: unknown field `cmdd` for stage kind `shell` (did you mean `cmd`?)"))
        #expect(e.contains { $0.hasPrefix("pipelines/p.yaml:9:11: unknown stage kind `shel` (did you mean `shell`?)") })
    }

    @Test func wrongTypesAndBadInterpolationsAreLocated() throws {
        let f = try Fixture()
        try f.write("pipelines/p.yaml", """
            params:
              train:
                lr: 0.1
            stages:
              a:
                kind: shell
                cmd: echo ${train.lrr}
              b:
                kind: shell
                cmd: [not, a, string]
              c:
                kind: shell
                cmd: echo ${train.lr
              d:
                kind: shell
                cmd: cat ${inputs.a}
            """)
        let e = errors(f, "pipelines/p.yaml")
        #expect(e.contains("pipelines/p.yaml:7:10: `${train.lrr}`: no such param (did you mean `train.lr`?)"))
        #expect(e.contains { $0.hasPrefix("pipelines/p.yaml:13:10: unterminated `${`") })
        #expect(e.contains { $0.hasPrefix("pipelines/p.yaml:16:10: `${inputs.a}`: stage `d` does not consume `a`") })
        // Types are checked once interpolations resolve; fix the others to see it.
        try f.write("pipelines/q.yaml", """
            stages:
              b:
                kind: shell
                cmd: [not, a, string]
                outs: /abs
            """)
        let q = errors(f, "pipelines/q.yaml")
        #expect(q.contains("pipelines/q.yaml:4:10: field `cmd` of stage `b` must be string, got `[not,a,string]`"))
        #expect(q.contains("pipelines/q.yaml:5:11: field `outs` of stage `b` must be list of string, got `/abs`"))
    }

    @Test func kindValidationNamesTheField() throws {
        let f = try Fixture()
        try f.write("pipelines/p.yaml", "stages:\n  a:\n    kind: shell\n    cmd: echo\n    outs: [ok.txt, ../escape.txt]\n")
        #expect(errors(f, "pipelines/p.yaml") == ["pipelines/p.yaml:5:11: stage `a`: out `../escape.txt` must be a relative path inside the working directory"])
    }

    @Test func missingStagesCyclesAndDuplicates() throws {
        let f = try Fixture()
        try f.write("pipelines/missing.yaml", """
            stages:
              train:
                kind: shell
                needs: [dataa]
                cmd: echo
              data:
                kind: shell
                cmd: echo
            """)
        #expect(errors(f, "pipelines/missing.yaml") == ["pipelines/missing.yaml:4:13: stage `train` needs unknown stage `dataa` (did you mean `data`?)"])

        try f.write("pipelines/cycle.yaml", """
            stages:
              a:
                kind: shell
                needs: [c]
                cmd: echo
              b:
                kind: shell
                needs: [a]
                cmd: echo
              c:
                kind: shell
                needs: [b]
                cmd: echo
            """)
        #expect(errors(f, "pipelines/cycle.yaml") == ["pipelines/cycle.yaml:2:3: dependency cycle: a -> c -> b -> a"])

        try f.write("pipelines/dup.yaml", """
            stages:
              a:
                kind: shell
                cmd: echo
              a:
                kind: shell
                cmd: echo 2
            """)
        let dup = errors(f, "pipelines/dup.yaml")
        #expect(dup.count == 1)
        #expect(dup.first?.hasPrefix("pipelines/dup.yaml:") == true)
        #expect(dup.first?.contains("duplicate") == true && dup.first?.contains("`a`") == true)
    }

    @Test func experimentKeysParamsAndMatrixAreChecked() throws {
        let f = try Fixture()
        try f.write("pipelines/p.yaml", """
            params:
              train:
                lr: 0.1
                seed: 0
            stages:
              t:
                kind: shell
                params: [train.lr]
                cmd: echo
            """)
        try f.write("experiments/e.yaml", """
            pipeline: ../pipelines/p.yaml
            params:
              train:
                sed: 1
            matrix:
              train.lrr: [0.1, 0.2]
              train.seed: 3
            reprot: {}
            """)
        let e = errors(f, "experiments/e.yaml")
        #expect(e.contains("experiments/e.yaml:8:1: unknown experiment key `reprot` (did you mean `report`?)"))
        #expect(e.contains("experiments/e.yaml:4:5: unknown param `train.sed` (the pipeline does not declare it) (did you mean `train.seed`?)"))
        #expect(e.contains("experiments/e.yaml:6:3: matrix key `train.lrr` is not a param of the pipeline (did you mean `train.lr`?)"))
        #expect(e.contains("experiments/e.yaml:7:15: matrix values for `train.seed` must be a non-empty list"))
        #expect(errors(f, "pipelines/p.yaml", overrides: ["train.l=3"]) == ["-S train.l=3: `train.l` is not a param of the pipeline (did you mean `train.lr`?)"])
    }

    /// Swept keys appear in a cell id sorted by their full dotted name.
    @Test func cellIdsIncludeOnlySweptKeysAStageReads() throws {
        let f = try Fixture()
        try f.writeScenario()
        let exp = try Expansion.expand(try SpecLoader.load(f.url("experiments/sweep.yaml"), overrides: ["eval.mode=a,b"]))
        #expect(exp.instances.map(\.id).sorted() == [
            "evaluate@mode=a,lr=0.1", "evaluate@mode=a,lr=0.2", "evaluate@mode=b,lr=0.1", "evaluate@mode=b,lr=0.2",
            "parity", "prep", "summary", "train@lr=0.1", "train@lr=0.2",
        ])
        #expect(exp.instance("evaluate@mode=b,lr=0.2")?.inputs == ["train": "train@lr=0.2"])
        #expect(exp.cells.count == 4)
        // Whole-value interpolation keeps the type; inside a string it formats.
        #expect(try Interpolation.substitute("${x}") { _ in .int(3) } == .int(3))
        #expect(try Interpolation.substitute("a${x}b $${y}") { _ in .double(0.5) } == .string("a0.5b ${y}"))
    }

    @Test func didYouMeanUsesEditDistance() {
        #expect(editDistance("kitten", "sitting") == 3)
        #expect(editDistance("", "abc") == 3)
        #expect(didYouMean("stgaes", among: ["stages", "params"]) == " (did you mean `stages`?)")
        #expect(didYouMean("zzzzzz", among: ["stages", "params"]) == "")
    }

    /// `executor:` in an experiment over the project's `pdpipe.yaml`: merged, per kind, located errors.
    @Test func executorSectionsMergeAndBadEntriesAreLocated() throws {
        let f = try Fixture()
        try f.write("pipelines/p.yaml", "stages:\n  a: {kind: shell, cmd: echo}\n")
        try f.write("pdpipe.yaml", "executor:\n  kind: slurm\n  partition: cpu\n  cpus: 2\n  per_kind: {train: {cpus: 8, time: \"12:00:00\"}}\n")
        try f.write("experiments/e.yaml", "pipeline: ../pipelines/p.yaml\nexecutor:\n  cpus: 4\n  per_kind: {train: {mem: 16G}}\n")
        let section = try SpecLoader.load(f.url("experiments/e.yaml")).executor
        #expect(section.kind == "slurm")
        var options = SlurmOptions(executable: "pdpipe", spec: "e.yaml")
        for o in section.options { #expect(options.set(o) == nil) }
        options.perKind = section.perKind
        #expect(options.partition == "cpu" && options.cpus == 4)
        let train = options.forKind("train"), sample = options.forKind("sample")
        #expect(train.cpus == 8 && train.time == "12:00:00" && train.mem == "16G" && train.partition == "cpu")
        #expect(sample.cpus == 4 && sample.time == nil && sample.mem == nil)

        try f.write("experiments/bad.yaml", """
            pipeline: ../pipelines/p.yaml
            executor:
              kind: kubernetes
              cpus: two
              per_kind: {trian: {time: 5}}
              memm: 4G
            """)
        let e = errors(f, "experiments/bad.yaml")
        #expect(e.contains("experiments/bad.yaml:3:9: executor kind must be local or slurm, got `kubernetes`"), "\(e)")
        #expect(e.contains("experiments/bad.yaml:4:9: executor cpus: expected a positive integer, got `two`"), "\(e)")
        #expect(e.contains("experiments/bad.yaml:5:14: executor per_kind: unknown stage kind `trian` (did you mean `train`?)"), "\(e)")
        #expect(e.contains("experiments/bad.yaml:6:3: unknown executor key `memm` (did you mean `mem`?)"), "\(e)")
    }
}
