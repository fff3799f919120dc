import Foundation

/// EDM's SongUNet in its DDPM++ configuration (encoder/decoder "standard", positional noise
/// embedding, [1,1] resample filter), with forward and backward written out layer by layer.
///
/// Encoder: at level 0 a 3x3 conv in_channels -> model_channels; at each later level a
/// down-sampling block; then `num_blocks` blocks to model_channels * mult[level] (attention at
/// the chosen levels). Every encoder output is kept as a skip. Decoder, deepest level first:
/// two blocks at the bottom (the first with attention), an up-sampling block at the other
/// levels, then `num_blocks + 1` blocks that each concatenate one skip (the last one with
/// attention at attention levels). Output head at level 0: GroupNorm -> SiLU -> 3x3 conv
/// (init x 1e-5) to C channels. Noise embedding: PositionalEmbedding(c_noise) with its
/// halves swapped to [sin, cos] as EDM does -> Linear -> SiLU -> Linear -> SiLU.
public final class SongUNet: Module, DenoiserNetwork {
    public let config: UNetConfig
    let mapNoise: PositionalEmbedding
    let mapLayer0: Linear, mapSilu0 = SiLU(), mapLayer1: Linear, mapSilu1 = SiLU()
    let inputConv: Conv2d
    /// Encoder blocks after the input conv, in order.
    let encoder: [(name: String, block: UNetBlock)]
    let decoder: [(name: String, block: UNetBlock)]
    let outNorm: GroupNormSiLU, outConv: Conv2d
    /// The channel block the activations keep between the input and output convolutions: the
    /// backend's (`ComputeBackend.activationBlock`) when every level's channel count is a
    /// multiple of it, else 1 (NCHW). Input and output are NCHW either way.
    public let activationBlock: Int
    // Forward bookkeeping for backward: per decoder block, the channels before the concatenation
    // and the index of the skip it consumed (nil when the block concatenates nothing).
    private var concatenations: [(split: Int, skip: Int)?] = []

    public var imageChannels: Int { config.imageChannels }
    public var usesCoordinates: Bool { config.coordinates }
    public var isTraining: Bool = true {
        didSet { for d in dropoutLayers { d.isTraining = isTraining } }
    }
    /// Off for forward-only use (sampling): layers then keep nothing for a backward, which saves
    /// memory traffic and gives the same outputs. Independent of `isTraining` (evaluation mode
    /// still allows gradients, e.g. of a loss).
    public var retainsForBackward: Bool = true {
        didSet { for s in siluLayers { s.retainsForBackward = retainsForBackward } }
    }

    /// Builds the network with EDM's initialisation from `seed` (weights) and `seed`-derived dropout streams.
    public init(config: UNetConfig, seed: UInt64) {
        self.config = config
        var rng = RandomGenerator(seed: seed)
        var dropoutIndex: UInt64 = 0
        func nextDropoutSeed() -> UInt64 { dropoutIndex += 1; return seed &+ 0x9E37_79B9 &* dropoutIndex }
        let mc = config.modelChannels, emb = config.embeddingChannels
        mapNoise = PositionalEmbedding(channels: mc, endpoint: true)
        mapLayer0 = Linear(inFeatures: mc, outFeatures: emb, rng: &rng)
        mapLayer1 = Linear(inFeatures: emb, outFeatures: emb, rng: &rng)

        func block(_ cin: Int, _ cout: Int, _ resample: UNetBlock.Resample = .none, attention: Bool = false) -> UNetBlock {
            UNetBlock(inChannels: cin, outChannels: cout, embeddingChannels: emb, resample: resample, attention: attention,
                      dropout: config.dropout, dropoutSeed: nextDropoutSeed(), rng: &rng)
        }
        inputConv = Conv2d(inChannels: config.inChannels, outChannels: mc, kernel: 3, rng: &rng)
        var enc: [(String, UNetBlock)] = []
        var skips = [mc]
        var cout = mc
        for (level, mult) in config.channelMult.enumerated() {
            if level > 0 {
                enc.append(("enc.L\(level).down", block(cout, cout, .down)))
                skips.append(cout)
            }
            for i in 0..<config.numBlocks {
                let b = block(cout, mc * mult, attention: config.attentionLevels.contains(level))
                cout = mc * mult
                enc.append(("enc.L\(level).block\(i)", b))
                skips.append(cout)
            }
        }
        var dec: [(String, UNetBlock)] = []
        for (level, mult) in config.channelMult.enumerated().reversed() {
            if level == config.channelMult.count - 1 {
                dec.append(("dec.L\(level).in0", block(cout, cout, attention: true)))
                dec.append(("dec.L\(level).in1", block(cout, cout)))
            } else {
                dec.append(("dec.L\(level).up", block(cout, cout, .up)))
            }
            for i in 0...config.numBlocks {
                let cin = cout + skips.removeLast()
                cout = mc * mult
                let attn = i == config.numBlocks && config.attentionLevels.contains(level)
                dec.append(("dec.L\(level).block\(i)", block(cin, cout, attention: attn)))
            }
        }
        precondition(skips.isEmpty, "SongUNet: skip bookkeeping")
        encoder = enc
        decoder = dec
        outNorm = GroupNormSiLU(channels: cout)
        outConv = Conv2d(inChannels: cout, outChannels: config.imageChannels, kernel: 3, initialization: .nearZero, rng: &rng)
        let block = inputConv.backend.activationBlock
        activationBlock = block > 1 && config.channelMult.allSatisfy({ (mc * $0) % block == 0 }) ? block : 1
        (inputConv.outputBlock, outConv.outputBlock) = (activationBlock, 1)
    }

