import Foundation
import Testing
@testable import Engine
@testable import Stages

/// featurenet -> refstats -> fid wired by hand as the runner would, on small synthetic sets.
@Suite struct MetricsStageTests {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("pdpipe-metrics-stages-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    /// Labelled pattern images (class = stripes direction or disc), [-1, 1], 32 x 32 gray
    /// (two pyramid levels for SWD).
    static let size = 32
    static func patterns(_ n: Int, seed: UInt64, blur: Bool = false) -> (Tensor, [Int]) {
        var rng = RandomGenerator(seed: seed)
        let s = size
        var data = [Float](repeating: 0, count: n * s * s)
        for i in 0..<n {
            let period = rng.uniform(3, 6), phase = rng.uniform(0, 6.28)
            let (cx, cy, r) = (rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(5, 10))
            for y in 0..<s { for x in 0..<s {
                let v: Bool
                switch i % 3 {
                case 0: v = sinf(Float(y) * 6.28 / period + phase) > 0
                case 1: v = sinf(Float(x) * 6.28 / period + phase) > 0
                default: v = (Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy) < r * r
                }
                data[i * s * s + y * s + x] = v ? 0.8 : -0.8
            } }
        }
        if blur {
            let src = data
            for i in 0..<n { for y in 0..<s { for x in 0..<s {
                var sum: Float = 0, count: Float = 0
                for dy in -2...2 { for dx in -2...2 where (0..<s).contains(y + dy) && (0..<s).contains(x + dx) {
                    sum += src[i * s * s + (y + dy) * s + x + dx]; count += 1
                } }
                data[i * s * s + y * s + x] = sum / count
            } } }
        }
        return (Tensor(shape: [n, 1, s, s], data: data), (0..<n).map { $0 % 3 })
    }

    func artifact(_ name: String, _ images: Tensor, labels: [Int]?, split: String = "train") throws -> URL {
        let dir = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let (n, s) = (images.shape[0], images.shape[2])
        let pixels = images.data.map { UInt8(max(0, min(255, ($0 * 127.5 + 128).rounded(.down)))) }
        let manifest = DatasetManifest(source: "synthetic", split: split, sourceDigest: "", sourceFiles: nil, sourceFileCount: 0,
                                       count: n, resolution: s, channels: 1, labelNames: labels == nil ? [] : ["h", "v", "disc"],
                                       hflip: false, fit: "pad", filter: "box", subset: nil,
                                       layout: DatasetArtifact.layout(count: n, imageBytes: s * s))
        try DatasetArtifact.write(pixels: pixels, labels: labels ?? Array(repeating: -1, count: n), manifest: manifest, to: dir)
        return dir
    }

    func run(_ kind: any StageKind, _ name: String, params: [String: ParamValue], inputs: [String: URL]) throws
        -> (outcome: StageOutcome, output: URL, events: [StageEvent]) {
        let output = root.appendingPathComponent("out-\(name)")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let recorder = EventRecorder()
        let context = StageContext(stageName: name, cellID: name, key: name, inputs: inputs,
                                   outputDirectory: output, workDirectory: root.appendingPathComponent("work-\(name)"),
                                   projectDirectory: root, threads: 2, emit: { recorder.append($0) }, isCancelled: { false })
        return (try kind.run(fields: params, context: context), output, recorder.events)
    }

    final class EventRecorder: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: [StageEvent] = []
        func append(_ e: StageEvent) { lock.lock(); stored.append(e); lock.unlock() }
        var events: [StageEvent] { lock.lock(); defer { lock.unlock() }; return stored }
    }

    @Test func featureNetRefstatsAndFidRankSampleSets() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let (train, trainLabels) = Self.patterns(450, seed: 1)
        let (test, testLabels) = Self.patterns(150, seed: 2)
        let trainURL = try artifact("train", train, labels: trainLabels)
        let testURL = try artifact("test", test, labels: testLabels, split: "test")
        let net = try run(FeatureNetStage(), "featurenet",
                          params: ["steps": .int(60), "batch_size": .int(32), "learning_rate": .double(3e-3), "name": .string("pattern-net")],
                          inputs: ["data": trainURL, "data_test": testURL])
        #expect((net.outcome.metrics["test_accuracy"] ?? 0) > 0.9)
        #expect(net.outcome.metrics["test_images"] == 150)

        let ref = try run(RefStatsStage(), "refstats", params: ["swd_images": .int(200), "kid_features": .int(400)],
                          inputs: ["data": trainURL, "featurenet": net.output])
        #expect(ref.outcome.metrics["images"] == 450)
        #expect(try ExtractorSpec.read(from: ref.output).name == "pattern-net")

