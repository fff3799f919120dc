import ArgumentParser
import Engine
import Foundation

/// `pdpipe-bench patch-round-export DIR`: one Patch Diffusion training round (p = 0.5) at each
/// patch size, drawn by the trainer's own `drawRound`, for `reference/patch_round_check.py`, which
/// rebuilds it with the official code's conventions (crop, coordinates, batch multiplier, loss
/// reduction) and compares. Also 4,000 offsets per sub-image size, to check they are uniform.
struct PatchRoundExport: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "patch-round-export",
                                                    abstract: "Export training rounds at each patch size for the PyTorch reference check.")

    @Argument(help: "Output directory.") var directory: String
    @Option(help: "Threads.") var threads = 2

    func run() throws {
        _ = Engine.startUp(threads: threads)
        let dir = URL(fileURLWithPath: directory)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        // Ten 16x16 RGB images of smooth random structure (uint8 NHWC, as a dataset stores them).
        let (count, r, c) = (10, 16, 3)
        var rng = RandomGenerator(seed: 11)
        let bytes = (0..<(count * r * r * c)).map { _ in UInt8(rng.integer(upTo: 255)) }
        let images = InMemoryImages(count: count, resolution: r, channels: c, bytes: bytes)
        let network = UNetConfig(imageChannels: c, coordinates: true, modelChannels: 16, channelMult: [1, 2], numBlocks: 1,
                                 attentionLevels: [1], dropout: 0)
        let config = TrainingConfig(network: network, resolution: r, realP: 0.5, schedule: .stochastic, batch: 3, totalKimg: 1)
        var tensors: [(String, Tensor)] = [("images", Tensor(shape: [count, r, r, c], data: bytes.map(Float.init)))]
        var rounds: [[String: Any]] = []
        let net = SongUNet(config: network, seed: 5)
        for (name, p) in net.namedParameters() {  // move weights off the near-zero initialisation
            var prng = RandomGenerator(seed: 99)
            let scale = max(0.05, Float(p.value.data.map { abs($0) }.max() ?? 0))
            p.value = Tensor(shape: p.shape, data: p.value.data.map { $0 + 0.3 * scale * prng.normal() })
            tensors.append(("weight." + name, p.value))
        }
        var drawn = Set<Int>()
        var draw = RandomGenerator(seed: 3)
        while drawn.count < 3 {
            let (batch, indices) = PatchDiffusionTrainer.drawRound(config: config, images: images, progress: 0, using: &draw)
            guard drawn.insert(batch.size).inserted else { continue }
            let n = batch.offsets.count
            let sigmas = (0..<n).map { k in exp(Double(k) / Double(max(n - 1, 1)) * 6 - 4) }  // 0.018 ... 7.4
            var noisy = batch.images
            let plane = noisy.count / n
            for k in 0..<n { for e in (k * plane)..<((k + 1) * plane) { noisy.data[e] += Float(sigmas[k]) * draw.normal() } }
            net.zeroGrad()
            let loss = EDMLoss().forwardBackward(net, clean: batch.images, noisy: noisy, sigmas: sigmas, coordinates: batch.coordinates)
            let s = batch.size
            tensors += [("s\(s).patches", batch.images), ("s\(s).coords", batch.coordinates), ("s\(s).noisy", noisy)]
            tensors += net.namedParameters().map { ("s\(s).grad." + $0.name, $0.parameter.grad) }
            rounds.append(["size": s, "indices": indices, "rows": batch.offsets.map(\.row), "columns": batch.offsets.map(\.column),
                           "sigmas": sigmas, "loss": loss])
        }
        // Offsets alone, many of them, for the uniformity check.
        var offsets: [String: [Int]] = [:]
        for s in [r / 4, r / 2] {
            var o = RandomGenerator(seed: UInt64(s))
            let drawnOffsets = (0..<4000).map { _ in config.patchSchedule.drawOffset(size: s, using: &o) }
            offsets["\(s)"] = drawnOffsets.flatMap { [$0.row, $0.column] }
        }
        let meta: [String: Any] = ["resolution": r, "channels": c, "batch": config.batch, "real_p": config.realP,
                                   "network": try JSONSerialization.jsonObject(with: TensorArchive.canonicalJSON(network)),
                                   "rounds": rounds, "offsets": offsets]
        try TensorArchive(metadata: try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys]), tensors: tensors)
            .write(to: dir.appendingPathComponent("rounds.pdt"))
        print("wrote \(dir.path)/rounds.pdt: rounds at sizes \(rounds.map { $0["size"]! })")
    }
}
