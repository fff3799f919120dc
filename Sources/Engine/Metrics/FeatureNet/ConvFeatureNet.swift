/// A small CNN whose penultimate activations serve as image features: three 3x3
/// conv blocks (Conv-GroupNorm-SiLU, each followed by 2x average-pool down-sampling),
/// flattened (keeping where things are: shirt vs. pullover is a matter of layout),
/// a hidden fully connected layer (the features) and a linear classification head. Trained, it is the domain feature network
/// (`fmnist-classifier`); left at its seeded initialisation it is the `random-cnn`
/// extractor for unlabelled sets (random embeddings, Naeem et al. 2020).
public final class ConvFeatureNet: Module {
    public struct Architecture: Codable, Sendable, Equatable {
        public var channels: Int
        /// Input side; a multiple of 8 (three 2x down-samplings).
        public var resolution: Int
        public var widths: [Int] = [32, 64, 128]
        public var featureDimension = 128
        public var classes: Int
        public init(channels: Int, resolution: Int, classes: Int) {
            (self.channels, self.resolution, self.classes) = (channels, resolution, classes)
        }

        /// nil when the network can take these images, else the reason.
        public static func problem(channels: Int, resolution: Int) -> String? {
            resolution >= 8 && resolution % 8 == 0 ? nil
                : "the feature CNN needs a resolution that is a multiple of 8 (three 2x down-samplings), got \(resolution)"
        }
    }

    public let architecture: Architecture
    let blocks: [[any Layer]]
    let hidden: Linear
    let hiddenActivation = SiLU()
    private var flattenedShape: [Int] = []
    let head: Linear

    public init(_ a: Architecture, seed: UInt64) {
        precondition(a.widths.count == 3 && Architecture.problem(channels: a.channels, resolution: a.resolution) == nil,
                     "ConvFeatureNet: unsupported architecture \(a)")
        architecture = a
        var rng = RandomGenerator(seed: seed)
        var blocks: [[any Layer]] = []
        var cin = a.channels
        for w in a.widths {
            var block: [any Layer] = [Conv2d(inChannels: cin, outChannels: w, kernel: 3, rng: &rng),
                                      GroupNorm(channels: w, groups: 8, minChannelsPerGroup: 1), SiLU()]
            block.append(Downsample2x())
            blocks.append(block)
            cin = w
        }
        self.blocks = blocks
        let side = a.resolution / 8
        hidden = Linear(inFeatures: cin * side * side, outFeatures: a.featureDimension, rng: &rng)
        head = Linear(inFeatures: a.featureDimension, outFeatures: a.classes, rng: &rng)
    }

    public func namedParameters() -> [(name: String, parameter: Parameter)] {
        var out: [(name: String, parameter: Parameter)] = []
        for (i, block) in blocks.enumerated() {
            for (j, layer) in block.enumerated() { out += prefixed("block\(i).\(j)", layer) }
        }
        return out + prefixed("hidden", hidden) + prefixed("head", head)
    }

    /// Penultimate features [N, featureDimension] of images NCHW in [-1, 1].
    public func features(_ x: Tensor) -> Tensor {
        var h = x
        for block in blocks { for layer in block { h = layer.forward(h) } }
        flattenedShape = h.shape
        return hiddenActivation.forward(hidden.forward(h.reshaped([h.shape[0], h.count / h.shape[0]])))
    }

    /// Class logits [N, classes]; caches for `backward`.
    public func logits(_ x: Tensor) -> Tensor { head.forward(features(x)) }

    /// Backward of `logits`: accumulates all parameter gradients.
    public func backward(_ dLogits: Tensor) {
        var g = hidden.backward(hiddenActivation.backward(head.backward(dLogits))).reshaped(flattenedShape)
        for block in blocks.reversed() { for layer in block.reversed() { g = layer.backward(g) } }
    }
}
