import Foundation

/// The type a stage field must have; validation reports mismatches with file:line:column.
public indirect enum ParamType: Sendable, Hashable {
    case int, double, bool, string, any
    case list(ParamType)
    case oneOf([String])
    /// A map whose keys are free-form (e.g. shell `env`).
    case map(ParamType)
    /// A YAML map whose order matters (e.g. table `columns`), resolved to a list of
    /// two-element lists `[key, value]` in declaration order.
    case pairs(ParamType)

    public var description: String {
        switch self {
        case .int: return "integer"
        case .double: return "number"
        case .bool: return "boolean"
        case .string: return "string"
        case .any: return "any value"
        case .list(let t): return "list of \(t.description)"
        case .oneOf(let options): return "one of " + options.joined(separator: ", ")
        case .map(let t): return "map of \(t.description)"
        case .pairs(let t): return "map of \(t.description)"
        }
    }
}

/// One field a stage kind accepts.
public struct ParamSpec: Sendable {
    public var name: String
    public var type: ParamType
    /// nil means required.
    public var defaultValue: ParamValue?
    public var help: String
    /// Extra semantic check (range, divisibility); returns a message when invalid.
    public var check: (@Sendable (ParamValue) -> String?)?

    public init(_ name: String, _ type: ParamType, default defaultValue: ParamValue? = nil,
                help: String = "", check: (@Sendable (ParamValue) -> String?)? = nil) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.help = help
        self.check = check
    }
}

/// Something a running stage tells the runner: log lines and progress.
public enum StageEvent: Sendable {
    case log(String)
    /// `completed` of `total` units (e.g. kimg); `detail` is free text such as "loss 0.031".
    case progress(completed: Double, total: Double, unit: String, detail: String)
}

/// Raised by a stage for a failure the user can act on (missing file, NaN loss at step N).
public struct StageError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Raised when the run was interrupted (SIGINT); the stage left nothing complete.
public struct StageCancelled: Error, Sendable { public init() {} }

/// Everything a stage needs to run. Paths are absolute.
public struct StageContext: Sendable {
    /// Stage name within its pipeline (e.g. `train`) and matrix cell id (e.g. `train@real_p=0.5`).
    public var stageName: String
    public var cellID: String
    /// The stage key (hex SHA-256).
    public var key: String
    /// Resolved fields of the stage, defaults filled in.
    public var params: [String: ParamValue]
    /// Output artifact directories of consumed stages, by the consumed stage's name (read-only).
    public var inputs: [String: URL]
    /// Recorded measurements of the consumed results, by the same names (for gathering kinds:
    /// a table column may show `train.wall_seconds`). They enter the key of a kind that reads them.
    public var inputMeasurements: [String: [String: Double]] = [:]
    /// A recorded shorter computation of the same configuration to continue instead of starting
    /// over (see `StageKind.budgetField`); nil computes from scratch.
    public var extending: ExtensionBase?
    /// Empty directory the stage writes its outputs into; the runner hashes and stores it.
    public var outputDirectory: URL
    /// Persistent per-key scratch directory (checkpoints); survives interruption, removed on success.
    public var workDirectory: URL
    /// Directory the pipeline file lives in; relative paths in params resolve against it.
    public var projectDirectory: URL
    /// Number of threads this stage may use.
    public var threads: Int
    /// Threads for engine compute. Engine stages take turns (`Engine.exclusive`), so each may
    /// use the run's whole thread budget rather than its share of `-j`.
    public var engineThreads: Int
    public var emit: @Sendable (StageEvent) -> Void
    public var isCancelled: @Sendable () -> Bool

    public init(stageName: String, cellID: String, key: String, params: [String: ParamValue],
                inputs: [String: URL], outputDirectory: URL, workDirectory: URL, projectDirectory: URL,
                threads: Int, engineThreads: Int? = nil, emit: @escaping @Sendable (StageEvent) -> Void,
                isCancelled: @escaping @Sendable () -> Bool) {
        self.stageName = stageName
        self.cellID = cellID
        self.key = key
        self.params = params
        self.inputs = inputs
        self.outputDirectory = outputDirectory
        self.workDirectory = workDirectory
        self.projectDirectory = projectDirectory
        self.threads = threads
        self.engineThreads = engineThreads ?? threads
        self.emit = emit
        self.isCancelled = isCancelled
    }

