/// The pdpipe version, printed by `pdpipe --version`.
public let pdpipeVersion = "0.1.0"

/// What `pdpipe --version` prints. The engine's BLAS kernel line is appended here once the engine reports it.
public var versionDescription: String { "pdpipe \(pdpipeVersion)" }
