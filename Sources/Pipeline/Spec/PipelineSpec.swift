import Foundation
import Stages

/// One stage as declared in a pipeline file (before params are resolved).
public struct StageDecl: Sendable {
    public var name: String
    public var kind: any StageKind
    /// Consumed stages, in declaration order.
    public var needs: [String]
    var needsLocations: [SourceLocation]
    /// Declared fields with their YAML locations (kind-specific; `kind`/`needs` excluded).
    public var fields: [String: YAMLValue]
    public var location: SourceLocation
}

/// A matrix axis: dotted param key -> swept values.
public struct MatrixAxis: Sendable {
    public var key: String
    public var values: [ParamValue]
    public var location: SourceLocation
}

/// A `matrix: exclude:` rule: the cells whose axes take one of the listed values for every key
/// of the rule are left out (GitHub Actions' matrix `exclude`, with a list meaning "any of").
public struct MatrixExclusion: Sendable {
    public var values: [String: [ParamValue]]
    public var location: SourceLocation

    public func matches(_ cell: [(key: String, value: ParamValue)]) -> Bool {
        values.allSatisfy { key, listed in
            cell.first { $0.key == key }.map { v in listed.contains { SpecLoader.sameValue($0, v.value) } } ?? false
        }
    }
}

/// A pipeline (and optionally the experiment that names it), parsed and validated.
public struct LoadedSpec: Sendable {
    /// The file the user named (experiment or pipeline).
    public var file: URL
    public var pipelineFile: URL
    public var experimentFile: URL?
    /// Project root: relative deps resolve here; the store `.pdpipe/` lives here.
    public var projectDirectory: URL
    public var params: ParamTree
    public var stages: [StageDecl]
    public var matrix: [MatrixAxis]
    /// Axes of the experiment's matrix that `-S key=value` fixed to one value: they run that cell,
    /// and the report treats them as one-valued axes, as `table` stages do.
    public var fixedAxes: [MatrixAxis] = []
    /// Combinations of axis values the matrix leaves out.
    public var exclusions: [MatrixExclusion] = []
    /// Where stale stages run: the project's `pdpipe.yaml` and the experiment's `executor:` merged.
    public var executor = ExecutorSection()
    /// `report`/`tables` sections of the experiment, kept for the report command.
    public var report: ParamValue?
    public var tables: ParamValue?

    public func stage(named name: String) -> StageDecl? { stages.first { $0.name == name } }
}

enum SpecKeys {
    static let pipeline = ["description", "params", "stages"]
    static let experiment = ["description", "pipeline", "params", "matrix", "report", "tables", "executor"]
    static let stageReserved = ["kind", "needs", "description"]
    static let report = ["baseline", "sort_by", "descending"]
}

/// Reads pipeline/experiment files and checks everything that can be checked before running.
public enum SpecLoader {
    /// `overrides` are `-S key=value` strings (`key=a,b` sweeps).
    public static func load(_ file: URL, overrides: [String] = []) throws -> LoadedSpec {
        try expansion(file, overrides: overrides).spec
    }

    /// Loads, validates and expands over the matrix (every field of every cell is checked here).
    public static func expansion(_ file: URL, overrides: [String] = []) throws -> Expansion {
        try Expansion.expand(try parse(file, overrides: overrides))
    }

    static func parse(_ file: URL, overrides: [String]) throws -> LoadedSpec {
        let file = file.standardizedFileURL
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file.path, isDirectory: &isDirectory) else {
            throw SpecError(nil, "\(file.path): no such file")
        }
        if isDirectory.boolValue { throw SpecError(nil, "\(file.path): is a directory, not a pipeline or experiment file") }
        let display = displayPath(file)
        let top = try YAMLValue.load(file: file, displayName: display)
        var diagnostics: [SpecDiagnostic] = []
        guard let entries = top.entries else { throw SpecError(top.location, "expected a map at the top level") }

