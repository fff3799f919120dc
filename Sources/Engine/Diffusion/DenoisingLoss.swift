import Foundation

/// The EDM denoising loss of a trained network on FULL images at fixed noise levels: the quantity
/// training minimises, measured per sigma instead of averaged over the training distribution of
/// sigma, and always on whole R x R images with the full coordinate grid, whatever patch sizes the
/// network was trained on. It shows what a Patch Diffusion model has learnt about whole images at
/// each noise level (large sigma: global layout; small sigma: local detail).
///
/// Per image: lambda(sigma) * sum over pixels of (D(y + sigma n; sigma) - y)^2, the training loss's
/// reduction (EDMLoss), averaged over the images. Image k's noise is stream k of `seed`, the same
/// for every sigma and every model, so two models are compared on identical inputs.
public struct DenoisingLoss: Sendable {
    public var preconditioning = EDMPreconditioning()
    public var seed: UInt64
    public var batch: Int

    public init(seed: UInt64, batch: Int) { (self.seed, self.batch) = (seed, batch) }

    /// Mean loss over `images` (NCHW in [-1, 1]) at each sigma, in the order given.
    public func evaluate(_ net: SongUNet, images: Tensor, sigmas: [Double]) -> [Double] {
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        precondition(h == w, "DenoisingLoss: square images only")
        let plane = c * h * w
        return sigmas.map { sigma in
            let weight = preconditioning.lossWeight(sigma: sigma)
            var total = 0.0
            var first = 0
            while first < n {
                let m = min(batch, n - first)
                let y = Tensor(shape: [m, c, h, w], data: Array(images.data[(first * plane)..<((first + m) * plane)]))
                var noisy = y
                for k in 0..<m {
                    var rng = RandomGenerator(seed: seed, stream: UInt64(first + k))
                    for e in (k * plane)..<((k + 1) * plane) { noisy.data[e] += Float(sigma) * rng.normal() }
                }
                let coords = PatchCoordinates.fullGrid(count: m, size: h, normalizingResolution: h)
                let d = preconditioning.denoise(net, noisy, sigmas: Array(repeating: sigma, count: m), coordinates: coords)
                for e in 0..<(m * plane) {
                    let diff = Double(d.data[e] - y.data[e])
                    total += diff * diff
                }
                first += m
            }
            return weight * total / Double(n)
        }
    }
}
