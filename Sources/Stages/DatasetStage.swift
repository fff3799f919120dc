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
    public static let sources = ["fashion-mnist", "emoji", "png-folder", "cifar10"]

    public init() {}

    public var name: String { "dataset" }
    // 2: measurements (seconds, speeds) left the artifact for the store.
    public var version: Int { 2 }

    public var params: [ParamSpec] {
        [
            ParamSpec("source", .oneOf(Self.sources), help: "which data set to read"),
            ParamSpec("path", .string, default: .string(""),
                      help: "folder or file to read; empty: the system copy (fashion-mnist, emoji)"),
            ParamSpec("resolution", .int, default: .int(32), help: "output images are resolution x resolution",
                      check: { ($0.intValue ?? 0) >= 1 && ($0.intValue ?? 0) <= 4096 ? nil : "must be between 1 and 4096" }),
            ParamSpec("fit", .oneOf(FitMode.allCases.map(\.rawValue)), default: .string(FitMode.pad.rawValue),
                      help: "pad: shrink to fit and pad with the background; center-crop-resize: central square, resized"),
            ParamSpec("filter", .oneOf(ResizeFilter.allCases.map(\.rawValue)), default: .string(ResizeFilter.lanczos3.rawValue),
                      help: "resampling filter when resizing (antialiased)"),
            ParamSpec("channels", .int, default: .int(0), help: "1 (gray) or 3 (RGB); 0 keeps the source's own",
                      check: { [0, 1, 3].contains($0.intValue ?? -1) ? nil : "must be 0 (the source's own), 1 or 3" }),
            ParamSpec("split", .oneOf(["train", "test"]), default: .string("train"),
                      help: "train or test split (fashion-mnist, cifar10)"),
            ParamSpec("max_images", .int, default: .int(0), help: "keep a seeded random subset of this many images; 0: all",
                      check: { ($0.intValue ?? -1) >= 0 ? nil : "must be 0 (all) or a positive count" }),
            ParamSpec("seed", .int, default: .int(0), help: "seed of the max_images subset",
                      check: { ($0.intValue ?? -1) >= 0 ? nil : "must be a non-negative integer" }),
            ParamSpec("hflip", .bool, default: .bool(false),
                      help: "train also on mirror images (flag in the manifest; no pixels stored twice)"),
        ]
    }

    public func validate(_ params: [String: ParamValue]) -> [(field: String, message: String)] {
        var problems: [(field: String, message: String)] = []
        let source = params["source"]?.stringValue ?? ""
        let path = params["path"]?.stringValue ?? ""
        if (source == "png-folder" || source == "cifar10") && path.isEmpty {
            problems.append(("path", "source \(source) needs a path (the folder to read)"))
        }
        if source == "emoji" && params["split"]?.stringValue == "test" {
            problems.append(("split", "source emoji has no test split (all 3,926 images are one set)"))
        }
        return problems
    }

    public func externalPaths(_ params: [String: ParamValue], projectDirectory: URL) -> [URL] {
        let path = params["path"]?.stringValue ?? ""
        func resolved(_ fallback: URL) -> URL {
            path.isEmpty ? fallback : path.hasPrefix("/") ? URL(fileURLWithPath: path) : projectDirectory.appendingPathComponent(path)
        }
        let split = params["split"]?.stringValue ?? "train"
        switch params["source"]?.stringValue {
        case "fashion-mnist":
            let files = FashionMNISTSource.files(in: resolved(FashionMNISTSource.defaultDirectory),
                                                 split: split == "test" ? .test : .train)
            return [files.images, files.labels]
        case "emoji":
            return [resolved(EmojiSource.defaultFont)]
        case "png-folder":
            return [resolved(projectDirectory)]
        case "cifar10":
            let directory = resolved(projectDirectory)
            let meta = directory.appendingPathComponent("batches.meta.txt")
            return CIFAR10Source.batchFiles(in: directory, split: split == "test" ? .test : .train)
                + (FileManager.default.fileExists(atPath: meta.path) ? [meta] : [])
        default:
            return []
        }
    }

    public func run(_ context: StageContext) throws -> StageOutcome {
        let params = context.params
        let sourceName = params["source"]?.stringValue ?? ""
        let path = params["path"]?.stringValue ?? ""
        let split = params["split"]?.stringValue ?? "train"
        let channels = params["channels"]?.intValue ?? 0
        let maxImages = params["max_images"]?.intValue ?? 0
        let options = DatasetOptions(
            resolution: params["resolution"]?.intValue ?? 32,
            fit: FitMode(rawValue: params["fit"]?.stringValue ?? "") ?? .pad,
            filter: ResizeFilter(rawValue: params["filter"]?.stringValue ?? "") ?? .lanczos3,
            channels: channels == 0 ? nil : channels,
            maxImages: maxImages == 0 ? nil : maxImages,
            seed: UInt64(max(0, params["seed"]?.intValue ?? 0)),
            hflip: params["hflip"]?.boolValue ?? false,
            split: sourceName == "fashion-mnist" || sourceName == "cifar10" ? split : nil)
        let started = Date()
        do {
            let source: any ImageSource
            switch sourceName {
            case "fashion-mnist":
                source = try FashionMNISTSource(directory: path.isEmpty ? FashionMNISTSource.defaultDirectory : context.path(path),
                                                split: split == "test" ? .test : .train)
            case "emoji":
                source = try EmojiSource(font: path.isEmpty ? EmojiSource.defaultFont : context.path(path))
            case "png-folder":
                source = try PNGFolderSource(directory: context.path(path))
            case "cifar10":
                source = try CIFAR10Source(directory: context.path(path), split: split == "test" ? .test : .train)
            default:
                throw StageError("dataset: unknown source '\(sourceName)' (expected one of \(Self.sources.joined(separator: ", ")))")
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
