/// 2-D convolution, stride 1, square kernel (3x3 with padding 1, or 1x1), with bias.
/// Weight [Cout, Cin, k, k], bias [Cout]; input and output NCHW, or in channel blocks
/// (`Tensor.blocked(_:)`) where the backend computes in them, with equal spatial size.
public final class Conv2d: Layer {
    public let inChannels, outChannels, kernel, padding: Int
    public let weight: Parameter
    public let bias: Parameter?
    public let backend: any ComputeBackend
    /// When false, `backward` skips dL/dx (returns zeros) — for a network's first conv, whose
    /// input is data. Parameter gradients are computed either way.
    public var computesInputGradient = true
    /// The channel block of the output (1: NCHW); nil: the input's. A network keeping blocked
    /// activations sets it on the convolutions where the layout changes (its first and last).
    public var outputBlock: Int?
    private var input: Tensor?

    public init(inChannels: Int, outChannels: Int, kernel: Int, padding: Int? = nil, bias: Bool = true,
                initialization: WeightInit = .xavierUniform, rng: inout RandomGenerator,
                backend: any ComputeBackend = Engine.defaultBackend) {
        precondition(kernel % 2 == 1, "Conv2d: odd kernel sizes only")
        (self.inChannels, self.outChannels, self.kernel) = (inChannels, outChannels, kernel)
        self.padding = padding ?? kernel / 2
        let fanIn = inChannels * kernel * kernel, fanOut = outChannels * kernel * kernel
        weight = Parameter(WeightInit.xavier([outChannels, inChannels, kernel, kernel], fanIn: fanIn, fanOut: fanOut,
                                             scale: initialization.scale, using: &rng))
        self.bias = bias ? Parameter(WeightInit.xavier([outChannels], fanIn: fanIn, fanOut: fanOut,
                                                      scale: initialization.biasScale, using: &rng)) : nil
        self.backend = backend
    }

    public func namedParameters() -> [(name: String, parameter: Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    func geometry(_ x: Tensor) -> Conv2dShape {
        let i = x.imageGeometry
        precondition(i.channels == inChannels, "Conv2d: expected \(inChannels) input channels, got \(x.shape)")
        return Conv2dShape(batch: i.batch, inChannels: inChannels, outChannels: outChannels, height: i.height, width: i.width,
                           kernel: kernel, padding: padding, inputBlock: i.block, outputBlock: outputBlock ?? i.block)
    }

    static func outputShape(_ g: Conv2dShape) -> [Int] {
        Tensor.imageShape(batch: g.batch, channels: g.outChannels, height: g.outHeight, width: g.outWidth, block: g.outputBlock)
    }

    public func forward(_ x: Tensor) -> Tensor {
        let g = geometry(x)
        input = x
        return Tensor(shape: Self.outputShape(g)) { y in
            x.data.withUnsafeBufferPointer { xp in
                weight.value.data.withUnsafeBufferPointer { wp in
                    if let bias {
                        bias.value.data.withUnsafeBufferPointer { bp in
                            backend.conv2dForward(g, x: xp.baseAddress!, weight: wp.baseAddress!, bias: bp.baseAddress!, y: y.baseAddress!)
                        }
                    } else {
                        backend.conv2dForward(g, x: xp.baseAddress!, weight: wp.baseAddress!, bias: nil, y: y.baseAddress!)
                    }
                }
            }
        }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("Conv2d.backward before forward") }
        defer { input = nil }  // backward releases the cache: activations are freed as backward walks back
        let g = geometry(x)
        precondition(dy.shape == Self.outputShape(g), "Conv2d.backward: dy shape \(dy.shape)")
        let wantDx = computesInputGradient
        return Tensor(shape: x.shape) { dx in
            if !wantDx { dx.update(repeating: 0) }
            x.data.withUnsafeBufferPointer { xp in
                weight.value.data.withUnsafeBufferPointer { wp in
                    dy.data.withUnsafeBufferPointer { dyp in
                        weight.grad.data.withUnsafeMutableBufferPointer { dwp in
                            if let bias {
                                bias.grad.data.withUnsafeMutableBufferPointer { dbp in
                                    backend.conv2dBackward(g, x: xp.baseAddress!, weight: wp.baseAddress!, dy: dyp.baseAddress!,
                                                           dx: wantDx ? dx.baseAddress! : nil, dWeight: dwp.baseAddress!, dBias: dbp.baseAddress!)
                                }
                            } else {
                                backend.conv2dBackward(g, x: xp.baseAddress!, weight: wp.baseAddress!, dy: dyp.baseAddress!,
                                                       dx: wantDx ? dx.baseAddress! : nil, dWeight: dwp.baseAddress!, dBias: nil)
                            }
                        }
                    }
                }
            }
        }
    }
}
