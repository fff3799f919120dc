import Foundation
import Testing
@testable import Engine

private let fashionDirectory = FashionMNISTSource.defaultDirectory
private let fashionInstalled = FileManager.default.fileExists(
    atPath: fashionDirectory.appendingPathComponent("train-images-idx3-ubyte.gz").path)

@Suite("Data: gzip'd IDX and Fashion-MNIST")
struct DataIDXTests {
    /// Writes a tiny Fashion-MNIST-shaped split (IDX built byte by byte here, gzip'd by zlib).
    func writeFixture(in directory: URL, count: Int, rows: Int = 28, columns: Int = 28) throws -> (pixels: [UInt8], labels: [UInt8]) {
        let pixels = fixtureBytes(count * rows * columns, seed: 7)
        let labels = (0..<count).map { UInt8($0 % 10) }
        func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
        let imageIDX = [0, 0, 8, 3] + be32(count) + be32(rows) + be32(columns) + pixels
        let labelIDX = [0, 0, 8, 1] + be32(count) + labels
        try Data(zlibGzip(imageIDX)).write(to: directory.appendingPathComponent("train-images-idx3-ubyte.gz"))
        try Data(zlibGzip(labelIDX)).write(to: directory.appendingPathComponent("train-labels-idx1-ubyte.gz"))
        return (pixels, labels)
    }

    @Test("IDX round trip: generated gzip'd files read back pixel for pixel")
    func roundTrip() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (pixels, labels) = try writeFixture(in: dir, count: 37)
        let source = try FashionMNISTSource(directory: dir, split: .train)
        #expect(source.count == 37)
        #expect(source.labels == labels.map(Int.init))
        for i in [0, 5, 36] {
            let image = try source.image(at: i)
            #expect(image.width == 28 && image.height == 28 && image.channels == 1)
            #expect(image.pixels == Array(pixels[i * 784..<(i + 1) * 784]))
        }
        // serialized() is the inverse of parsing.
        let array = IDXArray(dimensions: [2, 3], bytes: [1, 2, 3, 4, 5, 6])
        #expect(try IDXArray(parsing: array.serialized(), name: "x") == array)
        // Gzip.compress output is readable by the decompressor, including an empty payload.
        #expect(try Gzip.decompress(Gzip.compress(pixels), name: "x") == pixels)
        #expect(try Gzip.decompress(zlibGzip([]), name: "x") == [])
    }

    @Test("truncated gzip, truncated IDX and missing files are errors naming the file")
    func badFiles() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try writeFixture(in: dir, count: 20)
        let images = dir.appendingPathComponent("train-images-idx3-ubyte.gz")
        let whole = try [UInt8](Data(contentsOf: images))

        try Data(whole[0..<(whole.count / 2)]).write(to: images)
        var error = #expect(throws: DataError.self) { try FashionMNISTSource(directory: dir, split: .train) }
        #expect(error?.message.contains(images.path) == true)
        #expect(error?.message.contains("truncated") == true)

        // A complete gzip stream whose IDX payload stops short.
        let idx = try Gzip.decompress(whole, name: "fixture")
        try Data(zlibGzip(Array(idx.dropLast(100)))).write(to: images)
        error = #expect(throws: DataError.self) { try FashionMNISTSource(directory: dir, split: .train) }
        #expect(error?.message.contains(images.path) == true)
        #expect(error?.message.contains("IDX data truncated") == true)

        error = #expect(throws: DataError.self) { try FashionMNISTSource(directory: dir, split: .test) }
        #expect(error?.message.contains("t10k-images-idx3-ubyte.gz: file not found") == true)
    }

    @Test("the installed Fashion-MNIST has 60,000 + 10,000 labelled 28x28 images",
          .enabled(if: fashionInstalled, "dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist)"))
    func realFashionMNIST() throws {
        let test = try FashionMNISTSource(split: .test)
        #expect(test.count == 10_000)
        // The published label counts are 1,000 per class in the test split.
        #expect((0..<10).allSatisfy { c in test.labels.filter { $0 == c }.count == 1000 })
        let train = try FashionMNISTSource(split: .train)
        #expect(train.count == 60_000)
        #expect(train.labels[0] == 9)  // the first training image is an ankle boot
        #expect(train.labelNames[9] == "Ankle boot")
    }
}
