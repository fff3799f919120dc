import ArgumentParser
import Foundation
import Pipeline

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show which stages would run, restore or are up to date.")
    @OptionGroup var spec: SpecOptions
    @Argument(help: "Stages or cell ids (default: all).") var targets: [String] = []
    @Flag(help: "Print JSON.") var json = false
    @Flag(name: .customLong("exit-code"), help: "Exit 3 when anything would run or restore.") var exitCode = false

    func run() throws {
        let expansion = try spec.loadExpansion()
        // The same preflight as `run`: a missing input is an error here too, not a reason text.
        try catchingSpecErrors { try Preflight.check(expansion, targets: targets) }
        let store = try spec.openStore(for: expansion)
        var options = RunOptions()
        options.targets = targets
        let lines = try catchingSpecErrors { try Runner(expansion: expansion, store: store).plan(options) }
        let estimates = try planEstimates(lines, expansion: expansion, store: store)
        if json {
            // Each stage with its estimated seconds (null when there is no recorded basis).
            let items = lines.map { l -> String in
                let e = estimates[l.id].map { "{\"seconds\":\(String(format: "%.3f", $0.seconds)),\"basis\":\(jsonQuote($0.basis))}" } ?? "null"
                return "{\"id\":\(jsonQuote(l.id)),\"action\":\"\(l.action.rawValue)\",\"reason\":\(jsonQuote(l.reason)),\"key\":\(l.key.map(jsonQuote) ?? "null"),\"estimate\":\(e)}"
            }
            print("[" + items.joined(separator: ",\n ") + "]")
        } else {
            printJobsInFlight(store)
            printPlan(lines, estimates: estimates)
        }
        finish(exitCode && lines.contains(where: { $0.action != .upToDate }) ? 3 : 0, keeping: store)
    }
}

/// Slurm jobs of drivers still running on this store: `JOB <id> <state> <cell>` and where its output goes.
func printJobsInFlight(_ store: Store) {
    let active = ActiveJobs.all(store)
    guard !active.isEmpty, let runs = try? store.runs(limit: 1000) else { return }
    let running = Set(runs.filter { $0.status == "running" }.map(\.id))
    let live = active.filter { running.contains($0.run) && !$0.jobs.isEmpty }
    guard !live.isEmpty else { return }
    let states = ActiveJobs.states()
    for a in live {
        for j in a.jobs {
            print("JOB \(j.job) \(states?[j.job] ?? (states == nil ? "(squeue unavailable)" : "FINISHING")) \(j.cell) (run \(a.run); output \(j.output))")
        }
    }
}

func jsonQuote(_ s: String) -> String {
    var out = "\""
    for c in s.unicodeScalars {
        switch c {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default: if c.value < 0x20 { out += String(format: "\\u%04x", c.value) } else { out.unicodeScalars.append(c) }
        }
    }
    return out + "\""
}

struct WhyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "why", abstract: "Explain a stage's key: each component, old vs new.")
    @OptionGroup var spec: SpecOptions
    @Argument(help: "Stage name or cell id.") var stage: String

    func run() throws {
        let (expansion, store) = try spec.load()
        let rows = try catchingSpecErrors { try Runner(expansion: expansion, store: store).explain(stage) }
        for row in rows {
            let key = row.key
            if !row.pendingUpstream.isEmpty {
                print("\(row.id): RUN: upstream " + row.pendingUpstream.map { "`\($0)`" }.joined(separator: ", ") + " must run first")
                if let old = row.old { printDiff(old: old.components, new: key.components) }
                continue
            }
            guard let old = row.old else {
                print("\(row.id): \(row.action.rawValue) — never run in this experiment (key \(key.key.prefix(12)))")
                for (name, value) in key.components.sorted(by: { $0.key < $1.key }) { print("  \(name): \(value)") }
                continue
            }
            if old.key == key.key {
                print("\(row.id): \(row.action.rawValue) (key \(key.key.prefix(12)), \(key.components.count) components unchanged)")
                continue
            }
            let label = row.action == .restore ? "RESTORE (this key is stored)" : row.action.rawValue
            print("\(row.id): \(label) — key \(old.key.prefix(12)) -> \(key.key.prefix(12))")
            let changed = printDiff(old: old.components, new: key.components)
            print("  (\(key.components.count - changed) components unchanged)")
        }
    }

    /// Prints the components that differ; returns how many of the new key's components changed or are new.
    @discardableResult
    func printDiff(old: [String: String], new: [String: String]) -> Int {
        let diff = StageKey.diff(old: old, new: new)
        for d in diff { print("  \(d.name): \(d.old ?? "(absent)") -> \(d.new ?? "(absent)")") }
        return diff.filter { $0.new != nil }.count
    }
}

