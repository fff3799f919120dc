import Foundation
import Testing
@testable import Pipeline

/// Issue 16: strict shell stages, orphan-free kills, `-S` rules, show/checkout, retention, estimates.
@Suite struct UsabilityTests {
    typealias CLI = CLITests

    /// True while `pid` is a live process (a zombie waiting for a reaper counts as gone).
    static func alive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    static func pids(_ url: URL) -> [Int32] {
        ((try? String(contentsOf: url, encoding: .utf8)) ?? "").split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
    }

    // MARK: 3. strict shell stages

    @Test func failingCommandInAListFailsTheStage() throws {
        let f = try Fixture()
        try f.write("input.txt", "hello\n")
        // The example: `cat` runs in the scratch directory, where input.txt is not.
        try f.write("pipelines/strict.yaml", """
            stages:
              copy:
                kind: shell
                deps: [input.txt]
                cmd: cat input.txt > o.txt; echo done
                outs: [o.txt]
              unset:
                kind: shell
                cmd: echo "$NO_SUCH_VARIABLE_PDPIPE" > u.txt
                outs: [u.txt]
              project:
                kind: shell
                deps: [input.txt]
                cmd: cat "$PDPIPE_PROJECT_DIR/input.txt" > o.txt
                outs: [o.txt]
            """)
        let r = try CLI.pdpipe(["run", "-k", "pipelines/strict.yaml"], in: f.dir)
        #expect(r.status == 1)
        #expect(r.out.contains("FAILED copy: command failed with exit status 1"), "\(r.out)")
        #expect(r.out.contains("input.txt: No such file"), "\(r.out)")
        #expect(!r.out.contains("  | done"))
        #expect(r.out.contains("FAILED unset: command failed with exit status 2"), "\(r.out)")
        #expect(r.out.contains("NO_SUCH_VARIABLE_PDPIPE"), "\(r.out)")
        #expect(r.out.contains("done project in"))
        #expect(try Reliability.results(f.storeURL).map(\.stage) == ["project"])
    }

    @Test func everyMissingOutIsNamed() throws {
        let f = try Fixture()
        try f.write("pipelines/outs.yaml", """
            stages:
              partial:
                kind: shell
                cmd: echo a > a.txt
                outs: [a.txt, b.txt, sub/c.txt]
            """)
        let r = try CLI.pdpipe(["run", "pipelines/outs.yaml"], in: f.dir)
        #expect(r.status == 1)
        #expect(r.out.contains("FAILED partial: declared outs `b.txt`, `sub/c.txt` not written by the command"), "\(r.out)")
        #expect(try Reliability.results(f.storeURL).isEmpty)
    }

    // MARK: 4. no orphans

    /// `kill -9` of `pdpipe run` while a stage's command and its own child run: both die with it.
    @Test func killNineOfTheRunnerLeavesNoStageProcess() throws {
        let f = try Fixture()
        let pidFile = f.url("pids")
        try f.write("pipelines/long.yaml", """
            stages:
              long:
                kind: shell
                cmd: sleep 300 & echo $! $$ > '\(pidFile.path)'; wait
                outs: [never.txt]
            """)
        let run = try CLI.start(["run", "pipelines/long.yaml"], in: f.dir)
        let deadline = Date().addingTimeInterval(20)
        while Self.pids(pidFile).count < 2 && Date() < deadline { usleep(20_000) }
        let stagePIDs = Self.pids(pidFile)
        defer { for p in stagePIDs { kill(p, SIGKILL) } }
        try #require(stagePIDs.count == 2)
        #expect(stagePIDs.allSatisfy(Self.alive))
        // Its own process group: a Ctrl-C at the terminal (the runner's group) does not reach it directly.
        #expect(getpgid(stagePIDs[1]) != getpgid(run.0.processIdentifier))
        kill(run.0.processIdentifier, SIGKILL)
        _ = CLI.finish(run)
        let gone = Date().addingTimeInterval(5)
        while stagePIDs.contains(where: Self.alive) && Date() < gone { usleep(20_000) }
        #expect(!stagePIDs.contains(where: Self.alive), "still running: \(stagePIDs.filter(Self.alive))")
    }

