import Foundation

/// Fashion-MNIST (Zalando Research) from its gzip'd IDX files: 28x28 gray, 10 classes.
public struct FashionMNISTSource: ImageSource {
    public static let defaultDirectory = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    public enum Split: String, Sendable { case train, test }

    public let sourceName = "fashion-mnist"
    public let count: Int
    public let labels: [Int]
    public var labelNames: [String] { Self.classNames }
    public let files: [URL]
    public let background: UInt8 = 0
    let side: (rows: Int, columns: Int)
    let pixels: [UInt8]

    /// The image and label files of a split (`train-*` or `t10k-*`) in `directory`.
    public static func files(in directory: URL, split: Split) -> (images: URL, labels: URL) {
        let prefix = split == .train ? "train" : "t10k"
        return (directory.appendingPathComponent("\(prefix)-images-idx3-ubyte.gz"),
                directory.appendingPathComponent("\(prefix)-labels-idx1-ubyte.gz"))
    }

    public init(directory: URL = defaultDirectory, split: Split) throws {
        let (imageURL, labelURL) = Self.files(in: directory, split: split)
        let images = try IDXArray.read(gzipFile: imageURL)
        let labelArray = try IDXArray.read(gzipFile: labelURL)
        guard images.dimensions.count == 3 else {
            throw DataError("\(imageURL.path): expected a 3-d IDX array (N, rows, columns), found \(images.dimensions)")
        }
        guard labelArray.dimensions == [images.dimensions[0]] else {
            throw DataError("\(labelURL.path): \(labelArray.dimensions) labels for \(images.dimensions[0]) images")
        }
        if let bad = labelArray.bytes.firstIndex(where: { $0 >= 10 }) {
            throw DataError("\(labelURL.path): label \(labelArray.bytes[bad]) at index \(bad) is not a class 0-9")
        }
        count = images.dimensions[0]
        side = (images.dimensions[1], images.dimensions[2])
        pixels = images.bytes
        labels = labelArray.bytes.map(Int.init)
        files = [imageURL, labelURL]
    }

    public func image(at index: Int) throws -> ByteImage {
        let n = side.rows * side.columns
        return ByteImage(width: side.columns, height: side.rows, channels: 1,
                         pixels: Array(pixels[index * n..<(index + 1) * n]))
    }
}
