import ArgumentParser
import Engine
import Foundation

/// `pdpipe-bench step-breakdown`: where a training step and a sampling forward spend their time,
/// by part (convolutions, matmuls, GroupNorm, the rest; data and optimizer), for our engine and
/// for PyTorch's on the same network, so the next bottleneck is visible.
///
/// Ours: the backend seam is wrapped by `ProfilingBackend`, which times each call; the phases of
/// a step are timed around the calls. PyTorch's: `reference/unet_reference.py bench --profile`
/// splits its unprofiled median by the categories' shares of torch.profiler's self time. Rounds
/// interleave (ours, PyTorch's, ours, ...) so machine load hits both alike; medians over rounds.
struct StepBreakdown: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "step-breakdown",
                                                    abstract: "Per-part time of a training step and a forward, ours and PyTorch's.")
    @Option(help: "Threads for the engine (and PyTorch).") var threads = 2
    @Option(help: "Interleaved rounds (medians are reported).") var rounds = 5
    @Option(help: "Timed steps and forwards of ours per round.") var steps = 2
    @Option(help: "Training batch (full 32x32 images, p = 1).") var batch = 32
    @Option(help: "Sampling forward batch.") var sampleBatch = 64
    @Option(help: "U-Net base width (32: the experiments' network).") var modelChannels = 32
    @Option(help: "Residual blocks per level.") var numBlocks = 1
    @Option(help: "Markdown output file.") var output = "results/step-breakdown.md"
    @Option(help: "fp32, or bf16: ours on oneDNN in bf16 mixed precision, PyTorch's under bf16 autocast.") var precision = Precision.fp32
    @Flag(help: "Skip the PyTorch reference.") var noTorch = false
    @Option var python = "python3"

    /// Parts of the loss-and-gradients pass and of the forward, in table order.
    static let parts = ["conv", "matmul", "GroupNorm", "SiLU", "rest"]

    func run() throws {
        let kernel = Engine.startUp(threads: threads)
        let r = 32
        let config = UNetConfig(imageChannels: 3, coordinates: true, modelChannels: modelChannels, channelMult: [1, 2, 2],
                                numBlocks: numBlocks, attentionLevels: [1], dropout: 0)
        let backend: ComputeBackend = precision == .bf16 ? try OneDNNBackend(precision: .bf16) : Engine.defaultBackend
        let profiler = ProfilingBackend(wrapping: backend)
        let training = Engine.withBackend(profiler) { BenchTraining(config: config, resolution: r, imageCount: 512, batch: batch, realP: 1) }
        var rng = RandomGenerator(seed: 4)
        let xs = Tensor(randomNormal: [sampleBatch, 3, r, r], using: &rng)
        let grid = PatchCoordinates.fullGrid(count: sampleBatch, size: r, normalizingResolution: r)
        let pre = EDMPreconditioning()
        func forward() { _ = pre.denoise(training.net, xs, sigmas: Array(repeating: 1.0, count: sampleBatch), coordinates: grid) }
        let load0 = shell("cut -d' ' -f1-3 /proc/loadavg").trimmingCharacters(in: .whitespacesAndNewlines)

        /// One measurement per key: "step.<part>", "step.data", "step.optimizer", "forward.<part>", ... (seconds).
        var ours: [String: [Double]] = [:], theirs: [String: [Double]] = [:]
        var convFlops = (step: 0.0, forward: 0.0)
        var torchVersion: String?
        func split(_ prefix: String, total: Double) -> Double {
            let t = profiler.totals
            let parts = ["conv": t[.convForward]!.seconds + t[.convBackward]!.seconds, "matmul": t[.matmul]!.seconds,
                         "GroupNorm": t[.normForward]!.seconds + t[.normBackward]!.seconds, "SiLU": t[.silu]!.seconds]
            for (k, v) in parts { ours["\(prefix).\(k)", default: []].append(v) }
            ours["\(prefix).rest", default: []].append(total - parts.values.reduce(0, +))
            ours["\(prefix).total", default: []].append(total)
            return t[.convForward]!.flops + t[.convBackward]!.flops
        }
        (training.net.isTraining, training.net.retainsForBackward) = (true, true)
        training.step(size: r)  // warm-up: scratch buffers, primitives
        (training.net.isTraining, training.net.retainsForBackward) = (false, false)
        forward()
        for _ in 0..<rounds {
            for _ in 0..<steps {
                (training.net.isTraining, training.net.retainsForBackward) = (true, true)
                profiler.reset()
                let phases = training.timedStep(size: r)
                convFlops.step = split("step", total: phases.lossAndGradients)
                ours["step.data", default: []].append(phases.data)
                ours["step.optimizer", default: []].append(phases.optimizer)
                ours["step.all", default: []].append(phases.data + phases.lossAndGradients + phases.optimizer)
                (training.net.isTraining, training.net.retainsForBackward) = (false, false)
                profiler.reset()
                let t0 = DispatchTime.now().uptimeNanoseconds
                forward()
                convFlops.forward = split("forward", total: Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
            }
            if !noTorch, let obj = torchRound() {
                torchVersion = obj["torch"] as? String
                for (phase, key) in [("step", "loss_and_grads"), ("forward", "forward")] {
                    guard let d = obj[key] as? [String: Any], let parts = d["parts_ms"] as? [String: Double],
                          let total = d["total_ms"] as? Double else { continue }
                    for (k, v) in parts { theirs["\(phase).\(k)", default: []].append(v / 1000) }
                    theirs["\(phase).total", default: []].append(total / 1000)
                    if let o = d["optimizer_ms"] as? Double {
                        theirs["step.optimizer", default: []].append(o / 1000)
                        theirs["step.all", default: []].append((total + o) / 1000)
                    }
                }
            }
        }
        let load1 = shell("cut -d' ' -f1-3 /proc/loadavg").trimmingCharacters(in: .whitespacesAndNewlines)

        var md: [String] = []
        func emit(_ s: String) { print(s); md.append(s) }
        let cpu = shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").trimmingCharacters(in: .whitespacesAndNewlines)
        emit("# Where a training step goes: pdpipe and PyTorch, part by part\n")
        emit("Command: `pdpipe-bench step-breakdown --threads \(threads) --rounds \(rounds) --steps \(steps) --batch \(batch) --sample-batch \(sampleBatch) --model-channels \(modelChannels) --num-blocks \(numBlocks)\(precision == .fp32 ? "" : " --precision \(precision.rawValue)")\(noTorch ? " --no-torch" : "")`  ")
        emit("Date: \(ISO8601DateFormatter().string(from: Date()))  ")
        emit("CPU: \(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(threads) threads; \(kernel); backend \(backend.name)  ")
        emit("Network: model_channels \(modelChannels), mult [1,2,2], \(numBlocks) block(s) per level, attention at 16x16, C = 3 (+2 coordinate channels), R = 32, \(precision == .bf16 ? "bf16 mixed precision (ours: oneDNN bf16 convolutions, attention matmuls in fp32; PyTorch: bf16 autocast)" : "fp32"); training at p = 1 (full images).  ")
        emit("Load average at start / end: \(load0) / \(load1). Medians over \(rounds) interleaved rounds (\(steps) steps and forwards of ours per round, one PyTorch process per round).\n")
        emit("Ours: each backend call (convolution, sgemm, GroupNorm, SiLU) is timed at the seam; \"rest\" is the pass's wall time minus those (adds, softmax, resampling, copies, noise and loss). PyTorch's: its unprofiled median split by the shares of torch.profiler's self time per op (conv*, mm/bmm/addmm/linear, group_norm*, silu*, everything else).\n")

        func med(_ xs: [Double]?) -> Double? { guard let xs, !xs.isEmpty else { return nil }; return xs.sorted()[xs.count / 2] }
        func ms(_ x: Double?) -> String { x.map { f1($0 * 1000) } ?? "-" }
        func share(_ x: Double?, _ of: Double?) -> String {
            guard let x, let of, of > 0 else { return "-" }
            return String(format: "%.0f%%", 100 * x / of)
        }
        func table(_ phase: String, rows: [(key: String, label: String)], total: String, flops: Double) {
            emit("| part | pdpipe ms | share | PyTorch \(torchVersion ?? "(not run)") ms | share | PyTorch / pdpipe time |")
            emit("|---|---:|---:|---:|---:|---:|")
            let (oursTotal, theirsTotal) = (med(ours["\(phase).\(total)"]), med(theirs["\(phase).\(total)"]))
            for (key, label) in rows {
                let (a, b) = (med(ours["\(phase).\(key)"]), med(theirs["\(phase).\(key)"]))
                let rate = key == "conv" ? a.map { " (\(f1(flops / $0 / 1e9)) GFLOP/s)" } ?? "" : ""
                let ratio = (a != nil && b != nil && a! > 0) ? f2(b! / a!) + "x" : "-"
                emit("| \(label) | \(ms(a))\(rate) | \(share(a, oursTotal)) | \(ms(b)) | \(share(b, theirsTotal)) | \(ratio) |")
            }
            let ratio = (oursTotal != nil && theirsTotal != nil) ? f2(theirsTotal! / oursTotal!) + "x" : "-"
            emit("| **total** | **\(ms(oursTotal))** | | **\(ms(theirsTotal))** | | **\(ratio)** |\n")
        }
        emit("## Training step, batch \(batch)\n")
        table("step", rows: [("conv", "convolutions, forward + backward"), ("matmul", "matmuls (attention, embedding MLP)"),
                             ("GroupNorm", "GroupNorm, forward + backward (with SiLU where fused)"), ("SiLU", "SiLU, forward + backward"),
                             ("rest", "rest of forward + backward (adds, softmax, resampling, copies, loss)"),
                             ("data", "data (crops, coordinates; PyTorch's inputs are prebuilt)"),
                             ("optimizer", "optimizer (ours: Adam + EMA; PyTorch: Adam)")],
              total: "all", flops: convFlops.step)
        emit("## Sampling forward, batch \(sampleBatch)\n")
        table("forward", rows: [("conv", "convolutions"), ("matmul", "matmuls (attention, embedding MLP)"), ("GroupNorm", "GroupNorm (with SiLU where fused)"),
                                ("SiLU", "SiLU"), ("rest", "rest (adds, softmax, resampling, copies)")],
              total: "total", flops: convFlops.forward)
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: output).deletingLastPathComponent(), withIntermediateDirectories: true)
        try (md.joined(separator: "\n") + "\n").write(toFile: output, atomically: true, encoding: .utf8)
        print("wrote \(output)")
    }

    /// One `unet_reference.py bench --profile` process, or nil without torch.
    func torchRound() -> [String: Any]? {
        let script = repositoryFile("reference/unet_reference.py")
        let out = shell("\(python) '\(script)' bench --profile --threads \(threads) --batch \(batch) --sample-batch \(sampleBatch) --runs \(steps) --model-channels \(modelChannels) --num-blocks \(numBlocks) --precision \(precision.rawValue)")
        guard let line = out.split(separator: "\n").last,
              let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], obj["loss_and_grads"] != nil else { return nil }
        return obj
    }
}
