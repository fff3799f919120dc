import Foundation
import Stages

/// One stage in one matrix cell: what the runner keys, schedules and stores.
public struct StageInstance: Sendable {
    /// Stable cell id: `stage` or `stage@key=value,...` (only the swept keys it reads).
    public var id: String
    public var stage: String
    public var kind: any StageKind
    /// Swept keys this instance reads (directly or upstream), sorted by key.
    public var assignment: [(key: String, value: ParamValue)]
    /// Resolved fields, defaults filled in, in the canonical form of the kind's config.
    public var fields: [String: ParamValue]
    /// Param keys the stage reads itself, with their values (those that only operational fields
    /// read are left out: they cannot change the result, so they stay out of the key).
    public var reads: [String: ParamValue]
    /// Consumed stage name -> upstream instance id.
    public var inputs: [String: String]
    /// For a gathering kind: the matrix cells it gathers.
    public var gathered: GatheredCells? = nil
}

/// The experiment expanded over its matrix, in topological order.
public struct Expansion: Sendable {
    public var spec: LoadedSpec
    public var instances: [StageInstance]
    /// Full matrix cells (every axis), in a stable order; one empty cell when there is no matrix.
    public var cells: [[(key: String, value: ParamValue)]]

    public func instance(_ id: String) -> StageInstance? { instances.first { $0.id == id } }

    /// The instance of `stage` that belongs to a full matrix cell.
    public func instance(of stage: String, in cell: [(key: String, value: ParamValue)]) -> StageInstance? {
        instances.first { inst in
            inst.stage == stage && inst.assignment.allSatisfy { a in cell.contains { $0.key == a.key && $0.value == a.value } }
        }
    }

    /// Short display names for swept keys: the last component when unambiguous.
    static func shortNames(_ keys: [String]) -> [String: String] {
        var result: [String: String] = [:]
        let lasts = keys.map { String($0.split(separator: ".").last ?? Substring($0)) }
        for (k, l) in zip(keys, lasts) { result[k] = lasts.filter { $0 == l }.count == 1 ? l : k }
        return result
    }

    public static func cellLabel(_ assignment: [(key: String, value: ParamValue)], names: [String: String]) -> String {
        assignment.map { "\(names[$0.key] ?? $0.key)=\($0.value.shortDescription)" }.joined(separator: ",")
    }

