import Foundation
import Stages

/// One instance on a worker thread: restore, or compute under the key's lock and commit through
/// the store. Scheduling is the runner's; the commit protocol is the store's.
extension Runner {
    /// Shell stages share the cores (`-j N` gives each 1/N); engine stages take turns on the
    /// engine (`Engine.exclusive`) and each use them all.
    struct ThreadBudget { var perStage: Int; var total: Int }

    struct Executed {
        var line: PlanLine
        var result: StoredResult?
        var interrupted = false
        /// Instance id of an upstream whose object turned out corrupt or missing (dropped from the cache).
        var corruptInput: String?
    }

    /// Thrown by `verifyInputs`: the stage did not run; its upstream must be recomputed first.
    struct CorruptInput: Error { var upstream: String; var message: String }

    /// Everything a worker needs besides the instance.
    struct Job {
        var inst: StageInstance
        var key: StageKey
        var decision: Decision
        var inputs: [String: SettledInput]
        var forced: Bool
        var runID: String
        var logDir: URL
        var threads: ThreadBudget
        /// Set in a Slurm job: the output is only published and handed here (digest, what was
        /// computed) for a completion record; the driver records it in SQLite.
        var complete: (@Sendable (String, Store.Computed) throws -> Void)? = nil
    }

    func execute(_ job: Job, isCancelled: @escaping @Sendable () -> Bool,
                 observe: @escaping @Sendable (RunEvent) -> Void) -> Executed {
        let (id, key) = (job.inst.id, job.key.key)
        do {
            if case .restore(let r) = job.decision {
                // A restored object is re-hashed first: a corrupt cache entry is recomputed, never trusted.
                switch try store.checkObject(r.artifact, verify: true) {
                case .present:
                    try store.markRestored(cellID: id, key: key, scope: scope, runID: job.runID)
                    return Executed(line: PlanLine(id: id, action: .restore, reason: "stored key", key: key), result: r)
                case .missing: observe(.warning("object \(r.artifact.prefix(12)) of \(r.cellID) is missing; recomputing"))
                case .corrupt: observe(.warning("object \(r.artifact.prefix(12)) of \(r.cellID) does not match its digest; recomputing"))
                }
            }
            // Compute under the per-key lock; another process may have finished it meanwhile.
            guard let lock = try StageLock(url: store.locks.appendingPathComponent(key + ".lock"),
                                           onWait: { observe(.waiting(id: id, holder: $0)) },
                                           onTakeover: { observe(.warning("\(id): took over the lock left by \($0) (no longer running)")) },
                                           isCancelled: isCancelled) else {
                return Executed(line: PlanLine(id: id, action: .failed, reason: "interrupted", key: key), result: nil, interrupted: true)
            }
            defer { lock.release() }
            if !job.forced, let r = try store.result(forKey: key), store.objectExists(r.artifact) {
                try store.markRestored(cellID: id, key: key, scope: scope, runID: job.runID)
                return Executed(line: PlanLine(id: id, action: .restore, reason: "computed by another run", key: key), result: r)
            }
            try verifyInputs(job.inst, inputs: job.inputs)
            var reason = "stored object unusable"
            var base: StoredResult?
            switch job.decision {
            case .run(let why): reason = why
            case .extend(let from, let why):
                // The base is re-hashed like any input; a bad one means computing from scratch.
                if try store.checkObject(from.artifact, verify: true) == .present {
                    (reason, base) = (why, from)
                } else {
                    observe(.warning("\(id): the run to extend (object \(from.artifact.prefix(12))) is unusable; computing from scratch"))
                    reason = "never run"
                }
            default: break
            }
            observe(.started(id: id, action: base == nil ? .run : .extend, reason: reason))
            return try compute(job, reason: reason, extending: base, isCancelled: isCancelled, observe: observe)
        } catch is StageCancelled {
            return Executed(line: PlanLine(id: id, action: .failed, reason: "interrupted", key: key), result: nil, interrupted: true)
        } catch let bad as CorruptInput {
            try? store.noteStage(runID: job.runID, cellID: id, key: key, action: "failed", message: bad.message)
            return Executed(line: PlanLine(id: id, action: .failed, reason: bad.message, key: key), result: nil,
                            corruptInput: bad.upstream)
        } catch {
            let message = (error as? StageError)?.message ?? "\(error)"
            try? store.noteStage(runID: job.runID, cellID: id, key: key, action: "failed", message: message)
            return Executed(line: PlanLine(id: id, action: .failed, reason: message, key: key), result: nil)
        }
    }

    /// Re-hashes the input objects a stage is about to read, so a corrupt cache entry is never
    /// trusted. A bad one is removed with its results; the run recomputes that upstream and then
    /// this stage (once; a second bad input fails the stage).
    func verifyInputs(_ inst: StageInstance, inputs: [String: SettledInput]) throws {
        for (name, input) in inputs.sorted(by: { $0.key < $1.key }) {
            let state = try store.checkObject(input.artifact, verify: true)
            if state == .present { continue }
            throw CorruptInput(upstream: inst.inputs[name] ?? name,
                               message: "input `\(name)` (\(inst.inputs[name] ?? name), object \(input.artifact.prefix(12))) is "
                                   + (state == .corrupt ? "corrupt (its content does not match its digest)" : "missing from the store")
                                   + "; it was dropped from the cache")
        }
    }

