import Foundation
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A prepared data set on disk, read through a memory mapping.
///
/// Directory contents:
/// - `images.bin`: a 64-byte header (magic `PDDATA01`, then little-endian UInt64 count, height,
///   width, channels, pixel offset, label offset, 0), the pixels as uint8 NHWC from byte 64, then
///   one little-endian Int32 label per image (-1 = unlabelled), 8-byte aligned.
/// - `manifest.json`: `DatasetManifest` (source, digests, geometry, label names, the layout).
/// - `preview.png`: a grid of the first 64 images.
public final class DatasetArtifact: @unchecked Sendable {
    // @unchecked: the mapping is read-only and never changes after `open`.
    public static let imagesFileName = "images.bin"
    public static let manifestFileName = "manifest.json"
    public static let previewFileName = "preview.png"
    public static let formatVersion = 1
    static let magic = Array("PDDATA01".utf8)
    static let headerSize = 64

    public let manifest: DatasetManifest
    /// Stored images (without the virtual mirror images of `hflip`).
    public var count: Int { manifest.count }
    public var resolution: Int { manifest.resolution }
    public var channels: Int { manifest.channels }
    public var labelNames: [String] { manifest.labelNames }
    public var hflip: Bool { manifest.hflip }
    /// Images training draws from: `count`, doubled by mirror images when `hflip` is set.
    public var trainingCount: Int { hflip ? 2 * count : count }

    private let mapping: UnsafeRawBufferPointer
    private let pixels: UnsafeBufferPointer<UInt8>
    private let labelStorage: UnsafeRawBufferPointer

    // MARK: writing

    /// Writes `images.bin` and `manifest.json` into `directory` (which must exist).
    /// `pixels` holds `count` images of resolution x resolution x channels, NHWC.
    public static func write(pixels: [UInt8], labels: [Int], manifest: DatasetManifest, to directory: URL) throws {
        let imageBytes = manifest.resolution * manifest.resolution * manifest.channels
        precondition(pixels.count == manifest.count * imageBytes && labels.count == manifest.count)
        let layout = layout(count: manifest.count, imageBytes: imageBytes)
        var manifest = manifest
        manifest.layout = layout

        var file = [UInt8]()
        file.reserveCapacity(layout.labelOffset + layout.labelBytes)
        file += magic
        for word in [manifest.count, manifest.resolution, manifest.resolution, manifest.channels,
                     layout.pixelOffset, layout.labelOffset, 0] {
            withUnsafeBytes(of: UInt64(word).littleEndian) { file += $0 }
        }
        file += [UInt8](repeating: 0, count: headerSize - file.count)
        file += pixels
        file += [UInt8](repeating: 0, count: layout.labelOffset - file.count)
        for label in labels { withUnsafeBytes(of: Int32(label).littleEndian) { file += $0 } }

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        do {
            try Data(file).write(to: directory.appendingPathComponent(imagesFileName))
            try (encoder.encode(manifest) + Data("\n".utf8)).write(to: directory.appendingPathComponent(manifestFileName))
        } catch {
            throw DataError("\(directory.path): cannot write the dataset artifact (\(error.localizedDescription))")
        }
    }

    static func layout(count: Int, imageBytes: Int) -> DatasetManifest.Layout {
        let pixelBytes = count * imageBytes
        let labelOffset = (headerSize + pixelBytes + 7) / 8 * 8
        return DatasetManifest.Layout(pixelOffset: headerSize, pixelBytes: pixelBytes,
                                      labelOffset: labelOffset, labelBytes: 4 * count)
    }

    // MARK: reading

    /// Maps `images.bin` read-only and checks it against `manifest.json`.
    public static func open(directory: URL) throws -> DatasetArtifact {
        try DatasetArtifact(directory: directory)
    }

