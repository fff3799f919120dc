import ArgumentParser
import Engine
import Foundation

/// `pdpipe-bench diffusion-backends`: the benchmark U-Net's training step (p = 1, full images)
/// and sampling forward on OpenBLAS, on oneDNN fp32 with direct 3x3 convolutions and with
/// Winograd ones (the default where oneDNN has them), on CPUs with native bf16 also oneDNN bf16,
/// and optionally PyTorch's fp32 (and bf16 autocast), in interleaved rounds (openblas, onednn
/// direct, onednn, ..., torch, openblas, ...) so a shared machine's load hits all alike.
/// Each round times one step and one forward per engine after warm-up; PyTorch's round is one
/// `reference/unet_reference.py bench --runs 1` call per precision (its own warm-up, then one
/// timed run).
struct DiffusionBackendBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "diffusion-backends",
                                                    abstract: "Training step and forward: OpenBLAS vs oneDNN (vs PyTorch), interleaved.")
    @Option var threads = 2
    @Option var rounds = 5
    @Option var batch = 32
    @Option var sampleBatch = 64
    @Option var modelChannels = 64
    @Option var numBlocks = 2
    @Flag(help: "Skip the PyTorch reference.") var noTorch = false
    @Option var python = "python3"

    func run() throws {
        Engine.startUp(threads: threads)
        let r = 32, c = 3
        let config = UNetConfig(imageChannels: c, coordinates: true, modelChannels: modelChannels, channelMult: [1, 2, 2],
                                numBlocks: numBlocks, attentionLevels: [1], dropout: 0)
        print("Command: `pdpipe-bench diffusion-backends --threads \(threads) --rounds \(rounds) --batch \(batch) --sample-batch \(sampleBatch) --model-channels \(modelChannels) --num-blocks \(numBlocks)\(noTorch ? " --no-torch" : "")`  ")
        print("CPU: \(shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").trimmingCharacters(in: .whitespacesAndNewlines)), \(ProcessInfo.processInfo.activeProcessorCount) cores; \(BLASKernel.report); \(OneDNN.description)  ")
        print("Load average at start: \(shell("cut -d' ' -f1-3 /proc/loadavg").trimmingCharacters(in: .whitespacesAndNewlines))  ")
        var engines: [(name: String, backend: any ComputeBackend)] = [
            ("pdpipe OpenBLAS", BLASBackend()),
            ("pdpipe oneDNN fp32, direct 3x3 convolutions", try OneDNNBackend(winograd: false)),
            ("pdpipe oneDNN fp32", try OneDNNBackend())]
        let bf16 = Precision.bf16.unsupportedReason == nil
        if bf16 {
            engines += [("pdpipe oneDNN bf16", try OneDNNBackend(precision: .bf16))]
        } else {
            print("bf16 rows skipped: \(Precision.bf16.unsupportedReason!)  ")
        }
        let backends = engines.map(\.backend)
        let runs = backends.map { b in Engine.withBackend(b) { BenchTraining(config: config, resolution: r, imageCount: 512, batch: batch, realP: 1) } }
        var rng = RandomGenerator(seed: 4)
        let xs = Tensor(randomNormal: [sampleBatch, c, r, r], using: &rng)
        let grid = PatchCoordinates.fullGrid(count: sampleBatch, size: r, normalizingResolution: r)
        let pre = EDMPreconditioning()
        func step(_ t: BenchTraining) { (t.net.isTraining, t.net.retainsForBackward) = (true, true); t.step(size: r) }
        func forward(_ t: BenchTraining) -> Tensor {
            (t.net.isTraining, t.net.retainsForBackward) = (false, false)  // as sampling runs it
            return pre.denoise(t.net, xs, sigmas: Array(repeating: 1.0, count: sampleBatch), coordinates: grid)
        }
        // Same weights in every engine: their forward outputs agree to fp32 rounding.
        let outs = runs.map { forward($0) }
        print("Forward of the same network against OpenBLAS, relative L2 difference: "
              + zip(engines, runs).dropFirst().enumerated().map { i, e in
                  "\(e.0.name) (\(e.1.net.activationBlock)-channel blocks) " + String(format: "%.1e", BackendSelection.relativeL2(outs[i + 1].data, outs[0].data))
              }.joined(separator: "; ") + "  ")
        for t in runs { step(t) }  // warm-up (primitives, scratch buffers)

        let script = repositoryFile("reference/unet_reference.py")
        let torch = runs.count  // PyTorch fp32's row; bf16 autocast's follows
        let torchPrecisions = bf16 ? ["fp32", "bf16"] : ["fp32"]
        var stepT = [[Double]](repeating: [], count: torch + torchPrecisions.count), fwdT = stepT
        var torchVersion: String?
        func time(_ body: () -> Void) -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        }
        for _ in 0..<rounds {
            for (i, t) in runs.enumerated() {
                stepT[i].append(time { step(t) })
                fwdT[i].append(time { _ = forward(t) })
            }
            for (j, precision) in torchPrecisions.enumerated() where !noTorch {
                let out = shell("\(python) '\(script)' bench --threads \(threads) --batch \(batch) --sample-batch \(sampleBatch) --runs 1 --model-channels \(modelChannels) --num-blocks \(numBlocks) --precision \(precision)")
                if let line = out.split(separator: "\n").last,
                   let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                   let s = obj["step_ms"] as? Double, let f = obj["forward_ms"] as? Double {
                    stepT[torch + j].append(s / 1000); fwdT[torch + j].append(f / 1000)
                    torchVersion = obj["torch"] as? String
                }
            }
        }
        print("Load average at end: \(shell("cut -d' ' -f1-3 /proc/loadavg").trimmingCharacters(in: .whitespacesAndNewlines))\n")
        func med(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.sorted()[xs.count / 2] }
        let names = engines.map(\.name) + ["PyTorch \(torchVersion ?? "(not run)") fp32", "PyTorch \(torchVersion ?? "(not run)") bf16 autocast"]
        print("| engine | training step, batch \(batch) (ms, median; spread) | forward, batch \(sampleBatch) (ms, median; spread) | step speed vs OpenBLAS | forward speed vs OpenBLAS | step speed vs PyTorch fp32 | forward speed vs PyTorch fp32 | step speed vs PyTorch bf16 | forward speed vs PyTorch bf16 |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for i in stepT.indices {
            guard let s = med(stepT[i]), let f = med(fwdT[i]) else { continue }
            let s0 = med(stepT[0])!, f0 = med(fwdT[0])!
            func versus(_ row: Int) -> String {
                guard row < stepT.count, let ts = med(stepT[row]), let tf = med(fwdT[row]) else { return "- | -" }
                return "\(f2(ts / s))x | \(f2(tf / f))x"
            }
            print("| \(names[i]) | \(f1(s * 1000)) (\(pctS(spread(stepT[i])))) | \(f1(f * 1000)) (\(pctS(spread(fwdT[i])))) | \(f2(s0 / s))x | \(f2(f0 / f))x | \(versus(torch)) | \(versus(torch + 1)) |")
        }
    }
}

private func pctS(_ x: Double) -> String { String(format: "%.0f%%", x * 100) }
