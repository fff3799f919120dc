import ArgumentParser
import Engine
import Foundation
import Pipeline

@main
struct PDPipe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pdpipe",
        abstract: "A declarative experiment-pipeline runner with a content-addressed cache.",
        version: versionDescription + "\n" + Engine.blasDescription + "\n" + Engine.backendDescription,
        subcommands: [RunCommand.self, StatusCommand.self, WhyCommand.self, DagCommand.self, RunsCommand.self, JobCommand.self,
                      LogsCommand.self, ReportCommand.self, ShowCommand.self, CheckoutCommand.self, CacheCommand.self,
                      GCCommand.self, KindsCommand.self])

    /// Like ArgumentParser's main, but usage errors exit 2 (README "Commands"), not EX_USAGE (64).
    static func main() {
        // Threads and the OpenBLAS kernel are chosen once, before any compute (README "Engine").
        Engine.startUp()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                printError(fullMessage(for: error))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Exit codes (README "Commands"): 0 ok, 1 a stage failed, 2 bad usage/spec, 3 stale (`status --exit-code`),
/// 130 interrupted. `run` and `status` exit through `finish(_:keeping:)` with the numeric code.
enum Exit {
    static let stageFailed = ExitCode(1)
    static let badSpec = ExitCode(2)
}

/// The experiment/pipeline file argument and options shared by commands that read one.
struct SpecOptions: ParsableArguments {
    @Argument(help: "Experiment (experiments/*.yaml) or pipeline (pipelines/*.yaml) file.")
    var file: String

    @Option(name: [.customShort("S"), .customLong("set")], help: "Override a param: key=value (repeatable); key=a,b sweeps.")
    var set: [String] = []

    @Option(name: .customLong("store"), help: "Store directory (default: .pdpipe/ in the project root).")
    var store: String?

    /// Loads and validates; spec errors print `file:line:column: message` and exit 2 before any store write.
    func load() throws -> (Expansion, Store) {
        let expansion = try loadExpansion()
        return (expansion, try openStore(for: expansion))
    }

    func loadExpansion() throws -> Expansion {
        do {
            return try SpecLoader.expansion(URL(fileURLWithPath: file), overrides: set)
        } catch let e as SpecError {
            printError(e.description)
            throw Exit.badSpec
        }
    }

    /// Opens (creating if needed) the store; a store that cannot be opened is a runtime failure (exit 1).
    func openStore(for expansion: Expansion) throws -> Store {
        let storeURL = store.map { URL(fileURLWithPath: $0) }
            ?? expansion.spec.projectDirectory.appendingPathComponent(".pdpipe")
        return try openStoreReporting(storeURL)
    }
}

func openStoreReporting(_ url: URL) throws -> Store {
    do { return try Store(root: url) } catch {
        printError("cannot open the store at \(url.standardizedFileURL.path): \(Store.describe(error))")
        throw Exit.stageFailed
    }
}

/// Store location for commands without a FILE: `--store`, else the nearest `.pdpipe/` above the cwd.
struct StoreOption: ParsableArguments {
    @Option(name: .customLong("store"), help: "Store directory (default: nearest .pdpipe/ above the current directory).")
    var store: String?

    func open() throws -> Store {
        if let store { return try openStoreReporting(URL(fileURLWithPath: store)) }
        var dir = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).standardizedFileURL
        while true {
            let candidate = dir.appendingPathComponent(".pdpipe")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("pdpipe.sqlite").path) {
                return try openStoreReporting(candidate)
            }
            let parent = dir.deletingLastPathComponent().standardizedFileURL
            if parent.path == dir.path { break }
            dir = parent
        }
        printError("no .pdpipe/ store found above \(FileManager.default.currentDirectoryPath); pass --store DIR")
        throw Exit.badSpec
    }
}

func printError(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

func catchingSpecErrors<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as SpecError {
        printError(e.description)
        throw Exit.badSpec
    }
}
