import Dispatch
import Foundation

/// How a source becomes a training set: geometry, channels, subset, flip.
public struct DatasetOptions: Sendable, Equatable {
    public var resolution: Int
    public var fit: FitMode
    public var filter: ResizeFilter
    /// 1 or 3; nil keeps the source's own (and then a folder mixing gray and colour is an error).
    public var channels: Int?
    /// Keep a seeded random subset of this many images (nil or >= count: all).
    public var maxImages: Int?
    public var seed: UInt64
    public var hflip: Bool
    public var split: String?

    public init(resolution: Int = 32, fit: FitMode = .pad, filter: ResizeFilter = .lanczos3, channels: Int? = nil,
                maxImages: Int? = nil, seed: UInt64 = 0, hflip: Bool = false, split: String? = nil) {
        self.resolution = resolution
        self.fit = fit
        self.filter = filter
        self.channels = channels
        self.maxImages = maxImages
        self.seed = seed
        self.hflip = hflip
        self.split = split
    }
}

/// Raised when preparation was asked to stop.
public struct DataCancelled: Error, Sendable { public init() {} }

/// Source -> (subset, composite, channels, fit) -> artifact.
public enum DatasetPreparation {
    /// `maxImages` distinct indices of `0..<count` chosen by a seeded partial Fisher-Yates
    /// shuffle, returned in ascending (source) order. Same seed -> same subset.
    public static func subsetIndices(count: Int, maxImages: Int?, seed: UInt64) -> [Int] {
        guard let k = maxImages, k < count else { return Array(0..<count) }
        var rng = RandomGenerator(seed: seed)
        var pool = Array(0..<count)
        for i in 0..<k { pool.swapAt(i, i + rng.integer(upTo: count - 1 - i)) }
        return pool[0..<k].sorted()
    }

    /// The prepared images (NHWC uint8) and their labels.
    public struct Prepared: Sendable {
        public var pixels: [UInt8]
        public var labels: [Int]
        public var indices: [Int]
        public var channels: Int
        public var resolution: Int
        public var count: Int { labels.count }

        public func image(at i: Int) -> ByteImage {
            let n = resolution * resolution * channels
            return ByteImage(width: resolution, height: resolution, channels: channels,
                             pixels: Array(pixels[i * n..<(i + 1) * n]))
        }
    }

    /// Decodes and converts the selected images on `threads` threads. Errors name the file; when
    /// several images fail, the one earliest in source order is reported.
    public static func prepare(_ source: any ImageSource, options: DatasetOptions, threads: Int = 1,
                               progress: @Sendable (_ done: Int, _ total: Int) -> Void = { _, _ in },
                               isCancelled: @Sendable () -> Bool = { false }) throws -> Prepared {
        let indices = subsetIndices(count: source.count, maxImages: options.maxImages, seed: options.seed)
        guard !indices.isEmpty else { throw DataError("\(source.files.first?.path ?? source.sourceName): the data set is empty") }
        // The first image fixes the native colour channel count.
        let first = try source.image(at: indices[0])
        let nativeChannels = first.colorChannels
        let channels = options.channels ?? nativeChannels
        let r = options.resolution, imageBytes = r * r * channels
        var pixels = [UInt8](repeating: 0, count: indices.count * imageBytes)
        let block = 2048
        var done = 0
        while done < indices.count {
            if isCancelled() { throw DataCancelled() }
            let range = done..<min(done + block, indices.count)
            let workers = max(1, min(threads, range.count))
            var failures = [DataError?](repeating: nil, count: workers)
            pixels.withUnsafeMutableBufferPointer { outBuffer in
                failures.withUnsafeMutableBufferPointer { failedBuffer in
                    let out = SharedPointer(base: outBuffer.baseAddress!), failed = SharedPointer(base: failedBuffer.baseAddress!)
                    DispatchQueue.concurrentPerform(iterations: workers) { worker in
                        // Contiguous share per worker; the first failure in source order wins.
                        let share = (range.count + workers - 1) / workers
                        let lo = range.lowerBound + worker * share, hi = min(lo + share, range.upperBound)
                        guard lo < hi else { return }
                        for k in lo..<hi {
                            do {
                                let image = try convert(source, index: indices[k], options: options,
                                                        nativeChannels: options.channels == nil ? nativeChannels : nil,
                                                        channels: channels)
                                image.pixels.withUnsafeBufferPointer {
                                    (out.base + k * imageBytes).update(from: $0.baseAddress!, count: imageBytes)
                                }
                            } catch let error as DataError {
                                failed.base[worker] = error
                                return
                            } catch {
                                failed.base[worker] = DataError("\(error)")
                                return
                            }
                        }
                    }
                }
            }
            if let error = failures.compactMap({ $0 }).first { throw error }
            done = range.upperBound
            progress(done, indices.count)
        }
        let labels = indices.map { source.labels[$0] }
        return Prepared(pixels: pixels, labels: labels, indices: indices, channels: channels, resolution: r)
    }

