import Foundation
import Stages

/// How stale stages are submitted to Slurm (`pdpipe run --executor slurm --slurm-option KEY=VALUE`).
public struct SlurmOptions: Sendable {
    public var partition: String?
    public var account: String?
    /// sbatch --time (e.g. `30`, `2:00:00`).
    public var time: String?
    /// CPUs per job; also the job's thread count (engine results depend on it: compare digests
    /// with a local run only at equal threads).
    public var cpus = 1
    /// sbatch --mem (e.g. `4G`).
    public var mem: String?
    /// More sbatch arguments, passed as they are.
    public var extra: [String] = []
    /// Times a job that hit its time limit, was preempted or lost its node is submitted again; the
    /// new job resumes a training from the checkpoint the old one left in the store.
    public var retries = 2
    /// The `pdpipe` executable the jobs run (on the shared file system).
    public var executable: String
    /// The spec file and overrides the jobs re-expand.
    public var spec: String
    public var overrides: [String] = []
    public var pollInterval = 0.25
    /// Options (`KEY=VALUE`) per stage kind, applied over the others for that kind's jobs.
    public var perKind: [String: [String]] = [:]

    public init(executable: String, spec: String, overrides: [String] = []) {
        (self.executable, self.spec, self.overrides) = (executable, spec, overrides)
    }

    /// Applies `KEY=VALUE` (partition, account, time, cpus, mem, sbatch); nil if it parsed, else the problem.
    public mutating func set(_ option: String) -> String? {
        guard let eq = option.firstIndex(of: "=") else { return "`\(option)`: expected KEY=VALUE" }
        let (name, value) = (String(option[..<eq]), String(option[option.index(after: eq)...]))
        switch name {
        case "partition": partition = value
        case "account": account = value
        case "time": time = value
        case "mem": mem = value
        case "cpus":
            guard let n = Int(value), n >= 1 else { return "cpus: expected a positive integer, got `\(value)`" }
            cpus = n
        case "sbatch": extra += value.split(separator: " ").map(String.init)
        case "retries":
            guard let n = Int(value), (0...100).contains(n) else { return "retries: expected an integer from 0 to 100, got `\(value)`" }
            retries = n
        default: return "unknown Slurm option `\(name)` (partition, account, time, cpus, mem, sbatch, retries)"
        }
        return nil
    }

    /// The options of a job running a stage of `kind`.
    public func forKind(_ kind: String) -> SlurmOptions {
        var options = self
        for option in perKind[kind] ?? [] { _ = options.set(option) }
        options.perKind = [:]
        return options
    }
}

/// The Slurm commands the driver uses: sbatch, squeue, scontrol show job -o, scancel.
struct SlurmCLI {
    struct Failure: Error, CustomStringConvertible { var description: String }

    /// Runs a Slurm command; returns stdout, throws with stderr on a non-zero exit.
    static func call(_ tool: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [tool] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { throw Failure(description: "cannot start \(tool): \(error)") }
        // Read before waiting: a full pipe would block the tool.
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: outData, as: UTF8.self)
        guard p.terminationStatus == 0 else {
            let message = String(decoding: errData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw Failure(description: "\(tool) \(args.joined(separator: " ")): \(message.isEmpty ? "exit \(p.terminationStatus)" : message)")
        }
        return text
    }

    /// State of each of our jobs still known to slurmctld (finished ones stay for MinJobAge).
    static func states() throws -> [String: String] {
        var out: [String: String] = [:]
        for line in try call("squeue", ["--me", "-h", "-t", "all", "-o", "%i %T"]).split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { out[String(parts[0])] = String(parts[1]) }
        }
        return out
    }

    /// `scontrol show job -o ID` fields (ExitCode, Reason...) for a failure message; empty if gone.
    static func details(_ jobID: String) -> [String: String] {
        guard let text = try? call("scontrol", ["show", "job", "-o", jobID]) else { return [:] }
        var out: [String: String] = [:]
        for field in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            if let eq = field.firstIndex(of: "=") { out[String(field[..<eq])] = String(field[field.index(after: eq)...]) }
        }
        return out
    }

    static let terminal: Set<String> = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                                        "BOOT_FAIL", "DEADLINE", "PREEMPTED", "SPECIAL_EXIT", "REVOKED"]
    /// Ends that are not the stage's fault: worth submitting again.
    static let retryable: Set<String> = ["TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL"]
}

extension Runner {
    /// One submitted job the driver waits for.
    private struct Submitted {
        var jobID: String
        var inst: StageInstance
        /// Known once the instance's inputs are settled (at submission, or when its parents finish).
        var key: String?
        var output: URL
        /// When the driver gave up on it (a failed upstream or decision): cancelled if Slurm has not.
        var doomedSince: Date?
        /// The sbatch arguments (without the dependency), to submit it again; and how often it was.
        var arguments: [String] = []
        var attempts = 1
    }

