import Foundation

/// Inception-v3 as used by the FID standard: pytorch-fid's `fid_inception_v3`
/// (the 2015-12-05 TensorFlow graph ported to PyTorch), with its FIDInceptionA/C/E
/// blocks (average pooling without padded cells; max pooling in the last block),
/// returning the 2048-d pool3 features. Weights are read from
/// `pt_inception-2015-12-05-6726825d.pth` (a `torch.save` state dict).
public struct InceptionV3: Sendable {
    public static let weightsFileName = "pt_inception-2015-12-05-6726825d.pth"
    public static let dimension = 2048

    typealias Conv = FoldedConvolution
    let stem: [Conv]
    let mixed5: [InceptionA], mixed6a: InceptionB, mixed6: [InceptionC], mixed7a: InceptionD, mixed7: [InceptionE]

    public init(contentsOf url: URL) throws {
        try self.init(weights: TorchCheckpoint.load(url))
    }

    public init(weights w: [String: Tensor]) throws {
        stem = [try Conv(w, prefix: "Conv2d_1a_3x3", kernel: (3, 3), stride: 2),
                try Conv(w, prefix: "Conv2d_2a_3x3", kernel: (3, 3)),
                try Conv(w, prefix: "Conv2d_2b_3x3", kernel: (3, 3), padding: (1, 1)),
                try Conv(w, prefix: "Conv2d_3b_1x1", kernel: (1, 1)),
                try Conv(w, prefix: "Conv2d_4a_3x3", kernel: (3, 3))]
        mixed5 = try ["Mixed_5b", "Mixed_5c", "Mixed_5d"].map { try InceptionA(w, $0) }
        mixed6a = try InceptionB(w, "Mixed_6a")
        mixed6 = try ["Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"].map { try InceptionC(w, $0) }
        mixed7a = try InceptionD(w, "Mixed_7a")
        mixed7 = [try InceptionE(w, "Mixed_7b", maxPool: false), try InceptionE(w, "Mixed_7c", maxPool: true)]
    }

    /// pool3 features of one 3-channel image with values in [-1, 1] at any size; it
    /// is resized to 299 x 299 first (bilinear, align_corners=False) as pytorch-fid does.
    public func features(_ image: FeatureMap) -> [Float] {
        precondition(image.channels == 3, "Inception-v3 takes 3-channel images")
        var x = image.height == 299 && image.width == 299 ? image : image.resizedBilinear(height: 299, width: 299)
        x = stem[0](x); x = stem[1](x); x = stem[2](x)
        x = x.maxPool(kernel: 3, stride: 2)
        x = stem[3](x); x = stem[4](x)
        x = x.maxPool(kernel: 3, stride: 2)
        for block in mixed5 { x = block(x) }
        x = mixed6a(x)
        for block in mixed6 { x = block(x) }
        x = mixed7a(x)
        for block in mixed7 { x = block(x) }
        return x.globalAveragePool()
    }
}

struct InceptionA: Sendable {
    let b1, b5a, b5b, d1, d2, d3, pool: FoldedConvolution
    init(_ w: [String: Tensor], _ p: String) throws {
        b1 = try .init(w, prefix: p + ".branch1x1", kernel: (1, 1))
        b5a = try .init(w, prefix: p + ".branch5x5_1", kernel: (1, 1))
        b5b = try .init(w, prefix: p + ".branch5x5_2", kernel: (5, 5), padding: (2, 2))
        d1 = try .init(w, prefix: p + ".branch3x3dbl_1", kernel: (1, 1))
        d2 = try .init(w, prefix: p + ".branch3x3dbl_2", kernel: (3, 3), padding: (1, 1))
        d3 = try .init(w, prefix: p + ".branch3x3dbl_3", kernel: (3, 3), padding: (1, 1))
        pool = try .init(w, prefix: p + ".branch_pool", kernel: (1, 1))
    }
    func callAsFunction(_ x: FeatureMap) -> FeatureMap {
        .concatenate([b1(x), b5b(b5a(x)), d3(d2(d1(x))), pool(x.averagePool(kernel: 3, stride: 1, padding: 1))])
    }
}

struct InceptionB: Sendable {
    let b3, d1, d2, d3: FoldedConvolution
    init(_ w: [String: Tensor], _ p: String) throws {
        b3 = try .init(w, prefix: p + ".branch3x3", kernel: (3, 3), stride: 2)
        d1 = try .init(w, prefix: p + ".branch3x3dbl_1", kernel: (1, 1))
        d2 = try .init(w, prefix: p + ".branch3x3dbl_2", kernel: (3, 3), padding: (1, 1))
        d3 = try .init(w, prefix: p + ".branch3x3dbl_3", kernel: (3, 3), stride: 2)
    }
    func callAsFunction(_ x: FeatureMap) -> FeatureMap {
        .concatenate([b3(x), d3(d2(d1(x))), x.maxPool(kernel: 3, stride: 2)])
    }
}

