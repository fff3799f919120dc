import Foundation
import Stages

/// What a run or a status check decided for one stage instance.
public enum StageAction: String, Sendable {
    case run = "RUN", restore = "RESTORE", upToDate = "UP-TO-DATE"
    case failed = "FAILED", skipped = "SKIPPED"
}

public struct PlanLine: Sendable {
    public var id: String
    public var action: StageAction
    public var reason: String
    public var key: String?
    public var seconds: Double = 0
}

/// Things the runner reports while it works (the CLI prints them).
public enum RunEvent: Sendable {
    case started(id: String, reason: String)
    case done(PlanLine)
    case log(id: String, line: String)
    case progress(id: String, completed: Double, total: Double, unit: String, detail: String)
    case waiting(id: String, holder: String)
    case warning(String)
}

public struct RunOptions: Sendable {
    public var targets: [String] = []
    public var jobs = 1
    public var force: [String] = []
    public var keepGoing = false
    public var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
    public init() {}
}

public struct RunSummary: Sendable {
    public var runID: String?
    public var lines: [PlanLine]
    public var interrupted: Bool
    public var failed: Bool { lines.contains { $0.action == .failed } }
    public func count(_ a: StageAction) -> Int { lines.filter { $0.action == a }.count }
}

/// Plans (status/dry run) and executes an expanded experiment against a store.
public final class Runner: Sendable {
    public let expansion: Expansion
    public let store: Store
    public let scope: String
    var projectDirectory: URL { expansion.spec.projectDirectory }

    public init(expansion: Expansion, store: Store) {
        self.expansion = expansion
        self.store = store
        scope = StageKey.relativePath(expansion.spec.file, to: expansion.spec.projectDirectory)
    }

    /// Instances selected by targets (stage names or cell ids) plus everything upstream, in order.
    public func select(_ targets: [String]) throws -> [StageInstance] { try Self.select(targets, from: expansion) }

    public static func select(_ targets: [String], from expansion: Expansion) throws -> [StageInstance] {
        if targets.isEmpty { return expansion.instances }
        let all = expansion.instances
        var wanted = Set<String>()
        for t in targets {
            let hits = all.filter { $0.stage == t || $0.id == t }
            if hits.isEmpty {
                throw SpecError(nil, "unknown target `\(t)`" + didYouMean(t, among: Array(Set(all.map(\.stage))) + all.map(\.id)))
            }
            hits.forEach { wanted.insert($0.id) }
        }
        for inst in all.reversed() where wanted.contains(inst.id) { inst.inputs.values.forEach { wanted.insert($0) } }
        return all.filter { wanted.contains($0.id) }
    }

    static func matches(_ inst: StageInstance, _ names: [String]) -> Bool {
        names.contains(inst.stage) || names.contains(inst.id)
    }

    // MARK: status / dry run

    /// One line per instance: RUN (reason), RESTORE, UP-TO-DATE. Writes nothing but memoised file digests.
    public func plan(_ options: RunOptions) throws -> [PlanLine] {
        let selected = try select(options.targets)
        let current = try store.currentKeys(scope: scope)
        // One read for every cell's current result; other keys are looked up one by one.
        let known = try store.results(forKeys: Array(Set(current.values)))
        var outputs: [String: String] = [:]
        var willRun = Set<String>()
        var lines: [PlanLine] = []
        // Keys are computed first, then looked up in one read.
        var keys: [String: StageKey] = [:]
        var pending: [(StageInstance, String?)] = []
        for inst in selected {
            if let up = inst.inputs.first(where: { willRun.contains($0.value) }) {
                willRun.insert(inst.id)
                pending.append((inst, "upstream `\(up.value)` will run"))
                continue
            }
            let k: StageKey
            do {
                k = try StageKey.compute(inst, inputDigests: inst.inputs.mapValues { outputs[$0]! },
                                         projectDirectory: projectDirectory, store: store)
            } catch let e as StoreError {
                willRun.insert(inst.id)
                pending.append((inst, "cannot compute key: \(e.description)"))
                continue
            }
            keys[inst.id] = k
            if let r = try known[k.key] ?? store.result(forKey: k.key),
               !Self.matches(inst, options.force),
               FileManager.default.fileExists(atPath: store.objectURL(r.artifact).path) {
                outputs[inst.id] = r.artifact
                pending.append((inst, nil))
            } else {
                willRun.insert(inst.id)
                pending.append((inst, Self.matches(inst, options.force) ? "forced" : nil))
            }
        }
        let previous = known
        for (inst, reason) in pending {
            let k = keys[inst.id]
            if !willRun.contains(inst.id) {
                let action: StageAction = current[inst.id] == k?.key ? .upToDate : .restore
                lines.append(PlanLine(id: inst.id, action: action, reason: action == .restore ? "stored key" : "", key: k?.key))
            } else {
                let why = reason ?? Self.reason(new: k!, old: current[inst.id].flatMap { previous[$0] })
                lines.append(PlanLine(id: inst.id, action: .run, reason: why, key: k?.key))
            }
        }
        return lines
    }

