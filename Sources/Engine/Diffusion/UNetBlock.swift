import Foundation

/// EDM's DDPM++ residual block (SongUNet's UNetBlock with adaptive_scale = False,
/// resample_proj = True, skip_scale = sqrt(0.5), GroupNorm eps 1e-6, one attention head):
///
///     h   = conv0(resample(silu(norm0(x))))
///     h   = conv1(dropout(silu(norm1(h + affine(emb)))))      conv1 init x 1e-5
///     out = (h + skip(x)) * sqrt(0.5)                          skip = 1x1 conv of resample(x) when shape changes
///     out = (attn(norm2(out)) + out) * sqrt(0.5)               when attention is on
///
/// The embedding is added to the conv0 output before norm1, exactly as EDM does. Each
/// silu(norm(.)) is one `GroupNormSiLU` (fused where the backend can).
public final class UNetBlock: Module {
    public enum Resample: Sendable { case none, up, down }

    public let inChannels, outChannels: Int
    public let resample: Resample
    let norm0: GroupNormSiLU, conv0: Conv2d
    let resample0: (any Layer)?
    let affine: Linear
    let norm1: GroupNormSiLU, dropout: Dropout, conv1: Conv2d
    let skipResample: (any Layer)?
    let skip: Conv2d?
    let norm2: GroupNorm?, attention: SelfAttention?
    static let skipScale = Float(0.5.squareRoot())

    public init(inChannels: Int, outChannels: Int, embeddingChannels: Int, resample: Resample = .none,
                attention: Bool = false, dropout: Double, dropoutSeed: UInt64, rng: inout RandomGenerator) {
        (self.inChannels, self.outChannels, self.resample) = (inChannels, outChannels, resample)
        func makeResample() -> (any Layer)? {
            switch resample { case .none: return nil; case .up: return Upsample2x(); case .down: return Downsample2x() }
        }
        norm0 = GroupNormSiLU(channels: inChannels)
        conv0 = Conv2d(inChannels: inChannels, outChannels: outChannels, kernel: 3, rng: &rng)
        resample0 = makeResample()
        affine = Linear(inFeatures: embeddingChannels, outFeatures: outChannels, rng: &rng)
        norm1 = GroupNormSiLU(channels: outChannels)
        conv1 = Conv2d(inChannels: outChannels, outChannels: outChannels, kernel: 3, initialization: .nearZero, rng: &rng)
        self.dropout = Dropout(p: Float(dropout), seed: dropoutSeed)
        if outChannels != inChannels || resample != .none {
            skip = Conv2d(inChannels: inChannels, outChannels: outChannels, kernel: 1, rng: &rng)
            skipResample = makeResample()
        } else {
            (skip, skipResample) = (nil, nil)
        }
        if attention {
            norm2 = GroupNorm(channels: outChannels)
            let attn = SelfAttention(channels: outChannels, projInit: .nearZero, rng: &rng)
            // EDM's init_attn: the qkv weights are xavier-uniform times sqrt(0.2).
            attn.qkv.weight.value = attn.qkv.weight.value.scaled(Float(0.2.squareRoot()))
            self.attention = attn
        } else {
            (norm2, self.attention) = (nil, nil)
        }
    }

    public var hasAttention: Bool { attention != nil }
    var siluLayers: [SiLU] { [norm0.silu, norm1.silu] }

    public func namedParameters() -> [(name: String, parameter: Parameter)] {
        var out = prefixed("norm0", norm0) + prefixed("conv0", conv0) + prefixed("affine", affine)
            + prefixed("norm1", norm1) + prefixed("conv1", conv1)
        if let skip { out += prefixed("skip", skip) }
        if let norm2, let attention { out += prefixed("norm2", norm2) + prefixed("attn", attention) }
        return out
    }

    public func forward(_ x: Tensor, embedding: Tensor) -> Tensor {
        var h = norm0.forward(x)
        if let resample0 { h = resample0.forward(h) }
        h = conv0.forward(h)
        h = addChannelwise(h, affine.forward(embedding))
        h = conv1.forward(dropout.forward(norm1.forward(h)))
        var shortcut = x
        if let skip, let skipResample { shortcut = skip.forward(skipResample.forward(x)) }
        else if let skip { shortcut = skip.forward(x) }
        var out = addScaled(h, shortcut, scale: Self.skipScale)
        if let norm2, let attention {
            out = addScaled(attention.forward(norm2.forward(out)), out, scale: Self.skipScale)
        }
        return out
    }

    /// Returns dL/dx and dL/d(embedding); accumulates parameter gradients.
    public func backward(_ dy: Tensor) -> (input: Tensor, embedding: Tensor) {
        var dOut = dy
        if let norm2, let attention {
            let g = dy.scaled(Self.skipScale)
            dOut = g + norm2.backward(attention.backward(g))
        }
        let g = dOut.scaled(Self.skipScale)
        // Residual branch.
        var dh = norm1.backward(dropout.backward(conv1.backward(g)))
        let dEmbedding = affine.backward(sumSpatial(dh))
        dh = conv0.backward(dh)
        if let resample0 { dh = resample0.backward(dh) }
        var dx = norm0.backward(dh)
        // Shortcut.
        if let skip {
            var ds = skip.backward(g)
            if let skipResample { ds = skipResample.backward(ds) }
            dx.add(ds)
        } else {
            dx.add(g)
        }
        return (dx, dEmbedding)
    }

    var dropoutLayers: [Dropout] { [dropout] }
}
