import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Stages
import Testing
@testable import Pipeline

/// `pdpipe report` over a shell sweep whose artifacts are known exactly: a training log, a grid PNG
/// and metrics per cell. Checks md/csv/json content, the HTML as XML (inlined PNG, SVG geometry
/// computed by hand from the logs), baseline deltas, --only-changed, --sort-by and comparisons.
@Suite struct ReportTests {
    /// A 1x1 PNG; each cell's grid is this file plus a trailing comment naming the cell (still a PNG).
    static let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

    /// train (lr 0.1 / 0.2) writes training_log.jsonl with loss = 2 lr^-1 / 10 ... (see below),
    /// metrics wall_seconds = 100 lr; sample writes grid.png; fid writes FD_net = 10 / lr * bonus.
    static func writeProject(_ f: Fixture, tables: String = "") throws {
        for lr in ["0.1", "0.2"] { try f.write("data/bonus-\(lr).txt", "1\n") }
        try f.write("pipelines/p.yaml", """
            params:
              train:
                lr: 0.1
            stages:
              train:
                kind: shell
                params: [train.lr]
                cmd: >-
                  awk -v lr=$PDPIPE_PARAM_TRAIN_LR 'BEGIN {
                  printf "{\\"kimg\\": 1, \\"loss\\": %g}\\n{\\"kimg\\": 2, \\"loss\\": %g}\\n", 20 * lr, 5 * lr > "training_log.jsonl";
                  printf "{\\"wall_seconds\\": %g, \\"steps\\": 7}", 100 * lr > "metrics.json" }'
                outs: [training_log.jsonl, metrics.json]
              sample:
                kind: shell
                needs: [train]
                cmd: echo '\(png)' | base64 -d > grid.png; printf "%s" "${train.lr}" >> grid.png
                outs: [grid.png]
              fid:
                kind: shell
                needs: [sample]
                deps:
                  - data/bonus-${train.lr}.txt
                cmd: >-
                  b=$(cat $PDPIPE_PROJECT_DIR/data/bonus-${train.lr}.txt);
                  awk -v b=$b 'BEGIN { printf "{\\"FD_net\\": %g}", 1 / ${train.lr} * b }' > metrics.json
                outs: [metrics.json]
            """)
        try f.write("experiments/e.yaml", """
            description: Two learning rates.
            pipeline: ../pipelines/p.yaml
            matrix:
              train.lr: [0.1, 0.2]
            \(tables)
            """)
    }

    static func report(_ f: Fixture, _ file: String = "experiments/e.yaml", _ configure: (inout ExperimentReport.Options) -> Void = { _ in }) throws -> ExperimentReport {
        var o = ExperimentReport.Options()
        configure(&o)
        return try ExperimentReport(runner: f.runner(file), options: o)
    }

    /// An attribute by (local) name; FoundationXML does not find plain attributes of namespaced elements by name.
    static func attribute(_ node: XMLNode, _ name: String) -> String? {
        (node as? XMLElement)?.attributes?.first { $0.name == name || $0.localName == name }?.stringValue
    }

    static func gridBytes(_ lr: String) -> Data { Data(base64Encoded: png)! + Data(lr.utf8) }