    /// Human reason for a rerun: which key components changed since the cell's last recorded key.
    static func reason(new: StageKey, old: StoredResult?) -> String {
        guard let old else { return "never run" }
        if old.key == new.key { return "stored object missing" }
        let changed = StageKey.diff(old: old.components, new: new.components).map(\.name)
        return "changed: " + changed.joined(separator: ", ")
    }

    /// For `why`: each component of the current key vs the cell's last recorded key.
    public func explain(_ target: String) throws -> [(id: String, key: StageKey?, old: StoredResult?, note: String)] {
        let selected = try select([target])
        let current = try store.currentKeys(scope: scope)
        var outputs: [String: String] = [:]
        var result: [(id: String, key: StageKey?, old: StoredResult?, note: String)] = []
        for inst in selected {
            let old = try current[inst.id].flatMap { try store.result(forKey: $0) }
            // An upstream that must run first has no output digest yet: show a placeholder for it.
            let pending = inst.inputs.values.filter { outputs[$0] == nil }.sorted()
            let k = try StageKey.compute(inst, inputDigests: inst.inputs.mapValues { outputs[$0] ?? "(after \($0) runs)" },
                                         projectDirectory: projectDirectory, store: store)
            if !pending.isEmpty {
                if Self.matches(inst, [target]) {
                    result.append((inst.id, k, old, "RUN: upstream " + pending.map { "`\($0)`" }.joined(separator: ", ") + " must run first"))
                }
                continue
            }
            if let r = try store.result(forKey: k.key) { outputs[inst.id] = r.artifact }
            if Self.matches(inst, [target]) { result.append((inst.id, k, old, "")) }
        }
        return result
    }

    // MARK: execution