    private init(directory: URL) throws {
        let manifestURL = directory.appendingPathComponent(Self.manifestFileName)
        let imagesURL = directory.appendingPathComponent(Self.imagesFileName)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            manifest = try decoder.decode(DatasetManifest.self, from: Data(contentsOf: manifestURL))
        } catch {
            throw DataError("\(manifestURL.path): not a readable dataset manifest (\(error))")
        }
        guard manifest.format == "pdpipe-dataset", manifest.formatVersion == Self.formatVersion else {
            throw DataError("\(manifestURL.path): dataset format \(manifest.format) v\(manifest.formatVersion) is not pdpipe-dataset v\(Self.formatVersion)")
        }
        let fd = openReadOnly(imagesURL.path)
        guard fd >= 0 else { throw DataError("\(imagesURL.path): cannot open (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw DataError("\(imagesURL.path): cannot stat") }
        let size = Int(info.st_size)
        let expected = Self.layout(count: manifest.count, imageBytes: manifest.resolution * manifest.resolution * manifest.channels)
        guard expected == manifest.layout, size == expected.labelOffset + expected.labelBytes else {
            throw DataError("\(imagesURL.path): \(size) bytes does not match the manifest's layout (truncated or foreign file)")
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw DataError("\(imagesURL.path): mmap failed (\(String(cString: strerror(errno))))")
        }
        mapping = UnsafeRawBufferPointer(start: base, count: size)
        let header = Array(mapping[0..<Self.headerSize])
        let words = (0..<7).map { i in (0..<8).reduce(UInt64(0)) { $0 | UInt64(header[8 + 8 * i + $1]) << (8 * $1) } }
        guard Array(header[0..<8]) == Self.magic,
              words[0..<6].map(Int.init) == [manifest.count, manifest.resolution, manifest.resolution, manifest.channels,
                                              expected.pixelOffset, expected.labelOffset] else {
            munmap(base, size)
            throw DataError("\(imagesURL.path): header does not match \(Self.manifestFileName)")
        }
        pixels = UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self) + expected.pixelOffset, count: expected.pixelBytes)
        labelStorage = UnsafeRawBufferPointer(start: base + expected.labelOffset, count: expected.labelBytes)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: mapping.baseAddress), mapping.count) }

    /// The index-th stored image, HWC uint8, pointing into the mapping (valid while `self` lives).
    public func image(at index: Int) -> UnsafeBufferPointer<UInt8> {
        precondition(index >= 0 && index < count, "image \(index) out of 0..<\(count)")
        let n = resolution * resolution * channels
        return UnsafeBufferPointer(rebasing: pixels[index * n..<(index + 1) * n])
    }

    /// Label of a stored image (-1 when unlabelled).
    public func label(at index: Int) -> Int {
        precondition(index >= 0 && index < count, "label \(index) out of 0..<\(count)")
        return Int(Int32(littleEndian: labelStorage.loadUnaligned(fromByteOffset: 4 * index, as: Int32.self)))
    }

    /// Stored images as an NCHW Float tensor scaled to [-1, 1] (x / 127.5 - 1).
    public func batch(indices: [Int]) -> Tensor {
        batch(indices.map { ($0, false) })
    }

    /// Like `batch(indices:)` over `0..<trainingCount`: index `count + i` is image i mirrored.
    public func trainingBatch(indices: [Int]) -> Tensor {
        batch(indices.map { $0 >= count && hflip ? ($0 - count, true) : ($0, false) })
    }

    /// Labels for `trainingBatch` indices.
    public func trainingLabels(indices: [Int]) -> [Int] {
        indices.map { label(at: $0 >= count && hflip ? $0 - count : $0) }
    }

    private func batch(_ items: [(index: Int, mirrored: Bool)]) -> Tensor {
        let r = resolution, c = channels, plane = r * r
        var data = [Float](repeating: 0, count: items.count * c * plane)
        data.withUnsafeMutableBufferPointer { out in
            for (b, item) in items.enumerated() {
                let src = image(at: item.index)
                let dst = out.baseAddress! + b * c * plane
                for y in 0..<r {
                    for x in 0..<r {
                        let sx = item.mirrored ? r - 1 - x : x
                        for ch in 0..<c {
                            dst[ch * plane + y * r + x] = Float(src[(y * r + sx) * c + ch]) / 127.5 - 1
                        }
                    }
                }
            }
        }
        return Tensor(shape: [items.count, c, r, r], data: data)
    }
}

/// `open(2)`, outside the class whose `open(directory:)` would shadow it.
private func openReadOnly(_ path: String) -> Int32 { open(path, O_RDONLY) }
