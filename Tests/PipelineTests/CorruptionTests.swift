import Foundation
import Testing
@testable import Pipeline

/// Corrupted and missing cache entries through the CLI (issue 7.3): a flipped byte is found by
/// `cache verify` and on restore, a corrupt input is never fed to a consumer, a deleted object
/// reruns only its stage, `--repair` and `gc` never leave or remove the wrong bytes.
@Suite struct CorruptionTests {
    /// The object directory of a cell's current result.
    static func object(_ f: Fixture, _ cell: String, overrides: [String] = []) throws -> (key: String, url: URL) {
        let runner = try f.runner("experiments/sweep.yaml", overrides: overrides)
        let key = try runner.plan(RunOptions()).first { $0.id == cell }!.key!
        return (key, runner.store.objectURL(try runner.store.result(forKey: key)!.artifact))
    }

    /// Flips one bit of one byte in place (size and mtime-independent corruption).
    static func flipByte(_ file: URL, at offset: Int = 0) throws {
        var bytes = [UInt8](try Data(contentsOf: file))
        bytes[offset % bytes.count] ^= 0x01
        let h = try FileHandle(forWritingTo: file)
        try h.write(contentsOf: Data(bytes))
        try h.close()
    }

    @Test func flippedByteIsFoundByVerifyAndOnRestore() throws {
        let f = try Fixture()
        try f.writeScenario()
        #expect(try CLITests.pdpipe(["run", "experiments/sweep.yaml"], in: f.dir).status == 0)
        let prep = try Self.object(f, "prep")
        #expect(try CLITests.pdpipe(["run", "experiments/sweep.yaml", "-S", "prep.factor=4"], in: f.dir).status == 0)
        _ = try f.takeExecutions()
        try Self.flipByte(prep.url.appendingPathComponent("prepped.txt"), at: 2)

        let verify = try CLITests.pdpipe(["cache", "verify"], in: f.dir)
        #expect(verify.status == 1)
        #expect(verify.out.contains("BAD \(prep.url.lastPathComponent) (prep): content does not match digest"))
        #expect(verify.out.contains("database: ok"))

        // Going back to factor 2 would restore the flipped object: it is rehashed, rejected, recomputed.
        let back = try CLITests.pdpipe(["run", "experiments/sweep.yaml"], in: f.dir)
        #expect(back.status == 0)
        #expect(back.out.contains("warning: object \(prep.url.lastPathComponent.prefix(12)) of prep does not match its digest; recomputing"))
        #expect(try f.takeExecutions() == ["prep"])
        #expect(try CLITests.pdpipe(["cache", "verify"], in: f.dir).status == 0)
        #expect(try String(contentsOf: prep.url.appendingPathComponent("prepped.txt"), encoding: .utf8) == "2\n4\n6\n")
    }