    /// Runs the selected instances. `isCancelled` is polled (SIGINT); `observe` gets events from any thread.
    public func run(_ options: RunOptions, command: String, isCancelled: @escaping @Sendable () -> Bool,
                    observe: @escaping @Sendable (RunEvent) -> Void) throws -> RunSummary {
        let selected = try select(options.targets)
        let runID = try store.beginRun(command: command)
        let current = try store.currentKeys(scope: scope)
        let known = try store.results(forKeys: Array(Set(current.values)))
        let state = RunState()
        let jobs = max(1, options.jobs)
        let threads = ThreadBudget(perStage: max(1, options.threads / jobs), total: max(1, options.threads))
        let byID = Dictionary(uniqueKeysWithValues: selected.map { ($0.id, $0) })
        let logDir = store.logs.appendingPathComponent(runID)
        try FileManager.default.createDirectory(at: logDir, withIntermediateDirectories: true)

        state.lock.lock()
        var remaining = selected.map(\.id)
        while true {
            // A stage that found a corrupt input gave it back: recompute that upstream, then the stage.
            if !state.requeued.isEmpty {
                let again = Set(state.requeued)
                state.requeued.removeAll()
                for id in again where state.outputs[id] != nil && !remaining.contains(id) { state.outputs[id] = nil }
                remaining = selected.map(\.id).filter { remaining.contains($0) || again.contains($0) }
            }
            // Skip instances whose inputs failed or were skipped; launch ready ones up to -j.
            var progressed = true
            while progressed {
                progressed = false
                for id in remaining {
                    let inst = byID[id]!
                    if let bad = inst.inputs.values.first(where: { state.failed.contains($0) }) {
                        state.failed.insert(id)
                        let line = PlanLine(id: id, action: .skipped, reason: "upstream `\(bad)` did not complete")
                        state.lines[id] = line
                        remaining.removeAll { $0 == id }
                        try? store.noteStage(runID: runID, cellID: id, key: nil, action: "skipped", message: line.reason)
                        observe(.done(line))
                        progressed = true
                        break
                    }
                }
            }
            let stopLaunching = isCancelled() || (!options.keepGoing && state.failed.contains { state.lines[$0]?.action == .failed })
            if !stopLaunching {
                for id in remaining where state.running < jobs {
                    let inst = byID[id]!
                    guard inst.inputs.values.allSatisfy({ state.outputs[$0] != nil }) else { continue }
                    remaining.removeAll { $0 == id }
                    let inputDigests = inst.inputs.mapValues { state.outputs[$0]! }
                    let forced = Self.matches(inst, options.force)
                    let previous = current[id]
                    // Up-to-date stages are settled inline: a no-op run starts no threads.
                    if !forced, let previous, let hit = upToDate(inst, inputDigests: inputDigests, previous: known[previous]) {
                        state.lines[id] = PlanLine(id: id, action: .upToDate, reason: "", key: previous)
                        state.outputs[id] = hit
                        observe(.done(state.lines[id]!))
                        continue
                    }
                    state.running += 1
                    Thread.detachNewThread { [self] in
                        let line = self.execute(inst, inputDigests: inputDigests, forced: forced, previousKey: previous,
                                                runID: runID, logDir: logDir, threads: threads,
                                                isCancelled: isCancelled, observe: observe)
                        state.lock.lock()
                        state.running -= 1
                        if let upstream = line.corruptInput, state.retried.insert(id).inserted {
                            // Once per stage: the bad object is gone, so the upstream recomputes (or restores).
                            state.requeued += [upstream, id]
                            observe(.warning("\(line.line.reason); recomputing `\(upstream)`, then \(id)"))
                            state.lock.signal()
                            state.lock.unlock()
                            return
                        }
                        state.lines[id] = line.line
                        if let out = line.output { state.outputs[id] = out } else { state.failed.insert(id) }
                        if line.interrupted { state.interrupted = true }
                        // Reported before the main loop can see this stage finished and return.
                        observe(.done(line.line))
                        state.lock.signal()
                        state.lock.unlock()
                    }
                }
            }
            if state.running == 0 && (remaining.isEmpty || stopLaunching
                || !remaining.contains(where: { byID[$0]!.inputs.values.allSatisfy { state.outputs[$0] != nil } })) {
                break
            }
            _ = state.lock.wait(until: Date().addingTimeInterval(0.2))
        }
        let interrupted = state.interrupted || isCancelled()
        for id in remaining where state.lines[id] == nil {
            let line = PlanLine(id: id, action: .skipped, reason: interrupted ? "interrupted" : "not started after a failure")
            state.lines[id] = line
            observe(.done(line))
        }
        let lines = selected.compactMap { state.lines[$0.id] }
        state.lock.unlock()
        try store.noteStages(runID: runID, lines.filter { $0.action == .upToDate }.map { ($0.id, $0.key, "up-to-date", "") })
        let failed = lines.contains { $0.action == .failed }
        try store.finishRun(runID, status: interrupted ? "interrupted" : failed ? "failed" : "ok")
        try sweepFinishedWork()
        return RunSummary(runID: runID, lines: lines, interrupted: interrupted)
    }

