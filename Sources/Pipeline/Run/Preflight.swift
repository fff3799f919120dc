import Foundation
import Stages

/// Checks made before a run touches the store: every external file a selected stage reads must
/// exist. A missing one is a mistake in the file (a typo in `path`/`deps`, a data set not
/// installed), so it is reported like a spec error, at the field that names it.
public enum Preflight {
    /// The checks `run` and `status` both make before reading the store, so they agree: a missing
    /// or special input is a located spec error (exit 2) for both, not a reason text in one of them.
    public static func check(_ expansion: Expansion, targets: [String]) throws {
        let selected = try Runner.select(targets, from: expansion)
        let problems = missingExternalFiles(expansion, instances: selected)
        if !problems.isEmpty { throw SpecError(problems) }
    }

    public static func missingExternalFiles(_ expansion: Expansion, instances: [StageInstance]) -> [SpecDiagnostic] {
        let project = expansion.spec.projectDirectory
        var diagnostics: [SpecDiagnostic] = []
        for inst in instances {
            for url in inst.kind.externalPaths(inst.fields, projectDirectory: project) {
                var st = stat()
                let exists = stat(url.path, &st) == 0
                // A FIFO or a device (`deps: [/dev/zero]`) would block or never end when hashed.
                let special = exists ? Digest.specialFileKind(st.st_mode) : nil
                if exists && special == nil { continue }
                let decl = expansion.spec.stage(named: inst.stage)
                let location = decl.flatMap { fieldLocation(naming: url, decl: $0, inst: inst, project: project) } ?? decl?.location
                let shown = StageKey.relativePath(url, to: project)
                if let special {
                    diagnostics.append(SpecDiagnostic(location, "stage `\(inst.id)` reads `\(shown)`, which is \(special); "
                                                      + "inputs must be regular files or directories"))
                    continue
                }
                diagnostics.append(SpecDiagnostic(location, "stage `\(inst.id)` reads `\(shown)`, which does not exist"
                                                  + (shown.hasPrefix("/") ? "" : " (looked at \(url.standardizedFileURL.path))")))
            }
        }
        return Expansion.dedupe(diagnostics)
    }

    /// The YAML place of the field (or list item) whose path value is, or contains, `url`.
    static func fieldLocation(naming url: URL, decl: StageDecl, inst: StageInstance, project: URL) -> SourceLocation? {
        let target = url.standardizedFileURL.path
        func names(_ s: String) -> Bool {
            let p = (s.hasPrefix("/") ? URL(fileURLWithPath: s) : project.appendingPathComponent(s)).standardizedFileURL.path
            return !s.isEmpty && (target == p || target.hasPrefix(p + "/"))
        }
        for name in inst.fields.keys.sorted() {
            guard let yaml = decl.fields[name] else { continue }
            switch inst.fields[name] {
            case .string(let s)? where names(s):
                return yaml.location
            case .list(let items)?:
                for (i, item) in items.enumerated() {
                    guard let s = item.stringValue, names(s) else { continue }
                    if case .list(let yamlItems, _) = yaml, i < yamlItems.count { return yamlItems[i].location }
                    return yaml.location
                }
            default: continue
            }
        }
        // A system default (e.g. the Debian data set) was meant: point at the source choice.
        return decl.fields["source"]?.location
    }
}
