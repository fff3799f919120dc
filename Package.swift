// swift-tools-version: 6.1
import PackageDescription

// Layers, top to bottom: pdpipe (CLI) -> Pipeline -> Stages -> Engine -> C system libraries.
let package = Package(
    name: "pdpipe",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "pdpipe", targets: ["pdpipe"]),
        .executable(name: "pdpipe-bench", targets: ["PDBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // System libraries (Debian: libopenblas-dev, libpng-dev, zlib1g-dev).
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG"),
        // Small C helpers (cpuid, OpenBLAS kernel selection; shell stages' process-group spawn).
        .target(name: "CEngineSupport", path: "Sources/CEngineSupport", cSettings: [.unsafeFlags(["-O2"])]),
        // oneDNN (Debian libdnnl-dev 2.6), opened with dlopen at run time: see Sources/CDNNL/include/CDNNL.h.
        .target(name: "CDNNL", path: "Sources/CDNNL", cSettings: [.unsafeFlags(["-O2"])], linkerSettings: [.linkedLibrary("dl")]),

        // Engine: tensors, BLAS backend, layers, U-Net, EDM, data, metrics.
        .target(
            name: "Engine",
            dependencies: ["COpenBLAS", "CPNG", "CEngineSupport", "CDNNL", .product(name: "Crypto", package: "swift-crypto")],
            // Numeric code is optimised even in debug builds so the test suite runs in minutes.
            swiftSettings: [
                .unsafeFlags(["-Ounchecked"], .when(configuration: .release)),
                .unsafeFlags(["-O"], .when(configuration: .debug)),
            ]
        ),
        // Stages: one file per stage kind, mapping params + inputs to engine calls.
        .target(name: "Stages", dependencies: ["Engine", "CEngineSupport"]),
        // Pipeline: spec, expansion, graph, keys, store, executor, report.
        .target(
            name: "Pipeline",
            dependencies: [
                "Stages",
                .product(name: "Yams", package: "Yams"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // CLI: argument parsing and printing only.
        .executableTarget(
            name: "pdpipe",
            dependencies: ["Pipeline", "Stages", "Engine", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Benchmarks (release build): `swift run -c release pdpipe-bench --help`.
        .executableTarget(
            name: "PDBench",
            dependencies: ["Engine", "Stages", "Pipeline", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "bench/PDBench"
        ),

        .testTarget(name: "EngineTests", dependencies: ["Engine"]),
        .testTarget(name: "StagesTests", dependencies: ["Stages", "Engine"]),
        // Engine (PNG writer, checkpoint reader) and GRDB (independent SQL checks) for the reliability tests;
        // Fixtures/ holds bad-input files the tests read by path.
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "Stages", "Engine", .product(name: "GRDB", package: "GRDB.swift")],
                    exclude: ["Fixtures"]),
    ]
)