    /// A path param resolved against the project directory.
    public func path(_ value: String) -> URL {
        value.hasPrefix("/") ? URL(fileURLWithPath: value)
            : projectDirectory.appendingPathComponent(value)
    }
}

/// The artifact and measurements of the recorded shorter run an extension continues from.
public struct ExtensionBase: Sendable {
    public var artifact: URL
    public var measurements: [String: Double]
    public init(artifact: URL, measurements: [String: Double]) {
        self.artifact = artifact
        self.measurements = measurements
    }
}

/// What a finished stage reports besides the files in its output directory, in two parts.
/// Content metrics (FD, final loss, test accuracy) are what the stage computed: recomputing the
/// same key gives the same values, and the runner writes them into the artifact as `metrics.json`.
/// Measurements (wall seconds, images per second) describe how this computation went: they are
/// kept in the store beside the result and never enter the hashed artifact, so a recomputation
/// that yields the same content has the same digest (early cutoff).
public struct StageOutcome: Sendable {
    public var metrics: [String: Double]
    public var measurements: [String: Double]
    public init(metrics: [String: Double] = [:], measurements: [String: Double] = [:]) {
        self.metrics = metrics
        self.measurements = measurements
    }
}

/// A built-in stage kind. Kinds are stateless values; `run` does the work.
public protocol StageKind: Sendable {
    /// The YAML `kind:` name.
    var name: String { get }
    /// Bump when the meaning of outputs changes; part of every key of this kind.
    var version: Int { get }
    /// Accepted fields, with types and defaults.
    var params: [ParamSpec] { get }
    /// External files/directories the stage reads (their content digests enter the key).
    func externalPaths(_ params: [String: ParamValue], projectDirectory: URL) -> [URL]
    /// Checks across fields (e.g. patch sizes that must divide the resolution). Messages name the field.
    func validate(_ params: [String: ParamValue]) -> [(field: String, message: String)]
    func run(_ context: StageContext) throws -> StageOutcome

    /// A gathering (fan-in) kind has ONE instance over all matrix cells: it consumes every
    /// cell's instance of each stage in `needs` (inputs keyed by the upstream cell id, e.g.
    /// `fid@real_p=0.5`), so its key depends on all their output digests. The expansion passes
    /// the cells in the `cells` param (see `GatheredCell`).
    var gathersCells: Bool { get }

    /// The numeric field a longer computation may continue a shorter one along (train: `kimg`).
    /// A stale instance whose key differs from a recorded result's only in this field, with a
    /// smaller recorded value, is EXTENDED from that result: the kind must then give the same bytes
    /// as computing from scratch. nil: never extended.
    var budgetField: String? { get }
    /// Why these fields cannot continue a shorter computation (nil when they can).
    func extensionProblem(_ params: [String: ParamValue]) -> String?
    /// Checks of a gathering kind's fields against the experiment's matrix axes (key -> values)
    /// and its consumed stages. `item` names the map key or list entry at fault, for its location.
    func validateGathering(_ params: [String: ParamValue], axes: [(key: String, values: [ParamValue])],
                           consumed: [String]) -> [GatherProblem]
    /// For a gathering kind: the matrix axes it groups by (rows) first, the rest after; the
    /// expansion gives it one cell per combination of the listed axes and of every axis its
    /// consumed stages vary with. nil for other kinds.
    func gatheringAxes(_ params: [String: ParamValue]) -> [String]
}

/// A problem in a gathering stage's fields: `item` is the offending map key or list entry.
public struct GatherProblem: Sendable, Equatable {
    public var field: String
    public var item: String?
    public var message: String
    public init(field: String, item: String? = nil, message: String) {
        self.field = field
        self.item = item
        self.message = message
    }
}

extension StageKind {
    public var gathersCells: Bool { false }
    public var budgetField: String? { nil }
    public func extensionProblem(_ params: [String: ParamValue]) -> String? { nil }
    public func validateGathering(_ params: [String: ParamValue], axes: [(key: String, values: [ParamValue])],
                                  consumed: [String]) -> [GatherProblem] { [] }
    public func gatheringAxes(_ params: [String: ParamValue]) -> [String] { [] }
    public func externalPaths(_ params: [String: ParamValue], projectDirectory: URL) -> [URL] { [] }
    public func validate(_ params: [String: ParamValue]) -> [(field: String, message: String)] { [] }
}