    // MARK: 5. overrides

    @Test func repeatedOverrideKeyIsAnErrorNamingBothValues() throws {
        let f = try Fixture()
        try f.writeScenario()
        let r = try CLI.pdpipe(["status", "experiments/sweep.yaml", "-S", "eval.mode=a", "-S", "eval.mode=b"], in: f.dir)
        #expect(r.status == 2)
        #expect(r.err.contains("`eval.mode=a` and `eval.mode=b`"), "\(r.err)")
        #expect(r.err.contains("-S eval.mode=a,b"))
        #expect(!FileManager.default.fileExists(atPath: f.storeURL.path))
    }

    /// `-S axis=value` runs that cell; the experiment's `report:` baseline and a table baseline follow it.
    @Test func oneValuedOverrideOfAnAxisRunsThatCell() throws {
        let f = try Fixture()
        try f.writeScenario()
        try f.write("experiments/tabled.yaml", """
            pipeline: ../pipelines/scenario.yaml
            matrix:
              train.lr: [0.1, 0.2]
            tables:
              scores:
                rows: [train.lr]
                baseline: {train.lr: 0.1}
                columns:
                  score: evaluate.score
                  vs base: evaluate.score / baseline(evaluate.score)
            report:
              baseline: {train.lr: 0.1}
              sort_by: lr
            """)
        let r = try CLI.pdpipe(["run", "experiments/tabled.yaml", "-S", "train.lr=0.1"], in: f.dir)
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(try f.takeExecutions() == ["evaluate", "parity", "prep", "summary", "train"])
        let report = try CLI.pdpipe(["report", "experiments/tabled.yaml", "-S", "train.lr=0.1"], in: f.dir)
        #expect(report.status == 0, "\(report.err)")
        #expect(report.out.contains("lr=0.1"), "\(report.out)")
        let bad = try CLI.pdpipe(["status", "experiments/tabled.yaml", "-S", "train.lr=0.3"], in: f.dir)
        #expect(bad.status == 2)
        #expect(bad.err.contains("experiments/tabled.yaml:12:"), "\(bad.err)")
        #expect(bad.err.contains("no value 0.1"), "\(bad.err)")
    }

    // MARK: 2. show and checkout

    @Test func showAndCheckoutReachTheOutputs() throws {
        let f = try Fixture()
        try f.writeScenario()
        #expect(try CLI.pdpipe(["run", "experiments/sweep.yaml"], in: f.dir).status == 0)
        let shown = try CLI.pdpipe(["show", "experiments/sweep.yaml", "train@lr=0.2", "--json"], in: f.dir)
        #expect(shown.status == 0, "\(shown.err)")
        let items = try #require(try JSONSerialization.jsonObject(with: Data(shown.out.utf8)) as? [[String: Any]])
        #expect(items.count == 1)
        let item = try #require(items.first)
        #expect(item["id"] as? String == "train@lr=0.2")
        #expect(item["state"] as? String == "up-to-date")
        let path = try #require(item["path"] as? String)
        #expect(path.hasPrefix(f.storeURL.path + "/objects/"))
        let files = try #require(item["files"] as? [[String: Any]])
        #expect(files.map { $0["path"] as? String } == ["model.txt"])
        #expect((files.first?["bytes"] as? Int ?? 0) == (try Data(contentsOf: URL(fileURLWithPath: path + "/model.txt"))).count)
        let text = try CLI.pdpipe(["show", "experiments/sweep.yaml", "evaluate"], in: f.dir)
        #expect(text.out.contains("evaluate@lr=0.1 (up-to-date)") && text.out.contains("metric score:"), "\(text.out)")

        let out = f.url("checked")
        let co = try CLI.pdpipe(["checkout", "experiments/sweep.yaml", "train", "-o", out.path], in: f.dir)
        #expect(co.status == 0, "\(co.err)")
        let copy = out.appendingPathComponent("train@lr=0.2/model.txt")
        var a = stat(), b = stat()
        #expect(stat(copy.path, &a) == 0 && stat(path + "/model.txt", &b) == 0)
        #expect(a.st_ino == b.st_ino, "a hard link to the stored object")
        #expect(a.st_mode & 0o222 == 0, "read-only")
        // Again: an earlier checkout is replaced; a foreign directory is not.
        #expect(try CLI.pdpipe(["checkout", "experiments/sweep.yaml", "train", "-o", out.path], in: f.dir).status == 0)
        try f.write("checked/prep/mine.txt", "user data\n")
        let refused = try CLI.pdpipe(["checkout", "experiments/sweep.yaml", "prep", "-o", out.path], in: f.dir)
        #expect(refused.status == 1 && refused.err.contains("was not made by `pdpipe checkout`"), "\(refused.err)")
        // The store still verifies (the objects' bytes are untouched).
        #expect(try CLI.pdpipe(["cache", "verify"], in: f.dir).status == 0)

        #expect(try CLI.pdpipe(["show", "experiments/sweep.yaml", "nope"], in: f.dir).status == 2)
        let stale = try CLI.pdpipe(["show", "experiments/sweep.yaml", "train@lr=0.3", "-S", "train.lr=0.3,0.4"], in: f.dir)
        #expect(stale.status == 1 && stale.err.contains("not computed yet"), "\(stale.err)")
    }
}

