import Engine

/// The reference residual block of the engine benchmark: EDM's DDPM++ UNetBlock without
/// attention and with in = out channels: h = conv0(silu(norm0(x))); h = silu(norm1(h + affine(emb)));
/// y = (conv1(dropout(h)) + x) * sqrt(0.5). Built from the engine's layers, with its backward.
final class ReferenceBlock {
    let norm0, norm1: GroupNorm
    let act0 = SiLU(), act1 = SiLU()
    let conv0, conv1: Conv2d
    let affine: Linear
    let dropout: Dropout
    let skipScale = Float(0.5).squareRoot()

    init(channels c: Int, embChannels: Int, dropout p: Float, rng: inout RandomGenerator) {
        norm0 = GroupNorm(channels: c, eps: 1e-6)
        norm1 = GroupNorm(channels: c, eps: 1e-6)
        conv0 = Conv2d(inChannels: c, outChannels: c, kernel: 3, rng: &rng)
        conv1 = Conv2d(inChannels: c, outChannels: c, kernel: 3, initialization: .nearZero, rng: &rng)
        affine = Linear(inFeatures: embChannels, outFeatures: c, rng: &rng)
        dropout = Dropout(p: p, seed: 1)
    }

    func forward(_ x: Tensor, emb: Tensor) -> Tensor {
        var h = conv0.forward(act0.forward(norm0.forward(x)))
        h = act1.forward(norm1.forward(addChannelwise(h, affine.forward(emb))))
        return addScaled(conv1.forward(dropout.forward(h)), x, scale: skipScale)
    }

    /// Returns (dx, demb); accumulates parameter gradients.
    func backward(_ dy: Tensor) -> (Tensor, Tensor) {
        let d = dy.scaled(skipScale)
        var dh = norm1.backward(act1.backward(dropout.backward(conv1.backward(d))))
        let demb = affine.backward(sumSpatial(dh))
        dh = norm0.backward(act0.backward(conv0.backward(dh)))
        dh.add(d)
        return (dh, demb)
    }
}
