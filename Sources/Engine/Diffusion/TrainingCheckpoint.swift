import Foundation

/// Checkpoints of a training run: one file `checkpoint.pdt` in the work directory, replaced
/// atomically, holding the network weights, EMA, Adam moments (TensorArchive tensors
/// `net.*`, `ema.*`, `adam.m.*`, `adam.v.*`) and, as metadata, the counters, the RNG and
/// dropout generator states, the log so far and the configuration it belongs to.
extension PatchDiffusionTrainer {
    public static let checkpointFileName = "checkpoint.pdt"

    struct CheckpointMetadata: Codable {
        var format = "pdpipe-train-checkpoint-v1"
        var config: TrainingConfig
        var step: Int
        var adamStep: Int
        var rng: RandomGenerator
        var dropout: [RandomGenerator]
        var ticks: [TrainingTick]
        var tick: TickAccumulator
        var wallSeconds: Double
    }

    public func writeCheckpoint(to directory: URL) throws {
        let meta = CheckpointMetadata(config: config, step: step, adamStep: adam.state.step, rng: rng, dropout: net.dropoutStates,
                                      ticks: ticks, tick: tick, wallSeconds: wallSeconds)
        try checkpointArchive(meta).write(to: directory.appendingPathComponent(Self.checkpointFileName))
    }

    /// The finished run's state in checkpoint form, for a longer run to continue from
    /// (`continueTraining(from:)`). It holds content only: speeds and seconds are zeroed, so the
    /// same training gives the same bytes; the log is as it stood before the end closed a partial tick.
    public func resumableState() throws -> TensorArchive {
        var (ticks, tick) = logBeforeFinalTick ?? (self.ticks, self.tick)
        for i in ticks.indices { (ticks[i].secondsPerKimg, ticks[i].imagesPerSecond) = (0, 0) }
        tick.seconds = 0
        return try checkpointArchive(CheckpointMetadata(config: config, step: step, adamStep: adam.state.step, rng: rng,
                                                        dropout: net.dropoutStates, ticks: ticks, tick: tick, wallSeconds: 0))
    }

    /// Continues from the state of a shorter run with otherwise the same configuration; the
    /// next `run` trains on to this trainer's total. Returns the step it continues from.
    @discardableResult
    public func continueTraining(from state: URL) throws -> Int {
        let archive = try TensorArchive.read(state)
        let meta = try decodeMetadata(archive, url: state)
        var shorter = config
        shorter.totalKimg = meta.config.totalKimg
        guard meta.config == shorter, meta.config.totalKimg <= config.totalKimg else {
            throw DiffusionError("\(state.path): the state belongs to a training that differs in more than a shorter kimg")
        }
        try restore(archive, meta, url: state)
        return meta.step
    }

    func checkpointArchive(_ meta: CheckpointMetadata) throws -> TensorArchive {
        var tensors: [(name: String, tensor: Tensor)] = []
        for (i, (name, p)) in net.namedParameters().enumerated() {
            tensors.append(("net." + name, p.value))
            tensors.append(("ema." + name, ema.values[i]))
            tensors.append(("adam.m." + name, Tensor(shape: p.shape, data: adam.state.m[i])))
            tensors.append(("adam.v." + name, Tensor(shape: p.shape, data: adam.state.v[i])))
        }
        return TensorArchive(metadata: try TensorArchive.canonicalJSON(meta), tensors: tensors)
    }

    /// Restores the checkpoint in `directory`, if any; returns the step it resumed from.
    func restoreCheckpoint(from directory: URL) throws -> Int? {
        let url = directory.appendingPathComponent(Self.checkpointFileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let archive = try TensorArchive.read(url)
        let meta = try decodeMetadata(archive, url: url)
        guard meta.config == config else {
            throw DiffusionError("\(url.path): checkpoint belongs to a different training configuration; remove it to start over")
        }
        try restore(archive, meta, url: url)
        return meta.step
    }

    func decodeMetadata(_ archive: TensorArchive, url: URL) throws -> CheckpointMetadata {
        do { return try JSONDecoder().decode(CheckpointMetadata.self, from: archive.metadata) }
        catch { throw DiffusionError("\(url.path): unreadable checkpoint metadata (\(error))") }
    }

    func restore(_ archive: TensorArchive, _ meta: CheckpointMetadata, url: URL) throws {
        let byName = Dictionary(archive.tensors.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        var m: [[Float]] = [], v: [[Float]] = [], emaValues: [Tensor] = []
        for (name, p) in net.namedParameters() {
            guard let w = byName["net." + name], let e = byName["ema." + name], let mm = byName["adam.m." + name],
                  let vv = byName["adam.v." + name], w.shape == p.shape, e.shape == p.shape, mm.count == p.value.count,
                  vv.count == p.value.count else {
                throw DiffusionError("\(url.path): checkpoint lacks or mis-shapes parameter \(name)")
            }
            p.value = w
            emaValues.append(e); m.append(mm.data); v.append(vv.data)
        }
        adam.state = Adam.State(step: meta.adamStep, m: m, v: v)
        ema.values = emaValues
        net.dropoutStates = meta.dropout
        (step, rng, ticks, tick, wallSeconds) = (meta.step, meta.rng, meta.ticks, meta.tick, meta.wallSeconds)
    }
}
