import Foundation
import Testing
@testable import Engine
@testable import Stages

/// Checks (a)-(c) of issue 14 (results/patch-fd-checks.md), on real Fashion-MNIST 32 x 32: the
/// patch FD of real test images, of mosaics of real R/4 patches, of blurred test images and of
/// noise, against train-set patch statistics, beside the full-image FD. Minutes of work, opt-in:
///   PDPIPE_PATCH_CHECKS=1 swift test --filter PatchFDChecks
/// PDPIPE_PATCH_CHECKS_REF (reference images, default 2000), _TEST (evaluated images, 500) and
/// _STEPS (feature-network steps, 500) set the scale.
@Suite struct PatchFDChecks {
    static let environment = ProcessInfo.processInfo.environment
    static let enabled = environment["PDPIPE_PATCH_CHECKS"] == "1"
        && FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
    static func setting(_ name: String, _ fallback: Int) -> Int { Int(environment["PDPIPE_PATCH_CHECKS_\(name)"] ?? "") ?? fallback }

    let checks = MetricsChecks()

    /// Each image a 4 x 4 grid of R/4 tiles, every tile cut from a random image of `url` at a random
    /// position: real local statistics, no global layout.
    func mosaics(from url: URL, seed: UInt64) throws -> URL {
        try checks.derived("mosaic", from: url) { t, start in
            let (n, c, r) = (t.shape[0], t.shape[1], t.shape[2]), q = r / 4
            var rng = RandomGenerator(seed: seed, stream: UInt64(start))
            var out = t
            for i in 0..<n { for ty in 0..<4 { for tx in 0..<4 {
                let (j, y0, x0) = (rng.integer(upTo: n - 1), rng.integer(upTo: r - q), rng.integer(upTo: r - q))
                for ch in 0..<c { for y in 0..<q { for x in 0..<q {
                    out.data[((i * c + ch) * r + ty * q + y) * r + tx * q + x] = t.data[((j * c + ch) * r + y0 + y) * r + x0 + x]
                } } }
            } } }
            return out
        }
    }

    @Test(.enabled(if: enabled, "set PDPIPE_PATCH_CHECKS=1 (needs /usr/share/datasets/fashion-mnist)"))
    func realMosaicBlurredNoise() throws {
        defer { try? FileManager.default.removeItem(at: checks.root) }
        let (refImages, testImages, steps) = (Self.setting("REF", 2000), Self.setting("TEST", 500), Self.setting("STEPS", 500))
        print("Patch FD checks: \(refImages) reference (train) images, \(testImages) test images, featurenet steps \(steps)")
        let train = try checks.run(DatasetStage(), "dataset-train", ["source": .string("fashion-mnist"), "split": .string("train")], [:]).output
        let test = try checks.run(DatasetStage(), "dataset-test", ["source": .string("fashion-mnist"), "split": .string("test"),
                                                                   "max_images": .int(testImages)], [:]).output
        let net = try checks.run(FeatureNetStage(), "featurenet", ["steps": .int(steps)], ["train": train, "test": test])
        print(String(format: "featurenet test accuracy %.4f", net.metrics["test_accuracy"]!))
        let sets = [
            ("real (test split)", test),
            ("mosaic of real 8x8 patches", try mosaics(from: test, seed: 3)),
            ("blurred (3x3 box)", try checks.derived("blurred", from: test) { t, _ in MetricsChecks.boxBlur3(t) }),
            ("noise (Gaussian, sigma 0.5)", try checks.derived("noise", from: test) { t, start in
                var rng = RandomGenerator(seed: 7, stream: UInt64(start))
                return Tensor(shape: t.shape, data: t.data.map { _ in max(-1, min(1, 0.5 * rng.normal())) })
            }),
        ]
        for extractor in ["featurenet", "random-cnn"] {
            let inputs = extractor == "featurenet" ? ["data": train, "net": net.output] : ["data": train]
            let ref = try checks.run(RefStatsStage(), "refstats-\(extractor)", ["extractor": .string(extractor), "max_images": .int(refImages),
                                                                                "swd_images": .int(0)], inputs)
            let patches = try checks.run(PatchStatsStage(), "patchstats-\(extractor)", ["extractor": .string(extractor),
                                                                                        "max_images": .int(refImages)], inputs)
            let name = try ExtractorSpec.read(from: ref.output).name
            print("| \(name): set | FD_\(name) (full image) | PatchFD_8 | PatchFD_16 | PatchFD_32 |")
            for (label, url) in sets {
                let fd = try checks.run(FIDStage(), "fid-\(extractor)-\(label)", ["swd": .bool(false), "kid_subset_size": .int(100)],
                                        ["samples": url, "refstats": ref.output]).metrics
                let pfd = try checks.run(PatchFDStage(), "patchfd-\(extractor)-\(label)", [:], ["samples": url, "patchstats": patches.output]).metrics
                print(String(format: "| %@ | %.3f | %.3f | %.3f | %.3f |", label, fd["FD_\(name)"]!,
                             pfd["PatchFD_8_\(name)"]!, pfd["PatchFD_16_\(name)"]!, pfd["PatchFD_32_\(name)"]!))
            }
        }
    }
}