    func compute(_ job: Job, reason: String, extending base: StoredResult?, isCancelled: @escaping @Sendable () -> Bool,
                 observe: @escaping @Sendable (RunEvent) -> Void) throws -> Executed {
        let fm = FileManager.default
        let (inst, id, key) = (job.inst, job.inst.id, job.key)
        let temp = store.tmp.appendingPathComponent(UUID().uuidString)
        let outDir = temp.appendingPathComponent("out")
        let workDir = store.work.appendingPathComponent(key.key)
        try fm.createDirectory(at: outDir, withIntermediateDirectories: true)
        try fm.createDirectory(at: workDir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: temp) }
        let logURL = job.logDir.appendingPathComponent(id.replacingOccurrences(of: "/", with: "_") + ".log")
        guard fm.createFile(atPath: logURL.path, contents: nil) else { throw StoreError("cannot create log \(logURL.path)") }
        let log = LineWriter(try FileHandle(forWritingTo: logURL))
        log.write("# \(id) key \(key.key) (\(reason))")

        var context = StageContext(
            stageName: inst.stage, cellID: id, key: key.key, paramValues: inst.reads, gathered: inst.gathered,
            inputs: job.inputs.mapValues { store.objectURL($0.artifact) },
            outputDirectory: outDir, workDirectory: workDir, projectDirectory: projectDirectory, threads: job.threads.perStage,
            engineThreads: job.threads.total, emit: { event in
                switch event {
                case .log(let line):
                    log.write(line)
                    observe(.log(id: id, line: line))
                case .progress(let c, let t, let u, let d):
                    observe(.progress(id: id, completed: c, total: t, unit: u, detail: d))
                }
            },
            isCancelled: isCancelled)
        if inst.kind.gathersCells { context.inputMeasurements = job.inputs.mapValues(\.measurements) }
        if let base {
            context.extending = ExtensionBase(artifact: store.objectURL(base.artifact), measurements: base.measurements)
            log.write("# extending \(base.cellID) (key \(base.key), \(base.budget ?? 0) \(inst.kind.budgetField ?? ""))")
        }
        let start = Date()
        let outcome: StageOutcome
        do { outcome = try inst.kind.run(fields: inst.fields, context: context) } catch {
            log.write("# failed: \(error)")
            // A failed stage's scratch is useless (an interrupted one keeps its checkpoints); the lock is held.
            if !(error is StageCancelled) { try? store.discardWork(key: key.key) }
            throw error
        }
        if isCancelled() { throw StageCancelled() }
        let seconds = Date().timeIntervalSince(start)
        // Content metrics travel with the artifact; measurements only in the store and the log.
        let metricsFile = outDir.appendingPathComponent("metrics.json")
        if !outcome.metrics.isEmpty && !fm.fileExists(atPath: metricsFile.path) {
            try JSONEncoder.sorted.encode(outcome.metrics).write(to: metricsFile)
        }
        for (name, value) in outcome.measurements.sorted(by: { $0.key < $1.key }) { log.write("# measured \(name) = \(value)") }
        let computed = Store.Computed(
            key: key.key, stage: inst.stage, cellID: id, components: key.components, metrics: outcome.metrics,
            measurements: outcome.measurements, environment: Self.environment(threads: job.threads, engineUse: inst.kind.engineUse),
            seconds: seconds, runID: job.runID, lineage: key.lineage, budget: key.budget)
        let digest: String
        if let complete = job.complete {
            digest = try store.publish(staged: outDir, cellID: id, warn: { observe(.warning($0)) })
            try complete(digest, computed)
        } else {
            digest = try store.commit(staged: outDir, computed, scope: scope, warn: { observe(.warning($0)) })
        }
        try? fm.removeItem(at: workDir)
        log.write("# done in \(String(format: "%.3f", seconds)) s -> \(digest)")
        return Executed(line: PlanLine(id: id, action: base == nil ? .run : .extend, reason: reason, key: key.key, seconds: seconds),
                        result: job.complete == nil ? try store.result(forKey: key.key) : computed.result(artifact: digest))
    }

    /// Where a computation ran: recorded with its measurements, never hashed.
    static func environment(threads: ThreadBudget, engineUse: EngineUse) -> [String: String] {
        let backend = engineUse == .instrument ? StageKey.referenceBackend : EngineInfo.backend
        return ["host": hostName, "threads": String(threads.perStage), "engine_threads": String(threads.total),
                "pdpipe": pdpipeVersion, "backend": backend, "cpu": EngineInfo.cpuModel]
    }
}

extension Runner {
    /// Read once with gethostname(2) rather than Foundation's `ProcessInfo.hostName` (which
    /// resolves the name anew on every call, from several worker threads at once).
    static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()
}

/// Appends lines to a log file from any thread.
final class LineWriter: @unchecked Sendable {
    private let handle: FileHandle
    private let lock = NSLock()
    init(_ handle: FileHandle) { self.handle = handle }
    deinit { try? handle.close() }
    func write(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        try? handle.write(contentsOf: Data((line + "\n").utf8))
    }
}
