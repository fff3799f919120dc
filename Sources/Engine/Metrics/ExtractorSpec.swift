import Foundation

/// Which feature extractor a refstats artifact was computed with, stored beside the
/// statistics (`extractor.json`) so an evaluation rebuilds exactly the same one.
/// A trained feature network travels inside the artifact (`featurenet/`); the
/// Inception weights (95 MB) stay where the user keeps them and are matched by size.
public struct ExtractorSpec: Codable, Sendable, Equatable {
    public static let fileName = "extractor.json"
    public static let featureNetDirectory = "featurenet"
    public static let kinds = ["featurenet", "inception-v3", "random-cnn"]

    /// `featurenet`, `inception-v3` or `random-cnn`.
    public var kind: String
    /// The name distances carry (`fmnist-classifier`, `inception-v3`, `random-cnn`).
    public var name: String
    public var channels: Int
    public var resolution: Int
    public var seed: UInt64
    public var weightsFileName: String?
    public var weightsBytes: Int?

    public init(kind: String, name: String, channels: Int, resolution: Int, seed: UInt64,
                weightsFileName: String? = nil, weightsBytes: Int? = nil) {
        (self.kind, self.name, self.channels, self.resolution, self.seed) = (kind, name, channels, resolution, seed)
        (self.weightsFileName, self.weightsBytes) = (weightsFileName, weightsBytes)
    }

    public func write(to directory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: directory.appendingPathComponent(Self.fileName))
    }

    public static func read(from directory: URL) throws -> ExtractorSpec {
        let url = directory.appendingPathComponent(fileName)
        do { return try JSONDecoder().decode(ExtractorSpec.self, from: Data(contentsOf: url)) } catch {
            throw MetricsError("\(url.path): not a readable extractor description (\(error))")
        }
    }

    /// The metric name of a Fréchet distance under this extractor: only Inception-v3 gives "FID".
    public var frechetMetricName: String { kind == "inception-v3" ? "FID" : "FD_\(name)" }
    public var kernelMetricName: String { kind == "inception-v3" ? "KID" : "KID_\(name)" }
}

extension InceptionV3 {
    /// Where the weights are looked for when no path is given: the project's `weights/`
    /// folder, then pytorch-fid's own download cache (torch hub).
    public static func defaultWeightLocations(projectDirectory: URL) -> [URL] {
        let home = FileManager.default.homeDirectoryForCurrentUser
        return [projectDirectory.appendingPathComponent("weights").appendingPathComponent(weightsFileName),
                home.appendingPathComponent(".cache/torch/hub/checkpoints").appendingPathComponent(weightsFileName)]
    }

    /// The weights file: `path` when given, else the first default location that exists.
    /// Missing: an error that names the file, where to put it, and that it cannot be fetched here.
    public static func locateWeights(path: URL?, projectDirectory: URL) throws -> URL {
        let candidates = path.map { [$0] } ?? defaultWeightLocations(projectDirectory: projectDirectory)
        if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) { return found }
        throw MetricsError("""
            Inception-v3 weights not found: FID needs \(weightsFileName) (pytorch-fid's port of the \
            2015-12-05 TensorFlow Inception graph), which cannot be downloaded on this machine. Copy it from \
            a machine that has it (pytorch-fid keeps it in ~/.cache/torch/hub/checkpoints/) to \
            \(defaultWeightLocations(projectDirectory: projectDirectory)[0].path), or set `weights:` to its path. \
            Looked in: \(candidates.map(\.path).joined(separator: ", ")). Without it, use extractor: featurenet \
            (FD_<name>) or random-cnn.
            """)
    }
}
