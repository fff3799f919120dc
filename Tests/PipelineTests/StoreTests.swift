import Foundation
import Testing
@testable import Pipeline

/// Store integrity: digests, verification on restore, `cache verify`, stop-at-first-failure.
@Suite struct StoreTests {
    @Test func treeDigestCoversPathsContentAndExecBit() throws {
        let f = try Fixture()
        try f.write("t/a/x.txt", "one")
        try f.write("t/b.txt", "two")
        let d0 = try Digest.tree(f.url("t"))
        // Independent recomputation of the documented listing.
        let listing = "a/x.txt\u{0}" + Digest.hex("one") + "\u{0}-\n" + "b.txt\u{0}" + Digest.hex("two") + "\u{0}-\n"
        #expect(d0 == Digest.hex(listing))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: f.url("t/b.txt").path)
        #expect(try Digest.tree(f.url("t")) != d0)
        #expect(Digest.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.canonicalJSON(.map(["b": .int(1), "a": .list([.double(0.5), .string("q\"")])])) == "{\"a\":[0.5,\"q\\\"\"],\"b\":1}")
    }

    @Test func corruptObjectIsRecomputedOnRestoreAndFlaggedByVerify() throws {
        let f = try Fixture()
        try f.writeScenario()
        try f.run("experiments/sweep.yaml")
        try f.run("experiments/sweep.yaml", overrides: ["prep.factor=4"])
        _ = try f.takeExecutions()
        // Corrupt the stored object of the original `prep` result, then go back to it.
        let runner = try f.runner("experiments/sweep.yaml")
        let key = try runner.plan(RunOptions()).first { $0.id == "prep" }!.key!
        let artifact = try runner.store.result(forKey: key)!.artifact
        try "tampered\n".write(to: runner.store.objectURL(artifact).appendingPathComponent("prepped.txt"), atomically: false, encoding: .utf8)

        let verify = try CLITests.pdpipe(["cache", "verify"], in: f.dir)
        #expect(verify.status == 1)
        #expect(verify.out.contains("BAD \(artifact) (prep): content does not match digest"))

        let warnings = Warnings()
        _ = try runner.run(RunOptions(), command: "test", isCancelled: { false }, observe: { e in
            if case .warning(let w) = e { warnings.add(w) }
        })
        #expect(warnings.all.contains { $0.contains("does not match its digest") })
        #expect(try f.takeExecutions().contains("prep"))
        #expect(try CLITests.pdpipe(["cache", "verify"], in: f.dir).status == 0)
    }

    @Test func firstFailureStopsTheRunByDefault() throws {
        let f = try Fixture()
        let log = "echo $PDPIPE_STAGE >> '\(f.counter.path)'"
        try f.write("pipelines/stop.yaml", """
            stages:
              bad:
                kind: shell
                cmd: \(log); exit 1
              later:
                kind: shell
                cmd: \(log)
            """)
        let summary = try f.run("pipelines/stop.yaml", jobs: 1)
        #expect(try f.takeExecutions() == ["bad"])
        #expect(summary.lines.first { $0.id == "later" }?.action == .skipped)
    }
}

final class Warnings: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return items }
}
