import Testing
@testable import Engine

@Test func randomGeneratorIsReproducibleAndRoughlyNormal() {
    var a = RandomGenerator(seed: 42), b = RandomGenerator(seed: 42)
    let xs = (0..<20_000).map { _ in a.normal() }
    #expect(xs == (0..<20_000).map { _ in b.normal() })
    let mean = xs.reduce(0, +) / Float(xs.count)
    let variance = xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(xs.count)
    #expect(abs(mean) < 0.03)
    #expect(abs(variance - 1) < 0.05)
}
