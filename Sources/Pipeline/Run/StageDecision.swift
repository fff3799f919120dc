import Foundation
import Stages

/// A consumed stage's settled result as its consumers see it: the artifact they read and, for
/// gathering kinds, the measurements of the computation that made it.
struct SettledInput: Sendable {
    var artifact: String
    var measurements: [String: Double]

    init(_ r: StoredResult) { (artifact, measurements) = (r.artifact, r.measurements) }
}

/// What to do with one stage instance whose inputs are settled.
public enum Decision: Sendable {
    /// The cell's current key, its object present: nothing to do.
    case upToDate(StoredResult)
    /// A key recorded before (by another cell, branch or an edit since undone): point the cell at it.
    case restore(StoredResult)
    /// Compute it; `reason` says which key components changed.
    case run(reason: String)
    /// Compute it by continuing `base`, a recorded run that differs only by a smaller budget.
    case extend(base: StoredResult, reason: String)

    public var action: StageAction {
        switch self {
        case .upToDate: return .upToDate
        case .restore: return .restore
        case .run: return .run
        case .extend: return .extend
        }
    }
}

/// `status`, `why`, `run -n` and `run` all decide through `decide`, so they cannot disagree.
extension Runner {
    /// The key of `inst` over its settled inputs and what to do with it. `known` holds results
    /// already read (one batch read for a no-op status of a large pipeline); others are looked up.
    func decide(_ inst: StageInstance, inputs: [String: SettledInput], currentKey: String?, forced: Bool,
                known: [String: StoredResult] = [:]) throws -> (key: StageKey, decision: Decision) {
        let key = try StageKey.compute(inst, inputDigests: inputs.mapValues(\.artifact),
                                       inputMeasurements: inputs.mapValues(\.measurements),
                                       projectDirectory: projectDirectory, store: store)
        if !forced, let r = try known[key.key] ?? store.result(forKey: key.key), store.objectExists(r.artifact) {
            return (key, currentKey == key.key ? .upToDate(r) : .restore(r))
        }
        if forced { return (key, .run(reason: "forced")) }
        let old = try currentKey.flatMap { try known[$0] ?? store.result(forKey: $0) }
        var reason = Self.reason(new: key, old: old)
        if let lineage = key.lineage, let budget = key.budget, let field = inst.kind.budgetField,
           let base = try store.longestShorter(lineage: lineage, below: budget) {
            let from = "from \(String(format: "%g", base.budget ?? 0)) \(field) (key \(base.key.prefix(12)))"
            if let problem = inst.kind.extensionProblem(inst.fields) {
                reason += "; not extended \(from): \(problem)"
            } else {
                return (key, .extend(base: base, reason: from))
            }
        }
        return (key, .run(reason: reason))
    }

    /// Human reason for a rerun: which key components changed since the cell's last recorded key.
    static func reason(new: StageKey, old: StoredResult?) -> String {
        guard let old else { return "never run" }
        if old.key == new.key { return "stored object missing" }
        return "changed: " + summarize(StageKey.diff(old: old.components, new: new.components).map(\.name))
    }

    /// Component names for a reason line. A gathering stage over many cells can change hundreds
    /// of `input.<cell>` components at once: past a few names, a kind of component with more than
    /// three changed is counted (`120 input.*`) instead of listed (`why` lists them all).
    static func summarize(_ names: [String], listed: Int = 8) -> String {
        guard names.count > listed else { return names.joined(separator: ", ") }
        let prefix = { (name: String) in String(name.prefix { $0 != "." }) }
        let counts = Dictionary(grouping: names, by: prefix).mapValues(\.count)
        var seen: Set<String> = []
        return names.compactMap { name -> String? in
            let p = prefix(name)
            guard counts[p]! > 3, name.contains(".") else { return name }
            return seen.insert(p).inserted ? "\(counts[p]!) \(p).*" : nil
        }.joined(separator: ", ")
    }

