import Foundation
import Testing
@testable import Engine

@Suite struct DiffusionTrainingTests {
    /// Four r x r grayscale images with distinct shapes (bars, a square, a diagonal).
    static func handful(_ r: Int = 16) -> InMemoryImages {
        var bytes = [UInt8](repeating: 0, count: 4 * r * r)
        for y in 0..<r { for x in 0..<r {
            bytes[0 * r * r + y * r + x] = x < r / 2 ? 255 : 0
            bytes[1 * r * r + y * r + x] = y < r / 2 ? 255 : 0
            bytes[2 * r * r + y * r + x] = (r / 4..<3 * r / 4).contains(x) && (r / 4..<3 * r / 4).contains(y) ? 255 : 0
            bytes[3 * r * r + y * r + x] = abs(x - y) < r / 5 ? 255 : 0
        } }
        return InMemoryImages(count: 4, resolution: r, channels: 1, bytes: bytes)
    }

    static func tinyConfig(kimg: Double, realP: Double = 0.5, dropout: Double = 0,
                           resolution: Int = 16) -> TrainingConfig {
        TrainingConfig(network: UNetConfig(imageChannels: 1, coordinates: true, modelChannels: 16, channelMult: [1, 2],
                                           numBlocks: 1, attentionLevels: [1], dropout: dropout),
                       resolution: resolution, realP: realP, batch: 4, totalKimg: kimg, learningRate: 2e-3, lrRampupKimg: 0.05,
                       emaHalfLifeKimg: 0.05, seed: 3, tickKimg: 0.05)
    }

