import Foundation
import Stages
@testable import Pipeline

/// A throwaway project directory with `pipelines/`, `experiments/`, a data file and an execution
/// counter OUTSIDE the store: every shell command appends its cell id there, so tests count real
/// executions independently of what the runner reports.
final class Fixture: @unchecked Sendable {
    let dir: URL
    let counter: URL

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("pdpipe-test-" + UUID().uuidString)
        counter = dir.appendingPathComponent("executions.txt")
        for sub in ["pipelines", "experiments", "data"] {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        try Data().write(to: counter)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    func write(_ relative: String, _ text: String) throws {
        let url = dir.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: false, encoding: .utf8)
    }

    func url(_ relative: String) -> URL { dir.appendingPathComponent(relative) }

    /// Cell ids executed since the last call (and clears the counter).
    func takeExecutions() throws -> [String] {
        let text = try String(contentsOf: counter, encoding: .utf8)
        try Data().write(to: counter)
        return text.split(separator: "\n").map(String.init).sorted()
    }

    var storeURL: URL { dir.appendingPathComponent(".pdpipe") }

    func runner(_ file: String, overrides: [String] = []) throws -> Runner {
        let spec = try SpecLoader.load(url(file), overrides: overrides)
        return Runner(expansion: try Expansion.expand(spec), store: try Store(root: storeURL))
    }

    @discardableResult
    func run(_ file: String, overrides: [String] = [], force: [String] = [], keepGoing: Bool = false,
             jobs: Int = 2) throws -> RunSummary {
        var options = RunOptions()
        options.force = force
        options.keepGoing = keepGoing
        options.jobs = jobs
        return try runner(file, overrides: overrides).run(options, command: "test", isCancelled: { false }, observe: { _ in })
    }

    func plan(_ file: String, overrides: [String] = []) throws -> [String: StageAction] {
        let lines = try runner(file, overrides: overrides).plan(RunOptions())
        return Dictionary(uniqueKeysWithValues: lines.map { ($0.id, $0.action) })
    }

    /// The scenario pipeline. `prep` reads a data file and a param; `train` is swept over `train.lr`;
    /// `parity` depends only on the NUMBER of lines of prep's output (early-cutoff probe);
    /// `evaluate` writes metrics; `summary` consumes parity only.
    func writeScenario() throws {
        let log = "echo $PDPIPE_STAGE >> '\(counter.path)'"
        try write("data/input.txt", "1\n2\n3\n")
        try write("pipelines/scenario.yaml", """
            params:
              prep:
                factor: 2
              train:
                lr: 0.1
              eval:
                mode: fast
            stages:
              prep:
                kind: shell
                deps: [data/input.txt]
                params: [prep.factor]
                cmd: \(log); awk -v f=$PDPIPE_PARAM_PREP_FACTOR '{ print $1 * f }' $PDPIPE_PROJECT_DIR/data/input.txt > prepped.txt
                outs: [prepped.txt]
              parity:
                kind: shell
                needs: [prep]
                cmd: \(log); n=$(wc -l < ${inputs.prep}/prepped.txt); echo $((n % 2)) > parity.txt
                outs: [parity.txt]
              summary:
                kind: shell
                needs: [parity]
                cmd: \(log); cp $PDPIPE_IN_PARITY/parity.txt summary.txt
                outs: [summary.txt]
              train:
                kind: shell
                needs: [prep]
                cmd: \(log); awk -v lr=${train.lr} '{ s += $1 * lr } END { print s }' ${inputs.prep}/prepped.txt > model.txt
                outs: [model.txt]
              evaluate:
                kind: shell
                needs: [train]
                params: [eval.mode]
                cmd: >-
                  \(log); echo "{\\"score\\": $(cat ${inputs.train}/model.txt)}" > metrics.json
                outs: [metrics.json]
            """)
        try write("experiments/sweep.yaml", """
            pipeline: ../pipelines/scenario.yaml
            matrix:
              train.lr: [0.1, 0.2]
            """)
    }

    static let allScenarioCells = [
        "evaluate@lr=0.1", "evaluate@lr=0.2", "parity", "prep", "summary", "train@lr=0.1", "train@lr=0.2",
    ]
}
