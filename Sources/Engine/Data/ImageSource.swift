import Foundation

/// A data set as read from its original files: random access to decoded images, one label each.
/// Sources decode lazily (`image(at:)`) so a subset never decodes the rest, and preparation can
/// run on several threads.
public protocol ImageSource: Sendable {
    /// Short source name recorded in the manifest (`fashion-mnist`, `emoji`, ...).
    var sourceName: String { get }
    var count: Int { get }
    /// Class index per image, or -1 when the source has no labels.
    var labels: [Int] { get }
    var labelNames: [String] { get }
    /// The files read (their digests go into the manifest and the stage key).
    var files: [URL] { get }
    /// Colour for padding and for compositing alpha (0 for Fashion-MNIST's black, 255 for emoji's white).
    var background: UInt8 { get }
    /// The index-th image, decoded (any size, 1-4 channels).
    func image(at index: Int) throws -> ByteImage
    /// How errors name the index-th image (its file, or file and record).
    func itemName(at index: Int) -> String
}

extension ImageSource {
    public func itemName(at index: Int) -> String {
        "\(files.first?.path ?? sourceName) (image \(index))"
    }
}
