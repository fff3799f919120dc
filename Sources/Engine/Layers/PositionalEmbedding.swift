import Foundation

/// EDM's PositionalEmbedding of the noise level: for c in 0..<channels/2,
/// freq_c = (1 / maxPositions)^(c / (channels/2 - 1)) (with `endpoint`), output
/// [cos(x * freq), sin(x * freq)] concatenated. No parameters and no backward
/// (its input, c_noise, is not differentiated).
public struct PositionalEmbedding: Sendable {
    public let channels: Int
    public let maxPositions: Float
    public let endpoint: Bool

    public init(channels: Int, maxPositions: Float = 10_000, endpoint: Bool = true) {
        precondition(channels % 2 == 0 && channels >= 4, "PositionalEmbedding: even channels >= 4")
        (self.channels, self.maxPositions, self.endpoint) = (channels, maxPositions, endpoint)
    }

    /// x: one value per image -> [N, channels].
    public func callAsFunction(_ x: [Float]) -> Tensor {
        let half = channels / 2
        let denom = Float(half - (endpoint ? 1 : 0))
        let freqs = (0..<half).map { powf(1 / maxPositions, Float($0) / denom) }
        var out = Tensor(zeros: [x.count, channels])
        for (n, v) in x.enumerated() {
            for c in 0..<half {
                let a = v * freqs[c]
                out.data[n * channels + c] = cosf(a)
                out.data[n * channels + half + c] = sinf(a)
            }
        }
        return out
    }
}
