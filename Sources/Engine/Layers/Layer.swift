/// Layer conventions (the API the U-Net, EDM training, EMA and checkpoints build on).
///
/// - **Forward caches.** A layer is a class. `forward(_:)` computes the output and keeps
///   what its backward needs (usually the input, sometimes statistics) in the instance.
///   One instance = one call site per step: `forward` then `backward`, in that order; a
///   second `forward` overwrites the cache, and `backward` releases it (as in PyTorch without
///   retain_graph), so training's peak memory is the activations plus the gradients in flight. For sampling set `Dropout.isTraining = false`
///   (the only layer whose forward depends on the mode) and, forward-only, `SiLU.retainsForBackward
///   = false` (`SongUNet` sets both for its layers); the other layers cache only tensors their forward computes anyway.
/// - **Backward accumulates.** `backward(_ dy:)` returns dL/dx for the cached forward and
///   ADDS dL/dparam into each `Parameter.grad` (`+=`), so gradients from several
///   calls/micro-batches sum up. Call `zeroGrad()` before each optimiser step's first backward.
/// - **Parameters are enumerated by name.** `namedParameters()` returns
///   `[(name, Parameter)]` in a stable order with dotted names ("conv0.weight"); a composite
///   module prefixes its children's names (`prefixed("conv0", child)`). The optimiser, EMA
///   and checkpoints iterate this list; `Parameter` is a reference type, so updating
///   `parameter.value` updates the layer.
/// - **Shapes.** Float32, NCHW for images, [N, features] for vectors. Layers check shapes
///   with `precondition` (a shape mismatch is a programming error, not user input).
/// - **Compute.** Heavy kernels go through `ComputeBackend` (default `Engine.defaultBackend`).
///   Executables call `Engine.startUp(threads:)` once (threads, OpenBLAS kernel selection);
///   see Backend/Threading.swift for the threading policy. A network's first conv can set
///   `computesInputGradient = false` (its input is data) to skip that work.
/// - **Init.** `WeightInit` (EDM's xavier-uniform; `.nearZero` = init_weight 1e-5 for the last
///   conv of a block and the output conv). Parameter-free wiring helpers with their backward:
///   `concatChannels`/`splitChannels`, `addChannelwise`/`sumSpatial`, `addScaled`.
/// - **Optimiser/EMA.** `Adam(parameters:)` + `step(lr:)` (sanitises grads first);
///   `EMA(from:)` + `update(from:beta:)` + `copy(into:)`; both keep the parameter-list order.
public final class Parameter {
    public var value: Tensor
    public var grad: Tensor

    public init(_ value: Tensor) {
        self.value = value
        self.grad = Tensor(zeros: value.shape)
    }

    public var shape: [Int] { value.shape }

    public func zeroGrad() {
        grad.data.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }
}

/// Anything that owns parameters (single layers and composite blocks).
public protocol Module: AnyObject {
    /// Parameters in a stable order with dotted names unique within this module.
    func namedParameters() -> [(name: String, parameter: Parameter)]
}

extension Module {
    public var parameters: [Parameter] { namedParameters().map(\.parameter) }

    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    /// Total number of scalar parameters.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }
}

/// A child's parameters renamed "prefix.name" (for composite modules).
public func prefixed(_ prefix: String, _ child: any Module) -> [(name: String, parameter: Parameter)] {
    child.namedParameters().map { (name: prefix + "." + $0.name, parameter: $0.parameter) }
}

/// A module with one input and one output tensor.
public protocol Layer: Module {
    /// Computes the output and caches what `backward` needs.
    func forward(_ x: Tensor) -> Tensor
    /// Returns dL/dx for the last `forward`; accumulates parameter gradients.
    func backward(_ dy: Tensor) -> Tensor
}
