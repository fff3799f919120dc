import Foundation

/// The Slurm jobs a driver has in flight, kept in the store (`jobs/active/<run id>.json`) while it
/// runs so that `pdpipe status` can show them and `pdpipe logs` find their output. Rewritten
/// (atomically) whenever the set changes; removed when the driver finishes.
public struct ActiveJobs: Codable, Sendable, Equatable {
    public struct Job: Codable, Sendable, Equatable {
        public var cell: String
        public var job: String
        public var output: String
    }
    public var run: String
    public var jobs: [Job]

    static func url(_ store: Store, run: String) -> URL {
        store.jobs.appendingPathComponent("active/\(run).json")
    }

    func write(_ store: Store) throws {
        let url = Self.url(store, run: run)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try e.encode(self).write(to: url, options: .atomic)
    }

    static func remove(_ store: Store, run: String) {
        try? FileManager.default.removeItem(at: url(store, run: run))
    }

    /// Every driver's jobs in flight (files of drivers that died stay until `gc` or the next run
    /// marks their run killed; callers check the run's status).
    public static func all(_ store: Store) -> [ActiveJobs] {
        let dir = store.jobs.appendingPathComponent("active")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        return names.compactMap { try? JSONDecoder().decode(ActiveJobs.self, from: Data(contentsOf: dir.appendingPathComponent($0))) }
    }

    /// Slurm's state of each job id (`squeue`), or nil when Slurm cannot be asked.
    public static func states() -> [String: String]? { try? SlurmCLI.states() }
}
