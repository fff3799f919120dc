/// silu(GroupNorm(x)): the pre-activation in front of EDM's convolutions. Where the backend fuses
/// the two (oneDNN on blocked activations) it is one pass over memory each way, the backward
/// recomputing GroupNorm's output from x; elsewhere the two layers run in turn, as before.
/// Parameters are GroupNorm's, under its names.
public final class GroupNormSiLU: Layer {
    public let norm: GroupNorm
    public let silu: SiLU
    /// Which path the last forward took (its backward must take the same).
    private var fused = false

    public init(channels: Int, backend: any ComputeBackend = Engine.defaultBackend) {
        norm = GroupNorm(channels: channels, backend: backend)
        silu = SiLU(backend: backend)
    }

    public func namedParameters() -> [(name: String, parameter: Parameter)] { norm.namedParameters() }

    public func forward(_ x: Tensor) -> Tensor {
        fused = norm.fusesSiLU(x)
        return fused ? norm.forwardThenSiLU(x) : silu.forward(norm.forward(x))
    }

    public func backward(_ dy: Tensor) -> Tensor {
        fused ? norm.backwardThroughSiLU(dy) : norm.backward(silu.backward(dy))
    }
}
