import ArgumentParser
import Engine
import Foundation

/// Peak memory of training against what it must hold: weights + gradients + Adam m, v + EMA
/// (5 x parameters) plus the activations the layers cache for backward, counted from the
/// network object graph after a forward (each tensor buffer once). Goal (issue 5): peak RSS growth
/// within 1.5x of that sum. One fresh process per configuration, so ru_maxrss is this run's peak.
struct MemoryBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "memory",
                                                    abstract: "Peak training memory against weights + optimiser state + cached activations.")

    @Option(help: "Threads for OpenBLAS and the engine.") var threads = 2
    @Option(help: "Training batch B (full 32x32 images, p = 1: the largest round).") var batch = 32
    @Option(help: "U-Net base width.") var modelChannels = 64
    @Option(help: "Training steps before measuring.") var steps = 3

    func run() throws {
        Engine.startUp(threads: threads)
        let baseline = Self.residentMB()
        let r = 32, c = 3
        let config = UNetConfig(imageChannels: c, coordinates: true, modelChannels: modelChannels, channelMult: [1, 2, 2],
                                numBlocks: 2, attentionLevels: [1], dropout: 0)
        let training = BenchTraining(config: config, resolution: r, imageCount: 64, batch: batch, realP: 1)
        for _ in 0..<steps { training.step(size: r) }
        let net = training.net
        var rng = training.rng
        let peak = Self.peakMB()
        // Layers release their caches in backward, so count them after one more training-mode forward.
        let x = Tensor(randomNormal: [batch, c, r, r], using: &rng)
        let grid = PatchCoordinates.fullGrid(count: batch, size: r, normalizingResolution: r)
        _ = EDMPreconditioning().denoise(net, x, sigmas: Array(repeating: 1.0, count: batch), coordinates: grid)
        let parameterMB = Double(net.parameterCount * 4) / 1e6
        let stateMB = 5 * Double(net.parameterCount * 4) / 1_048_576
        let activationMB = Double(CachedTensors.bytes(reachableFrom: net)) / 1_048_576
        let needed = stateMB + activationMB
        print(String(format: "config: model_channels %d, mult [1,2,2], 2 blocks, attention at 16x16, C = 3 (+2), R = 32, batch %d, p = 1, %d threads",
                     modelChannels, batch, threads))
        print(String(format: "parameters: %d (%.1f MB); weights + grads + Adam m, v + EMA: %.1f MiB", net.parameterCount, parameterMB, stateMB))
        print(String(format: "activations cached for backward (after a training-mode forward, each buffer once): %.1f MiB", activationMB))
        print(String(format: "process RSS before building the network: %.1f MiB; peak RSS: %.1f MiB; growth: %.1f MiB",
                     baseline, peak, peak - baseline))
        print(String(format: "peak growth / (state + activations) = %.2f (goal <= 1.5)", (peak - baseline) / needed))
    }

    static func residentMB() -> Double {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
    }

    static func peakMB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024  // kilobytes on Linux
    }
}

/// Sums the bytes of the Tensor buffers reachable from an object through stored properties,
/// skipping `Parameter`s (counted as optimiser state) and counting each buffer once.
enum CachedTensors {
    static func bytes(reachableFrom root: AnyObject) -> Int {
        var seenObjects = Set<ObjectIdentifier>(), seenBuffers = Set<UInt>()
        var total = 0
        func visit(_ value: Any) {
            if let t = value as? Tensor {
                let address = t.data.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
                if address != 0, seenBuffers.insert(address).inserted { total += t.data.count * 4 }
                return
            }
            if value is Parameter { return }
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .class {
                guard seenObjects.insert(ObjectIdentifier(value as AnyObject)).inserted else { return }
            }
            var m: Mirror? = mirror
            while let current = m {
                for child in current.children { visit(child.value) }
                m = current.superclassMirror
            }
        }
        visit(root)
        return total
    }
}