struct InceptionC: Sendable {
    let b1, s1, s2, s3, d1, d2, d3, d4, d5, pool: FoldedConvolution
    init(_ w: [String: Tensor], _ p: String) throws {
        b1 = try .init(w, prefix: p + ".branch1x1", kernel: (1, 1))
        s1 = try .init(w, prefix: p + ".branch7x7_1", kernel: (1, 1))
        s2 = try .init(w, prefix: p + ".branch7x7_2", kernel: (1, 7), padding: (0, 3))
        s3 = try .init(w, prefix: p + ".branch7x7_3", kernel: (7, 1), padding: (3, 0))
        d1 = try .init(w, prefix: p + ".branch7x7dbl_1", kernel: (1, 1))
        d2 = try .init(w, prefix: p + ".branch7x7dbl_2", kernel: (7, 1), padding: (3, 0))
        d3 = try .init(w, prefix: p + ".branch7x7dbl_3", kernel: (1, 7), padding: (0, 3))
        d4 = try .init(w, prefix: p + ".branch7x7dbl_4", kernel: (7, 1), padding: (3, 0))
        d5 = try .init(w, prefix: p + ".branch7x7dbl_5", kernel: (1, 7), padding: (0, 3))
        pool = try .init(w, prefix: p + ".branch_pool", kernel: (1, 1))
    }
    func callAsFunction(_ x: FeatureMap) -> FeatureMap {
        .concatenate([b1(x), s3(s2(s1(x))), d5(d4(d3(d2(d1(x))))), pool(x.averagePool(kernel: 3, stride: 1, padding: 1))])
    }
}

struct InceptionD: Sendable {
    let a1, a2, s1, s2, s3, s4: FoldedConvolution
    init(_ w: [String: Tensor], _ p: String) throws {
        a1 = try .init(w, prefix: p + ".branch3x3_1", kernel: (1, 1))
        a2 = try .init(w, prefix: p + ".branch3x3_2", kernel: (3, 3), stride: 2)
        s1 = try .init(w, prefix: p + ".branch7x7x3_1", kernel: (1, 1))
        s2 = try .init(w, prefix: p + ".branch7x7x3_2", kernel: (1, 7), padding: (0, 3))
        s3 = try .init(w, prefix: p + ".branch7x7x3_3", kernel: (7, 1), padding: (3, 0))
        s4 = try .init(w, prefix: p + ".branch7x7x3_4", kernel: (3, 3), stride: 2)
    }
    func callAsFunction(_ x: FeatureMap) -> FeatureMap {
        .concatenate([a2(a1(x)), s4(s3(s2(s1(x)))), x.maxPool(kernel: 3, stride: 2)])
    }
}

/// FIDInceptionE_1 (average pooling without padded cells) or FIDInceptionE_2 (max pooling).
struct InceptionE: Sendable {
    let b1, t1, t2a, t2b, d1, d2, d3a, d3b, pool: FoldedConvolution
    let maxPool: Bool
    init(_ w: [String: Tensor], _ p: String, maxPool: Bool) throws {
        b1 = try .init(w, prefix: p + ".branch1x1", kernel: (1, 1))
        t1 = try .init(w, prefix: p + ".branch3x3_1", kernel: (1, 1))
        t2a = try .init(w, prefix: p + ".branch3x3_2a", kernel: (1, 3), padding: (0, 1))
        t2b = try .init(w, prefix: p + ".branch3x3_2b", kernel: (3, 1), padding: (1, 0))
        d1 = try .init(w, prefix: p + ".branch3x3dbl_1", kernel: (1, 1))
        d2 = try .init(w, prefix: p + ".branch3x3dbl_2", kernel: (3, 3), padding: (1, 1))
        d3a = try .init(w, prefix: p + ".branch3x3dbl_3a", kernel: (1, 3), padding: (0, 1))
        d3b = try .init(w, prefix: p + ".branch3x3dbl_3b", kernel: (3, 1), padding: (1, 0))
        pool = try .init(w, prefix: p + ".branch_pool", kernel: (1, 1))
        self.maxPool = maxPool
    }
    func callAsFunction(_ x: FeatureMap) -> FeatureMap {
        let t = t1(x), d = d2(d1(x))
        let pooled = maxPool ? x.maxPool(kernel: 3, stride: 1, padding: 1) : x.averagePool(kernel: 3, stride: 1, padding: 1)
        return .concatenate([b1(x), t2a(t), t2b(t), d3a(d), d3b(d), pool(pooled)])
    }
}
