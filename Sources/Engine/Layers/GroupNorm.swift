/// Group normalisation over (channels in group, H, W) per image, with per-channel
/// affine gamma (init 1) and beta (init 0). EDM: 32 groups, at least 4 channels per group, eps 1e-6.
/// Accepts NCHW, channel blocks (`Tensor.blocked(_:)`) or [N, C] (spatial size 1).
public final class GroupNorm: Layer {
    public let channels, groups: Int
    public let eps: Float
    public let gamma: Parameter
    public let beta: Parameter
    public let backend: any ComputeBackend
    private var input: Tensor?
    private var mean: [Float] = [], rstd: [Float] = []

    /// `groups` as EDM computes it: min(numGroups, channels / minChannelsPerGroup).
    public init(channels: Int, groups: Int = 32, minChannelsPerGroup: Int = 4, eps: Float = 1e-6,
                backend: any ComputeBackend = Engine.defaultBackend) {
        let g = max(1, min(groups, channels / minChannelsPerGroup))
        precondition(channels % g == 0, "GroupNorm: \(channels) channels not divisible into \(g) groups")
        (self.channels, self.groups, self.eps) = (channels, g, eps)
        gamma = Parameter(Tensor(repeating: 1, shape: [channels]))
        beta = Parameter(Tensor(zeros: [channels]))
        self.backend = backend
    }

    public func namedParameters() -> [(name: String, parameter: Parameter)] { [("weight", gamma), ("bias", beta)] }

    func geometry(_ s: [Int]) -> GroupNormShape {
        if s.count == 5 {
            precondition(s[1] * s[4] == channels, "GroupNorm: expected \(channels) channels, got \(s)")
            return GroupNormShape(batch: s[0], channels: channels, spatial: s[2] * s[3], groups: groups, eps: eps, block: s[4])
        }
        precondition(s.count >= 2 && s[1] == channels, "GroupNorm: expected [N, \(channels), ...], got \(s)")
        return GroupNormShape(batch: s[0], channels: channels, spatial: s.dropFirst(2).reduce(1, *), groups: groups, eps: eps)
    }

    public func forward(_ x: Tensor) -> Tensor { normalize(x, thenSiLU: false) }

    /// Whether the backend computes silu(self(x)) in one pass for this input (`GroupNormSiLU`).
    func fusesSiLU(_ x: Tensor) -> Bool { backend.fusesGroupNormSiLU(geometry(x.shape)) }

    /// silu(GroupNorm(x)) in one pass; the backward is `backwardThroughSiLU`.
    func forwardThenSiLU(_ x: Tensor) -> Tensor { normalize(x, thenSiLU: true) }

    private func normalize(_ x: Tensor, thenSiLU: Bool) -> Tensor {
        let g = geometry(x.shape)
        input = x
        mean = [Float](repeating: 0, count: g.batch * groups)
        rstd = mean
        return Tensor(shape: x.shape) { y in
            x.data.withUnsafeBufferPointer { xp in gamma.value.data.withUnsafeBufferPointer { gp in
                beta.value.data.withUnsafeBufferPointer { bp in
                    mean.withUnsafeMutableBufferPointer { mp in rstd.withUnsafeMutableBufferPointer { rp in
                        if thenSiLU {
                            backend.groupNormSiLUForward(g, x: xp.baseAddress!, gamma: gp.baseAddress!, beta: bp.baseAddress!,
                                                         y: y.baseAddress!, mean: mp.baseAddress!, rstd: rp.baseAddress!)
                        } else {
                            backend.groupNormForward(g, x: xp.baseAddress!, gamma: gp.baseAddress!, beta: bp.baseAddress!,
                                                     y: y.baseAddress!, mean: mp.baseAddress!, rstd: rp.baseAddress!)
                        }
                    } }
                }
            } }
        }
    }

    public func backward(_ dy: Tensor) -> Tensor { differentiate(dy, throughSiLU: false) }

    /// The backward of `forwardThenSiLU`.
    func backwardThroughSiLU(_ dy: Tensor) -> Tensor { differentiate(dy, throughSiLU: true) }

    private func differentiate(_ dy: Tensor, throughSiLU: Bool) -> Tensor {
        guard let x = input else { preconditionFailure("GroupNorm.backward before forward") }
        defer { input = nil; mean = []; rstd = [] }
        precondition(dy.shape == x.shape, "GroupNorm.backward: dy shape \(dy.shape)")
        let g = geometry(x.shape)
        return Tensor(shape: x.shape) { dx in
            x.data.withUnsafeBufferPointer { xp in gamma.value.data.withUnsafeBufferPointer { gp in
                beta.value.data.withUnsafeBufferPointer { bp in mean.withUnsafeBufferPointer { mp in rstd.withUnsafeBufferPointer { rp in
                    dy.data.withUnsafeBufferPointer { dyp in
                        gamma.grad.data.withUnsafeMutableBufferPointer { dgp in beta.grad.data.withUnsafeMutableBufferPointer { dbp in
                            if throughSiLU {
                                backend.groupNormSiLUBackward(g, x: xp.baseAddress!, gamma: gp.baseAddress!, beta: bp.baseAddress!,
                                                              mean: mp.baseAddress!, rstd: rp.baseAddress!, dy: dyp.baseAddress!,
                                                              dx: dx.baseAddress!, dGamma: dgp.baseAddress!, dBeta: dbp.baseAddress!)
                            } else {
                                backend.groupNormBackward(g, x: xp.baseAddress!, gamma: gp.baseAddress!, mean: mp.baseAddress!,
                                                          rstd: rp.baseAddress!, dy: dyp.baseAddress!, dx: dx.baseAddress!,
                                                          dGamma: dgp.baseAddress!, dBeta: dbp.baseAddress!)
                            }
                        } }
                    }
                } } }
            } }
        }
    }
}
