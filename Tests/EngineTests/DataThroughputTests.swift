import Foundation
import Testing
@testable import Engine

/// Throughput of preparing all of Fashion-MNIST (read + gunzip + pad + write artifact + preview).
/// A measurement, not a check: it runs only when asked,
/// `PDPIPE_DATA_BENCH=1 swift test --skip-build --filter DataThroughput`.
@Suite("Data: throughput (opt-in)")
struct DataThroughputTests {
    static let enabled = ProcessInfo.processInfo.environment["PDPIPE_DATA_BENCH"] != nil
        && FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")

    @Test("prepare all 60,000 Fashion-MNIST training images", .enabled(if: enabled, "set PDPIPE_DATA_BENCH=1 to measure"))
    func fashionMNISTTrain() throws {
        var totals: [Double] = [], loads: [Double] = [], preps: [Double] = []
        for _ in 0..<5 {
            let dir = try makeTemporaryDirectory("bench")
            defer { try? FileManager.default.removeItem(at: dir) }
            let t0 = Date()
            let source = try FashionMNISTSource(split: .train)
            let t1 = Date()
            let manifest = try DatasetPreparation.run(source, options: DatasetOptions(resolution: 32), to: dir, threads: 2)
            let t2 = Date()
            #expect(manifest.count == 60_000)
            loads.append(t1.timeIntervalSince(t0)); preps.append(t2.timeIntervalSince(t1)); totals.append(t2.timeIntervalSince(t0))
        }
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        print(String(format: "fashion-mnist train 60k -> 32x32: total %.3f s (read+gunzip %.3f s, pad+digest+write %.3f s), median of 5",
                     median(totals), median(loads), median(preps)))
    }

    @Test("prepare all 3,926 emoji at 64x64 RGB", .enabled(if: enabled && FileManager.default.fileExists(atPath: EmojiSource.defaultFont.path), "set PDPIPE_DATA_BENCH=1 to measure"))
    func emoji() throws {
        var totals: [Double] = []
        for _ in 0..<3 {
            let dir = try makeTemporaryDirectory("bench")
            defer { try? FileManager.default.removeItem(at: dir) }
            let t0 = Date()
            let manifest = try DatasetPreparation.run(try EmojiSource(), options: DatasetOptions(resolution: 64), to: dir, threads: 2)
            totals.append(Date().timeIntervalSince(t0))
            #expect(manifest.count == 3926)
        }
        print(String(format: "emoji 3926 -> 64x64x3 (decode PNG, composite, Lanczos pad): total %.3f s, median of 3", totals.sorted()[1]))
    }
}
