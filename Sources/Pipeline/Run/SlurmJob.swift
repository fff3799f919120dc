import Foundation
import Stages

/// The job side of the Slurm executor (`pdpipe job`): computes exactly one stage key into the
/// store's directory and leaves a completion record. It opens the store without SQLite (the
/// driver alone records), so a job on any node never writes the database.
extension Runner {
    public enum JobOutcome: Sendable, Equatable {
        /// Computed and published; the record is written.
        case computed(key: String, artifact: String, seconds: Double)
        /// A record for the key existed already (a duplicate or requeued job, or a restarted
        /// driver's resubmission of a job that finished): nothing computed.
        case alreadyDone(key: String, artifact: String)
    }

    public struct JobFailure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Re-derives the instance's key from the ticket and its inputs' completion records, checks it
    /// against the submitted one, then computes under the key's lock (unless already recorded).
    public func runJob(_ ticket: JobTicket, isCancelled: @escaping @Sendable () -> Bool,
                       observe: @escaping @Sendable (RunEvent) -> Void) throws -> JobOutcome {
        if let wanted = ticket.backend, wanted != EngineInfo.backend {
            throw JobFailure(description: "the run was submitted for the \(wanted) backend, but this node computes on "
                             + "\(EngineInfo.backend) (\(EngineInfo.backendDetail)); results of the two differ in the last "
                             + "bits, so their keys differ: install the backend on the node or run with PDPIPE_BACKEND=\(EngineInfo.backend)")
        }
        let chain = try select([ticket.cellID])
        guard let inst = chain.last, inst.id == ticket.cellID else {
            throw JobFailure(description: "`\(ticket.cellID)` is not an instance of \(ticket.spec) any more")
        }
        // Upstream results: settled at submission (in the ticket) or made by jobs of this run.
        var settled = ticket.settled.mapValues { SettledInput(artifact: $0.artifact, measurements: $0.measurements) }
        for up in chain.dropLast() where settled[up.id] == nil {
            guard up.inputs.values.allSatisfy({ settled[$0] != nil }) else { continue }
            let key = try jobKey(up, up.inputs.mapValues { settled[$0]! })
            guard let record = JobRecord.read(store, key: key.key) else {
                throw JobFailure(description: "input `\(up.id)` (key \(key.key.prefix(12))) has no completion record")
            }
            settled[up.id] = SettledInput(artifact: record.artifact, measurements: record.measurements)
        }
        if let missing = inst.inputs.values.sorted().first(where: { settled[$0] == nil }) {
            throw JobFailure(description: "input `\(missing)` is not settled")
        }
        let inputs = inst.inputs.mapValues { settled[$0]! }
        let key = try jobKey(inst, inputs)
        // A stale submission (the spec, a param file or an input changed since) computes nothing.
        if let expected = ticket.key, expected != key.key {
            throw JobFailure(description: "key changed since submission (\(expected.prefix(12)) -> \(key.key.prefix(12))); "
                             + "the spec or a dependency was edited: run again")
        }
        guard let lock = try StageLock(url: store.locks.appendingPathComponent(key.key + ".lock"),
                                       onWait: { observe(.waiting(id: inst.id, holder: $0)) },
                                       onTakeover: { observe(.warning("\(inst.id): took over the lock left by \($0) (no longer running)")) },
                                       isCancelled: isCancelled) else { throw StageCancelled() }
        defer { lock.release() }
        if !ticket.forced, let done = JobRecord.read(store, key: key.key), store.objectExists(done.artifact) {
            return .alreadyDone(key: key.key, artifact: done.artifact)
        }
        // Inputs are re-hashed as in a local run; a bad one fails the job (the driver alone may
        // forget results in SQLite), and the next run recomputes it.
        for (name, input) in inputs.sorted(by: { $0.key < $1.key }) {
            let object = store.objectURL(input.artifact)
            guard FileManager.default.fileExists(atPath: object.path), try Digest.tree(object) == input.artifact else {
                throw JobFailure(description: "input `\(name)` (object \(input.artifact.prefix(12))) is missing or corrupt")
            }
        }
        var decision = Decision.run(reason: ticket.reason)
        if let base = ticket.extending, ticket.key == key.key,
           FileManager.default.fileExists(atPath: store.objectURL(base.artifact).path),
           try Digest.tree(store.objectURL(base.artifact)) == base.artifact {
            let stored = StoredResult(key: base.key, stage: inst.stage, cellID: base.cellID, artifact: base.artifact,
                                      metrics: [:], measurements: base.measurements, components: [:], seconds: 0,
                                      runID: ticket.runID, budget: base.budget)
            decision = .extend(base: stored, reason: ticket.reason)
        }
        var extending: StoredResult?
        if case .extend(let base, _) = decision { extending = base }
        let (jobID, store) = (ProcessInfo.processInfo.environment["SLURM_JOB_ID"], self.store)
        let threads = max(1, ticket.threads)
        let job = Job(inst: inst, key: key, decision: decision, inputs: inputs, forced: ticket.forced, runID: ticket.runID,
                      logDir: store.logs.appendingPathComponent(ticket.runID),
                      threads: ThreadBudget(perStage: threads, total: threads),
                      complete: { digest, computed in
                          try JobRecord(computed.result(artifact: digest), jobID: jobID).write(store)
                      })
        try FileManager.default.createDirectory(at: job.logDir, withIntermediateDirectories: true)
        observe(.started(id: inst.id, action: decision.action, reason: ticket.reason))
        let done = try compute(job, reason: ticket.reason, extending: extending, isCancelled: isCancelled, observe: observe)
        guard let result = done.result else { throw JobFailure(description: done.line.reason) }
        return .computed(key: key.key, artifact: result.artifact, seconds: done.line.seconds)
    }

    /// The key as `decide` computes it (external files hashed afresh: a job keeps no memo).
    private func jobKey(_ inst: StageInstance, _ inputs: [String: SettledInput]) throws -> StageKey {
        try StageKey.compute(inst, inputDigests: inputs.mapValues(\.artifact), inputMeasurements: inputs.mapValues(\.measurements),
                             projectDirectory: projectDirectory, store: store)
    }
}
