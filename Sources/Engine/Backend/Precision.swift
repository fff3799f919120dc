/// Numeric precision of a network's convolutions.
///
/// `bf16` is mixed precision like PyTorch's CPU autocast: convolution inputs, weights and output
/// gradients are rounded to bfloat16 inside oneDNN, accumulation, outputs, weight gradients,
/// master weights, optimizer state and the loss stay fp32. It needs oneDNN with native bf16
/// kernels (`OneDNN.ISA.hasNativeBF16`); elsewhere `Precision.bf16` is unsupported (an error,
/// never a silent fp32 run, because the precision is part of a result's identity).
public enum Precision: String, Sendable, Codable, CaseIterable {
    case fp32, bf16

    /// Why this precision cannot run here, or nil if it can.
    public var unsupportedReason: String? {
        switch self {
        case .fp32: return nil
        case .bf16:
            guard OneDNN.isAvailable else { return "bf16 needs oneDNN: \(OneDNN.loadError ?? "not loaded")" }
            guard let isa = OneDNN.effectiveISA, isa.hasNativeBF16 else {
                return "bf16 needs a CPU with AVX-512 BF16 (oneDNN's ISA here: \(OneDNN.effectiveISA?.name ?? "unknown"))"
            }
            return nil
        }
    }
}
