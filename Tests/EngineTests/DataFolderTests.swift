import Foundation
import Testing
@testable import Engine

@Suite("Data: PNG folders and CIFAR-10 batches")
struct DataFolderTests {
    @Test("folder: recursive, byte-wise sorted, class per subdirectory, any size fitted")
    func folder() throws {
        let dir = try makeTemporaryDirectory("folder")
        defer { try? FileManager.default.removeItem(at: dir) }
        for sub in ["dogs", "cats/inner"] { try FileManager.default.createDirectory(at: dir.appendingPathComponent(sub), withIntermediateDirectories: true) }
        let files = ["dogs/b.png", "cats/inner/z.png", "cats/a.png", "dogs/A.PNG"]
        for (k, name) in files.enumerated() {
            try writePNG(ByteImage(width: 10 + k, height: 6, channels: 3, filledWith: UInt8(k * 40)), to: dir.appendingPathComponent(name))
        }
        try Data("ignored".utf8).write(to: dir.appendingPathComponent("dogs/notes.txt"))
        let source = try PNGFolderSource(directory: dir)
        #expect(source.relativePaths == ["cats/a.png", "cats/inner/z.png", "dogs/A.PNG", "dogs/b.png"])
        #expect(source.labelNames == ["cats", "dogs"] && source.labels == [0, 0, 1, 1])
        let prepared = try DatasetPreparation.prepare(source, options: DatasetOptions(resolution: 8, fit: .centerCropResize))
        #expect(prepared.count == 4 && prepared.channels == 3)
        #expect(prepared.image(at: 0).pixels.allSatisfy { $0 == 80 })  // cats/a.png was written third (k = 2)
    }

    @Test("folder: empty, missing, and mixed gray/colour are errors naming the place")
    func folderErrors() throws {
        let dir = try makeTemporaryDirectory("folder")
        defer { try? FileManager.default.removeItem(at: dir) }
        var error = #expect(throws: DataError.self) { try PNGFolderSource(directory: dir) }
        #expect(error?.message == "\(dir.path): folder contains no .png files")
        error = #expect(throws: DataError.self) { try PNGFolderSource(directory: dir.appendingPathComponent("nope")) }
        #expect(error?.message.contains("nope: image folder not found") == true)

        try writePNG(ByteImage(width: 4, height: 4, channels: 3, filledWith: 1), to: dir.appendingPathComponent("a.png"))
        try writePNG(ByteImage(width: 4, height: 4, channels: 2, filledWith: 2), to: dir.appendingPathComponent("b.png"))
        let source = try PNGFolderSource(directory: dir)
        error = #expect(throws: DataError.self) { try DatasetPreparation.prepare(source, options: DatasetOptions(resolution: 4)) }
        #expect(error?.message.hasPrefix(dir.appendingPathComponent("b.png").path + ": mixed channel counts") == true)
        // Asking for a channel count converts instead: gray+alpha 2 on white -> 2*2/255 + 255*253/255.
        let gray = try DatasetPreparation.prepare(source, options: DatasetOptions(resolution: 4, channels: 1))
        #expect(gray.image(at: 1).pixels.allSatisfy { $0 == UInt8((2.0 * 2 + 255 * 253) / 255 + 0.5) })
        #expect(gray.image(at: 0).pixels.allSatisfy { $0 == 1 })

        try Data([0x89, 0x50]).write(to: dir.appendingPathComponent("c.png"))
        let broken = try PNGFolderSource(directory: dir)
        error = #expect(throws: DataError.self) { try DatasetPreparation.prepare(broken, options: DatasetOptions(resolution: 4, channels: 3)) }
        #expect(error?.message.hasPrefix(dir.appendingPathComponent("c.png").path) == true)
    }

    @Test("CIFAR-10 batches: channel-planar records become HWC images; truncation is an error")
    func cifar() throws {
        let dir = try makeTemporaryDirectory("cifar")
        defer { try? FileManager.default.removeItem(at: dir) }
        var records = [UInt8]()
        var planes: [[UInt8]] = []
        for r in 0..<3 {
            let plane = fixtureBytes(3072, seed: UInt64(r))
            planes.append(plane)
            records += [UInt8(r * 4)] + plane
        }
        try Data(records).write(to: dir.appendingPathComponent("test_batch.bin"))
        let source = try CIFAR10Source(directory: dir, split: .test)
        #expect(source.count == 3 && source.labels == [0, 4, 8] && source.labelNames[8] == "ship")
        let image = try source.image(at: 2)
        // Pixel (y=5, x=7): R, G, B from the three planes.
        let p = 5 * 32 + 7
        #expect(Array(image.pixels[3 * p..<3 * p + 3]) == [planes[2][p], planes[2][1024 + p], planes[2][2048 + p]])

        try Data(records.dropLast(10)).write(to: dir.appendingPathComponent("test_batch.bin"))
        let error = #expect(throws: DataError.self) { try CIFAR10Source(directory: dir, split: .test) }
        #expect(error?.message.hasPrefix(dir.appendingPathComponent("test_batch.bin").path) == true)
        let missing = #expect(throws: DataError.self) { try CIFAR10Source(directory: dir, split: .train) }
        #expect(missing?.message.contains("data_batch_1.bin: file not found") == true)
    }
}
