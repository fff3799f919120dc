import Foundation
import Stages
import Testing
@testable import Pipeline

/// The `table` stage: hand-computed tables over a shell sweep whose metrics are known in closed
/// form, formula parsing, located spec errors, and what a changed cell reruns.
@Suite struct TableStageTests {
    /// `evaluate` writes score = 10 lr + seed^2 and time = 3600 (1 + lr)(seed + 1); `bonus` files
    /// (one per lr) add to the score, so one cell's metric can be changed on its own.
    static func writeSweep(_ f: Fixture, table: String, seeds: String = "[0, 1, 2]") throws {
        let log = "echo $PDPIPE_STAGE >> '\(f.counter.path)'"
        for lr in ["0.1", "0.2"] { try f.write("data/bonus-\(lr).txt", "0\n") }
        try f.write("pipelines/sweep.yaml", """
            params:
              train:
                lr: 0.1
                seed: 0
            stages:
              train:
                kind: shell
                params: [train.lr, train.seed]
                cmd: \(log); echo $PDPIPE_PARAM_TRAIN_LR $PDPIPE_PARAM_TRAIN_SEED > model.txt
                outs: [model.txt]
              evaluate:
                kind: shell
                needs: [train]
                deps:
                  - data/bonus-${train.lr}.txt
                cmd: >-
                  \(log); b=$(cat $PDPIPE_PROJECT_DIR/data/bonus-${train.lr}.txt);
                  awk -v b=$b '{ printf "{\\"score\\": %.10g, \\"time\\": %.10g}", 10 * $1 + $2 * $2 + b, 3600 * (1 + $1) * ($2 + 1) }'
                  ${inputs.train}/model.txt > metrics.json
                outs: [metrics.json]
            """)
        try f.write("experiments/sweep.yaml", """
            pipeline: ../pipelines/sweep.yaml
            matrix:
              train.lr: [0.1, 0.2]
              train.seed: \(seeds)
            tables:
            \(table)
            """)
    }

    static let ablation = """
          results:
            title: Sweep
            rows: [train.lr]
            aggregate_over: [train.seed]
            baseline: {train.lr: 0.2}
            columns:
              score: evaluate.score
              hours: evaluate.time / 3600
              speed-up: baseline(evaluate.time) / evaluate.time
              lr x 2: train.lr * 2
        """

    static func table(_ f: Fixture, _ file: String = "experiments/sweep.yaml", name: String = "results") throws -> ResultTable {
        let runner = try f.runner(file)
        let key = try #require(try runner.store.currentKeys(scope: runner.scope)[name])
        let r = try #require(try runner.store.result(forKey: key))
        return try ResultTable.decode(Data(contentsOf: runner.store.objectURL(r.artifact).appendingPathComponent("table.json")))
    }

    static func close(_ a: Double?, _ b: Double, _ tol: Double = 1e-9) -> Bool { a.map { abs($0 - b) <= tol * max(1, abs(b)) } ?? false }