// MARK: 6. retention

extension UsabilityTests {
    static func objectCount(_ f: Fixture) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: f.storeURL.appendingPathComponent("objects").path).count
    }

    @Test func gcKeepsWhatTheProjectNeedsAndTheLastRuns() throws {
        let f = try Fixture()
        try f.writeScenario()
        #expect(try CLI.pdpipe(["run", "experiments/sweep.yaml"], in: f.dir).out.contains("7 ran"))
        #expect(try CLI.pdpipe(["run", "experiments/sweep.yaml", "-S", "train.lr=0.7"], in: f.dir).status == 0)
        #expect(try CLI.pdpipe(["run", "experiments/sweep.yaml", "-S", "prep.factor=3"], in: f.dir).status == 0)
        // Distinct outputs: the sweep's 7, train and evaluate at lr=0.7, and prep, 2 train, 2 evaluate at factor 3
        // (parity's output and summary's key do not change).
        #expect(try Self.objectCount(f) == 14)

        let dry = try CLI.pdpipe(["gc", "--dry-run", "--keep-runs", "0"], in: f.dir)
        #expect(dry.status == 0, "\(dry.err)")
        #expect(dry.out.split(separator: "\n").filter { $0.hasPrefix("would remove") }.count == 7, "\(dry.out)")
        #expect(dry.out.contains("  4 B  shell train\n"), "\(dry.out)")
        #expect(dry.out.contains("7 would be removed, 7 objects referenced"), "\(dry.out)")
        #expect(try Self.objectCount(f) == 14)

        // The last run (prep.factor=3) is kept; the older override run goes.
        let one = try CLI.pdpipe(["gc", "--keep-runs", "1"], in: f.dir)
        #expect(one.status == 0 && one.out.contains("2 removed, 12 objects referenced"), "\(one.out)\(one.err)")
        #expect(try Self.objectCount(f) == 12)
        #expect(try CLI.pdpipe(["status", "experiments/sweep.yaml"], in: f.dir).out.contains("0 to run"))
        #expect(try CLI.pdpipe(["status", "experiments/sweep.yaml", "-S", "prep.factor=3"], in: f.dir).out.contains("0 to run"))
        #expect(try CLI.pdpipe(["status", "experiments/sweep.yaml", "-S", "train.lr=0.7"], in: f.dir).out.contains("RUN train (never run)"))

        let zero = try CLI.pdpipe(["gc", "--keep-runs", "0"], in: f.dir)
        #expect(zero.status == 0 && zero.out.contains("5 removed, 7 objects referenced"), "\(zero.out)")
        #expect(try Self.objectCount(f) == 7)
        #expect(try CLI.pdpipe(["status", "experiments/sweep.yaml", "--exit-code"], in: f.dir).out.contains("0 to run"))
        #expect(try CLI.pdpipe(["status", "experiments/sweep.yaml", "-S", "prep.factor=3"], in: f.dir).out.contains("RUN prep"))
        #expect(try CLI.pdpipe(["cache", "verify"], in: f.dir).status == 0)
        let du = try CLI.pdpipe(["cache", "du"], in: f.dir)
        #expect(du.status == 0 && du.out.contains("shell") && du.out.contains("experiments/sweep.yaml") && du.out.contains("in 7 objects"), "\(du.out)")
    }

    /// gc during a run that reads an object no spec needs (an `-S` run): gc waits for the run, and the run completes.
    @Test func gcNeverRemovesAnObjectARunningRunUses() throws {
        let f = try Fixture()
        let started = f.url("b-started")
        try f.write("pipelines/conc.yaml", """
            params:
              x: {v: 1}
            stages:
              a:
                kind: shell
                params: [x.v]
                cmd: echo $PDPIPE_PARAM_X_V > a.txt
                outs: [a.txt]
              b:
                kind: shell
                needs: [a]
                cmd: touch '\(started.path)'; sleep 2; cat ${inputs.a}/a.txt > b.txt
                outs: [b.txt]
            """)
        let run = try CLI.start(["run", "pipelines/conc.yaml", "-S", "x.v=2"], in: f.dir)
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: started.path) && Date() < deadline { usleep(20_000) }
        let gc = try CLI.pdpipe(["gc", "--keep-runs", "0"], in: f.dir)
        let r = CLI.finish(run)
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(gc.status == 0, "\(gc.err)")
        #expect(gc.err.contains("waiting for the running `pdpipe run`s"), "\(gc.err)")
        // gc ran after the run: the -S run's objects are not needed by the spec, so they went then.
        #expect(gc.out.contains("2 removed, 0 objects referenced"), "\(gc.out)")
    }
}