    /// A stage's scratch (checkpoints) is removed right after its result is recorded; a run killed
    /// between the two leaves it behind for a key that never computes again. Sweep such leftovers:
    /// a recorded key computes again only when forced, and then under its lock, so a key whose lock
    /// is free right now has no run using its scratch.
    func sweepFinishedWork() throws {
        let keys = (try? FileManager.default.contentsOfDirectory(atPath: store.work.path)) ?? []
        guard !keys.isEmpty else { return }
        for key in try store.results(forKeys: keys).keys {
            guard let lock = try StageLock(url: store.locks.appendingPathComponent(key + ".lock"),
                                           onWait: { _ in }, isCancelled: { true }) else { continue }
            try? FileManager.default.removeItem(at: store.work.appendingPathComponent(key))
            lock.release()
        }
    }

    /// The artifact digest when the instance's key is the cell's current key and its object is present.
    func upToDate(_ inst: StageInstance, inputDigests: [String: String], previous: StoredResult?) -> String? {
        guard let r = previous,
              let key = try? StageKey.compute(inst, inputDigests: inputDigests, projectDirectory: projectDirectory, store: store),
              key.key == r.key, FileManager.default.fileExists(atPath: store.objectURL(r.artifact).path) else { return nil }
        return r.artifact
    }

    /// Shell stages share the cores (`-j N` gives each 1/N); engine stages take turns on the
    /// engine (`Engine.exclusive`) and each use them all.
    struct ThreadBudget { var perStage: Int; var total: Int }

    struct Executed {
        var line: PlanLine
        var output: String?
        var interrupted = false
        /// Instance id of an upstream whose object turned out corrupt or missing (dropped from the cache).
        var corruptInput: String?
    }

    /// Thrown by `verifyInputs`: the stage did not run; its upstream must be recomputed first.
    struct CorruptInput: Error { var upstream: String; var message: String }

    /// One instance on a worker thread: key, restore or (locked) compute, store, record.
    func execute(_ inst: StageInstance, inputDigests: [String: String], forced: Bool, previousKey: String?,
                 runID: String, logDir: URL, threads: ThreadBudget, isCancelled: @escaping @Sendable () -> Bool,
                 observe: @escaping @Sendable (RunEvent) -> Void) -> Executed {
        let id = inst.id
        let key: StageKey
        do {
            key = try StageKey.compute(inst, inputDigests: inputDigests, projectDirectory: projectDirectory, store: store)
        } catch {
            try? store.noteStage(runID: runID, cellID: id, key: nil, action: "failed", message: "\(error)")
            return Executed(line: PlanLine(id: id, action: .failed, reason: "\(error)"), output: nil)
        }
        do {
            if !forced, let hit = try restorable(key.key, verify: previousKey != key.key, observe: observe) {
                if previousKey == key.key {
                    // Noted in the run's final batch write (a no-op run makes one transaction, not one per stage).
                    return Executed(line: PlanLine(id: id, action: .upToDate, reason: "", key: key.key), output: hit.artifact)
                }
                try store.markRestored(cellID: id, key: key.key, scope: scope, runID: runID)
                return Executed(line: PlanLine(id: id, action: .restore, reason: "stored key", key: key.key), output: hit.artifact)
            }
            // Compute under the per-key lock; another process may have finished it meanwhile.
            guard let lock = try StageLock(url: store.locks.appendingPathComponent(key.key + ".lock"),
                                           onWait: { observe(.waiting(id: id, holder: $0)) },
                                           onTakeover: { observe(.warning("\(id): took over the lock left by \($0) (no longer running)")) },
                                           isCancelled: isCancelled) else {
                return Executed(line: PlanLine(id: id, action: .failed, reason: "interrupted", key: key.key), output: nil, interrupted: true)
            }
            defer { lock.release() }
            if !forced, let hit = try restorable(key.key, verify: false, observe: observe) {
                try store.markRestored(cellID: id, key: key.key, scope: scope, runID: runID)
                return Executed(line: PlanLine(id: id, action: .restore, reason: "computed by another run", key: key.key), output: hit.artifact)
            }
            try verifyInputs(inst, inputDigests: inputDigests)
            let old = try previousKey.flatMap { try store.result(forKey: $0) }
            let reason = forced ? "forced" : Self.reason(new: key, old: old)
            observe(.started(id: id, reason: reason))
            return try compute(inst, key: key, inputDigests: inputDigests, reason: reason, runID: runID, logDir: logDir, threads: threads,
                               isCancelled: isCancelled, observe: observe)
        } catch is StageCancelled {
            return Executed(line: PlanLine(id: id, action: .failed, reason: "interrupted", key: key.key), output: nil, interrupted: true)
        } catch let bad as CorruptInput {
            try? store.noteStage(runID: runID, cellID: id, key: key.key, action: "failed", message: bad.message)
            return Executed(line: PlanLine(id: id, action: .failed, reason: bad.message, key: key.key), output: nil,
                            corruptInput: bad.upstream)
        } catch {
            let message = (error as? StageError)?.message ?? "\(error)"
            try? store.noteStage(runID: runID, cellID: id, key: key.key, action: "failed", message: message)
            return Executed(line: PlanLine(id: id, action: .failed, reason: message, key: key.key), output: nil)
        }
    }

