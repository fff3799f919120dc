/// Training images as Patch Diffusion reads them: `count` square uint8 images,
/// HWC (NHWC overall), `resolution` x `resolution` x `channels`.
///
/// The dataset artifact (memory-mapped) and in-memory test sets both conform.
public protocol ImageSource {
    var count: Int { get }
    var resolution: Int { get }
    var channels: Int { get }
    /// Calls `body` with the HWC bytes of image `index`.
    func withImage<T>(_ index: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> T) rethrows -> T
}

/// A small set of images held in memory (tests, benchmarks).
public struct InMemoryImages: ImageSource, Sendable {
    public let count: Int, resolution: Int, channels: Int
    /// NHWC bytes.
    public let bytes: [UInt8]

    public init(count: Int, resolution: Int, channels: Int, bytes: [UInt8]) {
        precondition(bytes.count == count * resolution * resolution * channels, "InMemoryImages: byte count mismatch")
        (self.count, self.resolution, self.channels, self.bytes) = (count, resolution, channels, bytes)
    }

    public func withImage<T>(_ index: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> T) rethrows -> T {
        let per = resolution * resolution * channels
        return try bytes.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[index * per ..< (index + 1) * per])) }
    }
}
