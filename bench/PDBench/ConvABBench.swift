import ArgumentParser
import Engine

/// `pdpipe-bench conv-ab`: the two convolution threading strategies timed alternately in one
/// process (robust to a shared machine's changing load), per conv shape.
struct ConvABBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "conv-ab", abstract: "Conv threading strategies, interleaved A/B.")
    @Option var threads = 2
    @Option var batch = 32
    @Option var rounds = 5
    @Option(help: "Shapes Cin-Cout-k-R, comma-separated.") var shapes = "128-128-3-16,64-64-3-32,128-128-3-8,256-128-1-16"

    func run() {
        Engine.setThreads(threads)
        BLASKernel.shortenThreadTimeout()
        print(BLASKernel.configure())
        var rng = RandomGenerator(seed: 3)
        for spec in shapes.split(separator: ",") {
            let v = spec.split(separator: "-").compactMap { Int($0) }
            let (cin, cout, k, r) = (v[0], v[1], v[2], v[3])
            let x = Tensor(randomNormal: [batch, cin, r, r], using: &rng)
            let dy = Tensor(randomNormal: [batch, cout, r, r], using: &rng)
            let convs = [BLASBackend(convThreading: .splitBatch), BLASBackend(convThreading: .threadedBLAS)].map {
                Conv2d(inChannels: cin, outChannels: cout, kernel: k, rng: &rng, backend: $0)
            }
            var times: [[Double]] = [[], []], cpu: [[Double]] = [[], []]
            for _ in 0..<rounds {
                for (i, c) in convs.enumerated() {
                    let c0 = processCPUSeconds()
                    times[i].append(medianSeconds(runs: 3) { _ = c.forward(x); _ = c.backward(dy) })
                    cpu[i].append((processCPUSeconds() - c0) / 4)
                }
            }
            let med = times.map { $0.sorted()[$0.count / 2] * 1e3 }
            let cmed = cpu.map { $0.sorted()[$0.count / 2] * 1e3 }
            print("\(spec): wall splitBatch \(f2(med[0])) ms, threadedBLAS \(f2(med[1])) ms, ratio \(f2(med[0] / med[1])); CPU \(f2(cmed[0])) vs \(f2(cmed[1])) ms")
        }
    }
}
