import Foundation

/// EDM's preconditioning (docs/edm.md section 1):
/// D(x; sigma, pos) = c_skip x + c_out F(cat(c_in x, pos), c_noise) with
/// c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2),
/// c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4.
public struct EDMPreconditioning: Sendable, Equatable, Codable {
    public var sigmaData: Double

    public init(sigmaData: Double = 0.5) { self.sigmaData = sigmaData }

    public struct Coefficients: Sendable, Equatable {
        public var cSkip, cOut, cIn, cNoise: Double
    }

    public func coefficients(sigma: Double) -> Coefficients {
        let sd2 = sigmaData * sigmaData, s2 = sigma * sigma
        return Coefficients(cSkip: sd2 / (s2 + sd2), cOut: sigma * sigmaData / (s2 + sd2).squareRoot(),
                            cIn: 1 / (s2 + sd2).squareRoot(), cNoise: log(sigma) / 4)
    }

    /// Loss weight lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 (= 1 / c_out^2).
    public func lossWeight(sigma: Double) -> Double {
        (sigma * sigma + sigmaData * sigmaData) / ((sigma * sigmaData) * (sigma * sigmaData))
    }

    /// The network input cat(c_in * x, coords) for per-image sigmas, [N, C (+2), H, W].
    public func networkInput(_ x: Tensor, sigmas: [Double], coordinates: Tensor?) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        precondition(sigmas.count == n, "networkInput: one sigma per image")
        let plane = h * w, extra = coordinates == nil ? 0 : 2
        if let coordinates { precondition(coordinates.shape == [n, 2, h, w], "networkInput: coordinates \(coordinates.shape)") }
        var data = [Float](repeating: 0, count: n * (c + extra) * plane)
        for k in 0..<n {
            let cIn = Float(coefficients(sigma: sigmas[k]).cIn)
            let src = k * c * plane, dst = k * (c + extra) * plane
            for e in 0..<(c * plane) { data[dst + e] = cIn * x.data[src + e] }
            if let coordinates {
                for e in 0..<(2 * plane) { data[dst + c * plane + e] = coordinates.data[k * 2 * plane + e] }
            }
        }
        return Tensor(shape: [n, c + extra, h, w], data: data)
    }

    /// D(x; sigma) for a batch (no gradient).
    public func denoise(_ net: some DenoiserNetwork, _ x: Tensor, sigmas: [Double], coordinates: Tensor?) -> Tensor {
        let input = networkInput(x, sigmas: sigmas, coordinates: net.usesCoordinates ? coordinates : nil)
        let f = net.forward(input, noiseLabels: sigmas.map { Float(coefficients(sigma: $0).cNoise) })
        precondition(f.shape == x.shape, "denoise: network output \(f.shape) for input \(x.shape)")
        let plane = x.count / x.shape[0]
        var d = x
        for k in 0..<x.shape[0] {
            let co = coefficients(sigma: sigmas[k])
            let (cs, cOut) = (Float(co.cSkip), Float(co.cOut))
            for e in (k * plane)..<((k + 1) * plane) { d.data[e] = cs * x.data[e] + cOut * f.data[e] }
        }
        return d
    }
}
