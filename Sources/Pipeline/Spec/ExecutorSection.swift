import Foundation
import Stages

/// The `executor:` section of an experiment, or of the project's `pdpipe.yaml`: where stale stages
/// run and, for Slurm, what each job asks for, with overrides per stage kind.
///
/// ```yaml
/// executor:
///   kind: slurm            # local (default) | slurm
///   partition: cpu
///   time: "1:00:00"
///   cpus: 2
///   mem: 4G
///   sbatch: "--qos=normal"
///   per_kind:
///     train: {time: "12:00:00", cpus: 8, mem: 16G}
/// ```
///
/// The experiment's entries override the project file's; `pdpipe run --executor` and
/// `--slurm-option KEY=VALUE` override both.
public struct ExecutorSection: Sendable, Equatable {
    public var kind: String?
    /// Slurm options as `KEY=VALUE` strings, in the form `--slurm-option` takes.
    public var options: [String] = []
    public var perKind: [String: [String]] = [:]

    public init() {}

    public static let fileName = "pdpipe.yaml"
    static let optionKeys = ["partition", "account", "time", "cpus", "mem", "sbatch", "retries"]
    static let keys = ["kind"] + optionKeys + ["per_kind"]

    /// Reads a section; problems are located at the offending key or value.
    static func parse(_ y: YAMLValue, into diagnostics: inout [SpecDiagnostic]) -> ExecutorSection {
        var section = ExecutorSection()
        guard let entries = y.entries else {
            diagnostics.append(SpecDiagnostic(y.location, "`executor` must be a map (kind, \(optionKeys.joined(separator: ", ")), per_kind)"))
            return section
        }
        for e in entries {
            switch e.key {
            case "kind":
                guard let k = e.value.value.stringValue, ["local", "slurm"].contains(k) else {
                    diagnostics.append(SpecDiagnostic(e.value.location, "executor kind must be local or slurm, got `\(e.value.value.shortDescription)`"))
                    continue
                }
                section.kind = k
            case "per_kind":
                guard let kinds = e.value.entries else {
                    diagnostics.append(SpecDiagnostic(e.value.location, "executor per_kind must be a map of stage kind -> options"))
                    continue
                }
                for k in kinds {
                    guard StageRegistry.kind(named: k.key) != nil else {
                        diagnostics.append(SpecDiagnostic(k.keyLocation, "executor per_kind: unknown stage kind `\(k.key)`"
                                                          + didYouMean(k.key, among: StageRegistry.kinds.map(\.name))))
                        continue
                    }
                    guard let options = k.value.entries else {
                        diagnostics.append(SpecDiagnostic(k.value.location, "executor per_kind `\(k.key)` must be a map of options"))
                        continue
                    }
                    section.perKind[k.key] = options.compactMap { option(key: $0.key, keyLocation: $0.keyLocation, value: $0.value, into: &diagnostics) }
                }
            default:
                if let o = option(key: e.key, keyLocation: e.keyLocation, value: e.value, into: &diagnostics) { section.options.append(o) }
            }
        }
        return section
    }

    /// One `KEY=VALUE` option, checked as `SlurmOptions.set` will apply it.
    static func option(key: String, keyLocation: SourceLocation, value: YAMLValue, into diagnostics: inout [SpecDiagnostic]) -> String? {
        guard optionKeys.contains(key) else {
            diagnostics.append(SpecDiagnostic(keyLocation, "unknown executor key `\(key)`" + didYouMean(key, among: keys)))
            return nil
        }
        let text: String
        switch value.value {
        case .string(let s): text = s
        case .int(let i): text = String(i)
        case .double(let d): text = String(format: "%g", d)
        default:
            diagnostics.append(SpecDiagnostic(value.location, "executor `\(key)` must be a string or a number"))
            return nil
        }
        var probe = SlurmOptions(executable: "", spec: "")
        if let problem = probe.set(key + "=" + text) {
            diagnostics.append(SpecDiagnostic(value.location, "executor \(problem)"))
            return nil
        }
        return key + "=" + text
    }

    /// `self`'s entries over `base`'s (kind and per-kind options; options are applied in order, so later win).
    public func merged(over base: ExecutorSection) -> ExecutorSection {
        var out = base
        if let kind { out.kind = kind }
        out.options += options
        for (k, o) in perKind { out.perKind[k, default: []] += o }
        return out
    }

    /// The project's `pdpipe.yaml` executor section, if the file exists (it may hold only `executor`).
    static func project(at root: URL, into diagnostics: inout [SpecDiagnostic]) throws -> ExecutorSection? {
        let file = root.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        let top = try YAMLValue.load(file: file, displayName: SpecLoader.displayPath(file))
        guard let entries = top.entries else { throw SpecError(top.location, "expected a map at the top level") }
        for e in entries where e.key != "executor" {
            diagnostics.append(SpecDiagnostic(e.keyLocation, "unknown key `\(e.key)` in \(fileName) (it holds `executor`)"))
        }
        return top["executor"].map { parse($0, into: &diagnostics) }
    }
}