// MARK: 7. cost estimates

extension UsabilityTests {
    /// After one tiny train + sample, `status` for twice the kimg and images estimates twice the
    /// recorded times (one record: the rate is exact), with a total, and `--json` carries it.
    @Test func statusEstimatesScaleRecordedTimesByWork() throws {
        let f = try Fixture()
        try Reliability.writePNGFolder(f.url("data/imgs"))
        try f.write("pipelines/tiny.yaml", """
            params:
              train: {kimg: 0.02}
              sample: {num_images: 4}
            stages:
              data: {kind: dataset, source: png-folder, path: data/imgs, resolution: 8, channels: 3}
              train:
                kind: train
                needs: [data]
                model_channels: 8
                channel_mult: [1, 2]
                num_blocks: 1
                batch: 2
                kimg: ${train.kimg}
                lr_rampup_kimg: 0
              sample: {kind: sample, needs: [train], num_images: "${sample.num_images}", steps: 3}
            """)
        #expect(try CLI.pdpipe(["run", "pipelines/tiny.yaml"], in: f.dir).status == 0)
        let recorded = Dictionary(uniqueKeysWithValues: try Reliability.results(f.storeURL).map { ($0.stage, $0) })
        let trainSeconds = try #require(try Store(root: f.storeURL).result(forKey: recorded["train"]!.key)).seconds
        let sampleSeconds = try #require(try Store(root: f.storeURL).result(forKey: recorded["sample"]!.key)).seconds

        let s = try CLI.pdpipe(["status", "pipelines/tiny.yaml", "-S", "train.kimg=0.04", "-S", "sample.num_images=8", "--json"], in: f.dir)
        #expect(s.status == 0, "\(s.err)")
        let items = try #require(try JSONSerialization.jsonObject(with: Data(s.out.utf8)) as? [[String: Any]])
        func estimate(_ id: String) -> Double? { (items.first { $0["id"] as? String == id }?["estimate"] as? [String: Any])?["seconds"] as? Double }
        let train = try #require(estimate("train"))
        // The sample's model changed (train reruns), but its FLOPs did not: twice the images, twice the time.
        let sample = try #require(estimate("sample"))
        // Twice the kimg EXTENDS the recorded run: only the second half is still to train.
        #expect(abs(train / trainSeconds - 1) < 0.05, "train \(train) vs recorded \(trainSeconds)")
        #expect(abs(sample / (2 * sampleSeconds) - 1) < 0.05, "sample \(sample) vs recorded \(sampleSeconds)")
        #expect(estimate("data") == nil)

        let text = try CLI.pdpipe(["status", "pipelines/tiny.yaml", "-S", "train.kimg=0.04"], in: f.dir)
        #expect(text.out.contains("EXTEND train (from 0.02 kimg (key ") && text.out.contains(")) ~"), "\(text.out)")
        #expect(text.out.contains("estimated run time: ~"), "\(text.out)")
        let check = try CLI.pdpipe(["cache", "estimates"], in: f.dir)
        #expect(check.status == 0)
    }
}