        let samples: [(String, Tensor)] = [
            ("real", Self.patterns(300, seed: 3).0),
            ("blurred", Self.patterns(300, seed: 4, blur: true).0),
            ("noise", Tensor(shape: [300, 1, 32, 32], data: { var r = RandomGenerator(seed: 5); return (0..<(300 * 1024)).map { _ in max(-1, min(1, 0.6 * r.normal())) } }())),
        ]
        var fd: [String: Double] = [:], kid: [String: Double] = [:], swd: [String: Double] = [:]
        for (name, images) in samples {
            let url = try artifact("samples-\(name)", images, labels: nil)
            let result = try run(FIDStage(), "fid-\(name)", params: ["kid_subsets": .int(10), "kid_subset_size": .int(200)],
                                 inputs: ["samples": url, "refstats": ref.output])
            let m = result.outcome.metrics
            #expect(m["samples"] == 300)
            #expect(m["FID"] == nil, "only Inception-v3 features may be called FID")
            let (f, k, w) = (try #require(m["FD_pattern-net"]), try #require(m["KID_pattern-net"]), try #require(m["SWD"]))
            (fd[name], kid[name], swd[name]) = (f, k, w)
            #expect(m["SWD_32"] != nil && m["SWD_16"] != nil)
            let progress = result.events.filter { if case .progress = $0 { return true } else { return false } }
            #expect(progress.count == 6, "one progress event per batch of 50")
        }
        for metric in [fd, kid, swd] {
            #expect(metric["real"]! < metric["blurred"]! && metric["blurred"]! < metric["noise"]!, "FD \(fd) KID \(kid) SWD \(swd)")
        }
    }

    @Test func randomCNNNeedsNoFeatureNetAndInceptionNamesItsMissingWeights() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let (train, _) = Self.patterns(120, seed: 1)
        let trainURL = try artifact("train", train, labels: nil)
        let ref = try run(RefStatsStage(), "refstats", params: ["extractor": .string("random-cnn"), "swd_images": .int(0)],
                          inputs: ["data": trainURL])
        let samples = try artifact("samples", Self.patterns(100, seed: 2).0, labels: nil)
        let fid = try run(FIDStage(), "fid", params: ["kid_subsets": .int(5)], inputs: ["samples": samples, "refstats": ref.output])
        #expect(fid.outcome.metrics["FD_random-cnn"] != nil && fid.outcome.metrics["SWD"] == nil)

        // The default featurenet extractor without a featurenet input, and Inception without weights: clear errors.
        #expect { try run(RefStatsStage(), "refstats-fn", params: [:], inputs: ["data": trainURL]) } throws: { error in
            "\(error)".contains("featurenet")
        }
        let missing = root.appendingPathComponent("nowhere/\(InceptionV3.weightsFileName)")
        #expect { try run(RefStatsStage(), "refstats-inc", params: ["extractor": .string("inception-v3"), "weights": .string(missing.path)],
                          inputs: ["data": trainURL]) } throws: { error in
            "\(error)".contains(InceptionV3.weightsFileName) && "\(error)".contains("weights:") && error is StageError
        }
    }

    static let torchAvailable: Bool = {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import torch"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }()

    /// The Inception route end to end, with random weights standing in for the real file
    /// (written by reference/inception_check.py): only this extractor's distance is "FID".
    @Test(.enabled(if: torchAvailable, "python3 with torch not installed"))
    func inceptionRouteReportsFID() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("reference/inception_check.py")
        let weightsDir = root.appendingPathComponent("random-inception")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script.path, weightsDir.path, "--images", "1", "--size", "16"]
        p.standardOutput = FileHandle.nullDevice
        try p.run(); p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let weights = weightsDir.appendingPathComponent("weights.pth")
        let data = try artifact("data", Self.patterns(6, seed: 1).0, labels: nil)
        let samples = try artifact("samples", Self.patterns(5, seed: 2).0, labels: nil)
        let params: [String: ParamValue] = ["extractor": .string("inception-v3"), "weights": .string(weights.path), "swd_images": .int(0)]
        let ref = try run(RefStatsStage(), "refstats", params: params, inputs: ["data": data])
        #expect(try ExtractorSpec.read(from: ref.output).name == "inception-v3")
        #expect(try FeatureStatistics(contentsOf: ref.output).dimension == 2048)
        let fid = try run(FIDStage(), "fid", params: ["weights": .string(weights.path), "kid_subsets": .int(3)],
                          inputs: ["samples": samples, "refstats": ref.output])
        #expect(fid.outcome.metrics["FID"] != nil && fid.outcome.metrics["KID"] != nil)
        #expect(fid.outcome.metrics.keys.allSatisfy { !$0.hasPrefix("FD_") })
    }
}