    var dropoutLayers: [Dropout] { (encoder + decoder).flatMap { $0.block.dropoutLayers } }
    var siluLayers: [SiLU] { [mapSilu0, mapSilu1, outNorm.silu] + (encoder + decoder).flatMap { $0.block.siluLayers } }

    /// Dropout generator states (part of a checkpoint, so a resumed run draws the same masks).
    public var dropoutStates: [RandomGenerator] {
        get { dropoutLayers.map(\.rng) }
        set {
            precondition(newValue.count == dropoutLayers.count, "SongUNet: dropout state count")
            for (d, s) in zip(dropoutLayers, newValue) { d.rng = s }
        }
    }

    public func namedParameters() -> [(name: String, parameter: Parameter)] {
        var out = prefixed("map.layer0", mapLayer0) + prefixed("map.layer1", mapLayer1) + prefixed("enc.L0.conv", inputConv)
        for (name, b) in encoder { out += prefixed(name, b) }
        for (name, b) in decoder { out += prefixed(name, b) }
        return out + prefixed("out.norm", outNorm) + prefixed("out.conv", outConv)
    }

    /// EDM's noise embedding input: positional features with halves swapped ([sin, cos]).
    func noiseFeatures(_ noiseLabels: [Float]) -> Tensor {
        let e = mapNoise(noiseLabels)
        let (n, c) = (noiseLabels.count, config.modelChannels), half = c / 2
        var out = e
        for k in 0..<n { for j in 0..<half {
            out.data[k * c + j] = e.data[k * c + half + j]
            out.data[k * c + half + j] = e.data[k * c + j]
        } }
        return out
    }

    public func forward(_ x: Tensor, noiseLabels: [Float]) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == config.inChannels, "SongUNet: expected [N, \(config.inChannels), H, W], got \(x.shape)")
        precondition(x.shape[2] % config.sizeDivisor == 0 && x.shape[3] % config.sizeDivisor == 0,
                     "SongUNet: spatial size \(x.shape[2])x\(x.shape[3]) not a multiple of \(config.sizeDivisor)")
        let emb = mapSilu1.forward(mapLayer1.forward(mapSilu0.forward(mapLayer0.forward(noiseFeatures(noiseLabels)))))
        var h = inputConv.forward(x)
        var skips = [h]
        for (_, b) in encoder { h = b.forward(h, embedding: emb); skips.append(h) }
        concatenations = []
        for (_, b) in decoder {
            let channels = h.imageGeometry.channels
            if channels != b.inChannels {
                concatenations.append((channels, skips.count - 1))
                h = concatChannels(h, skips.removeLast())
            } else {
                concatenations.append(nil)
            }
            h = b.forward(h, embedding: emb)
        }
        return outConv.forward(outNorm.forward(h))
    }

    public func backward(_ dOutput: Tensor) {
        _ = backwardToInput(dOutput)
    }

    /// Backward through the whole net; returns dL/d(input) (used by gradient tests).
    @discardableResult
    public func backwardToInput(_ dOutput: Tensor) -> Tensor {
        precondition(concatenations.count == decoder.count, "SongUNet.backward before forward")
        var dh = outNorm.backward(outConv.backward(dOutput))
        var dEmb = Tensor(zeros: [dOutput.shape[0], config.embeddingChannels])
        // Gradients reaching each kept encoder output through a skip (index 0 = the input conv).
        var dSkips = [Tensor?](repeating: nil, count: encoder.count + 1)
        for (j, (_, b)) in decoder.enumerated().reversed() {
            let (dIn, de) = b.backward(dh)
            dEmb.add(de)
            if let c = concatenations[j] {
                let (dPrev, dSkip) = splitChannels(dIn, at: c.split)
                precondition(dSkips[c.skip] == nil, "SongUNet: skip \(c.skip) consumed twice")
                dSkips[c.skip] = dSkip
                dh = dPrev
            } else {
                dh = dIn
            }
        }
        // Encoder in reverse: each output's gradient is the path onward plus its skip's.
        for i in stride(from: encoder.count, through: 1, by: -1) {
            if let ds = dSkips[i] { dh.add(ds) }
            let (dIn, de) = encoder[i - 1].block.backward(dh)
            dEmb.add(de)
            dh = dIn
        }
        if let ds = dSkips[0] { dh.add(ds) }
        let dx = inputConv.backward(dh)
        // The positional features of c_noise are not differentiated; only the mapping weights get gradients.
        _ = mapLayer0.backward(mapSilu0.backward(mapLayer1.backward(mapSilu1.backward(dEmb))))
        return dx
    }
}
