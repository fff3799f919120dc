import Foundation
import Stages

/// What `pdpipe report` shows, read from the store only (nothing is recomputed): the
/// experiment's tables (from its `table` stages), one row per matrix cell with the metrics of its
/// stages, each cell's sample grid, training-loss log and Fréchet distances, the params that differ
/// between cells and, with a baseline, the deltas against it.
public struct ExperimentReport: Sendable {
    public struct Options: Sendable {
        /// `key=value` pairs naming the baseline cell (keys may be short axis names).
        public var baseline: [String] = []
        public var onlyChanged = false
        public var sortBy: String?
        public var descending = false
        /// Show the cells as a run left them (id or unique prefix); nil: the current keys.
        public var runID: String?
        public init() {}
    }

    public struct Cell: Sendable {
        public var label: String
        public var assignment: [(key: String, value: ParamValue)]
        /// `stage.metric` -> value.
        public var metrics: [String: Double]
        /// `stage.field` -> resolved value, over the cell's stage instances.
        public var params: [String: ParamValue]
        public var changed: Bool
        /// A `grid.png` of one of the cell's artifacts (the most downstream one).
        public var grid: URL?
        public var gridStage: String?
        /// (kimg, loss) of a `training_log.jsonl`.
        public var lossCurve: [(x: Double, y: Double)]
        /// True when every stage of the cell has a stored result.
        public var complete: Bool
    }

    public var title: String
    public var description: String
    public var file: String
    public var axes: [String]
    public var axisNames: [String]
    public var cells: [Cell]
    /// Tables of the experiment's table stages that have results.
    public var tables: [ResultTable]
    /// Metric columns (`stage.metric`) whose values differ between cells; the others are in `shared`.
    public var metricColumns: [String]
    public var shared: [(column: String, value: Double)]
    /// Params (`stage.field`) whose values differ between cells.
    public var differingParams: [String]
    public var runID: String?
    public var baselineLabel: String?
    /// Cell label -> baseline cell label (cells with a baseline), when `--baseline` is given.
    public var baselineOf: [String: String]
    public var options: Options
    public var notes: [String]

