import Foundation

/// Gaussian moments of patch features, one set per patch size, of one image set cut by one
/// `PatchSamplingRule` under one extractor: what patch-level Fréchet distances compare.
///
/// On disk: `patchstats.json` (the rule, extractor name, image and patch counts) and one
/// directory per size, `size<s>/`, in the refstats format (`FeatureStatistics`: `stats.json`,
/// `mean.f64`, `covariance.f64`; no KID rows).
public struct PatchStatistics: Sendable {
    public var rule: PatchSamplingRule
    public var extractor: String
    public var imageCount: Int
    /// By patch size.
    public var statistics: [Int: FeatureStatistics]

    public static let manifestName = "patchstats.json"

    public init(rule: PatchSamplingRule, extractor: String, imageCount: Int, statistics: [Int: FeatureStatistics]) {
        (self.rule, self.extractor, self.imageCount, self.statistics) = (rule, extractor, imageCount, statistics)
    }

    struct Manifest: Codable {
        var format = "pdpipe-patch-statistics"
        var version = 1
        var rule: PatchSamplingRule
        var extractor: String
        var images: Int
        /// Patches per size, keyed by the size in decimal (JSON keys are strings).
        var patches: [String: Int]
        /// The rule in words, for a reader of the artifact.
        var positions: String
    }

    static func directoryName(size: Int) -> String { "size\(size)" }

    public static func isPatchStatistics(_ directory: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent(manifestName).path)
    }

    public func write(to directory: URL) throws {
        let manifest = Manifest(
            rule: rule, extractor: extractor, images: imageCount,
            patches: Dictionary(uniqueKeysWithValues: statistics.map { (String($0.key), $0.value.count) }),
            positions: "per image k and size s: \(rule.patchesPerImage) top-left corners (1 at s = \(rule.resolution)) "
                + "uniform in [0, R - s]^2 from RandomGenerator(seed: \(rule.seed), stream: k << 16 | s)")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: directory.appendingPathComponent(Self.manifestName))
        for (size, stats) in statistics {
            try stats.write(to: directory.appendingPathComponent(Self.directoryName(size: size)))
        }
    }

    public init(contentsOf directory: URL) throws {
        let url = directory.appendingPathComponent(Self.manifestName)
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: url)) } catch {
            throw MetricsError("\(url.path): not a patch-statistics manifest (\(error))")
        }
        guard manifest.format == "pdpipe-patch-statistics", manifest.version == 1 else {
            throw MetricsError("\(url.path): unsupported format \(manifest.format) v\(manifest.version)")
        }
        rule = manifest.rule
        extractor = manifest.extractor
        imageCount = manifest.images
        statistics = [:]
        for s in rule.sizes {
            statistics[s] = try FeatureStatistics(contentsOf: directory.appendingPathComponent(Self.directoryName(size: s)))
        }
    }

    /// Fréchet distance at every size this and `reference` share; both must use one rule's sizes and one extractor.
    public func frechetDistances(to reference: PatchStatistics) throws -> [Int: Double] {
        guard rule.sizes == reference.rule.sizes else {
            throw MetricsError("patch sizes differ: \(rule.sizes) vs \(reference.rule.sizes)")
        }
        var out: [Int: Double] = [:]
        for s in rule.sizes { out[s] = try statistics[s]!.frechetDistance(to: reference.statistics[s]!) }
        return out
    }
}