    public static func expand(_ spec: LoadedSpec) throws -> Expansion {
        var diagnostics: [SpecDiagnostic] = []
        let order = topologicalOrder(spec.stages)
        let axes = spec.matrix.sorted { $0.key < $1.key }
        let names = shortNames(axes.map(\.key))
        // Cell ids are built from the values' short forms, so two values may not share one.
        for axis in axes {
            var seen = Set<String>()
            for v in axis.values where !seen.insert(v.shortDescription).inserted {
                diagnostics.append(SpecDiagnostic(axis.location, "matrix values for `\(axis.key)` list `\(v.shortDescription)` twice"))
            }
        }

        // Which params each stage reads (static: interpolation names do not depend on values).
        var directReads: [String: Set<String>] = [:]
        for st in order {
            do { directReads[st.name] = try readKeys(st, params: spec.params) } catch let e as SpecError {
                diagnostics += e.diagnostics
                directReads[st.name] = []
            }
        }
        if !diagnostics.isEmpty { throw SpecError(dedupe(diagnostics)) }

        // Swept keys a stage depends on: its own reads plus its upstream stages'.
        var swept: [String: Set<String>] = [:]
        for st in order {
            var s = Set<String>()
            for key in directReads[st.name]! {
                for axis in axes where axis.key == key || axis.key.hasPrefix(key + ".") || key.hasPrefix(axis.key + ".") {
                    s.insert(axis.key)
                }
            }
            // A gathering stage is one instance over all cells: it inherits no swept key.
            if !st.kind.gathersCells { for n in st.needs { s.formUnion(swept[n] ?? []) } }
            swept[st.name] = s
        }

        // The matrix's cells without the excluded ones; a stage instance exists when some cell needs it.
        let cells = product(axes).filter { cell in !spec.exclusions.contains { $0.matches(cell) } }
        if cells.isEmpty, let rule = spec.exclusions.first {
            throw SpecError(rule.location, "matrix `exclude` leaves no cell of the matrix")
        }
        func needed(_ assignment: [(key: String, value: ParamValue)]) -> Bool {
            spec.exclusions.isEmpty || cells.contains { cell in assignment.allSatisfy { a in cell.contains { $0.key == a.key && $0.value == a.value } } }
        }

        var instances: [StageInstance] = []
        for st in order {
            let myAxes = axes.filter { swept[st.name]!.contains($0.key) }
            for assignment in product(myAxes) where st.kind.gathersCells || needed(assignment) {
                var params = spec.params
                for a in assignment { params.set(a.key, a.value, location: spec.matrix.first { $0.key == a.key }!.location) }
                let id = assignment.isEmpty ? st.name : st.name + "@" + cellLabel(assignment, names: names)
                let cellNote = assignment.isEmpty ? "" : " (in cell \(id))"
                // Resolve each field's YAML (or an implicit `stage.field` param), then decode them
                // together into the kind's config: types, bounds and cross-field checks in one place.
                var raw: [String: ParamValue] = [:]
                var locations: [String: SourceLocation] = [:]
                var reads: [String: ParamValue] = [:]
                var unresolved = false
                for field in st.kind.fields {
                    var fieldReads: [String: ParamValue] = [:]
                    if let y = st.fields[field.name] {
                        locations[field.name] = y.location
                        do {
                            // An ordered map keeps its declaration order as [key, value] pairs.
                            if case .pairs = field.type, case .map(let entries, _) = y {
                                raw[field.name] = .list(try entries.map {
                                    .list([.string($0.key), try resolve($0.value, params: params, stage: st, reads: &fieldReads)])
                                })
                            } else {
                                raw[field.name] = try resolve(y, params: params, stage: st, reads: &fieldReads)
                            }
                        } catch let e as SpecError {
                            diagnostics += e.diagnostics
                            unresolved = true
                            continue
                        }
                    } else if let implicit = params.value(at: st.name + "." + field.name) {
                        raw[field.name] = implicit
                        fieldReads[st.name + "." + field.name] = implicit
                        locations[field.name] = params.locations[st.name + "." + field.name] ?? st.location
                    }
                    if !field.isOperational { reads.merge(fieldReads) { a, _ in a } }
                }
                if unresolved { continue }
                let fields: [String: ParamValue]
                switch st.kind.resolve(raw) {
                case .success(let resolved): fields = resolved
                case .failure(let errors):
                    for problem in errors.problems {
                        diagnostics.append(diagnostic(problem, stage: st, location: locations[problem.field] ?? st.location,
                                                      assignment: assignment, axes: axes, cellNote: cellNote))
                    }
                    continue
                }
                // A field may list param keys the stage reads (shell `params`): their values reach it.
                for field in st.kind.fields where field.listsParamKeys {
                    for k in (fields[field.name]?.listValue ?? []).compactMap(\.stringValue) { reads[k] = params.value(at: k) }
                }
                if let gathering = st.kind as? any GatheringKind {
                    guard let g = gather(st, kind: gathering, fields: fields, axes: axes, surviving: spec.exclusions.isEmpty ? nil : cells, params: spec.params, swept: swept,
                                         instances: instances, names: names, diagnostics: &diagnostics) else { continue }
                    instances.append(StageInstance(id: id, stage: st.name, kind: st.kind, assignment: [],
                                                   fields: fields, reads: reads, inputs: g.inputs, gathered: g.cells))
                    continue
                }
                var inputs: [String: String] = [:]
                for n in st.needs {
                    let upstreamAxes = swept[n]!
                    let sub = assignment.filter { upstreamAxes.contains($0.key) }
                    inputs[n] = sub.isEmpty ? n : n + "@" + cellLabel(sub, names: names)
                }
                instances.append(StageInstance(id: id, stage: st.name, kind: st.kind, assignment: assignment,
                                               fields: fields, reads: reads, inputs: inputs))
            }
        }
        if diagnostics.isEmpty { diagnostics = crossStageProblems(spec, instances: instances) }
        if !diagnostics.isEmpty { throw SpecError(dedupe(diagnostics)) }
        return Expansion(spec: spec, instances: instances, cells: cells)
    }

    /// A config problem as a located spec error. A bad value interpolated from a swept key also
    /// names the matrix entry it came from.
    static func diagnostic(_ problem: ConfigProblem, stage st: StageDecl, location: SourceLocation,
                           assignment: [(key: String, value: ParamValue)], axes: [MatrixAxis], cellNote: String) -> SpecDiagnostic {
        let origin = assignment.first { a in st.fields[problem.field].map { containsReference($0, a.key) } ?? false }
            .flatMap { a in axes.first { $0.key == a.key } }
            .map { "; `\($0.key)` is swept at \($0.location)" } ?? ""
        switch problem.reason {
        case .missing:
            return SpecDiagnostic(st.location, "stage `\(st.name)` (kind `\(st.kind.name)`) is missing required field `\(problem.field)`")
        case .type:
            return SpecDiagnostic(location, "field `\(problem.field)` of stage `\(st.name)` \(problem.message)\(cellNote)\(origin)")
        case .value, .unknown:
            return SpecDiagnostic(location, "field `\(problem.field)` of stage `\(st.name)`: \(problem.message)\(cellNote)\(origin)")
        case .relation:
            return SpecDiagnostic(location, "stage `\(st.name)`: \(problem.message)\(cellNote)")
        }
    }

