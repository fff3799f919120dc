import Foundation
import Stages

/// The key of a stage instance: SHA-256 over its components, each a canonical JSON text.
/// Components: `scheme`, `kind`, `kind_version`, `field.<name>` (operational fields, which cannot
/// change the result, are left out, and so are fields added later when at their default),
/// `param.<key>`, `gathered.axes`/`gathered.cells` (a gathering stage's cells), `input.<stage>`
/// (the upstream OUTPUT digest, for early cutoff), `file.<path>` (external file contents), for
/// gathering kinds (which show upstream measurements)
/// `measured.<stage>`, and for kinds that compute the model (train, sample) on a backend other
/// than OpenBLAS, `engine.backend` (backends agree only to rounding, so a result computed on one is
/// not restored for the other; OpenBLAS adds no component, so keys recorded before backends were
/// named stay valid) and `engine.numerics` (the backend's numerics revision: a change that alters
/// its bits bumps it). Instruments (extractors, statistics, distances) always compute on OpenBLAS
/// (`EngineUse.instrument`), so their keys name no backend.
public struct StageKey: Sendable {
    /// Bump when the way keys are computed changes.
    public static let scheme = 1

    public var components: [String: String]
    public var key: String
    /// For kinds with a budget field: the key without that field (runs that differ only in their
    /// budget share it) and the budget's value.
    public var lineage: String?
    public var budget: Double?

    public init(components: [String: String], budgetField: String? = nil) {
        self.components = components
        key = Self.hash(components)
        if let field = budgetField, let (lineage, budget) = Self.lineage(of: components, budgetField: field) {
            (self.lineage, self.budget) = (lineage, budget)
        }
    }

    /// The lineage and budget of a key's components: the hash without the budget field and the
    /// params that set it (`param.train.kimg` for `kimg: ${train.kimg}` or an implicit
    /// `train.kimg`). A param read by this stage whose value equals the budget's is its source;
    /// values compare as numbers, since a YAML `80` reaches the field as the Double 80.0. (A
    /// coincidence makes lineages differ, so it only costs an extension.)
    static func lineage(of components: [String: String], budgetField field: String) -> (lineage: String, budget: Double)? {
        guard let value = components["field." + field].flatMap(Double.init) else { return nil }
        let rest = components.filter { $0.key != "field." + field && !($0.key.hasPrefix("param.") && Double($0.value) == value) }
        return (hash(rest), value)
    }

    static func hash(_ components: [String: String]) -> String {
        Digest.hex(Digest.canonicalJSON(.map(components.mapValues { .string($0) })))
    }

    /// Computes the key; `inputDigests` are the consumed stages' artifact digests by stage name.
    public static func compute(_ inst: StageInstance, inputDigests: [String: String],
                               inputMeasurements: [String: [String: Double]] = [:], projectDirectory: URL,
                               store: Store) throws -> StageKey {
        var c: [String: String] = [
            "scheme": String(scheme),
            "kind": Digest.jsonString(inst.kind.name),
            "kind_version": String(inst.kind.version),
        ]
        let operational = Set(inst.kind.fields.filter(\.isOperational).map(\.name))
        let omittedDefaults = Dictionary(uniqueKeysWithValues: inst.kind.fields.filter(\.keyOmittedAtDefault).map { ($0.name, $0.defaultValue) })
        for (name, value) in inst.fields where !operational.contains(name) {
            if let omitted = omittedDefaults[name], omitted == value { continue }
            c["field." + name] = Digest.canonicalJSON(value)
        }
        for (key, value) in inst.reads { c["param." + key] = Digest.canonicalJSON(value) }
        for (name, value) in inst.gathered?.keyComponents ?? [:] { c["gathered." + name] = Digest.canonicalJSON(value) }
        let partial = inst.kind.inputFiles(inst.fields, consumed: Array(inst.inputs.keys).sorted())
        for (name, digest) in inputDigests {
            c["input." + name] = Digest.jsonString(try partial[name].flatMap { try filesDigest($0, of: digest, store: store) } ?? digest)
        }
        if inst.kind.gathersCells {
            for (name, values) in inputMeasurements { c["measured." + name] = Digest.canonicalJSON(.map(values.mapValues { .double($0) })) }
        }
        for url in inst.kind.externalPaths(inst.fields, projectDirectory: projectDirectory) {
            let display = relativePath(url, to: projectDirectory)
            c["file." + display] = Digest.jsonString(try store.dependencyDigest(url))
        }
        let backend = EngineInfo.backend
        if inst.kind.engineUse == .model && backend != referenceBackend {
            c["engine.backend"] = Digest.jsonString(backend)
            if let revision = EngineInfo.backendNumerics { c["engine.numerics"] = String(revision) }
        }
        return StageKey(components: c, budgetField: inst.kind.budgetField)
    }

    /// The backend whose results carry no `engine.backend` component.
    public static let referenceBackend = "openblas"

    /// `files:` + the digests of `paths` inside a stored artifact; nil when the artifact is not
    /// stored yet (a placeholder) or lacks a file, so the key falls back to the whole artifact and
    /// the stage reports what is missing when it runs.
    static func filesDigest(_ paths: [String], of artifact: String, store: Store) throws -> String? {
        let root = store.objectURL(artifact)
        var parts: [String] = []
        for path in paths.sorted() {
            let url = root.appendingPathComponent(path)
            guard FileManager.default.fileExists(atPath: url.path) else { return nil }
            parts.append(path + "=" + (try store.fileDigest(url)))
        }
        return "files:" + parts.joined(separator: ",")
    }

    static func relativePath(_ url: URL, to base: URL) -> String {
        let p = url.standardizedFileURL.path, b = base.standardizedFileURL.path
        return p.hasPrefix(b + "/") ? String(p.dropFirst(b.count + 1)) : p
    }

    /// Components that differ, as (name, old, new) with `nil` for absent.
    public static func diff(old: [String: String], new: [String: String]) -> [(name: String, old: String?, new: String?)] {
        Set(old.keys).union(new.keys).sorted().compactMap { k in
            old[k] == new[k] ? nil : (k, old[k], new[k])
        }
    }
}
