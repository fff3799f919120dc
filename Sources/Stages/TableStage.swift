import Foundation

/// `kind: table` — gathers the metrics of ALL matrix cells of the stages it consumes into one
/// table (`table.json`, `table.md`, `table.csv`). It is a gathering kind: one instance over the
/// whole matrix, keyed by every gathered cell's output digest, so a changed cell reruns only that
/// cell's stages and the table.
///
/// Declared in a pipeline (`kind: table`, `needs: [...]`) or, more usually, in an experiment's
/// `tables:` section, where `needs` may be left out (the stages the columns name):
///
/// ```yaml
/// tables:
///   ablation:
///     title: Patch Diffusion p-ablation (Fashion-MNIST 32x32)
///     rows: [train.real_p]                 # matrix axes, one row per combination
///     aggregate_over: [train.seed]         # mean ± std over these axes
///     baseline: {train.real_p: 1.0}        # the row baseline(...) refers to
///     columns:                             # label: formula (order kept)
///       FD: fid.FD_fmnist-classifier
///       KID x1e3: fid.KID_fmnist-classifier * 1000
///       train hours: train.wall_seconds / 3600
///       speed-up vs p=1: baseline(train.wall_seconds) / train.wall_seconds
/// ```
///
/// Curves: with `along: sample.at_kimg`, the cells of a row that differ only in that axis form a
/// curve (one per aggregated cell, e.g. per seed). A column is then its value at the curve's last
/// point, `reach(y, target, x)` is where the curve of `y` first reaches `target` (as `x`,
/// interpolated; e.g. `reach(fid.FD_x, 40, train.wall_seconds_at[sample.at_kimg] / 3600)` is the
/// training hours to FD 40), and the artifact keeps every column along the curve, which the
/// report plots against the axis and against the columns named in `versus`.
///
/// Formulas (`TableExpression`): numbers, `+ - * /`, parentheses, references,
/// `name[formula]`, `reach(...)` and `baseline(formula)`. A reference `stage.name` is the stage's metric `name` in the cell, else
/// its resolved field `name` (e.g. `train.kimg`), else a matrix axis value (`train.real_p`).
/// `baseline(f)` evaluates `f` in the cell whose `baseline` axes take the baseline values and whose
/// other axes (e.g. the seed) match the current cell; a ratio is thus taken per seed, then averaged.
/// Matrix axes that vary the gathered stages but are in neither `rows` nor `aggregate_over`
/// become extra row axes; a listed key that `-S key=value` took out of the matrix is a one-valued
/// axis (so `-S train.seed=0` gives n = 1 rows). `rows`/`aggregate_over`/`baseline` keys must be
/// matrix axes and formulas must name consumed stages or axes: errors name file:line:column.
/// A missing metric fails the stage with the metrics the cell does have. Std is the sample
/// standard deviation (n - 1); `precision` sets significant digits of table.md/.csv.
public struct TableStage: GatheringKind {
    public init() {}
    public var name: String { "table" }
    // 2: curves (`along`), and reach(...) columns no curve reached are kept as "not reached".
    public var version: Int { 2 }

    public struct Config: StageConfig, Equatable {
        public var title = ""
        /// Default: all swept axes.
        public var rows: [String] = []
        public var aggregateOver: [String] = []
        /// Axis -> value of the baseline row.
        public var baseline: [String: ParamValue] = [:]
        /// Label -> formula, in declaration order. Required; the initial value is never used.
        public var columns = OrderedPairs()
        public var precision = 4
        /// A matrix axis: the cells along it form one curve per row and aggregated cell.
        public var along = ""
        /// Column labels the report also plots the curves against (x axes besides `along`).
        public var versus: [String] = []

        public init() {}

