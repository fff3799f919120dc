/// Training images as Patch Diffusion reads them: square uint8 images,
/// HWC (NHWC overall), `resolution` x `resolution` x `channels`.
///
/// The dataset artifact (memory-mapped, `DatasetArtifact`) and in-memory test sets conform.
public protocol TrainingImageSet {
    /// Images training draws from (for an artifact with hflip: twice the stored images).
    var trainingImageCount: Int { get }
    var resolution: Int { get }
    var channels: Int { get }
    /// Calls `body` with the HWC bytes of image `index`.
    func withImage<T>(_ index: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> T) rethrows -> T
}

/// A small set of images held in memory (tests, benchmarks).
public struct InMemoryImages: TrainingImageSet, Sendable {
    public let count: Int, resolution: Int, channels: Int
    public var trainingImageCount: Int { count }
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

/// A prepared dataset artifact trains on its `trainingCount` images: index `count + i` is
/// image i mirrored when the artifact has `hflip` (EDM's --xflip).
extension DatasetArtifact: TrainingImageSet {
    public var trainingImageCount: Int { trainingCount }

    public func withImage<T>(_ index: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> T) rethrows -> T {
        if index < count { return try body(image(at: index)) }
        precondition(hflip && index < trainingCount, "image \(index) out of 0..<\(trainingCount)")
        let src = image(at: index - count)
        let (r, c) = (resolution, channels)
        var mirrored = [UInt8](repeating: 0, count: src.count)
        for y in 0..<r { for x in 0..<r { for ch in 0..<c {
            mirrored[(y * r + x) * c + ch] = src[(y * r + r - 1 - x) * c + ch]
        } } }
        return try mirrored.withUnsafeBufferPointer(body)
    }
}
