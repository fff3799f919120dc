import Foundation
import Testing
@testable import Engine

@Suite struct MetricsInceptionTests {
    /// Our InceptionV3 against the PyTorch FID Inception (reference/fid_inception.py)
    /// with the same random weights, on random images at 40 x 40 (so the resize to
    /// 299 is part of the check). The weights pass through torch.save and our reader.
    @Test(.enabled(if: MetricsTorchCheckpointTests.torchAvailable, "python3 with torch not installed"))
    func matchesPyTorchReferenceWithRandomWeights() throws {
        let dir = try MetricsPythonReference.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("reference/inception_check.py")
        let (n, size) = (2, 40)
        _ = try MetricsPythonReference.run("import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
                                           arguments: [script.path, dir.path, "--images", "\(n)", "--size", "\(size)"])
        let loadStart = Date()
        let net = try InceptionV3(contentsOf: dir.appendingPathComponent("weights.pth"))
        let loadSeconds = Date().timeIntervalSince(loadStart)
        var seconds: [Double] = []
        let images = try RawArrayFile.read(Float.self, from: dir.appendingPathComponent("images.f32"), count: n * 3 * size * size)
        let reference = try RawArrayFile.read(Float.self, from: dir.appendingPathComponent("features.f32"), count: n * 2048)
        var maxDiff: Float = 0
        for i in 0..<n {
            // The reference takes [0, 1] and maps to [-1, 1]; ours takes [-1, 1].
            let pixels = images[(i * 3 * size * size)..<((i + 1) * 3 * size * size)].map { 2 * $0 - 1 }
            let start = Date()
            let ours = net.features(FeatureMap(data: pixels, channels: 3, height: size, width: size))
            seconds.append(Date().timeIntervalSince(start))
            for j in 0..<2048 { maxDiff = max(maxDiff, abs(ours[j] - reference[i * 2048 + j])) }
        }
        let scale = reference.map(abs).max()!
        print("Inception-v3 vs PyTorch reference: max |diff| \(maxDiff), max |feature| \(scale); "
              + "weights load \(loadSeconds) s, per image \(seconds) s")
        #expect(maxDiff < 1e-4 * scale)
    }
}
