import Foundation
import Testing
@testable import Engine
@testable import Stages

/// The sanity numbers of results/metrics-checks.md, on real Fashion-MNIST (32 x 32,
/// padded): dataset -> featurenet -> refstats -> fid, driven through the stage kinds.
/// Minutes of work, so opt-in:
///   PDPIPE_METRICS_CHECKS=1 swift test --filter MetricsChecks
/// (the Engine target is optimised in debug builds, so this measures optimised code).
@Suite struct MetricsChecks {
    static let enabled = ProcessInfo.processInfo.environment["PDPIPE_METRICS_CHECKS"] == "1"
        && FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")

    let root = FileManager.default.temporaryDirectory.appendingPathComponent("pdpipe-metrics-checks-\(UUID().uuidString)")

    func run(_ kind: any StageKind, _ name: String, _ params: [String: ParamValue], _ inputs: [String: URL]) throws -> (metrics: [String: Double], output: URL) {
        let output = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let started = Date()
        let context = StageContext(stageName: name, cellID: name, key: name, inputs: inputs,
                                   outputDirectory: output, workDirectory: root.appendingPathComponent("work-\(name)"),
                                   projectDirectory: root, threads: 2, emit: { event in
                                       if case .log(let line) = event { print("  [\(name)] \(line)") }
                                   }, isCancelled: { false })
        let outcome = try kind.run(fields: params, context: context)
        print(String(format: "  [%@] %.1f s", name, Date().timeIntervalSince(started)))
        return (outcome.metrics, output)
    }

    /// A copy of a dataset artifact with every image transformed ([-1, 1] NCHW in and out).
    func derived(_ name: String, from url: URL, _ transform: (Tensor, Int) -> Tensor) throws -> URL {
        let source = try DatasetArtifact.open(directory: url)
        let (n, r, c) = (source.count, source.resolution, source.channels)
        var pixels = [UInt8](repeating: 0, count: n * r * r * c)
        for start in stride(from: 0, to: n, by: 500) {
            let indices = Array(start..<min(start + 500, n))
            let t = transform(source.batch(indices: indices), start)
            for (b, i) in indices.enumerated() { for ch in 0..<c { for y in 0..<r { for x in 0..<r {
                let v = t.data[((b * c + ch) * r + y) * r + x]
                pixels[((i * r + y) * r + x) * c + ch] = UInt8(max(0, min(255, (v * 127.5 + 128).rounded(.down))))
            } } } }
        }
        let dir = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var manifest = source.manifest
        manifest.source = name
        try DatasetArtifact.write(pixels: pixels, labels: Array(repeating: -1, count: n), manifest: manifest, to: dir)
        return dir
    }

    static func boxBlur3(_ t: Tensor) -> Tensor {
        let (planes, h, w) = (t.shape[0] * t.shape[1], t.shape[2], t.shape[3])
        var out = t
        for p in 0..<planes { for y in 0..<h { for x in 0..<w {
            var sum: Float = 0, count: Float = 0
            for dy in -1...1 { for dx in -1...1 where (0..<h).contains(y + dy) && (0..<w).contains(x + dx) {
                sum += t.data[(p * h + y + dy) * w + x + dx]; count += 1
            } }
            out.data[(p * h + y) * w + x] = sum / count
        } } }
        return out
    }

    @Test(.enabled(if: enabled, "set PDPIPE_METRICS_CHECKS=1 (needs /usr/share/datasets/fashion-mnist)"))
    func fashionMNISTSanityNumbers() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let steps = Int(ProcessInfo.processInfo.environment["PDPIPE_METRICS_CHECKS_STEPS"] ?? "") ?? 1500
        print("Fashion-MNIST metrics checks (featurenet steps \(steps))")
        let train = try run(DatasetStage(), "dataset-train", ["source": .string("fashion-mnist"), "split": .string("train")], [:]).output
        let test = try run(DatasetStage(), "dataset-test", ["source": .string("fashion-mnist"), "split": .string("test")], [:]).output
        let net = try run(FeatureNetStage(), "featurenet", ["steps": .int(steps)], ["train": train, "test": test])
        print(String(format: "| featurenet | fmnist-classifier test accuracy | %.4f (%d test images) |",
                     net.metrics["test_accuracy"]!, Int(net.metrics["test_images"]!)))

        let blurred = try derived("test-blurred", from: test) { t, _ in Self.boxBlur3(t) }
        let noise = try derived("noise", from: test) { t, start in
            var rng = RandomGenerator(seed: 7, stream: UInt64(start))
            return Tensor(shape: t.shape, data: t.data.map { _ in max(-1, min(1, 0.5 * rng.normal())) })
        }
        for extractor in ["featurenet", "random-cnn"] {
            let ref = try run(RefStatsStage(), "refstats-\(extractor)", ["extractor": .string(extractor)],
                              extractor == "featurenet" ? ["data": train, "net": net.output] : ["data": train])
            let name = try ExtractorSpec.read(from: ref.output).name
            print("| set vs train statistics (\(name)) | N | FD_\(name) | KID_\(name) | SWD |")
            for (label, samples) in [("test split", test), ("test split, 3x3 box blur", blurred), ("Gaussian noise", noise)] {
                let m = try run(FIDStage(), "fid-\(extractor)-\(label)", [:], ["samples": samples, "refstats": ref.output]).metrics
                print(String(format: "| %@ | %d | %.4f | %.5f ± %.5f | %.2f |", label, Int(m["samples"]!), m["FD_\(name)"]!,
                             m["KID_\(name)"]!, m["KID_\(name)_std"]!, m["SWD"]!))
            }
            guard extractor == "featurenet" else { continue }
            // Small-N bias: FD of N held-out (test) images against the full train statistics.
            print("| N held-out test images | FD_\(name) mean ± std over 3 subsets | KID_\(name) mean |")
            for n in [100, 250, 500, 1000, 2500, 5000, 10000] {
                var fds: [Double] = [], kids: [Double] = []
                for seed in 0..<(n == 10000 ? 1 : 3) {
                    let m = try run(FIDStage(), "fid-n\(n)-s\(seed)", ["max_images": .int(n), "seed": .int(seed), "swd": .bool(false)],
                                    ["samples": test, "refstats": ref.output]).metrics
                    fds.append(m["FD_\(name)"]!); kids.append(m["KID_\(name)"]!)
                }
                let mean = fds.reduce(0, +) / Double(fds.count)
                let std = (fds.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(max(fds.count - 1, 1))).squareRoot()
                print(String(format: "| %d | %.4f ± %.4f | %.5f |", n, mean, std, kids.reduce(0, +) / Double(kids.count)))
            }
        }
    }
}
