import Crypto
import Foundation

/// `manifest.json` of a dataset artifact: what the images are and where they sit in `images.bin`.
public struct DatasetManifest: Codable, Sendable, Equatable {
    public struct SourceFile: Codable, Sendable, Equatable {
        public var path: String
        public var bytes: Int
        public var sha256: String
    }

    public var format = "pdpipe-dataset"
    public var formatVersion = DatasetArtifact.formatVersion
    /// `fashion-mnist`, `emoji`, `png-folder`, `cifar10`.
    public var source: String
    public var split: String?
    /// SHA-256 over the `sha256  path` lines of all source files (sha256sum's format).
    public var sourceDigest: String
    /// Listed individually when there are few (a PNG folder only contributes `sourceDigest`).
    public var sourceFiles: [SourceFile]?
    public var sourceFileCount: Int
    public var count: Int
    public var resolution: Int
    public var channels: Int
    /// Class names; empty when the source is unlabelled (labels are then -1).
    public var labelNames: [String]
    /// Horizontal-flip augmentation: training draws from `2 * count` images, the second half
    /// being mirror images (EDM's `--xflip`); nothing extra is stored.
    public var hflip: Bool
    public var fit: String
    public var filter: String
    /// Seeded subset, when `maxImages` was smaller than the source.
    public var subset: Subset?
    /// Byte layout of `images.bin`.
    public var layout: Layout

    public struct Subset: Codable, Sendable, Equatable {
        public var maxImages: Int
        public var seed: UInt64
        public var sourceCount: Int
    }

    public struct Layout: Codable, Sendable, Equatable {
        public var file = DatasetArtifact.imagesFileName
        public var pixelOrder = "NHWC uint8"
        public var pixelOffset: Int
        public var pixelBytes: Int
        public var labelOrder = "int32 little-endian"
        public var labelOffset: Int
        public var labelBytes: Int
    }

    /// Digests of the source files, in the order given.
    public static func digest(files: [URL], relativeTo base: URL? = nil) throws -> (digest: String, listed: [SourceFile]) {
        var lines = ""
        var listed: [SourceFile] = []
        for url in files {
            let bytes = try readFileBytes(url)
            let hex = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
            var path = url.path
            if let base, path.hasPrefix(base.path + "/") { path = String(path.dropFirst(base.path.count + 1)) }
            lines += "\(hex)  \(path)\n"
            listed.append(SourceFile(path: path, bytes: bytes.count, sha256: hex))
        }
        let total = SHA256.hash(data: Array(lines.utf8)).map { String(format: "%02x", $0) }.joined()
        return (total, listed)
    }
}