    @Test func corruptInputIsNotFedToItsConsumer() throws {
        let f = try Fixture()
        try f.writeScenario()
        #expect(try CLITests.pdpipe(["run", "experiments/sweep.yaml"], in: f.dir).status == 0)
        _ = try f.takeExecutions()
        let prep = try Self.object(f, "prep")
        try Self.flipByte(prep.url.appendingPathComponent("prepped.txt"))
        // prep stays up to date, but train at lr 0.3 (one value: no longer swept) is new and reads it:
        // the input is rehashed first, found corrupt, dropped; prep is recomputed, then train runs on good bytes.
        let r = try CLITests.pdpipe(["run", "experiments/sweep.yaml", "-S", "train.lr=0.3"], in: f.dir)
        #expect(r.status == 0, "\(r.out)")
        #expect(r.out.contains("warning: input `prep` (prep, object \(prep.url.lastPathComponent.prefix(12))) is corrupt "
                               + "(its content does not match its digest); it was dropped from the cache; recomputing `prep`, then train"))
        // Same bytes as before the flip, so parity and summary are not rerun.
        #expect(try f.takeExecutions() == ["evaluate", "prep", "train"])
        #expect(try String(contentsOf: prep.url.appendingPathComponent("prepped.txt"), encoding: .utf8) == "2\n4\n6\n")
        let model = try Self.object(f, "train", overrides: ["train.lr=0.3"])
        // Independent value: 0.3 * (2 + 4 + 6).
        #expect(try String(contentsOf: model.url.appendingPathComponent("model.txt"), encoding: .utf8) == "3.6\n")
        #expect(try CLITests.pdpipe(["cache", "verify"], in: f.dir).status == 0)

        // Two consumers at once (-j 2, both train cells forced) find the same corrupt input:
        // prep is recomputed once and both trains run on its good bytes.
        try Self.flipByte(prep.url.appendingPathComponent("prepped.txt"))
        let both = try CLITests.pdpipe(["run", "experiments/sweep.yaml", "-j", "2", "-f", "train"], in: f.dir)
        #expect(both.status == 0, "\(both.out)")
        #expect(try f.takeExecutions() == ["prep", "train@lr=0.1", "train@lr=0.2"])
        #expect(try CLITests.pdpipe(["cache", "verify"], in: f.dir).status == 0)
    }

    @Test func deletedObjectRerunsOnlyItsStage() throws {
        let f = try Fixture()
        try f.writeScenario()
        #expect(try CLITests.pdpipe(["run", "experiments/sweep.yaml"], in: f.dir).status == 0)
        _ = try f.takeExecutions()
        let parity = try Self.object(f, "parity")
        try FileManager.default.removeItem(at: parity.url)
        #expect(try CLITests.pdpipe(["cache", "verify"], in: f.dir).out.contains("BAD \(parity.url.lastPathComponent) (parity): missing"))
        let r = try CLITests.pdpipe(["run", "experiments/sweep.yaml"], in: f.dir)
        #expect(r.status == 0)
        #expect(r.out.contains("RUN parity (stored object missing)"), "\(r.out)")
        // Same bytes again: summary, which consumes parity, is not rerun.
        #expect(try f.takeExecutions() == ["parity"])
        #expect(FileManager.default.fileExists(atPath: parity.url.path))
    }

    @Test func repairForgetsAndRemovesCorruptObjectsSoTheRerunStoresGoodBytes() throws {
        let f = try Fixture()
        try f.writeScenario()
        #expect(try CLITests.pdpipe(["run", "experiments/sweep.yaml"], in: f.dir).status == 0)
        _ = try f.takeExecutions()
        let summary = try Self.object(f, "summary")
        try Self.flipByte(summary.url.appendingPathComponent("summary.txt"))
        let repair = try CLITests.pdpipe(["cache", "verify", "--repair"], in: f.dir)
        #expect(repair.status == 0 && repair.out.contains("BAD \(summary.url.lastPathComponent) (summary)"))
        let r = try CLITests.pdpipe(["run", "experiments/sweep.yaml"], in: f.dir)
        #expect(r.status == 0)
        #expect(try f.takeExecutions() == ["summary"])
        // The recomputed output has the old digest; the stored bytes must be the good ones.
        #expect(try Digest.tree(summary.url) == summary.url.lastPathComponent)
        #expect(try CLITests.pdpipe(["cache", "verify"], in: f.dir).status == 0)
    }

    @Test func gcRemovesOldUnreferencedObjectsAndNeverAReferencedOne() throws {
        let f = try Fixture()
        try f.writeScenario()
        #expect(try CLITests.pdpipe(["run", "experiments/sweep.yaml"], in: f.dir).status == 0)
        #expect(try CLITests.pdpipe(["run", "experiments/sweep.yaml", "-S", "prep.factor=3"], in: f.dir).status == 0)
        let fm = FileManager.default
        let objects = f.storeURL.appendingPathComponent("objects"), tmp = f.storeURL.appendingPathComponent("tmp")
        let referenced = Set(try Reliability.results(f.storeURL).map(\.artifact))
        // Orphans as a crash between "moved into objects/" and "recorded" leaves them, one old, one young.
        let hour = Date().addingTimeInterval(-7200)
        for (name, date) in [("0rphan-old", hour), ("0rphan-young", Date())] {
            try f.write(".pdpipe/objects/\(name)/x.txt", name)
            try fm.setAttributes([.modificationDate: date], ofItemAtPath: objects.appendingPathComponent(name).path)
        }
        try f.write(".pdpipe/tmp/dead-run/out/x.txt", "partial")
        try fm.setAttributes([.modificationDate: hour], ofItemAtPath: tmp.appendingPathComponent("dead-run").path)
        // Referenced objects are old too: age alone never removes them.
        for digest in referenced { try fm.setAttributes([.modificationDate: hour], ofItemAtPath: objects.appendingPathComponent(digest).path) }

        let dry = try CLITests.pdpipe(["gc", "-n"], in: f.dir)
        #expect(dry.status == 0 && dry.out.contains("remove object 0rphan-old") && dry.out.contains("remove tmp dead-run"))
        #expect(fm.fileExists(atPath: objects.appendingPathComponent("0rphan-old").path))
        let gc = try CLITests.pdpipe(["gc"], in: f.dir)
        #expect(gc.status == 0 && gc.out.contains("2 removed, \(referenced.count) objects referenced"))
        let left = Set(try fm.contentsOfDirectory(atPath: objects.path))
        #expect(left == referenced.union(["0rphan-young"]))
        #expect(try fm.contentsOfDirectory(atPath: tmp.path).isEmpty)
        #expect(try CLITests.pdpipe(["cache", "verify"], in: f.dir).status == 0)
        _ = try f.takeExecutions()
        // Both parameter sets restore without running anything.
        #expect(try CLITests.pdpipe(["run", "experiments/sweep.yaml"], in: f.dir).status == 0)
        #expect(try f.takeExecutions() == [])
    }
}
