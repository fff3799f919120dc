import Foundation
@testable import Engine
@testable import Stages

/// Helpers for the train/sample stage tests: a tiny dataset artifact and stage contexts.
enum TrainSampleSupport {
    static func tempDir(_ tag: String) -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("pd-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    /// Six 8x8 RGB images of coloured stripes, written as a dataset artifact.
    static func tinyDataset(in dir: URL) throws -> URL {
        let (n, r, c) = (6, 8, 3)
        var pixels = [UInt8](repeating: 0, count: n * r * r * c)
        for k in 0..<n { for y in 0..<r { for x in 0..<r { for ch in 0..<c {
            pixels[((k * r + y) * r + x) * c + ch] = UInt8(((x + k) % 4 == 0 ? 200 : 30) + ch * 10 + y)
        } } } }
        let manifest = DatasetManifest(source: "test", split: nil, sourceDigest: "0", sourceFiles: nil, sourceFileCount: 0, count: n,
                                       resolution: r, channels: c, labelNames: [], hflip: false, fit: "none", filter: "none",
                                       subset: nil, layout: DatasetArtifact.layout(count: n, imageBytes: r * r * c))
        let out = dir.appendingPathComponent("dataset")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try DatasetArtifact.write(pixels: pixels, labels: Array(repeating: -1, count: n), manifest: manifest, to: out)
        return out
    }

    static func context(name: String, inputs: [String: URL], root: URL,
                        workTag: String = "work", isCancelled: @escaping @Sendable () -> Bool = { false }) -> StageContext {
        let out = root.appendingPathComponent("\(name)-out-\(UInt32.random(in: 0...UInt32.max))")
        try! FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        return StageContext(stageName: name, cellID: name, key: "test", inputs: inputs,
                            outputDirectory: out, workDirectory: root.appendingPathComponent("\(name)-\(workTag)"),
                            projectDirectory: root, threads: 2, emit: { _ in }, isCancelled: isCancelled)
    }

    static let tinyTrain: TrainStage.Config = {
        var c = TrainStage.Config()
        (c.modelChannels, c.channelMult, c.numBlocks, c.attentionLevels, c.batch) = (8, [1, 2], 1, [1], 2)
        (c.kimg, c.lr, c.lrRampupKimg, c.emaKimg, c.checkpointKimg, c.tickKimg) = (0.04, 2e-3, 0.01, 0.01, 0.01, 0.01)
        return c
    }()

    /// Trains `config` on the tiny dataset and returns the context it ran in.
    static func train(_ config: TrainStage.Config = tinyTrain, data: URL, root: URL, input: String = "d",
                      workTag: String = "work", isCancelled: @escaping @Sendable () -> Bool = { false }) throws -> (StageContext, StageOutcome) {
        let ctx = context(name: "train", inputs: [input: data], root: root, workTag: workTag, isCancelled: isCancelled)
        return (ctx, try TrainStage().run(config, context: ctx))
    }
}

/// A counter that flips to "cancelled" after `limit` queries (for interrupting a stage).
final class CancelAfter: @unchecked Sendable {
    private let lock = NSLock()
    private var calls = 0
    let limit: Int
    init(_ limit: Int) { self.limit = limit }
    func callAsFunction() -> Bool { lock.lock(); defer { lock.unlock() }; calls += 1; return calls > limit }
}
