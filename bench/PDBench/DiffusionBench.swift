import ArgumentParser
import Engine
import Foundation

/// `pdpipe-bench diffusion`: Patch Diffusion training and sampling throughput on the benchmark
/// config (model_channels 64, mult [1,2,2], 2 blocks, attention at level 1 = 16x16, C = 3, R = 32,
/// batch 32) against the PyTorch reference (`reference/unet_reference.py bench`, same threads, fp32),
/// and seconds per counted kimg at p = 0.5 vs p = 1.0.
struct DiffusionBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "diffusion", abstract: "Patch Diffusion training/sampling benchmark.")

    @Option(help: "Threads for OpenBLAS and the engine (and PyTorch).") var threads = 2
    @Option(help: "Timed runs per measurement (medians are reported).") var runs = 5
    @Option(help: "Training batch B.") var batch = 32
    @Option(help: "Sampling batch.") var sampleBatch = 64
    @Option(help: "U-Net base width.") var modelChannels = 64
    @Option(help: "Residual blocks per level.") var numBlocks = 2
    @Option(help: "Markdown output file.") var output = "results/diffusion-bench.md"
    @Flag(help: "Skip the PyTorch reference.") var noTorch = false
    @Option(help: "Python interpreter for the PyTorch reference.") var python = "python3"

    func run() throws {
        let kernel = Engine.startUp(threads: threads)
        let r = 32, c = 3
        let config = UNetConfig(imageChannels: c, coordinates: true, modelChannels: modelChannels, channelMult: [1, 2, 2],
                                numBlocks: numBlocks, attentionLevels: [1], dropout: 0)
        var md: [String] = []
        func emit(_ s: String) { print(s); md.append(s) }
        emit("# Patch Diffusion benchmark\n")
        emit("Command: `swift run -c release pdpipe-bench diffusion --threads \(threads) --runs \(runs) --batch \(batch) --sample-batch \(sampleBatch) --model-channels \(modelChannels) --num-blocks \(numBlocks)\(noTorch ? " --no-torch" : "")`  ")
        emit("Date: \(ISO8601DateFormatter().string(from: Date()))  ")
        emit("BLAS kernel: \(kernel)  ")
        emit("Config: model_channels \(modelChannels), mult [1,2,2], \(numBlocks) blocks/level, attention at level 1 (16x16 for full images), C = 3 (+2 coordinate channels), R = \(r), fp32, \(threads) threads.  ")
        emit("Timings are medians of \(runs) runs after one warm-up; the machine is shared with other jobs (load average at start: \(shell("cut -d' ' -f1-3 /proc/loadavg").trimmingCharacters(in: .whitespacesAndNewlines))), so the spread (max - min) / median is shown.\n")

        let training = BenchTraining(config: config, resolution: r, imageCount: 512, batch: batch, realP: 0.5)
        let (net, patches) = (training.net, training.patches)
        var rng = training.rng

        func measure(_ body: () -> Void) -> (median: Double, spread: Double) {
            var ts: [Double] = []
            body()
            for _ in 0..<runs {
                let t0 = DispatchTime.now().uptimeNanoseconds
                body()
                ts.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
            }
            ts.sort()
            return (ts[ts.count / 2], spread(ts))
        }

        var stepTime: [Int: (median: Double, spread: Double)] = [:]
        for s in patches.sizes.reversed() { stepTime[s] = measure { training.step(size: s) } }
        (net.isTraining, net.retainsForBackward) = (false, false)  // as sampling runs it
        let xs = Tensor(randomNormal: [sampleBatch, c, r, r], using: &rng)
        let grid = PatchCoordinates.fullGrid(count: sampleBatch, size: r, normalizingResolution: r)
        let pre = EDMPreconditioning()
        let forward = measure { _ = pre.denoise(net, xs, sigmas: Array(repeating: 1.0, count: sampleBatch), coordinates: grid) }
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        let peakMB = Double(usage.ru_maxrss) / 1024  // kilobytes on Linux

        var torch: [String: Any]?
        if !noTorch {
            let script = repositoryFile("reference/unet_reference.py")
            let out = shell("\(python) '\(script)' bench --threads \(threads) --batch \(batch) --sample-batch \(sampleBatch) --runs \(runs) --model-channels \(modelChannels) --num-blocks \(numBlocks)")
            if let line = out.split(separator: "\n").last, let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
               obj["step_ms"] != nil { torch = obj }
        }

        let full = stepTime[r]!
        let evals = HeunSampler(steps: 18).evaluations
        emit("## Training and sampling throughput (p = 1, full 32x32 images)\n")
        emit("| measurement | pdpipe | PyTorch \(torch?["torch"] as? String ?? "(not run)") | pdpipe / PyTorch throughput |")
        emit("|---|---:|---:|---:|")
        let tStep = (torch?["step_ms"] as? Double).map { $0 / 1000 }
        let tFwd = (torch?["forward_ms"] as? Double).map { $0 / 1000 }
        emit("| training step, batch \(batch) (ms; spread) | \(f1(full.median * 1000)) (\(pct(full.spread))) | \(tStep.map { f1($0 * 1000) } ?? "-") | \(tStep.map { f2($0 / full.median) + "x" } ?? "-") |")
        emit("| training images/s | \(f1(Double(batch) / full.median)) | \(tStep.map { f1(Double(batch) / $0) } ?? "-") | |")
        emit("| forward, batch \(sampleBatch) (ms; spread) | \(f1(forward.median * 1000)) (\(pct(forward.spread))) | \(tFwd.map { f1($0 * 1000) } ?? "-") | \(tFwd.map { f2($0 / forward.median) + "x" } ?? "-") |")
        emit("| sampling images/s at \(evals) evaluations (18 Heun steps) | \(f2(Double(sampleBatch) / (Double(evals) * forward.median))) | \(tFwd.map { f2(Double(sampleBatch) / (Double(evals) * $0)) } ?? "-") | |")
        emit("\nPyTorch's step is the same functional network (reference/unet_reference.py) with torch.optim.Adam; ours includes patch loading and the EMA update.")
        emit("Issue anchor (PyTorch 2.13 CPU, 2 threads, measured earlier on this machine): 1487 ms per step, 1053 ms per forward of 64.\n")

        emit("## Seconds per counted kimg: p = 0.5 vs p = 1.0\n")
        emit("Step time per patch size (each round loads m(s) B = \(batch) x m patches), combined with the schedule's probabilities: E[step time] = sum p_s t_s, counted images per step = B m_avg.\n")
        emit("| patch size s | patches per round | step ms (spread) | ms per patch |")
        emit("|---:|---:|---:|---:|")
        for s in patches.sizes {
            let t = stepTime[s]!, n = patches.multiplier(forSize: s) * batch
            emit("| \(s) | \(n) | \(f1(t.median * 1000)) (\(pct(t.spread))) | \(f2(t.median * 1000 / Double(n))) |")
        }
        func secondsPerKimg(_ p: Double) -> Double {
            let sched = PatchSchedule(resolution: r, realP: p)
            let expected = zip(sched.sizes, sched.probabilities).reduce(0.0) { $0 + $1.1 * stepTime[$1.0]!.median }
            return expected / (Double(batch) * sched.averageMultiplier) * 1000
        }
        let half = secondsPerKimg(0.5), one = secondsPerKimg(1.0)
        let flopsHalf = net.trainingFlopsPerCountedImage(schedule: PatchSchedule(resolution: r, realP: 0.5))
        let flopsOne = net.trainingFlopsPerCountedImage(schedule: PatchSchedule(resolution: r, realP: 1))
        emit("\n| p | m_avg | s per counted kimg | training GFLOP per counted image (analytic) |")
        emit("|---:|---:|---:|---:|")
        emit("| 1.0 | 1.0 | \(f1(one)) | \(f2(flopsOne / 1e9)) |")
        emit("| 0.5 | 1.9 | \(f1(half)) | \(f2(flopsHalf / 1e9)) |")
        emit("\nWall-time ratio p=1.0 / p=0.5 per counted kimg: **\(f2(one / half))x** (FLOP ratio \(f2(flopsOne / flopsHalf))x; goal >= 2.4x, cost model ~2.7x).\n")

        let paramBytes = Double(net.parameterCount * 4)
        emit("## Memory\n")
        emit("Parameters: \(net.parameterCount) (\(f1(paramBytes / 1e6)) MB); weights + grads + Adam m, v + EMA = \(f1(5 * paramBytes / 1e6)) MB. Peak RSS of this benchmark process (all measurements above, batch \(batch) training at p = 1 and the largest patch rounds): \(f1(peakMB)) MB.\n")
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: output).deletingLastPathComponent(), withIntermediateDirectories: true)
        try (md.joined(separator: "\n") + "\n").write(toFile: output, atomically: true, encoding: .utf8)
        print("wrote \(output)")
    }
}

private func pct(_ x: Double) -> String { String(format: "%.0f%%", x * 100) }
