import Engine
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
    /// Values of the param keys the stage reads (interpolated, implicit `stage.field`, or listed in a
    /// field that lists param keys, e.g. shell `params`); they are key components (`param.<key>`).
    public var paramValues: [String: ParamValue]
    /// For a gathering kind: the matrix cells it gathers (also key components, `gathered.*`).
    public var gathered: GatheredCells?
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

    public init(stageName: String, cellID: String, key: String, paramValues: [String: ParamValue] = [:],
                gathered: GatheredCells? = nil, inputs: [String: URL], outputDirectory: URL, workDirectory: URL, projectDirectory: URL,
                threads: Int, engineThreads: Int? = nil, emit: @escaping @Sendable (StageEvent) -> Void,
                isCancelled: @escaping @Sendable () -> Bool) {
        self.stageName = stageName
        self.cellID = cellID
        self.key = key
        self.paramValues = paramValues
        self.gathered = gathered
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

/// A built-in stage kind. Kinds are stateless values; `run` does the work on a decoded `Config`.
public protocol StageKind: Sendable {
    /// The kind's fields: one struct whose property initialisers are the defaults.
    associatedtype Config: StageConfig
    /// The YAML `kind:` name.
    var name: String { get }
    /// Bump when the meaning of outputs changes; part of every key of this kind.
    var version: Int { get }
    /// External files/directories the stage reads (their content digests enter the key).
    func externalPaths(_ config: Config, projectDirectory: URL) -> [URL]
    /// Checks across fields (e.g. sigma_min below sigma_max). Problems name the field to point at.
    func validate(_ config: Config) -> [ConfigProblem]
    func run(_ config: Config, context: StageContext) throws -> StageOutcome

    /// The numeric field a longer computation may continue a shorter one along (train: `kimg`).
    /// A stale instance whose key differs from a recorded result's only in this field, with a
    /// smaller recorded value, is EXTENDED from that result: the kind must then give the same bytes
    /// as computing from scratch. nil: never extended.
    var budgetField: String? { get }
    /// Why this configuration cannot continue a shorter computation (nil when it can).
    func extensionProblem(_ config: Config) -> String?
    /// The files of a consumed artifact the stage reads, by consumed stage name, when it reads only
    /// part of that artifact (a sample at a snapshot reads one file of the training's artifact).
    /// The key then holds those files' digests instead of the artifact's: a longer training that
    /// keeps the same snapshot leaves the sample up to date. Empty: whole artifacts.
    func inputFiles(_ config: Config, consumed: [String]) -> [String: [String]]
    /// Whether an extension of a recorded run of `budget` keeps that run's output file at `path`
    /// byte for byte (train: the snapshots up to the old kimg; not its log or config). `status`
    /// decides consumers of only such files before the extension runs. Default: none kept.
    func extensionKeeps(_ path: String, fromBudget budget: Double) -> Bool
    /// How the kind uses the engine's compute backend (convolutions, matrix products).
    var engineUse: EngineUse { get }
}

/// How a stage kind uses the engine's compute backend. OpenBLAS and oneDNN agree only to rounding,
/// so a result's bits depend on the backend that computed it.
public enum EngineUse: Sendable, Equatable {
    /// No engine computation (dataset, table, shell).
    case none
    /// Computes the model under study (train, sample) on the start-up backend, the faster one;
    /// keys name a backend other than OpenBLAS.
    case model
    /// Measures results (extractor training, feature statistics, distances, denoising losses,
    /// nearest neighbours): always on the reference backend, OpenBLAS, so one instrument, bit for
    /// bit, measures the results of every backend and FDs compare across them. Keys name no backend.
    case instrument

    /// The backend instruments run on.
    public static var referenceBackend: any ComputeBackend { BLASBackend() }
}

extension StageKind {
    public func externalPaths(_ config: Config, projectDirectory: URL) -> [URL] { [] }
    public func validate(_ config: Config) -> [ConfigProblem] { [] }
    public var budgetField: String? { nil }
    public func extensionProblem(_ config: Config) -> String? { nil }
    public func inputFiles(_ config: Config, consumed: [String]) -> [String: [String]] { [:] }
    public func extensionKeeps(_ path: String, fromBudget budget: Double) -> Bool { false }
    public var engineUse: EngineUse { .none }
}

/// The erased path: the registry holds `[any StageKind]` and the pipeline layer passes resolved
/// field maps; these decode into the kind's Config (opened implicitly on `any StageKind`).
extension StageKind {
    public var fields: [FieldDescription] { Config.fields.map(\.erased) }

    /// Decodes `values` (absent fields take their defaults) and checks across fields.
    public func decode(_ values: [String: ParamValue]) throws -> Config {
        let config = try Config(decoding: values)
        let problems = validate(config)
        if !problems.isEmpty { throw ConfigErrors(problems) }
        return config
    }

    /// Every field in canonical form with defaults filled in, or what is wrong.
    public func resolve(_ values: [String: ParamValue]) -> Result<[String: ParamValue], ConfigErrors> {
        do { return .success(try decode(values).resolvedFields) } catch let e as ConfigErrors { return .failure(e) } catch {
            return .failure(ConfigErrors([ConfigProblem(field: "", reason: .relation, message: "\(error)")]))
        }
    }

    /// Runs on resolved fields. They were checked at spec time; a failure here is a caller's bug,
    /// reported as a stage error rather than a crash.
    public func run(fields: [String: ParamValue], context: StageContext) throws -> StageOutcome {
        let config: Config
        do { config = try decode(fields) } catch { throw StageError("\(context.stageName): \(error)") }
        guard engineUse == .instrument else { return try run(config, context: context) }
        return try Engine.withBackend(EngineUse.referenceBackend) { try run(config, context: context) }
    }

    public func externalPaths(_ fields: [String: ParamValue], projectDirectory: URL) -> [URL] {
        (try? decode(fields)).map { externalPaths($0, projectDirectory: projectDirectory) } ?? []
    }

    public func extensionProblem(_ fields: [String: ParamValue]) -> String? {
        do { return extensionProblem(try decode(fields)) } catch { return "\(error)" }
    }

    public func inputFiles(_ fields: [String: ParamValue], consumed: [String]) -> [String: [String]] {
        (try? decode(fields)).map { inputFiles($0, consumed: consumed) } ?? [:]
    }

    /// Whether this is a gathering (fan-in) kind.
    public var gathersCells: Bool { self is any GatheringKind }
}

/// A gathering (fan-in) kind has ONE instance over all matrix cells: it consumes every cell's
/// instance of each stage in `needs` (inputs keyed by the upstream cell id, e.g.
/// `fid@real_p=0.5`), so its key depends on all their output digests. The expansion describes
/// the cells in `StageInstance.gathered`, which the stage reads from `StageContext.gathered`.
public protocol GatheringKind: StageKind {
    /// The matrix axes it groups by (rows) first, the rest after; the expansion gives it one cell
    /// per combination of the listed axes and of every axis its consumed stages vary with.
    func gatheringAxes(_ config: Config) -> [String]
    /// Checks of the fields against the experiment's matrix axes and its consumed stages.
    /// `item` names the map key or list entry at fault, for its location.
    func validateGathering(_ config: Config, axes: [GatheredCells.Axis], consumed: [String]) -> [GatherProblem]
}

extension GatheringKind {
    public func gatheringAxes(fields: [String: ParamValue]) -> [String] {
        (try? decode(fields)).map { gatheringAxes($0) } ?? []
    }
    public func validateGathering(fields: [String: ParamValue], axes: [GatheredCells.Axis], consumed: [String]) -> [GatherProblem] {
        do { return validateGathering(try decode(fields), axes: axes, consumed: consumed) } catch {
            return [GatherProblem(field: "", message: "\(error)")]
        }
    }
}

/// The matrix cells a gathering stage reads, made by the expansion.
public struct GatheredCells: Sendable, Equatable {
    public struct Axis: Sendable, Equatable {
        public var key: String
        public var values: [ParamValue]
        public init(key: String, values: [ParamValue]) { (self.key, self.values) = (key, values) }
    }
    /// One consumed stage's instance in a cell.
    public struct Upstream: Sendable, Equatable {
        /// Its cell id (the input's name in `StageContext.inputs`).
        public var id: String
        /// Its numeric and boolean resolved fields (what formulas can read).
        public var fields: [String: ParamValue]
        public init(id: String, fields: [String: ParamValue]) { (self.id, self.fields) = (id, fields) }
    }
    public struct Cell: Sendable, Equatable {
        public var label: String
        public var axes: [String: ParamValue]
        /// Consumed stage name -> its instance in this cell.
        public var stages: [String: Upstream]
        public init(label: String, axes: [String: ParamValue], stages: [String: Upstream]) {
            (self.label, self.axes, self.stages) = (label, axes, stages)
        }
    }
    /// The axes of the cells, listed axes first, each with its values in declared order.
    public var axes: [Axis]
    public var cells: [Cell]
    public init(axes: [Axis], cells: [Cell]) { (self.axes, self.cells) = (axes, cells) }

    /// The stage-key components (`gathered.axes`, `gathered.cells`): what the stage will read.
    public var keyComponents: [String: ParamValue] {
        [
            "axes": .list(axes.map { .map(["key": .string($0.key), "values": .list($0.values)]) }),
            "cells": .list(cells.map { c in
                .map(["label": .string(c.label), "axes": .map(c.axes),
                      "stages": .map(c.stages.mapValues { .map(["id": .string($0.id), "fields": .map($0.fields)]) })])
            }),
        ]
    }
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
