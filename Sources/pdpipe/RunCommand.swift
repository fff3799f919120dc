import ArgumentParser
import Foundation
import Pipeline

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the stages that are not up to date.")

    @OptionGroup var spec: SpecOptions
    @Argument(help: "Stages or cell ids to bring up to date (default: all).") var targets: [String] = []
    @Flag(name: [.customShort("n"), .customLong("dry-run")], help: "Print what would run; change nothing.") var dryRun = false
    @Option(name: .customShort("j"), help: "Stages to run in parallel.") var jobs = 1
    @Option(name: [.customShort("f"), .customLong("force")], help: "Recompute this stage (name or cell id) even if stored.") var force: [String] = []
    @Flag(name: [.customShort("k"), .customLong("keep-going")], help: "After a failure, keep running stages that do not depend on it.") var keepGoing = false
    @Flag(name: [.customShort("v"), .customLong("verbose")], help: "Print stage log lines.") var verbose = false
    @Option(name: .customLong("executor"), help: "local or slurm (each stale stage as one sbatch job); default: the experiment's or pdpipe.yaml's `executor: kind`, else local.")
    var executor: String?
    @Option(name: .customLong("slurm-option"), help: "With --executor slurm: partition=, account=, time=, cpus=, mem=, sbatch='ARGS'.")
    var slurmOptions: [String] = []

    func run() throws {
        guard jobs >= 1 else { printError("-j must be at least 1"); throw Exit.badSpec }
        // Everything that can be checked is checked before the store is opened (or created).
        let expansion = try spec.loadExpansion()
        let slurm = try slurmSettings(expansion.spec.executor)
        for f in force where !expansion.instances.contains(where: { $0.stage == f || $0.id == f }) {
            printError("-f \(f): no such stage or cell id"); throw Exit.badSpec
        }
        // Dry runs too: `-n` must not report a plan that `run` would refuse (as `status` does not).
        try catchingSpecErrors { try Preflight.check(expansion, targets: targets) }
        let store = try spec.openStore(for: expansion)
        if !dryRun, let problem = store.writeProblem() {
            printError("cannot open the store at \(store.root.path) for writing: \(problem)")
            throw Exit.stageFailed
        }
        let runner = Runner(expansion: expansion, store: store)
        var options = RunOptions()
        options.targets = targets
        options.jobs = jobs
        options.force = force
        options.keepGoing = keepGoing
        if dryRun {
            let lines = try catchingSpecErrors { try runner.plan(options) }
            printPlan(lines, estimates: try planEstimates(lines, expansion: expansion, store: store))
            finish(0, keeping: store)
        }
        // Held shared while running: `gc` waits for it, so it never removes an object this run uses.
        // Never released by hand: the run exits through `finish`, and the kernel drops the lock then.
        _ = try StoreUseLock(store: store, exclusive: false) {
            printError("waiting for a running `pdpipe gc` of this store to finish")
        }
        let interrupt = Interrupt.install()
        let console = Console(verbose: verbose)
        let summary: RunSummary
        do {
            summary = try catchingSpecErrors {
                if let slurm {
                    return try runner.runOnSlurm(options, slurm: slurm, command: CommandLine.arguments.joined(separator: " "),
                                                 isCancelled: { interrupt.isSet }, observe: console.handle)
                }
                return try runner.run(options, command: CommandLine.arguments.joined(separator: " "),
                                      isCancelled: { interrupt.isSet }, observe: console.handle)
            }
        } catch let e as ExitCode {
            throw e
        } catch {
            // The store itself failed (disk full, I/O error): name it; nothing was recorded half-way.
            console.finish()
            printError("cannot write to the store at \(store.root.path): \(Store.describe(error))")
            throw Exit.stageFailed
        }
        console.finish()
        let counts = [("ran", summary.count(.run)), ("extended", summary.count(.extend)), ("restored", summary.count(.restore)),
                      ("up-to-date", summary.count(.upToDate)), ("failed", summary.count(.failed)),
                      ("skipped", summary.count(.skipped))]
        print(counts.filter { $0.1 > 0 || $0.0 == "ran" }.map { "\($0.1) \($0.0)" }.joined(separator: ", ")
              + (summary.runID.map { " (run \($0))" } ?? ""))
        if summary.interrupted { printError("interrupted") }
        finish(summary.interrupted ? 130 : summary.failed ? 1 : 0, keeping: store)
    }
}

/// Exits with the store still open: SQLite then skips its checkpoint-on-close (the WAL keeps every
/// committed transaction and is checkpointed later), which saves ~5-10 ms on no-op commands.
func finish(_ code: Int32, keeping store: Store) -> Never {
    withExtendedLifetime(store) {
        fflush(nil)
        Foundation.exit(code)
    }
}

/// One line per stage; RUN lines carry their estimated time (`~41 min`) when recorded results allow one.
func printPlan(_ lines: [PlanLine], estimates: [String: CostEstimate] = [:]) {
    for l in lines {
        let estimate = estimates[l.id].map { " ~" + CostEstimator.format($0.seconds) } ?? ""
        let shown = l.action == .run || l.action == .extend || (!l.reason.isEmpty && l.reason != "stored key")
        print(l.action.rawValue + " " + l.id + (shown ? " (\(l.reason))" : "") + estimate)
    }
    let run = lines.filter { $0.action == .run || $0.action == .extend }.count
    let restore = lines.filter { $0.action == .restore }.count
    let ok = lines.filter { $0.action == .upToDate }.count
    print("\(run) to run, \(restore) to restore, \(ok) up-to-date")
    if !estimates.isEmpty {
        let total = estimates.values.reduce(0) { $0 + $1.seconds }
        print("estimated run time: ~\(CostEstimator.format(total)) (\(estimates.count) of \(run) stages to run estimated; one at a time)")
    }
}

