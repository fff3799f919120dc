/// Choosing a backend for one network without touching the process-wide default.
///
/// Layers take `Engine.defaultBackend` when they are constructed and keep it, so building a
/// network inside `Engine.withBackend(b) { ... }` makes every layer of it use `b`; other threads
/// and tasks (e.g. tests running in parallel, another stage) keep their own default.
extension Engine {
    @TaskLocal static var scopedBackend: (any ComputeBackend)?

    /// Runs `body` (typically: construct a trainer, a network or an image generator) with
    /// `backend` as the default for layers created inside it.
    public static func withBackend<T>(_ backend: any ComputeBackend, _ body: () throws -> T) rethrows -> T {
        try $scopedBackend.withValue(backend, operation: body)
    }

    /// The backend a network of the given precision uses: fp32 = the start-up choice
    /// (`BackendSelection`: oneDNN or OpenBLAS); bf16 = oneDNN with bf16 convolutions, which
    /// throws where the CPU has no native bf16 (`Precision.unsupportedReason`).
    public static func backend(for precision: Precision) throws -> any ComputeBackend {
        switch precision {
        case .fp32:
            return defaultBackend
        case .bf16:
            return try OneDNNBackend(precision: .bf16)
        }
    }
}
