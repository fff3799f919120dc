import Foundation

/// A trained feature network on disk (the `featurenet` artifact): `featurenet.json`
/// (name, architecture, parameter names and shapes, test accuracy) and `weights.f32`
/// (all parameters, raw little-endian Float32, in `namedParameters()` order).
public struct FeatureNetFile: Codable, Sendable {
    public static let manifestName = "featurenet.json"
    public static let weightsName = "weights.f32"

    public var format = "pdpipe-featurenet"
    public var version = 1
    /// The extractor name every distance computed with it carries (e.g. `fmnist-classifier`).
    public var name: String
    public var architecture: ConvFeatureNet.Architecture
    public var parameters: [ParameterEntry]
    public var testAccuracy: Double
    public var testImages: Int
    public var labelNames: [String]
    public struct ParameterEntry: Codable, Sendable { public var name: String; public var shape: [Int] }

    public static func write(_ net: ConvFeatureNet, name: String, testAccuracy: Double, testImages: Int,
                             labelNames: [String], to directory: URL) throws {
        let named = net.namedParameters()
        let file = FeatureNetFile(name: name, architecture: net.architecture,
                                  parameters: named.map { ParameterEntry(name: $0.name, shape: $0.parameter.shape) },
                                  testAccuracy: testAccuracy, testImages: testImages, labelNames: labelNames)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(file).write(to: directory.appendingPathComponent(manifestName))
        try RawArrayFile.write(named.flatMap(\.parameter.value.data), to: directory.appendingPathComponent(weightsName))
    }

    public static func isFeatureNet(_ directory: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent(manifestName).path)
    }

    /// Reads the manifest and weights; the network is rebuilt from the architecture.
    public static func load(_ directory: URL) throws -> (file: FeatureNetFile, network: ConvFeatureNet) {
        let url = directory.appendingPathComponent(manifestName)
        let file: FeatureNetFile
        do { file = try JSONDecoder().decode(FeatureNetFile.self, from: Data(contentsOf: url)) } catch {
            throw MetricsError("\(url.path): not a feature-network manifest (\(error))")
        }
        guard file.format == "pdpipe-featurenet", file.version == 1 else {
            throw MetricsError("\(url.path): unsupported format \(file.format) v\(file.version)")
        }
        let net = ConvFeatureNet(file.architecture, seed: 0)
        let named = net.namedParameters()
        guard named.map(\.name) == file.parameters.map(\.name), named.map(\.parameter.shape) == file.parameters.map(\.shape) else {
            throw MetricsError("\(url.path): parameters do not match the architecture")
        }
        let total = named.reduce(0) { $0 + $1.parameter.value.count }
        let weights = try RawArrayFile.read(Float.self, from: directory.appendingPathComponent(weightsName), count: total)
        var offset = 0
        for (_, p) in named {
            p.value.data = Array(weights[offset..<(offset + p.value.count)])
            offset += p.value.count
        }
        return (file, net)
    }
}
