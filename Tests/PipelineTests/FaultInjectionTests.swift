import Foundation
import Testing
@testable import Pipeline

/// Crash safety (issue 7.1): `pdpipe run` is SIGKILLed at seeded random moments over a pipeline of
/// shell stages and a tiny training stage. After every kill the store must be sound (SQLite
/// integrity, every recorded object present with its digest, no wrong result recorded as
/// complete); the next run must finish with results identical to an uninterrupted run, must not
/// redo what was recorded, and training must resume from its last checkpoint.
/// `PDPIPE_FAULT_TRIALS=50` runs the full campaign (default 10), `PDPIPE_FAULT_SEED` picks the seeds.
@Suite struct FaultInjectionTests {
    static let stages = ["prep", "data", "train", "digest", "summary"]

    /// Shell stages write several files over time; `train` checkpoints every 0.1 counted kimg.
    static func writeProject(_ f: Fixture) throws {
        try Reliability.writePNGFolder(f.url("data/imgs"))
        try f.write("pipelines/crash.yaml", """
            stages:
              prep:
                kind: shell
                cmd: for i in 1 2 3; do seq 1 $((i * 20000)) > part$i.txt; sleep 0.05; done
                outs: [part1.txt, part2.txt, part3.txt]
              data:
                kind: dataset
                source: png-folder
                path: data/imgs
                resolution: 8
                channels: 3
              train:
                kind: train
                needs: [data]
                model_channels: 8
                channel_mult: [1, 2]
                num_blocks: 1
                attention_levels: [1]
                batch: 2
                kimg: 1.0
                lr: 0.002
                lr_rampup_kimg: 0.01
                ema_kimg: 0.01
                checkpoint_kimg: 0.1
                tick_kimg: 0.1
              digest:
                kind: shell
                needs: [train, prep]
                cmd: cksum < ${inputs.train}/ema.pdt > ema.cksum; cat ${inputs.prep}/part*.txt | wc -l > lines.txt
                outs: [ema.cksum, lines.txt]
              summary:
                kind: shell
                needs: [digest, data]
                cmd: cat ${inputs.digest}/lines.txt ${inputs.data}/manifest.json > summary.txt
                outs: [summary.txt]
            """)
    }

    struct Stats {
        var trials = 0, kills = 0, landed = 0, failures = 0, resumed = 0, companions = 0, takeovers = 0
        var killedIn: [String: Int] = [:]
    }

    /// The artifact digest of each stage's current result. Artifacts hold content only, so an
    /// interrupted and resumed run must reproduce these digests exactly.
    static func currentContents(_ f: Fixture) throws -> [String: String] {
        let rows = try Reliability.results(f.storeURL)
        let cells = try Reliability.cells(f.storeURL)
        var out: [String: String] = [:]
        for (cell, key) in cells {
            guard let row = rows.first(where: { $0.key == key }) else { continue }
            out[cell] = row.artifact
        }
        return out
    }

    /// The invariants that must hold after any kill. Returns problems (empty when sound).
    static func checkStore(_ f: Fixture, reference: [String: String]) throws -> [String] {
        var problems: [String] = []
        let integrity = try Reliability.integrityCheck(f.storeURL)
        if integrity != "ok" { problems.append("integrity_check: \(integrity)") }
        for row in try Reliability.results(f.storeURL) {
            let object = f.storeURL.appendingPathComponent("objects/" + row.artifact)
            guard FileManager.default.fileExists(atPath: object.path) else {
                problems.append("\(row.cellID) recorded complete but object \(row.artifact.prefix(12)) is missing"); continue
            }
            if try Digest.tree(object) != row.artifact { problems.append("\(row.cellID): object does not match its digest") }
            if row.artifact != reference[row.cellID] {
                problems.append("\(row.cellID) recorded complete with content that differs from the uninterrupted run")
            }
        }
        // (A kill before the database file was created leaves nothing to verify.)
        if FileManager.default.fileExists(atPath: f.storeURL.appendingPathComponent("pdpipe.sqlite").path) {
            let verify = try CLITests.pdpipe(["cache", "verify"], in: f.dir)
            if verify.status != 0 { problems.append("cache verify: \(verify.out) \(verify.err)") }
        }
        return problems
    }

