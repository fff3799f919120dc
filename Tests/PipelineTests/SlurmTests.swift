import Foundation
import Testing
@testable import Pipeline

/// A one-node Slurm cluster on localhost (`scripts/slurm-local`), one per test, stopped by its PIDs.
final class LocalSlurm: @unchecked Sendable {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/slurm-local")

    /// Slurm's daemons installed (`scripts/install-deps` installs them; CI has them).
    static var available: Bool {
        ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch"].allSatisfy(FileManager.default.isExecutableFile)
    }

    let directory: String
    let conf: String
    /// The environment for the driver and Slurm's tools: this cluster's SLURM_CONF.
    var environment: [String: String] {
        CLITests.environment(["SLURM_CONF": conf])
    }

    init() throws {
        let out = try Self.shell(Self.script.path, ["start"])
        var values: [String: String] = [:]
        for line in out.split(separator: "\n") {
            if let eq = line.firstIndex(of: "=") { values[String(line[..<eq])] = String(line[line.index(after: eq)...]) }
        }
        guard let dir = values["PDS_DIR"], let conf = values["SLURM_CONF"] else {
            throw CLITests.CLIError("slurm-local start printed no SLURM_CONF: \(out)")
        }
        (directory, self.conf) = (dir, conf)
    }

    deinit {
        // Jobs a test left behind (a killed driver's) would keep processes after the daemons stop.
        _ = try? tool("scancel", ["--me"])
        _ = try? Self.shell(Self.script.path, ["stop", directory])
    }

    /// Runs a Slurm client tool against this cluster; stdout.
    func tool(_ name: String, _ args: [String]) throws -> String {
        try Self.shell("/usr/bin/" + name, args, environment: environment)
    }

    /// `scontrol show job -o ID` as fields.
    func job(_ id: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for field in try tool("scontrol", ["show", "job", "-o", id]).split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            if let eq = field.firstIndex(of: "=") { out[String(field[..<eq])] = String(field[field.index(after: eq)...]) }
        }
        return out
    }

    /// Names of the jobs that ran to completion here (Slurm's jobcomp/filetxt log), one per job.
    func completedJobNames() throws -> [String] {
        let text = (try? String(contentsOfFile: directory + "/jobcomp.txt", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.contains("JobState=COMPLETED") else { return nil }
            return fields.first { $0.hasPrefix("Name=") }.map { String($0.dropFirst(5)) }
        }
    }

    static func shell(_ path: String, _ args: [String], environment: [String: String]? = nil) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        if let environment { p.environment = environment }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.standardError
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw CLITests.CLIError("\(path) \(args.joined(separator: " ")) exited \(p.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// `pdpipe ARGS` (the built binary) with this cluster's environment, started.
    func start(_ args: [String], in dir: URL) throws -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = try CLITests.binary()
        p.arguments = args
        p.currentDirectoryURL = dir
        p.environment = environment
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        return (p, out, err)
    }

    func pdpipe(_ args: [String], in dir: URL) throws -> CLITests.Result { CLITests.finish(try start(args, in: dir)) }
}

/// `pdpipe run --executor slurm` against a real local Slurm: skipped where Slurm is not installed.
@Suite(.serialized, .enabled(if: LocalSlurm.available, "slurmctld/slurmd not installed (scripts/install-deps)"))
struct SlurmTests {
    /// Artifact digest per cell id, as recorded in the store's SQLite.
    static func digests(_ f: Fixture, _ file: String) throws -> [String: String] {
        let runner = try f.runner(file)
        var out: [String: String] = [:]
        for (cell, key) in try runner.store.currentKeys(scope: runner.scope) {
            out[cell] = try runner.store.result(forKey: key)?.artifact
        }
        return out
    }

