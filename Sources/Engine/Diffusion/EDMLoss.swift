import Foundation

/// EDM's training loss on a round of patches (docs/edm.md section 2).
///
/// One sigma per patch with ln sigma ~ N(P_mean, P_std^2), noise n ~ N(0, sigma^2 I),
/// per-element loss lambda(sigma) (D(y + n; sigma) - y)^2 over the image channels.
/// Reduction as in the reference code: SUM over the C*s*s elements of each patch,
/// MEAN over the patches of the round.
public struct EDMLoss: Sendable, Equatable, Codable {
    public var preconditioning: EDMPreconditioning
    public var pMean: Double
    public var pStd: Double

    public init(sigmaData: Double = 0.5, pMean: Double = -1.2, pStd: Double = 1.2) {
        preconditioning = EDMPreconditioning(sigmaData: sigmaData)
        (self.pMean, self.pStd) = (pMean, pStd)
    }

    /// ln sigma ~ N(P_mean, P_std^2).
    public func drawSigma(using rng: inout RandomGenerator) -> Double {
        exp(Double(rng.normal()) * pStd + pMean)
    }

    /// Loss of one round and its gradient, accumulated into the network's parameters.
    /// Draws the sigmas first, then the noise, both from `rng`.
    /// Returns the round's loss (mean over patches of the per-patch sum).
    public func forwardBackward(_ net: some DenoiserNetwork, batch: PatchBatch, using rng: inout RandomGenerator) -> Double {
        let y = batch.images
        let n = y.shape[0]
        let sigmas = (0..<n).map { _ in drawSigma(using: &rng) }
        var noisy = y
        let plane = y.count / n
        for k in 0..<n {
            let s = Float(sigmas[k])
            for e in (k * plane)..<((k + 1) * plane) { noisy.data[e] += s * rng.normal() }
        }
        return forwardBackward(net, clean: y, noisy: noisy, sigmas: sigmas, coordinates: batch.coordinates)
    }

    /// The same for given noisy inputs and sigmas (deterministic; used by tests and the cross-check).
    public func forwardBackward(_ net: some DenoiserNetwork, clean y: Tensor, noisy: Tensor, sigmas: [Double],
                                coordinates: Tensor?) -> Double {
        let pre = preconditioning
        let n = y.shape[0], plane = y.count / n
        let input = pre.networkInput(noisy, sigmas: sigmas, coordinates: net.usesCoordinates ? coordinates : nil)
        let f = net.forward(input, noiseLabels: sigmas.map { Float(pre.coefficients(sigma: $0).cNoise) })
        precondition(f.shape == y.shape, "EDMLoss: network output \(f.shape) for patches \(y.shape)")
        var dF = Tensor(zeros: f.shape)
        var total = 0.0
        for k in 0..<n {
            let co = pre.coefficients(sigma: sigmas[k])
            let (cs, cOut) = (Float(co.cSkip), Float(co.cOut))
            let weight = Float(pre.lossWeight(sigma: sigmas[k]))
            // dL/dF = (1/N) * 2 * lambda * (D - y) * c_out
            let scale = 2 * weight * cOut / Float(n)
            var sum = 0.0
            for e in (k * plane)..<((k + 1) * plane) {
                let diff = cs * noisy.data[e] + cOut * f.data[e] - y.data[e]
                sum += Double(weight * diff * diff)
                dF.data[e] = scale * diff
            }
            total += sum
        }
        net.backward(dF)
        return total / Double(n)
    }
}
