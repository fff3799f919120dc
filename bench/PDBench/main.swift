import ArgumentParser

/// `pdpipe-bench`: benchmark command group (release build: `swift run -c release pdpipe-bench <subcommand>`).
/// Each benchmark is a subcommand in its own file; add new ones to `subcommands`.
struct PDBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pdpipe-bench",
        abstract: "pdpipe benchmarks (run in a release build).",
        subcommands: [EngineBench.self, NormABBench.self, ConvABBench.self, ConvBackendBench.self, DiffusionBackendBench.self, DiffusionBench.self, DiffusionCrosscheckExport.self, MemoryBench.self, PatchRoundExport.self, StepBreakdown.self]
    )
}

PDBench.main()
