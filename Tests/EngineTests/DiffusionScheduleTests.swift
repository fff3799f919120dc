import Foundation
import Testing
@testable import Engine

@Suite struct DiffusionScheduleTests {
    @Test func learningRateWarmUp() {
        let s = TrainingSchedule(batch: 10, averageMultiplier: 1.9, learningRate: 1e-3, lrRampupKimg: 2, emaHalfLifeKimg: 5, totalKimg: 10)
        #expect(s.countedImagesPerStep == 19)
        #expect(s.learningRate(countedImages: 0) == 0)
        #expect(abs(s.learningRate(countedImages: 1000) - 5e-4) < 1e-15)
        #expect(s.learningRate(countedImages: 5000) == 1e-3)
        #expect(s.totalSteps == Int((10_000 / 19.0).rounded(.up)))
    }

    @Test func emaHalfLifeAndRamp() {
        let s = TrainingSchedule(batch: 10, averageMultiplier: 2, learningRate: 1, lrRampupKimg: 0, emaHalfLifeKimg: 1, totalKimg: 100)
        // Past the ramp: after h = 1000 counted images (50 steps of 20) old weights keep half their weight.
        let beta = s.emaBeta(countedImages: 1e6)
        #expect(abs(pow(beta, 1000 / 20) - 0.5) < 1e-12)
        // Ramp: h = 0.05 * 4000 = 200 images, so beta = 0.5^(20/200).
        #expect(abs(s.emaBeta(countedImages: 4000) - pow(0.5, 0.1)) < 1e-12)
        // First step: the EMA copies the network.
        #expect(s.emaBeta(countedImages: 0) == 0)
    }

    @Test func tensorArchiveRoundTripsAtomically() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pd-archive-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = RandomGenerator(seed: 2)
        let a = Tensor(shape: [2, 3], data: (0..<6).map { _ in rng.normal() })
        let b = Tensor(shape: [5], data: [Float.pi, -0, 1e-30, .greatestFiniteMagnitude, 3])
        let archive = TensorArchive(metadata: Data(#"{"step":7}"#.utf8), tensors: [("net.a", a), ("ema.b", b)])
        let url = dir.appendingPathComponent("x.pdt")
        try archive.write(to: url)
        try archive.write(to: url)  // overwrite in place
        let back = try TensorArchive.read(url)
        #expect(back.tensors.map(\.name) == ["net.a", "ema.b"])
        #expect(back.tensor(named: "net.a") == a && back.tensor(named: "ema.b") == b)
        #expect(String(decoding: back.metadata, as: UTF8.self) == #"{"step":7}"#)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["x.pdt"], "no temporary files left")
        // A truncated file is reported with its path.
        let data = try Data(contentsOf: url)
        try data.prefix(40).write(to: url)
        #expect(throws: DiffusionError.self) { try TensorArchive.read(url) }
    }
}
