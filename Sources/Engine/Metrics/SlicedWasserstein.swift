import COpenBLAS

/// Multi-scale sliced Wasserstein distance on Laplacian-pyramid patches
/// (Karras et al. 2018, ProGAN): from every image, `patchesPerImage` random
/// 7x7 neighbourhoods per pyramid level become C·49-d descriptors; each set's
/// descriptors are normalised per channel; per level the SWD is the mean over
/// random unit directions of the 1-D Wasserstein-1 distance of the projections
/// (sorted projections matched). Reported x 10³ as in the paper, per level
/// (finest first) and averaged. Needs no weights: it also sees global structure
/// through the coarse levels.
public struct SlicedWassersteinConfig: Sendable, Equatable, Codable {
    public var neighbourhood = 7
    public var patchesPerImage = 128
    public var repeats = 4
    public var directionsPerRepeat = 128
    public var minimumResolution = 16
    public init() {}
}

/// Patch descriptors of one image set, accumulated image by image.
public struct PatchDescriptors: Sendable {
    public let channels: Int
    public let config: SlicedWassersteinConfig
    /// Per level: rows of channels x n x n values (raw, not yet normalised).
    public private(set) var levels: [[Float]] = []
    public private(set) var imageCount = 0
    public var descriptorSize: Int { channels * config.neighbourhood * config.neighbourhood }
    public var descriptorsPerLevel: Int { levels.first.map { $0.count / descriptorSize } ?? 0 }

    public init(channels: Int, config: SlicedWassersteinConfig = .init()) {
        self.channels = channels
        self.config = config
    }

    /// Reassembles descriptors saved with `levels` (e.g. read from a refstats artifact).
    public init(channels: Int, config: SlicedWassersteinConfig, levels: [[Float]], imageCount: Int) {
        self.channels = channels
        self.config = config
        self.levels = levels
        self.imageCount = imageCount
    }

    /// Adds a batch of images (NCHW, any consistent value scale). Patch positions come
    /// from a stream per image index, so the result does not depend on the batching.
    public mutating func add(_ images: Tensor, seed: UInt64) {
        precondition(images.rank == 4 && images.shape[1] == channels)
        let (n, c, h, w) = (images.shape[0], channels, images.shape[2], images.shape[3])
        let k = config.neighbourhood
        for i in 0..<n {
            let image = Array(images.data[(i * c * h * w)..<((i + 1) * c * h * w)])
            let pyramid = LaplacianPyramid.levels(image, channels: c, height: h, width: w,
                                                  minimumSize: config.minimumResolution)
            if levels.isEmpty { levels = Array(repeating: [], count: pyramid.count) }
            precondition(pyramid.count == levels.count, "all images of a set must have one size")
            var rng = RandomGenerator(seed: seed, stream: UInt64(imageCount))
            for (l, level) in pyramid.enumerated() {
                precondition(level.height >= k && level.width >= k, "pyramid level smaller than the neighbourhood")
                for _ in 0..<config.patchesPerImage {
                    let y = rng.integer(upTo: level.height - k), x = rng.integer(upTo: level.width - k)
                    for ch in 0..<c { for dy in 0..<k { for dx in 0..<k {
                        levels[l].append(level.data[(ch * level.height + y + dy) * level.width + x + dx])
                    } } }
                }
            }
            imageCount += 1
        }
    }

    /// Descriptors of one level normalised per channel (mean 0, std 1 over the set).
    func normalisedLevel(_ l: Int) -> [Float] {
        var d = levels[l]
        let per = config.neighbourhood * config.neighbourhood
        let rows = d.count / descriptorSize
        for ch in 0..<channels {
            var sum = 0.0, sq = 0.0
            for r in 0..<rows { for t in 0..<per {
                let v = Double(d[r * descriptorSize + ch * per + t]); sum += v; sq += v * v
            } }
            let count = Double(rows * per)
            let mean = sum / count
            let std = max((sq / count - mean * mean), 0).squareRoot()
            let inv = std > 0 ? 1 / std : 1
            for r in 0..<rows { for t in 0..<per {
                let idx = r * descriptorSize + ch * per + t
                d[idx] = Float((Double(d[idx]) - mean) * inv)
            } }
        }
        return d
    }
}

public struct SlicedWassersteinDistance: Sendable {
    /// x 10³, finest level first.
    public var perLevel: [Double]
    public var average: Double { perLevel.reduce(0, +) / Double(max(perLevel.count, 1)) }

    public init(_ a: PatchDescriptors, _ b: PatchDescriptors, seed: UInt64 = 0) throws {
        guard a.channels == b.channels, a.levels.count == b.levels.count, a.config == b.config, !a.levels.isEmpty else {
            throw MetricsError("SWD: descriptor sets differ in channels, pyramid depth or settings "
                               + "(\(a.channels)ch/\(a.levels.count) levels vs \(b.channels)ch/\(b.levels.count) levels)")
        }
        let size = a.descriptorSize
        // Equal counts so that sorted projections can be matched one to one.
        let rows = min(a.descriptorsPerLevel, b.descriptorsPerLevel)
        var rng = RandomGenerator(seed: seed)
        var result: [Double] = []
        for l in 0..<a.levels.count {
            let da = Self.subsample(a.normalisedLevel(l), size: size, rows: rows, &rng)
            let db = Self.subsample(b.normalisedLevel(l), size: size, rows: rows, &rng)
            var total = 0.0
            for _ in 0..<a.config.repeats {
                let k = a.config.directionsPerRepeat
                // size x k random unit directions (columns).
                var dirs = (0..<(size * k)).map { _ in rng.normal() }
                for j in 0..<k {
                    var norm: Float = 0
                    for i in 0..<size { norm += dirs[i * k + j] * dirs[i * k + j] }
                    norm = norm.squareRoot()
                    for i in 0..<size { dirs[i * k + j] /= norm }
                }
                let pa = Self.project(da, dirs, rows: rows, size: size, k: k)
                let pb = Self.project(db, dirs, rows: rows, size: size, k: k)
                // Sorting dominates; directions are independent, so split them over the engine's threads.
                var perDirection = [Double](repeating: 0, count: k)
                perDirection.withUnsafeMutableBufferPointer { out in
                    let out = UncheckedSendable(out)
                    Engine.parallelFor(k, costPerItem: rows * 16) { range in
                        var ca = [Float](repeating: 0, count: rows), cb = ca
                        for j in range {
                            for r in 0..<rows { ca[r] = pa[r * k + j]; cb[r] = pb[r * k + j] }
                            ca.sort(); cb.sort()
                            var sum = 0.0
                            for r in 0..<rows { sum += Double(abs(ca[r] - cb[r])) }
                            out.value[j] = sum
                        }
                    }
                }
                total += perDirection.reduce(0, +) / Double(rows * k)
            }
            result.append(total / Double(a.config.repeats) * 1e3)
        }
        perLevel = result
    }

    static func project(_ d: [Float], _ dirs: [Float], rows: Int, size: Int, k: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows * k)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(k), Int32(size),
                    1.0, d, Int32(size), dirs, Int32(k), 0.0, &out, Int32(k))
        return out
    }

    static func subsample(_ d: [Float], size: Int, rows: Int, _ rng: inout RandomGenerator) -> [Float] {
        let have = d.count / size
        if have == rows { return d }
        var out = [Float](repeating: 0, count: rows * size)
        KernelDistance.gather(d, rows: KernelDistance.choose(rows, of: have, &rng), dimension: size, into: &out)
        return out
    }
}