    /// Deterministic crashes at each step of the commit protocol (outputs written, hashed, fsynced,
    /// moved into objects/, recorded) of the 1st, 2nd and 4th stage to commit; shell stages only, so
    /// the whole grid runs in seconds. Each crash leaves a sound store and the next run completes
    /// without redoing what was recorded.
    @Test(arguments: FaultPoint.names)
    func crashAtEachCommitStepLeavesASoundStore(_ point: String) throws {
        let pipeline = """
            stages:
              a:
                kind: shell
                cmd: seq 1 1000 > a.txt; mkdir -p sub; echo nested > sub/n.txt
                outs: [a.txt, sub]
              b:
                kind: shell
                needs: [a]
                cmd: wc -l < ${inputs.a}/a.txt > b.txt
                outs: [b.txt]
              c:
                kind: shell
                cmd: echo c > c.txt
                outs: [c.txt]
              d:
                kind: shell
                needs: [b, c]
                cmd: cat ${inputs.b}/b.txt ${inputs.c}/c.txt > d.txt
                outs: [d.txt]
            """
        let ref = try Fixture()
        try ref.write("pipelines/p.yaml", pipeline)
        #expect(try CLITests.pdpipe(["run", "pipelines/p.yaml"], in: ref.dir).status == 0)
        let reference = try Self.currentContents(ref)
        for n in [1, 2, 4] {
            let f = try Fixture()
            try f.write("pipelines/p.yaml", pipeline)
            let crashed = try Self.crashRun(["run", "pipelines/p.yaml"], in: f.dir, faultPoint: "\(point):\(n)")
            #expect(crashed.0.terminationReason == .uncaughtSignal, "\(point):\(n) was not reached: \(crashed.1)")
            let problems = try Self.checkStore(f, reference: reference)
            #expect(problems.isEmpty, "\(point):\(n): \(problems)")
            // Before "recorded", the crashed stage is not recorded; after it, it is.
            let recorded = try Reliability.results(f.storeURL)
            #expect(recorded.count == (point == "recorded" ? n : n - 1), "\(point):\(n): \(recorded.map(\.cellID))")
            let finish = try CLITests.pdpipe(["run", "pipelines/p.yaml"], in: f.dir)
            #expect(finish.status == 0)
            #expect(finish.out.contains("\(4 - recorded.count) ran"), "\(point):\(n): \(finish.out)")
            #expect(try Self.currentContents(f) == reference)
            #expect(try Self.checkStore(f, reference: reference).isEmpty)
            // A crash after "recorded" leaves the stage's scratch behind; the next run sweeps it.
            let leftover = (try? FileManager.default.contentsOfDirectory(atPath: f.storeURL.appendingPathComponent("work").path)) ?? []
            #expect(leftover.isEmpty, "\(point):\(n): scratch left in work/: \(leftover)")
        }
    }

    /// A run killed while creating the store (database file made, tables not yet) leaves a store
    /// the next run migrates and completes; `cache verify` is happy with it in between.
    @Test func crashWhileCreatingTheStore() throws {
        let f = try Fixture()
        try f.write("pipelines/p.yaml", "stages:\n  a:\n    kind: shell\n    cmd: echo a > a.txt\n    outs: [a.txt]\n")
        let crashed = try Self.crashRun(["run", "pipelines/p.yaml"], in: f.dir, faultPoint: "store-opened:1")
        #expect(crashed.0.terminationReason == .uncaughtSignal)
        #expect(FileManager.default.fileExists(atPath: f.storeURL.appendingPathComponent("pdpipe.sqlite").path))
        #expect(try Reliability.results(f.storeURL).isEmpty)
        let verify = try CLITests.pdpipe(["cache", "verify"], in: f.dir)
        #expect(verify.status == 0 && verify.out.contains("database: ok"))
        let r = try CLITests.pdpipe(["run", "pipelines/p.yaml"], in: f.dir)
        #expect(r.status == 0 && r.out.contains("1 ran"))
    }

    /// Starts `pdpipe`, waits until it printed `afterLines` lines (or ended), sleeps `delay`, SIGKILLs it.
    static func killedRun(_ args: [String], in dir: URL, afterLines: Int, delay: Double) throws -> (process: Process, out: String) {
        let p = Process()
        p.executableURL = try CLITests.binary()
        p.arguments = args
        p.currentDirectoryURL = dir
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        let output = OutputBuffer()
        pipe.fileHandleForReading.readabilityHandler = { h in output.append(h.availableData) }
        try p.run()
        while p.isRunning && output.lines < afterLines { usleep(2_000) }
        usleep(UInt32(delay * 1_000_000))
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        pipe.fileHandleForReading.readabilityHandler = nil
        output.append(pipe.fileHandleForReading.readDataToEndOfFile())
        return (p, output.text)
    }

