import Foundation
import Stages

/// What a run or a status check decided for one stage instance.
public enum StageAction: String, Sendable {
    case run = "RUN", extend = "EXTEND", restore = "RESTORE", upToDate = "UP-TO-DATE"
    case failed = "FAILED", skipped = "SKIPPED"
}

public struct PlanLine: Sendable {
    public var id: String
    public var action: StageAction
    public var reason: String
    public var key: String?
    public var seconds: Double = 0
    /// For EXTEND: the fraction of the budget (kimg) the extended run has already done.
    public var doneFraction: Double = 0
}

/// Things the runner reports while it works (the CLI prints them).
public enum RunEvent: Sendable {
    /// A stage starts computing: RUN, or EXTEND from a shorter recorded run.
    case started(id: String, action: StageAction, reason: String)
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

    // MARK: execution

    /// Runs the selected instances. `isCancelled` is polled (SIGINT); `observe` gets events from any thread.
    public func run(_ options: RunOptions, command: String, isCancelled: @escaping @Sendable () -> Bool,
                    observe: @escaping @Sendable (RunEvent) -> Void) throws -> RunSummary {
        let selected = try select(options.targets)
        let runID = try beginRun(command: command)
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
        func settle(_ id: String, _ line: PlanLine) {
            state.lines[id] = line
            remaining.removeAll { $0 == id }
            observe(.done(line))
        }
        while true {
            // A stage that found a corrupt input gave it back: recompute that upstream, then the stage.
            if !state.requeued.isEmpty {
                let again = Set(state.requeued)
                state.requeued.removeAll()
                for id in again where state.settled[id] != nil && !remaining.contains(id) { state.settled[id] = nil }
                remaining = selected.map(\.id).filter { remaining.contains($0) || again.contains($0) }
            }
            // Skip instances whose inputs failed or were skipped.
            while let id = remaining.first(where: { byID[$0]!.inputs.values.contains(where: state.failed.contains) }) {
                let bad = byID[id]!.inputs.values.sorted().first(where: state.failed.contains)!
                state.failed.insert(id)
                let line = PlanLine(id: id, action: .skipped, reason: "upstream `\(bad)` did not complete")
                try? store.noteStage(runID: runID, cellID: id, key: nil, action: "skipped", message: line.reason)
                settle(id, line)
            }
            let stopLaunching = isCancelled() || (!options.keepGoing && state.failed.contains { state.lines[$0]?.action == .failed })
            if !stopLaunching {
                for id in remaining where state.running < jobs {
                    let inst = byID[id]!
                    guard inst.inputs.values.allSatisfy({ state.settled[$0] != nil }) else { continue }
                    let inputs = inst.inputs.mapValues { state.settled[$0]! }
                    let forced = Self.matches(inst, options.force)
                    let decided: (key: StageKey, decision: Decision)
                    do {
                        decided = try decide(inst, inputs: inputs, currentKey: current[id], forced: forced, known: known)
                    } catch {
                        state.failed.insert(id)
                        try? store.noteStage(runID: runID, cellID: id, key: nil, action: "failed", message: "\(error)")
                        settle(id, PlanLine(id: id, action: .failed, reason: "\(error)"))
                        continue
                    }
                    // Up-to-date stages are settled inline: a no-op run starts no threads.
                    if case .upToDate(let r) = decided.decision {
                        state.settled[id] = SettledInput(r)
                        settle(id, PlanLine(id: id, action: .upToDate, reason: "", key: r.key))
                        continue
                    }
                    remaining.removeAll { $0 == id }
                    state.running += 1
                    let job = Job(inst: inst, key: decided.key, decision: decided.decision, inputs: inputs, forced: forced,
                                  runID: runID, logDir: logDir, threads: threads)
                    Self.startWorker { [self] in
                        let done = self.execute(job, isCancelled: isCancelled, observe: observe)
                        state.lock.lock()
                        defer { state.lock.signal(); state.lock.unlock() }
                        state.running -= 1
                        if let upstream = done.corruptInput, state.retried.insert(id).inserted {
                            // Once per stage: the bad object is gone, so the upstream recomputes (or restores).
                            state.requeued += [upstream, id]
                            observe(.warning("\(done.line.reason); recomputing `\(upstream)`, then \(id)"))
                            return
                        }
                        state.lines[id] = done.line
                        if let r = done.result { state.settled[id] = SettledInput(r) } else { state.failed.insert(id) }
                        if done.interrupted { state.interrupted = true }
                        // Reported before the main loop can see this stage finished and return.
                        observe(.done(done.line))
                    }
                }
            }
            if state.running == 0 && (remaining.isEmpty || stopLaunching
                || !remaining.contains(where: { byID[$0]!.inputs.values.allSatisfy { state.settled[$0] != nil } })) {
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
        try finishRun(runID, status: interrupted ? "interrupted" : failed ? "failed" : "ok")
        try sweepFinishedWork()
        return RunSummary(runID: runID, lines: lines, interrupted: interrupted)
    }

    /// Records a run owned by this process; runs whose process is gone (SIGKILL) are marked
    /// killed first, so they stop showing as running. Both executors begin and finish runs here.
    func beginRun(command: String) throws -> String {
        _ = try? store.markDeadRunsKilled()
        return try store.beginOwnedRun(command: command)
    }

    /// Ends a run; a database deleted or replaced mid-run (nothing this run recorded is there) fails it.
    func finishRun(_ runID: String, status: String) throws {
        if let problem = store.databaseProblem() { throw StoreError(problem) }
        try store.finishRun(runID, status: status)
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
}

extension Runner {
    /// Runs `body` on a new thread and releases everything it captured before that thread ends.
    ///
    /// Not `Thread.detachNewThread(body)`: a Foundation `Thread` keeps its block until the Thread
    /// object is destroyed by a thread-specific-data destructor at pthread exit, and that runs after
    /// libdispatch's own TSD destructor (`_libdispatch_tsd_cleanup`), which frees the thread's
    /// cache of dispatch continuations but leaves the cache pointer set. A worker that ran engine
    /// stages has a full cache (`concurrentPerform` frees its continuations there); if the block
    /// then held the last reference to the runner (the caller already returned, e.g. a test's
    /// temporary `Runner`), its release there ran deinits that may use dispatch (such as the
    /// store's GRDB pool, which closes its connections with `DispatchQueue.sync`), and libdispatch
    /// handed out the freed continuations again: "double free or corruption", "malloc(): unaligned
    /// fastbin chunk detected", or under ASan "attempting double-free ... in _dispatch_worker_thread".
    static func startWorker(_ body: @escaping @Sendable () -> Void) {
        let once = OneShot(body)
        Thread.detachNewThread { once.run() }
    }

    /// A closure that is run once and dropped right after, so its captures die with the call.
    final class OneShot: @unchecked Sendable {
        private let lock = NSLock()
        private var body: (@Sendable () -> Void)?
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        func run() {
            lock.lock()
            let taken = body
            body = nil
            lock.unlock()
            taken?()
        }
    }
}

/// Scheduler state shared by the main loop and worker threads (guarded by `lock`).
final class RunState: @unchecked Sendable {
    let lock = NSCondition()
    var running = 0
    /// Settled results by instance id: what consumers read.
    var settled: [String: SettledInput] = [:]
    var failed = Set<String>()
    var lines: [String: PlanLine] = [:]
    var interrupted = false
    /// Instances handed back for another go (an upstream with a corrupt object, then its consumer).
    var requeued: [String] = []
    var retried = Set<String>()
}