        public static let fields: [ConfigField<Config>] = [
            .field("title", \.title, help: "heading of the table"),
            .field("rows", \.rows, help: "matrix axes giving one row per combination (default: all swept axes)"),
            .field("aggregate_over", \.aggregateOver, help: "matrix axes averaged over (mean ± std), e.g. a seed axis"),
            .field("baseline", \.baseline, help: "axis -> value of the baseline row, used by baseline(...)"),
            .field("columns", \.columns, help: "label -> formula over `stage.metric` references", required: true),
            // A Double has 15-17 significant digits; 12 stays clear of noise digits.
            .field("precision", \.precision, help: "significant digits in table.md / table.csv", check: .between(1, 12)),
            .field("along", \.along, help: "matrix axis the cells of a row form curves along (reach(...), report curves)"),
            .field("versus", \.versus, help: "column labels the report plots the curves against, besides `along`"),
        ]
    }

    public func gatheringAxes(_ config: Config) -> [String] {
        let listed = config.rows + config.aggregateOver + (config.along.isEmpty ? [] : [config.along])
        return listed + config.baseline.keys.sorted().filter { !listed.contains($0) }
    }

    public func validateGathering(_ config: Config, axes: [GatheredCells.Axis], consumed: [String]) -> [GatherProblem] {
        var problems: [GatherProblem] = []
        let axisKeys = axes.map(\.key)
        func suggestion(_ k: String) -> String {
            let close = axisKeys.min { Self.distance($0, k) < Self.distance($1, k) }
            if let close, Self.distance(close, k) <= max(2, k.count / 3) { return " (did you mean `\(close)`?)" }
            return axisKeys.isEmpty ? " (the experiment has no matrix)" : " (matrix axes: \(axisKeys.joined(separator: ", ")))"
        }
        let rows = config.rows, aggregate = config.aggregateOver
        for (field, keys) in [("rows", rows), ("aggregate_over", aggregate)] {
            for k in keys where !axisKeys.contains(k) {
                problems.append(GatherProblem(field: field, item: k, message: "`\(k)` is not a matrix axis" + suggestion(k)))
            }
            if Set(keys).count != keys.count { problems.append(GatherProblem(field: field, message: "an axis is listed twice")) }
        }
        for k in rows where aggregate.contains(k) {
            problems.append(GatherProblem(field: "aggregate_over", item: k, message: "`\(k)` is both a row axis and aggregated over"))
        }
        let along = config.along
        if !along.isEmpty {
            if !axisKeys.contains(along) {
                problems.append(GatherProblem(field: "along", message: "`\(along)` is not a matrix axis" + suggestion(along)))
            } else if rows.contains(along) || aggregate.contains(along) {
                problems.append(GatherProblem(field: "along", message: "`\(along)` is also in rows or aggregate_over"))
            } else if let axis = axes.first(where: { $0.key == along }), axis.values.contains(where: { $0.doubleValue == nil }) {
                problems.append(GatherProblem(field: "along", message: "`\(along)` must take numbers (a curve's points are ordered by it)"))
            }
        }
        for v in config.versus where !config.columns.pairs.contains(where: { $0.key == v }) {
            problems.append(GatherProblem(field: "versus", item: v, message: "`\(v)` is not a column of the table"))
        }
        if !config.versus.isEmpty && along.isEmpty {
            problems.append(GatherProblem(field: "versus", message: "`versus` needs `along` (the curves it plots)"))
        }
        let baseline = config.baseline
        for (k, v) in baseline.sorted(by: { $0.key < $1.key }) {
            guard let axis = axes.first(where: { $0.key == k }) else {
                problems.append(GatherProblem(field: "baseline", item: k, message: "`\(k)` is not a matrix axis" + suggestion(k)))
                continue
            }
            if aggregate.contains(k) {
                problems.append(GatherProblem(field: "baseline", item: k, message: "`\(k)` is aggregated over; a baseline fixes row axes only"))
            }
            if !axis.values.contains(where: { Self.same($0, v) }) {
                problems.append(GatherProblem(field: "baseline", item: k, message: "`\(k)` has no value \(v.shortDescription) in the matrix (values: \(axis.values.map(\.shortDescription).joined(separator: ", ")))"))
            }
        }
        let columns = config.columns.pairs
        if columns.isEmpty { problems.append(GatherProblem(field: "columns", message: "a table needs at least one column")) }
        for (label, formula) in columns.map({ ($0.key, $0.value) }) {
            let e: TableExpression
            do { e = try TableExpression.parse(formula) } catch let p as TableExpression.ParseError {
                problems.append(GatherProblem(field: "columns", item: label, message: "column `\(label)`: \(p)")); continue
            } catch { continue }
            if e.usesBaseline && baseline.isEmpty {
                problems.append(GatherProblem(field: "columns", item: label, message: "column `\(label)` uses baseline(...) but the table declares no `baseline`"))
            }
            if e.nestsBaseline {
                problems.append(GatherProblem(field: "columns", item: label, message: "column `\(label)`: baseline(...) inside baseline(...)"))
            }
            if e.usesReach && along.isEmpty {
                problems.append(GatherProblem(field: "columns", item: label, message: "column `\(label)` uses reach(...) but the table declares no `along` axis"))
            }
            if e.nestsReach {
                problems.append(GatherProblem(field: "columns", item: label, message: "column `\(label)`: reach(...) inside reach(...) or baseline(...)"))
            }
            for r in e.references {
                let stage = String(r.split(separator: ".", maxSplits: 1).first ?? "")
                if r.contains("."), consumed.contains(stage) { continue }
                if axisKeys.contains(r) { continue }
                let hint = consumed.isEmpty ? "" : " (consumed stages: \(consumed.joined(separator: ", ")))"
                problems.append(GatherProblem(field: "columns", item: label,
                    message: "column `\(label)`: `\(r)` names neither `stage.metric` of a consumed stage nor a matrix axis\(hint)"))
            }
        }
        return problems
    }

