/// Maps images to feature vectors for distribution distances (FD, KID).
/// Every reported distance carries the extractor's `name`; only `inception-v3`
/// features make a distance "FID".
public protocol FeatureExtractor: AnyObject {
    var name: String { get }
    var dimension: Int { get }
    /// Images NCHW with values in [-1, 1] (uint8 images: x / 127.5 − 1) -> N x dimension, row-major.
    func features(_ images: Tensor) -> [Float]
}

/// pytorch-fid's Inception-v3 pool3 features; gray images are repeated to 3 channels.
public final class InceptionFeatureExtractor: FeatureExtractor {
    public let name = "inception-v3"
    public let dimension = InceptionV3.dimension
    let network: InceptionV3

    public init(network: InceptionV3) { self.network = network }

    public func features(_ images: Tensor) -> [Float] {
        precondition(images.rank == 4 && (images.shape[1] == 1 || images.shape[1] == 3),
                     "Inception-v3 takes gray or RGB images, got \(images.shape)")
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        var out: [Float] = []
        out.reserveCapacity(n * dimension)
        Engine.exclusive {
            for i in 0..<n {
                let plane = Array(images.data[(i * c * h * w)..<((i + 1) * c * h * w)])
                let rgb = c == 3 ? plane : plane + plane + plane
                out += network.features(FeatureMap(data: rgb, channels: 3, height: h, width: w))
            }
        }
        return out
    }
}

/// Penultimate features of a `ConvFeatureNet` (trained classifier or seeded random network).
public final class ConvNetFeatureExtractor: FeatureExtractor {
    public let name: String
    public var dimension: Int { network.architecture.featureDimension }
    let network: ConvFeatureNet

    public init(name: String, network: ConvFeatureNet) {
        self.name = name
        self.network = network
    }

    /// The `random-cnn` extractor: a never-trained network from a fixed seed.
    public static func randomCNN(channels: Int, resolution: Int, seed: UInt64 = 0) throws -> ConvNetFeatureExtractor {
        if let problem = ConvFeatureNet.Architecture.problem(channels: channels, resolution: resolution) { throw MetricsError(problem) }
        return ConvNetFeatureExtractor(name: "random-cnn",
                                       network: ConvFeatureNet(.init(channels: channels, resolution: resolution, classes: 1), seed: seed))
    }

    public func features(_ images: Tensor) -> [Float] {
        let a = network.architecture
        precondition(images.rank == 4 && images.shape[1] == a.channels && images.shape[2] == a.resolution && images.shape[3] == a.resolution,
                     "\(name) takes \(a.channels)x\(a.resolution)x\(a.resolution) images, got \(images.shape)")
        return Engine.exclusive { network.features(images).data }
    }
}
