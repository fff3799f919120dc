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
        Engine.keepFreedMemory()
        BLASKernel.shortenThreadTimeout()
        var md: [String] = []
        func emit(_ s: String) { print(s); md.append(s) }

        emit("# Engine benchmark\n")
        emit("Command: `swift run -c release pdpipe-bench engine --threads \(threads) --runs \(runs) --batch \(batch)`  ")
        emit("Date: \(ISO8601DateFormatter().string(from: Date()))  ")
        emit("Timings are medians of \(runs) runs after a warm-up; the machine is shared, so repeat-to-repeat spread is shown.\n")
        emit("```\n" + shell("lscpu | head -20").trimmingCharacters(in: .whitespacesAndNewlines) + "\n```\n")
        emit("Load at start (`uptime`): \(shell("uptime").trimmingCharacters(in: .whitespacesAndNewlines))\n")

        // 1. sgemm per OpenBLAS kernel (switched in-process, measured alternately so load
        //    changes hit all of them), then before/after the engine's own selection.
        let libraryCore = BLASKernel.currentCore
        let candidates = Array(Set(["Prescott", "Haswell", "SkylakeX", libraryCore])).sorted()
        var perKernel: [String: [Double]] = [:]
        for _ in 0..<3 {
            for core in candidates {
                BLASKernel.switchCore(to: core)
                perKernel[core, default: []].append(sgemmRates(only: 1)[0].gflops)
            }
        }
        BLASKernel.switchCore(to: nil)
        emit("## sgemm 1024^3 per OpenBLAS kernel (\(threads) threads; median of 3 alternating rounds)\n")
        emit("| kernel | GFLOP/s |")
        emit("|---|---:|")
        for core in candidates {
            let xs = perKernel[core]!.sorted()
            emit("| \(core)\(core == libraryCore ? " (library's choice here)" : "") | \(f1(xs[1])) |")
        }
        emit("")
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
        let torch = noTorch ? nil : TorchReference(python: python, threads: threads, batch: batch, runs: runs)
        emit("## Convolutions of the benchmark U-Net (model_channels 64, mult [1,2,2], 2 blocks, attention at 16, 5 -> 3 channels, R = 32, batch \(batch))\n")
        emit("Forward+backward GFLOP/s = 3 x forward FLOPs / (forward + backward time). \"% of sgemm\" compares with a 1024^3 sgemm measured right before each shape (the machine is shared; global rate in this run \(f1(sgemmRate)) GFLOP/s). PyTorch is measured right after each shape (persistent process, same shapes).\n")
        emit("\"CPU-time % of sgemm\" is per-core efficiency: the conv's FLOPs per CPU-second of this process (all threads) over a single-threaded 1024^3 sgemm's FLOPs per CPU-second, measured at the same moment; it is less sensitive to other processes taking the cores than wall time.\n")
        emit("| conv (Cin -> Cout, k, R) | uses | fwd ms | bwd ms | fwd+bwd GFLOP/s | sgemm GFLOP/s (same moment) | % of sgemm | CPU-time % of sgemm | PyTorch fwd+bwd ms | ours / PyTorch time |")
        emit("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        var totalFlops = 0.0, totalTime = 0.0, totalTorch = 0.0, totalSgemmTime = 0.0, totalCPU = 0.0, totalSgemmCPU = 0.0
        var rng = RandomGenerator(seed: 1)
        let probe = SgemmProbe(n: 1024)
        for s in shapes {
            let conv = Conv2d(inChannels: s.inChannels, outChannels: s.outChannels, kernel: s.kernel, rng: &rng)
            let x = Tensor(randomNormal: [batch, s.inChannels, s.resolution, s.resolution], using: &rng)
            let dy = Tensor(randomNormal: [batch, s.outChannels, s.resolution, s.resolution], using: &rng)
            let (local, sgemmCPU) = probe.measure(runs: runs)
            var y = Tensor(zeros: [1])
            let c1 = processCPUSeconds()
            let tf = medianSeconds(runs: runs) { y = conv.forward(x) }
            let tb = medianSeconds(runs: runs) { _ = conv.backward(dy) }
            let convCPU = (processCPUSeconds() - c1) / Double(runs + 1)
            _ = y
            let g = Conv2dShape(batch: batch, inChannels: s.inChannels, outChannels: s.outChannels, height: s.resolution,
                                width: s.resolution, kernel: s.kernel, padding: s.kernel / 2)
            let rate = 3 * g.forwardFlops / (tf + tb) / 1e9
            let cpuRate = 3 * g.forwardFlops / convCPU / 1e9, sgemmCPURate = 2 * pow(1024.0, 3) / sgemmCPU / 1e9
            let uses = convs[s]!
            totalCPU += convCPU * Double(uses); totalSgemmCPU += 3 * g.forwardFlops * Double(uses) / (sgemmCPURate * 1e9)
            totalFlops += 3 * g.forwardFlops * Double(uses); totalTime += (tf + tb) * Double(uses)
            totalSgemmTime += 3 * g.forwardFlops * Double(uses) / (local * 1e9)
            var torchCells = "| - | - |"
            if let t = torch?.convMilliseconds(s.inChannels, s.outChannels, s.kernel, s.resolution) {
                totalTorch += t * 1e-3 * Double(uses)
                torchCells = "| \(f2(t)) | \(f2((tf + tb) * 1e3 / t)) |"
            }
            emit("| \(s.inChannels) -> \(s.outChannels), \(s.kernel)x\(s.kernel), \(s.resolution) | \(uses) | \(f2(tf * 1e3)) | \(f2(tb * 1e3)) | \(f1(rate)) | \(f1(local)) | \(f1(100 * rate / local)) % | \(f1(100 * cpuRate / sgemmCPURate)) % " + torchCells)
        }
        let overall = totalFlops / totalTime / 1e9
        emit("\nAll convs of one training step (weighted by use): \(f1(totalTime * 1e3)) ms, \(f1(overall)) GFLOP/s; the same FLOPs at each shape's same-moment sgemm rate would take \(f1(totalSgemmTime * 1e3)) ms, so convs run at \(f1(100 * totalSgemmTime / totalTime)) % of sgemm (by CPU time: \(f1(100 * totalSgemmCPU / totalCPU)) %)"
             + (totalTorch > 0 ? "; PyTorch \(f1(totalTorch * 1e3)) ms (ours / PyTorch = \(f2(totalTime / totalTorch)))." : "."))
        emit("")

        // 3. Reference residual block.
        if only != nil && !(only ?? "").contains("block") { return }
        let (c, r, e) = (128, 16, 512)
        let block = ReferenceBlock(channels: c, embChannels: e, dropout: 0.1, rng: &rng)
        let x = Tensor(randomNormal: [batch, c, r, r], using: &rng)
        let emb = Tensor(randomNormal: [batch, e], using: &rng)
        let dy = Tensor(randomNormal: [batch, c, r, r], using: &rng)
        // Ours and PyTorch alternately, three rounds, so both see the same machine load.
        var blockTimes: [Double] = [], torchTimes: [Double] = [], torchFwd: [Double] = []
        for _ in 0..<3 {
            blockTimes.append(medianSeconds(runs: runs) { _ = block.forward(x, emb: emb); _ = block.backward(dy) } * 1e3)
            if let t = torch?.block() { torchTimes.append(t.total); torchFwd.append(t.forward) }
        }
        let ours = blockTimes.sorted()[1]
        let oursFwd = medianSeconds(runs: runs) { _ = block.forward(x, emb: emb) } * 1e3
        emit("## Reference residual block (GroupNorm-SiLU-Conv3x3-(emb add)-GroupNorm-SiLU-Dropout-Conv3x3 + skip; \(c) ch, \(r)x\(r), batch \(batch), emb \(e))\n")
        emit("Three alternating rounds (ours, PyTorch, ours, ...); each entry is the median over rounds of per-round medians of \(runs) runs.\n")
        emit("| | forward ms | forward+backward ms | per-round fwd+bwd ms |")
        emit("|---|---:|---:|---|")
        emit("| pdpipe engine (\(report.core), \(threads) threads) | \(f2(oursFwd)) | \(f2(ours)) | \(blockTimes.map(f1).joined(separator: ", ")) |")
        if let torchInfo = torch?.info, torchTimes.count == 3 {
            let t = torchTimes.sorted()[1]
            emit("| PyTorch \(torchInfo["torch"] ?? "?") CPU fp32 (\(torchInfo["threads"] ?? "?") threads) | \(f2(torchFwd.sorted()[1])) | \(f2(t)) | \(torchTimes.map(f1).joined(separator: ", ")) |")
            emit("\nRatio (ours / PyTorch, forward+backward time): \(f2(ours / t)).")
        } else {
            emit("| PyTorch | skipped (\(noTorch ? "--no-torch" : "torch not importable")) | | |")
        }
        emit("\nLoad at end (`uptime`): \(shell("uptime").trimmingCharacters(in: .whitespacesAndNewlines))")
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: output).deletingLastPathComponent(), withIntermediateDirectories: true)
        try (md.joined(separator: "\n") + "\n").write(toFile: output, atomically: true, encoding: .utf8)
        print("\nwrote \(output)")
    }

    struct Rate { let label: String; let gflops: Double }

    /// A square sgemm with preallocated operands: (wall GFLOP/s median, CPU seconds per call).
    final class SgemmProbe {
        let n: Int
        var a: [Float], b: [Float], c: [Float]
        init(n: Int) {
            self.n = n
            var rng = RandomGenerator(seed: 4)
            a = (0..<n * n).map { _ in rng.uniform(-1, 1) }; b = a.reversed(); c = a
        }
        /// Wall GFLOP/s with all threads, and CPU seconds per call of a single-threaded sgemm
        /// (a per-core baseline free of OpenBLAS's spin-waiting, which inflates CPU time).
        func measure(runs: Int) -> (gflops: Double, cpuSeconds: Double) {
            let n32 = Int32(n)
            let t = medianSeconds(runs: runs) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n32, n32, n32, 1, a, n32, b, n32, 0, &c, n32)
            }
            openblas_set_num_threads(1)
            let c0 = processCPUSeconds()
            for _ in 0..<runs { cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n32, n32, n32, 1, a, n32, b, n32, 0, &c, n32) }
            let cpu = (processCPUSeconds() - c0) / Double(runs)
            openblas_set_num_threads(Int32(Engine.threads))
            return (2 * pow(Double(n), 3) / t / 1e9, cpu)
        }
    }

    /// Square 1024 sgemm plus the GEMM shape of the 128-channel 3x3 conv at 16x16 (batch-wide).
    func sgemmRates(only: Int = 2) -> [Rate] {
        [(1024, 1024, 1024), (128, batch * 256, 1152)].prefix(only).map { (m, n, k) in
            var rng = RandomGenerator(seed: 2)
            let a = (0..<m * k).map { _ in rng.uniform(-1, 1) }, b = (0..<k * n).map { _ in rng.uniform(-1, 1) }
            var c = [Float](repeating: 0, count: m * n)
            let t = medianSeconds(runs: runs) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), 0, &c, Int32(n))
            }
            return Rate(label: "\(m) x \(n) x \(k)", gflops: 2 * Double(m * n * k) / t / 1e9)
        }
    }
}

func f1(_ x: Double) -> String { String(format: "%.1f", x) }
func f2(_ x: Double) -> String { String(format: "%.2f", x) }
