import Foundation
@testable import Engine

/// Finite-difference checking for layers.
///
/// Loss L = sum(r * y + y^2 / 2) for a fixed random r, so dL/dy = r + y (the quadratic
/// term makes dL/dy depend on the output, which exercises e.g. GroupNorm's mean terms). Analytic gradients come from one
/// backward(r); numeric ones from central differences (L(x + h e_i) - L(x - h e_i)) / 2h at
/// sampled coordinates, with L accumulated in Double.
///
/// Tolerance: the forward runs in Float32, so each L carries rounding noise of roughly
/// eps32 * sqrt(count) * |y|^2 ~ 1e-6 for these sizes (L summed in Double); divided by 2h = 2e-2
/// that is ~5e-5 absolute. Truncation error is O(h^2 * f''') ~ 1e-4 relative. Measured worst
/// errors are ~1e-4 (set PDPIPE_GRADCHECK_VERBOSE=1 to print them). We accept
/// |numeric - analytic| <= 2e-4 + 1e-3 * |analytic|; a wrong gradient (missing term, wrong index,
/// a factor off by 1 %) fails.
struct GradientCheck {
    var h: Float = 1e-2
    var absTol: Double = 2e-4
    var relTol: Double = 1e-3
    var samples = 16

    struct Failure: CustomStringConvertible {
        let what: String, index: Int, numeric: Double, analytic: Double
        var description: String { "\(what)[\(index)]: numeric \(numeric) analytic \(analytic)" }
    }

    static func loss(_ y: Tensor, _ r: Tensor) -> Double {
        var s = 0.0
        for i in 0..<y.count { let v = Double(y.data[i]); s += v * Double(r.data[i]) + 0.5 * v * v }
        return s
    }

    /// Checks dL/dx and dL/dparam of `layer` at `x`; returns the failures (empty = pass).
    func check(_ layer: some Layer, input x: Tensor, seed: UInt64 = 7) -> [Failure] {
        var rng = RandomGenerator(seed: seed)
        let y0 = layer.forward(x)
        let r = Tensor(randomNormal: y0.shape, using: &rng)
        layer.zeroGrad()
        let dx = layer.backward(r + y0)
        var failures: [Failure] = []
        var worst = 0.0

        func compare(_ what: String, _ count: Int, analytic: (Int) -> Float, perturb: (Int, Float) -> Void, eval: () -> Double) {
            var indices = Array(0..<count)
            if count > samples { indices = (0..<samples).map { _ in rng.integer(upTo: count - 1) } }
            for i in indices {
                perturb(i, h); let lp = eval()
                perturb(i, -2 * h); let lm = eval()
                perturb(i, h)
                let num = (lp - lm) / (2 * Double(h))
                let ana = Double(analytic(i))
                worst = max(worst, abs(num - ana) / (absTol + relTol * abs(ana)))
                if abs(num - ana) > absTol + relTol * abs(ana) { failures.append(Failure(what: what, index: i, numeric: num, analytic: ana)) }
            }
        }

        var xv = x
        compare("input", x.count, analytic: { dx.data[$0] }, perturb: { xv.data[$0] += $1 },
                eval: { GradientCheck.loss(layer.forward(xv), r) })
        for (name, p) in layer.namedParameters() {
            let g = p.grad
            compare(name, p.value.count, analytic: { g.data[$0] }, perturb: { p.value.data[$0] += $1 },
                    eval: { GradientCheck.loss(layer.forward(x), r) })
        }
        if ProcessInfo.processInfo.environment["PDPIPE_GRADCHECK_VERBOSE"] != nil { print("gradcheck \(type(of: layer)): worst error / tolerance = \(worst)") }
        return failures
    }
}