    final class OutputBuffer: @unchecked Sendable {
        private let lock = NSLock()
        private var data = Data()
        func append(_ d: Data) { lock.lock(); data.append(d); lock.unlock() }
        var lines: Int { lock.lock(); defer { lock.unlock() }; return data.filter { $0 == 10 }.count }
        var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
    }

    /// A SIGKILLed run's shell command lives on as an orphan. Even writing through absolute
    /// `$PWD` paths it must not reach the rerun's scratch directory, or its bytes would end up
    /// in a result recorded as complete.
    @Test func orphanedCommandOfAKilledRunCannotTouchTheRerun() throws {
        let f = try Fixture()
        let pids = f.url("pids")
        try f.write("pipelines/p.yaml", """
            stages:
              slow:
                kind: shell
                cmd: >-
                  echo $$ >> '\(pids.path)';
                  for i in 1 2 3 4 5 6 7 8; do echo $i >> "$PWD/log.txt"; sleep 0.1; done; cp log.txt out.txt
                outs: [out.txt]
            """)
        defer {
            for pid in ((try? String(contentsOf: pids, encoding: .utf8)) ?? "").split(separator: "\n").compactMap({ Int32($0) }) {
                kill(pid, SIGKILL)
            }
        }
        let killed = try Self.killedRun(["run", "pipelines/p.yaml"], in: f.dir, afterLines: 1, delay: 0.25)
        #expect(killed.process.terminationReason == .uncaughtSignal)
        let r = try CLITests.pdpipe(["run", "pipelines/p.yaml"], in: f.dir)
        #expect(r.status == 0)
        let object = try Reliability.results(f.storeURL).first { $0.cellID == "slow" }.map { f.storeURL.appendingPathComponent("objects/" + $0.artifact) }
        #expect(try object.map { try String(contentsOf: $0.appendingPathComponent("out.txt"), encoding: .utf8) } == "1\n2\n3\n4\n5\n6\n7\n8\n")
    }

