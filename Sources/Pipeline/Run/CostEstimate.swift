import Foundation
import Stages

/// A stage's expected run time, from recorded results of the same kind.
public struct CostEstimate: Sendable, Encodable {
    public var seconds: Double
    /// How it was computed, e.g. `median of 4 train results, scaled by counted kimg x FLOPs per counted image`.
    public var basis: String
}

/// Estimates run times of stages that would run, before running them: `train` scales recorded
/// seconds by counted kimg x training FLOPs per counted image, `sample` by images x network
/// evaluations x forward FLOPs; other kinds take the median of recorded results of the same stage
/// (or kind). Durations are read from the store's results (wall seconds of the computation).
public struct CostEstimator: Sendable {
    /// nil when only recorded results are examined (`leaveOneOut`).
    let expansion: Expansion?
    let results: [StoredResult]
    let byArtifact: [String: StoredResult]
    /// Newest first, per kind.
    let byKind: [String: [StoredResult]]

    /// How many recent results of a kind the median uses.
    static let window = 8

    public init(expansion: Expansion?, store: Store) throws {
        self.expansion = expansion
        results = try store.allResults().filter { $0.seconds > 0 }
        var artifacts: [String: StoredResult] = [:]
        for r in results { artifacts[r.artifact] = r }
        byArtifact = artifacts
        byKind = Dictionary(grouping: results, by: Retention.kind)
            .mapValues { $0.sorted { ($0.runID, $0.key) > ($1.runID, $1.key) } }
    }

    /// Estimates for the plan's RUN and EXTEND lines (ids without a basis are left out); an
    /// extension costs the part of the budget still to do.
    public func estimates(_ lines: [PlanLine]) -> [String: CostEstimate] {
        var out: [String: CostEstimate] = [:]
        for line in lines where line.action == .run || line.action == .extend {
            guard let inst = expansion?.instance(line.id), var e = estimate(inst) else { continue }
            if line.action == .extend {
                e.seconds *= max(0, 1 - line.doneFraction)
                e.basis += ", for the \(Int(((1 - line.doneFraction) * 100).rounded())) % still to train"
            }
            out[line.id] = e
        }
        return out
    }

    public func estimate(_ inst: StageInstance, excluding: String? = nil) -> CostEstimate? {
        let kind = inst.kind.name
        let records = (byKind[kind] ?? []).filter { $0.key != excluding }
        if let work = plannedWork(inst), work > 0 {
            let used = rates(records)
            if !used.isEmpty {
                return CostEstimate(seconds: Self.median(used) * work,
                                    basis: "median of \(used.count) \(kind) result(s), scaled by \(Self.scaling[kind] ?? "work")")
            }
        }
        // Unscaled: the same stage's recorded times, else the kind's.
        let same = records.filter { $0.stage == inst.stage }
        let pool = Array((same.isEmpty ? records : same).prefix(Self.window))
        guard !pool.isEmpty else { return nil }
        return CostEstimate(seconds: Self.median(pool.map(\.seconds)),
                            basis: "median of \(pool.count) recorded \(same.isEmpty ? kind : "`\(inst.stage)`") time(s)")
    }

    /// Seconds per unit of work of the most recent results (at most `window`; each may build a U-Net to count FLOPs).
    func rates(_ records: [StoredResult]) -> [Double] {
        var out: [Double] = []
        for r in records where out.count < Self.window {
            if let w = recordedWork(r), w > 0, (r.seconds / w).isFinite { out.append(r.seconds / w) }
        }
        return out
    }

    static let scaling = ["train": "counted kimg x FLOPs per counted image",
                          "sample": "images x network evaluations x forward FLOPs"]

    static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    // MARK: work of a planned instance (from the expansion)

    func plannedWork(_ inst: StageInstance) -> Double? {
        switch inst.kind.name {
        case "train":
            guard let kimg = inst.fields["kimg"]?.doubleValue, let g = plannedGeometry(inst),
                  let flops = StageCost.trainingFlopsPerCountedImage(inst.fields, resolution: g.resolution, channels: g.channels) else { return nil }
            return kimg * flops
        case "sample":
            guard let train = upstream(inst, kind: "train"), let g = plannedGeometry(train) else { return nil }
            return sampleWork(inst.fields, trainFields: train.fields, geometry: g)
        default: return nil
        }
    }

