import Foundation
import Testing
@testable import Engine
@testable import Stages

private let fashionInstalled = FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
private let emojiInstalled = FileManager.default.fileExists(atPath: EmojiSource.defaultFont.path)

@Suite("Stage: dataset")
struct DatasetStageTests {
    let kind = DatasetStage()

    /// Runs the stage like the runner does: defaults filled in, an empty output directory.
    func run(_ overrides: [String: ParamValue], project: URL, cancelled: Bool = false) throws -> (URL, StageOutcome) {
        let output = project.appendingPathComponent("out-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let context = StageContext(stageName: "data", cellID: "data", key: String(repeating: "0", count: 64),
                                   inputs: [:], outputDirectory: output, workDirectory: project.appendingPathComponent("work"),
                                   projectDirectory: project, threads: 2, emit: { _ in }, isCancelled: { cancelled })
        return (output, try kind.run(fields: overrides, context: context))
    }

    func makeProject() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pdpipe-stage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url.appendingPathComponent("images/sub"), withIntermediateDirectories: true)
        for k in 0..<12 {
            let image = ByteImage(width: 20 + k, height: 16, channels: 4,
                                  pixels: (0..<((20 + k) * 16 * 4)).map { UInt8(truncatingIfNeeded: $0 * 7 + k) })
            try writePNG(image, to: url.appendingPathComponent(k % 2 == 0 ? "images/img\(k).png" : "images/sub/img\(k).png"))
        }
        return url
    }

    @Test("run() on a generated PNG folder writes a readable, deterministic artifact")
    func folderArtifact() throws {
        let project = try makeProject()
        defer { try? FileManager.default.removeItem(at: project) }
        let params: [String: ParamValue] = ["source": .string("png-folder"), "path": .string("images"), "resolution": .int(8),
                                            "fit": .string("center-crop-resize"), "max_images": .int(5), "seed": .int(1)]
        let (output, outcome) = try run(params, project: project)
        #expect(outcome.metrics["images"] == 5)
        let artifact = try DatasetArtifact.open(directory: output)
        #expect(artifact.count == 5 && artifact.resolution == 8 && artifact.channels == 3)
        #expect(artifact.manifest.source == "png-folder" && artifact.manifest.sourceFileCount == 12)
        #expect(artifact.manifest.subset == DatasetManifest.Subset(maxImages: 5, seed: 1, sourceCount: 12))
        #expect(artifact.batch(indices: [0, 4]).shape == [2, 3, 8, 8])
        #expect(FileManager.default.fileExists(atPath: output.appendingPathComponent("preview.png").path))
        // Same params -> the same bytes (the runner's output digest, hence downstream keys, is stable).
        let (again, _) = try run(params, project: project)
        for file in ["images.bin", "manifest.json", "preview.png"] {
            #expect(try Data(contentsOf: output.appendingPathComponent(file)) == Data(contentsOf: again.appendingPathComponent(file)))
        }
        let (otherSeed, _) = try run(params.merging(["seed": .int(2)]) { $1 }, project: project)
        #expect(try Data(contentsOf: output.appendingPathComponent("images.bin")) != Data(contentsOf: otherSeed.appendingPathComponent("images.bin")))
    }

    @Test("bad input becomes a StageError naming the file; cancellation a StageCancelled")
    func errors() throws {
        let project = try makeProject()
        defer { try? FileManager.default.removeItem(at: project) }
        let missing = #expect(throws: StageError.self) {
            try run(["source": .string("png-folder"), "path": .string("nowhere")], project: project)
        }
        #expect(missing?.message.contains(project.appendingPathComponent("nowhere").path) == true)
        let font = project.appendingPathComponent("plain.ttf")
        try Data([0, 1, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 6)).write(to: font)
        let noCBDT = #expect(throws: StageError.self) { try run(["source": .string("emoji"), "path": .string("plain.ttf")], project: project) }
        #expect(noCBDT?.message == "\(font.path): font has no CBLC and CBDT table (not a colour bitmap font)")
        #expect(throws: StageCancelled.self) {
            try run(["source": .string("png-folder"), "path": .string("images")], project: project, cancelled: true)
        }
    }

    @Test("validation and external paths")
    func validation() {
        var cifar = DatasetStage.Config()
        cifar.source = .cifar10
        #expect(kind.validate(cifar).map(\.field) == ["path"])
        var emojiTest = DatasetStage.Config()
        (emojiTest.source, emojiTest.split) = (.emoji, .test)
        #expect(kind.validate(emojiTest).map(\.field) == ["split"])
        let project = URL(fileURLWithPath: "/p")
        #expect(kind.externalPaths(["source": .string("fashion-mnist"), "path": .string(""), "split": .string("test")], projectDirectory: project).map(\.path)
                == ["/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"])
        #expect(kind.externalPaths(["source": .string("png-folder"), "path": .string("imgs")], projectDirectory: project).map(\.path) == ["/p/imgs"])
    }

    @Test("Fashion-MNIST defaults: 28x28 padded to 32x32 with black, labels kept",
          .enabled(if: fashionInstalled, "dataset-fashion-mnist is not installed"))
    func fashionMNIST() throws {
        let project = try makeProject()
        defer { try? FileManager.default.removeItem(at: project) }
        let (output, _) = try run(["source": .string("fashion-mnist"), "split": .string("test"), "max_images": .int(300)], project: project)
        let artifact = try DatasetArtifact.open(directory: output)
        #expect(artifact.count == 300 && artifact.resolution == 32 && artifact.channels == 1)
        #expect(artifact.labelNames.count == 10)
        let source = try FashionMNISTSource(split: .test)
        let chosen = DatasetPreparation.subsetIndices(count: 10_000, maxImages: 300, seed: 0)
        let original = try source.image(at: chosen[7])
        let stored = Array(artifact.image(at: 7))
        #expect(artifact.label(at: 7) == source.labels[chosen[7]])
        for y in 0..<32 {
            for x in 0..<32 {
                let inside = (2..<30).contains(x) && (2..<30).contains(y)
                #expect(stored[y * 32 + x] == (inside ? original.pixels[(y - 2) * 28 + x - 2] : 0))
            }
        }
    }

    @Test("Noto Color Emoji: RGB on white at 32x32",
          .enabled(if: emojiInstalled, "fonts-noto-color-emoji is not installed"))
    func emoji() throws {
        let project = try makeProject()
        defer { try? FileManager.default.removeItem(at: project) }
        let (output, _) = try run(["source": .string("emoji"), "max_images": .int(64)], project: project)
        let artifact = try DatasetArtifact.open(directory: output)
        #expect(artifact.count == 64 && artifact.channels == 3 && artifact.resolution == 32)
        #expect(artifact.manifest.subset?.sourceCount == 3926)
        // pad: 136x128 shrinks to 32x30, so the top row is the white background.
        #expect(Array(artifact.image(at: 0)[0..<96]).allSatisfy { $0 == 255 })
    }
}