// MARK: 1. install

extension UsabilityTests {
    /// scripts/install links the binary into a bin directory on the PATH and installs bash completion.
    @Test func installLinksTheBinaryAndCompletion() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("pdpipe-install-" + UUID().uuidString)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let bin = tmp.appendingPathComponent("bin"), completions = tmp.appendingPathComponent("completions")
        let binary = try CLI.binary()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [root.appendingPathComponent("scripts/install").path, "--binary", binary.path, "--bin-dir", bin.path]
        var env = ProcessInfo.processInfo.environment
        env["PDPIPE_COMPLETION_DIR"] = completions.path
        env["PATH"] = bin.path + ":" + (env["PATH"] ?? "/usr/bin:/bin")
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
        let link = bin.appendingPathComponent("pdpipe").path
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == binary.standardizedFileURL.resolvingSymlinksInPath().path)
        #expect(text.contains("pdpipe is on the PATH: \(link)"), "\(text)")
        let completion = try String(contentsOf: completions.appendingPathComponent("pdpipe"), encoding: .utf8)
        #expect(completion.contains("_pdpipe()") && completion.contains("checkout"))
        #expect(try CLI.runTool("/bin/bash", [root.appendingPathComponent("scripts/install").path, "--bogus"]) == 2)
    }
}

/// The ETA of a stage that starts part-way (an extension from 40 of 80 kimg) comes from the rate of
/// this process's work, not from the recorded part.
@Suite struct ProgressEstimateTests {
    @Test func anExtensionsETACountsOnlyItsOwnProgress() {
        let t0 = Date(timeIntervalSince1970: 1000)
        let estimate = ProgressEstimate(start: t0, doneAtStart: 40)
        #expect(estimate.secondsLeft(done: 40, total: 80, now: t0) == nil)
        // 1 kimg in 10 s, 39 left: 390 s (counting the recorded 40 would say ~9.5 s).
        let left = estimate.secondsLeft(done: 41, total: 80, now: t0.addingTimeInterval(10))
        #expect(abs((left ?? 0) - 390) < 1e-9)
        #expect(ProgressEstimate(start: t0, doneAtStart: 0).secondsLeft(done: 20, total: 80, now: t0.addingTimeInterval(10)) == 30)
        #expect(estimate.secondsLeft(done: 80, total: 80, now: t0.addingTimeInterval(400)) == 0)
    }
}

/// A gathering stage's reason line counts many changed components of one kind instead of listing them.
@Suite struct ReasonLineTests {
    @Test func manyChangedInputsAreCounted() {
        let few = ["field.kimg", "param.train.kimg"]
        #expect(Runner.summarize(few) == "field.kimg, param.train.kimg")
        let many = ["gathered.axes", "gathered.cells"] + (1...5).map { "input.fid@seed=\($0)" } + (1...5).map { "measured.fid@seed=\($0)" }
        #expect(Runner.summarize(many) == "gathered.axes, gathered.cells, 5 input.*, 5 measured.*")
        // Up to the limit, everything is listed.
        let eight = (1...8).map { "input.s\($0)" }
        #expect(Runner.summarize(eight) == eight.joined(separator: ", "))
    }
}