    @Test func markdownCSVAndJSONCarryCellsSharedValuesDeltasAndParams() throws {
        let f = try Fixture()
        try Self.writeProject(f)
        try f.run("experiments/e.yaml")
        let r = try Self.report(f) { $0.baseline = ["lr=0.2"] }
        #expect(r.cellHeader == ["lr", "train.wall_seconds", "fid.FD_net"])
        #expect(r.cells.map(r.cellRow) == [["0.1", "10", "10"], ["0.2", "20", "5"]])
        #expect(r.shared.map(\.column) == ["train.steps"])
        // The swept param, and the fields whose text interpolates it.
        #expect(r.differingParams == ["fid.cmd", "fid.deps", "sample.cmd", "train.lr"])
        let md = r.markdown()
        #expect(md.contains("| lr | train.wall_seconds | fid.FD_net |"))
        #expect(md.contains("Same in every cell: train.steps = 7"))
        #expect(md.contains("## Deltas against the baseline lr=0.2"))
        // lr 0.1 vs 0.2: wall 10 - 20 = -10 (-50%), FD 10 - 5 = +5 (+100%).
        #expect(md.contains("| lr=0.1 | -10 (-50.0%) | +5 (+100.0%) |"))
        #expect(!md.contains("| lr=0.2 | +0"))
        #expect(r.csv == "lr,train.wall_seconds,fid.FD_net,train.steps,Δ train.wall_seconds,Δ fid.FD_net\n0.1,10,10,7,-10,5\n0.2,20,5,7,0,0\n")

        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.json.utf8)) as? [String: Any])
        let cells = try #require(json["cells"] as? [[String: Any]])
        #expect(cells.count == 2 && json["baseline"] as? String == "lr=0.2")
        #expect((cells[0]["deltas"] as? [String: Double])?["fid.FD_net"] == 5)
        #expect((cells[0]["loss_curve"] as? [[Double]]) == [[1, 2], [2, 0.5]])
        #expect((cells[1]["metrics"] as? [String: Double])?["train.wall_seconds"] == 20)
    }

    @Test func htmlIsWellFormedWithInlinedGridsAndSVGFromTheLogs() throws {
        let f = try Fixture()
        try Self.writeProject(f, tables: """
            tables:
              summary:
                title: By learning rate
                columns:
                  FD: fid.FD_net
                  speed: 1 / train.wall_seconds
            """)
        try f.run("experiments/e.yaml")
        let r = try Self.report(f)
        let html = r.html
        let doc = try XMLDocument(data: Data(html.utf8), options: [])
        let root = try #require(doc.rootElement())
        #expect(root.name == "html")

        // Both grids inlined byte for byte.
        let images = try root.nodes(forXPath: "//*[local-name()='img']").compactMap { Self.attribute($0, "src") }
        #expect(images == ["0.1", "0.2"].map { "data:image/png;base64," + Self.gridBytes($0).base64EncodedString() })

        // Loss curves: x in [1, 2] -> [60, 504], y in [0.5, 4] (losses 2, 0.5 and 4, 1) -> [240, 14].
        // lr 0.1: (1, 2) -> y = 14 + (1 - 1.5 / 3.5) 226 = 143.14; (2, 0.5) -> 240.
        // lr 0.2: (1, 4) -> 14; (2, 1) -> 14 + (1 - 0.5 / 3.5) 226 = 207.71.
        let lines = try root.nodes(forXPath: "//*[local-name()='polyline']").compactMap { Self.attribute($0, "points") }
        #expect(lines == ["60.00,143.14 504.00,240.00", "60.00,14.00 504.00,207.71"])

        // FD bars from zero: 10 -> full height (y 14, height 226), 5 -> half (y 127, height 113).
        let bars = try root.nodes(forXPath: "//*[local-name()='rect']").compactMap { $0 as? XMLElement }
        #expect(bars.map { Self.attribute($0, "y") } == ["14.00", "127.00"])
        #expect(bars.map { Self.attribute($0, "height") } == ["226.00", "113.00"])

        // The table stage's table, then the cell table.
        let headers = try root.nodes(forXPath: "//*[local-name()='table']//*[local-name()='th']").compactMap(\.stringValue)
        #expect(Array(headers.prefix(3)) == ["lr", "FD", "speed"])
        let cellsText = try root.nodes(forXPath: "//*[local-name()='td']").compactMap(\.stringValue)
        #expect(Array(cellsText.prefix(6)) == ["0.1", "10", "0.1", "0.2", "5", "0.05"])
        #expect(html.contains("<h3>By learning rate</h3>"))
        // CSV of an experiment with tables is its tables.
        #expect(r.csv == "lr,FD,speed\n0.1,10,0.1\n0.2,5,0.05\n")
    }

    @Test func onlyChangedSortByAndRunSnapshots() throws {
        let f = try Fixture()
        try Self.writeProject(f)
        let first = try f.run("experiments/e.yaml")
        try f.write("data/bonus-0.2.txt", "3\n")
        let second = try f.run("experiments/e.yaml")
        let changed = try Self.report(f) { $0.onlyChanged = true }
        #expect(changed.runID == second.runID)
        #expect(changed.cells.map(\.label) == ["lr=0.2"])
        #expect(changed.cells[0].metrics["fid.FD_net"] == 15)
        #expect(changed.notes == ["only the cells computed or restored in run \(second.runID!) (1 of 2)"])

        let sorted = try Self.report(f) { $0.sortBy = "FD_net"; $0.descending = true }
        #expect(sorted.cells.map(\.label) == ["lr=0.2", "lr=0.1"])
        #expect(throws: ReportError.self) { try Self.report(f) { $0.sortBy = "FD_nte" } }

        // As the first run left it: FD 5 for lr 0.2.
        let old = try Self.report(f) { $0.runID = String(first.runID!.dropLast()) }
        #expect(old.runID == first.runID)
        #expect(old.cells.map { $0.metrics["fid.FD_net"] } == [10, 5])

        let c = ReportComparison(old, try Self.report(f), nameA: "first", nameB: "second")
        // Only the metric that differs between the runs.
        #expect(c.cellHeader == ["cell", "fid.FD_net (A)", "fid.FD_net (B)", "Δ fid.FD_net"])
        #expect(c.cellRows == [["lr=0.1", "10", "10", "+0"], ["lr=0.2", "5", "15", "+10"]])
        let doc = try XMLDocument(data: Data(c.html.utf8), options: [])
        #expect(try doc.nodes(forXPath: "//*[local-name()='img']").count == 4)
        #expect(try doc.nodes(forXPath: "//*[local-name()='polyline'][@stroke-dasharray]").count == 2)
    }

    @Test func comparingTwoExperimentsShowsTheirParamDifferences() throws {
        let f = try Fixture()
        try Self.writeProject(f)
        try f.write("experiments/other.yaml", "pipeline: ../pipelines/p.yaml\nmatrix:\n  train.lr: [0.2, 0.4]\n")
        try f.write("data/bonus-0.4.txt", "1\n")
        try f.run("experiments/e.yaml")
        try f.run("experiments/other.yaml")
        let c = ReportComparison(try Self.report(f), try Self.report(f, "experiments/other.yaml"), nameA: "e", nameB: "other")
        #expect(c.labels == ["lr=0.1", "lr=0.2", "lr=0.4"])
        #expect(c.cellRows.first { $0[0] == "lr=0.4" }.map { Array($0.prefix(7)) } == ["lr=0.4", "", "40", "", "", "2.5", ""])
        #expect(c.cellRows.first { $0[0] == "lr=0.2" }.map { Array($0.prefix(7)) } == ["lr=0.2", "20", "20", "+0", "5", "5", "+0"])
        #expect(c.paramDifferences.isEmpty)
        #expect(c.markdown.contains("A = e, B = other; Δ = B - A."))
    }

    @Test func experimentReportSectionGivesDefaultsAndStaleStagesAreNoted() throws {
        let f = try Fixture()
        try Self.writeProject(f, tables: "report:\n  baseline: {train.lr: 0.2}\n  sort_by: FD_net\n  descending: true\n")
        try f.run("experiments/e.yaml")
        let r = try Self.report(f)
        #expect(r.baselineLabel == "lr=0.2" && r.cells.map(\.label) == ["lr=0.1", "lr=0.2"])
        #expect(r.notes.isEmpty)
        // Flags win over the section.
        #expect(try Self.report(f) { $0.sortBy = "FD_net" }.cells.map(\.label) == ["lr=0.2", "lr=0.1"])
        try f.write("data/bonus-0.1.txt", "2\n")
        #expect(try Self.report(f).notes == ["1 stage(s) not up to date with the experiment file (see `pdpipe status`); shown are their last stored results, if any: fid@lr=0.1"])

        try Self.writeProject(f, tables: "report:\n  baseline: {train.lrr: 0.2}\n  sortby: x\n")
        do { _ = try f.runner("experiments/e.yaml"); Issue.record("expected errors") } catch let e as SpecError {
            let d = e.diagnostics.map { $0.description.replacingOccurrences(of: f.dir.path + "/", with: "") }
            #expect(d.contains("experiments/e.yaml:6:14: report baseline: `train.lrr` is not a matrix axis (did you mean `train.lr`?)"))
            #expect(d.contains("experiments/e.yaml:7:3: unknown report key `sortby` (did you mean `sort_by`?)"))
        }
    }

    @Test func reportCommandWritesFilesAndRejectsBadOptions() throws {
        let f = try Fixture()
        try Self.writeProject(f)
        try f.run("experiments/e.yaml")
        let html = try CLITests.pdpipe(["report", "experiments/e.yaml", "--format", "html", "-o", "out/r.html", "--baseline", "lr=0.1"], in: f.dir)
        #expect(html.status == 0)
        let page = try String(contentsOf: f.url("out/r.html"), encoding: .utf8)
        #expect(page.contains("Deltas against the baseline lr=0.1"))
        let md = try CLITests.pdpipe(["report", "experiments/e.yaml", "-o", "out/r.md"], in: f.dir)
        #expect(md.status == 0)
        #expect(try Data(contentsOf: f.url("out/r-grids/lr=0.2.png")) == Self.gridBytes("0.2"))
        #expect(try String(contentsOf: f.url("out/r.md"), encoding: .utf8).contains("![lr=0.2](r-grids/lr=0.2.png)"))
        let bad = try CLITests.pdpipe(["report", "experiments/e.yaml", "--baseline", "lr=0.3"], in: f.dir)
        #expect(bad.status == 2 && bad.err.contains("--baseline lr=0.3: `train.lr` has no value 0.3 in the matrix"))
        let format = try CLITests.pdpipe(["report", "experiments/e.yaml", "--format", "xml"], in: f.dir)
        #expect(format.status == 2)
    }
}
