import Foundation

/// Draws images from trained EMA weights with the Heun sampler (docs/edm.md section 5),
/// feeding the full-grid coordinate planes at every step.
public final class ImageGenerator {
    public enum CoordinateMode: String, Sendable, CaseIterable, Codable {
        /// coord = 2 idx / (R_train - 1) - 1: a larger canvas extends past +1 (the paper's extrapolation).
        case extrapolate
        /// coord = 2 idx / (R_out - 1) - 1: a larger canvas is squeezed into [-1, 1].
        case rescale
    }

    public let net: SongUNet
    public let weights: EMAWeightsMetadata
    public let sampler: HeunSampler
    public let outputResolution: Int
    public let coordinateMode: CoordinateMode
    let preconditioning = EDMPreconditioning()

    /// Loads a weights archive written by `PatchDiffusionTrainer.emaArchive()`.
    public init(weightsURL: URL, sampler: HeunSampler, outputResolution: Int? = nil,
                coordinateMode: CoordinateMode = .extrapolate) throws {
        let (net, meta) = try SongUNet.loadEMA(weightsURL)
        let size = outputResolution ?? meta.resolution
        guard size % meta.network.sizeDivisor == 0, size >= meta.network.sizeDivisor else {
            throw DiffusionError("resolution \(size) is not a multiple of \(meta.network.sizeDivisor) (the U-Net's downsampling)")
        }
        (self.net, self.weights, self.sampler, self.outputResolution, self.coordinateMode) = (net, meta, sampler, size, coordinateMode)
        net.retainsForBackward = false  // sampling is forward only
    }

    /// Images `first ..< first + count` of `seed`, NCHW in roughly [-1, 1].
    public func generate(first: Int, count: Int, seed: UInt64) -> Tensor {
        let r = outputResolution
        let coords = PatchCoordinates.fullGrid(count: count, size: r,
                                               normalizingResolution: coordinateMode == .extrapolate ? weights.resolution : r)
        return Engine.exclusive {
            sampler.sample(first: first, count: count, channels: net.imageChannels, height: r, width: r, seed: seed) { x, t in
                preconditioning.denoise(net, x, sigmas: Array(repeating: t, count: x.shape[0]), coordinates: coords)
            }
        }
    }
}

extension SongUNet {
    /// The network of a weights archive written by `PatchDiffusionTrainer.emaArchive()` (final
    /// weights or a snapshot), in evaluation mode (no dropout).
    public static func loadEMA(_ url: URL) throws -> (SongUNet, EMAWeightsMetadata) {
        let archive = try TensorArchive.read(url)
        let meta: EMAWeightsMetadata
        do { meta = try JSONDecoder().decode(EMAWeightsMetadata.self, from: archive.metadata) }
        catch { throw DiffusionError("\(url.path): not a pdpipe U-Net weights file (\(error))") }
        let net = SongUNet(config: meta.network, seed: 0)
        for (name, p) in net.namedParameters() {
            guard let t = archive.tensor(named: name), t.shape == p.shape else {
                throw DiffusionError("\(url.path): missing or mis-shaped weight \(name)")
            }
            p.value = t
        }
        net.isTraining = false
        return (net, meta)
    }
}