/// Estimates for the plan's RUN lines; none when nothing runs (a no-op status stays fast).
func planEstimates(_ lines: [PlanLine], expansion: Expansion, store: Store) throws -> [String: CostEstimate] {
    guard lines.contains(where: { $0.action == .run }) else { return [:] }
    return try CostEstimator(expansion: expansion, store: store).estimates(lines)
}

/// SIGINT sets a flag the runner polls; a second SIGINT exits at once.
final class Interrupt: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    private var source: DispatchSourceSignal?
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return flag }

    static func install() -> Interrupt {
        let i = Interrupt()
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler {
            i.lock.lock()
            let second = i.flag
            i.flag = true
            i.lock.unlock()
            if second { _exit(130) }
            printError("\ninterrupt: stopping running stages (press Ctrl-C again to abort at once)")
        }
        source.resume()
        i.source = source
        return i
    }
}

/// Prints run events: plain lines; progress on a terminal as one bar per running stage, redrawn in
/// place below the plain lines; in a pipe or log, one plain line per tenth of the way.
final class Console: @unchecked Sendable {
    private let lock = NSLock()
    private let tty = isatty(STDOUT_FILENO) != 0
    private let verbose: Bool
    /// Progress lines on screen (running stages, in start order) and how many are drawn.
    private var bars: [(id: String, text: String)] = []
    private var drawn = 0
    private var estimates: [String: ProgressEstimate] = [:]
    private var lastPlainProgress: [String: Double] = [:]

    init(verbose: Bool) { self.verbose = verbose }

    func handle(_ event: RunEvent) {
        lock.lock(); defer { lock.unlock() }
        switch event {
        case .started(let id, let action, let reason):
            say("\(action.rawValue) \(id) (\(reason))")
        case .done(let line):
            bars.removeAll { $0.id == line.id }
            switch line.action {
            case .run, .extend: say("  done \(line.id) in \(String(format: "%.2f", line.seconds)) s")
            case .restore: say("RESTORE \(line.id)")
            case .upToDate: say("UP-TO-DATE \(line.id)")
            case .failed: say(line.reason == "interrupted" ? "INTERRUPTED \(line.id)" : "FAILED \(line.id): \(line.reason)")
            case .skipped: say("SKIPPED \(line.id) (\(line.reason))")
            }
        case .log(let id, let text):
            if verbose { say("  [\(id)] \(text)") }
        case .progress(let id, let done, let total, let unit, let detail):
            let fraction = total > 0 ? min(1, max(0, done / total)) : 0
            var eta = ""
            let estimate = estimates[id] ?? ProgressEstimate(start: Date(), doneAtStart: done)
            estimates[id] = estimate
            if let left = estimate.secondsLeft(done: done, total: total) {
                eta = " ETA " + (left >= 60 ? "\(Int(left / 60))m\(Int(left) % 60)s" : "\(Int(left))s")
            }
            let text = "\(id) \(Self.count(done))/\(Self.count(total)) \(unit) \(detail)\(eta)"
            if tty {
                let width = 24, filled = Int(fraction * Double(width))
                let bar = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] " + text
                if let i = bars.firstIndex(where: { $0.id == id }) { bars[i].text = bar } else { bars.append((id, bar)) }
                redraw()
            } else if fraction - (lastPlainProgress[id] ?? -1) >= 0.1 || fraction >= 1 && lastPlainProgress[id] != 1 {
                lastPlainProgress[id] = fraction
                print("  " + text)
                fflush(nil)  // piped output (tee, CI logs) shows progress as it happens
            }
        case .waiting(let id, let holder):
            say("WAIT \(id): locked by \(holder)")
        case .warning(let message):
            say("warning: \(message)")
        }
    }

    /// Whole numbers without decimals (`2048/60000 images`), fractions with up to two (`0.25/1 kimg`).
    static func count(_ v: Double) -> String {
        if v.rounded() == v && abs(v) < 1e15 { return String(Int64(v)) }
        var s = String(format: abs(v) < 1 ? "%.3f" : "%.2f", v)
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
        return s
    }

    /// Erases the drawn bars (cursor back to where the first one started).
    private func erase() {
        guard drawn > 0 else { return }
        FileHandle.standardOutput.write(Data("\r\u{1B}[\(drawn)A\u{1B}[J".utf8))
        drawn = 0
    }

    private func redraw() {
        erase()
        // Clipped to the terminal's width: a wrapped line would break the cursor arithmetic.
        var size = winsize()
        let columns = ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) - 1 : 119
        let text = bars.map { String($0.text.prefix(columns)) + "\n" }.joined()
        FileHandle.standardOutput.write(Data(text.utf8))
        drawn = bars.count
    }

    private func say(_ s: String) {
        erase()
        print(s)
        fflush(nil)
        if tty && !bars.isEmpty { redraw() }
    }

    func finish() {
        lock.lock(); defer { lock.unlock() }
        bars.removeAll()
        erase()
    }
}
