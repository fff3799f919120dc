import ArgumentParser
import Engine
import Foundation

/// `pdpipe-bench conv-backends`: OpenBLAS (im2col + sgemm) against oneDNN on the U-Net's conv
/// shapes, forward, backward-data and backward-weights timed separately, rounds interleaved
/// (openblas, onednn, openblas, ...) so a shared machine's load hits both alike; medians.
struct ConvBackendBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "conv-backends",
                                                    abstract: "Convolutions on OpenBLAS vs oneDNN, interleaved.")
    @Option var threads = 2
    @Option var batch = 32
    @Option var rounds = 7
    @Option(help: "Shapes Cin-Cout-k-R, comma-separated.") var shapes = "64-64-3-32,128-128-3-16,128-128-3-8,256-128-1-16,3-64-3-32"
    @Option(help: "Precision of the oneDNN columns (bf16: native bf16 CPUs only).") var precision = Precision.fp32

    func run() throws {
        Engine.setThreads(threads)
        BLASKernel.shortenThreadTimeout()
        print(BLASKernel.configure())
        let dnnl = try OneDNNBackend(precision: precision)
        print(OneDNN.description, "| oneDNN precision:", precision.rawValue, "| OpenMP waiting:", ProcessInfo.processInfo.environment["OMP_WAIT_POLICY"] ?? "passive (set by the engine while loading oneDNN)")
        // 1x1 convolutions run as matmuls by default; the third column is oneDNN's convolution primitive for them.
        let dnnlConv = try OneDNNBackend(precision: precision, pointwiseAsMatmul: false)
        let backends: [any ComputeBackend] = [BLASBackend(), dnnl, dnnlConv]
        var rng = RandomGenerator(seed: 3)
        print("shape (batch \(batch)) | pass | openblas GFLOP/s | onednn GFLOP/s | onednn/openblas | oneDNN impl | 1x1: onednn conv primitive GFLOP/s | matmul/conv primitive")
        for spec in shapes.split(separator: ",") {
            let v = spec.split(separator: "-").compactMap { Int($0) }
            let (cin, cout, k, r) = (v[0], v[1], v[2], v[3])
            let p = Conv2dShape(batch: batch, inChannels: cin, outChannels: cout, height: r, width: r, kernel: k, padding: k / 2)
            let x = (0..<batch * cin * r * r).map { _ in rng.uniform(-1, 1) }
            let w = (0..<cout * cin * k * k).map { _ in rng.uniform(-1, 1) }
            let bias = (0..<cout).map { _ in rng.uniform(-1, 1) }
            let dy = (0..<batch * cout * r * r).map { _ in rng.uniform(-1, 1) }
            var y = [Float](repeating: 0, count: dy.count), dx = x, dw = w, db = bias
            // 0 forward, 1 backward-data + backward-weights (the seam's one backward call), 2 weights only.
            func pass(_ b: any ComputeBackend, _ which: Int) {
                switch which {
                case 0: b.conv2dForward(p, x: x, weight: w, bias: bias, y: &y)
                case 1: b.conv2dBackward(p, x: x, weight: w, dy: dy, dx: &dx, dWeight: &dw, dBias: &db)
                default: b.conv2dBackward(p, x: x, weight: w, dy: dy, dx: nil, dWeight: &dw, dBias: &db)
                }
            }
            var times = [[[Double]]](repeating: [[], [], []], count: 3)
            for _ in 0..<rounds {
                for which in 0..<3 {
                    for (i, b) in backends.enumerated() { times[which][i].append(medianSeconds(runs: 3) { pass(b, which) }) }
                }
            }
            let impl = dnnl.implementations(p)
            let flops = [p.forwardFlops, 2 * p.forwardFlops, p.forwardFlops]
            for (which, name) in ["fwd", "bwd data+weights", "bwd weights"].enumerated() {
                let med = times[which].map { $0.sorted()[$0.count / 2] }
                let g = med.map { flops[which] / $0 * 1e-9 }
                let implName = which == 0 ? impl[0] : which == 1 ? "\(impl[1]) / \(impl[2])" : impl[2]
                let pointwise = k == 1 ? " | \(f1(g[2])) | \(f1(g[1] / g[2]))x" : " | - | -"
                print("\(spec) | \(name) | \(f1(g[0])) | \(f1(g[1])) | \(f1(g[1] / g[0]))x | \(implName)\(pointwise)")
            }
        }
    }
}

extension Precision: ExpressibleByArgument {}