struct DagCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dag", abstract: "Print the stage graph.")
    @OptionGroup var spec: SpecOptions
    @Flag(help: "Graphviz dot.") var dot = false
    @Flag(help: "Mermaid.") var mermaid = false

    func run() throws {
        let expansion: Expansion
        do { expansion = try SpecLoader.expansion(URL(fileURLWithPath: spec.file), overrides: spec.set) }
        catch let e as SpecError { printError(e.description); throw Exit.badSpec }
        print(dot ? DagRenderer.dot(expansion) : mermaid ? DagRenderer.mermaid(expansion) : DagRenderer.text(expansion), terminator: "")
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Tables, cells x metrics, sample grids, loss and FD charts of an experiment (read from the store only).",
        discussion: """
            Compare two experiments with --compare OTHER.yaml, or two runs of one with --run A --compare-run B
            (run ids as listed by `pdpipe runs`; a unique prefix is enough).
            """)
    @OptionGroup var spec: SpecOptions
    @Option(help: "md, csv, json or html.") var format = "md"
    @Option(name: [.short, .customLong("output")], help: "Write to FILE (md: the sample grids are copied next to it).") var output: String?
    @Option(help: "Baseline cell for deltas: key=value[,key=value...] (keys may be short axis names).") var baseline: String?
    @Flag(name: .customLong("only-changed"), help: "Only cells computed or restored in the latest run (or --run).") var onlyChanged = false
    @Option(name: .customLong("sort-by"), help: "Sort cells and table rows by this column.") var sortBy: String?
    @Flag(help: "Sort in descending order.") var descending = false
    @Option(name: .customLong("run"), help: "Show the cells as this run left them (default: the current results).") var runID: String?
    @Option(help: "Another experiment to compare side by side (its -S overrides: none).") var compare: String?
    @Option(name: .customLong("compare-run"), help: "Another run of this experiment to compare side by side.") var compareRun: String?

    func run() throws {
        guard ["md", "csv", "json", "html"].contains(format) else { printError("--format must be md, csv, json or html"); throw Exit.badSpec }
        if compare != nil && compareRun != nil { printError("use either --compare or --compare-run"); throw Exit.badSpec }
        let (expansion, store) = try spec.load()
        var options = ExperimentReport.Options()
        options.baseline = baseline.map { $0.split(separator: ",").map(String.init) } ?? []
        options.onlyChanged = onlyChanged
        options.sortBy = sortBy
        options.descending = descending
        options.runID = runID
        let text: String
        var gridLinks: [String: URL] = [:]
        do {
            let report = try ExperimentReport(runner: Runner(expansion: expansion, store: store), options: options)
            if compare != nil || compareRun != nil {
                var other = options
                other.runID = compareRun
                let otherExpansion: Expansion
                if let compare {
                    do { otherExpansion = try SpecLoader.expansion(URL(fileURLWithPath: compare)) }
                    catch let e as SpecError { printError(e.description); throw Exit.badSpec }
                } else { otherExpansion = expansion }
                let b = try ExperimentReport(runner: Runner(expansion: otherExpansion, store: store), options: other)
                let nameA = report.file + (report.runID.map { "@" + $0 } ?? "")
                let nameB = b.file + (b.runID.map { "@" + $0 } ?? "")
                let c = ReportComparison(report, b, nameA: nameA, nameB: nameB)
                text = format == "csv" ? c.csv : format == "json" ? c.json : format == "html" ? c.html : c.markdown
            } else if format == "md", let output {
                // Markdown cannot inline images: copy the grids next to the file and link them.
                let dir = URL(fileURLWithPath: output).deletingPathExtension().lastPathComponent + "-grids"
                var links: [String: String] = [:]
                for c in report.cells where c.grid != nil {
                    let name = c.label.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "=" || $0 == "-" ? $0 : "_" }
                    links[c.label] = dir + "/" + String(name) + ".png"
                    gridLinks[links[c.label]!] = c.grid!
                }
                text = report.markdown(gridLinks: links)
            } else {
                text = format == "csv" ? report.csv : format == "json" ? report.json : format == "html" ? report.html : report.markdown()
            }
        } catch let e as ReportError {
            printError(e.description); throw Exit.badSpec
        } catch let e as StoreError {
            printError(e.description); throw Exit.badSpec
        }
        guard let output else { print(text, terminator: ""); return }
        let url = URL(fileURLWithPath: output)
        let base = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        for (rel, source) in gridLinks {
            let target = base.appendingPathComponent(rel)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try? FileManager.default.removeItem(at: target)
            try FileManager.default.copyItem(at: source, to: target)
        }
        try Data(text.utf8).write(to: url)
    }
}

struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runs", abstract: "List recent runs.")
    @OptionGroup var storeOption: StoreOption
    @Option(help: "How many runs.") var limit = 20

    func run() throws {
        let store = try storeOption.open()
        let f = ISO8601DateFormatter()
        for r in try store.runs(limit: limit) {
            let secs = r.finishedAt.map { String(format: "%.2f s", $0.timeIntervalSince(r.startedAt)) } ?? "-"
            let counts = r.counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            print("\(r.id)  \(r.status)  \(f.string(from: r.startedAt))  \(secs)  [\(counts)]  \(r.command)")
        }
    }
}

struct LogsCommand: ParsableCommand {
    /// Output files of the run's Slurm jobs (`jobs/out/<run id>/`), sorted.
    static func jobOutputs(_ store: Store, run: String) -> [URL] {
        let dir = store.jobs.appendingPathComponent("out/\(run)")
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted().map { dir.appendingPathComponent($0) }
    }

    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Show stage logs of a run (default: the latest).")
    @OptionGroup var storeOption: StoreOption
    @Argument(help: "Run id (default: latest), then optionally a stage name or cell id.") var args: [String] = []

    func run() throws {
        let store = try storeOption.open()
        let runs = try store.runs(limit: 1000)
        var rest = args
        let run: Store.RunInfo
        if let first = rest.first, let r = runs.first(where: { $0.id == first || $0.id.hasPrefix(first) }) {
            run = r; rest.removeFirst()
        } else if let latest = runs.first {
            run = latest
        } else { printError("no runs recorded"); throw Exit.badSpec }
        let dir = store.logs.appendingPathComponent(run.id)
        if rest.isEmpty {
            print("run \(run.id) (\(run.status)): \(run.command)")
            for s in try store.runStages(run.id) {
                let log = dir.appendingPathComponent(s.cellID.replacingOccurrences(of: "/", with: "_") + ".log")
                let note = FileManager.default.fileExists(atPath: log.path) ? " log: \(log.path)" : ""
                print("  \(s.action) \(s.cellID)\(s.message.isEmpty ? "" : " — " + s.message.split(separator: "\n").first!)\(note)")
            }
            let outputs = Self.jobOutputs(store, run: run.id)
            if !outputs.isEmpty {
                print("Slurm job outputs:")
                for o in outputs { print("  \(o.path)") }
            }
            return
        }
        let wanted = rest[0]
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted().filter {
            let id = String($0.dropLast(4))
            return id == wanted || id.hasPrefix(wanted + "@")
        }
        if files.isEmpty {
            // A stage run as a Slurm job: its output file (`<cell id>.<job id>.out`, unsafe characters as `_`).
            let safe = String(wanted.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" })
            let outputs = Self.jobOutputs(store, run: run.id).filter {
                let name = $0.lastPathComponent
                return name.hasPrefix(safe + ".") || name.hasPrefix(safe + "_")
            }
            if outputs.isEmpty { printError("no log for `\(wanted)` in run \(run.id)"); throw Exit.badSpec }
            for o in outputs {
                print("==> \(o.path) <==")
                print((try? String(contentsOf: o, encoding: .utf8)) ?? "", terminator: "")
            }
            return
        }
        for f in files {
            if files.count > 1 { print("==> \(f.dropLast(4)) <==") }
            print(try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8), terminator: "")
        }
    }
}
