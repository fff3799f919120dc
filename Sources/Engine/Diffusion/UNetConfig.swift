/// Configuration of the SongUNet / DDPM++ network (docs/edm.md section 4).
public struct UNetConfig: Sendable, Equatable, Codable {
    /// C, image channels (the output channels).
    public var imageChannels: Int
    /// Whether the input carries the [x, y] coordinate planes (in_channels = C + 2), else C.
    public var coordinates: Bool
    public var modelChannels: Int
    public var channelMult: [Int]
    public var numBlocks: Int
    /// Levels (0 = full resolution) whose encoder blocks and last decoder block use attention.
    public var attentionLevels: [Int]
    public var dropout: Double
    /// Embedding width = channelMultEmb * modelChannels (EDM: 4).
    public var channelMultEmb: Int

    public init(imageChannels: Int, coordinates: Bool = true, modelChannels: Int = 128, channelMult: [Int] = [1, 2, 2, 2],
                numBlocks: Int = 4, attentionLevels: [Int] = [2], dropout: Double = 0, channelMultEmb: Int = 4) {
        (self.imageChannels, self.coordinates, self.modelChannels, self.channelMult) = (imageChannels, coordinates, modelChannels, channelMult)
        (self.numBlocks, self.attentionLevels, self.dropout, self.channelMultEmb) = (numBlocks, attentionLevels, dropout, channelMultEmb)
    }

    public var inChannels: Int { imageChannels + (coordinates ? 2 : 0) }
    public var embeddingChannels: Int { modelChannels * channelMultEmb }
    /// Spatial sizes must be multiples of this (one halving per level after the first).
    public var sizeDivisor: Int { 1 << (channelMult.count - 1) }

    /// Problems with the configuration, as messages naming the field.
    public func problems(resolution: Int? = nil) -> [(field: String, message: String)] {
        var out: [(String, String)] = []
        if imageChannels < 1 { out.append(("channels", "must be at least 1")) }
        if modelChannels < 4 || modelChannels % 2 != 0 { out.append(("model_channels", "must be even and at least 4, got \(modelChannels)")) }
        if channelMult.isEmpty || channelMult.contains(where: { $0 < 1 }) { out.append(("channel_mult", "must be a non-empty list of positive integers")) }
        if numBlocks < 1 { out.append(("num_blocks", "must be at least 1")) }
        for l in attentionLevels where !(0..<channelMult.count).contains(l) {
            out.append(("attention_levels", "level \(l) does not exist (levels 0..<\(channelMult.count))"))
        }
        if !(0..<1).contains(dropout) { out.append(("dropout", "must be in [0, 1), got \(dropout)")) }
        for mult in channelMult {
            let c = modelChannels * mult
            let g = max(1, min(32, c / 4))
            if c % g != 0 { out.append(("model_channels", "\(c) channels cannot form \(g) GroupNorm groups")) }
        }
        if let r = resolution {
            // Smallest patch R/4 must still divide by the downsampling factor.
            if r % 4 != 0 || (r / 4) % sizeDivisor != 0 {
                out.append(("resolution", "patch sizes \(r / 4), \(r / 2), \(r) must be multiples of \(sizeDivisor) (the U-Net halves \(channelMult.count - 1) times)"))
            }
        }
        return out
    }
}
