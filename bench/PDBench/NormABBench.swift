import ArgumentParser
import Foundation
import Engine

/// `pdpipe-bench norm-ab`: GroupNorm's reductions one group at a time (the engine before the
/// SIMD-lane kernels) against `BLASBackend`'s, and SiLU retaining its activations or not, on
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
                            Self.oneGroupAtATimeForward(p, x: xp.baseAddress!, gamma: gp.baseAddress!, beta: bp.baseAddress!,
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
                                Self.oneChannelAtATimeBackward(p, x: xp.baseAddress!, gamma: gp.baseAddress!, mean: mp.baseAddress!, rstd: rp.baseAddress!,
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
        sequential Double sum; backward: each channel's sums of dy and dy * (x - mean) a sequential Float sum); "lanes" sums four groups (eight channels) in the lanes of one SIMD vector, each in its own order, so the
        outputs are bit-identical (the command checks it). SiLU "retaining" keeps x and sigmoid(x) for backward
        (training); "sampling" writes only the output.

        | shape | GroupNorm fwd, one group at a time (ms) | lanes (ms) | speed-up | GroupNorm bwd, one channel at a time (ms) | lanes (ms) | speed-up | SiLU retaining (ms) | SiLU sampling (ms) | speed-up |
        |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
        \(rows.joined(separator: "\n"))

        """
        try text.write(toFile: repositoryFile(output), atomically: true, encoding: .utf8)
        print("wrote \(output)")
    }

    /// The forward as the engine computed it before (kept here as the baseline).
    static func oneGroupAtATimeForward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                       beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                                       mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        let cpg = p.channels / p.groups, len = cpg * p.spatial
        Engine.parallelFor(p.batch * p.groups, costPerItem: len * 3) { r in
            for ng in r {
                let base = ng * len
                (mean[ng], rstd[ng]) = GroupNormKernels.reference(x + base, length: len, eps: p.eps)
                let g0 = (ng % p.groups) * cpg
                for c in 0..<cpg {
                    let a = rstd[ng] * gamma[g0 + c], b = beta[g0 + c] - mean[ng] * a
                    let xc = x + base + c * p.spatial, yc = y + base + c * p.spatial
                    for i in 0..<p.spatial { yc[i] = xc[i] * a + b }
                }
            }
        }
    }

    /// The backward as the engine computed it before (the baseline).
    static func oneChannelAtATimeBackward(_ p: GroupNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                          mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                          dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>,
                                          dBeta: UnsafeMutablePointer<Float>) {
        let cpg = p.channels / p.groups, len = cpg * p.spatial, c = p.channels
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: 2 * p.batch * c)
        defer { sums.deallocate() }
        Engine.parallelFor(p.batch * c, costPerItem: p.spatial * 2) { r in
            for nc in r {
                let ng = (nc / c) * p.groups + (nc % c) / cpg
                let s = GroupNormKernels.channelSumsReference(x: x + nc * p.spatial, dy: dy + nc * p.spatial, length: p.spatial, centre: mean[ng])
                sums[2 * nc] = s.dy; sums[2 * nc + 1] = s.dyx * rstd[ng]
            }
        }
        for n in 0..<p.batch {
            for ch in 0..<c { dBeta[ch] += sums[2 * (n * c + ch)]; dGamma[ch] += sums[2 * (n * c + ch) + 1] }
        }
        Engine.parallelFor(p.batch * p.groups, costPerItem: len * 2) { r in
            for ng in r {
                let n = ng / p.groups, g0 = (ng % p.groups) * cpg
                var a: Float = 0, b: Float = 0
                for cc in 0..<cpg { a += gamma[g0 + cc] * sums[2 * (n * c + g0 + cc)]; b += gamma[g0 + cc] * sums[2 * (n * c + g0 + cc) + 1] }
                a /= Float(len); b /= Float(len)
                let m = mean[ng], rs = rstd[ng]
                for cc in 0..<cpg {
                    let ch = g0 + cc, off = (n * c + ch) * p.spatial, g = gamma[ch]
                    for i in 0..<p.spatial { let xh = (x[off + i] - m) * rs; dx[off + i] = rs * (g * dy[off + i] - a - xh * b) }
                }
            }
        }
    }
}
