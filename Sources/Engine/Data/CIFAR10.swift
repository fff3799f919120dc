import Foundation

/// CIFAR-10's binary batches (`cifar-10-batches-bin`): records of 1 label byte + 3072 bytes of
/// 32x32 pixels stored channel-planar (all R, then G, then B).
public struct CIFAR10Source: ImageSource {
    public static let classNames = ["airplane", "automobile", "bird", "cat", "deer",
                                    "dog", "frog", "horse", "ship", "truck"]
    static let recordSize = 1 + 3 * 32 * 32

    public enum Split: String, Sendable { case train, test }

    public let sourceName = "cifar10"
    public let count: Int
    public let labels: [Int]
    public let labelNames: [String]
    public let files: [URL]
    public let background: UInt8 = 0
    let records: [UInt8]

    /// `data_batch_1.bin` ... `data_batch_5.bin` (train) or `test_batch.bin` (test).
    public static func batchFiles(in directory: URL, split: Split) -> [URL] {
        split == .train ? (1...5).map { directory.appendingPathComponent("data_batch_\($0).bin") }
            : [directory.appendingPathComponent("test_batch.bin")]
    }

    public init(directory: URL, split: Split) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError("\(directory.path): CIFAR-10 directory not found")
        }
        var records: [UInt8] = []
        var labels: [Int] = []
        var files = Self.batchFiles(in: directory, split: split)
        for file in files {
            let bytes = try readFileBytes(file)
            guard !bytes.isEmpty, bytes.count % Self.recordSize == 0 else {
                throw DataError("\(file.path): \(bytes.count) bytes is not a whole number of \(Self.recordSize)-byte CIFAR-10 records (truncated?)")
            }
            for r in 0..<(bytes.count / Self.recordSize) {
                let label = Int(bytes[r * Self.recordSize])
                guard label < 10 else { throw DataError("\(file.path): record \(r) has label \(label), not a class 0-9") }
                labels.append(label)
            }
            records += bytes
        }
        let n = labels.count
        // batches.meta.txt, when present, names the classes (one per line).
        let meta = directory.appendingPathComponent("batches.meta.txt")
        var names = Self.classNames
        if let text = try? String(contentsOf: meta, encoding: .utf8) {
            let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            if lines.count == 10 { names = lines; files.append(meta) }
        }
        self.records = records
        self.count = n
        self.labels = labels
        self.labelNames = names
        self.files = files
    }

    public func image(at index: Int) throws -> ByteImage {
        let base = index * Self.recordSize + 1, plane = 32 * 32
        var pixels = [UInt8](repeating: 0, count: 3 * plane)
        for p in 0..<plane {
            pixels[3 * p] = records[base + p]
            pixels[3 * p + 1] = records[base + plane + p]
            pixels[3 * p + 2] = records[base + 2 * plane + p]
        }
        return ByteImage(width: 32, height: 32, channels: 3, pixels: pixels)
    }
}
