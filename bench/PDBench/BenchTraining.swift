import Engine
import Foundation

/// The training loop the benchmarks time and measure: a SongUNet on random uint8 images
/// (throughput does not depend on content), EDM loss, Adam and EMA.
final class BenchTraining {
    let net: SongUNet
    let images: InMemoryImages
    let patches: PatchSchedule
    let batch: Int
    var rng = RandomGenerator(seed: 2)
    private let adam: Adam
    private var ema: EMA
    private let loss = EDMLoss()

    init(config: UNetConfig, resolution r: Int, imageCount: Int, batch: Int, realP: Double) {
        let c = config.imageChannels
        var pixels = RandomGenerator(seed: 1)
        images = InMemoryImages(count: imageCount, resolution: r, channels: c,
                                bytes: (0..<(imageCount * r * r * c)).map { _ in UInt8(truncatingIfNeeded: pixels.next()) })
        net = SongUNet(config: config, seed: 0)
        adam = Adam(parameters: net.parameters)
        ema = EMA(from: net.parameters)
        patches = PatchSchedule(resolution: r, realP: realP)
        self.batch = batch
    }

    /// One optimiser step on a round of patch size s: load m(s) B crops, loss + backward, Adam, EMA.
    func step(size s: Int) { _ = timedStep(size: s) }

    /// `step`, with the wall seconds of its three phases.
    func timedStep(size s: Int) -> (data: Double, lossAndGradients: Double, optimizer: Double) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let n = patches.multiplier(forSize: s) * batch
        let idx = (0..<n).map { _ in rng.integer(upTo: images.count - 1) }
        let offs = (0..<n).map { _ in patches.drawOffset(size: s, using: &rng) }
        let round = PatchBatch(source: images, indices: idx, size: s, offsets: offs)
        let t1 = DispatchTime.now().uptimeNanoseconds
        net.zeroGrad()
        _ = loss.forwardBackward(net, batch: round, using: &rng)
        let t2 = DispatchTime.now().uptimeNanoseconds
        adam.step(lr: 1e-4)
        ema.update(from: net.parameters, beta: 0.999)
        let t3 = DispatchTime.now().uptimeNanoseconds
        return (Double(t1 - t0) * 1e-9, Double(t2 - t1) * 1e-9, Double(t3 - t2) * 1e-9)
    }
}
