/// Laplacian pyramid of one C x H x W image as in Karras et al. 2018 (ProGAN's
/// sliced-Wasserstein metric): 5-tap binomial filter [1 4 6 4 1]/16, mirror
/// boundaries (scipy.ndimage 'mirror'), factor-2 down/up-sampling. Level 0 is the
/// finest band-pass image; the last level is the low-pass residual.
public enum LaplacianPyramid {
    static let taps: [Float] = [1, 4, 6, 4, 1]

    /// Levels for resolutions H, H/2, ... while the side is at least `minimumSize`.
    public static func levels(_ image: [Float], channels c: Int, height h: Int, width w: Int,
                              minimumSize: Int = 16) -> [(data: [Float], height: Int, width: Int)] {
        var gaussian: [(data: [Float], height: Int, width: Int)] = [(image, h, w)]
        while min(gaussian.last!.height, gaussian.last!.width) / 2 >= minimumSize {
            let g = gaussian.last!
            gaussian.append(down(g.data, channels: c, height: g.height, width: g.width))
        }
        var result = gaussian
        for level in 0..<(gaussian.count - 1) {
            let fine = gaussian[level], coarse = gaussian[level + 1]
            let up = LaplacianPyramid.up(coarse.data, channels: c, height: coarse.height, width: coarse.width,
                                         toHeight: fine.height, toWidth: fine.width)
            for i in 0..<fine.data.count { result[level].data[i] -= up[i] }
        }
        return result
    }

    /// Blur then keep every second pixel.
    static func down(_ x: [Float], channels c: Int, height h: Int, width w: Int) -> (data: [Float], height: Int, width: Int) {
        let blurred = blur(x, channels: c, height: h, width: w, gain: 1)
        let oh = (h + 1) / 2, ow = (w + 1) / 2
        var out = [Float](repeating: 0, count: c * oh * ow)
        for ch in 0..<c { for y in 0..<oh { for xx in 0..<ow {
            out[(ch * oh + y) * ow + xx] = blurred[(ch * h + 2 * y) * w + 2 * xx]
        } } }
        return (out, oh, ow)
    }

    /// Zero-insert to twice the size, blur with 4x the filter, crop to the target size.
    static func up(_ x: [Float], channels c: Int, height h: Int, width w: Int, toHeight th: Int, toWidth tw: Int) -> [Float] {
        let uh = 2 * h, uw = 2 * w
        var zeros = [Float](repeating: 0, count: c * uh * uw)
        for ch in 0..<c { for y in 0..<h { for xx in 0..<w {
            zeros[(ch * uh + 2 * y) * uw + 2 * xx] = x[(ch * h + y) * w + xx]
        } } }
        let blurred = blur(zeros, channels: c, height: uh, width: uw, gain: 4)
        var out = [Float](repeating: 0, count: c * th * tw)
        for ch in 0..<c { for y in 0..<th { for xx in 0..<tw {
            out[(ch * th + y) * tw + xx] = blurred[(ch * uh + y) * uw + xx]
        } } }
        return out
    }

    /// Separable 5x5 binomial blur, total gain `gain`, scipy 'mirror' boundary.
    static func blur(_ x: [Float], channels c: Int, height h: Int, width w: Int, gain: Float) -> [Float] {
        let scale = gain / 256
        var rows = [Float](repeating: 0, count: x.count)
        for ch in 0..<c { for y in 0..<h { for xx in 0..<w {
            var s: Float = 0
            for t in 0..<5 { s += taps[t] * x[(ch * h + y) * w + mirror(xx + t - 2, w)] }
            rows[(ch * h + y) * w + xx] = s
        } } }
        var out = [Float](repeating: 0, count: x.count)
        for ch in 0..<c { for y in 0..<h { for xx in 0..<w {
            var s: Float = 0
            for t in 0..<5 { s += taps[t] * rows[(ch * h + mirror(y + t - 2, h)) * w + xx] }
            out[(ch * h + y) * w + xx] = s * scale
        } } }
        return out
    }

    /// Reflection about the edge pixel centres: -1 -> 1, n -> n - 2.
    @inline(__always) static func mirror(_ i: Int, _ n: Int) -> Int {
        if n == 1 { return 0 }
        var i = i
        let period = 2 * (n - 1)
        i = ((i % period) + period) % period
        return i < n ? i : period - i
    }
}