    /// Equality of axis values with 1 == 1.0.
    static func same(_ a: ParamValue, _ b: ParamValue) -> Bool {
        if let x = a.doubleValue, let y = b.doubleValue { return x == y }
        return a == b
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.lowercased()), b = Array(b.lowercased())
        var prev = Array(0...b.count)
        for i in 1...max(1, a.count) where !a.isEmpty {
            var cur = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(1, b.count) where !b.isEmpty {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return a.isEmpty ? b.count : prev[b.count]
    }

    // MARK: run

    public func run(_ config: Config, context: StageContext) throws -> StageOutcome {
        let table = try Self.compute(name: context.stageName, config: config, gathered: context.gathered ?? GatheredCells(axes: [], cells: []),
                                     inputs: context.inputs, measurements: context.inputMeasurements)
        let out = context.outputDirectory
        try table.json.write(to: out.appendingPathComponent("table.json"))
        try Data(table.markdown.utf8).write(to: out.appendingPathComponent("table.md"))
        try Data(table.csv.utf8).write(to: out.appendingPathComponent("table.csv"))
        context.emit(.log("table: \(table.rows.count) rows x \(table.columns.count) columns"))
        return StageOutcome()
    }

    typealias Cell = GatheredCells.Cell

    /// Builds the table from its config, the cells the expansion gathered and the consumed
    /// artifacts by upstream cell id. `measurements` (wall seconds...) are the store's, by upstream
    /// cell id; a reference finds a content metric first, then a measurement.
    public static func compute(name: String, config: Config, gathered: GatheredCells, inputs: [String: URL],
                               measurements: [String: [String: Double]] = [:]) throws -> ResultTable {
        let axes = gathered.axes
        let aggregate = config.aggregateOver
        var rowKeys = config.rows
        rowKeys += axes.map(\.key).filter { !rowKeys.contains($0) && !aggregate.contains($0) && $0 != config.along }
        let baseline = config.baseline
        let columns = config.columns.pairs.map { (label: $0.key, formula: $0.value) }
        let formulas = try columns.map { col -> TableExpression in
            do { return try TableExpression.parse(col.formula) } catch { throw StageError("table `\(name)`: column `\(col.label)`: \(error)") }
        }
        let cells = gathered.cells

        // Metrics of each gathered artifact, read once.
        var metrics: [String: [String: Double]] = [:]
        func metricsOf(_ id: String) throws -> [String: Double] {
            if let m = metrics[id] { return m }
            guard let dir = inputs[id] else { throw StageError("table `\(name)`: no input for `\(id)`") }
            let file = dir.appendingPathComponent("metrics.json")
            var m: [String: Double] = [:]
            if FileManager.default.fileExists(atPath: file.path) {
                do { m = try JSONDecoder().decode([String: Double].self, from: Data(contentsOf: file)) } catch {
                    throw StageError("table `\(name)`: \(file.path): not a JSON object of numbers")
                }
            }
            m.merge(measurements[id] ?? [:]) { content, _ in content }
            metrics[id] = m
            return m
        }
        func lookup(_ ref: String, in cell: Cell, column: String) throws -> Double {
            let parts = ref.split(separator: ".", maxSplits: 1).map(String.init)
            if parts.count == 2, let st = cell.stages[parts[0]] {
                if let v = try metricsOf(st.id)[parts[1]] { return v }
                if let f = st.fields[parts[1]] {
                    if let v = f.doubleValue { return v }
                    if let b = f.boolValue { return b ? 1 : 0 }
                }
            }
            if let a = cell.axes[ref] {
                if let v = a.doubleValue { return v }
                if let b = a.boolValue { return b ? 1 : 0 }
                throw StageError("table `\(name)`: column `\(column)`: axis `\(ref)` is `\(a.shortDescription)` in cell \(cell.label), not a number")
            }
            if parts.count == 2, let st = cell.stages[parts[0]] {
                let known = try metricsOf(st.id).keys.sorted()
                throw StageError("table `\(name)`: column `\(column)`: `\(st.id)` has no metric or numeric field `\(parts[1])`"
                                 + (known.isEmpty ? " (it has no metrics)" : " (its metrics: \(known.joined(separator: ", ")))"))
            }
            throw StageError("table `\(name)`: column `\(column)`: `\(ref)` is not a consumed stage's metric or a matrix axis")
        }
        func baselineCell(of cell: Cell) throws -> Cell {
            var target = cell.axes
            for (k, v) in baseline { target[k] = v }
            guard let b = cells.first(where: { c in target.allSatisfy { k, v in c.axes[k].map { same($0, v) } ?? false } }) else {
                throw StageError("table `\(name)`: no baseline cell for \(cell.label)")
            }
            return b
        }

        // Rows in the axes' declared value order; cells of a row in their given order.
        func index(_ cell: Cell) -> [Int] {
            rowKeys.map { k in
                let values = axes.first { $0.key == k }?.values ?? []
                return values.firstIndex { v in cell.axes[k].map { same($0, v) } ?? false } ?? Int.max
            }
        }
        var groups: [[Int]: [Cell]] = [:]
        for c in cells { groups[index(c), default: []].append(c) }
        let baselineIsRowOnly = baseline.keys.allSatisfy { rowKeys.contains($0) }
        // Each row is a list of curves: with `along`, the cells that differ only in that axis,
        // ordered along it; without, every cell is a curve of one point.
        let along = config.along.isEmpty ? nil : config.along
        func position(_ cell: Cell) -> Double { along.flatMap { cell.axes[$0]?.doubleValue } ?? 0 }
        func curves(of group: [Cell]) -> [[Cell]] {
            guard let along else { return group.map { [$0] } }
            var order: [String] = []
            var byRest: [String: [Cell]] = [:]
            for c in group {
                let rest = c.axes.filter { $0.key != along }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.shortDescription)" }
                    .joined(separator: ",")
                if byRest[rest] == nil { order.append(rest) }
                byRest[rest, default: []].append(c)
            }
            return order.map { byRest[$0]!.sorted { position($0) < position($1) } }
        }
        func evaluate(_ f: TableExpression, column: String, at cell: Cell, curve: [Cell]) throws -> Double {
            try f.evaluate({ try lookup($0, in: cell, column: column) },
                           baselineLookup: { ref in try lookup(ref, in: try baselineCell(of: cell), column: column) },
                           reach: { y, target, x in
                               let t = try evaluate(target, column: column, at: cell, curve: curve)
                               let points = try curve.map { c in
                                   (x: try evaluate(x, column: column, at: c, curve: curve), y: try evaluate(y, column: column, at: c, curve: curve))
                               }
                               return Self.reach(points, target: t)
                           })
        }
        var rows: [ResultTable.Row] = []
        var curveRows: [ResultTable.Curve] = []
        for idx in groups.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let group = groups[idx]!
            let rowCurves = curves(of: group)
            var values: [ResultTable.Stat?] = []
            for (col, f) in zip(columns, formulas) {
                let v = try rowCurves.map { curve in try evaluate(f, column: col.label, at: curve.last!, curve: curve) }
                values.append(f.usesReach ? ResultTable.Stat(reaching: v) : ResultTable.Stat(v))
            }
            let first = group[0]
            let labels = rowKeys.map { first.axes[$0]?.shortDescription ?? "" }
            let isBaseline = !baseline.isEmpty && baselineIsRowOnly
                && baseline.allSatisfy { k, v in first.axes[k].map { same($0, v) } ?? false }
            rows.append(ResultTable.Row(labels: labels, cells: group.map(\.label), values: values, isBaseline: isBaseline))
            if along != nil {
                let at = Set(group.map(position)).sorted()
                let points = try at.map { x in
                    try zip(columns, formulas).map { col, f -> ResultTable.Stat? in
                        if f.usesReach { return nil }
                        let v = try rowCurves.compactMap { curve in
                            try curve.first { position($0) == x }.map { try evaluate(f, column: col.label, at: $0, curve: curve) }
                        }
                        return v.isEmpty ? nil : ResultTable.Stat(v)
                    }
                }
                curveRows.append(ResultTable.Curve(labels: labels, at: at, values: points))
            }
        }
        return ResultTable(
            name: name, title: config.title, rowKeys: rowKeys, rowHeaders: shortNames(rowKeys),
            aggregateOver: aggregate, baseline: baseline.keys.sorted().map { "\($0)=\(baseline[$0]!.shortDescription)" },
            columns: columns.map(\.label), formulas: columns.map(\.formula), precision: config.precision,
            rows: rows, along: along, versus: along == nil ? nil : config.versus, curves: along == nil ? nil : curveRows)
    }

    /// Where a curve first reaches `target`: the first point at or past it in the curve's direction
    /// (falling when its last point is below its first, as FD falls; else rising), with `x`
    /// interpolated linearly between that point and the one before; the first point's `x` when it
    /// is already past the target. NaN: the curve never reaches it.
    static func reach(_ points: [(x: Double, y: Double)], target: Double) -> Double {
        guard let first = points.first, let last = points.last else { return .nan }
        let falling = last.y <= first.y
        func reached(_ y: Double) -> Bool { falling ? y <= target : y >= target }
        if reached(first.y) { return first.x }
        for i in 1..<max(1, points.count) where reached(points[i].y) {
            let (a, b) = (points[i - 1], points[i])
            return a.x + (target - a.y) / (b.y - a.y) * (b.x - a.x)
        }
        return .nan
    }

    /// Last component of each dotted key when that is unambiguous among them.
    public static func shortNames(_ keys: [String]) -> [String] {
        let lasts = keys.map { String($0.split(separator: ".").last ?? Substring($0)) }
        return zip(keys, lasts).map { k, l in lasts.filter { $0 == l }.count == 1 ? l : k }
    }
}