    static func tempDir() -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("pd-train-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    @Test func resumeAfterInterruptEndsIdentically() throws {
        let config = Self.tinyConfig(kimg: 0.12, dropout: 0.1)
        let straight = try PatchDiffusionTrainer(config: config, images: Self.handful())
        let a = try straight.run(workDirectory: nil)

        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try PatchDiffusionTrainer(config: config, images: Self.handful())
        var calls = 0
        #expect(throws: TrainingCancelled.self) {
            _ = try first.run(workDirectory: dir, checkpointKimg: 0.03, isCancelled: { calls += 1; return calls > 9 })
        }
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent(PatchDiffusionTrainer.checkpointFileName).path))
        let second = try PatchDiffusionTrainer(config: config, images: Self.handful())
        let b = try second.run(workDirectory: dir)
        #expect(b.resumedFromStep == 9)
        #expect(a.steps == b.steps && a.countedKimg == b.countedKimg)
        #expect(abs(b.countedKimg - Double(a.steps) * 4 * 1.9 / 1000) < 1e-12 && b.countedKimg >= 0.12)
        #expect(straight.ema.values == second.ema.values, "resumed EMA weights equal the uninterrupted run's")
        #expect(a.ticks.map(\.loss) == b.ticks.map(\.loss))
        let hist = a.ticks.reduce(into: [String: Int]()) { acc, t in for (k, v) in t.patchSizeHistogram { acc[k, default: 0] += v } }
        #expect(hist.values.reduce(0, +) == a.steps)
    }

    /// Snapshots: the EMA weights at each multiple of snapshot_kimg, the last one the final EMA
    /// when the total is such a multiple; a resumed run emits the rest, identically.
    @Test func snapshotsAtEachMultipleAndIdenticalAfterResume() throws {
        let config = Self.tinyConfig(kimg: 0.12, dropout: 0.1)
        var straight: [(Double, [Tensor])] = []
        let a = try PatchDiffusionTrainer(config: config, images: Self.handful())
        _ = try a.run(workDirectory: nil, snapshotKimg: 0.04, onSnapshot: { kimg, archive in
            straight.append((kimg, archive.tensors.map(\.tensor)))
        })
        #expect(straight.map(\.0) == [0.04, 0.08, 0.12])
        #expect(straight.last!.1 == a.ema.values)

        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var resumed: [Double: [Tensor]] = [:]
        var calls = 0
        let first = try PatchDiffusionTrainer(config: config, images: Self.handful())
        #expect(throws: TrainingCancelled.self) {
            _ = try first.run(workDirectory: dir, snapshotKimg: 0.04, onSnapshot: { resumed[$0] = $1.tensors.map(\.tensor) },
                              isCancelled: { calls += 1; return calls > 9 })
        }
        let second = try PatchDiffusionTrainer(config: config, images: Self.handful())
        _ = try second.run(workDirectory: dir, snapshotKimg: 0.04, onSnapshot: { resumed[$0] = $1.tensors.map(\.tensor) })
        for (kimg, weights) in straight { #expect(resumed[kimg] == weights, "snapshot \(kimg)") }
    }

    /// Extending a finished run to a longer total ends exactly where training to that total at once
    /// does: weights, EMA, log, and the state a further extension would start from.
    @Test func extendingATrainingEqualsTrainingLongerFromScratch() throws {
        let long = Self.tinyConfig(kimg: 0.13, dropout: 0.1)
        let straight = try PatchDiffusionTrainer(config: long, images: Self.handful())
        let whole = try straight.run(workDirectory: nil)

        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let short = try PatchDiffusionTrainer(config: Self.tinyConfig(kimg: 0.07, dropout: 0.1), images: Self.handful())
        let part = try short.run(workDirectory: nil)
        #expect(part.steps < whole.steps)
        let state = dir.appendingPathComponent("state.pdt")
        try short.resumableState().write(to: state)

        let extended = try PatchDiffusionTrainer(config: long, images: Self.handful())
        #expect(try extended.continueTraining(from: state) == part.steps)
        let rest = try extended.run(workDirectory: nil)
        #expect(extended.ema.values == straight.ema.values)
        #expect(extended.net.parameters.map(\.value) == straight.net.parameters.map(\.value))
        #expect(rest.ticks.map(\.loss) == whole.ticks.map(\.loss) && rest.ticks.map(\.kimg) == whole.ticks.map(\.kimg))
        #expect(try extended.resumableState().tensors.map(\.tensor) == (try straight.resumableState().tensors.map(\.tensor)))
        #expect(try extended.resumableState().metadata == (try straight.resumableState().metadata))

        // A state of another configuration (other seed) is refused.
        var other = long
        other.seed = 4
        let wrong = try PatchDiffusionTrainer(config: other, images: Self.handful())
        #expect(throws: DiffusionError.self) { try wrong.continueTraining(from: state) }
    }

    @Test func nonFiniteLossNamesTheStep() throws {
        var config = Self.tinyConfig(kimg: 0.2)
        config.learningRate = 1e36
        config.lrRampupKimg = 0
        let trainer = try PatchDiffusionTrainer(config: config, images: Self.handful())
        do {
            _ = try trainer.run(workDirectory: nil)
            Issue.record("training with lr 1e36 finished")
        } catch let e as DiffusionError {
            #expect(e.message.contains("non-finite loss") && e.message.contains("at step"), "\(e.message)")
        }
    }

    @Test func tinyModelOverfitsAHandfulOfImages() throws {
        // 8x8 images, full-image training (p = 1, the EDM baseline with coordinate channels): ~6 s here.
        let r = 8
        let data = Self.handful(r)
        let px = r * r
        var config = Self.tinyConfig(kimg: 6, realP: 1, resolution: r)
        config.learningRate = 5e-3
        config.emaHalfLifeKimg = 0.2
        let trainer = try PatchDiffusionTrainer(config: config, images: data)
        let result = try trainer.run(workDirectory: nil)
        #expect(result.ticks.last!.loss < result.ticks.first!.loss)
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("ema.pdt")
        try trainer.emaArchive().write(to: url)
        let generator = try ImageGenerator(weightsURL: url, sampler: HeunSampler(steps: 12))
        let samples = generator.generate(first: 0, count: 8, seed: 1)
        let train = (0..<4).map { k in data.bytes[k * px ..< (k + 1) * px].map { Float($0) / 127.5 - 1 } }
        func nearest(_ img: ArraySlice<Float>) -> Float {
            train.map { t in zip(img, t).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Float(px) }.min()!
        }
        var rng = RandomGenerator(seed: 77)
        let sampleDist = (0..<8).map { nearest(samples.data[$0 * px ..< ($0 + 1) * px]) }
        let noiseDist = (0..<8).map { _ in nearest(ArraySlice((0..<px).map { _ in max(-1, min(1, rng.normal())) })) }
        let meanSample = sampleDist.reduce(0, +) / 8, meanNoise = noiseDist.reduce(0, +) / 8
        // Noise is ~1.4 away (MSE) from every training image. The trained model's samples are much closer on
        // average (measured 0.35), and some are near-copies (MSE < 0.1; measured 3 of 8).
        #expect(meanSample < 0.5 * meanNoise, "samples MSE \(meanSample) vs noise \(meanNoise)")
        #expect(sampleDist.filter { $0 < 0.1 }.count >= 2, "near-copies among \(sampleDist)")
        #expect(noiseDist.allSatisfy { $0 > 0.5 })
    }
}
