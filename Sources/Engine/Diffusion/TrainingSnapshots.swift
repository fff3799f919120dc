import Foundation

/// EMA snapshots of a training run, kept in its artifact as `snapshots/ema-<kimg>.pdt` (the same
/// format as the final `ema.pdt`): one training gives a quality-versus-training curve, and a
/// sampler picks any point with `at_kimg`.
public enum TrainingSnapshots {
    public static let directory = "snapshots"

    /// `ema-20.pdt`, `ema-0.04.pdt`: the counted kimg in its shortest form.
    public static func fileName(kimg: Double) -> String { "ema-" + String(format: "%.10g", kimg) + ".pdt" }

    /// The snapshots in a training artifact (or work directory), by counted kimg.
    public static func list(in directory: URL) -> [(kimg: Double, url: URL)] {
        let dir = directory.appendingPathComponent(Self.directory)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.compactMap { name -> (Double, URL)? in
            guard name.hasPrefix("ema-"), name.hasSuffix(".pdt"), let k = Double(name.dropFirst(4).dropLast(4)) else { return nil }
            return (k, dir.appendingPathComponent(name))
        }.sorted { $0.0 < $1.0 }
    }
}
