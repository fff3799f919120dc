/// Which patch size a training round uses (docs/patch-diffusion.md section 1).
///
/// Three sizes: R/4, R/2 and R. The stochastic schedule draws one size per round with
/// probabilities 0.4(1-p), 0.6(1-p), p; the progressive schedule walks through them by
/// training progress. A round of size s loads m(s) = R/s capped at 4 (4, 2, 1) times as
/// many images, so small patches see more images per step.
public struct PatchSchedule: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case stochastic, progressive
    }

    public let resolution: Int
    /// Full-image ratio `real_p`.
    public let realP: Double
    public let kind: Kind

    public init(resolution: Int, realP: Double, kind: Kind = .stochastic) {
        precondition(resolution % 4 == 0, "PatchSchedule: resolution \(resolution) is not a multiple of 4")
        precondition((0...1).contains(realP), "PatchSchedule: real_p \(realP) outside [0, 1]")
        (self.resolution, self.realP, self.kind) = (resolution, realP, kind)
    }

    /// Patch sizes, smallest first: [R/4, R/2, R].
    public var sizes: [Int] { [resolution / 4, resolution / 2, resolution] }

    /// Probability of each entry of `sizes` under the stochastic schedule.
    public var probabilities: [Double] { [0.4 * (1 - realP), 0.6 * (1 - realP), realP] }

    /// Batch multiplier of each entry of `sizes`.
    public static let multipliers = [4, 2, 1]

    public func multiplier(forSize s: Int) -> Int {
        guard let i = sizes.firstIndex(of: s) else { preconditionFailure("PatchSchedule: \(s) is not one of \(sizes)") }
        return Self.multipliers[i]
    }

    /// Expected batch multiplier m_avg = sum p_s m_s (1.9 at p = 0.5, 1 at p = 1).
    /// The progressive schedule spends the same fractions of training at each size, so it has the same m_avg.
    public var averageMultiplier: Double {
        zip(probabilities, Self.multipliers).reduce(0) { $0 + $1.0 * Double($1.1) }
    }

    /// Draws the patch size of the next round. `progress` is counted_kimg / total_kimg (progressive only).
    /// The stochastic schedule consumes exactly one uniform per round, so the RNG stream stays aligned on resume.
    public func drawSize(progress: Double, using rng: inout RandomGenerator) -> Int {
        switch kind {
        case .stochastic:
            let u = Double(rng.uniform())
            let p = probabilities
            if u < p[0] { return sizes[0] }
            if u < p[0] + p[1] { return sizes[1] }
            return sizes[2]
        case .progressive:
            if realP < 1, progress <= 0.4 * (1 - realP) { return sizes[0] }
            if realP < 1, progress <= 1 - realP { return sizes[1] }
            return sizes[2]
        }
    }

    /// One random top-left offset (row i, column j), each uniform in [0, R - s]; (0, 0) when s = R.
    public func drawOffset(size s: Int, using rng: inout RandomGenerator) -> PatchOffset {
        if s == resolution { return PatchOffset(row: 0, column: 0) }
        let i = rng.integer(upTo: resolution - s)
        let j = rng.integer(upTo: resolution - s)
        return PatchOffset(row: i, column: j)
    }
}

/// Top-left corner of a patch inside the full image.
public struct PatchOffset: Sendable, Equatable, Codable {
    public var row: Int
    public var column: Int
    public init(row: Int, column: Int) { (self.row, self.column) = (row, column) }
}
