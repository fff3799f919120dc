import Testing
@testable import Engine

/// A tiny conv net (Conv3x3 - GroupNorm - SiLU - Down - Up - Conv1x1, plus attention) trained
/// with Adam on a fixed regression target it can represent: the loss must fall below a quarter.
@Test func tinyNetworkLossFalls() {
    var rng = RandomGenerator(seed: 31)
    let layers: [any Layer] = [
        Conv2d(inChannels: 2, outChannels: 8, kernel: 3, rng: &rng),
        GroupNorm(channels: 8, groups: 4, minChannelsPerGroup: 1),
        SiLU(),
        Downsample2x(),
        SelfAttention(channels: 8, projInit: .xavierUniform, rng: &rng),
        Upsample2x(),
        Conv2d(inChannels: 8, outChannels: 2, kernel: 1, rng: &rng),
    ]
    let params = layers.flatMap(\.parameters)
    let adam = Adam(parameters: params)
    let x = Tensor(randomNormal: [3, 2, 6, 6], using: &rng)
    // A target the architecture can represent (block-constant through the 2x down/up path).
    let target = Upsample2x().forward(Downsample2x().forward(x)).scaled(0.5)
    var losses: [Double] = []
    for _ in 0..<40 {
        var y = x
        for l in layers { y = l.forward(y) }
        let diff = y + target.scaled(-1)
        losses.append(diff.data.reduce(0.0) { $0 + Double($1 * $1) } / Double(diff.count))
        var g = diff.scaled(2 / Float(diff.count))
        for p in params { p.zeroGrad() }
        for l in layers.reversed() { g = l.backward(g) }
        adam.step(lr: 1e-2)
    }
    #expect(losses.last! < 0.25 * losses.first!, "losses \(losses.first!) -> \(losses.last!)")
}