    /// One image: composite alpha on the background, check/convert channels, fit to the resolution.
    static func convert(_ source: any ImageSource, index: Int, options: DatasetOptions,
                        nativeChannels: Int?, channels: Int) throws -> ByteImage {
        var image = try source.image(at: index).compositedOver(background: source.background)
        if let nativeChannels, image.colorChannels != nativeChannels {
            let kinds = [1: "gray", 3: "colour"]
            throw DataError("\(source.itemName(at: index)): mixed channel counts: this image is \(kinds[image.colorChannels]!) (\(image.colorChannels)) but the first is \(kinds[nativeChannels]!) (\(nativeChannels)); set channels: 1 or 3 to convert them all")
        }
        image = image.converted(toChannels: channels)
        return image.fitted(to: options.resolution, mode: options.fit, filter: options.filter, background: source.background)
    }

    /// Prepares `source` and writes the whole artifact (images.bin, manifest.json, preview.png)
    /// into `directory`. Returns the manifest written.
    @discardableResult
    public static func run(_ source: any ImageSource, options: DatasetOptions, to directory: URL, threads: Int = 1,
                           progress: @Sendable (_ done: Int, _ total: Int) -> Void = { _, _ in },
                           isCancelled: @Sendable () -> Bool = { false }) throws -> DatasetManifest {
        let prepared = try prepare(source, options: options, threads: threads, progress: progress, isCancelled: isCancelled)
        let base = (source as? PNGFolderSource)?.directory
        let (digest, listed) = try DatasetManifest.digest(files: source.files, relativeTo: base)
        let subset = prepared.count < source.count
            ? DatasetManifest.Subset(maxImages: prepared.count, seed: options.seed, sourceCount: source.count) : nil
        let manifest = DatasetManifest(
            source: source.sourceName, split: options.split, sourceDigest: digest,
            sourceFiles: listed.count <= 16 ? listed : nil, sourceFileCount: listed.count,
            count: prepared.count, resolution: prepared.resolution, channels: prepared.channels,
            labelNames: source.labelNames, hflip: options.hflip, fit: options.fit.rawValue, filter: options.filter.rawValue,
            subset: subset, layout: DatasetArtifact.layout(count: prepared.count, imageBytes: prepared.resolution * prepared.resolution * prepared.channels))
        try DatasetArtifact.write(pixels: prepared.pixels, labels: prepared.labels, manifest: manifest, to: directory)
        let preview = (0..<min(64, prepared.count)).map(prepared.image(at:))
        try writeGridPNG(images: preview, columns: 8, to: directory.appendingPathComponent(DatasetArtifact.previewFileName))
        return manifest
    }
}

/// A buffer that concurrent workers write at disjoint offsets (each worker owns its range).
private struct SharedPointer<Element>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
}