    @Test func meanStdOverSeedsAndBaselineRatioMatchHandComputedValues() throws {
        let f = try Fixture()
        try Self.writeSweep(f, table: Self.ablation)
        let summary = try f.run("experiments/sweep.yaml")
        #expect(!summary.failed)
        #expect(summary.lines.contains { $0.id == "results" && $0.action == .run })
        let t = try Self.table(f)
        #expect(t.rowHeaders == ["lr"] && t.columns == ["score", "hours", "speed-up", "lr x 2"])
        #expect(t.rows.map(\.labels) == [["0.1"], ["0.2"]])
        #expect(t.rows.map(\.cells) == [["lr=0.1,seed=0", "lr=0.1,seed=1", "lr=0.1,seed=2"],
                                       ["lr=0.2,seed=0", "lr=0.2,seed=1", "lr=0.2,seed=2"]])
        // lr 0.1: score {1, 2, 5}: mean 8/3, sample variance ((5/3)^2 + (2/3)^2 + (7/3)^2) / 2 = 13/3.
        let s1 = try #require(t.rows[0].values[0])
        #expect(s1.values == [1, 2, 5])
        #expect(Self.close(s1.mean, 8.0 / 3) && Self.close(s1.std, (13.0 / 3).squareRoot()))
        // lr 0.2: score {2, 3, 6}, same spread.
        let s2 = try #require(t.rows[1].values[0])
        #expect(Self.close(s2.mean, 11.0 / 3) && Self.close(s2.std, (13.0 / 3).squareRoot()))
        // hours = 1.1 (s + 1) and 1.2 (s + 1): mean 2.2 / 2.4, std 1.1 / 1.2.
        #expect(Self.close(t.rows[0].values[1]?.mean, 2.2) && Self.close(t.rows[0].values[1]?.std, 1.1))
        #expect(Self.close(t.rows[1].values[1]?.mean, 2.4) && Self.close(t.rows[1].values[1]?.std, 1.2))
        // speed-up per seed: 4320 (s + 1) / 3960 (s + 1) = 12/11 for every seed; 1 in the baseline row.
        #expect(Self.close(t.rows[0].values[2]?.mean, 12.0 / 11) && Self.close(t.rows[0].values[2]?.std, 0, 1e-12))
        #expect(t.rows[1].values[2]?.values == [1, 1, 1])
        #expect(t.rows.map(\.isBaseline) == [false, true])
        // An axis value used as a number.
        #expect(Self.close(t.rows[0].values[3]?.mean, 0.2) && Self.close(t.rows[1].values[3]?.mean, 0.4))

        // The rendered files agree with the JSON.
        let runner = try f.runner("experiments/sweep.yaml")
        let dir = runner.store.objectURL(try #require(try runner.store.result(forKey: try runner.store.currentKeys(scope: runner.scope)["results"]!)).artifact)
        let md = try String(contentsOf: dir.appendingPathComponent("table.md"), encoding: .utf8)
        #expect(md.contains("| lr | score | hours | speed-up | lr x 2 |"))
        #expect(md.contains("| 0.1 | 2.667 ± 2.08 | 2.2 ± 1.1 | 1.091 ± 0 | 0.2 ± 0 |"))
        #expect(md.contains("mean ± std (n - 1) over train.seed (3 cells per row); baseline: train.lr=0.2"))
        let csv = try String(contentsOf: dir.appendingPathComponent("table.csv"), encoding: .utf8).split(separator: "\n")
        #expect(csv[0] == "lr,score,score_std,hours,hours_std,speed-up,speed-up_std,lr x 2,lr x 2_std")
        #expect(csv[2].hasPrefix("0.2,3.666666667,2.081665999,2.4,1.2,1,0,0.4,"))
    }

    @Test func withoutAggregationEveryAxisIsARowAndRowsKeepMatrixOrder() throws {
        let f = try Fixture()
        try Self.writeSweep(f, table: """
              plain:
                columns:
                  score: evaluate.score
            """, seeds: "[1, 0]")
        try f.run("experiments/sweep.yaml")
        let t = try Self.table(f, name: "plain")
        #expect(t.rowKeys == ["train.lr", "train.seed"])
        #expect(t.rows.map(\.labels) == [["0.1", "1"], ["0.1", "0"], ["0.2", "1"], ["0.2", "0"]])
        #expect(t.rows.map { $0.values[0]?.mean } == [2, 1, 3, 2])
        #expect(t.rows.allSatisfy { $0.values[0]?.std == nil })
    }

    @Test func aChangedCellRerunsOnlyItsDownstreamAndTheTable() throws {
        let f = try Fixture()
        try Self.writeSweep(f, table: Self.ablation)
        try f.run("experiments/sweep.yaml")
        #expect(try f.takeExecutions().count == 12)
        let before = try Self.table(f)

        // The bonus of lr = 0.2 changes evaluate's metric in the three lr = 0.2 cells only.
        try f.write("data/bonus-0.2.txt", "100\n")
        let plan = try f.plan("experiments/sweep.yaml")
        #expect(plan.filter { $0.value == .run }.keys.sorted()
                == ["evaluate@lr=0.2,seed=0", "evaluate@lr=0.2,seed=1", "evaluate@lr=0.2,seed=2", "results"])
        let rerun = try f.run("experiments/sweep.yaml")
        #expect(try f.takeExecutions() == ["evaluate@lr=0.2,seed=0", "evaluate@lr=0.2,seed=1", "evaluate@lr=0.2,seed=2"])
        #expect(rerun.lines.first { $0.id == "results" }?.action == .run)
        let after = try Self.table(f)
        #expect(after.rows[0] == before.rows[0])
        #expect(Self.close(after.rows[1].values[0]?.mean, 11.0 / 3 + 100))

        // Undoing the edit restores the old table without computing anything.
        try f.write("data/bonus-0.2.txt", "0\n")
        let back = try f.run("experiments/sweep.yaml")
        #expect(try f.takeExecutions() == [])
        #expect(back.lines.first { $0.id == "results" }?.action == .restore)
        #expect(try Self.table(f) == before)
    }

    @Test func addingATableLeavesEveryOtherKeyUnchanged() throws {
        let f = try Fixture()
        try Self.writeSweep(f, table: "")
        try f.write("experiments/sweep.yaml", "pipeline: ../pipelines/sweep.yaml\nmatrix:\n  train.lr: [0.1, 0.2]\n  train.seed: [0, 1, 2]\n")
        try f.run("experiments/sweep.yaml")
        try Self.writeSweep(f, table: Self.ablation)
        let plan = try f.plan("experiments/sweep.yaml")
        #expect(plan.filter { $0.value != .upToDate }.map(\.key) == ["results"])
        let exp = try SpecLoader.expansion(f.url("experiments/sweep.yaml"))
        let table = try #require(exp.instance("results"))
        #expect(table.inputs.count == 12 && table.inputs["evaluate@lr=0.1,seed=2"] == "evaluate@lr=0.1,seed=2")
    }

    @Test func tableErrorsNameFileLineAndColumn() throws {
        let f = try Fixture()
        try Self.writeSweep(f, table: """
              results:
                rows: [train.lrr]
                aggregate_over: [train.seed]
                baseline: {train.lr: 0.5}
                columns:
                  score: evaluate.score *
                  ratio: baseline(evaluate.time) / evaluate.time
                  other: prep.thing
            """)
        let errors: [String]
        do { _ = try SpecLoader.load(f.url("experiments/sweep.yaml")); errors = [] } catch let e as SpecError {
            errors = e.diagnostics.map { $0.description.replacingOccurrences(of: f.dir.path + "/", with: "") }
        }
        #expect(errors.contains("experiments/sweep.yaml:7:12: stage `results`: `train.lrr` is not a matrix axis (did you mean `train.lr`?)"))
        #expect(errors.contains("experiments/sweep.yaml:9:26: stage `results`: `train.lr` has no value 0.5 in the matrix (values: 0.1, 0.2)"))
        #expect(errors.contains("experiments/sweep.yaml:11:14: stage `results`: column `score`: expected a number, a name or `(` at character 17"))
        #expect(errors.contains { $0.hasPrefix("experiments/sweep.yaml:13:14: stage `results`: column `other`: `prep.thing` names neither") })

        try f.write("experiments/bad.yaml", """
            pipeline: ../pipelines/sweep.yaml
            tables:
              train:
                columns: {a: evaluate.score}
              t2:
                kind: shell
                columns: {a: evaluate.score}
            """)
        do { _ = try SpecLoader.load(f.url("experiments/bad.yaml")); Issue.record("expected errors") } catch let e as SpecError {
            let d = e.diagnostics.map { $0.description.replacingOccurrences(of: f.dir.path + "/", with: "") }
            #expect(d.contains("experiments/bad.yaml:3:3: table `train` has the name of a pipeline stage"))
            #expect(d.contains("experiments/bad.yaml:6:11: `t2` must be of kind `table` here"))
        }
    }

    @Test func overridingASweptKeyWithOneValueKeepsTheTableValid() throws {
        let f = try Fixture()
        try Self.writeSweep(f, table: Self.ablation)
        // `-S train.seed=1` takes the seed out of the matrix: one cell per row, no std.
        let summary = try f.run("experiments/sweep.yaml", overrides: ["train.seed=1"])
        #expect(!summary.failed && summary.lines.count == 5)
        let t = try Self.table(f)
        #expect(t.rows.map(\.cells) == [["lr=0.1,seed=1"], ["lr=0.2,seed=1"]])
        #expect(t.rows.map { $0.values[0]?.mean } == [2, 3] && t.rows.allSatisfy { $0.values[0]?.std == nil })
        // Without the baseline's value the table cannot be built: said before anything runs.
        #expect(throws: SpecError.self) { try f.runner("experiments/sweep.yaml", overrides: ["train.lr=0.1"]) }
    }

    @Test func aTableDeclaredInAPipelineWithoutMatrixHasOneRow() throws {
        let f = try Fixture()
        try f.write("pipelines/one.yaml", """
            stages:
              evaluate:
                kind: shell
                cmd: >-
                  echo '{"a": 3, "b": 4}' > metrics.json
                outs: [metrics.json]
              t:
                kind: table
                needs: [evaluate]
                columns:
                  hypotenuse squared: evaluate.a * evaluate.a + evaluate.b * evaluate.b
            """)
        try f.run("pipelines/one.yaml")
        let t = try Self.table(f, "pipelines/one.yaml", name: "t")
        #expect(t.rowKeys.isEmpty && t.rows.count == 1 && t.rows[0].cells == ["all"])
        #expect(t.rows[0].values[0]?.mean == 25)
    }

    @Test func formulasParseWithPrecedenceDashedNamesAndBaseline() throws {
        let e = try TableExpression.parse("fid.FD_fmnist-classifier - 2 * (train.a + 1) / -4")
        #expect(e.references == ["fid.FD_fmnist-classifier", "train.a"])
        let values = ["fid.FD_fmnist-classifier": 10.0, "train.a": 3]
        #expect(try e.evaluate({ values[$0]! }, baselineLookup: { _ in .nan }) == 10 - 2 * (3 + 1) / -4.0)
        let b = try TableExpression.parse("baseline(train.t)/train.t")
        #expect(b.usesBaseline && !b.nestsBaseline)
        #expect(try b.evaluate({ _ in 4 }, baselineLookup: { _ in 10 }) == 2.5)
        #expect(try TableExpression.parse("1.5e3 + `odd name`").references == ["odd name"])
        #expect(try TableExpression.parse("baseline(baseline(x.y))").nestsBaseline)
        #expect(throws: TableExpression.ParseError.self) { try TableExpression.parse("a.b +") }
        #expect(throws: TableExpression.ParseError.self) { try TableExpression.parse("(a.b") }
        #expect(throws: TableExpression.ParseError.self) { try TableExpression.parse("a.b c.d") }
    }
}
