/// Where patch-level statistics cut their patches: the sizes, how many patches per image, and
/// seeded positions. A reference set and a sample set cut with the same rule are compared patch
/// for patch under the same distribution of positions.
///
/// Positions are uniform over the (R − s + 1)² top-left corners, as the trainer draws them
/// (`PatchSchedule.drawOffset`). Image k's patches at size s come from their own random stream
/// (seed, k, s): they do not depend on the batch size, on which other images are used, or on the
/// other sizes, so a subset (`max_images`) keeps every image's patches.
public struct PatchSamplingRule: Codable, Sendable, Equatable {
    public var resolution: Int
    /// Patch sides in pixels, ascending, each in 1...resolution.
    public var sizes: [Int]
    /// Patches per image at sizes below the resolution. A full-size patch has only one position,
    /// so the size R always takes one patch (more would be copies of the same image).
    public var patchesPerImage: Int
    public var seed: UInt64

    public init(resolution: Int, sizes: [Int], patchesPerImage: Int, seed: UInt64) throws {
        if let problem = Self.problem(sizes: sizes, resolution: resolution) { throw MetricsError(problem) }
        guard patchesPerImage >= 1 else { throw MetricsError("patches per image must be at least 1, got \(patchesPerImage)") }
        self.resolution = resolution
        self.sizes = sizes.sorted()
        self.patchesPerImage = patchesPerImage
        self.seed = seed
    }

    /// The sizes Patch Diffusion trains on: R/4, R/2 and R (without repeats for tiny R).
    public static func defaultSizes(resolution: Int) -> [Int] {
        var out: [Int] = []
        for s in [resolution / 4, resolution / 2, resolution] where s >= 1 && !out.contains(s) { out.append(s) }
        return out
    }

    /// Why `sizes` cannot be cut from `resolution`-pixel images, or nil.
    public static func problem(sizes: [Int], resolution: Int) -> String? {
        if sizes.isEmpty { return "no patch sizes" }
        if let bad = sizes.first(where: { $0 < 1 || $0 > resolution }) {
            return "patch size \(bad) does not fit \(resolution)x\(resolution) images (sizes must be between 1 and \(resolution))"
        }
        if Set(sizes).count != sizes.count { return "patch sizes \(sizes) repeat a size" }
        return nil
    }

    /// Patches per image at size `s`.
    public func count(forSize s: Int) -> Int { s == resolution ? 1 : patchesPerImage }

    /// The top-left corners of image `image`'s patches at size `s`.
    public func offsets(image: Int, size s: Int) -> [PatchOffset] {
        precondition(sizes.contains(s), "patch size \(s) is not one of \(sizes)")
        if s == resolution { return [PatchOffset(row: 0, column: 0)] }
        // Sizes fit in 16 bits (resolutions are at most a few thousand), images in the other 48.
        var rng = RandomGenerator(seed: seed, stream: UInt64(image) << 16 | UInt64(s))
        return (0..<patchesPerImage).map { _ in
            let row = rng.integer(upTo: resolution - s)
            return PatchOffset(row: row, column: rng.integer(upTo: resolution - s))
        }
    }
}