    public init(runner: Runner, options given: Options = Options()) throws {
        let exp = runner.expansion
        let store = runner.store
        // The experiment's `report:` section gives defaults; flags win.
        var options = given
        let defaults = exp.spec.report?.mapValue ?? [:]
        if options.baseline.isEmpty, let b = defaults["baseline"]?.mapValue {
            options.baseline = b.keys.sorted().map { "\($0)=\(b[$0]!.shortDescription)" }
        }
        if options.sortBy == nil, let s = defaults["sort_by"]?.stringValue {
            options.sortBy = s
            options.descending = defaults["descending"]?.boolValue ?? false
        }
        self.options = options
        file = runner.scope
        title = exp.spec.file.deletingPathExtension().lastPathComponent
        description = Self.describe(exp)
        axes = exp.spec.matrix.map(\.key).sorted()
        let names = Expansion.shortNames(axes)
        axisNames = axes.map { names[$0]! }
        notes = []

        let snapshot = try RunSnapshot.read(store: store, scope: runner.scope, instanceIDs: exp.instances.map(\.id), runID: options.runID)
        runID = snapshot.runID
        let results = try store.results(forKeys: Array(Set(snapshot.keys.values)))
        if options.runID == nil, let plan = try? runner.plan(RunOptions()) {
            // Keys only (as `status`): say which shown results the current spec would change.
            let stale = plan.filter { $0.action != .upToDate }.map(\.id)
            if !stale.isEmpty {
                notes.append("\(stale.count) stage(s) not up to date with the experiment file (see `pdpipe status`); shown are their last stored results, if any: "
                             + stale.prefix(8).joined(separator: ", ") + (stale.count > 8 ? ", ..." : ""))
            }
        }
        func result(_ id: String) -> StoredResult? { snapshot.keys[id].flatMap { results[$0] } }

        // Tables of gathering stages.
        tables = []
        for inst in exp.instances where inst.kind.gathersCells {
            guard let r = result(inst.id) else { notes.append("table `\(inst.id)` has not been computed"); continue }
            let url = store.objectURL(r.artifact).appendingPathComponent("table.json")
            if let data = try? Data(contentsOf: url), let t = try? ResultTable.decode(data) { tables.append(t) }
        }

        let order = Expansion.topologicalOrder(exp.spec.stages).filter { !$0.kind.gathersCells }
        var allCells: [Cell] = []
        for assignment in exp.cells {
            var metrics: [String: Double] = [:], params: [String: ParamValue] = [:]
            var grid: URL?, gridStage: String?, curve: [(x: Double, y: Double)] = []
            var changed = false, complete = true
            for st in order {
                guard let inst = exp.instance(of: st.name, in: assignment) else { continue }
                // The params it reads (`train.real_p`) and its resolved fields (`train.kimg`).
                for (k, v) in inst.reads { params[k] = v }
                for (k, v) in inst.fields { params[st.name + "." + k] = v }
                if snapshot.changed.contains(inst.id) { changed = true }
                guard let r = result(inst.id) else { complete = false; continue }
                for (k, v) in r.values { metrics[st.name + "." + k] = v }
                let dir = store.objectURL(r.artifact)
                let g = dir.appendingPathComponent("grid.png")
                if FileManager.default.fileExists(atPath: g.path) { grid = g; gridStage = st.name }
                let log = dir.appendingPathComponent("training_log.jsonl")
                if curve.isEmpty, let text = try? String(contentsOf: log, encoding: .utf8) { curve = Self.lossCurve(text) }
            }
            allCells.append(Cell(label: assignment.isEmpty ? "all" : Expansion.cellLabel(assignment, names: names),
                                 assignment: assignment, metrics: metrics, params: params, changed: changed, grid: grid,
                                 gridStage: gridStage, lossCurve: curve, complete: complete))
        }

        // Columns: metrics that differ between cells; the rest are shared.
        let stageOrder = order.map(\.name)
        let allColumns = Set(allCells.flatMap(\.metrics.keys)).sorted { a, b in
            let sa = stageOrder.firstIndex(of: String(a.split(separator: ".")[0])) ?? 0
            let sb = stageOrder.firstIndex(of: String(b.split(separator: ".")[0])) ?? 0
            return sa != sb ? sa < sb : a < b
        }
        metricColumns = []
        shared = []
        for c in allColumns {
            let values = allCells.map { $0.metrics[c] }
            if allCells.count > 1, values.allSatisfy({ $0 != nil && $0 == values[0] }) { shared.append((c, values[0]!)) }
            else { metricColumns.append(c) }
        }
        let paramKeys = Set(allCells.flatMap(\.params.keys)).sorted()
        differingParams = paramKeys.filter { k in Set(allCells.map { $0.params[k].map(Digest.canonicalJSON) ?? "" }).count > 1 }

        // Baseline: per cell, the cell with the baseline's axes replaced.
        baselineOf = [:]
        baselineLabel = nil
        if !options.baseline.isEmpty {
            var fixed: [(key: String, value: ParamValue)] = []
            for pair in options.baseline {
                guard let eq = pair.firstIndex(of: "=") else { throw ReportError("--baseline \(pair): expected key=value") }
                let k = String(pair[..<eq]), raw = String(pair[pair.index(after: eq)...])
                guard let axis = axes.first(where: { $0 == k || names[$0] == k }) else {
                    throw ReportError("--baseline \(pair): `\(k)` is not a matrix axis" + (axes.isEmpty ? "" : " (axes: \(axes.joined(separator: ", ")))"))
                }
                let value = SpecLoader.parseScalar(raw)
                guard let match = exp.spec.matrix.first(where: { $0.key == axis })?.values.first(where: { Self.same($0, value) }) else {
                    throw ReportError("--baseline \(pair): `\(axis)` has no value \(raw) in the matrix")
                }
                fixed.append((axis, match))
            }
            baselineLabel = Expansion.cellLabel(fixed.sorted { $0.key < $1.key }, names: names)
            for c in allCells {
                let target = c.assignment.map { a in fixed.first { $0.key == a.key } ?? a }
                let label = Expansion.cellLabel(target, names: names)
                if allCells.contains(where: { $0.label == label }) { baselineOf[c.label] = label }
            }
        }

        let shown = options.onlyChanged ? allCells.filter(\.changed) : allCells
        cells = shown
        baselineCells = Dictionary(uniqueKeysWithValues: allCells.map { ($0.label, $0) })
        if options.onlyChanged {
            notes.append(runID.map { "only the cells computed or restored in run \($0) (\(shown.count) of \(allCells.count))" }
                         ?? "no run has touched this experiment")
        }
        if let sortBy = options.sortBy {
            try sort(by: sortBy, descending: options.descending)
        }
    }

