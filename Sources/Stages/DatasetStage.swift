import Engine
import Foundation

/// `kind: dataset` — turns a real image set into the memory-mappable artifact training reads
/// (`images.bin` + `manifest.json` + `preview.png`, see `DatasetArtifact`).
///
/// Sources: `fashion-mnist` and `emoji` read their Debian-installed files unless `path` says
/// otherwise (a directory of the four `.gz` files / the font file); `png-folder` and `cifar10`
/// need `path` (the folder / the `cifar-10-batches-bin` directory).
/// `hflip: true` stores no extra pixels: the manifest flags it and `DatasetArtifact.trainingBatch`
/// serves indices `count..<2*count` as mirror images (EDM's `--xflip`).
public struct DatasetStage: StageKind {
    public enum Source: String, Sendable, CaseIterable, ConfigEnum {
        case fashionMNIST = "fashion-mnist", emoji, pngFolder = "png-folder", cifar10
    }
    public enum Split: String, Sendable, CaseIterable, ConfigEnum { case train, test }

    public init() {}

    public var name: String { "dataset" }
    // 2: measurements (seconds, speeds) left the artifact for the store.
    public var version: Int { 2 }

    public struct Config: StageConfig, Equatable {
        /// Required; the initial value is never used.
        public var source = Source.fashionMNIST
        /// Empty: the system copy (fashion-mnist, emoji).
        public var path = ""
        public var resolution = 32
        public var fit = FitMode.pad
        public var filter = ResizeFilter.lanczos3
        /// 0 keeps the source's own.
        public var channels = 0
        public var split = Split.train
        /// 0: all images.
        public var maxImages = 0
        public var seed = 0
        public var hflip = false

        public init() {}

        public static let fields: [ConfigField<Config>] = [
            .field("source", \.source, help: "which data set to read", required: true),
            .field("path", \.path, help: "folder or file to read; empty: the system copy (fashion-mnist, emoji)"),
            // 4096^2 RGB is 50 MB per image in images.bin.
            .field("resolution", \.resolution, help: "output images are resolution x resolution", check: .between(1, 4096)),
            .field("fit", \.fit, help: "pad: shrink to fit and pad with the background; center-crop-resize: central square, resized"),
            .field("filter", \.filter, help: "resampling filter when resizing (antialiased)"),
            .field("channels", \.channels, help: "1 (gray) or 3 (RGB); 0 keeps the source's own",
                   check: Check("0, 1 or 3") { [0, 1, 3].contains($0) ? nil : "must be 0 (the source's own), 1 or 3" }),
            .field("split", \.split, help: "train or test split (fashion-mnist, cifar10)"),
            // Ten million: beyond ImageNet-1k (1.28 M); the subset's index list is built in memory.
            .field("max_images", \.maxImages, help: "keep a seeded random subset of this many images; 0: all",
                   check: Check("0...10000000") {
                       $0 < 0 ? "must be 0 (all) or a positive count" : $0 > 10_000_000 ? "must be at most 10000000" : nil
                   }),
            .field("seed", \.seed, help: "seed of the max_images subset", check: .between(0, maxSeed)),
            .field("hflip", \.hflip, help: "train also on mirror images (flag in the manifest; no pixels stored twice)"),
        ]
    }

    public func validate(_ config: Config) -> [ConfigProblem] {
        var problems: [ConfigProblem] = []
        if (config.source == .pngFolder || config.source == .cifar10) && config.path.isEmpty {
            problems.append(ConfigProblem("path", "source \(config.source.rawValue) needs a path (the folder to read)"))
        }
        if config.source == .emoji && config.split == .test {
            problems.append(ConfigProblem("split", "source emoji has no test split (all 3,926 images are one set)"))
        }
        return problems
    }

    public func externalPaths(_ config: Config, projectDirectory: URL) -> [URL] {
        let path = config.path
        func resolved(_ fallback: URL) -> URL {
            path.isEmpty ? fallback : path.hasPrefix("/") ? URL(fileURLWithPath: path) : projectDirectory.appendingPathComponent(path)
        }
        let test = config.split == .test
        switch config.source {
        case .fashionMNIST:
            let files = FashionMNISTSource.files(in: resolved(FashionMNISTSource.defaultDirectory), split: test ? .test : .train)
            return [files.images, files.labels]
        case .emoji:
            return [resolved(EmojiSource.defaultFont)]
        case .pngFolder:
            return [resolved(projectDirectory)]
        case .cifar10:
            let directory = resolved(projectDirectory)
            let meta = directory.appendingPathComponent("batches.meta.txt")
            return CIFAR10Source.batchFiles(in: directory, split: test ? .test : .train)
                + (FileManager.default.fileExists(atPath: meta.path) ? [meta] : [])
        }
    }

    public func run(_ config: Config, context: StageContext) throws -> StageOutcome {
        let path = config.path
        let test = config.split == .test
        let options = DatasetOptions(
            resolution: config.resolution, fit: config.fit, filter: config.filter,
            channels: config.channels == 0 ? nil : config.channels,
            maxImages: config.maxImages == 0 ? nil : config.maxImages,
            seed: UInt64(config.seed), hflip: config.hflip,
            split: config.source == .fashionMNIST || config.source == .cifar10 ? config.split.rawValue : nil)
        let started = Date()
        do {
            let source: any ImageSource
            switch config.source {
            case .fashionMNIST:
                source = try FashionMNISTSource(directory: path.isEmpty ? FashionMNISTSource.defaultDirectory : context.path(path),
                                                split: test ? .test : .train)
            case .emoji:
                source = try EmojiSource(font: path.isEmpty ? EmojiSource.defaultFont : context.path(path))
            case .pngFolder:
                source = try PNGFolderSource(directory: context.path(path))
            case .cifar10:
                source = try CIFAR10Source(directory: context.path(path), split: test ? .test : .train)
            }
            context.emit(.log("dataset: \(source.sourceName), \(source.count) images in the source"))
            let emit = context.emit
            let manifest = try DatasetPreparation.run(
                source, options: options, to: context.outputDirectory, threads: max(1, context.threads),
                progress: { done, total in emit(.progress(completed: Double(done), total: Double(total), unit: "images", detail: "")) },
                isCancelled: context.isCancelled)
            let seconds = Date().timeIntervalSince(started)
            context.emit(.log(String(format: "dataset: wrote %d images of %dx%dx%d in %.2f s", manifest.count,
                                     manifest.resolution, manifest.resolution, manifest.channels, seconds)))
            return StageOutcome(metrics: ["images": Double(manifest.count)], measurements: ["seconds": seconds])
        } catch let error as DataError {
            throw StageError(error.message)
        } catch is DataCancelled {
            throw StageCancelled()
        }
    }
}

extension FitMode: ConfigEnum {}
extension ResizeFilter: ConfigEnum {}
