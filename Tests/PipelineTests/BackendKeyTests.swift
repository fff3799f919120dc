import Engine
import Foundation
import Stages
import Testing
@testable import Pipeline

/// Results computed on one compute backend are never restored for another: OpenBLAS and oneDNN
/// agree only to rounding, so the keys of engine kinds name a backend other than OpenBLAS
/// (`engine.backend`), while the dataset and table stages, which do not compute with it, keep
/// their keys. Checked through the built binary, whose start-up picks the backend from
/// `PDPIPE_BACKEND`.
@Suite(.enabled(if: OneDNN.isAvailable, "needs oneDNN (libdnnl)")) struct BackendKeyTests {
    static func pdpipe(_ args: [String], backend: String, in dir: URL) throws -> CLITests.Result {
        try CLITests.pdpipe(args, in: dir, environment: ["PDPIPE_BACKEND": backend])
    }

    /// Each instance's action in `status` output ("RUN train (...)").
    static func actions(_ status: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in status.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard words.count >= 2, ["RUN", "RESTORE", "UP-TO-DATE", "EXTEND"].contains(String(words[0])) else { continue }
            out[String(words[1])] = String(words[0])
        }
        return out
    }

    @Test func engineStagesRecomputeOnAnotherBackendAndEachBackendKeepsItsResults() throws {
        let f = try Fixture()
        try StageContractTests.writeProject(f)
        let engineKinds = ["featurenet", "refstats", "train", "sample", "fid"]
        let first = try Self.pdpipe(["run", "experiments/all.yaml"], backend: "openblas", in: f.dir)
        #expect(first.status == 0, "\(first.err)")

        // On oneDNN the engine stages are stale, the dataset is not, and `why` names the cause.
        let onOneDNN = try Self.pdpipe(["status", "experiments/all.yaml", "--exit-code"], backend: "onednn", in: f.dir)
        #expect(onOneDNN.status == 3, "\(onOneDNN.out)\(onOneDNN.err)")
        let stale = Self.actions(onOneDNN.out)
        #expect(stale["data"] == "UP-TO-DATE", "\(onOneDNN.out)")
        for id in engineKinds { #expect(stale[id] == "RUN", "\(id): \(onOneDNN.out)") }
        let why = try Self.pdpipe(["why", "experiments/all.yaml", "train"], backend: "onednn", in: f.dir)
        #expect(why.out.contains("engine.backend: (absent) -> \"onednn\""), "\(why.out)")
        #expect(why.out.contains("engine.numerics: (absent) -> \(OneDNNBackend.numericsRevision)"), "\(why.out)")
        let changed = why.out.split(separator: "\n").filter { $0.hasPrefix("  ") && $0.contains(" -> ") }
        #expect(changed.count == 2, "only the backend changed: \(why.out)")

        // Computed on oneDNN, the run is complete there; back on OpenBLAS its own results are still stored.
        let second = try Self.pdpipe(["run", "experiments/all.yaml"], backend: "onednn", in: f.dir)
        #expect(second.status == 0, "\(second.err)")
        let done = try Self.pdpipe(["status", "experiments/all.yaml", "--exit-code"], backend: "onednn", in: f.dir)
        #expect(done.status == 0, "\(done.out)")
        // The stage contract holds on oneDNN too: recomputing every engine stage gives the same bytes.
        let computed = try StageContractTests.artifacts(f)
        let forced = try Self.pdpipe(["run", "experiments/all.yaml"] + engineKinds.flatMap { ["-f", $0] }, backend: "onednn", in: f.dir)
        #expect(forced.status == 0, "\(forced.err)")
        for id in engineKinds { #expect(Self.actions(forced.out)[id] == "RUN", "\(id): \(forced.out)") }
        let recomputed = try StageContractTests.artifacts(f)
        for id in engineKinds { #expect(recomputed[id] == computed[id], "\(id): recomputation on oneDNN changed the artifact") }
        let back = try Self.pdpipe(["status", "experiments/all.yaml"], backend: "openblas", in: f.dir)
        let restored = Self.actions(back.out)
        #expect(restored["data"] == "UP-TO-DATE", "\(back.out)")
        for id in engineKinds { #expect(restored[id] == "RESTORE", "\(id): \(back.out)") }
    }
}

/// A Slurm job computes on the backend its submitter computed keys for, or refuses.
@Suite struct JobBackendTests {
    @Test func aJobSubmittedForAnotherBackendRefusesToRun() throws {
        let f = try Fixture()
        try StageContractTests.writeProject(f)
        let runner = try f.runner("experiments/all.yaml")
        func ticket(backend: String?) -> JobTicket {
            JobTicket(spec: "experiments/all.yaml", overrides: [], cellID: "data", key: nil, forced: false, reason: "test",
                      extending: nil, settled: [:], runID: "backend-test", threads: 1, backend: backend)
        }
        #expect {
            try runner.runJob(ticket(backend: "elsewhere"), isCancelled: { false }, observe: { _ in })
        } throws: { error in
            "\(error)".contains("submitted for the elsewhere backend") && "\(error)".contains("computes on \(EngineInfo.backend)")
        }
        // The node's own backend computes (so the refused job had computed nothing), and a ticket of
        // an older version, without a backend, is accepted (that result is then already recorded).
        let own = try runner.runJob(ticket(backend: EngineInfo.backend), isCancelled: { false }, observe: { _ in })
        if case .computed = own {} else { Issue.record("expected a computation: \(own)") }
        let old = try runner.runJob(ticket(backend: nil), isCancelled: { false }, observe: { _ in })
        if case .alreadyDone = old {} else { Issue.record("expected the recorded result: \(old)") }
    }
}
