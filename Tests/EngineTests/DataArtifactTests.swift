import Foundation
import Testing
@testable import Engine

/// A source of generated images, for preparation tests.
struct GeneratedSource: ImageSource {
    let sourceName = "generated"
    let images: [ByteImage]
    var count: Int { images.count }
    var labels: [Int] { (0..<images.count).map { $0 % 3 } }
    let labelNames = ["a", "b", "c"]
    var files: [URL] = []
    let background: UInt8 = 0
    func image(at index: Int) throws -> ByteImage { images[index] }
}

@Suite("Data: seeded subsets, artifact, grids")
struct DataArtifactTests {
    @Test("same seed -> same subset; distinct, ascending, the requested size; other seeds differ")
    func subsetDeterminism() {
        let a = DatasetPreparation.subsetIndices(count: 60_000, maxImages: 1000, seed: 3)
        #expect(a == DatasetPreparation.subsetIndices(count: 60_000, maxImages: 1000, seed: 3))
        #expect(a.count == 1000 && Set(a).count == 1000 && a == a.sorted() && a.last! < 60_000)
        #expect(a != DatasetPreparation.subsetIndices(count: 60_000, maxImages: 1000, seed: 4))
        #expect(DatasetPreparation.subsetIndices(count: 10, maxImages: 50, seed: 0) == Array(0..<10))
        // Roughly uniform: the subset's mean index is near the middle.
        let mean = Double(a.reduce(0, +)) / 1000
        #expect(abs(mean - 30_000) < 3 * 17_320 / 1000.0.squareRoot())
    }

    @Test("prepared images round-trip through images.bin; batch is NCHW x/127.5-1; hflip mirrors")
    func artifactRoundTrip() throws {
        let dir = try makeTemporaryDirectory("artifact")
        defer { try? FileManager.default.removeItem(at: dir) }
        let images = (0..<70).map { ByteImage(width: 8, height: 8, channels: 3, pixels: fixtureBytes(192, seed: UInt64($0))) }
        let source = GeneratedSource(images: images)
        let options = DatasetOptions(resolution: 8, hflip: true)
        // Several threads and a single thread give the same bytes.
        let manifest = try DatasetPreparation.run(source, options: options, to: dir, threads: 3)
        let single = try DatasetPreparation.prepare(source, options: options, threads: 1)
        #expect(manifest.count == 70 && manifest.channels == 3 && manifest.resolution == 8 && manifest.hflip)

        let artifact = try DatasetArtifact.open(directory: dir)
        #expect(artifact.count == 70 && artifact.trainingCount == 140 && artifact.labelNames == ["a", "b", "c"])
        #expect(Array(artifact.image(at: 69)) == images[69].pixels)
        #expect((0..<70).allSatisfy { artifact.label(at: $0) == $0 % 3 })
        #expect((0..<70).allSatisfy { Array(artifact.image(at: $0)) == single.image(at: $0).pixels })

        let batch = artifact.batch(indices: [5, 2])
        #expect(batch.shape == [2, 3, 8, 8])
        // Element (n=0, c=2, y=3, x=6) is pixel (3, 6) channel 2 of image 5.
        let pixel: UInt8 = images[5].pixels[(3 * 8 + 6) * 3 + 2]
        let element: Float = batch.data[2 * 64 + 3 * 8 + 6]
        #expect(element == Float(pixel) / 127.5 - 1)
        let mirrored = artifact.trainingBatch(indices: [70 + 5])
        #expect(mirrored.data == byteImagesToTensorData(images[5].flippedHorizontally()))
        #expect(artifact.trainingLabels(indices: [75, 4]) == [2, 1])

        let preview = try readPNG(dir.appendingPathComponent("preview.png"))
        #expect(preview.width == 64 && preview.height == 64)  // 8 columns x 8 rows of 8x8
        #expect(preview.pixels[0..<24] == images[0].pixels[0..<24])
    }

    @Test("a truncated images.bin is refused, naming the file")
    func truncatedArtifact() throws {
        let dir = try makeTemporaryDirectory("artifact")
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = GeneratedSource(images: [ByteImage(width: 4, height: 4, channels: 1, filledWith: 9)])
        try DatasetPreparation.run(source, options: DatasetOptions(resolution: 4), to: dir)
        let url = dir.appendingPathComponent("images.bin")
        let bytes = try Data(contentsOf: url)
        try bytes.prefix(bytes.count - 3).write(to: url)
        let error = #expect(throws: DataError.self) { try DatasetArtifact.open(directory: dir) }
        #expect(error?.message.hasPrefix(url.path) == true)
    }

    @Test("grid tiles images row-major and the tensor grid maps [-1, 1] to 0...255")
    func grid() throws {
        let images = (0..<5).map { ByteImage(width: 2, height: 3, channels: 1, filledWith: UInt8($0 * 50)) }
        let grid = imageGrid(images, columns: 2)
        #expect(grid.width == 4 && grid.height == 9)
        #expect(grid.pixels[0] == 0 && grid.pixels[2] == 50 && grid.pixels[3 * 4] == 100 && grid.pixels[6 * 4 + 2] == 0)
        let tensor = Tensor(shape: [1, 1, 1, 3], data: [-1, 0, 1])
        #expect(byteImages(fromNCHW: tensor)[0].pixels == [0, 128, 255])
    }
}

/// One image as NCHW floats in [-1, 1], written independently of `DatasetArtifact.batch`.
private func byteImagesToTensorData(_ image: ByteImage) -> [Float] {
    var out = [Float]()
    for c in 0..<image.channels {
        for p in 0..<(image.width * image.height) { out.append(Float(image.pixels[p * image.channels + c]) / 127.5 - 1) }
    }
    return out
}
