import Foundation
import Testing
@testable import Pipeline

/// The cache scenarios of issue 2, counted through an execution log outside the store.
@Suite struct ScenarioTests {
    @Test func firstRunExecutesEachStageOnceAndSecondRunNothing() throws {
        let f = try Fixture()
        try f.writeScenario()
        let first = try f.run("experiments/sweep.yaml")
        #expect(!first.failed)
        #expect(try f.takeExecutions() == Fixture.allScenarioCells)
        #expect(first.count(.run) == 7)

        let second = try f.run("experiments/sweep.yaml")
        #expect(try f.takeExecutions() == [])
        #expect(second.count(.upToDate) == 7)
        #expect(try f.plan("experiments/sweep.yaml").values.allSatisfy { $0 == .upToDate })
    }

    @Test func editingAParamRerunsExactlyItsReadersAndDependents() throws {
        let f = try Fixture()
        try f.writeScenario()
        try f.run("experiments/sweep.yaml")
        _ = try f.takeExecutions()

        // eval.mode is read by evaluate only.
        let plan = try f.plan("experiments/sweep.yaml", overrides: ["eval.mode=slow"])
        #expect(plan.filter { $0.value == .run }.keys.sorted() == ["evaluate@lr=0.1", "evaluate@lr=0.2"])
        try f.run("experiments/sweep.yaml", overrides: ["eval.mode=slow"])
        #expect(try f.takeExecutions() == ["evaluate@lr=0.1", "evaluate@lr=0.2"])

        // A new value of the swept key reruns only the cells that read it.
        try f.run("experiments/sweep.yaml", overrides: ["train.lr=0.1,0.3", "eval.mode=slow"])
        #expect(try f.takeExecutions() == ["evaluate@lr=0.3", "train@lr=0.3"])
    }

    @Test func identicalBytesStopInvalidation() throws {
        let f = try Fixture()
        try f.writeScenario()
        try f.run("experiments/sweep.yaml")
        _ = try f.takeExecutions()
        // prep.factor changes prep's output; parity (line count) reruns but writes the same byte,
        // so summary, which consumes only parity, is not rerun.
        try f.run("experiments/sweep.yaml", overrides: ["prep.factor=3"])
        #expect(try f.takeExecutions() == ["evaluate@lr=0.1", "evaluate@lr=0.2", "parity", "prep", "train@lr=0.1", "train@lr=0.2"])
    }

