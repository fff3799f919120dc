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
        let (expansion, store) = try spec.load()
        var options = RunOptions()
        options.targets = targets
        let lines = try catchingSpecErrors { try Runner(expansion: expansion, store: store).plan(options) }
        if json {
            let items = lines.map { l -> String in
                "{\"id\":\(jsonQuote(l.id)),\"action\":\"\(l.action.rawValue)\",\"reason\":\(jsonQuote(l.reason)),\"key\":\(l.key.map(jsonQuote) ?? "null")}"
            }
            print("[" + items.joined(separator: ",\n ") + "]")
        } else {
            printPlan(lines)
        }
        if exitCode && lines.contains(where: { $0.action != .upToDate }) { throw Exit.stale }
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
            guard let key = row.key else { print("\(row.id): RUN — \(row.note)"); continue }
            guard let old = row.old else {
                print("\(row.id): RUN — never run (key \(key.key.prefix(12)))")
                for (name, value) in key.components.sorted(by: { $0.key < $1.key }) { print("  \(name): \(value)") }
                continue
            }
            let stored = try store.result(forKey: key.key) != nil
            if old.key == key.key {
                print("\(row.id): UP-TO-DATE (key \(key.key.prefix(12)), \(key.components.count) components unchanged)")
                continue
            }
            print("\(row.id): \(stored ? "RESTORE (this key is stored)" : "RUN") — key \(old.key.prefix(12)) -> \(key.key.prefix(12))")
            let diff = StageKey.diff(old: old.components, new: key.components)
            for d in diff { print("  \(d.name): \(d.old ?? "(absent)") -> \(d.new ?? "(absent)")") }
            print("  (\(key.components.count - diff.filter { $0.new != nil && $0.old != nil }.count - diff.filter { $0.old == nil }.count) components unchanged)")
        }
    }
}

struct DagCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dag", abstract: "Print the stage graph.")
    @OptionGroup var spec: SpecOptions
    @Flag(help: "Graphviz dot.") var dot = false
    @Flag(help: "Mermaid.") var mermaid = false

    func run() throws {
        let expansion: Expansion
        do { expansion = try Expansion.expand(try SpecLoader.load(URL(fileURLWithPath: spec.file), overrides: spec.set)) }
        catch let e as SpecError { printError(e.description); throw Exit.badSpec }
        print(dot ? DagRenderer.dot(expansion) : mermaid ? DagRenderer.mermaid(expansion) : DagRenderer.text(expansion), terminator: "")
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Matrix cells x stage metrics.")
    @OptionGroup var spec: SpecOptions
    @Option(help: "md, csv or json.") var format = "md"

    func run() throws {
        guard ["md", "csv", "json"].contains(format) else { printError("--format must be md, csv or json"); throw Exit.badSpec }
        let (expansion, store) = try spec.load()
        let report = try Report(runner: Runner(expansion: expansion, store: store))
        print(format == "csv" ? report.csv : format == "json" ? report.json : report.markdown, terminator: "")
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
            return
        }
        let wanted = rest[0]
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted().filter {
            let id = String($0.dropLast(4))
            return id == wanted || id.hasPrefix(wanted + "@")
        }
        if files.isEmpty { printError("no log for `\(wanted)` in run \(run.id)"); throw Exit.badSpec }
        for f in files {
            if files.count > 1 { print("==> \(f.dropLast(4)) <==") }
            print(try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8), terminator: "")
        }
    }
}