    /// One line per selected instance: RUN (reason), RESTORE, UP-TO-DATE. Writes nothing but
    /// memoised file digests.
    public func plan(_ options: RunOptions) throws -> [PlanLine] {
        let current = try store.currentKeys(scope: scope)
        let known = try store.results(forKeys: Array(Set(current.values)))
        var settled: [String: SettledInput] = [:]
        var extending: [String: (result: StoredResult, kind: any StageKind)] = [:]
        var lines: [PlanLine] = []
        for inst in try select(options.targets) {
            var inputs: [String: SettledInput]
            var kept = ""
            if let pending = inst.inputs.values.sorted().first(where: { settled[$0] == nil }) {
                guard let predicted = try predictedInputs(inst, settled: settled, extending: extending) else {
                    lines.append(PlanLine(id: inst.id, action: .run, reason: "upstream `\(pending)` will run"))
                    continue
                }
                inputs = predicted
                kept = "after `\(pending)` extends: the files it reads are its shorter run's"
            } else {
                inputs = inst.inputs.mapValues { settled[$0]! }
            }
            let decided: (key: StageKey, decision: Decision)
            do {
                decided = try decide(inst, inputs: inputs, currentKey: current[inst.id],
                                     forced: Self.matches(inst, options.force), known: known)
            } catch let e as StoreError {
                lines.append(PlanLine(id: inst.id, action: .run, reason: "cannot compute key: \(e.description)"))
                continue
            }
            switch decided.decision {
            case .upToDate(let r), .restore(let r):
                settled[inst.id] = SettledInput(r)
                let reason = !kept.isEmpty ? kept : decided.decision.action == .restore ? "stored key" : ""
                lines.append(PlanLine(id: inst.id, action: decided.decision.action, reason: reason, key: decided.key.key))
            case .run(let reason):
                lines.append(PlanLine(id: inst.id, action: .run, reason: reason, key: decided.key.key))
            case .extend(let base, let reason):
                extending[inst.id] = (base, inst.kind)
                let done = (base.budget ?? 0) / max(decided.key.budget ?? 1, 1e-12)
                lines.append(PlanLine(id: inst.id, action: .extend, reason: reason, key: decided.key.key, doneFraction: done))
            }
        }
        return lines
    }

    /// The inputs of `inst` as they will be once the extensions planned in `extending` have run,
    /// when that is known now. An extended run keeps some of its shorter run's files byte for byte
    /// (`StageKind.extensionKeeps`: train's snapshots up to the old kimg), so a consumer that keys
    /// only on such files (a sample at a snapshot the shorter run holds) keys the same on the
    /// shorter run's object. Nil when any input is pending otherwise, or the consumer reads other
    /// files (denoise reads the training log too), the whole output, or measurements (gathering kinds).
    func predictedInputs(_ inst: StageInstance, settled: [String: SettledInput],
                         extending: [String: (result: StoredResult, kind: any StageKind)]) throws -> [String: SettledInput]? {
        guard !inst.kind.gathersCells else { return nil }
        let partial = inst.kind.inputFiles(inst.fields, consumed: Array(inst.inputs.keys).sorted())
        var inputs: [String: SettledInput] = [:]
        for (name, upstream) in inst.inputs {
            if let s = settled[upstream] { inputs[name] = s; continue }
            guard let base = extending[upstream], let files = partial[name],
                  files.allSatisfy({ base.kind.extensionKeeps($0, fromBudget: base.result.budget ?? 0) }),
                  try StageKey.filesDigest(files, of: base.result.artifact, store: store) != nil else { return nil }
            inputs[name] = SettledInput(base.result)
        }
        return inputs
    }

    /// For `why`: the instance's key against the cell's last recorded key, and the decision.
    public struct Explanation: Sendable {
        public var id: String
        public var key: StageKey
        /// The cell's last recorded result.
        public var old: StoredResult?
        public var action: StageAction
        /// Upstream instances that must run before this key is final (its `input.*` are placeholders).
        public var pendingUpstream: [String]
    }

    public func explain(_ target: String) throws -> [Explanation] {
        let current = try store.currentKeys(scope: scope)
        var settled: [String: SettledInput] = [:]
        var extending: [String: (result: StoredResult, kind: any StageKind)] = [:]
        var result: [Explanation] = []
        for inst in try select([target]) {
            let old = try current[inst.id].flatMap { try store.result(forKey: $0) }
            let pending = inst.inputs.values.filter { settled[$0] == nil }.sorted()
            let predicted = pending.isEmpty ? nil : try predictedInputs(inst, settled: settled, extending: extending)
            if !pending.isEmpty, predicted == nil {
                // No output digest yet for what must run first: show a placeholder in its place.
                let key = try StageKey.compute(inst, inputDigests: inst.inputs.mapValues { settled[$0]?.artifact ?? "(after \($0) runs)" },
                                               projectDirectory: projectDirectory, store: store)
                if Self.matches(inst, [target]) {
                    result.append(Explanation(id: inst.id, key: key, old: old, action: .run, pendingUpstream: pending))
                }
                continue
            }
            let decided = try decide(inst, inputs: predicted ?? inst.inputs.mapValues { settled[$0]! }, currentKey: current[inst.id],
                                     forced: false)
            if case .upToDate(let r) = decided.decision { settled[inst.id] = SettledInput(r) }
            if case .restore(let r) = decided.decision { settled[inst.id] = SettledInput(r) }
            if case .extend(let base, _) = decided.decision { extending[inst.id] = (base, inst.kind) }
            if Self.matches(inst, [target]) {
                result.append(Explanation(id: inst.id, key: decided.key, old: old, action: decided.decision.action, pendingUpstream: []))
            }
        }
        return result
    }
}
