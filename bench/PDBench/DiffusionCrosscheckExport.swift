import ArgumentParser
import Engine
import Foundation

/// `pdpipe-bench diffusion-export DIR`: writes what `reference/unet_reference.py` compares against
/// PyTorch: a U-Net's weights from our initialisation, a fixed batch (clean patches, noisy inputs,
/// sigmas, coordinates) and our loss and parameter gradients for it. Two cases: `init` (EDM's
/// initialisation as is) and `perturbed` (every weight moved by noise, so that the paths the
/// near-zero initialisation silences carry gradient too).
struct DiffusionCrosscheckExport: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "diffusion-export",
                                                    abstract: "Export U-Net weights, a batch and our loss/gradients for the PyTorch cross-check.")

    @Argument(help: "Output directory.") var directory: String
    @Option(help: "Threads.") var threads = 2

    static let config = UNetConfig(imageChannels: 3, coordinates: true, modelChannels: 32, channelMult: [1, 2, 2], numBlocks: 2,
                                   attentionLevels: [1], dropout: 0)

    func run() throws {
        _ = Engine.startUp(threads: threads)
        let dir = URL(fileURLWithPath: directory)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        // A fixed batch: 4 patches of 16x16 cut from 32x32 images at different offsets, one sigma each.
        var rng = RandomGenerator(seed: 2024)
        let (n, c, s) = (4, 3, 16)
        let clean = Tensor(shape: [n, c, s, s], data: (0..<(n * c * s * s)).map { _ in rng.uniform(-1, 1) })
        let sigmas = [0.02, 0.4, 2.5, 30.0]
        var noisy = clean
        for k in 0..<n { for e in 0..<(c * s * s) { noisy.data[k * c * s * s + e] += Float(sigmas[k]) * rng.normal() } }
        let offsets = [PatchOffset(row: 0, column: 0), PatchOffset(row: 16, column: 3), PatchOffset(row: 7, column: 16), PatchOffset(row: 11, column: 9)]
        let coords = PatchCoordinates.batch(size: s, offsets: offsets, resolution: 32)
        let meta = try TensorArchive.canonicalJSON(["sigmas": sigmas])
        try TensorArchive(metadata: meta, tensors: [("clean", clean), ("noisy", noisy), ("coords", coords)])
            .write(to: dir.appendingPathComponent("batch.pdt"))

        for case_ in ["init", "perturbed"] {
            let net = SongUNet(config: Self.config, seed: 7)
            if case_ == "perturbed" {
                var prng = RandomGenerator(seed: 99)
                for (_, p) in net.namedParameters() {
                    let scale = max(0.05, Float(p.value.data.map { abs($0) }.max() ?? 0))
                    p.value = Tensor(shape: p.shape, data: p.value.data.map { $0 + 0.3 * scale * prng.normal() })
                }
            }
            let weights = net.namedParameters().map { ($0.name, $0.parameter.value) }
            let config = try TensorArchive.canonicalJSON(Self.config)
            try TensorArchive(metadata: config, tensors: weights).write(to: dir.appendingPathComponent("weights-\(case_).pdt"))
            net.zeroGrad()
            let loss = EDMLoss().forwardBackward(net, clean: clean, noisy: noisy, sigmas: sigmas, coordinates: coords)
            let grads = net.namedParameters().map { ($0.name, $0.parameter.grad) }
            try TensorArchive(metadata: try TensorArchive.canonicalJSON(["loss": loss]), tensors: grads)
                .write(to: dir.appendingPathComponent("grads-\(case_).pdt"))
            print("\(case_): loss \(loss), \(net.parameterCount) parameters")
        }
        print("wrote \(dir.path)")
    }
}
