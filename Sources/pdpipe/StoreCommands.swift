import ArgumentParser
import Foundation
import Pipeline

struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cache", abstract: "Inspect the store.", subcommands: [Verify.self, Du.self, Estimates.self])

    struct Estimates: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "estimates",
            abstract: "How good `status`'s time estimates are here: each recorded train/sample result against its estimate from the others.")
        @OptionGroup var storeOption: StoreOption

        func run() throws {
            let store = try storeOption.open()
            let rows = try CostEstimator(expansion: nil, store: store).leaveOneOut()
            guard !rows.isEmpty else { print("no train or sample results with another of the same kind to compare"); return }
            var worst: [String: Double] = [:]
            for r in rows {
                let ratio = r.estimate / r.seconds
                worst[r.kind] = max(worst[r.kind] ?? 1, max(ratio, 1 / ratio))
                print("\(r.kind) \(r.cellID): measured \(String(format: "%.1f", r.seconds)) s, estimated \(String(format: "%.1f", r.estimate)) s (x\(String(format: "%.2f", ratio)))")
            }
            for (kind, w) in worst.sorted(by: { $0.key < $1.key }) {
                print("\(kind): worst factor \(String(format: "%.2f", w)) over \(rows.filter { $0.kind == kind }.count) results")
            }
        }
    }

    struct Du: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "du", abstract: "The store's size by stage kind and by experiment.")
        @OptionGroup var storeOption: StoreOption
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let store = try storeOption.open()
            let u = try Retention.usage(store: store)
            if json {
                struct Group: Encodable { var name: String; var bytes: Int64; var objects: Int }
                struct Usage: Encodable { var byKind: [Group]; var byExperiment: [Group]; var totalBytes: Int64; var objects: Int }
                print(try jsonText(Usage(byKind: u.byKind.map { Group(name: $0.0, bytes: $0.1, objects: $0.2) },
                                         byExperiment: u.byScope.map { Group(name: $0.0, bytes: $0.1, objects: $0.2) },
                                         totalBytes: u.total, objects: u.objects)))
                return
            }
            func table(_ title: String, _ rows: [(String, Int64, Int)]) {
                print(title)
                for r in rows { print("  \(byteCount(r.1).padding(toLength: 9, withPad: " ", startingAt: 0)) \(String(r.2).padding(toLength: 5, withPad: " ", startingAt: 0)) \(r.0)") }
            }
            table("by stage kind (size, objects, kind):", u.byKind)
            table("by experiment (size, objects, file; an object shared by several is counted in each):", u.byScope)
            print("total: \(byteCount(u.total)) in \(u.objects) objects (\(store.objects.path))")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "verify", abstract: "Re-hash every stored object; exit 1 on any mismatch.")
        @OptionGroup var storeOption: StoreOption
        @Flag(help: "Forget results whose object is missing or corrupt (they will be recomputed).") var repair = false

        func run() throws {
            let store = try storeOption.open()
            let integrity = try store.integrityCheck()
            print("database: \(integrity)")
            let cells = try store.cellsByArtifact()
            let artifacts = try store.allArtifacts().sorted()
            var bad = 0
            for digest in artifacts {
                let url = store.objectURL(digest)
                let problem: String?
                if !FileManager.default.fileExists(atPath: url.path) { problem = "missing" }
                else if try Digest.tree(url) != digest { problem = "content does not match digest" }
                else { problem = nil }
                if let problem {
                    bad += 1
                    print("BAD \(digest) (\((cells[digest] ?? []).joined(separator: ", "))): \(problem)")
                    if repair {
                        // Drop the bytes too: a recomputation with the same digest must not find them.
                        try? FileManager.default.removeItem(at: url)
                        try store.forgetArtifact(digest)
                    }
                }
            }
            print("\(artifacts.count - bad) objects ok, \(bad) bad")
            if integrity != "ok" || (bad > 0 && !repair) { throw Exit.stageFailed }
        }
    }
}

