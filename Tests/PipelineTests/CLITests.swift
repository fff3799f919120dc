import Engine
import Foundation
import Testing
@testable import Pipeline

/// The built `pdpipe` binary: exit codes, no store writes on bad specs, SIGINT, concurrent runs.
@Suite struct CLITests {
    /// `pdpipe` next to the test bundle in the build products directory.
    static func binary() throws -> URL {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("pdpipe")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        throw CLIError("pdpipe binary not found near \(CommandLine.arguments[0]); run `swift build --build-tests`")
    }

    struct CLIError: Error, CustomStringConvertible { var description: String; init(_ d: String) { description = d } }

    struct Result { var status: Int32; var out: String; var err: String }

    /// The environment for a spawned `pdpipe`: this process's, with the compute backend and the
    /// OpenBLAS kernel the tests' in-process runs use, so results and keys of both agree bit for
    /// bit. (The binary's own defaults are oneDNN where it loads, and the best OpenBLAS kernel for
    /// the CPU, while the test process never runs `Engine.startUp` and keeps the library's pick:
    /// on CPUs where the two differ, e.g. Prescott against SkylakeX, sgemm's last bits differ.
    /// `BackendKeyTests` spawns it on each backend explicitly.)
    static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        ProcessInfo.processInfo.environment
            .merging(["PDPIPE_BACKEND": Engine.defaultBackend.name, "PDPIPE_BLAS_KERNEL": BLASKernel.report.core]) { $1 }
            .merging(extra) { $1 }
    }

    static func start(_ args: [String], in dir: URL, environment extra: [String: String] = [:]) throws -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = try binary()
        p.arguments = args
        p.currentDirectoryURL = dir
        p.environment = environment(extra)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        return (p, out, err)
    }

    static func finish(_ started: (Process, Pipe, Pipe)) -> Result {
        let out = started.1.fileHandleForReading.readDataToEndOfFile()
        let err = started.2.fileHandleForReading.readDataToEndOfFile()
        started.0.waitUntilExit()
        return Result(status: started.0.terminationStatus, out: String(decoding: out, as: UTF8.self),
                      err: String(decoding: err, as: UTF8.self))
    }

    static func pdpipe(_ args: [String], in dir: URL, environment: [String: String] = [:]) throws -> Result {
        finish(try start(args, in: dir, environment: environment))
    }

    /// Runs another program (chmod...) and waits for it.
    static func runTool(_ path: String, _ args: [String]) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    @Test func exitCodesForRunStatusAndFailures() throws {
        let f = try Fixture()
        try f.writeScenario()
        let first = try Self.pdpipe(["run", "experiments/sweep.yaml", "-j", "2"], in: f.dir)
        #expect(first.status == 0)
        #expect(first.out.contains("7 ran"))
        let clean = try Self.pdpipe(["status", "experiments/sweep.yaml", "--exit-code"], in: f.dir)
        #expect(clean.status == 0)
        #expect(clean.out.contains("0 to run, 0 to restore, 7 up-to-date"))
        let stale = try Self.pdpipe(["status", "experiments/sweep.yaml", "--exit-code", "-S", "eval.mode=slow"], in: f.dir)
        #expect(stale.status == 3)
        #expect(stale.out.contains("RUN evaluate@lr=0.1 (changed: param.eval.mode)"))
        let dry = try Self.pdpipe(["run", "-n", "experiments/sweep.yaml", "-S", "eval.mode=slow"], in: f.dir)
        #expect(dry.status == 0 && dry.out.contains("2 to run, 0 to restore, 5 up-to-date"))
        #expect(try f.takeExecutions() == Fixture.allScenarioCells)
        let why = try Self.pdpipe(["why", "experiments/sweep.yaml", "evaluate@lr=0.2", "-S", "eval.mode=slow"], in: f.dir)
        #expect(why.out.contains("param.eval.mode: \"fast\" -> \"slow\""))

        try f.write("pipelines/fail.yaml", "stages:\n  bad:\n    kind: shell\n    cmd: exit 4\n")
        let failed = try Self.pdpipe(["run", "pipelines/fail.yaml"], in: f.dir)
        #expect(failed.status == 1)
        #expect(failed.out.contains("FAILED bad: command failed with exit status 4"))
        #expect(try Self.pdpipe(["logs"], in: f.dir).out.contains("failed bad"))
    }

    @Test func badSpecExitsTwoAndWritesNoStore() throws {
        let f = try Fixture()
        try f.write("pipelines/bad.yaml", "stages:\n  a:\n    kind: shell\n    comd: echo\n")
        let r = try Self.pdpipe(["run", "pipelines/bad.yaml"], in: f.dir)
        #expect(r.status == 2)
        #expect(r.err.contains("pipelines/bad.yaml:4:5: unknown field `comd` for stage kind `shell` (did you mean `cmd`?)"))
        #expect(!FileManager.default.fileExists(atPath: f.storeURL.path))
        let unknownFlag = try Self.pdpipe(["run", "pipelines/bad.yaml", "--bogus"], in: f.dir)
        #expect(unknownFlag.status == 2)
        #expect(!FileManager.default.fileExists(atPath: f.storeURL.path))
    }

    @Test func interruptStopsCleanlyWithNothingRecorded() throws {
        let f = try Fixture()
        try f.write("pipelines/slow.yaml", """
            stages:
              slow:
                kind: shell
                cmd: echo started > '\(f.url("started").path)'; sleep 20; echo done > out.txt
                outs: [out.txt]
            """)
        let started = try Self.start(["run", "pipelines/slow.yaml"], in: f.dir)
        let deadline = Date().addingTimeInterval(15)
        while !FileManager.default.fileExists(atPath: f.url("started").path) && Date() < deadline { usleep(20_000) }
        let t0 = Date()
        started.0.interrupt()
        let r = Self.finish(started)
        #expect(r.status == 130)
        #expect(Date().timeIntervalSince(t0) < 5)
        let status = try Self.pdpipe(["status", "pipelines/slow.yaml", "--exit-code"], in: f.dir)
        #expect(status.status == 3)
        #expect(status.out.contains("RUN slow (never run)"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: f.storeURL.appendingPathComponent("tmp").path)
        #expect(leftovers.isEmpty)
    }

    /// Four runs started together on a fresh store: one computation per stage, all exit 0 with the
    /// same recorded results, waiters name the holder, no "database is locked".
    @Test func concurrentRunsComputeEachStageOnce() throws {
        let f = try Fixture()
        let log = "echo $PDPIPE_STAGE >> '\(f.counter.path)'"
        try f.write("pipelines/shared.yaml", """
            stages:
              a:
                kind: shell
                cmd: \(log); sleep 1; echo a > a.txt
                outs: [a.txt]
              b:
                kind: shell
                needs: [a]
                cmd: \(log); cp $PDPIPE_IN_A/a.txt b.txt
                outs: [b.txt]
              c:
                kind: shell
                cmd: \(log); sleep 0.5; echo c > c.txt
                outs: [c.txt]
              d:
                kind: shell
                needs: [b, c]
                cmd: \(log); cat $PDPIPE_IN_B/b.txt $PDPIPE_IN_C/c.txt > d.txt
                outs: [d.txt]
            """)
        // No store yet: the four processes also race to create and migrate it.
        let started = try (0..<4).map { i in try Self.start(["run", "pipelines/shared.yaml", "-j", String(1 + i % 2)], in: f.dir) }
        let results = started.map(Self.finish)
        for r in results {
            #expect(r.status == 0, "\(r.out)\(r.err)")
            #expect(!(r.out + r.err).contains("database is locked"))
            // Every stage ends in this process as computed, restored from the other run, or up to date.
            for id in ["a", "b", "c", "d"] {
                #expect(r.out.contains("done \(id) in") || r.out.contains("RESTORE \(id)") || r.out.contains("UP-TO-DATE \(id)"),
                        "\(id) missing in: \(r.out)")
            }
        }
        #expect(try f.takeExecutions() == ["a", "b", "c", "d"])
        let pids = started.map { $0.0.processIdentifier }
        let waits = results.flatMap { $0.out.split(separator: "\n").filter { $0.hasPrefix("WAIT ") } }
        #expect(!waits.isEmpty)
        for w in waits {
            // `WAIT a: locked by pid N on HOST: .../pdpipe run pipelines/shared.yaml ...`
            let pid = Int32(w.split(separator: " ")[5]) ?? -1
            #expect(pids.contains(pid) && w.contains(" on \(ProcessInfo.processInfo.hostName): ") && w.contains("pdpipe run pipelines/shared.yaml"), "\(w)")
        }
        // One result per stage; every process agrees with the store.
        #expect(try Reliability.results(f.storeURL).map(\.stage).sorted() == ["a", "b", "c", "d"])
        let status = try Self.pdpipe(["status", "pipelines/shared.yaml", "--exit-code"], in: f.dir)
        #expect(status.status == 0 && status.out.contains("0 to run, 0 to restore, 4 up-to-date"))
    }

    /// A waiter names the holder; when the holder is SIGKILLed mid-stage, the waiter takes the lock
    /// over at once (the kernel drops a dead process's flock), says so, and computes the stage.
    @Test func staleLockOfAKilledHolderIsTakenOver() throws {
        let f = try Fixture()
        let pids = f.url("pids"), marker = f.url("first-started")
        try f.write("pipelines/slow.yaml", """
            stages:
              slow:
                kind: shell
                cmd: >-
                  echo $$ >> '\(pids.path)'; echo $PDPIPE_STAGE >> '\(f.counter.path)';
                  if [ ! -f '\(marker.path)' ]; then touch '\(marker.path)'; exec sleep 30; fi; echo ok > out.txt
                outs: [out.txt]
            """)
        defer {
            // The killed run's shell child is orphaned (still sleeping): end it.
            for pid in ((try? String(contentsOf: pids, encoding: .utf8)) ?? "").split(separator: "\n").compactMap({ Int32($0) }) {
                kill(pid, SIGKILL)
            }
        }
        let holder = try Self.start(["run", "pipelines/slow.yaml"], in: f.dir)
        let deadline = Date().addingTimeInterval(15)
        while !FileManager.default.fileExists(atPath: marker.path) && Date() < deadline { usleep(20_000) }
        let waiter = try Self.start(["run", "pipelines/slow.yaml"], in: f.dir)
        usleep(700_000)
        kill(holder.0.processIdentifier, SIGKILL)
        let t0 = Date()
        let r = Self.finish(waiter)
        _ = Self.finish(holder)
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(Date().timeIntervalSince(t0) < 10)
        #expect(r.out.contains("WAIT slow: locked by pid \(holder.0.processIdentifier) on \(ProcessInfo.processInfo.hostName)"))
        #expect(r.out.contains("warning: slow: took over the lock left by pid \(holder.0.processIdentifier)"), "\(r.out)")
        #expect(r.out.contains("done slow in"))
        #expect(try f.takeExecutions() == ["slow", "slow"])
        // A lock released normally leaves nothing to take over.
        let again = try Self.pdpipe(["run", "pipelines/slow.yaml", "-f", "slow"], in: f.dir)
        #expect(again.status == 0 && !again.out.contains("took over"))
    }
}
