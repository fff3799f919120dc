import Foundation

/// Reference statistics of one image set under one feature extractor: Gaussian
/// moments for Fréchet distances, a feature subset for KID, and optionally patch
/// descriptors for the sliced Wasserstein distance.
///
/// On disk (a refstats artifact directory): `stats.json` (manifest) plus raw
/// little-endian arrays `mean.f64`, `covariance.f64`, `kid_features.f32`,
/// `swd_level<L>.f32`.
public struct FeatureStatistics: Sendable {
    public var extractor: String
    public var dimension: Int
    public var count: Int
    public var mean: [Double]
    /// D x D row-major, unbiased (N − 1).
    public var covariance: [Double]
    /// Up to a few thousand feature rows (row-major Float32) kept for KID.
    public var kidFeatures: [Float]
    public var patches: PatchDescriptors?

    public init(extractor: String, moments: FeatureMoments, kidFeatures: [Float], patches: PatchDescriptors? = nil) {
        self.extractor = extractor
        dimension = moments.dimension
        count = moments.count
        mean = moments.mean
        covariance = moments.covariance()
        self.kidFeatures = kidFeatures
        self.patches = patches
    }

    struct Manifest: Codable {
        var format = "pdpipe-feature-statistics"
        var version = 1
        var extractor: String
        var dimension: Int
        var count: Int
        var kidCount: Int
        var swd: SWDManifest?
    }
    struct SWDManifest: Codable {
        var channels: Int
        var config: SlicedWassersteinConfig
        var levels: Int
        var imageCount: Int
    }

    public static let manifestName = "stats.json"

    public func write(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let manifest = Manifest(extractor: extractor, dimension: dimension, count: count,
                                kidCount: kidFeatures.count / dimension,
                                swd: patches.map { SWDManifest(channels: $0.channels, config: $0.config,
                                                               levels: $0.levels.count, imageCount: $0.imageCount) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: directory.appendingPathComponent(Self.manifestName))
        try RawArrayFile.write(mean, to: directory.appendingPathComponent("mean.f64"))
        try RawArrayFile.write(covariance, to: directory.appendingPathComponent("covariance.f64"))
        try RawArrayFile.write(kidFeatures, to: directory.appendingPathComponent("kid_features.f32"))
        if let patches {
            for (l, level) in patches.levels.enumerated() {
                try RawArrayFile.write(level, to: directory.appendingPathComponent("swd_level\(l).f32"))
            }
        }
    }

    public init(contentsOf directory: URL) throws {
        let url = directory.appendingPathComponent(Self.manifestName)
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: url))
        } catch {
            throw MetricsError("\(url.path): not a feature-statistics manifest (\(error))")
        }
        guard manifest.format == "pdpipe-feature-statistics", manifest.version == 1 else {
            throw MetricsError("\(url.path): unsupported format \(manifest.format) v\(manifest.version)")
        }
        let d = manifest.dimension
        extractor = manifest.extractor
        dimension = d
        count = manifest.count
        mean = try RawArrayFile.read(Double.self, from: directory.appendingPathComponent("mean.f64"), count: d)
        covariance = try RawArrayFile.read(Double.self, from: directory.appendingPathComponent("covariance.f64"), count: d * d)
        kidFeatures = try RawArrayFile.read(Float.self, from: directory.appendingPathComponent("kid_features.f32"),
                                            count: manifest.kidCount * d)
        if let swd = manifest.swd {
            let size = swd.channels * swd.config.neighbourhood * swd.config.neighbourhood
            let rows = swd.imageCount * swd.config.patchesPerImage
            let levels = try (0..<swd.levels).map {
                try RawArrayFile.read(Float.self, from: directory.appendingPathComponent("swd_level\($0).f32"), count: rows * size)
            }
            patches = PatchDescriptors(channels: swd.channels, config: swd.config, levels: levels, imageCount: swd.imageCount)
        } else {
            patches = nil
        }
    }
}

/// Flat arrays of Float/Double as raw little-endian bytes (the platforms we run on are little-endian).
enum RawArrayFile {
    static func write<T: BinaryFloatingPoint>(_ values: [T], to url: URL) throws {
        try values.withUnsafeBytes { try Data($0).write(to: url) }
    }

    static func read<T: BinaryFloatingPoint>(_ type: T.Type, from url: URL, count: Int) throws -> [T] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw MetricsError("\(url.path): missing")
        }
        guard data.count == count * MemoryLayout<T>.stride else {
            throw MetricsError("\(url.path): expected \(count * MemoryLayout<T>.stride) bytes, found \(data.count)")
        }
        var out = [T](repeating: 0, count: count)
        _ = out.withUnsafeMutableBytes { data.copyBytes(to: $0) }
        return out
    }
}
