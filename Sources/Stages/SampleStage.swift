import Engine
import Foundation

/// `kind: sample` — draws images from a `train` stage's EMA weights with EDM's Heun sampler
/// (docs/edm.md section 5), full-grid coordinates fixed for all steps.
///
/// Image k uses its own random stream of `seed`, so it is the same for any `batch`.
/// Outputs the images in the dataset artifact layout (`images.bin`, `manifest.json`, so
/// evaluation stages read them like a data set) and `grid.png` of the first 64.
/// `resolution` larger than trained samples a larger canvas: with `coordinates: extrapolate`
/// the coordinates continue past +1 (the paper's extrapolation), with `rescale` they span [-1, 1].
public struct SampleStage: StageKind {
    public init() {}

    public var name: String { "sample" }
    public var version: Int { 1 }

    public var params: [ParamSpec] {
        [
            ParamSpec("model", .string, default: .string(""), help: "name of the consumed train stage; empty: the only input"),
            ParamSpec("num_images", .int, default: .int(64), check: TrainStage.positive),
            ParamSpec("seed", .int, default: .int(0), check: { ($0.intValue ?? -1) >= 0 ? nil : "must be a non-negative integer" }),
            ParamSpec("batch", .int, default: .int(64), help: "images per network call (does not change the images)",
                      check: TrainStage.positive),
            ParamSpec("steps", .int, default: .int(18), help: "Heun steps N (2N - 1 network evaluations)", check: TrainStage.positive),
            ParamSpec("sigma_min", .double, default: .double(0.002), check: TrainStage.positive),
            ParamSpec("sigma_max", .double, default: .double(80), check: TrainStage.positive),
            ParamSpec("rho", .double, default: .double(7), check: TrainStage.positive),
            ParamSpec("s_churn", .double, default: .double(0), help: "stochasticity (EDM S_churn; 0 = deterministic)",
                      check: TrainStage.nonNegative),
            ParamSpec("s_min", .double, default: .double(0), check: TrainStage.nonNegative),
            ParamSpec("s_max", .double, default: .double(1e9), help: "EDM S_max (1e9: no upper limit)", check: TrainStage.nonNegative),
            ParamSpec("s_noise", .double, default: .double(1), check: TrainStage.positive),
            ParamSpec("resolution", .int, default: .int(0), help: "output size; 0: the trained resolution",
                      check: TrainStage.nonNegative),
            ParamSpec("coordinates", .oneOf(ImageGenerator.CoordinateMode.allCases.map(\.rawValue)), default: .string("extrapolate"),
                      help: "coordinates of a canvas larger than trained: extrapolate (past +1) or rescale (into [-1, 1])"),
        ]
    }

    public func validate(_ params: [String: ParamValue]) -> [(field: String, message: String)] {
        let lo = params["sigma_min"]?.doubleValue ?? 0.002, hi = params["sigma_max"]?.doubleValue ?? 80
        return lo < hi ? [] : [("sigma_min", "must be below sigma_max (\(hi))")]
    }

    public static let weightsFileName = "ema.pdt"

    public func run(_ context: StageContext) throws -> StageOutcome {
        try Engine.exclusive(threads: context.engineThreads) { try compute(context) }
    }

    func compute(_ context: StageContext) throws -> StageOutcome {
        let p = context.params
        let modelURL = try TrainStage.input(context, field: "model")
        let weights = modelURL.appendingPathComponent(Self.weightsFileName)
        guard FileManager.default.fileExists(atPath: weights.path) else {
            throw StageError("\(context.stageName): \(weights.path) not found (is the model input a train stage?)")
        }
        let sampler = HeunSampler(steps: p["steps"]?.intValue ?? 18, sigmaMin: p["sigma_min"]?.doubleValue ?? 0.002,
                                  sigmaMax: p["sigma_max"]?.doubleValue ?? 80, rho: p["rho"]?.doubleValue ?? 7,
                                  sChurn: p["s_churn"]?.doubleValue ?? 0, sMin: p["s_min"]?.doubleValue ?? 0,
                                  sMax: p["s_max"]?.doubleValue ?? 1e9, sNoise: p["s_noise"]?.doubleValue ?? 1)
        let count = p["num_images"]?.intValue ?? 64, batch = p["batch"]?.intValue ?? 64
        let seed = UInt64(max(0, p["seed"]?.intValue ?? 0))
        let resolution = p["resolution"]?.intValue ?? 0
        do {
            let generator = try ImageGenerator(
                weightsURL: weights, sampler: sampler, outputResolution: resolution > 0 ? resolution : nil,
                coordinateMode: ImageGenerator.CoordinateMode(rawValue: p["coordinates"]?.stringValue ?? "") ?? .extrapolate)
            let r = generator.outputResolution, c = generator.net.imageChannels
            context.emit(.log("sample: \(count) images \(r)x\(r)x\(c), \(sampler.steps) Heun steps (\(sampler.evaluations) evaluations), seed \(seed)"))
            var pixels: [UInt8] = []
            pixels.reserveCapacity(count * r * r * c)
            let started = Date()
            var first = 0
            while first < count {
                if context.isCancelled() { throw StageCancelled() }
                let n = min(batch, count - first)
                pixels += HeunSampler.toUInt8NHWC(generator.generate(first: first, count: n, seed: seed))
                first += n
                context.emit(.progress(completed: Double(first), total: Double(count), unit: "images", detail: ""))
            }
            let seconds = Date().timeIntervalSince(started)
            try SampleArtifact.write(pixels: pixels, count: count, resolution: r, channels: c, weights: weights,
                                     to: context.outputDirectory)
            return StageOutcome(metrics: ["images": Double(count), "seconds": seconds,
                                          "images_per_second": Double(count) / max(seconds, 1e-9),
                                          "evaluations_per_image": Double(sampler.evaluations)])
        } catch let e as DiffusionError {
            throw StageError("\(context.stageName): \(e.message)")
        } catch let e as DataError {
            throw StageError("\(context.stageName): \(e.message)")
        }
    }
}