    /// Every cell by label, filtered or not (baselines may be outside `--only-changed`).
    public var baselineCells: [String: Cell]

    static func describe(_ exp: Expansion) -> String {
        (try? YAMLValue.load(file: exp.spec.file, displayName: exp.spec.file.lastPathComponent))?["description"]?.value.stringValue?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    static func same(_ a: ParamValue, _ b: ParamValue) -> Bool {
        if let x = a.doubleValue, let y = b.doubleValue { return x == y }
        return a == b
    }

    /// (kimg, loss) pairs of a training log (JSON lines with `kimg` and `loss`).
    public static func lossCurve(_ text: String) -> [(x: Double, y: Double)] {
        text.split(separator: "\n").compactMap { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let x = (obj["kimg"] as? NSNumber)?.doubleValue, let y = (obj["loss"] as? NSNumber)?.doubleValue,
                  x.isFinite, y.isFinite else { return nil }
            return (x, y)
        }
    }

    /// Fréchet distances of a cell (`FD_<extractor>` or `FID` metrics), by column.
    public func frechet(_ cell: Cell) -> [(column: String, value: Double)] {
        cell.metrics.filter { k, _ in
            let m = k.split(separator: ".", maxSplits: 1).last.map(String.init) ?? k
            return m == "FID" || m.hasPrefix("FD_")
        }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    // MARK: the cell table

    public var cellHeader: [String] { axisNames + metricColumns }

    public func cellRow(_ c: Cell) -> [String] {
        c.assignment.map(\.value.shortDescription) + metricColumns.map { c.metrics[$0].map(Self.format) ?? "" }
    }

    public static func format(_ v: Double) -> String { ResultTable.format(v, precision: 6) }

    /// Delta columns against the baseline: `Δ stage.metric` = value - baseline value.
    public func deltaRow(_ c: Cell) -> [Double?] {
        guard let b = baselineOf[c.label].flatMap({ baselineCells[$0] }) else { return metricColumns.map { _ in nil } }
        return metricColumns.map { col in
            guard let v = c.metrics[col], let base = b.metrics[col] else { return nil }
            return v - base
        }
    }

    /// Sorts cells and table rows by a column (numeric where the values are numbers).
    mutating func sort(by column: String, descending: Bool) throws {
        var found = false
        if let i = cellHeader.firstIndex(of: column) ?? cellHeader.firstIndex(where: { $0.hasSuffix("." + column) }) {
            found = true
            let rows = Dictionary(uniqueKeysWithValues: cells.map { ($0.label, cellRow($0)) })
            cells.sort { a, b in Self.less(rows[a.label]![i], rows[b.label]![i], descending) }
        }
        for t in tables.indices {
            guard let i = tables[t].header.firstIndex(of: column) else { continue }
            found = true
            let table = tables[t]
            func key(_ r: ResultTable.Row) -> String {
                i < table.rowHeaders.count ? r.labels[i] : r.values[i - table.rowHeaders.count].map { String($0.mean) } ?? ""
            }
            tables[t].rows.sort { Self.less(key($0), key($1), descending) }
        }
        if !found {
            let all = Array(Set(cellHeader + tables.flatMap(\.header))).sorted()
            throw ReportError("--sort-by \(column): no such column" + didYouMean(column, among: all))
        }
    }

    /// Numbers before text and empty values last, numerically where both parse.
    static func less(_ a: String, _ b: String, _ descending: Bool) -> Bool {
        if a.isEmpty != b.isEmpty { return b.isEmpty }
        if let x = Double(a.split(separator: " ").first ?? ""), let y = Double(b.split(separator: " ").first ?? "") {
            return descending ? x > y : x < y
        }
        return descending ? a > b : a < b
    }
}

public struct ReportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}
