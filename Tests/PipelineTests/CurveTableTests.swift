import Foundation
import Stages
import Testing
@testable import Pipeline

/// Tables with `along` (curves, `reach`, indexed references) and matrix `exclude`, over a shell
/// sweep whose metrics are known in closed form: loss = (10 + seed + 10 lr) / step, and the
/// "training" took seconds_at.<step> = 100 step (1 + seed).
@Suite struct CurveTableTests {
    static func write(_ f: Fixture, table: String, exclude: String = "") throws {
        try f.write("pipelines/curve.yaml", """
            params:
              train: {lr: 0.1, seed: 0}
              eval: {step: 1}
            stages:
              train:
                kind: shell
                params: [train.seed]
                cmd: >-
                  awk -v s=$PDPIPE_PARAM_TRAIN_SEED 'BEGIN { printf "{\\"seconds_at.1\\": %d, \\"seconds_at.2\\": %d, \\"seconds_at.4\\": %d, \\"seconds_at.8\\": %d}", 100 * (1 + s), 200 * (1 + s), 400 * (1 + s), 800 * (1 + s) }' > metrics.json
                outs: [metrics.json]
              evaluate:
                kind: shell
                needs: [train]
                params: [train.lr, train.seed, eval.step]
                cmd: >-
                  awk -v l=$PDPIPE_PARAM_TRAIN_LR -v s=$PDPIPE_PARAM_TRAIN_SEED -v t=$PDPIPE_PARAM_EVAL_STEP
                  'BEGIN { printf "{\\"loss\\": %.17g}", (10 + s + 10 * l) / t }' > metrics.json
                outs: [metrics.json]
            """)
        try f.write("experiments/curve.yaml", """
            pipeline: ../pipelines/curve.yaml
            matrix:
              train.lr: [0.1, 0.2]
              train.seed: [0, 1]
              eval.step: [1, 2, 4, 8]
            \(exclude)
            tables:
            \(table)
            """)
    }

    static let curves = """
          curves:
            rows: [train.lr]
            aggregate_over: [train.seed]
            along: eval.step
            versus: [hours]
            columns:
              loss: evaluate.loss
              hours: train.seconds_at[eval.step] / 3600
              step to 4: reach(evaluate.loss, 4, eval.step)
              hours to 4: reach(evaluate.loss, 4, train.seconds_at[eval.step] / 3600)
              step to 1.4: reach(evaluate.loss, 1.4, eval.step)
        """

    static func table(_ f: Fixture, name: String = "curves") throws -> ResultTable {
        let runner = try f.runner("experiments/curve.yaml")
        let key = try #require(try runner.store.currentKeys(scope: runner.scope)[name])
        let r = try #require(try runner.store.result(forKey: key))
        return try ResultTable.decode(Data(contentsOf: runner.store.objectURL(r.artifact).appendingPathComponent("table.json")))
    }

    static func close(_ a: Double?, _ b: Double) -> Bool { a.map { abs($0 - b) <= 1e-9 * max(1, abs(b)) } ?? false }

    @Test func reachInterpolatesEachSeedsCurveAndColumnsTakeTheLastPoint() throws {
        let f = try Fixture()
        try Self.write(f, table: Self.curves)
        #expect(!(try f.run("experiments/curve.yaml")).failed)
        let t = try Self.table(f)
        #expect(t.rowHeaders == ["lr"] && t.rows.map(\.labels) == [["0.1"], ["0.2"]])
        #expect(t.along == "eval.step" && t.versus == ["hours"])
        let lr1 = t.rows[0].values
        // Last point (step 8): (11 + 12) / 2 / 8.
        #expect(Self.close(lr1[0]?.mean, 23.0 / 16))
        // lr 0.1, seed 0: 11/2 = 5.5 at step 2, 2.75 at step 4: 4 is reached at 2 + 2 (5.5 - 4) / (5.5 - 2.75).
        // Seed 1: 6 and 3: at 2 + 2 (6 - 4) / 3.
        let s0 = 2 + 2 * 1.5 / 2.75, s1 = 2 + 2 * 2.0 / 3.0
        #expect(Self.close(lr1[2]?.values[0], s0) && Self.close(lr1[2]?.values[1], s1))
        #expect(Self.close(lr1[2]?.mean, (s0 + s1) / 2))
        // Hours: seconds are linear in the step (100 (1 + seed) per step) between the same points.
        #expect(Self.close(lr1[3]?.values[0], 100 * s0 / 3600) && Self.close(lr1[3]?.values[1], 200 * s1 / 3600))
        // 1.4: seed 0 gets there between step 4 (2.75) and 8 (1.375); seed 1 ends at 1.5 and never does.
        let s0b = 4 + 4 * (2.75 - 1.4) / (2.75 - 1.375)
        let partial = try #require(lr1[4])
        #expect(Self.close(partial.mean, s0b) && partial.unreached == 1 && partial.values[1].isNaN)
        #expect(t.markdown.contains("(1 of 2 reached)") && t.markdown.contains("(2 curves per row)"))
        // lr 0.2: (12 + s) / step never gets to 1.4 for either seed.
        #expect(t.rows[1].values[4]?.unreached == 2 && t.textRows[1].last == "not reached (0 of 2)")

        // The curve itself: every column at every step, mean over the seeds.
        let curves = try #require(t.curves)
        #expect(curves.map(\.at) == [[1, 2, 4, 8], [1, 2, 4, 8]])
        #expect(Self.close(curves[0].values[1][0]?.mean, (5.5 + 6) / 2))
        #expect(Self.close(curves[1].values[2][1]?.mean, (400 + 800) / 2 / 3600.0))
        #expect(curves[0].values[0][2] == nil)
        #expect(t.markdown.contains("loss along step:"))

        // The report draws loss against the step and against `versus` (hours), a band per row.
        let html = try CLITests.pdpipe(["report", "experiments/curve.yaml", "--format", "html"], in: f.dir)
        #expect(html.status == 0)
        #expect(html.out.contains("aria-label=\"loss vs step\"") && html.out.contains("aria-label=\"loss vs hours\""))
        #expect(html.out.components(separatedBy: "<polygon class=\"band\"").count - 1 >= 4)
    }