    /// The order the shell stages really executed in (the counter file, appended at each start).
    static func executionOrder(_ f: Fixture) throws -> [String] {
        try String(contentsOf: f.counter, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    @Test func everyStaleStageRunsOnceAsAJobInDependencyOrderWithTheLocalDigests() throws {
        let slurm = try LocalSlurm()
        let f = try Fixture()
        try f.writeScenario()
        let run = try slurm.pdpipe(["run", "experiments/sweep.yaml", "--executor", "slurm"], in: f.dir)
        #expect(run.status == 0, "\(run.out)\n\(run.err)")
        #expect(run.out.contains("7 ran"))
        let order = try Self.executionOrder(f)
        #expect(order.sorted() == Fixture.allScenarioCells)
        func before(_ a: String, _ b: String) -> Bool { (order.firstIndex(of: a) ?? .max) < (order.firstIndex(of: b) ?? -1) }
        for (up, down) in [("prep", "parity"), ("parity", "summary"), ("prep", "train@lr=0.1"), ("prep", "train@lr=0.2"),
                           ("train@lr=0.1", "evaluate@lr=0.1"), ("train@lr=0.2", "evaluate@lr=0.2")] {
            #expect(before(up, down), "\(up) must run before \(down): \(order)")
        }
        // Each one was a Slurm job of its own (Slurm's job completion log), and only these.
        #expect(try slurm.completedJobNames().sorted() == Fixture.allScenarioCells.map { "pdpipe:" + $0 })
        #expect(try f.runner("experiments/sweep.yaml").store.integrityCheck() == "ok")

        // The same outputs, byte for byte, as the local executor's.
        let local = try Fixture()
        try local.writeScenario()
        try local.run("experiments/sweep.yaml")
        let slurmDigests = try Self.digests(f, "experiments/sweep.yaml")
        #expect(slurmDigests.count == 7)
        #expect(slurmDigests == (try Self.digests(local, "experiments/sweep.yaml")))

        // Nothing is stale now: nothing is submitted, for either executor.
        _ = try f.takeExecutions()
        let again = try slurm.pdpipe(["run", "experiments/sweep.yaml", "--executor", "slurm"], in: f.dir)
        #expect(again.status == 0 && again.out.contains("0 ran, 7 up-to-date"), "\(again.out)")
        #expect(try slurm.completedJobNames().count == 7)
        #expect(try f.plan("experiments/sweep.yaml").values.allSatisfy { $0 == .upToDate })

        // An edit reruns only its readers, as jobs; the unchanged rest is not submitted.
        let edit = try slurm.pdpipe(["run", "experiments/sweep.yaml", "--executor", "slurm", "-S", "eval.mode=slow"], in: f.dir)
        #expect(edit.status == 0 && edit.out.contains("2 ran, 5 up-to-date"), "\(edit.out)")
        #expect(try f.takeExecutions() == ["evaluate@lr=0.1", "evaluate@lr=0.2"])
        #expect(try slurm.completedJobNames().count == 9)
    }

    @Test func aFailingStageCancelsItsDependantsAndTheDriverExitsOne() throws {
        let slurm = try LocalSlurm()
        let f = try Fixture()
        let log = "echo $PDPIPE_STAGE >> '\(f.counter.path)'"
        try f.write("pipelines/fail.yaml", """
            stages:
              first: {kind: shell, cmd: "\(log); echo 1 > a.txt", outs: [a.txt]}
              bad: {kind: shell, needs: [first], cmd: "\(log); exit 3"}
              child: {kind: shell, needs: [bad], cmd: "\(log); echo 2 > c.txt", outs: [c.txt]}
              grandchild: {kind: shell, needs: [child], cmd: "\(log); echo 3 > g.txt", outs: [g.txt]}
              other: {kind: shell, needs: [first], cmd: "\(log); echo 4 > o.txt", outs: [o.txt]}
            """)
        let run = try slurm.pdpipe(["run", "pipelines/fail.yaml", "--executor", "slurm"], in: f.dir)
        #expect(run.status == 1, "\(run.out)\n\(run.err)")
        #expect(run.out.contains("FAILED bad: Slurm job"))
        #expect(run.out.contains("exit 1:0"))
        #expect(run.out.contains("SKIPPED child (upstream `bad` did not complete)"))
        #expect(run.out.contains("SKIPPED grandchild (upstream `child` did not complete)"))
        #expect(run.out.contains("2 ran, 1 failed, 2 skipped"))
        #expect(try f.takeExecutions() == ["bad", "first", "other"])
        // Slurm itself cancelled the dependants (afterok can never be met: --kill-on-invalid-dep).
        for stage in ["child", "grandchild"] {
            let line = run.out.split(separator: "\n").first { $0.hasPrefix("RUN \(stage) ") }
            let jobID = line.flatMap { l in l.range(of: "Slurm job ").map { String(l[$0.upperBound...].prefix { $0.isNumber }) } }
            #expect(jobID != nil, "\(run.out)")
            if let jobID {
                let job = try slurm.job(jobID)
                #expect(job["JobState"] == "CANCELLED" && job["Reason"] == "DependencyNeverSatisfied", "\(job)")
            }
        }
        // The failure is in the run's history; nothing of it was recorded as a result.
        #expect(try slurm.pdpipe(["logs"], in: f.dir).out.contains("failed bad"))
        let plan = try f.plan("pipelines/fail.yaml")
        #expect(plan["first"] == .upToDate && plan["other"] == .upToDate && plan["bad"] == .run)
    }

    @Test func aKilledDriverRestartedFinishesWithoutRecomputingFinishedStages() throws {
        let slurm = try LocalSlurm()
        let f = try Fixture()
        let log = "echo $PDPIPE_STAGE >> '\(f.counter.path)'"
        try f.write("pipelines/slow.yaml", """
            stages:
              first: {kind: shell, cmd: "\(log); echo 1 > a.txt", outs: [a.txt]}
              slow: {kind: shell, needs: [first], cmd: "\(log); sleep 3; echo 2 > s.txt", outs: [s.txt]}
              after: {kind: shell, needs: [slow], cmd: "\(log); cat $PDPIPE_IN_SLOW/s.txt > z.txt", outs: [z.txt]}
              last: {kind: shell, needs: [after], cmd: "\(log); cat $PDPIPE_IN_AFTER/z.txt > l.txt", outs: [l.txt]}
            """)
        let driver = try slurm.start(["run", "pipelines/slow.yaml", "--executor", "slurm"], in: f.dir)
        // Kill the driver (SIGKILL: no cleanup) while `slow` runs as a job, after `first` finished.
        let deadline = Date().addingTimeInterval(30)
        while try !Self.executionOrder(f).contains("slow") && Date() < deadline { usleep(50_000) }
        #expect(try Self.executionOrder(f) == ["first", "slow"])
        kill(driver.0.processIdentifier, SIGKILL)
        driver.0.waitUntilExit()

        let restart = try slurm.pdpipe(["run", "pipelines/slow.yaml", "--executor", "slurm"], in: f.dir)
        #expect(restart.status == 0, "\(restart.out)\n\(restart.err)")
        // `first` is adopted from its job's completion record, `slow` from the orphaned job still
        // running (the resubmitted job waits for its lock, finds the record and computes nothing).
        // (The killed driver may have recorded it already: then it is UP-TO-DATE; never resubmitted.)
        #expect(!restart.out.contains("RUN first"), "\(restart.out)")
        #expect(restart.out.contains("  done first") || restart.out.contains("UP-TO-DATE first"), "\(restart.out)")
        // Wait for the orphaned `after` job of the killed driver too, then count executions.
        let quiet = Date().addingTimeInterval(30)
        while try !slurm.tool("squeue", ["--me", "-h"]).isEmpty && Date() < quiet { usleep(100_000) }
        #expect(try f.takeExecutions() == ["after", "first", "last", "slow"])
        #expect(try slurm.completedJobNames().filter { $0 == "pdpipe:first" }.count == 1)
        #expect(try f.plan("pipelines/slow.yaml").values.allSatisfy { $0 == .upToDate })
        #expect(try f.runner("pipelines/slow.yaml").store.integrityCheck() == "ok")
        // `last` derived the keys of three unrecorded stages upstream from their completion records.
        #expect(try Self.digests(f, "pipelines/slow.yaml").count == 4)
    }
    @Test func ctrlCOfTheDriverCancelsItsJobs() throws {
        let slurm = try LocalSlurm()
        let f = try Fixture()
        let log = "echo $PDPIPE_STAGE >> '\(f.counter.path)'"
        try f.write("pipelines/long.yaml", """
            stages:
              long: {kind: shell, cmd: "\(log); sleep 60; echo 1 > l.txt", outs: [l.txt]}
              after: {kind: shell, needs: [long], cmd: "\(log); cp $PDPIPE_IN_LONG/l.txt a.txt", outs: [a.txt]}
            """)
        let driver = try slurm.start(["run", "pipelines/long.yaml", "--executor", "slurm"], in: f.dir)
        let deadline = Date().addingTimeInterval(30)
        while try !Self.executionOrder(f).contains("long") && Date() < deadline { usleep(50_000) }
        #expect(try slurm.tool("squeue", ["--me", "-h"]).split(separator: "\n").count == 2)
        let interruptedAt = Date()
        kill(driver.0.processIdentifier, SIGINT)
        let result = CLITests.finish(driver)
        #expect(result.status == 130, "\(result.out)\n\(result.err)")
        #expect(result.out.contains("INTERRUPTED long"))
        // Both jobs leave the queue well before `long` could have finished.
        while try !slurm.tool("squeue", ["--me", "-h"]).isEmpty && Date().timeIntervalSince(interruptedAt) < 30 { usleep(100_000) }
        #expect(try slurm.tool("squeue", ["--me", "-h"]).isEmpty)
        #expect(Date().timeIntervalSince(interruptedAt) < 20)
        #expect(try f.takeExecutions() == ["long"])
        #expect(try slurm.completedJobNames().isEmpty)
        #expect(try f.plan("pipelines/long.yaml")["long"] == .run)
    }
    /// The project's `pdpipe.yaml` chooses Slurm and per-kind options; `status` shows the jobs in
    /// flight and `logs` finds their output while the driver runs.
    @Test func projectExecutorSectionPerKindOptionsAndJobsInFlight() throws {
        let slurm = try LocalSlurm()
        let f = try Fixture()
        try f.write("pdpipe.yaml", """
            executor:
              kind: slurm
              time: 10
              per_kind:
                shell: {time: "7"}
            """)
        try f.write("pipelines/long.yaml", """
            stages:
              long: {kind: shell, cmd: "echo started; sleep 60; echo 1 > l.txt", outs: [l.txt]}
            """)
        let driver = try slurm.start(["run", "pipelines/long.yaml"], in: f.dir)
        var line = ""
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let status = try slurm.pdpipe(["status", "pipelines/long.yaml"], in: f.dir)
            if let l = status.out.split(separator: "\n").first(where: { $0.hasPrefix("JOB ") && $0.contains(" RUNNING long ") }) {
                line = String(l); break
            }
            usleep(200_000)
        }
        #expect(!line.isEmpty, "no JOB line in status")
        let jobID = String(line.split(separator: " ")[1])
        #expect(try slurm.job(jobID)["TimeLimit"] == "00:07:00")
        var logs = CLITests.Result(status: 1, out: "", err: "")
        while Date() < deadline {
            logs = try slurm.pdpipe(["logs", "long"], in: f.dir)
            if logs.out.contains("started") { break }
            usleep(200_000)
        }
        #expect(logs.out.contains("started"), "\(logs.out)\n\(logs.err)")
        kill(driver.0.processIdentifier, SIGINT)
        #expect(CLITests.finish(driver).status == 130)
        #expect(!(try slurm.pdpipe(["status", "pipelines/long.yaml"], in: f.dir)).out.contains("JOB "))

        try f.write("pdpipe.yaml", "executor: {kind: slurm, per_kind: {trian: {time: 5}}, cpu: 2}\n")
        let bad = try slurm.pdpipe(["run", "pipelines/long.yaml"], in: f.dir)
        #expect(bad.status == 2)
        #expect(bad.err.contains("pdpipe.yaml:1:36: executor per_kind: unknown stage kind `trian` (did you mean `train`?)"), "\(bad.err)")
        #expect(bad.err.contains("pdpipe.yaml:1:55: unknown executor key `cpu` (did you mean `cpus`?)"), "\(bad.err)")
    }

    /// A training job requeued mid-run (as preemption does) stops at a checkpoint, runs again,
    /// resumes from it and ends with the bytes of an uninterrupted local run.
    @Test func aRequeuedTrainingJobResumesFromItsCheckpoint() throws {
        let slurm = try LocalSlurm()
        let pipeline = """
            stages:
              data: {kind: dataset, source: fashion-mnist, resolution: 16, max_images: 100}
              train: {kind: train, needs: [data], real_p: 1, model_channels: 16, channel_mult: [1, 2], num_blocks: 1,
                      attention_levels: [], batch: 16, kimg: 1.5, lr_rampup_kimg: 0.1, ema_kimg: 0.1,
                      checkpoint_kimg: 0.05, tick_kimg: 0.05}
            """
        let (onSlurm, local) = (try Fixture(), try Fixture())
        for f in [onSlurm, local] { try f.write("pipelines/t.yaml", pipeline) }
        let threads = RunOptions().threads
        let driver = try slurm.start(["run", "pipelines/t.yaml", "--executor", "slurm", "--slurm-option", "cpus=\(threads)"], in: onSlurm.dir)
        // Requeue the train job once it has logged a few ticks (so a checkpoint exists).
        let deadline = Date().addingTimeInterval(120)
        var requeued = ""
        while requeued.isEmpty && Date() < deadline {
            for file in LogsCommandOutputs.files(onSlurm) where file.lastPathComponent.hasPrefix("train.") {
                let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
                if text.components(separatedBy: "train: kimg").count > 3 {
                    requeued = String(file.lastPathComponent.split(separator: ".")[1])
                    _ = try slurm.tool("scontrol", ["requeue", requeued])
                }
            }
            usleep(100_000)
        }
        #expect(!requeued.isEmpty, "the train job never logged three ticks")
        let result = CLITests.finish(driver)
        #expect(result.status == 0, "\(result.out)\n\(result.err)")
        let output = try String(contentsOf: try #require(LogsCommandOutputs.files(onSlurm).first { $0.lastPathComponent.hasPrefix("train.") }),
                                encoding: .utf8)
        #expect(output.contains("train: resumed from the checkpoint at step"), "\(output)")
        #expect(try CLITests.pdpipe(["run", "pipelines/t.yaml"], in: local.dir).status == 0)
        #expect(try Self.digests(onSlurm, "pipelines/t.yaml")["train"] == (try Self.digests(local, "pipelines/t.yaml"))["train"])
    }

    /// A training longer than its job's time limit: Slurm kills it (TIMEOUT) after it checkpoints,
    /// the driver submits it again, and the new job resumes and finishes with an uninterrupted run's bytes.
    @Test func aTimedOutTrainingIsSubmittedAgainAndResumes() throws {
        let slurm = try LocalSlurm()
        let pipeline = """
            params:
              train: {kimg: 0.5}
            stages:
              data: {kind: dataset, source: fashion-mnist, resolution: 16, max_images: 100}
              train: {kind: train, needs: [data], real_p: 1, model_channels: 32, channel_mult: [1, 2], num_blocks: 1,
                      attention_levels: [], batch: 16, kimg: "${train.kimg}", lr_rampup_kimg: 0.1, ema_kimg: 0.1,
                      checkpoint_kimg: 0.1, tick_kimg: 0.5}
            """
        let (calibration, onSlurm, local) = (try Fixture(), try Fixture(), try Fixture())
        for f in [calibration, onSlurm, local] { try f.write("pipelines/t.yaml", pipeline) }
        // The training must outlast the 1-minute limit (enforced at Slurm's next check, up to ~30 s
        // later) with a wide margin on any machine: size it to ~180 s from a short run here.
        #expect(try CLITests.pdpipe(["run", "pipelines/t.yaml"], in: calibration.dir).status == 0)
        let runner = try calibration.runner("pipelines/t.yaml")
        let seconds = try #require(try runner.store.result(forKey: try runner.store.currentKeys(scope: runner.scope)["train"] ?? "")?
            .measurements["wall_seconds"])
        let kimg = String(format: "%.1f", min(100, max(1, (180 / (seconds / 0.5) * 10).rounded(.up) / 10)))
        let threads = RunOptions().threads
        let run = try slurm.pdpipe(["run", "pipelines/t.yaml", "-S", "train.kimg=\(kimg)", "--executor", "slurm",
                                    "--slurm-option", "cpus=\(threads)", "--slurm-option", "time=1", "--slurm-option", "retries=5"],
                                   in: onSlurm.dir)
        #expect(run.status == 0, "\(run.out)\n\(run.err)")
        #expect((run.out + run.err).contains("ended TIMEOUT; submitted again as job"), "\(run.out)\n\(run.err)")
        let outputs = LogsCommandOutputs.files(onSlurm).filter { $0.lastPathComponent.hasPrefix("train.") }
        #expect(outputs.count >= 2)
        let resumed = try outputs.contains { try String(contentsOf: $0, encoding: .utf8).contains("train: resumed from the checkpoint at step") }
        #expect(resumed)
        #expect(try CLITests.pdpipe(["run", "pipelines/t.yaml", "-S", "train.kimg=\(kimg)"], in: local.dir).status == 0)
        #expect(try Self.digests(onSlurm, "pipelines/t.yaml")["train"] == (try Self.digests(local, "pipelines/t.yaml"))["train"])
    }

