import Testing
@testable import Engine

@Suite struct DiffusionPatchTests {
    @Test func stochasticSizeFrequenciesMatchSchedule() {
        for p in [0.0, 0.25, 0.5] {
            let schedule = PatchSchedule(resolution: 32, realP: p)
            var rng = RandomGenerator(seed: 7)
            let draws = 20_000
            var counts = [Int: Int]()
            for _ in 0..<draws { counts[schedule.drawSize(progress: 0, using: &rng), default: 0] += 1 }
            // Pearson chi-square over the sizes with non-zero probability; 0.999 quantile of chi2(2) is 13.8.
            var chi2 = 0.0
            for (s, q) in zip(schedule.sizes, schedule.probabilities) {
                if q == 0 { #expect(counts[s, default: 0] == 0); continue }
                let expected = q * Double(draws)
                chi2 += (Double(counts[s, default: 0]) - expected) * (Double(counts[s, default: 0]) - expected) / expected
            }
            #expect(chi2 < 13.8, "p=\(p): chi2 \(chi2), counts \(counts)")
        }
    }

    @Test func realPOneIsFullImagesOnly() {
        let schedule = PatchSchedule(resolution: 32, realP: 1)
        var rng = RandomGenerator(seed: 1)
        for _ in 0..<1000 { #expect(schedule.drawSize(progress: 0.1, using: &rng) == 32) }
        #expect(schedule.averageMultiplier == 1)
        #expect(schedule.drawOffset(size: 32, using: &rng) == PatchOffset(row: 0, column: 0))
    }

    @Test func averageMultiplier() {
        // 0.2*4 + 0.3*2 + 0.5*1 = 1.9 (docs/patch-diffusion.md section 1).
        #expect(abs(PatchSchedule(resolution: 64, realP: 0.5).averageMultiplier - 1.9) < 1e-12)
        #expect(abs(PatchSchedule(resolution: 64, realP: 0).averageMultiplier - 2.8) < 1e-12)
        #expect(PatchSchedule(resolution: 64, realP: 0.5).sizes == [16, 32, 64])
    }

    @Test func progressiveScheduleBoundaries() {
        let schedule = PatchSchedule(resolution: 32, realP: 0.5, kind: .progressive)
        var rng = RandomGenerator(seed: 0)
        #expect(schedule.drawSize(progress: 0.0, using: &rng) == 8)
        #expect(schedule.drawSize(progress: 0.2, using: &rng) == 8)
        #expect(schedule.drawSize(progress: 0.21, using: &rng) == 16)
        #expect(schedule.drawSize(progress: 0.5, using: &rng) == 16)
        #expect(schedule.drawSize(progress: 0.51, using: &rng) == 32)
    }

    @Test func offsetsStayInRangeAndCoverIt() {
        let schedule = PatchSchedule(resolution: 32, realP: 0.5)
        var rng = RandomGenerator(seed: 3)
        for s in [8, 16] {
            var seen = Set<Int>()
            for _ in 0..<4000 {
                let o = schedule.drawOffset(size: s, using: &rng)
                #expect((0...(32 - s)).contains(o.row) && (0...(32 - s)).contains(o.column))
                seen.insert(o.row); seen.insert(o.column)
            }
            #expect(seen == Set(0...(32 - s)), "size \(s): every offset 0...\(32 - s) occurs")
        }
    }

    /// The sampler's coordinate planes (full grid at the trained resolution) are exactly those a
    /// full-image (p = 1 round) training batch carries, in the same [x, y] order.
    @Test func samplerCoordinatesEqualFullImageTrainingCoordinates() {
        let r = 16
        let images = InMemoryImages(count: 2, resolution: r, channels: 1, bytes: [UInt8](repeating: 128, count: 2 * r * r))
        let training = PatchBatch(source: images, indices: [0, 1], size: r, offsets: Array(repeating: PatchOffset(row: 0, column: 0), count: 2))
        let sampling = PatchCoordinates.fullGrid(count: 2, size: r, normalizingResolution: r)
        #expect(sampling.shape == training.coordinates.shape)
        #expect(sampling.data == training.coordinates.data)
    }

    @Test func coordinatesOfCropEqualCropOfFullGrid() {
        let r = 16
        let full = PatchCoordinates.planes(size: r, offset: PatchOffset(row: 0, column: 0), resolution: r)
        // Corners of the full grid: (-1, -1) top-left, (+1, +1) bottom-right; channel 0 is x (column).
        #expect(full[0] == -1 && full[r * r] == -1)
        #expect(full[r * r - 1] == 1 && full[2 * r * r - 1] == 1)
        #expect(abs(full[1] - (2.0 / 15 - 1)) < 1e-6 && full[r * r + 1] == -1, "x varies along the row, y does not")
        for (s, o) in [(4, PatchOffset(row: 3, column: 9)), (8, PatchOffset(row: 8, column: 0)), (16, PatchOffset(row: 0, column: 0))] {
            let crop = PatchCoordinates.planes(size: s, offset: o, resolution: r)
            for ch in 0..<2 { for y in 0..<s { for x in 0..<s {
                #expect(crop[(ch * s + y) * s + x] == full[(ch * r + o.row + y) * r + o.column + x])
            } } }
        }
    }

    @Test func patchBatchCropsPixelsAndScales() {
        // 2 images 8x8x3 with pixel value encoding (image, y, x, c).
        let (r, ch) = (8, 3)
        var bytes = [UInt8](repeating: 0, count: 2 * r * r * ch)
        for n in 0..<2 { for y in 0..<r { for x in 0..<r { for c in 0..<ch {
            bytes[((n * r + y) * r + x) * ch + c] = UInt8((n * 97 + y * 13 + x * 5 + c * 60) % 256)
        } } } }
        let source = InMemoryImages(count: 2, resolution: r, channels: ch, bytes: bytes)
        let offsets = [PatchOffset(row: 4, column: 2), PatchOffset(row: 0, column: 4)]
        let batch = PatchBatch(source: source, indices: [1, 0], size: 4, offsets: offsets)
        #expect(batch.images.shape == [2, 3, 4, 4] && batch.coordinates.shape == [2, 2, 4, 4])
        for (k, n) in [1, 0].enumerated() { for c in 0..<ch { for y in 0..<4 { for x in 0..<4 {
            let o = offsets[k]
            let expected = Float(bytes[((n * r + o.row + y) * r + o.column + x) * ch + c]) / 127.5 - 1
            #expect(batch.images.data[((k * ch + c) * 4 + y) * 4 + x] == expected)
        } } } }
        #expect(batch.coordinates.data[0] == PatchCoordinates.normalized(2, resolution: 8))
        #expect(batch.coordinates.data[16] == PatchCoordinates.normalized(4, resolution: 8))
    }
}