    @Test func touchingAnInputRerunsNothingEditingItRerunsConsumers() throws {
        let f = try Fixture()
        try f.writeScenario()
        try f.run("experiments/sweep.yaml")
        _ = try f.takeExecutions()

        // Same bytes, new mtime: the memoised digest is recomputed and matches.
        let input = f.url("data/input.txt")
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(60)], ofItemAtPath: input.path)
        try f.run("experiments/sweep.yaml")
        #expect(try f.takeExecutions() == [])

        // New content with the same number of lines: consumers rerun, summary is cut off.
        try f.write("data/input.txt", "1\n2\n4\n")
        try f.run("experiments/sweep.yaml")
        #expect(try f.takeExecutions() == ["evaluate@lr=0.1", "evaluate@lr=0.2", "parity", "prep", "train@lr=0.1", "train@lr=0.2"])
    }

    @Test func undoingAnEditRestoresWithoutRunning() throws {
        let f = try Fixture()
        try f.writeScenario()
        try f.run("experiments/sweep.yaml")
        try f.run("experiments/sweep.yaml", overrides: ["prep.factor=5"])
        _ = try f.takeExecutions()

        let plan = try f.plan("experiments/sweep.yaml")
        #expect(plan["prep"] == .restore)
        #expect(plan["summary"] == .upToDate)
        let back = try f.run("experiments/sweep.yaml")
        #expect(try f.takeExecutions() == [])
        #expect(back.count(.restore) == 6)
        #expect(try f.plan("experiments/sweep.yaml").values.allSatisfy { $0 == .upToDate })
    }

    @Test func whyNamesTheChangedComponent() throws {
        let f = try Fixture()
        try f.writeScenario()
        try f.run("experiments/sweep.yaml")
        let rows = try f.runner("experiments/sweep.yaml", overrides: ["eval.mode=slow"]).explain("evaluate@lr=0.2")
        #expect(rows.count == 1)
        let diff = StageKey.diff(old: rows[0].old!.components, new: rows[0].key.components)
        #expect(diff.map(\.name) == ["param.eval.mode"])
        #expect(diff[0].old == "\"fast\"" && diff[0].new == "\"slow\"")

        try f.write("data/input.txt", "7\n")
        let prep = try f.runner("experiments/sweep.yaml").explain("prep")
        #expect(StageKey.diff(old: prep[0].old!.components, new: prep[0].key.components).map(\.name) == ["file.data/input.txt"])
    }

    @Test func reportListsCellsWithMetrics() throws {
        let f = try Fixture()
        try f.writeScenario()
        try f.run("experiments/sweep.yaml")
        let report = try ExperimentReport(runner: f.runner("experiments/sweep.yaml"))
        #expect(report.cellHeader == ["lr", "evaluate.score"])
        // Independent value: sum(2 * [1,2,3]) * lr.
        #expect(report.cells.map(report.cellRow) == [["0.1", "1.2"], ["0.2", "2.4"]])
        #expect(report.csv == "lr,evaluate.score\n0.1,1.2\n0.2,2.4\n")
    }

    @Test func failuresStopOrKeepGoingAndMissingOutsFail() throws {
        let f = try Fixture()
        let log = "echo $PDPIPE_STAGE >> '\(f.counter.path)'"
        try f.write("pipelines/fail.yaml", """
            stages:
              bad:
                kind: shell
                cmd: \(log); echo boom; exit 3
              after_bad:
                kind: shell
                needs: [bad]
                cmd: \(log)
              noout:
                kind: shell
                cmd: \(log)
                outs: [missing.txt]
              fine:
                kind: shell
                cmd: \(log); echo ok > ok.txt
                outs: [ok.txt]
            """)
        let summary = try f.run("pipelines/fail.yaml", keepGoing: true, jobs: 1)
        #expect(summary.failed)
        let byID = Dictionary(uniqueKeysWithValues: summary.lines.map { ($0.id, $0) })
        #expect(byID["bad"]?.action == .failed)
        #expect(byID["bad"]?.reason.contains("exit status 3") == true)
        #expect(byID["bad"]?.reason.contains("boom") == true)
        #expect(byID["after_bad"]?.action == .skipped)
        #expect(byID["after_bad"]?.reason.contains("bad") == true)
        #expect(byID["noout"]?.action == .failed)
        #expect(byID["noout"]?.reason.contains("missing.txt") == true)
        #expect(byID["fine"]?.action == .run)
        #expect(try f.takeExecutions() == ["bad", "fine", "noout"])
        // Failed stages were not recorded: they run again.
        let plan = try f.plan("pipelines/fail.yaml")
        #expect(plan["bad"] == .run && plan["noout"] == .run && plan["fine"] == .upToDate)
    }

    @Test func targetsRunOnlyTheirUpstreamClosure() throws {
        let f = try Fixture()
        try f.writeScenario()
        var options = RunOptions()
        options.targets = ["train@lr=0.2"]
        let summary = try f.runner("experiments/sweep.yaml").run(options, command: "test", isCancelled: { false }, observe: { _ in })
        #expect(summary.lines.map(\.id) == ["prep", "train@lr=0.2"])
        #expect(try f.takeExecutions() == ["prep", "train@lr=0.2"])
        options.targets = ["evalute"]
        #expect(throws: SpecError.self) { try f.runner("experiments/sweep.yaml").plan(options) }
    }

    @Test func forceRerunsAStoredStage() throws {
        let f = try Fixture()
        try f.writeScenario()
        try f.run("experiments/sweep.yaml")
        _ = try f.takeExecutions()
        try f.run("experiments/sweep.yaml", force: ["train"])
        // Deterministic output: the forced train cells produce the same bytes, so nothing downstream reruns.
        #expect(try f.takeExecutions() == ["train@lr=0.1", "train@lr=0.2"])
    }
}
