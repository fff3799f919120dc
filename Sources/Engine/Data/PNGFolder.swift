import Foundation

/// Every `.png` under a directory (recursive), in byte-wise order of the relative path, so the
/// order does not depend on the file system. When every image lies in a subdirectory, the first
/// path component is the class (as torchvision's ImageFolder); otherwise images are unlabelled.
public struct PNGFolderSource: ImageSource {
    public let sourceName = "png-folder"
    public let directory: URL
    /// Paths relative to `directory`, sorted.
    public let relativePaths: [String]
    public let labels: [Int]
    public let labelNames: [String]
    public let background: UInt8 = 255
    public var count: Int { relativePaths.count }
    public var files: [URL] { relativePaths.map { directory.appendingPathComponent($0) } }

    public init(directory: URL) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError("\(directory.path): image folder not found")
        }
        let root = directory.standardizedFileURL.resolvingSymlinksInPath()
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) else {
            throw DataError("\(directory.path): cannot list the folder")
        }
        var paths: [String] = []
        let prefix = root.path.hasSuffix("/") ? root.path : root.path + "/"
        for case let url as URL in walker where url.pathExtension.lowercased() == "png" {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            let full = url.resolvingSymlinksInPath().path
            guard full.hasPrefix(prefix) else { continue }
            paths.append(String(full.dropFirst(prefix.count)))
        }
        guard !paths.isEmpty else { throw DataError("\(directory.path): folder contains no .png files") }
        paths.sort { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        self.directory = root
        self.relativePaths = paths
        if paths.allSatisfy({ $0.contains("/") }) {
            let classOf = paths.map { String($0.prefix { $0 != "/" }) }
            let names = Array(Set(classOf)).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
            labelNames = names
            labels = classOf.map { index[$0]! }
        } else {
            labelNames = []
            labels = [Int](repeating: -1, count: paths.count)
        }
    }

    public func itemName(at index: Int) -> String { directory.appendingPathComponent(relativePaths[index]).path }

    public func image(at index: Int) throws -> ByteImage {
        try readPNG(directory.appendingPathComponent(relativePaths[index]))
    }
}
