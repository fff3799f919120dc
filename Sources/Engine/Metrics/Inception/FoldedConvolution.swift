import COpenBLAS

/// Inference-time Conv2d (no bias) + BatchNorm + ReLU with the normalisation folded
/// into the weights: w' = w·γ/√(var+ε), b' = β − mean·γ/√(var+ε). Rectangular
/// kernels and paddings (Inception's 1x7 / 7x1). Computed as im2col + sgemm.
public struct FoldedConvolution: Sendable {
    public let inChannels: Int, outChannels: Int
    public let kernel: (h: Int, w: Int), stride: Int, padding: (h: Int, w: Int)
    /// outChannels x (inChannels·kh·kw).
    var weight: [Float]
    var bias: [Float]

    /// Reads `<prefix>.conv.weight` and `<prefix>.bn.{weight,bias,running_mean,running_var}`.
    public init(_ weights: [String: Tensor], prefix: String, kernel: (Int, Int), stride: Int = 1,
                padding: (Int, Int) = (0, 0), batchNormEpsilon: Float = 0.001) throws {
        func tensor(_ name: String, _ shape: [Int]?) throws -> Tensor {
            guard let t = weights[prefix + "." + name] else { throw MetricsError("weights: missing \(prefix).\(name)") }
            if let shape, t.shape != shape {
                throw MetricsError("weights: \(prefix).\(name) has shape \(t.shape), expected \(shape)")
            }
            return t
        }
        let w = try tensor("conv.weight", nil)
        guard w.rank == 4, w.shape[2] == kernel.0, w.shape[3] == kernel.1 else {
            throw MetricsError("weights: \(prefix).conv.weight has shape \(w.shape), expected a \(kernel.0)x\(kernel.1) kernel")
        }
        let (o, c) = (w.shape[0], w.shape[1])
        let gamma = try tensor("bn.weight", [o]), beta = try tensor("bn.bias", [o])
        let mean = try tensor("bn.running_mean", [o]), variance = try tensor("bn.running_var", [o])
        let k = c * kernel.0 * kernel.1
        var folded = w.data, shift = [Float](repeating: 0, count: o)
        for i in 0..<o {
            let scale = gamma.data[i] / (variance.data[i] + batchNormEpsilon).squareRoot()
            for j in 0..<k { folded[i * k + j] *= scale }
            shift[i] = beta.data[i] - mean.data[i] * scale
        }
        (inChannels, outChannels, self.kernel, self.stride, self.padding) = (c, o, (kernel.0, kernel.1), stride, (padding.0, padding.1))
        weight = folded
        bias = shift
    }

    public func callAsFunction(_ x: FeatureMap) -> FeatureMap {
        precondition(x.channels == inChannels, "expected \(inChannels) channels, got \(x.channels)")
        let (kh, kw) = kernel
        let oh = (x.height + 2 * padding.h - kh) / stride + 1
        let ow = (x.width + 2 * padding.w - kw) / stride + 1
        let k = inChannels * kh * kw, n = oh * ow
        var out = [Float](repeating: 0, count: outChannels * n)
        for i in 0..<outChannels { for j in 0..<n { out[i * n + j] = bias[i] } }
        if kh == 1 && kw == 1 && stride == 1 && padding == (0, 0) {
            sgemm(k: k, n: n, columns: x.data, into: &out)
        } else {
            var columns = [Float](repeating: 0, count: k * n)
            for c in 0..<inChannels { for ky in 0..<kh { for kx in 0..<kw {
                let row = ((c * kh + ky) * kw + kx) * n
                for oy in 0..<oh {
                    let y = oy * stride - padding.h + ky
                    guard y >= 0 && y < x.height else { continue }
                    for ox in 0..<ow {
                        let xx = ox * stride - padding.w + kx
                        if xx >= 0 && xx < x.width { columns[row + oy * ow + ox] = x.data[(c * x.height + y) * x.width + xx] }
                    }
                }
            } } }
            sgemm(k: k, n: n, columns: columns, into: &out)
        }
        for i in 0..<out.count where out[i] < 0 { out[i] = 0 }
        return FeatureMap(data: out, channels: outChannels, height: oh, width: ow)
    }

    private func sgemm(k: Int, n: Int, columns: [Float], into out: inout [Float]) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(outChannels), Int32(n), Int32(k),
                    1.0, weight, Int32(k), columns, Int32(n), 1.0, &out, Int32(n))
    }
}
