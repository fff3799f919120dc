/// Computes `FeatureStatistics` of a dataset artifact (real images or samples) under one
/// extractor, streaming batches: moments of all (or `maxImages`) images, a KID subset
/// and, optionally, SWD patch descriptors. Images are visited in a seeded random order,
/// so the KID and SWD subsets are random draws even from class-sorted sets.
public struct FeatureStatisticsOptions: Sendable, Equatable {
    /// 0: all images.
    public var maxImages = 0
    /// Feature rows kept for KID.
    public var kidFeatures = 5000
    /// Images whose patch descriptors are kept for SWD; 0: no SWD.
    public var swdImages = 0
    public var swd = SlicedWassersteinConfig()
    public var batchSize = 50
    public var seed: UInt64 = 0
    public init() {}
}

public enum FeatureStatisticsBuilder {
    /// `progress(done, total)` is called after each batch; it may throw to stop.
    public static func compute(_ dataset: DatasetArtifact, extractor: any FeatureExtractor,
                               options: FeatureStatisticsOptions,
                               progress: (Int, Int) throws -> Void = { _, _ in }) throws -> FeatureStatistics {
        let total = options.maxImages > 0 ? min(options.maxImages, dataset.count) : dataset.count
        guard total >= 2 else { throw MetricsError("feature statistics need at least 2 images, the set has \(dataset.count)") }
        var rng = RandomGenerator(seed: options.seed)
        var order = Array(0..<dataset.count)
        order.shuffle(using: &rng)
        order = Array(order[0..<total])

        var moments = FeatureMoments(dimension: extractor.dimension)
        var kid: [Float] = []
        var patches = options.swdImages > 0 ? PatchDescriptors(channels: dataset.channels, config: options.swd) : nil
        var done = 0
        while done < total {
            let indices = Array(order[done..<min(done + options.batchSize, total)])
            let images = dataset.batch(indices: indices)
            let features = extractor.features(images)
            moments.add(features)
            let keep = min(indices.count, max(0, options.kidFeatures - kid.count / extractor.dimension))
            kid += features[0..<(keep * extractor.dimension)]
            if var p = patches, p.imageCount < options.swdImages {
                let take = min(indices.count, options.swdImages - p.imageCount)
                p.add(images.batchSlice(0..<take), seed: options.seed &+ 1)
                patches = p
            }
            done += indices.count
            try progress(done, total)
        }
        return FeatureStatistics(extractor: extractor.name, moments: moments, kidFeatures: kid, patches: patches)
    }
}