    /// `run` with every stale stage submitted as one Slurm job. This process (the driver) decides with
    /// `decide`, submits with `afterok` dependencies, polls, and alone records results in SQLite
    /// from the jobs' completion records. Stages already finished by jobs of an earlier (killed)
    /// driver are adopted from their records, not resubmitted.
    public func runOnSlurm(_ options: RunOptions, slurm: SlurmOptions, command: String,
                           isCancelled: @escaping @Sendable () -> Bool,
                           observe: @escaping @Sendable (RunEvent) -> Void) throws -> RunSummary {
        let selected = try select(options.targets)
        let runID = try beginRun(command: command)
        let current = try store.currentKeys(scope: scope)
        let known = try store.results(forKeys: Array(Set(current.values)))
        let fm = FileManager.default
        let ticketDir = store.jobs.appendingPathComponent("tickets/\(runID)")
        let outDir = store.jobs.appendingPathComponent("out/\(runID)")
        try fm.createDirectory(at: ticketDir, withIntermediateDirectories: true)
        try fm.createDirectory(at: outDir, withIntermediateDirectories: true)
        try fm.createDirectory(at: store.logs.appendingPathComponent(runID), withIntermediateDirectories: true)

        var settled: [String: SettledInput] = [:]
        var failed = Set<String>()
        var lines: [String: PlanLine] = [:]
        var pending: [String: Submitted] = [:]
        var interrupted = false
        func settle(_ id: String, _ line: PlanLine) {
            lines[id] = line
            observe(.done(line))
        }
        func fail(_ id: String, _ reason: String, key: String?) {
            failed.insert(id)
            try? store.noteStage(runID: runID, cellID: id, key: key, action: "failed", message: reason)
            settle(id, PlanLine(id: id, action: .failed, reason: reason, key: key))
        }

        /// Adopts the completion record of `key` into SQLite; false when there is none usable.
        func adopt(_ inst: StageInstance, key: String, reason: String) throws -> Bool {
            guard let record = JobRecord.read(store, key: key), record.key == key,
                  try store.checkObject(record.artifact, verify: true) == .present else { return false }
            let result = record.result(cellID: inst.id, runID: runID)
            try store.record(result, scope: scope)
            settled[inst.id] = SettledInput(result)
            settle(inst.id, PlanLine(id: inst.id, action: .run, reason: reason, key: key, seconds: record.seconds))
            return true
        }

        /// Settles `inst` whose inputs are settled: up to date, restored, adopted; or returns the
        /// key and decision of a computation.
        func decideSettled(_ inst: StageInstance) throws -> (key: StageKey, decision: Decision)? {
            let inputs = inst.inputs.mapValues { settled[$0]! }
            let decided = try decide(inst, inputs: inputs, currentKey: current[inst.id],
                                     forced: Self.matches(inst, options.force), known: known)
            switch decided.decision {
            case .upToDate(let r):
                settled[inst.id] = SettledInput(r)
                settle(inst.id, PlanLine(id: inst.id, action: .upToDate, reason: "", key: r.key))
                return nil
            case .restore(let r):
                // Re-hashed first, as in a local run; a bad object is recomputed.
                if try store.checkObject(r.artifact, verify: true) == .present {
                    try store.markRestored(cellID: inst.id, key: r.key, scope: scope, runID: runID)
                    settled[inst.id] = SettledInput(r)
                    settle(inst.id, PlanLine(id: inst.id, action: .restore, reason: "stored key", key: r.key))
                    return nil
                }
                observe(.warning("object \(r.artifact.prefix(12)) of \(r.cellID) is unusable; recomputing"))
                return (decided.key, .run(reason: "stored object unusable"))
            case .run, .extend:
                if !Self.matches(inst, options.force),
                   try adopt(inst, key: decided.key.key, reason: "finished by an earlier job") { return nil }
                return decided
            }
        }

        func submit(_ inst: StageInstance, decided: (key: StageKey, decision: Decision)?) throws {
            // What the job needs besides the spec: every settled result upstream of it.
            var ticketInputs: [String: JobTicket.Input] = [:]
            for up in try select([inst.id]) where up.id != inst.id {
                if let s = settled[up.id] { ticketInputs[up.id] = JobTicket.Input(artifact: s.artifact, measurements: s.measurements) }
            }
            var reason = "upstream will run"
            var base: JobTicket.Base?
            switch decided?.decision {
            case .run(let why)?: reason = why
            case .extend(let b, let why)?:
                reason = why
                base = JobTicket.Base(key: b.key, cellID: b.cellID, artifact: b.artifact, measurements: b.measurements, budget: b.budget)
            default: break
            }
            let job = slurm.forKind(inst.kind.name)
            let ticket = JobTicket(spec: slurm.spec, overrides: slurm.overrides, cellID: inst.id, key: decided?.key.key,
                                   forced: Self.matches(inst, options.force), reason: reason, extending: base,
                                   settled: ticketInputs, runID: runID, threads: job.cpus, backend: EngineInfo.backend)
            let safe = inst.id.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" }
            let ticketURL = ticketDir.appendingPathComponent("\(pending.count + lines.count)-\(String(safe)).json")
            try ticket.write(to: ticketURL, in: store)
            var args = ["--parsable", "--job-name", "pdpipe:" + inst.id, "--chdir", projectDirectory.path,
                        "--output", outDir.appendingPathComponent(String(safe) + ".%j.out").path,
                        "--cpus-per-task", String(job.cpus), "--kill-on-invalid-dep=yes"]
            if let p = job.partition { args += ["--partition", p] }
            if let a = job.account { args += ["--account", a] }
            if let t = job.time { args += ["--time", t] }
            if let m = job.mem { args += ["--mem", m] }
            args += job.extra
            // The job asks for the submitter's backend (keys name it); a node that cannot provide it
            // falls back and then refuses the ticket with both names.
            args += ["--wrap", "PDPIPE_BACKEND=" + Self.shellQuoted(EngineInfo.backend) + " "
                     + [slurm.executable, "job", "--store", store.root.path, "--ticket", ticketURL.path]
                .map(Self.shellQuoted).joined(separator: " ")]
            var withDependency = args
            let parents = inst.inputs.values.sorted().compactMap { pending[$0]?.jobID }
            if !parents.isEmpty { withDependency.insert("--dependency=afterok:" + parents.joined(separator: ":"), at: 0) }
            let jobID = try Self.sbatch(withDependency)
            pending[inst.id] = Submitted(jobID: jobID, inst: inst, key: decided?.key.key,
                                         output: outDir.appendingPathComponent("\(String(safe)).\(jobID).out"), arguments: args)
            observe(.started(id: inst.id, action: decided?.decision.action ?? .run, reason: "\(reason); Slurm job \(jobID)"))
        }

        // Submission, in dependency order: each stale stage once, after the jobs it consumes.
        for inst in selected {
            if isCancelled() { interrupted = true; break }
            if let bad = inst.inputs.values.sorted().first(where: failed.contains) {
                failed.insert(inst.id)
                settle(inst.id, PlanLine(id: inst.id, action: .skipped, reason: "upstream `\(bad)` did not complete"))
                continue
            }
            do {
                if inst.inputs.values.allSatisfy({ settled[$0] != nil }) {
                    guard let decided = try decideSettled(inst) else { continue }
                    try submit(inst, decided: decided)
                } else {
                    try submit(inst, decided: nil)
                }
            } catch let e as SlurmCLI.Failure {
                fail(inst.id, e.description, key: nil)
            } catch let e as StoreError {
                fail(inst.id, e.description, key: nil)
            }
        }

        // Jobs in flight, for `status` and `logs` in another shell.
        var published: [ActiveJobs.Job] = []
        func publishActive() {
            let jobs = pending.values.filter { lines[$0.inst.id] == nil }
                .map { ActiveJobs.Job(cell: $0.inst.id, job: $0.jobID, output: $0.output.path) }.sorted { $0.cell < $1.cell }
            guard jobs != published else { return }
            published = jobs
            try? ActiveJobs(run: runID, jobs: jobs).write(store)
        }
        defer { ActiveJobs.remove(store, run: runID) }

        // Waiting: one squeue per poll; results recorded in dependency order as jobs finish.
        while !pending.isEmpty {
            publishActive()
            if isCancelled() { interrupted = true }
            if interrupted {
                let ids = pending.values.map(\.jobID)
                if !ids.isEmpty { _ = try? SlurmCLI.call("scancel", ids) }
                for s in pending.values where lines[s.inst.id] == nil {
                    settle(s.inst.id, PlanLine(id: s.inst.id, action: .failed, reason: "interrupted", key: s.key))
                }
                pending.removeAll()
                break
            }
            let states: [String: String]
            do { states = try SlurmCLI.states() } catch {
                observe(.warning("\(error); retrying"))
                Thread.sleep(forTimeInterval: 2)
                continue
            }
            var progressed = false
            for inst in selected {
                guard var s = pending[inst.id] else { continue }
                let state = states[s.jobID]
                let finished = state.map(SlurmCLI.terminal.contains) ?? true
                if lines[inst.id] != nil {
                    // Settled already (early cutoff or a failed upstream): wait for Slurm to let go.
                    if s.doomedSince.map({ Date().timeIntervalSince($0) > 10 }) == true, !finished {
                        _ = try? SlurmCLI.call("scancel", [s.jobID])  // kill-on-invalid-dep did not act
                    }
                    if finished { pending[inst.id] = nil }
                    continue
                }
                if let bad = inst.inputs.values.sorted().first(where: failed.contains) {
                    // Slurm cancels it (afterok can never be met); report it now.
                    failed.insert(inst.id)
                    settle(inst.id, PlanLine(id: inst.id, action: .skipped, reason: "upstream `\(bad)` did not complete"))
                    s.doomedSince = Date()
                    pending[inst.id] = finished ? nil : s
                    progressed = true
                    continue
                }
                if s.key == nil, inst.inputs.values.allSatisfy({ settled[$0] != nil }) {
                    // Its parents finished: now its key is known, or it turns out stored (early cutoff).
                    do {
                        if let decided = try decideSettled(inst) {
                            s.key = decided.key.key
                            pending[inst.id] = s
                        } else {
                            // The queued job must not compute it again: leave it a record to find.
                            if let key = lines[inst.id]?.key, JobRecord.read(store, key: key) == nil,
                               let r = try store.result(forKey: key) {
                                try JobRecord(r, jobID: nil).write(store)
                            }
                            pending[inst.id] = finished ? nil : s
                            progressed = true
                            continue
                        }
                    } catch {
                        fail(inst.id, "\(error)", key: nil)
                        if !finished { _ = try? SlurmCLI.call("scancel", [s.jobID]) }
                        s.doomedSince = Date()
                        pending[inst.id] = finished ? nil : s
                        progressed = true
                        continue
                    }
                }
                guard finished else { continue }
                progressed = true
                if let state, SlurmCLI.retryable.contains(state), s.attempts <= slurm.forKind(inst.kind.name).retries, !s.arguments.isEmpty {
                    // Its parents have finished: no dependency. The new job finds the old one's checkpoint.
                    do {
                        let jobID = try Self.sbatch(s.arguments)
                        observe(.warning("\(inst.id): Slurm job \(s.jobID) ended \(state); submitted again as job \(jobID)"))
                        s.output = s.output.deletingLastPathComponent()
                            .appendingPathComponent(s.output.lastPathComponent.replacingOccurrences(of: ".\(s.jobID).out", with: ".\(jobID).out"))
                        s.jobID = jobID
                        s.attempts += 1
                        pending[inst.id] = s
                        continue
                    } catch {
                        observe(.warning("\(inst.id): cannot submit it again: \(error)"))
                    }
                }
                pending[inst.id] = nil
                if state == "COMPLETED" || state == nil, let key = s.key, try adopt(inst, key: key, reason: "Slurm job \(s.jobID)") {
                    continue
                }
                fail(inst.id, failureReason(s.jobID, state: state, key: s.key, output: s.output), key: s.key)
            }
            if !progressed { Thread.sleep(forTimeInterval: slurm.pollInterval) }
        }

        for inst in selected where lines[inst.id] == nil {
            settle(inst.id, PlanLine(id: inst.id, action: .skipped, reason: interrupted ? "interrupted" : "not started"))
        }
        let all = selected.compactMap { lines[$0.id] }
        try store.noteStages(runID: runID, all.filter { $0.action == .upToDate }.map { ($0.id, $0.key, "up-to-date", "") })
        try store.noteStages(runID: runID, all.filter { $0.action == .skipped }.map { ($0.id, $0.key, "skipped", $0.reason) })
        let anyFailed = all.contains { $0.action == .failed }
        try finishRun(runID, status: interrupted ? "interrupted" : anyFailed ? "failed" : "ok")
        try sweepFinishedWork()
        return RunSummary(runID: runID, lines: all, interrupted: interrupted)
    }

    /// Why a job did not leave a result: its Slurm state and exit code, and the last line it printed.
    private func failureReason(_ jobID: String, state: String?, key: String?, output: URL) -> String {
        let details = SlurmCLI.details(jobID)
        var reason = "Slurm job \(jobID) " + (state ?? "left the queue")
        if let code = details["ExitCode"], code != "0:0" { reason += " (exit \(code))" }
        if state == "COMPLETED" || state == nil, key != nil { reason += " without a completion record" }
        let last = (try? String(contentsOf: output, encoding: .utf8))?
            .split(separator: "\n").last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty })
        if let last { reason += ": " + last }
        return reason + " [output \(output.path)]"
    }

    /// Submits; the job id.
    static func sbatch(_ args: [String]) throws -> String {
        let jobID = String(try SlurmCLI.call("sbatch", args).split(separator: ";").first ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard !jobID.isEmpty else { throw SlurmCLI.Failure(description: "sbatch printed no job id") }
        return jobID
    }

    static func shellQuoted(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