    func upstream(_ inst: StageInstance, kind: String) -> StageInstance? {
        inst.inputs.values.sorted().compactMap { expansion?.instance($0) }.first { $0.kind.name == kind }
    }

    func plannedGeometry(_ train: StageInstance) -> (resolution: Int, channels: Int)? {
        guard let data = upstream(train, kind: "dataset") else { return nil }
        return Self.geometry(data.fields)
    }

    static func geometry(_ datasetFields: [String: ParamValue]) -> (resolution: Int, channels: Int) {
        let channels = datasetFields["channels"]?.intValue ?? 0
        let source = datasetFields["source"]?.stringValue ?? ""
        // 0 keeps the source's own: Fashion-MNIST is gray, the others are RGB.
        return (datasetFields["resolution"]?.intValue ?? 32, channels > 0 ? channels : source == "fashion-mnist" ? 1 : 3)
    }

    func sampleWork(_ fields: [String: ParamValue], trainFields: [String: ParamValue], geometry g: (resolution: Int, channels: Int)) -> Double? {
        let images = Double(fields["num_images"]?.intValue ?? 64)
        let steps = Double(fields["steps"]?.intValue ?? 18)
        let out = fields["resolution"]?.intValue ?? 0
        guard let flops = StageCost.forwardFlops(trainFields: trainFields, resolution: out > 0 ? out : g.resolution, channels: g.channels)
        else { return nil }
        return images * (2 * steps - 1) * flops
    }

    // MARK: work of a recorded result (from its key components)

    func recordedWork(_ r: StoredResult) -> Double? {
        switch Retention.kind(r) {
        case "train":
            let fields = Self.fields(r)
            guard let kimg = fields["kimg"]?.doubleValue else { return nil }
            if let flops = r.metrics["flops_per_counted_image"] { return kimg * flops }
            guard let g = recordedGeometry(r),
                  let flops = StageCost.trainingFlopsPerCountedImage(fields, resolution: g.resolution, channels: g.channels) else { return nil }
            return kimg * flops
        case "sample":
            guard let train = recordedUpstream(r, kind: "train"), let g = recordedGeometry(train) else { return nil }
            return sampleWork(Self.fields(r), trainFields: Self.fields(train), geometry: g)
        default: return nil
        }
    }

    func recordedUpstream(_ r: StoredResult, kind: String) -> StoredResult? {
        r.components.filter { $0.key.hasPrefix("input.") }.sorted { $0.key < $1.key }.compactMap { c in
            (Self.decode(c.value)?.stringValue).flatMap { byArtifact[$0] }
        }.first { Retention.kind($0) == kind }
    }

    func recordedGeometry(_ train: StoredResult) -> (resolution: Int, channels: Int)? {
        recordedUpstream(train, kind: "dataset").map { Self.geometry(Self.fields($0)) }
    }

    /// `field.<name>` components as values.
    static func fields(_ r: StoredResult) -> [String: ParamValue] {
        var out: [String: ParamValue] = [:]
        for (k, v) in r.components where k.hasPrefix("field.") { out[String(k.dropFirst(6))] = decode(v) }
        return out
    }

    /// Canonical JSON is YAML's flow style, so the spec's own parser reads it back.
    static func decode(_ json: String) -> ParamValue? {
        (try? YAMLValue.parse(json, file: "key component"))?.value
    }

    // MARK: checking the estimates against what was measured

    /// For every recorded train and sample result: its seconds and the estimate from the other
    /// results (leave one out), as `pdpipe cache estimates` prints them.
    public func leaveOneOut() -> [(cellID: String, kind: String, seconds: Double, estimate: Double)] {
        var out: [(cellID: String, kind: String, seconds: Double, estimate: Double)] = []
        for kind in ["train", "sample"] {
            for r in byKind[kind] ?? [] {
                guard let work = recordedWork(r) else { continue }
                let others = rates((byKind[kind] ?? []).filter { $0.key != r.key })
                guard !others.isEmpty else { continue }
                out.append((r.cellID, kind, r.seconds, Self.median(others) * work))
            }
        }
        return out
    }

    /// `41 min`, `2.5 h`, `35 s`.
    public static func format(_ seconds: Double) -> String {
        if seconds < 1 { return "<1 s" }
        if seconds < 90 { return "\(Int(seconds.rounded())) s" }
        if seconds < 5400 { return "\(Int((seconds / 60).rounded())) min" }
        return String(format: "%.1f h", seconds / 3600)
    }
}
