/// The raw network F of EDM: F(x_in, c_noise) with x_in = cat(c_in * x, coords) (or c_in * x
/// without coordinates) and output of `imageChannels` channels. The U-Net conforms; tests use tiny nets.
public protocol DenoiserNetwork: AnyObject {
    /// C, the image channels the network outputs.
    var imageChannels: Int { get }
    /// Whether the input carries the two coordinate planes after the image channels.
    var usesCoordinates: Bool { get }
    /// Dropout on (training) or off (sampling).
    var isTraining: Bool { get set }
    /// F for a batch; caches what `backward` needs.
    func forward(_ x: Tensor, noiseLabels: [Float]) -> Tensor
    /// Accumulates parameter gradients for the last `forward` given dL/dF.
    func backward(_ dOutput: Tensor)
}
