/// Weight initialisation as in EDM's `weight_init`: xavier-uniform with bound
/// sqrt(6 / (fan_in + fan_out)), times a scale (EDM's `init_weight`, e.g. 1e-5 for
/// the last conv of each block and the output conv). Biases start at `biasScale` times
/// the same distribution (EDM's `init_bias`, 0 by default).
public struct WeightInit: Sendable {
    public var scale: Float
    public var biasScale: Float
    public init(scale: Float = 1, biasScale: Float = 0) { (self.scale, self.biasScale) = (scale, biasScale) }

    public static let xavierUniform = WeightInit()
    /// EDM's `init_zero`: xavier-uniform scaled by 1e-5.
    public static let nearZero = WeightInit(scale: 1e-5)

    public static func xavierUniform(scale: Float) -> WeightInit { WeightInit(scale: scale) }

    /// A tensor of `shape` drawn uniformly from ±scale * sqrt(6 / (fanIn + fanOut)).
    public static func xavier(_ shape: [Int], fanIn: Int, fanOut: Int, scale: Float,
                              using rng: inout RandomGenerator) -> Tensor {
        if scale == 0 { return Tensor(zeros: shape) }
        let bound = scale * (6 / Float(fanIn + fanOut)).squareRoot()
        return Tensor(randomUniform: shape, low: -bound, high: bound, using: &rng)
    }
}