    /// A gathering stage's inputs (every instance of every consumed stage, keyed by its cell id)
    /// and the cells it gathers. Checks its fields against the matrix, naming the offending
    /// entry's location; nil when they do not fit.
    static func gather(_ st: StageDecl, kind: any GatheringKind, fields: [String: ParamValue], axes matrixAxes: [MatrixAxis],
                       surviving: [[(key: String, value: ParamValue)]]?, params: ParamTree, swept: [String: Set<String>], instances: [StageInstance], names: [String: String],
                       diagnostics: inout [SpecDiagnostic]) -> (cells: GatheredCells, inputs: [String: String])? {
        // A listed key that `-S key=value` took out of the matrix is a one-valued axis, so quick
        // settings (`-S train.seed=0`) keep the table valid.
        var axes = matrixAxes
        let listed = kind.gatheringAxes(fields: fields)
        for k in listed where !axes.contains(where: { $0.key == k }) {
            if let v = params.value(at: k) { axes.append(MatrixAxis(key: k, values: [v], location: st.location)) }
        }
        let labelNames = axes.count == matrixAxes.count ? names : shortNames(axes.map(\.key))
        let problems = kind.validateGathering(fields: fields, axes: axes.map { GatheredCells.Axis(key: $0.key, values: $0.values) },
                                              consumed: st.needs)
        for p in problems {
            diagnostics.append(SpecDiagnostic(locate(st.fields[p.field], item: p.item) ?? st.location, "stage `\(st.name)`: \(p.message)"))
        }
        if !problems.isEmpty { return nil }
        // Cells: the kind's listed axes first, then every other axis the consumed stages vary with.
        var cellAxes = listed.compactMap { k in axes.first { $0.key == k } }
        let varying = st.needs.reduce(into: Set<String>()) { $0.formUnion(swept[$1] ?? []) }
        cellAxes += axes.filter { varying.contains($0.key) && !listed.contains($0.key) }
        var inputs: [String: String] = [:]
        var cells: [GatheredCells.Cell] = []
        // With exclusions, a cell is gathered when a cell of the matrix contains it (keys fixed by -S
        // are in no matrix cell and match any).
        func kept(_ cell: [(key: String, value: ParamValue)]) -> Bool {
            guard let surviving else { return true }
            return surviving.contains { full in
                cell.allSatisfy { a in full.first { $0.key == a.key }.map { $0.value == a.value } ?? true }
            }
        }
        for cell in product(cellAxes) where kept(cell) {
            var stages: [String: GatheredCells.Upstream] = [:]
            for n in st.needs {
                guard let inst = instances.first(where: { i in
                    i.stage == n && i.assignment.allSatisfy { a in cell.contains { $0.key == a.key && $0.value == a.value } }
                }) else { continue }
                inputs[inst.id] = inst.id
                // Numeric fields only: formulas can read nothing else, and the key stays small.
                stages[n] = GatheredCells.Upstream(id: inst.id,
                                                   fields: inst.fields.filter { $0.value.doubleValue != nil || $0.value.boolValue != nil })
            }
            cells.append(GatheredCells.Cell(label: cell.isEmpty ? "all" : cellLabel(cell, names: labelNames),
                                            axes: Dictionary(uniqueKeysWithValues: cell.map { ($0.key, $0.value) }), stages: stages))
        }
        return (GatheredCells(axes: cellAxes.map { GatheredCells.Axis(key: $0.key, values: $0.values) }, cells: cells), inputs)
    }

    /// Location of a map entry (its value) or list item named `item` inside a field, else the field's.
    static func locate(_ y: YAMLValue?, item: String?) -> SourceLocation? {
        guard let y else { return nil }
        guard let item else { return y.location }
        switch y {
        case .map(let entries, _): return entries.first { $0.key == item }?.value.location ?? y.location
        case .list(let items, _):
            return items.first { if case .scalar(let v, _) = $0 { return v.shortDescription == item } else { return false } }?.location ?? y.location
        case .scalar(_, let l): return l
        }
    }

    static func dedupe(_ d: [SpecDiagnostic]) -> [SpecDiagnostic] {
        var seen = Set<String>()
        return d.filter { seen.insert($0.description).inserted }
    }

    static func product(_ axes: [MatrixAxis]) -> [[(key: String, value: ParamValue)]] {
        var result: [[(key: String, value: ParamValue)]] = [[]]
        for axis in axes {
            result = result.flatMap { prefix in axis.values.map { prefix + [(axis.key, $0)] } }
        }
        return result
    }

    static func topologicalOrder(_ stages: [StageDecl]) -> [StageDecl] {
        let byName = Dictionary(uniqueKeysWithValues: stages.map { ($0.name, $0) })
        var done = Set<String>()
        var order: [StageDecl] = []
        func visit(_ s: StageDecl) {
            if done.contains(s.name) { return }
            done.insert(s.name)
            for n in s.needs { if let u = byName[n] { visit(u) } }
            order.append(s)
        }
        stages.forEach(visit)
        return order
    }