    /// Runs pdpipe with a fault point set; returns the process and its output once it ended.
    static func crashRun(_ args: [String], in dir: URL, faultPoint: String) throws -> (Process, String) {
        let p = Process()
        p.executableURL = try CLITests.binary()
        p.arguments = args
        p.currentDirectoryURL = dir
        p.environment = CLITests.environment(["PDPIPE_FAULT_POINT": faultPoint])
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p, text)
    }

    @Test func sigkillAtRandomMomentsNeverLeavesAWrongResult() throws {
        let env = ProcessInfo.processInfo.environment
        let trials = Int(env["PDPIPE_FAULT_TRIALS"] ?? "") ?? 10
        let seed = UInt64(env["PDPIPE_FAULT_SEED"] ?? "") ?? 7

        // The uninterrupted run everything is compared with.
        let ref = try Fixture()
        try Self.writeProject(ref)
        let t0 = Date()
        let clean = try CLITests.pdpipe(["run", "pipelines/crash.yaml"], in: ref.dir)
        let wall = Date().timeIntervalSince(t0)
        let referenceLines = clean.out.split(separator: "\n").count
        try #require(clean.status == 0, "\(clean.out)\(clean.err)")
        let reference = try Self.currentContents(ref)
        try #require(Set(reference.keys) == Set(Self.stages))

        var stats = Stats()
        let started = Date()
        for trial in 0..<trials {
            var rng = Reliability.Random(seed: seed &* 1000 &+ UInt64(trial))
            let f = try Fixture()
            try Self.writeProject(f)
            let jobs = 1 + rng.int(2)
            var checkpoints: [String: Int] = [:]
            for attempt in 0..<(1 + rng.int(2)) {
                // Half the first kills come a random few ms after a random line of output (stage
                // started/done, progress), so they land mid-run however loaded the machine; the
                // others (and second kills, whose runs print less) at a random time.
                let byTime = attempt > 0 || rng.int(2) == 0
                let delay = byTime ? 0.02 + rng.unit() * wall * (attempt > 0 ? 0.6 : 1) : rng.unit() * 0.03
                let afterLines = byTime ? 0 : rng.int(max(1, referenceLines - 2))
                // In a third of the trials a second, unkilled run works on the same store at the same
                // time: it must finish everything (taking over the dead run's locks) and exit 0.
                let companion = attempt == 0 && rng.int(3) == 0 ? try CLITests.start(["run", "pipelines/crash.yaml"], in: f.dir) : nil
                let r = try Self.killedRun(["run", "pipelines/crash.yaml", "-j", String(jobs)], in: f.dir,
                                           afterLines: afterLines, delay: delay)
                let p = r.process
                if let companion {
                    let c = CLITests.finish(companion)
                    stats.companions += 1
                    #expect(c.status == 0, "trial \(trial): the concurrent run failed: \(c.out)\(c.err)")
                    #expect(!(c.out + c.err).contains("database is locked"))
                    if c.out.contains("took over the lock left by pid \(p.processIdentifier) ") { stats.takeovers += 1 }
                }
                stats.kills += 1
                if p.terminationReason == .uncaughtSignal {
                    stats.landed += 1
                    let running = r.out.split(separator: "\n").filter { $0.hasPrefix("RUN ") }.map { String($0.split(separator: " ")[1]) }
                    let done = Set(r.out.split(separator: "\n").compactMap { l -> String? in
                        l.hasPrefix("  done ") ? String(l.split(separator: " ")[1]) : nil })
                    let inFlight = running.filter { !done.contains($0) }
                    stats.killedIn[inFlight.isEmpty ? "(between stages)" : inFlight.joined(separator: "+"), default: 0] += 1
                }
                let problems = try Self.checkStore(f, reference: reference)
                #expect(problems.isEmpty, "trial \(trial) (seed \(seed), after \(afterLines) lines + \(delay) s): \(problems)")
                if !problems.isEmpty { stats.failures += 1 }
                for key in (try? FileManager.default.contentsOfDirectory(atPath: f.storeURL.appendingPathComponent("work").path)) ?? [] {
                    let ckpt = f.storeURL.appendingPathComponent("work/\(key)/checkpoint.pdt")
                    if FileManager.default.fileExists(atPath: ckpt.path) { checkpoints[key] = try Reliability.checkpointStep(ckpt) }
                }
            }
            let recorded = Set(try Reliability.results(f.storeURL).map(\.key))
            let finish = try CLITests.pdpipe(["run", "pipelines/crash.yaml", "-v"], in: f.dir)
            #expect(finish.status == 0, "trial \(trial): \(finish.out)\(finish.err)")
            #expect(!finish.err.contains("database is locked"))
            let problems = try Self.checkStore(f, reference: reference)
            #expect(problems.isEmpty, "trial \(trial) after the completing run: \(problems)")
            #expect(try Self.currentContents(f) == reference, "trial \(trial): results differ from the uninterrupted run")
            // What was recorded before is not computed again.
            let cells = try Reliability.cells(f.storeURL)
            let reran = finish.out.split(separator: "\n").filter { $0.hasPrefix("RUN ") }.map { String($0.split(separator: " ")[1]) }
            for id in reran where recorded.contains(cells[id] ?? "") {
                Issue.record("trial \(trial): \(id) was recorded complete before but ran again")
            }
            // Training resumed from the checkpoint the kill left (not from step 0).
            if let trainKey = cells["train"], let step = checkpoints[trainKey], reran.contains("train") {
                #expect(finish.out.contains("train: resumed from the checkpoint at step \(step)"),
                        "trial \(trial): expected a resume from step \(step)")
                if finish.out.contains("resumed from the checkpoint at step \(step)") && step > 0 { stats.resumed += 1 }
            }
            #expect(!FileManager.default.fileExists(atPath: f.storeURL.appendingPathComponent("work/" + (cells["train"] ?? "")).path))
            if !problems.isEmpty || finish.status != 0 { stats.failures += 1 }
            stats.trials += 1
        }
        let seconds = Date().timeIntervalSince(started)
        let places = stats.killedIn.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        print("fault injection: \(stats.trials) trials (seed \(seed)), \(stats.kills) kills, \(stats.landed) landed mid-run "
              + "[\(places)], \(stats.resumed) resumed training from a checkpoint, \(stats.companions) with a concurrent run "
              + "(\(stats.takeovers) took over the killed run's lock), \(stats.failures) failures, "
              + String(format: "%.1f s (uninterrupted run %.2f s)", seconds, wall))
        #expect(stats.landed > 0)
    }
}
