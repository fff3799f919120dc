import Foundation

/// The store's commit protocol, the one way a stage result becomes complete:
///
///   staged output dir -> hash -> fsync -> rename into objects/<digest> (`publish`) -> record (one transaction)
///
/// A crash between any two steps leaves the result missing, never a wrong "complete": an object
/// without a record is unreferenced (gc removes it), a record is written only for a present,
/// fsynced object. Fault points (`PDPIPE_FAULT_POINT`) sit between the steps for the crash tests.
extension Store {
    /// What a stage computed, ready to record once its output is published.
    public struct Computed: Sendable {
        public var key: String
        public var stage: String
        public var cellID: String
        public var components: [String: String]
        /// Content metrics (also in the artifact's `metrics.json`).
        public var metrics: [String: Double]
        /// Measurements of this computation (wall seconds, speeds): recorded here, never hashed.
        public var measurements: [String: Double]
        public var environment: [String: String]
        public var seconds: Double
        public var runID: String
        public var lineage: String?
        public var budget: Double?

        public init(key: String, stage: String, cellID: String, components: [String: String], metrics: [String: Double],
                    measurements: [String: Double], environment: [String: String], seconds: Double, runID: String,
                    lineage: String? = nil, budget: Double? = nil) {
            (self.key, self.stage, self.cellID, self.components) = (key, stage, cellID, components)
            (self.metrics, self.measurements, self.environment) = (metrics, measurements, environment)
            (self.seconds, self.runID, self.lineage, self.budget) = (seconds, runID, lineage, budget)
        }

        /// The record of this computation once its output is the object `artifact`.
        public func result(artifact: String) -> StoredResult {
            StoredResult(key: key, stage: stage, cellID: cellID, artifact: artifact, metrics: metrics,
                         measurements: measurements, environment: environment, components: components,
                         seconds: seconds, runID: runID, lineage: lineage, budget: budget)
        }
    }

    /// Publishes `staged` (a directory under `tmp/`, consumed) as the object of `computed` and
    /// records it under `scope`. Returns the artifact digest. `warn` hears about a corrupt object
    /// that had to be replaced.
    @discardableResult
    public func commit(staged: URL, _ computed: Computed, scope: String, warn: (String) -> Void = { _ in }) throws -> String {
        let digest = try publish(staged: staged, cellID: computed.cellID, warn: warn)
        try record(computed.result(artifact: digest), scope: scope)
        FaultPoint.hit("recorded")
        return digest
    }

    /// The first half of `commit`, all a Slurm job does (the driver records): hash, fsync, rename
    /// into `objects/`. Returns the digest of the now present, synced object.
    public func publish(staged: URL, cellID: String, warn: (String) -> Void = { _ in }) throws -> String {
        let fm = FileManager.default
        FaultPoint.hit("outputs-written")
        let digest = try Digest.tree(staged)
        FaultPoint.hit("hashed")
        try Durability.syncTree(staged)
        FaultPoint.hit("synced")
        let object = objectURL(digest)
        // An object already stored under this digest is reused only if its bytes still match.
        if fm.fileExists(atPath: object.path), try Digest.tree(object) != digest {
            warn("object \(digest.prefix(12)) was corrupt; replacing it with the fresh output of \(cellID)")
            try fm.removeItem(at: object)
        }
        if !fm.fileExists(atPath: object.path) {
            do { try fm.moveItem(at: staged, to: object) } catch where fm.fileExists(atPath: object.path) {}
            Durability.syncDirectory(objects)
        }
        FaultPoint.hit("moved")
        return digest
    }

    /// Whether a recorded object can be used as it is. `verify` re-hashes it; a bad object is
    /// dropped with every result that points at it, so the next computation stores fresh bytes.
    public enum ObjectState: Sendable { case present, missing, corrupt }

    public func checkObject(_ digest: String, verify: Bool) throws -> ObjectState {
        try checkObject(digest, verify: verify, attempts: 2)
    }

    private func checkObject(_ digest: String, verify: Bool, attempts: Int) throws -> ObjectState {
        let fm = FileManager.default
        let url = objectURL(digest)
        func identity() -> Int? { (try? fm.attributesOfItem(atPath: url.path))?[.systemFileNumber] as? Int }
        guard fm.fileExists(atPath: url.path) else { return .missing }
        guard verify else { return .present }
        guard let hashed = identity() else { return .missing }
        let actual: String
        do { actual = try Digest.tree(url) } catch {
            // Another worker found it bad and is removing it right now.
            let e = error as NSError
            if e.domain == NSCocoaErrorDomain && (e.code == 260 || e.code == 4) { return .missing }
            throw error
        }
        guard actual != digest else { return .present }
        // Workers checking one object at once (two consumers of one input) must neither see it
        // half-deleted nor delete a good copy a recomputation put there meanwhile: only the
        // directory this check hashed is moved aside (a rename: one worker wins), then deleted.
        guard identity() == hashed else {
            return attempts > 1 ? try checkObject(digest, verify: true, attempts: attempts - 1) : .missing
        }
        let doomed = tmp.appendingPathComponent("corrupt-" + UUID().uuidString)
        try? fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        guard (try? fm.moveItem(at: url, to: doomed)) != nil else { return .missing }
        try? fm.removeItem(at: doomed)
        try forgetArtifact(digest)
        return .corrupt
    }

    public func objectExists(_ digest: String) -> Bool {
        FileManager.default.fileExists(atPath: objectURL(digest).path)
    }
}

/// fsync helpers: a rename publishes complete bytes only if the bytes were synced first.
enum Durability {
    /// fsync every file and directory under `dir`.
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