    /// Param keys a stage reads: interpolations, implicit `stage.field` params, fields listing param keys.
    static func readKeys(_ st: StageDecl, params: ParamTree) throws -> Set<String> {
        var keys = Set<String>()
        var diagnostics: [SpecDiagnostic] = []
        func scan(_ y: YAMLValue) {
            switch y {
            case .scalar(.string(let s), let loc):
                do {
                    for k in try Interpolation.references(in: s) { keys.insert(k) }
                    for k in try inputReferences(s) where !st.needs.contains(k) {
                        diagnostics.append(SpecDiagnostic(loc, "`${inputs.\(k)}`: stage `\(st.name)` does not consume `\(k)`"
                                                          + didYouMean(k, among: st.needs)))
                    }
                } catch let f as Interpolation.Failure { diagnostics.append(SpecDiagnostic(loc, f.message)) } catch {}
            case .scalar: break
            case .list(let items, _): items.forEach(scan)
            case .map(let entries, _): entries.forEach { scan($0.value) }
            }
        }
        st.fields.values.forEach(scan)
        for k in keys where !params.contains(k) {
            let loc = st.fields.values.first { containsReference($0, k) }?.location ?? st.location
            diagnostics.append(SpecDiagnostic(loc, "`${\(k)}`: no such param" + didYouMean(k, among: params.allKeys)))
        }
        for field in st.kind.fields where st.fields[field.name] == nil && params.contains(st.name + "." + field.name) {
            keys.insert(st.name + "." + field.name)
        }
        for field in st.kind.fields where field.listsParamKeys {
            guard case .list(let items, _)? = st.fields[field.name] else { continue }
            for item in items {
                guard case .scalar(.string(let k), let loc) = item else { continue }
                if params.contains(k) { keys.insert(k) }
                else { diagnostics.append(SpecDiagnostic(loc, "no such param `\(k)`" + didYouMean(k, among: params.allKeys))) }
            }
        }
        if !diagnostics.isEmpty { throw SpecError(diagnostics) }
        return keys
    }

    static func inputReferences(_ s: String) throws -> [String] {
        var refs: [String] = []
        var rest = Substring(s)
        while let r = rest.range(of: "${inputs.") {
            guard let close = rest[r.upperBound...].firstIndex(of: "}") else { break }
            refs.append(String(rest[r.upperBound..<close]))
            rest = rest[close...]
        }
        return refs
    }

    static func containsInterpolation(_ v: ParamValue) -> Bool {
        switch v {
        case .string(let s): return s.contains("${")
        case .list(let items): return items.contains(where: containsInterpolation)
        case .map(let m): return m.values.contains(where: containsInterpolation)
        default: return false
        }
    }

    static func containsReference(_ y: YAMLValue, _ key: String) -> Bool {
        switch y {
        case .scalar(.string(let s), _): return s.contains("${\(key)}")
        case .scalar: return false
        case .list(let items, _): return items.contains { containsReference($0, key) }
        case .map(let entries, _): return entries.contains { containsReference($0.value, key) }
        }
    }

    /// Interpolates a field value against the params of one cell, recording the keys read.
    static func resolve(_ y: YAMLValue, params: ParamTree, stage: StageDecl, reads: inout [String: ParamValue]) throws -> ParamValue {
        switch y {
        case .scalar(.string(let s), let loc):
            var local: [String: ParamValue] = [:]
            do {
                let v = try Interpolation.substitute(s) { key in
                    guard let v = params.value(at: key) else {
                        throw Interpolation.Failure(message: "`${\(key)}`: no such param" + didYouMean(key, among: params.allKeys))
                    }
                    // Params are not interpolated themselves: a `${...}` in a value would reach the
                    // stage (the shell) literally, to be expanded there as a shell variable.
                    if containsInterpolation(v) {
                        let at = params.locations[key].map { " (set at \($0))" } ?? ""
                        throw Interpolation.Failure(message: "`${\(key)}`: the param's value\(at) contains `${`; params are not "
                            + "interpolated, so it would reach the stage literally (write the value out)")
                    }
                    local[key] = v
                    return v
                }
                reads.merge(local) { a, _ in a }
                return v
            } catch let f as Interpolation.Failure { throw SpecError(loc, f.message) }
        case .scalar(let v, _): return v
        case .list(let items, _): return .list(try items.map { try resolve($0, params: params, stage: stage, reads: &reads) })
        case .map(let entries, _):
            var m: [String: ParamValue] = [:]
            for e in entries { m[e.key] = try resolve(e.value, params: params, stage: stage, reads: &reads) }
            return .map(m)
        }
    }
}
