import ArgumentParser
import Foundation
import Engine

/// `pdpipe-bench norm-ab`: GroupNorm's reductions one group at a time (the engine before the
/// interleaved kernels) against `BLASBackend`'s, and SiLU retaining its activations or not, on
/// the U-Net's shapes, alternated within each round. Both sides give the same bits (checked here).
struct NormABBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "norm-ab",
                                                    abstract: "GroupNorm and SiLU kernels, old vs new, interleaved A/B.")
    @Option var threads = 2
    @Option var rounds = 7
    @Option(help: "Batch (64: a sampling forward's).") var batch = 64
    @Option(help: "Shapes C-R (channels at resolution), comma-separated: the experiments' U-Net (32 channels, mult 1,2,2).")
    var shapes = "32-32,64-16,64-8"
    @Option(help: "Markdown output file.") var output = "results/norm-ab.md"

    func run() throws {
        Engine.setThreads(threads)
        _ = BLASKernel.configure()
        let backend = BLASBackend()
        var rng = RandomGenerator(seed: 4)
        var rows: [String] = []
        for spec in shapes.split(separator: ",") {
            let v = spec.split(separator: "-").compactMap { Int($0) }
            let (c, r) = (v[0], v[1])
            let gn = GroupNorm(channels: c)
            let p = GroupNormShape(batch: batch, channels: c, spatial: r * r, groups: gn.groups, eps: gn.eps)
            let x = Tensor(randomNormal: [batch, c, r, r], scale: 2, using: &rng), dy = Tensor(randomNormal: [batch, c, r, r], using: &rng)
            let gamma = Tensor(randomNormal: [c], using: &rng), beta = Tensor(randomNormal: [c], using: &rng)
            var (yOld, yNew) = ([Float](repeating: 0, count: x.count), [Float](repeating: 0, count: x.count))
            var mean = [Float](repeating: 0, count: batch * p.groups), rstd = mean
            var dx = [Float](repeating: 0, count: x.count), dg = [Float](repeating: 0, count: c), db = dg
            func forward(old: Bool, into y: inout [Float]) {
                x.data.withUnsafeBufferPointer { xp in gamma.data.withUnsafeBufferPointer { gp in beta.data.withUnsafeBufferPointer { bp in
                    y.withUnsafeMutableBufferPointer { yp in mean.withUnsafeMutableBufferPointer { mp in rstd.withUnsafeMutableBufferPointer { rp in
                        if old {
                            GroupNormKernels.oneGroupAtATimeForward(p, x: xp.baseAddress!, gamma: gp.baseAddress!, beta: bp.baseAddress!,
                                                        y: yp.baseAddress!, mean: mp.baseAddress!, rstd: rp.baseAddress!)
                        } else {
                            backend.groupNormForward(p, x: xp.baseAddress!, gamma: gp.baseAddress!, beta: bp.baseAddress!,
                                                     y: yp.baseAddress!, mean: mp.baseAddress!, rstd: rp.baseAddress!)
                        }
                    } } }
                } } }
            }
            func backward(old: Bool = false) {
                x.data.withUnsafeBufferPointer { xp in gamma.data.withUnsafeBufferPointer { gp in dy.data.withUnsafeBufferPointer { dp in
                    mean.withUnsafeBufferPointer { mp in rstd.withUnsafeBufferPointer { rp in dx.withUnsafeMutableBufferPointer { dxp in
                        dg.withUnsafeMutableBufferPointer { dgp in db.withUnsafeMutableBufferPointer { dbp in
                            if old {
                                GroupNormKernels.oneChannelAtATimeBackward(p, x: xp.baseAddress!, gamma: gp.baseAddress!, mean: mp.baseAddress!, rstd: rp.baseAddress!,
                                                               dy: dp.baseAddress!, dx: dxp.baseAddress!, dGamma: dgp.baseAddress!, dBeta: dbp.baseAddress!)
                            } else {
                                backend.groupNormBackward(p, x: xp.baseAddress!, gamma: gp.baseAddress!, mean: mp.baseAddress!, rstd: rp.baseAddress!,
                                                          dy: dp.baseAddress!, dx: dxp.baseAddress!, dGamma: dgp.baseAddress!, dBeta: dbp.baseAddress!)
                            }
                        } }
                    } } }
                } } }
            }
            forward(old: true, into: &yOld)
            forward(old: false, into: &yNew)
            guard yOld.map(\.bitPattern) == yNew.map(\.bitPattern) else { throw ValidationError("GroupNorm \(spec): outputs differ") }
            backward(old: true)
            let dxOld = dx
            backward()
            guard dxOld.map(\.bitPattern) == dx.map(\.bitPattern) else { throw ValidationError("GroupNorm \(spec): input gradients differ") }
            let (retaining, sampling) = (SiLU(), SiLU())
            sampling.retainsForBackward = false
            var t: [String: [Double]] = [:]
            for _ in 0..<rounds {
                t["gn.old", default: []].append(medianSeconds(runs: 5) { forward(old: true, into: &yOld) })
                t["gn.new", default: []].append(medianSeconds(runs: 5) { forward(old: false, into: &yNew) })
                t["gn.bwd.old", default: []].append(medianSeconds(runs: 5) { backward(old: true) })
                t["gn.bwd", default: []].append(medianSeconds(runs: 5) { backward() })
                t["silu.retain", default: []].append(medianSeconds(runs: 5) { _ = retaining.forward(x) })
                t["silu.sample", default: []].append(medianSeconds(runs: 5) { _ = sampling.forward(x) })
            }
            let ms = t.mapValues { $0.sorted()[$0.count / 2] * 1e3 }
            rows.append("| \(batch)x\(c)x\(r)x\(r) (\(p.groups) groups) | \(f2(ms["gn.old"]!)) | \(f2(ms["gn.new"]!)) | "
                        + "\(f2(ms["gn.old"]! / ms["gn.new"]!))x | \(f2(ms["gn.bwd.old"]!)) | \(f2(ms["gn.bwd"]!)) | \(f2(ms["gn.bwd.old"]! / ms["gn.bwd"]!))x | \(f2(ms["silu.retain"]!)) | \(f2(ms["silu.sample"]!)) | "
                        + "\(f2(ms["silu.retain"]! / ms["silu.sample"]!))x |")
            print(rows.last!)
        }
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
        let cpu = shell("lscpu | sed -n 's/^Model name: *//p'").trimmingCharacters(in: .whitespacesAndNewlines)
        let text = """
        # GroupNorm and SiLU kernels, before and after (interleaved A/B)

        Command: `pdpipe-bench norm-ab --threads \(threads) --rounds \(rounds) --batch \(batch) --shapes \(shapes)`  
        Date: \(ISO8601DateFormatter().string(from: Date()))  
        CPU: \(cpu), \(threads) threads. Load average at end: \(load). Medians of \(rounds) rounds, each the median of 5 calls of every variant in turn.

        "one group at a time" is the engine's GroupNorm forward before this change (each group's mean and variance a
        sequential Double sum; backward: each channel's sums of dy and dy * (x - mean) a sequential Float sum); "four at a time" sums four groups (channels) in one loop, each into its own accumulator and in its own order, so the
        outputs are bit-identical (the command checks it). SiLU "retaining" keeps x and sigmoid(x) for backward
        (training); "sampling" writes only the output.

        | shape | GroupNorm fwd, one group at a time (ms) | four at a time (ms) | speed-up | GroupNorm bwd, one channel at a time (ms) | four at a time (ms) | speed-up | SiLU retaining (ms) | SiLU sampling (ms) | speed-up |
        |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
        \(rows.joined(separator: "\n"))

        """
        try text.write(toFile: repositoryFile(output), atomically: true, encoding: .utf8)
        print("wrote \(output)")
    }
}
