import ArgumentParser
import Engine
import Foundation

/// `pdpipe-bench diffusion-backends`: the benchmark U-Net's training step (p = 1, full images)
/// and sampling forward on OpenBLAS, on oneDNN with NCHW activations (every convolution
/// reorders) and on oneDNN with the activations in its blocked layout (the default), and
/// optionally PyTorch's, in interleaved rounds (openblas, onednn nchw, onednn, torch, openblas,
/// ...) so a shared machine's load hits all alike.
/// Each round times one step and one forward per engine after warm-up; PyTorch's round is one
/// `reference/unet_reference.py bench --runs 1` call (its own warm-up, then one timed run).
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
        let backends: [any ComputeBackend] = [BLASBackend(), try OneDNNBackend(blockedActivations: false), try OneDNNBackend()]
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
        print("Forward of the same network, oneDNN (NCHW; blocked, \(runs[2].net.activationBlock)-channel blocks) vs OpenBLAS: relative L2 difference "
              + outs.dropFirst().map { String(format: "%.1e", BackendSelection.relativeL2($0.data, outs[0].data)) }.joined(separator: "; ") + "  ")
        for t in runs { step(t) }  // warm-up (primitives, scratch buffers)

        let script = repositoryFile("reference/unet_reference.py")
        let torch = runs.count
        var stepT = [[Double]](repeating: [], count: torch + 1), fwdT = stepT
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
            if !noTorch {
                let out = shell("\(python) '\(script)' bench --threads \(threads) --batch \(batch) --sample-batch \(sampleBatch) --runs 1 --model-channels \(modelChannels) --num-blocks \(numBlocks)")
                if let line = out.split(separator: "\n").last,
                   let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                   let s = obj["step_ms"] as? Double, let f = obj["forward_ms"] as? Double {
                    stepT[torch].append(s / 1000); fwdT[torch].append(f / 1000)
                    torchVersion = obj["torch"] as? String
                }
            }
        }
        print("Load average at end: \(shell("cut -d' ' -f1-3 /proc/loadavg").trimmingCharacters(in: .whitespacesAndNewlines))\n")
        func med(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.sorted()[xs.count / 2] }
        let names = ["pdpipe OpenBLAS", "pdpipe oneDNN fp32, NCHW activations", "pdpipe oneDNN fp32, blocked activations",
                     "PyTorch \(torchVersion ?? "(not run)") fp32"]
        print("| engine | training step, batch \(batch) (ms, median; spread) | forward, batch \(sampleBatch) (ms, median; spread) | step speed vs OpenBLAS | forward speed vs OpenBLAS | step speed vs PyTorch | forward speed vs PyTorch |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for i in 0...torch {
            guard let s = med(stepT[i]), let f = med(fwdT[i]) else { continue }
            let s0 = med(stepT[0])!, f0 = med(fwdT[0])!
            let vsTorch = med(stepT[torch]).map { (f2($0 / s), f2(med(fwdT[torch])! / f)) }
            print("| \(names[i]) | \(f1(s * 1000)) (\(pctS(spread(stepT[i])))) | \(f1(f * 1000)) (\(pctS(spread(fwdT[i])))) | \(f2(s0 / s))x | \(f2(f0 / f))x | \(vsTorch.map { $0.0 + "x" } ?? "-") | \(vsTorch.map { $0.1 + "x" } ?? "-") |")
        }
    }
}

private func pctS(_ x: Double) -> String { String(format: "%.0f%%", x * 100) }
