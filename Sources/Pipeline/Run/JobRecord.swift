import Foundation

/// Files that Slurm jobs and their driver exchange in the store directory (on the shared file
/// system), so that only the driver writes SQLite:
///
///   jobs/<key>.json               completion record: a job published the key's object (by the key,
///                                 so a restarted driver finds what an earlier driver's jobs finished)
///   jobs/tickets/<run>/<n>.json   what the driver asks one job to compute
///   jobs/out/<run>/<cell>.<id>.out the job's stdout and stderr (Slurm's --output)
///
/// Both JSON files are written to a temp file, fsynced and renamed into place: a reader sees a
/// whole file or none.
public struct JobRecord: Codable, Sendable {
    public var key: String
    public var stage: String
    public var cellID: String
    public var artifact: String
    public var metrics: [String: Double]
    public var measurements: [String: Double]
    public var environment: [String: String]
    public var components: [String: String]
    public var seconds: Double
    public var lineage: String?
    public var budget: Double?
    /// The Slurm job that computed it (SLURM_JOB_ID); nil when the driver wrote it for a key it
    /// found stored meanwhile.
    public var jobID: String?

    init(_ r: StoredResult, jobID: String?) {
        (key, stage, cellID, artifact, metrics, measurements) = (r.key, r.stage, r.cellID, r.artifact, r.metrics, r.measurements)
        (environment, components, seconds, lineage, budget) = (r.environment, r.components, r.seconds, r.lineage, r.budget)
        self.jobID = jobID
    }

    /// The result to record in SQLite for `cellID` in the driver's run.
    func result(cellID: String, runID: String) -> StoredResult {
        StoredResult(key: key, stage: stage, cellID: cellID, artifact: artifact, metrics: metrics,
                     measurements: measurements, environment: environment, components: components,
                     seconds: seconds, runID: runID, lineage: lineage, budget: budget)
    }

    static func url(_ store: Store, key: String) -> URL { store.jobs.appendingPathComponent(key + ".json") }

    /// The record of `key`, if a job (or a driver) wrote one.
    static func read(_ store: Store, key: String) -> JobRecord? {
        guard let data = try? Data(contentsOf: url(store, key: key)) else { return nil }
        return try? JSONDecoder().decode(JobRecord.self, from: data)
    }

    func write(_ store: Store) throws {
        try JobFiles.writeAtomically(JSONEncoder.sorted.encode(self), to: Self.url(store, key: key), in: store)
    }
}

/// What the driver asks one job to compute: the instance (re-expanded by the job from the same
/// spec and overrides), the results of upstream stages settled at submission, and, when its
/// inputs were all settled, the key it must have.
public struct JobTicket: Codable, Sendable {
    public struct Input: Codable, Sendable {
        var artifact: String
        var measurements: [String: Double]
    }

    public struct Base: Codable, Sendable {
        var key: String
        var cellID: String
        var artifact: String
        var measurements: [String: Double]
        var budget: Double?
    }

    public var spec: String
    public var overrides: [String]
    public var cellID: String
    /// nil when an input is computed by another job of this run: the job computes the key from
    /// its inputs' completion records.
    public var key: String?
    public var forced: Bool
    public var reason: String
    /// A recorded shorter run this one continues (EXTEND), known only with the key.
    public var extending: Base?
    public var settled: [String: Input]
    public var runID: String
    public var threads: Int
    /// The compute backend the submitting run computes keys for (`engine.backend`); the job
    /// refuses to run on a node that would compute on another. nil in tickets of older versions.
    public var backend: String? = nil

    public static func read(_ url: URL) throws -> JobTicket {
        try JSONDecoder().decode(JobTicket.self, from: Data(contentsOf: url))
    }

    func write(to url: URL, in store: Store) throws {
        try JobFiles.writeAtomically(JSONEncoder.sorted.encode(self), to: url, in: store)
    }
}

enum JobFiles {
    /// temp file in `jobs/`, fsync, rename, fsync the directory.
    static func writeAtomically(_ data: Data, to url: URL, in store: Store) throws {
        let temp = store.jobs.appendingPathComponent(".tmp-" + UUID().uuidString)
        try Store.makeDirectory(url.deletingLastPathComponent())
        guard FileManager.default.createFile(atPath: temp.path, contents: data) else {
            throw StoreError("cannot write \(temp.path)")
        }
        Durability.syncPath(temp.path, directory: false)
        guard rename(temp.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temp)
            throw StoreError("cannot rename \(temp.lastPathComponent) to \(url.path): \(reason)")
        }
        Durability.syncDirectory(url.deletingLastPathComponent())
    }
}

extension Store {
    /// Completion records, tickets and job outputs of the Slurm executor.
    public var jobs: URL { root.appendingPathComponent("jobs") }
}

extension SettledInput {
    init(artifact: String, measurements: [String: Double]) {
        self.artifact = artifact
        self.measurements = measurements
    }
}
