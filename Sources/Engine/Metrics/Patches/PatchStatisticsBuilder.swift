/// Computes `PatchStatistics` of a data-set artifact in one streaming pass: batches of images are
/// cut into patches by the rule (the trainer's own crop, `PatchBatch`), their features added to a
/// running mean and covariance per size (`FeatureMoments`, Float64), and dropped.
///
/// Memory does not grow with the set: per size D + D² Float64 running sums (D = 128: 130 KB), plus
/// one batch of `batchSize` x `patchesPerImage` patches at the network's input side and its
/// activations. Images are read through the artifact's memory mapping, in ascending order.
public enum PatchStatisticsBuilder {
    /// The images used: all, or `maxImages` of them drawn with `seed` (then in ascending order,
    /// so the pass reads the mapping front to back).
    public static func selectImages(count: Int, maxImages: Int, seed: UInt64) -> [Int] {
        guard maxImages > 0, maxImages < count else { return Array(0..<count) }
        var rng = RandomGenerator(seed: seed)
        var order = Array(0..<count)
        order.shuffle(using: &rng)
        return order[0..<maxImages].sorted()
    }

    /// The patches of images `indices` at size `s`, NCHW in [-1, 1], image by image, each image's
    /// patches in the order of `rule.offsets`.
    public static func patches(_ source: some TrainingImageSet, indices: [Int], size s: Int, rule: PatchSamplingRule) -> Tensor {
        var images: [Int] = [], offsets: [PatchOffset] = []
        for i in indices {
            let o = rule.offsets(image: i, size: s)
            images += Array(repeating: i, count: o.count)
            offsets += o
        }
        return PatchBatch(source: source, indices: images, size: s, offsets: offsets).images
    }

    /// `progress(done, total)` after each batch of images; it may throw to stop.
    public static func compute(_ dataset: DatasetArtifact, rule: PatchSamplingRule, extractor: PatchFeatureExtractor,
                               maxImages: Int = 0, batchSize: Int = 50,
                               progress: (Int, Int) throws -> Void = { _, _ in }) throws -> PatchStatistics {
        guard dataset.resolution == rule.resolution else {
            throw MetricsError("the patch rule is for \(rule.resolution)x\(rule.resolution) images, the set has \(dataset.resolution)x\(dataset.resolution)")
        }
        let indices = selectImages(count: dataset.count, maxImages: maxImages, seed: rule.seed)
        guard indices.count >= 2 else { throw MetricsError("patch statistics need at least 2 images, the set has \(dataset.count)") }
        var moments = Dictionary(uniqueKeysWithValues: rule.sizes.map { ($0, FeatureMoments(dimension: extractor.dimension)) })
        var done = 0
        while done < indices.count {
            let batch = Array(indices[done..<min(done + max(1, batchSize), indices.count)])
            for s in rule.sizes {
                moments[s]!.add(extractor.features(patches(dataset, indices: batch, size: s, rule: rule)))
            }
            done += batch.count
            try progress(done, indices.count)
        }
        let statistics = moments.mapValues { FeatureStatistics(extractor: extractor.name, moments: $0, kidFeatures: []) }
        return PatchStatistics(rule: rule, extractor: extractor.name, imageCount: indices.count, statistics: statistics)
    }
}