    @Test func excludeLeavesOutCellsAndTheStagesOnlyTheyNeed() throws {
        let f = try Fixture()
        try Self.write(f, table: Self.curves, exclude: "  exclude:\n    - {train.lr: 0.2, eval.step: [4, 8]}")
        let expansion = try SpecLoader.expansion(f.url("experiments/curve.yaml"))
        let ids = Set(expansion.instances.map(\.id))
        #expect(ids.contains("evaluate@step=2,lr=0.2,seed=0") && !ids.contains("evaluate@step=4,lr=0.2,seed=0"))
        #expect(ids.contains("evaluate@step=8,lr=0.1,seed=1") && ids.contains("train@seed=1"))
        #expect(expansion.cells.count == 16 - 4)
        #expect(!(try f.run("experiments/curve.yaml")).failed)
        let t = try Self.table(f)
        #expect(t.curves?.map(\.at) == [[1, 2, 4, 8], [1, 2]])
        // lr 0.2's curve ends at step 2: its last point is (12 + 13) / 2 / 2, and it never reaches 4.
        #expect(Self.close(t.rows[1].values[0]?.mean, 25.0 / 4))
        #expect(t.rows[1].values[2]?.unreached == 2)
    }

    @Test func badExclusionsAndCurveFieldsAreLocated() throws {
        let f = try Fixture()
        try Self.write(f, table: """
              curves:
                rows: [train.lr]
                versus: [nope]
                columns:
                  a: reach(evaluate.loss, 4, eval.step)
                  b: reach(evaluate.loss, 4)
            """, exclude: "  exclude:\n    - {train.lrr: 0.1}\n    - {eval.step: 3}")
        var errors: [String] = []
        do { _ = try SpecLoader.load(f.url("experiments/curve.yaml")) } catch let e as SpecError {
            errors = e.diagnostics.map { $0.description.replacingOccurrences(of: f.dir.path + "/", with: "") }
        }
        #expect(errors.contains("experiments/curve.yaml:7:8: exclude: `train.lrr` is not a matrix axis (did you mean `train.lr`?)"), "\(errors)")
        #expect(errors.contains("experiments/curve.yaml:8:19: exclude: `eval.step` has no value 3 in the matrix (values: 1, 2, 4, 8)"), "\(errors)")

        try Self.write(f, table: """
              curves:
                rows: [train.lr]
                versus: [nope]
                columns:
                  a: reach(evaluate.loss, 4, eval.step)
                  b: reach(evaluate.loss, 4)
            """)
        errors = []
        do { _ = try SpecLoader.load(f.url("experiments/curve.yaml")) } catch let e as SpecError {
            errors = e.diagnostics.map { $0.description.replacingOccurrences(of: f.dir.path + "/", with: "") }
        }
        #expect(errors.contains { $0.contains("stage `curves`: `nope` is not a column of the table") }, "\(errors)")
        #expect(errors.contains { $0.contains("column `a` uses reach(...) but the table declares no `along` axis") }, "\(errors)")
        #expect(errors.contains { $0.contains("column `b`: reach(y, target, x) takes 3 arguments, not 2") }, "\(errors)")

        try Self.write(f, table: Self.curves, exclude: "  exclude:\n    - {train.lr: [0.1, 0.2]}")
        do { _ = try SpecLoader.load(f.url("experiments/curve.yaml")); Issue.record("expected an error") } catch let e as SpecError {
            #expect(e.description.contains("matrix `exclude` leaves no cell of the matrix"), "\(e)")
        }
    }
}
