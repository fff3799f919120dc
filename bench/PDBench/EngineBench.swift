import ArgumentParser
import COpenBLAS
import Engine
import Foundation

/// `pdpipe-bench engine`: sgemm rate with the library's default and the selected kernel,
/// every conv shape of the benchmark U-Net config against the sgemm rate, and the reference
/// residual block against PyTorch CPU fp32 (when torch is importable).
struct EngineBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "engine", abstract: "Tensor/NN engine benchmark.")

    @Option(help: "Threads for OpenBLAS and the engine (and PyTorch).") var threads = 2
    @Option(help: "Timed runs per measurement (medians are reported).") var runs = 5
    @Option(help: "Batch size.") var batch = 32
    @Option(help: "Markdown output file.") var output = "results/engine-bench.md"
    @Flag(help: "Skip the PyTorch reference.") var noTorch = false
    @Option(help: "Python interpreter for the PyTorch reference.") var python = "python3"
    @Option(help: "Only conv shapes named Cin-Cout-k-R (comma-separated), for profiling; skips the block.") var only: String?

    func run() throws {
        Engine.setThreads(threads)
        BLASKernel.shortenThreadTimeout()
        var md: [String] = []
        func emit(_ s: String) { print(s); md.append(s) }

        emit("# Engine benchmark\n")
        emit("Command: `swift run -c release pdpipe-bench engine --threads \(threads) --runs \(runs) --batch \(batch)`  ")
        emit("Date: \(ISO8601DateFormatter().string(from: Date()))  ")
        emit("Timings are medians of \(runs) runs after a warm-up; the machine is shared, so repeat-to-repeat spread is shown.\n")
        emit("```\n" + shell("lscpu | head -20").trimmingCharacters(in: .whitespacesAndNewlines) + "\n```\n")

        // 1. sgemm before/after kernel selection.
        let before = sgemmRates()
        let report = BLASKernel.configure()
        let after = sgemmRates()
        emit("## BLAS kernel\n")
        emit("Kernel: \(report)  ")
        emit("Self-check scaled error: \(report.selfCheckError.map { String(format: "%.2e", $0) } ?? "not run")\n")
        emit("| sgemm (M x N x K) | \(report.initialCore) (default) GFLOP/s | \(report.core) GFLOP/s | speed-up |")
        emit("|---|---:|---:|---:|")
        for (b, a) in zip(before, after) {
            emit("| \(b.label) | \(f1(b.gflops)) | \(f1(a.gflops)) | \(f2(a.gflops / b.gflops))x |")
        }
        let sgemmRate = after[0].gflops
        emit("")

        // 2. Conv shapes of the benchmark U-Net config.
        let convs = songUNetConvs(resolution: 32, inChannels: 5, outChannels: 3, modelChannels: 64,
                                  channelMult: [1, 2, 2], numBlocks: 2, attentionResolutions: [16])
        let wantedShapes = only.map { Set($0.split(separator: ",").map(String.init)) }
        let shapes = convs.keys.sorted().filter { wantedShapes?.contains("\($0.inChannels)-\($0.outChannels)-\($0.kernel)-\($0.resolution)") ?? true }
        var torch: [String: Any]? = nil
        if !noTorch {
            let list = "[" + shapes.map { "[\($0.inChannels),\($0.outChannels),\($0.kernel),\($0.resolution)]" }.joined(separator: ",") + "]"
            torch = runTorch(["--threads", "\(threads)", "--batch", "\(batch)", "--runs", "\(runs)", "--convs", list])
        }
        let torchConv = torch?["conv_ms"] as? [String: Double] ?? [:]
        emit("## Convolutions of the benchmark U-Net (model_channels 64, mult [1,2,2], 2 blocks, attention at 16, 5 -> 3 channels, R = 32, batch \(batch))\n")
        emit("Forward+backward GFLOP/s = 3 x forward FLOPs / (forward + backward time); reference sgemm rate (1024^3, same run) = \(f1(sgemmRate)) GFLOP/s.\n")
        emit("| conv (Cin -> Cout, k, R) | uses | fwd ms | bwd ms | fwd+bwd GFLOP/s | % of sgemm | PyTorch fwd+bwd ms | ours / PyTorch time |")
        emit("|---|---:|---:|---:|---:|---:|---:|---:|")
        var totalFlops = 0.0, totalTime = 0.0, totalTorch = 0.0
        var rng = RandomGenerator(seed: 1)
        for s in shapes {
            let conv = Conv2d(inChannels: s.inChannels, outChannels: s.outChannels, kernel: s.kernel, rng: &rng)
            let x = Tensor(randomNormal: [batch, s.inChannels, s.resolution, s.resolution], using: &rng)
            let dy = Tensor(randomNormal: [batch, s.outChannels, s.resolution, s.resolution], using: &rng)
            var y = Tensor(zeros: [1])
            let tf = medianSeconds(runs: runs) { y = conv.forward(x) }
            let tb = medianSeconds(runs: runs) { _ = conv.backward(dy) }
            _ = y
            let g = Conv2dShape(batch: batch, inChannels: s.inChannels, outChannels: s.outChannels, height: s.resolution,
                                width: s.resolution, kernel: s.kernel, padding: s.kernel / 2)
            let rate = 3 * g.forwardFlops / (tf + tb) / 1e9
            let uses = convs[s]!
            totalFlops += 3 * g.forwardFlops * Double(uses); totalTime += (tf + tb) * Double(uses)
            let key = "\(s.inChannels)-\(s.outChannels)-\(s.kernel)-\(s.resolution)"
            var torchCells = "| - | - |"
            if let t = torchConv[key] {
                totalTorch += t * 1e-3 * Double(uses)
                torchCells = "| \(f2(t)) | \(f2((tf + tb) * 1e3 / t)) |"
            }
            emit("| \(s.inChannels) -> \(s.outChannels), \(s.kernel)x\(s.kernel), \(s.resolution) | \(uses) | \(f2(tf * 1e3)) | \(f2(tb * 1e3)) | \(f1(rate)) | \(f1(100 * rate / sgemmRate)) % " + torchCells)
        }
        let overall = totalFlops / totalTime / 1e9
        emit("\nAll convs of one training step (weighted by use): \(f1(totalTime * 1e3)) ms, \(f1(overall)) GFLOP/s = \(f1(100 * overall / sgemmRate)) % of sgemm"
             + (totalTorch > 0 ? "; PyTorch \(f1(totalTorch * 1e3)) ms (ours / PyTorch = \(f2(totalTime / totalTorch)))." : "."))
        emit("")

        // 3. Reference residual block.
        if only != nil { return }
        let (c, r, e) = (128, 16, 512)
        let block = ReferenceBlock(channels: c, embChannels: e, dropout: 0.1, rng: &rng)
        let x = Tensor(randomNormal: [batch, c, r, r], using: &rng)
        let emb = Tensor(randomNormal: [batch, e], using: &rng)
        let dy = Tensor(randomNormal: [batch, c, r, r], using: &rng)
        var blockTimes: [Double] = []
        for _ in 0..<3 {
            blockTimes.append(medianSeconds(runs: runs) { _ = block.forward(x, emb: emb); _ = block.backward(dy) })
        }
        let ours = blockTimes.sorted()[1] * 1e3
        let oursFwd = medianSeconds(runs: runs) { _ = block.forward(x, emb: emb) } * 1e3
        emit("## Reference residual block (GroupNorm-SiLU-Conv3x3-(emb add)-GroupNorm-SiLU-Dropout-Conv3x3 + skip; \(c) ch, \(r)x\(r), batch \(batch), emb \(e))\n")
        emit("| | forward ms | forward+backward ms |")
        emit("|---|---:|---:|")
        emit("| pdpipe engine (\(report.core), \(threads) threads) | \(f2(oursFwd)) | \(f2(ours)) (spread over 3 repeats \(f1(100 * spread(blockTimes))) %) |")
        if let torch, let t = torch["block_ms"] as? Double, let tf = torch["block_forward_ms"] as? Double {
            emit("| PyTorch \(torch["torch"] ?? "?") CPU fp32 (\(torch["threads"] ?? "?") threads) | \(f2(tf)) | \(f2(t)) |")
            emit("\nRatio (ours / PyTorch, forward+backward): \(f2(ours / t)).")
        } else {
            emit("| PyTorch | skipped (\(noTorch ? "--no-torch" : "torch not importable")) | |")
        }
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: output).deletingLastPathComponent(), withIntermediateDirectories: true)
        try (md.joined(separator: "\n") + "\n").write(toFile: output, atomically: true, encoding: .utf8)
        print("\nwrote \(output)")
    }

    struct Rate { let label: String; let gflops: Double }

    /// Square 1024 sgemm plus the GEMM shape of the 128-channel 3x3 conv at 16x16 (batch-wide).
    func sgemmRates() -> [Rate] {
        [(1024, 1024, 1024), (128, batch * 256, 1152)].map { (m, n, k) in
            var rng = RandomGenerator(seed: 2)
            let a = (0..<m * k).map { _ in rng.uniform(-1, 1) }, b = (0..<k * n).map { _ in rng.uniform(-1, 1) }
            var c = [Float](repeating: 0, count: m * n)
            let t = medianSeconds(runs: runs) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), 0, &c, Int32(n))
            }
            return Rate(label: "\(m) x \(n) x \(k)", gflops: 2 * Double(m * n * k) / t / 1e9)
        }
    }

    func runTorch(_ args: [String]) -> [String: Any]? {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("reference/block_bench.py").path
        let out = shell(([python, script] + args).map { "'\($0)'" }.joined(separator: " "))
        guard let line = out.split(separator: "\n").last, let data = line.data(using: .utf8),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return obj
    }
}

func f1(_ x: Double) -> String { String(format: "%.1f", x) }
func f2(_ x: Double) -> String { String(format: "%.2f", x) }