        let isExperiment = entries.contains { $0.key == "pipeline" }
        var pipelineFile = file
        var pipelineTop = top
        if isExperiment {
            checkKeys(top, allowed: SpecKeys.experiment, what: "experiment", into: &diagnostics)
            guard case .scalar(.string(let rel), let loc) = top["pipeline"]! else {
                throw SpecError(top["pipeline"]!.location, "`pipeline` must be a path (string)")
            }
            pipelineFile = URL(fileURLWithPath: rel, relativeTo: file.deletingLastPathComponent()).standardizedFileURL
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: pipelineFile.path, isDirectory: &isDirectory) else {
                throw SpecError(loc, "pipeline file `\(rel)` not found (looked at \(pipelineFile.path))")
            }
            if isDirectory.boolValue { throw SpecError(loc, "pipeline `\(rel)` is a directory, not a file") }
            pipelineTop = try YAMLValue.load(file: pipelineFile, displayName: displayPath(pipelineFile))
        }
        if pipelineTop.entries == nil { throw SpecError(pipelineTop.location, "expected a map at the top level") }
        checkKeys(pipelineTop, allowed: SpecKeys.pipeline, what: "pipeline", into: &diagnostics)

        // Params: pipeline declares, experiment overrides existing keys.
        var params = ParamTree()
        if let p = pipelineTop["params"] {
            if p.entries == nil { diagnostics.append(SpecDiagnostic(p.location, "`params` must be a map")) }
            else { params.declare(p) }
        }
        // Sorted names only for did-you-mean, on errors: sorting 100k keys costs more than loading them.
        let declaredTree = params
        let declaredSet = Set(params.locations.keys)
        var matrix: [MatrixAxis] = []
        var excludeEntry: YAMLValue?
        var report: ParamValue?
        var tables: ParamValue?
        if isExperiment {
            if let p = top["params"] {
                if p.entries == nil { diagnostics.append(SpecDiagnostic(p.location, "`params` must be a map")) }
                else { applyOverrides(p, prefix: "", to: &params, declared: declaredSet, names: { declaredTree.allKeys }, into: &diagnostics) }
            }
            if let m = top["matrix"] {
                if let mEntries = m.entries {
                    for e in mEntries {
                        if e.key == "exclude" {
                            excludeEntry = e.value
                            continue
                        }
                        guard params.contains(e.key) else {
                            diagnostics.append(SpecDiagnostic(e.keyLocation,
                                "matrix key `\(e.key)` is not a param of the pipeline" + didYouMean(e.key, among: declaredTree.allKeys)))
                            continue
                        }
                        guard case .list(let items, _) = e.value, !items.isEmpty else {
                            diagnostics.append(SpecDiagnostic(e.value.location, "matrix values for `\(e.key)` must be a non-empty list"))
                            continue
                        }
                        // Sweeping a whole map would replace it by each value (dropping the keys a value
                        // does not name): sweep its leaves instead.
                        if case .map(let m)? = params.value(at: e.key) {
                            diagnostics.append(SpecDiagnostic(e.keyLocation, "matrix key `\(e.key)` is a map of params, not a param; "
                                + "sweep its entries instead (" + m.keys.sorted().prefix(3).map { "`\(e.key).\($0)`" }.joined(separator: ", ") + ")"))
                            continue
                        }
                        if let bad = items.first(where: { $0.entries != nil }) {
                            diagnostics.append(SpecDiagnostic(bad.location, "matrix values for `\(e.key)` must be scalars or lists, not maps"))
                            continue
                        }
                        matrix.append(MatrixAxis(key: e.key, values: items.map(\.value), location: e.keyLocation))
                    }
                } else {
                    diagnostics.append(SpecDiagnostic(m.location, "`matrix` must be a map of param key -> list of values"))
                }
            }
            report = top["report"]?.value
            tables = top["tables"]?.value
        }
        let projectDirectory = projectRoot(for: file)
        var executor = try ExecutorSection.project(at: projectDirectory, into: &diagnostics) ?? ExecutorSection()
        if isExperiment, let e = top["executor"] { executor = ExecutorSection.parse(e, into: &diagnostics).merged(over: executor) }

        // Command-line overrides: `key=value` sets, `key=a,b` sweeps.
        var given: [String: String] = [:]
        var fixedAxes: [MatrixAxis] = []
        for o in overrides {
            guard let eq = o.firstIndex(of: "=") else {
                diagnostics.append(SpecDiagnostic(nil, "-S \(o): expected key=value")); continue
            }
            let key = String(o[..<eq]), raw = String(o[o.index(after: eq)...])
            guard params.contains(key) else {
                diagnostics.append(SpecDiagnostic(nil, "-S \(o): `\(key)` is not a param of the pipeline" + didYouMean(key, among: declaredTree.allKeys)))
                continue
            }
            if case .map(let m)? = params.value(at: key) {
                diagnostics.append(SpecDiagnostic(nil, "-S \(o): `\(key)` is a map of params; set its entries ("
                    + m.keys.sorted().prefix(3).map { "`\(key).\($0)`" }.joined(separator: ", ") + ")"))
                continue
            }
            // The last of two values would win silently; a sweep is spelled `key=a,b`.
            if let earlier = given[key] {
                diagnostics.append(SpecDiagnostic(nil, "-S \(key) is given twice: `\(key)=\(earlier)` and `\(key)=\(raw)`"
                                                  + " (to sweep both, write -S \(key)=\(earlier),\(raw))"))
                continue
            }
            given[key] = raw
            let loc = SourceLocation(file: "-S", line: 1, column: 1)
            let pieces = raw.split(separator: ",", omittingEmptySubsequences: false)
            // `n=` or `n=1,,2` is a typo far more often than a wish for null: an empty string is `n=""`.
            if pieces.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
                diagnostics.append(SpecDiagnostic(nil, "-S \(o): empty value" + (pieces.count > 1 ? " in the list" : "")
                    + " (write \(key)=\"\" for an empty string, \(key)=null for no value)"))
                continue
            }
            let values = pieces.map { parseScalar(String($0)) }
            if values.count == 1, matrix.contains(where: { $0.key == key }) {
                fixedAxes.append(MatrixAxis(key: key, values: values, location: loc))
            }
            matrix.removeAll { $0.key == key }
            if values.count == 1 { params.set(key, values[0], location: loc) }
            else { matrix.append(MatrixAxis(key: key, values: values, location: loc)) }
        }

        let exclusions = excludeEntry.map { parseExclusions($0, matrix: matrix, fixedAxes: fixedAxes, params: params, into: &diagnostics) } ?? []

        // `report:` holds defaults of `pdpipe report` (its command-line flags win).
        if isExperiment, let r = top["report"] {
            if r.entries == nil { diagnostics.append(SpecDiagnostic(r.location, "`report` must be a map (baseline, sort_by, descending)")) }
            checkKeys(r, allowed: SpecKeys.report, what: "report", into: &diagnostics)
            if let b = r["baseline"] {
                if let entries = b.entries {
                    for e in entries where !matrix.contains(where: { $0.key == e.key }) {
                        // An axis fixed by `-S` is a one-valued axis (the `table` stage's rule).
                        if let axis = fixedAxes.first(where: { $0.key == e.key }) {
                            if !axis.values.contains(where: { sameValue($0, e.value.value) }) {
                                diagnostics.append(SpecDiagnostic(e.value.location, "report baseline: `\(e.key)` has no value "
                                    + "\(e.value.value.shortDescription) in the matrix (values: \(axis.values.map(\.shortDescription).joined(separator: ", ")), set by -S)"))
                            }
                            continue
                        }
                        diagnostics.append(SpecDiagnostic(e.keyLocation, "report baseline: `\(e.key)` is not a matrix axis"
                                                          + didYouMean(e.key, among: matrix.map(\.key))))
                    }
                } else { diagnostics.append(SpecDiagnostic(b.location, "report baseline must be a map of matrix axis -> value")) }
            }
            if let v = r["sort_by"], v.value.stringValue == nil { diagnostics.append(SpecDiagnostic(v.location, "report sort_by must be a column name")) }
            if let v = r["descending"], v.value.boolValue == nil { diagnostics.append(SpecDiagnostic(v.location, "report descending must be true or false")) }
        }

        // Stages.
        var stages: [StageDecl] = []
        if let s = pipelineTop["stages"] {
            if let sEntries = s.entries {
                for e in sEntries {
                    if let decl = parseStage(name: e.key, keyLocation: e.keyLocation, body: e.value, into: &diagnostics) {
                        stages.append(decl)
                    }
                }
            } else {
                diagnostics.append(SpecDiagnostic(s.location, "`stages` must be a map of stage name -> stage"))
            }
        } else {
            diagnostics.append(SpecDiagnostic(pipelineTop.location, "pipeline has no `stages`"))
        }
        // An experiment's `tables:` entries are `table` stages over the pipeline's stages.
        if isExperiment, let t = top["tables"] {
            if let tEntries = t.entries {
                let pipelineNames = stages.map(\.name)
                for e in tEntries {
                    if pipelineNames.contains(e.key) {
                        diagnostics.append(SpecDiagnostic(e.keyLocation, "table `\(e.key)` has the name of a pipeline stage"))
                        continue
                    }
                    if let decl = parseStage(name: e.key, keyLocation: e.keyLocation, body: e.value, into: &diagnostics,
                                             defaultKind: TableStage()) {
                        stages.append(inferNeeds(decl, among: pipelineNames))
                    }
                }
            } else {
                diagnostics.append(SpecDiagnostic(t.location, "`tables` must be a map of table name -> table"))
            }
        }
        let names = stages.map(\.name)
        for st in stages {
            for (i, n) in st.needs.enumerated() where !names.contains(n) {
                let loc = needsLocation(st, index: i)
                diagnostics.append(SpecDiagnostic(loc, "stage `\(st.name)` needs unknown stage `\(n)`" + didYouMean(n, among: names)))
            }
        }
        if diagnostics.isEmpty, let cycle = findCycle(stages) {
            diagnostics.append(SpecDiagnostic(stages.first { $0.name == cycle[0] }!.location,
                                              "dependency cycle: " + cycle.joined(separator: " -> ")))
        }
        if !diagnostics.isEmpty { throw SpecError(diagnostics) }

        return LoadedSpec(
            file: file, pipelineFile: pipelineFile, experimentFile: isExperiment ? file : nil,
            projectDirectory: projectDirectory, params: params, stages: stages, matrix: matrix,
            fixedAxes: fixedAxes, exclusions: exclusions, executor: executor, report: report, tables: tables)
    }

    /// `matrix: exclude:` — a list of maps of matrix axis -> value or list of values. A key that
    /// `-S` fixed to one value drops out of a rule that lists that value, and the rule is dropped
    /// when it does not (then no cell of this run matches it).
    static func parseExclusions(_ y: YAMLValue, matrix: [MatrixAxis], fixedAxes: [MatrixAxis], params: ParamTree,
                                into diagnostics: inout [SpecDiagnostic]) -> [MatrixExclusion] {
        guard case .list(let rules, _) = y else {
            diagnostics.append(SpecDiagnostic(y.location, "matrix `exclude` must be a list of maps of matrix axis -> value(s)"))
            return []
        }
        var out: [MatrixExclusion] = []
        for rule in rules {
            guard let entries = rule.entries, !entries.isEmpty else {
                diagnostics.append(SpecDiagnostic(rule.location, "an `exclude` entry must be a non-empty map of matrix axis -> value(s)"))
                continue
            }
            var values: [String: [ParamValue]] = [:]
            var applies = true
            for e in entries {
                let listed: [ParamValue]
                if case .list(let items, _) = e.value { listed = items.map(\.value) } else { listed = [e.value.value] }
                if let axis = matrix.first(where: { $0.key == e.key }) {
                    for v in listed where !axis.values.contains(where: { sameValue($0, v) }) {
                        diagnostics.append(SpecDiagnostic(e.value.location, "exclude: `\(e.key)` has no value \(v.shortDescription) in the matrix"
                            + " (values: \(axis.values.map(\.shortDescription).joined(separator: ", ")))"))
                    }
                    values[e.key] = listed
                } else if let fixed = fixedAxes.first(where: { $0.key == e.key }) {
                    if !listed.contains(where: { sameValue($0, fixed.values[0]) }) { applies = false }
                } else {
                    diagnostics.append(SpecDiagnostic(e.keyLocation, "exclude: `\(e.key)` is not a matrix axis" + didYouMean(e.key, among: matrix.map(\.key))))
                }
            }
            if applies, !values.isEmpty { out.append(MatrixExclusion(values: values, location: rule.location)) }
            // Every key fixed by -S to a listed value: the rule excludes the one cell this run has.
            if applies, values.isEmpty { out.append(MatrixExclusion(values: [:], location: rule.location)) }
        }
        return out
    }

    /// Nearest ancestor of the file holding `pipelines/` or `.git`; else the file's directory.
    public static func projectRoot(for file: URL) -> URL {
        let fm = FileManager.default
        var dir = file.deletingLastPathComponent().standardizedFileURL
        while true {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: dir.appendingPathComponent("pipelines").path, isDirectory: &isDir), isDir.boolValue { return dir }
            if fm.fileExists(atPath: dir.appendingPathComponent(".git").path) { return dir }
            let parent = dir.deletingLastPathComponent().standardizedFileURL
            if parent.path == dir.path { break }
            dir = parent
        }
        return file.deletingLastPathComponent().standardizedFileURL
    }

    static func displayPath(_ url: URL) -> String {
        let cwd = FileManager.default.currentDirectoryPath
        let p = url.standardizedFileURL.path
        return p.hasPrefix(cwd + "/") ? String(p.dropFirst(cwd.count + 1)) : p
    }

    /// Numbers compare by value (`1` and `1.0` name the same axis value).
    static func sameValue(_ a: ParamValue, _ b: ParamValue) -> Bool {
        if let x = a.doubleValue, let y = b.doubleValue { return x == y }
        return a == b
    }

    /// `-S` values: YAML scalar rules (numbers, booleans, strings).
    static func parseScalar(_ s: String) -> ParamValue {
        if let v = try? YAMLValue.parse(s, file: "-S"), case .scalar(let p, _) = v { return p }
        return .string(s)
    }

    private static func checkKeys(_ map: YAMLValue, allowed: [String], what: String, into d: inout [SpecDiagnostic]) {
        for e in map.entries ?? [] where !allowed.contains(e.key) {
            d.append(SpecDiagnostic(e.keyLocation, "unknown \(what) key `\(e.key)`" + didYouMean(e.key, among: allowed)))
        }
    }

    private static func applyOverrides(_ yaml: YAMLValue, prefix: String, to params: inout ParamTree,
                                       declared: Set<String>, names: () -> [String], into d: inout [SpecDiagnostic]) {
        for e in yaml.entries ?? [] {
            let key = prefix.isEmpty ? e.key : prefix + "." + e.key
            guard declared.contains(key) else {
                d.append(SpecDiagnostic(e.keyLocation, "unknown param `\(key)` (the pipeline does not declare it)"
                                        + didYouMean(key, among: names())))
                continue
            }
            // Descend into maps the pipeline declares as maps; otherwise replace the value.
            if e.value.entries != nil, case .map = params.value(at: key) {
                applyOverrides(e.value, prefix: key, to: &params, declared: declared, names: names, into: &d)
            } else if case .map(let m)? = params.value(at: key) {
                // Replacing a map by a scalar would break every `${key.sub}` far away, in the pipeline file.
                d.append(SpecDiagnostic(e.value.location, "param `\(key)` is a map in the pipeline ("
                    + m.keys.sorted().prefix(3).map { "`\($0)`" }.joined(separator: ", ") + (m.count > 3 ? ", ..." : "")
                    + "); set its entries, e.g. `\(e.key): {\(m.keys.sorted().first ?? "key"): ...}`"))
            } else {
                params.set(key, e.value.value, location: e.value.location)
            }
        }
    }

    /// A gathering stage without `needs` consumes the stages its column formulas name.
    static func inferNeeds(_ decl: StageDecl, among stages: [String]) -> StageDecl {
        guard decl.kind.gathersCells, decl.needs.isEmpty, let columns = decl.fields["columns"]?.entries else { return decl }
        var d = decl
        for c in columns {
            guard case .scalar(.string(let f), _) = c.value, let e = try? TableExpression.parse(f) else { continue }
            for r in e.references {
                let stage = String(r.split(separator: ".", maxSplits: 1)[0])
                if r.contains("."), stages.contains(stage), !d.needs.contains(stage) { d.needs.append(stage) }
            }
        }
        return d
    }

    private static func parseStage(name: String, keyLocation: SourceLocation, body: YAMLValue,
                                   into d: inout [SpecDiagnostic], defaultKind: (any StageKind)? = nil) -> StageDecl? {
        guard let entries = body.entries else {
            d.append(SpecDiagnostic(body.location, "stage `\(name)` must be a map with at least `kind`")); return nil
        }
        if let problem = stageNameProblem(name) {
            d.append(SpecDiagnostic(keyLocation, problem)); return nil
        }
        let kindNames = StageRegistry.kinds.map(\.name)
        let kind: any StageKind
        if let defaultKind {
            if let k = body["kind"], k.value != .string(defaultKind.name) {
                d.append(SpecDiagnostic(k.location, "`\(name)` must be of kind `\(defaultKind.name)` here")); return nil
            }
            kind = defaultKind
        } else if let kindValue = body["kind"] {
            guard case .scalar(.string(let kindName), _) = kindValue, let k = StageRegistry.kind(named: kindName) else {
                d.append(SpecDiagnostic(kindValue.location, "unknown stage kind `\(kindValue.value.shortDescription)`"
                                        + didYouMean(kindValue.value.shortDescription, among: kindNames)
                                        + "; known kinds: " + kindNames.joined(separator: ", ")))
                return nil
            }
            kind = k
        } else {
            d.append(SpecDiagnostic(keyLocation, "stage `\(name)` has no `kind`")); return nil
        }
        var needs: [String] = []
        var needsLocations: [SourceLocation] = []
        if let n = body["needs"] {
            switch n {
            case .scalar(.string(let s), let l): needs = [s]; needsLocations = [l]
            case .list(let items, _):
                for item in items {
                    if case .scalar(.string(let s), let l) = item { needs.append(s); needsLocations.append(l) }
                    else { d.append(SpecDiagnostic(item.location, "`needs` entries must be stage names")) }
                }
                if Set(needs).count != needs.count {
                    d.append(SpecDiagnostic(n.location, "`needs` lists a stage twice"))
                }
            default: d.append(SpecDiagnostic(n.location, "`needs` must be a list of stage names"))
            }
        }
        let fieldNames = kind.fields.map(\.name)
        var fields: [String: YAMLValue] = [:]
        for e in entries where !SpecKeys.stageReserved.contains(e.key) {
            guard fieldNames.contains(e.key) else {
                d.append(SpecDiagnostic(e.keyLocation, "unknown field `\(e.key)` for stage kind `\(kind.name)`"
                                        + didYouMean(e.key, among: fieldNames + SpecKeys.stageReserved)))
                continue
            }
            fields[e.key] = e.value
        }
        return StageDecl(name: name, kind: kind, needs: needs, needsLocations: needsLocations, fields: fields, location: keyLocation)
    }

    /// Longest stage name: cell ids (name plus swept values) become log file names (255 bytes at most).
    static let maxStageNameLength = 64

    /// Stage names become cell ids, log and file names and `PDPIPE_IN_<NAME>` variables, so they are
    /// plain ASCII words: no `@`/`,`/`=` (cell ids), `/` (paths), `${` or control characters.
    static func stageNameProblem(_ name: String) -> String? {
        let shown = name.debugDescription.dropFirst().dropLast()
        if name.isEmpty { return "a stage name may not be empty" }
        if name.utf8.count > maxStageNameLength {
            return "stage name `\(shown.prefix(40))...` is \(name.utf8.count) bytes long (at most \(maxStageNameLength))"
        }
        if !SpecChecks.isPlainName(name, extra: "_-.") || name.hasPrefix(".") || name.hasPrefix("-") {
            return "stage name `\(shown)` may only contain ASCII letters, digits, `_`, `-` and `.` (and not start with `.` or `-`)"
        }
        return nil
    }

    private static func needsLocation(_ st: StageDecl, index: Int) -> SourceLocation {
        index < st.needsLocations.count ? st.needsLocations[index] : st.location
    }

    /// A cycle as a list of names (first repeated at the end), or nil.
    static func findCycle(_ stages: [StageDecl]) -> [String]? {
        let byName = Dictionary(uniqueKeysWithValues: stages.map { ($0.name, $0) })
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var path: [String] = []
        func visit(_ n: String) -> [String]? {
            if state[n] == 2 { return nil }
            if state[n] == 1 { return Array(path[path.firstIndex(of: n)!...]) + [n] }
            state[n] = 1; path.append(n)
            for m in byName[n]?.needs ?? [] { if let c = visit(m) { return c } }
            path.removeLast(); state[n] = 2
            return nil
        }
        for s in stages { if let c = visit(s.name) { return c } }
        return nil
    }
}
