import Foundation

/// Adam (Kingma & Ba; PyTorch's formulation) with EDM's gradient sanitisation:
/// before each step every gradient is cleaned in place, nan -> 0, +inf -> 1e5, -inf -> -1e5
/// (docs/edm.md section 3). The moment buffers align with the parameter list
/// passed to `init`; `state` is plain data for checkpoints.
public final class Adam {
    public struct State: Codable, Sendable, Equatable {
        public var step: Int
        public var m: [[Float]]
        public var v: [[Float]]
    }

    public let parameters: [Parameter]
    public var beta1: Float, beta2: Float, eps: Float
    public var state: State

    public init(parameters: [Parameter], beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8) {
        self.parameters = parameters
        (self.beta1, self.beta2, self.eps) = (beta1, beta2, eps)
        let zeros = parameters.map { [Float](repeating: 0, count: $0.value.count) }
        state = State(step: 0, m: zeros, v: zeros)
    }

    /// Replaces nan by 0 and ±inf by ±1e5 (EDM: torch.nan_to_num(nan=0, posinf=1e5, neginf=-1e5)).
    public static func sanitize(_ g: inout [Float]) {
        g.withUnsafeMutableBufferPointer { b in
            for i in 0..<b.count where !b[i].isFinite {
                b[i] = b[i].isNaN ? 0 : (b[i] > 0 ? 1e5 : -1e5)
            }
        }
    }

    /// One update with learning rate `lr` from the parameters' current gradients.
    public func step(lr: Float) {
        state.step += 1
        let t = Float(state.step)
        let bc1 = 1 - powf(beta1, t), bc2 = 1 - powf(beta2, t)
        let stepSize = lr / bc1, sqrtBc2 = bc2.squareRoot()
        let (b1, b2, eps) = (beta1, beta2, eps)
        // Move the moments out of `state` so the nested buffer accesses below do not overlap.
        var ms = state.m, vs = state.v
        state.m = []; state.v = []
        defer { state.m = ms; state.v = vs }
        for (i, p) in parameters.enumerated() {
            Adam.sanitize(&p.grad.data)
            p.value.data.withUnsafeMutableBufferPointer { w in
                p.grad.data.withUnsafeBufferPointer { g in
                    ms[i].withUnsafeMutableBufferPointer { m in
                        vs[i].withUnsafeMutableBufferPointer { v in
                            for j in 0..<w.count {
                                let gj = g[j]
                                m[j] = b1 * m[j] + (1 - b1) * gj
                                v[j] = b2 * v[j] + (1 - b2) * gj * gj
                                w[j] -= stepSize * m[j] / (v[j].squareRoot() / sqrtBc2 + eps)
                            }
                        }
                    }
                }
            }
        }
    }
}
