/// Resamples square NCHW images in [-1, 1] to `side` x `side` with the data sets' Lanczos-3
/// filter (separable, antialiased when shrinking), clamped to [-1, 1] as a byte image would be,
/// so an upscaled patch stays inside the range a feature network was trained on.
func resizeSquare(_ images: Tensor, to side: Int) -> Tensor {
    precondition(images.rank == 4 && images.shape[2] == images.shape[3], "resizeSquare takes square NCHW images, got \(images.shape)")
    let (n, c, s) = (images.shape[0], images.shape[1], images.shape[2])
    if s == side { return images }
    let taps = ResampleTaps(inSize: s, outSize: side, filter: .lanczos3)
    var out = [Float](repeating: 0, count: n * c * side * side)
    var rows = [Float](repeating: 0, count: s * side)
    for plane in 0..<(n * c) {
        let src = plane * s * s, dst = plane * side * side
        // Horizontal pass: s rows of `side` values.
        for y in 0..<s {
            for x in 0..<side {
                var v: Float = 0
                for (k, w) in taps.weights[x].enumerated() { v += w * images.data[src + y * s + taps.starts[x] + k] }
                rows[y * side + x] = v
            }
        }
        // Vertical pass, then clamp.
        for y in 0..<side {
            for x in 0..<side {
                var v: Float = 0
                for (k, w) in taps.weights[y].enumerated() { v += w * rows[(taps.starts[y] + k) * side + x] }
                out[dst + y * side + x] = min(1, max(-1, v))
            }
        }
    }
    return Tensor(shape: [n, c, side, side], data: out)
}
