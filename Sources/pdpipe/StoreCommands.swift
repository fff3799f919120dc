import ArgumentParser
import Foundation
import Pipeline

struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cache", abstract: "Inspect the store.", subcommands: [Verify.self])

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
        abstract: "Remove objects no recorded key refers to, and stale temporary files (older than an hour).")
    @OptionGroup var storeOption: StoreOption
    @Flag(name: [.customShort("n"), .customLong("dry-run")], help: "Only list what would be removed.") var dryRun = false

    func run() throws {
        let store = try storeOption.open()
        let fm = FileManager.default
        let referenced = try store.allArtifacts()
        // A concurrent run may have moved an object in but not yet recorded it: keep young entries.
        let cutoff = Date().addingTimeInterval(-3600)
        func old(_ url: URL) -> Bool {
            ((try? fm.attributesOfItem(atPath: url.path)[.modificationDate] as? Date) ?? Date()) < cutoff
        }
        var removed = 0
        for name in (try? fm.contentsOfDirectory(atPath: store.objects.path)) ?? [] where !referenced.contains(name) {
            let url = store.objectURL(name)
            guard old(url) else { continue }
            print("remove object \(name)")
            if !dryRun { try fm.removeItem(at: url) }
            removed += 1
        }
        for name in (try? fm.contentsOfDirectory(atPath: store.tmp.path)) ?? [] {
            let url = store.tmp.appendingPathComponent(name)
            guard old(url) else { continue }
            print("remove tmp \(name)")
            if !dryRun { try fm.removeItem(at: url) }
            removed += 1
        }
        print("\(removed) \(dryRun ? "would be removed" : "removed"), \(referenced.count) objects referenced")
    }
}
