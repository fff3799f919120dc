/// Exponential moving average of parameter values: ema = beta * ema + (1 - beta) * net.
/// The half-life/ramp schedule that chooses beta lives with training; this is the update.
public struct EMA: Sendable, Codable, Equatable {
    /// One tensor per parameter, in the order of the list it was made from.
    public var values: [Tensor]

    public init(from parameters: [Parameter]) {
        values = parameters.map(\.value)
    }

    public mutating func update(from parameters: [Parameter], beta: Float) {
        precondition(parameters.count == values.count, "EMA: parameter count changed")
        for (i, p) in parameters.enumerated() {
            precondition(p.value.shape == values[i].shape, "EMA: shape of parameter \(i) changed")
            values[i].data.withUnsafeMutableBufferPointer { e in
                p.value.data.withUnsafeBufferPointer { w in
                    for j in 0..<e.count { e[j] = beta * e[j] + (1 - beta) * w[j] }
                }
            }
        }
    }

    /// Writes the averaged values into `parameters` (e.g. an EMA copy of the network for sampling).
    public func copy(into parameters: [Parameter]) {
        precondition(parameters.count == values.count, "EMA: parameter count differs")
        for (i, p) in parameters.enumerated() {
            precondition(p.value.shape == values[i].shape, "EMA: shape of parameter \(i) differs")
            p.value = values[i]
        }
    }
}

extension Tensor: Codable {
    enum CodingKeys: String, CodingKey { case shape, data }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let shape = try c.decode([Int].self, forKey: .shape)
        let data = try c.decode([Float].self, forKey: .data)
        guard shape.reduce(1, *) == data.count else {
            throw DecodingError.dataCorruptedError(forKey: .data, in: c, debugDescription: "shape \(shape) does not match \(data.count) values")
        }
        self.init(shape: shape, data: data)
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(shape, forKey: .shape)
        try c.encode(data, forKey: .data)
    }
}