    /// A stored result whose object is present (and, when `verify`, matches its digest).
    func restorable(_ key: String, verify: Bool, observe: @Sendable (RunEvent) -> Void) throws -> StoredResult? {
        guard let r = try store.result(forKey: key) else { return nil }
        let url = store.objectURL(r.artifact)
        guard FileManager.default.fileExists(atPath: url.path) else {
            observe(.warning("object \(r.artifact.prefix(12)) of \(r.cellID) is missing; recomputing"))
            return nil
        }
        if verify, try Digest.tree(url) != r.artifact {
            observe(.warning("object \(r.artifact.prefix(12)) of \(r.cellID) does not match its digest; recomputing"))
            // Drop the bad object and every result that points at it, so the rerun stores fresh bytes.
            try? FileManager.default.removeItem(at: url)
            try store.forgetArtifact(r.artifact)
            return nil
        }
        return r
    }

    /// Re-hashes the input objects a stage is about to read, so a corrupt cache entry is never
    /// trusted. A bad one is removed with its results; the run recomputes that upstream and then
    /// this stage (once; a second bad input fails the stage).
    func verifyInputs(_ inst: StageInstance, inputDigests: [String: String]) throws {
        for (name, digest) in inputDigests.sorted(by: { $0.key < $1.key }) {
            let url = store.objectURL(digest)
            let present = FileManager.default.fileExists(atPath: url.path)
            if present, try Digest.tree(url) == digest { continue }
            try? FileManager.default.removeItem(at: url)
            try store.forgetArtifact(digest)
            throw CorruptInput(upstream: inst.inputs[name] ?? name,
                               message: "input `\(name)` (\(inst.inputs[name] ?? name), object \(digest.prefix(12))) is "
                                   + (present ? "corrupt (its content does not match its digest)" : "missing from the store")
                                   + "; it was dropped from the cache")
        }
    }

    func compute(_ inst: StageInstance, key: StageKey, inputDigests: [String: String], reason: String, runID: String, logDir: URL, threads: ThreadBudget,
                 isCancelled: @escaping @Sendable () -> Bool, observe: @escaping @Sendable (RunEvent) -> Void) throws -> Executed {
        let fm = FileManager.default
        let id = inst.id
        let temp = store.tmp.appendingPathComponent(UUID().uuidString)
        let outDir = temp.appendingPathComponent("out")
        let workDir = store.work.appendingPathComponent(key.key)
        try fm.createDirectory(at: outDir, withIntermediateDirectories: true)
        try fm.createDirectory(at: workDir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: temp) }
        let logURL = logDir.appendingPathComponent(id.replacingOccurrences(of: "/", with: "_") + ".log")
        guard fm.createFile(atPath: logURL.path, contents: nil) else { throw StoreError("cannot create log \(logURL.path)") }
        let log = try FileHandle(forWritingTo: logURL)
        defer { try? log.close() }
        let logWriter = LineWriter(log)
        logWriter.write("# \(id) key \(key.key) (\(reason))")