struct GCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove stored results the project no longer needs, and their objects.",
        discussion: """
            Keeps every result that the project's experiments/*.yaml and pipelines/*.yaml need as they are now (all
            matrix cells, no -S overrides) plus every result the last --keep-runs runs computed, restored or found up to
            date; forgets the other results and removes their objects. Also removes objects no result refers to and
            temporary files older than an hour. Waits for running `pdpipe run`s of this store to finish first.
            """)
    @OptionGroup var storeOption: StoreOption
    @Flag(name: [.customShort("n"), .customLong("dry-run")], help: "Only list what would be removed, with sizes.") var dryRun = false
    @Option(name: .customLong("keep-runs"), help: "Also keep what the last N runs used.") var keepRuns = 5
    @Option(help: "Project directory whose experiments/ and pipelines/ say what to keep (default: the store's parent).") var project: String?

    func run() throws {
        guard keepRuns >= 0 else { printError("--keep-runs must be 0 or more"); throw Exit.badSpec }
        let store = try storeOption.open()
        let projectDir = project.map { URL(fileURLWithPath: $0).standardizedFileURL } ?? store.root.deletingLastPathComponent()
        let files = Retention.specFiles(projectDirectory: projectDir)
        if files.isEmpty && project == nil {
            printError("no experiments/ or pipelines/ files under \(projectDir.path): nothing says what to keep; pass --project DIR")
            throw Exit.badSpec
        }
        // Exclusive against runs (they hold it shared), so nothing in use is removed; a dry run only reads.
        var hold: StoreUseLock?
        if !dryRun {
            hold = try StoreUseLock(store: store, exclusive: true) {
                printError("waiting for the running `pdpipe run`s of this store to finish (Ctrl-C to give up)")
            }
        }
        let plan: RetentionPlan
        do {
            let needed = try Retention.neededKeys(store: store, files: files)
            plan = try Retention.plan(store: store, needed: needed, keepRuns: keepRuns, files: files)
        } catch let e as SpecError {
            printError(e.description)
            printError("gc: cannot tell what that file needs; fix it (or move it out of experiments/ and pipelines/) first")
            throw Exit.badSpec
        }
        for o in plan.objects {
            print("\(dryRun ? "would remove" : "remove") object \(o.digest.prefix(12))  \(byteCount(o.bytes))  \(o.kind) \(o.cells.joined(separator: ", "))")
        }
        if !dryRun { try Retention.apply(plan, store: store) }
        let orphans = try removeOrphans(store)
        let referenced = dryRun ? Set(try store.allArtifacts()).subtracting(plan.objects.map(\.digest)).count : try store.allArtifacts().count
        print("\(plan.objects.count + orphans.count) \(dryRun ? "would be removed" : "removed"), \(referenced) objects referenced; "
              + "\(byteCount(plan.bytes + orphans.bytes)) \(dryRun ? "would be " : "")freed, \(plan.forgotten.count) results forgotten; "
              + "kept the \(plan.kept.count) results needed by \(files.count) spec files and the last \(keepRuns) runs")
        hold?.release()
    }

    /// Objects no result refers to and stale temporary files. Young entries stay: a run of an older
    /// pdpipe (without the store-use lock) may have moved an object in but not yet recorded it.
    func removeOrphans(_ store: Store) throws -> (count: Int, bytes: Int64) {
        let fm = FileManager.default
        let referenced = try store.allArtifacts()
        let cutoff = Date().addingTimeInterval(-3600)
        func old(_ url: URL) -> Bool {
            ((try? fm.attributesOfItem(atPath: url.path)[.modificationDate] as? Date) ?? Date()) < cutoff
        }
        var count = 0
        var bytes: Int64 = 0
        for name in (try? fm.contentsOfDirectory(atPath: store.objects.path)) ?? [] where !referenced.contains(name) {
            let url = store.objectURL(name)
            guard old(url) else { continue }
            let size = Retention.objectBytes(url)
            print("\(dryRun ? "would remove" : "remove") object \(name)  \(byteCount(size))  (no result refers to it)")
            if !dryRun { try fm.removeItem(at: url) }
            count += 1; bytes += size
        }
        for name in (try? fm.contentsOfDirectory(atPath: store.tmp.path)) ?? [] {
            let url = store.tmp.appendingPathComponent(name)
            guard old(url) else { continue }
            print("\(dryRun ? "would remove" : "remove") tmp \(name)")
            if !dryRun { try fm.removeItem(at: url) }
            count += 1
        }
        return (count, bytes)
    }
}
