import Foundation
import Stages

/// Spec-time checks across stages and cells, made after every field is resolved: each names a line
/// of the file, so nothing that can be known before running is left to fail after upstream work.
extension Expansion {
    /// Cell ids name log files (at most 255 bytes with `.log`): a long matrix value would make the
    /// run fail late with "cannot create log".
    static let maxCellIDLength = 200

    static func crossStageProblems(_ spec: LoadedSpec, instances: [StageInstance]) -> [SpecDiagnostic] {
        var out: [SpecDiagnostic] = []
        let byID = Dictionary(instances.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        func axisLocation(_ inst: StageInstance) -> SourceLocation? {
            inst.assignment.lazy.compactMap { a in spec.matrix.first { $0.key == a.key }?.location }.first
        }
        for inst in instances {
            guard let decl = spec.stage(named: inst.stage) else { continue }
            let where_ = inst.assignment.isEmpty ? "" : " (in cell \(inst.id.prefix(60)))"
            if inst.id.utf8.count > maxCellIDLength || inst.id.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                let problem = inst.id.utf8.count > maxCellIDLength
                    ? "is \(inst.id.utf8.count) bytes long (at most \(maxCellIDLength)); use shorter matrix values"
                    : "contains a control character; matrix values name cells and files"
                out.append(SpecDiagnostic(axisLocation(inst) ?? decl.location, "cell id `\(inst.id.prefix(60))...` \(problem)"))
            }
            if inst.kind is ShellStage {
                // Every consumed stage is exported as $PDPIPE_IN_<NAME>: two names for one variable
                // would give the command one of them at random.
                for c in SpecChecks.clashes(decl.needs, prefix: "PDPIPE_IN_") {
                    let i = decl.needs.firstIndex(of: c.second) ?? 0
                    out.append(SpecDiagnostic(i < decl.needsLocations.count ? decl.needsLocations[i] : decl.location,
                        "stage `\(decl.name)` consumes `\(c.first)` and `\(c.second)`, which would both be $\(c.variable); rename one"))
                }
                for p in SpecChecks.shell(inst.fields) {
                    out.append(SpecDiagnostic(locate(decl.fields[p.field], item: p.item) ?? decl.location,
                                              "stage `\(decl.name)`: \(p.message)"))
                }
            }
            // Patch sizes must fit the consumed data set's images: known here, from its `resolution`.
            if let kind = inst.kind as? PatchStatsStage, let config = try? kind.decode(inst.fields) {
                for upstreamID in inst.inputs.values.sorted() {
                    guard let upstream = byID[upstreamID], upstream.kind is DatasetStage,
                          let r = upstream.fields["resolution"]?.intValue,
                          case .failure(let problem) = PatchStatsStage.sizes(config, resolution: r) else { continue }
                    out.append(SpecDiagnostic(decl.fields["sizes"]?.location ?? decl.location,
                        "stage `\(decl.name)` cannot cut patches from `\(upstream.stage)` (\(r)x\(r)): \(problem.message)\(where_)"))
                }
            }
            // A train stage reads a data set, a sample stage a trained model: a wrong or missing
            // input otherwise fails only when the stage runs, after everything upstream.
            if inst.kind is TrainStage || inst.kind is SampleStage {
                let field = inst.kind is TrainStage ? "data" : "model"
                let wanted = inst.fields[field]?.stringValue ?? ""
                let accepted: [String] = inst.kind is TrainStage ? ["dataset", "sample"] : ["train"]
                let what = inst.kind is TrainStage ? "a `dataset` (or `sample`) stage" : "a `train` stage"
                if inst.inputs.isEmpty {
                    out.append(SpecDiagnostic(decl.location, "stage `\(decl.name)` (kind `\(inst.kind.name)`) consumes nothing; add `needs: [...]` naming \(what)"))
                    continue
                }
                // With several inputs and no `data`/`model`, the kind picks at run time: say so now.
                if wanted.isEmpty && inst.inputs.count > 1 {
                    out.append(SpecDiagnostic(decl.location, "stage `\(decl.name)` consumes \(inst.inputs.count) stages; set `\(field)` to the one it reads"))
                    continue
                }
                let name = wanted.isEmpty ? inst.inputs.keys.first! : wanted
                guard let upstreamID = inst.inputs[name], let upstream = byID[upstreamID] else {
                    out.append(SpecDiagnostic(decl.fields[field]?.location ?? decl.location,
                        "stage `\(decl.name)`: \(field) `\(name)` is not among the stages it consumes" + didYouMean(name, among: Array(inst.inputs.keys))))
                    continue
                }
                if !accepted.contains(upstream.kind.name) {
                    out.append(SpecDiagnostic(decl.fields[field]?.location ?? decl.needsLocations.first ?? decl.location,
                        "stage `\(decl.name)` (kind `\(inst.kind.name)`) reads `\(name)`, a `\(upstream.kind.name)` stage; it needs \(what)"))
                    continue
                }
                if inst.kind is TrainStage, upstream.kind is DatasetStage, let r = upstream.fields["resolution"]?.intValue,
                   let problem = SpecChecks.trainResolutionProblem(inst.fields, resolution: r) {
                    let upDecl = spec.stage(named: upstream.stage)
                    out.append(SpecDiagnostic(upDecl?.fields["resolution"]?.location ?? upDecl?.location ?? decl.location,
                        "stage `\(decl.name)` cannot train on `\(upstream.stage)`: \(problem)\(where_)"))
                }
            }
        }
        return out
    }
}