        let context = StageContext(
            stageName: inst.stage, cellID: id, key: key.key, paramValues: inst.reads, gathered: inst.gathered,
            inputs: inputDigests.mapValues { store.objectURL($0) },
            outputDirectory: outDir, workDirectory: workDir, projectDirectory: projectDirectory, threads: threads.perStage,
            engineThreads: threads.total, emit: { event in
                switch event {
                case .log(let line):
                    logWriter.write(line)
                    observe(.log(id: id, line: line))
                case .progress(let c, let t, let u, let d):
                    observe(.progress(id: id, completed: c, total: t, unit: u, detail: d))
                }
            },
            isCancelled: isCancelled)
        let start = Date()
        let outcome: StageOutcome
        do { outcome = try inst.kind.run(fields: inst.fields, context: context) } catch {
            logWriter.write("# failed: \(error)")
            throw error
        }
        if isCancelled() { throw StageCancelled() }
        let seconds = Date().timeIntervalSince(start)
        let metricsFile = outDir.appendingPathComponent("metrics.json")
        if !outcome.metrics.isEmpty && !fm.fileExists(atPath: metricsFile.path) {
            try JSONEncoder.sorted.encode(outcome.metrics).write(to: metricsFile)
        }
        // Content-address the output: hash, fsync, rename into objects/, then record in one transaction.
        FaultPoint.hit("outputs-written")
        let digest = try Digest.tree(outDir)
        FaultPoint.hit("hashed")
        try Durability.syncTree(outDir)
        FaultPoint.hit("synced")
        let object = store.objectURL(digest)
        // An object already stored under this digest is reused only if its bytes still match.
        if fm.fileExists(atPath: object.path), try Digest.tree(object) != digest {
            observe(.warning("object \(digest.prefix(12)) was corrupt; replacing it with the fresh output of \(id)"))
            try fm.removeItem(at: object)
        }
        if !fm.fileExists(atPath: object.path) {
            do { try fm.moveItem(at: outDir, to: object) } catch where fm.fileExists(atPath: object.path) {}
            Durability.syncDirectory(store.objects)
        }
        FaultPoint.hit("moved")
        try store.record(StoredResult(key: key.key, stage: inst.stage, cellID: id, artifact: digest,
                                      metrics: outcome.metrics, components: key.components, seconds: seconds,
                                      runID: runID), scope: scope)
        FaultPoint.hit("recorded")
        try? fm.removeItem(at: workDir)
        logWriter.write("# done in \(String(format: "%.3f", seconds)) s -> \(digest)")
        return Executed(line: PlanLine(id: id, action: .run, reason: reason, key: key.key, seconds: seconds), output: digest)
    }
}

/// Scheduler state shared by the main loop and worker threads (guarded by `lock`).
final class RunState: @unchecked Sendable {
    let lock = NSCondition()
    var running = 0
    var outputs: [String: String] = [:]
    var failed = Set<String>()
    var lines: [String: PlanLine] = [:]
    var interrupted = false
    /// Instances handed back for another go (an upstream with a corrupt object, then its consumer).
    var requeued: [String] = []
    var retried = Set<String>()
}

/// Appends lines to a log file from any thread.
final class LineWriter: @unchecked Sendable {
    private let handle: FileHandle
    private let lock = NSLock()
    init(_ handle: FileHandle) { self.handle = handle }
    func write(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        try? handle.write(contentsOf: Data((line + "\n").utf8))
    }
}

enum Durability {
    /// fsync every file and directory under `dir`, so a rename publishes complete bytes.
    static func syncTree(_ dir: URL) throws {
        for rel in try Digest.files(under: dir) { syncPath(dir.appendingPathComponent(rel).path, directory: false) }
        if let e = FileManager.default.enumerator(atPath: dir.path) {
            while let rel = e.nextObject() as? String {
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: dir.path + "/" + rel, isDirectory: &isDir), isDir.boolValue {
                    syncPath(dir.path + "/" + rel, directory: true)
                }
            }
        }
        syncPath(dir.path, directory: true)
    }

    static func syncDirectory(_ dir: URL) { syncPath(dir.path, directory: true) }

    static func syncPath(_ path: String, directory: Bool) {
        let fd = open(path, directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
    }
}
