import ArgumentParser
import Foundation
import Pipeline

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Where a stage's outputs are: path, digest, files with sizes, metrics, seconds, the run that made it.")
    @OptionGroup var spec: SpecOptions
    @Argument(help: "Stage names or cell ids (a stage name shows every cell of it).") var targets: [String]
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let (expansion, store) = try spec.load()
        let outputs = try resolveOutputs(Runner(expansion: expansion, store: store), targets)
        if json {
            print(try jsonText(outputs))
            return
        }
        let dates = ISO8601DateFormatter()
        for o in outputs {
            print("\(o.id) (\(o.state)\(o.reason.isEmpty ? "" : ": " + o.reason))")
            print("  path:    \(o.path)")
            print("  digest:  \(o.digest)")
            print("  key:     \(o.key)")
            print("  run:     \(o.run)\(o.recordedAt.map { " at " + dates.string(from: $0) } ?? "")")
            print("  seconds: \(String(format: "%.2f", o.seconds))")
            for (k, v) in o.metrics.sorted(by: { $0.key < $1.key }) { print("  metric \(k): \(v)") }
            print("  files (\(o.files.count), \(byteCount(o.totalBytes))):")
            for f in o.files { print("    \(byteCount(f.bytes).padding(toLength: 10, withPad: " ", startingAt: 0)) \(f.path)") }
        }
    }
}

struct CheckoutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkout",
        abstract: "Put stage outputs into a directory (hard links to the store where possible, read-only).",
        discussion: """
            Each target goes to DIR/<cell id>/, replacing an earlier checkout there. Files are hard links to the
            store's objects (copies across file systems) and read-only: to change one, copy it first.
            """)
    @OptionGroup var spec: SpecOptions
    @Argument(help: "Stage names or cell ids.") var targets: [String]
    @Option(name: [.short, .customLong("output")], help: "Directory (default: outputs/ in the project root).") var output: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let (expansion, store) = try spec.load()
        let runner = Runner(expansion: expansion, store: store)
        let outputs = try resolveOutputs(runner, targets)
        let dir = output.map { URL(fileURLWithPath: $0) } ?? expansion.spec.projectDirectory.appendingPathComponent("outputs")
        let done: [(output: StageOutput, directory: URL, linked: Int, copied: Int)]
        do { done = try runner.checkout(outputs, into: dir) } catch let e as OutputError {
            printError(e.description); throw Exit.stageFailed
        }
        if json {
            struct Item: Encodable { var id: String; var directory: String; var digest: String; var state: String; var files: [String]; var linked: Int; var copied: Int }
            print(try jsonText(done.map { Item(id: $0.output.id, directory: $0.directory.path, digest: $0.output.digest, state: $0.output.state,
                                               files: $0.output.files.map(\.path), linked: $0.linked, copied: $0.copied) }))
            return
        }
        for d in done {
            let how = d.copied == 0 ? "hard-linked" : d.linked == 0 ? "copied" : "\(d.linked) linked, \(d.copied) copied"
            print("\(d.output.id) -> \(d.directory.path) (\(d.output.files.count) files, \(byteCount(d.output.totalBytes)), \(how)\(d.output.state == "stale" ? "; stale: " + d.output.reason : ""))")
        }
    }
}

/// Outputs of the targets; unknown targets are spec errors (exit 2), uncomputed ones runtime errors (exit 1).
func resolveOutputs(_ runner: Runner, _ targets: [String]) throws -> [StageOutput] {
    do { return try catchingSpecErrors { try runner.outputs(targets) } } catch let e as OutputError {
        printError(e.description); throw Exit.stageFailed
    }
}

func jsonText<T: Encodable>(_ value: T) throws -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    e.dateEncodingStrategy = .iso8601
    return String(decoding: try e.encode(value), as: UTF8.self)
}

/// 1.2 MB style sizes (powers of 1000, as `du --si`).
func byteCount(_ n: Int64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"]
    var v = Double(n), i = 0
    while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
    return i == 0 ? "\(n) B" : String(format: v < 10 ? "%.1f" : "%.0f", v) + " " + units[i]
}
