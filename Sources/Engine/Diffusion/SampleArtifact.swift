import Foundation

/// Generated images stored in the dataset artifact layout (`images.bin` + `manifest.json`,
/// source `samples`, unlabelled), so evaluation stages read them exactly like a data set,
/// plus `grid.png` of the first images.
public enum SampleArtifact {
    public static let gridFileName = "grid.png"

    /// `pixels`: `count` images, uint8 NHWC. `weights` is the file they were drawn from (its digest is recorded).
    public static func write(pixels: [UInt8], count: Int, resolution: Int, channels: Int, weights: URL,
                             gridImages: Int = 64, to directory: URL) throws {
        // Named relative to the model's directory: a store path would make the artifact machine-specific.
        let (digest, listed) = try DatasetManifest.digest(files: [weights], relativeTo: weights.deletingLastPathComponent())
        let manifest = DatasetManifest(
            source: "samples", split: nil, sourceDigest: digest, sourceFiles: listed, sourceFileCount: 1, count: count,
            resolution: resolution, channels: channels, labelNames: [], hflip: false, fit: "none", filter: "none", subset: nil,
            layout: DatasetArtifact.layout(count: count, imageBytes: resolution * resolution * channels))
        try DatasetArtifact.write(pixels: pixels, labels: Array(repeating: -1, count: count), manifest: manifest, to: directory)
        let per = resolution * resolution * channels
        let shown = min(count, gridImages)
        guard shown > 0 else { return }
        let images = (0..<shown).map { k in
            ByteImage(width: resolution, height: resolution, channels: channels, pixels: Array(pixels[k * per ..< (k + 1) * per]))
        }
        let columns = Int(Double(shown).squareRoot().rounded(.up))
        try writeGridPNG(images: images, columns: columns, to: directory.appendingPathComponent(gridFileName))
    }
}
