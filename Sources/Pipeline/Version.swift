/// The pdpipe version, printed by `pdpipe --version`.
public let pdpipeVersion = "0.1.0"

/// The first line of `pdpipe --version`; the CLI appends the engine's BLAS kernel line.
public var versionDescription: String { "pdpipe \(pdpipeVersion)" }
