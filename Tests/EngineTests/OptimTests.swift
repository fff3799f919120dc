import Foundation
import Testing
@testable import Engine

@Suite struct OptimTests {
    @Test func adamMatchesHandComputation() {
        let p = Parameter(Tensor(shape: [2], data: [1, -2]))
        let adam = Adam(parameters: [p])
        let grads: [[Float]] = [[0.5, -1], [0.25, 3]]
        // Hand computation in Double, PyTorch's formula.
        var w = [1.0, -2.0], m = [0.0, 0.0], v = [0.0, 0.0]
        for (t, g) in grads.enumerated() {
            p.grad = Tensor(shape: [2], data: g)
            adam.step(lr: 0.1)
            for i in 0..<2 {
                m[i] = 0.9 * m[i] + 0.1 * Double(g[i])
                v[i] = 0.999 * v[i] + 0.001 * Double(g[i]) * Double(g[i])
                let mh = m[i] / (1 - pow(0.9, Double(t + 1))), vh = v[i] / (1 - pow(0.999, Double(t + 1)))
                w[i] -= 0.1 * mh / (vh.squareRoot() + 1e-8)
            }
            for i in 0..<2 { #expect(abs(Double(p.value.data[i]) - w[i]) < 1e-6) }
        }
        #expect(adam.state.step == 2)
    }

    @Test func gradientSanitisationRule() {
        var g: [Float] = [.nan, .infinity, -.infinity, 3, -0.5]
        Adam.sanitize(&g)
        #expect(g == [0, 1e5, -1e5, 3, -0.5])
        // Inside a step: a nan gradient leaves the weight unchanged (m = v = 0 -> update 0).
        let p = Parameter(Tensor(shape: [1], data: [2]))
        p.grad = Tensor(shape: [1], data: [.nan])
        Adam(parameters: [p]).step(lr: 1)
        #expect(p.value.data == [2] && p.grad.data == [0])
    }

    @Test func emaUpdateAndCopy() {
        let p = Parameter(Tensor(shape: [2], data: [1, 2]))
        var ema = EMA(from: [p])
        p.value = Tensor(shape: [2], data: [3, 6])
        ema.update(from: [p], beta: 0.75)
        #expect(ema.values[0].data == [1.5, 3])
        let q = Parameter(Tensor(zeros: [2]))
        ema.copy(into: [q])
        #expect(q.value.data == [1.5, 3])
    }
}
