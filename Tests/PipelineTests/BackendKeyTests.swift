import Engine
import Foundation
import Stages
import Testing
@testable import Pipeline

/// Results computed on one compute backend are never restored for another: OpenBLAS and oneDNN
/// agree only to rounding, so the keys of the kinds that compute the model (train, sample) name a
/// backend other than OpenBLAS (`engine.backend`). Instruments (featurenet, refstats, fid) always
/// compute on OpenBLAS, so one extractor measures both backends' samples: their keys name no
/// backend, and recomputing them under oneDNN gives OpenBLAS's bytes. Checked through the built
/// binary, whose start-up picks the backend from `PDPIPE_BACKEND`.
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

    @Test func modelStagesRecomputeOnAnotherBackendAndInstrumentsStayOnOpenBLAS() throws {
        let f = try Fixture()
        try StageContractTests.writeProject(f)
        let modelKinds = ["train", "sample"], instruments = ["featurenet", "refstats"]
        let first = try Self.pdpipe(["run", "experiments/all.yaml"], backend: "openblas", in: f.dir)
        #expect(first.status == 0, "\(first.err)")
        let onOpenBLAS = try StageContractTests.artifacts(f)

        // On oneDNN the model stages are stale and so is fid, which measures new samples; the
        // dataset and the instruments (extractor, reference statistics) are not.
        let onOneDNN = try Self.pdpipe(["status", "experiments/all.yaml", "--exit-code"], backend: "onednn", in: f.dir)
        #expect(onOneDNN.status == 3, "\(onOneDNN.out)\(onOneDNN.err)")
        let stale = Self.actions(onOneDNN.out)
        for id in ["data"] + instruments { #expect(stale[id] == "UP-TO-DATE", "\(id): \(onOneDNN.out)") }
        for id in modelKinds + ["fid"] { #expect(stale[id] == "RUN", "\(id): \(onOneDNN.out)") }
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
        // The stage contract holds on oneDNN too: recomputing every engine stage gives the same
        // bytes, and the instruments, forced under oneDNN, give the bytes they gave on OpenBLAS.
        let computed = try StageContractTests.artifacts(f)
        #expect(computed["train"] != onOpenBLAS["train"], "oneDNN's training should differ from OpenBLAS's in the last bits")
        let forced = try Self.pdpipe(["run", "experiments/all.yaml"] + (modelKinds + instruments + ["fid"]).flatMap { ["-f", $0] },
                                     backend: "onednn", in: f.dir)
        #expect(forced.status == 0, "\(forced.err)")
        for id in modelKinds + instruments + ["fid"] { #expect(Self.actions(forced.out)[id] == "RUN", "\(id): \(forced.out)") }
        let recomputed = try StageContractTests.artifacts(f)
        for id in modelKinds + ["fid"] { #expect(recomputed[id] == computed[id], "\(id): recomputation on oneDNN changed the artifact") }
        for id in instruments { #expect(recomputed[id] == onOpenBLAS[id], "\(id): an instrument computed under oneDNN differs from OpenBLAS's") }
        let back = try Self.pdpipe(["status", "experiments/all.yaml"], backend: "openblas", in: f.dir)
        let restored = Self.actions(back.out)
        for id in ["data"] + instruments { #expect(restored[id] == "UP-TO-DATE", "\(id): \(back.out)") }
        for id in modelKinds + ["fid"] { #expect(restored[id] == "RESTORE", "\(id): \(back.out)") }
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