    @Test func aTinyTrainSampleFidSweepAsJobsEqualsTheLocalRun() throws {
        let slurm = try LocalSlurm()
        let pipeline = """
            params:
              train: {real_p: 0.5}
            stages:
              data: {kind: dataset, source: fashion-mnist, resolution: 16, max_images: 200}
              refstats: {kind: refstats, needs: [data], extractor: random-cnn}
              train: {kind: train, needs: [data], real_p: "${train.real_p}", model_channels: 16, channel_mult: [1, 2],
                      num_blocks: 1, attention_levels: [], batch: 16, kimg: 0.05, lr_rampup_kimg: 0.02, ema_kimg: 0.02,
                      checkpoint_kimg: 0.05, tick_kimg: 0.05}
              sample: {kind: sample, needs: [train], num_images: 10, steps: 4}
              fid: {kind: fid, needs: [sample, refstats]}
            """
        let experiment = "pipeline: ../pipelines/tiny.yaml\nmatrix:\n  train.real_p: [0.5, 1.0]\n"
        let (onSlurm, local) = (try Fixture(), try Fixture())
        for f in [onSlurm, local] {
            try f.write("pipelines/tiny.yaml", pipeline)
            try f.write("experiments/tiny.yaml", experiment)
        }
        // Engine results depend on the thread count: jobs get as many CPUs as a local run's threads.
        let threads = RunOptions().threads
        let run = try slurm.pdpipe(["run", "experiments/tiny.yaml", "--executor", "slurm", "--slurm-option", "cpus=\(threads)"],
                                   in: onSlurm.dir)
        #expect(run.status == 0, "\(run.out)\n\(run.err)")
        #expect(run.out.contains("8 ran"))
        // The reference run is the local executor in its own process (see the note on in-process heap corruption).
        #expect(try CLITests.pdpipe(["run", "experiments/tiny.yaml"], in: local.dir).status == 0)
        let digests = try Self.digests(onSlurm, "experiments/tiny.yaml")
        #expect(digests.count == 8)
        #expect(digests == (try Self.digests(local, "experiments/tiny.yaml")))
        // Metrics and measurements reached SQLite through the completion records.
        let runner = try onSlurm.runner("experiments/tiny.yaml")
        let fid = try runner.store.result(forKey: try runner.store.currentKeys(scope: runner.scope)["fid@real_p=0.5"] ?? "")
        #expect(fid?.metrics["SWD"] != nil)
        let train = try runner.store.result(forKey: try runner.store.currentKeys(scope: runner.scope)["train@real_p=1.0"] ?? "")
        #expect((train?.measurements["wall_seconds"] ?? 0) > 0)
        #expect(try slurm.completedJobNames().count == 8)
    }
    @Test func twoDriversOnOneStoreComputeEachStageOnce() throws {
        let slurm = try LocalSlurm()
        let f = try Fixture()
        try f.writeScenario()
        // Both submit every stage; the second job of a key waits for its lock and finds the record.
        let drivers = try (0..<2).map { _ in try slurm.start(["run", "experiments/sweep.yaml", "--executor", "slurm"], in: f.dir) }
        let results = drivers.map(CLITests.finish)
        for r in results { #expect(r.status == 0, "\(r.out)\n\(r.err)") }
        #expect(try f.takeExecutions() == Fixture.allScenarioCells)
        #expect(try f.plan("experiments/sweep.yaml").values.allSatisfy { $0 == .upToDate })
        #expect(try f.runner("experiments/sweep.yaml").store.integrityCheck() == "ok")
    }
}

/// The Slurm job output files of a fixture's store (every run).
enum LogsCommandOutputs {
    static func files(_ f: Fixture) -> [URL] {
        let out = f.storeURL.appendingPathComponent("jobs/out")
        let runs = (try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []
        return runs.flatMap { run in
            ((try? FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent(run).path)) ?? []).sorted()
                .map { out.appendingPathComponent(run).appendingPathComponent($0) }
        }
    }
}
