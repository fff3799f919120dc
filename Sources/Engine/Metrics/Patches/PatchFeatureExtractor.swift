/// Features of patches of every size a `PatchSamplingRule` cuts. Two ways to accept sizes R/4..R:
///
/// - `resizing`: one network (the trained domain feature network) sees every patch resized to its
///   input side. Its features are the ones the full-image FD uses, so the size-R patch distance
///   is the full-image FD, and smaller patches are judged by features that know the domain.
/// - `randomCNN`: a never-trained `ConvFeatureNet` per size at the patch's native side (sizes must
///   be multiples of 8: three 2x poolings), seeded; no resampling, no labels needed.
public final class PatchFeatureExtractor {
    /// The name distances carry (`fmnist-classifier`, `random-cnn`).
    public let name: String
    public let dimension: Int
    /// By patch size: the network and the side it takes.
    private let networks: [Int: (network: ConvNetFeatureExtractor, side: Int)]

    private init(name: String, networks: [Int: (network: ConvNetFeatureExtractor, side: Int)]) throws {
        let dimensions = Set(networks.values.map(\.network.dimension))
        guard dimensions.count == 1, let d = dimensions.first else {
            throw MetricsError("patch feature networks must share one feature dimension, got \(dimensions.sorted())")
        }
        (self.name, self.dimension, self.networks) = (name, d, networks)
    }

    /// The trained network applied to every size, patches resized to its input side.
    public static func resizing(_ network: ConvNetFeatureExtractor, sizes: [Int]) throws -> PatchFeatureExtractor {
        let side = network.network.architecture.resolution
        return try PatchFeatureExtractor(name: network.name, networks: Dictionary(uniqueKeysWithValues: sizes.map { ($0, (network, side)) }))
    }

    /// One seeded random CNN per size, at the patch's own side.
    public static func randomCNN(channels: Int, sizes: [Int], seed: UInt64) throws -> PatchFeatureExtractor {
        var networks: [Int: (network: ConvNetFeatureExtractor, side: Int)] = [:]
        for s in sizes {
            networks[s] = (try ConvNetFeatureExtractor.randomCNN(channels: channels, resolution: s, seed: seed), s)
        }
        return try PatchFeatureExtractor(name: "random-cnn", networks: networks)
    }

    /// Why `randomCNN` cannot take these sizes, or nil.
    public static func randomCNNProblem(sizes: [Int]) -> String? {
        guard let bad = sizes.first(where: { ConvFeatureNet.Architecture.problem(channels: 1, resolution: $0) != nil }) else { return nil }
        return "random-cnn takes patches at their own size, which must be a multiple of 8 (three 2x poolings); got \(bad)"
    }

    /// Features (N x dimension, row-major) of NCHW patches of one size in [-1, 1].
    public func features(_ patches: Tensor) -> [Float] {
        let s = patches.shape[2]
        guard let (network, side) = networks[s] else { preconditionFailure("no patch feature network for size \(s)") }
        return network.features(resizeSquare(patches, to: side))
    }
}
