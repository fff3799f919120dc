/// Analytic FLOP count of the U-Net forward pass for one image (2 per multiply-add).
///
/// Counts the matrix work: convolutions (2 Cin Cout k^2 H W), linear layers (2 in out) and
/// attention's two products (2 P^2 C each, P = H W). Normalisation, activations, resampling
/// and additions are left out (under 2% of the total for the configurations used here).
/// Training costs about 3x the forward (backward = 2x forward).
extension SongUNet {
    public func forwardFlops(height: Int, width: Int) -> Double {
        func conv(_ cin: Int, _ cout: Int, _ k: Int, _ p: Int) -> Double { 2 * Double(cin * cout * k * k) * Double(p) }
        func block(_ b: UNetBlock, _ p: Int) -> Double {
            var f = conv(b.inChannels, b.outChannels, 3, p) + conv(b.outChannels, b.outChannels, 3, p)
                + 2 * Double(config.embeddingChannels * b.outChannels)
            if b.skip != nil { f += conv(b.inChannels, b.outChannels, 1, p) }
            if b.hasAttention {
                let c = b.outChannels
                f += conv(c, 3 * c, 1, p) + conv(c, c, 1, p) + 2 * 2 * Double(p) * Double(p) * Double(c)
            }
            return f
        }
        let (mc, emb) = (config.modelChannels, config.embeddingChannels)
        var total = 2 * Double(mc * emb) + 2 * Double(emb * emb)
        var (h, w) = (height, width)
        total += conv(config.inChannels, mc, 3, h * w)
        for (_, b) in encoder + decoder {
            switch b.resample {
            case .down: (h, w) = (h / 2, w / 2)
            case .up: (h, w) = (h * 2, w * 2)
            case .none: break
            }
            total += block(b, h * w)
        }
        precondition(h == height && w == width, "forwardFlops: resolution bookkeeping")
        return total + conv(outNorm.norm.channels, config.imageChannels, 3, h * w)
    }

    /// Expected training FLOPs per counted image under a patch schedule: each patch counts as one
    /// image and costs 3x the forward at its size; sizes are weighted by how many patches they contribute.
    public func trainingFlopsPerCountedImage(schedule: PatchSchedule) -> Double {
        var flops = 0.0, images = 0.0
        for (i, s) in schedule.sizes.enumerated() {
            let patches = schedule.probabilities[i] * Double(PatchSchedule.multipliers[i])
            flops += patches * 3 * forwardFlops(height: s, width: s)
            images += patches
        }
        return flops / images
    }
}
