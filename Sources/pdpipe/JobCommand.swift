import ArgumentParser
import Foundation
import Pipeline

/// `pdpipe job`: what a Slurm job of `run --executor slurm` runs. Computes one stage key into the
/// store directory and writes its completion record; never opens SQLite (the driver records).
struct JobCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "Compute one stage as a Slurm job (used by `run --executor slurm`).",
        shouldDisplay: false)

    @Option(name: .customLong("store"), help: "Store directory (shared with the driver).") var store: String
    @Option(name: .customLong("ticket"), help: "The driver's job ticket (jobs/tickets/RUN/N.json).") var ticket: String

    func run() throws {
        let ticket: JobTicket
        do { ticket = try JobTicket.read(URL(fileURLWithPath: self.ticket)) } catch {
            printError("cannot read the job ticket \(self.ticket): \(error)")
            throw Exit.stageFailed
        }
        let expansion: Expansion
        do { expansion = try SpecLoader.expansion(URL(fileURLWithPath: ticket.spec), overrides: ticket.overrides) } catch {
            printError("\(error)")
            throw Exit.stageFailed
        }
        let runner = Runner(expansion: expansion, store: try Store(root: URL(fileURLWithPath: store), database: false))
        // scancel and time limits send SIGTERM first: stop the stage at its next cancellation point.
        let interrupt = SignalFlag(SIGTERM, SIGINT)
        let say: @Sendable (String) -> Void = { print($0); fflush(nil) }
        do {
            let outcome = try runner.runJob(ticket, isCancelled: { interrupt.isSet }, observe: { event in
                switch event {
                case .log(let id, let line): say("[\(id)] \(line)")
                case .started(let id, let action, let reason): say("\(action.rawValue) \(id) (\(reason))")
                case .waiting(let id, let holder): say("WAIT \(id): locked by \(holder)")
                case .warning(let message): say("warning: \(message)")
                case .done, .progress: break
                }
            })
            switch outcome {
            case .computed(let key, let artifact, let seconds):
                say("done \(ticket.cellID) key \(key) -> \(artifact) in \(String(format: "%.2f", seconds)) s")
            case .alreadyDone(let key, let artifact):
                say("already computed: \(ticket.cellID) key \(key) -> \(artifact)")
            }
        } catch {
            printError("FAILED \(ticket.cellID): \(error)")
            throw Exit.stageFailed
        }
    }
}

/// Set once any of the given signals arrives (instead of dying at once, so the stage can stop cleanly).
final class SignalFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    private var sources: [DispatchSourceSignal] = []
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return flag }

    init(_ signals: Int32...) {
        for s in signals {
            signal(s, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: s, queue: .global())
            source.setEventHandler { [self] in lock.lock(); flag = true; lock.unlock() }
            source.resume()
            sources.append(source)
        }
    }
}

extension RunCommand {
    /// `--executor` and `--slurm-option`s; nil for the local executor.
    /// The Slurm settings when stages run as jobs: the spec's `executor` section, then the flags.
    func slurmSettings(_ section: ExecutorSection) throws -> SlurmOptions? {
        switch executor ?? section.kind ?? "local" {
        case "local":
            if !slurmOptions.isEmpty { printError("--slurm-option needs --executor slurm"); throw Exit.badSpec }
            return nil
        case "slurm": break
        default: printError("--executor: expected local or slurm, got `\(executor ?? "")`"); throw Exit.badSpec
        }
        // The jobs run this very binary (it must be on a file system the nodes share).
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        var settings = SlurmOptions(executable: executable, spec: URL(fileURLWithPath: spec.file).standardizedFileURL.path,
                                    overrides: spec.set)
        for option in section.options { _ = settings.set(option) }  // checked when the spec was loaded
        settings.perKind = section.perKind
        for option in slurmOptions {
            if let problem = settings.set(option) { printError("--slurm-option \(problem)"); throw Exit.badSpec }
        }
        // The command line wins over the files, per-kind entries included.
        for kind in settings.perKind.keys { settings.perKind[kind]! += slurmOptions }
        return settings
    }
}
