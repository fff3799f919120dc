import Foundation

/// Reusable per-thread scratch buffers for the backend's temporaries (im2col columns,
/// GEMM outputs). Growing-only, so a training loop stops allocating after its first step
/// and the large buffers are not page-faulted in again on every layer call.
enum Scratch {
    enum Slot: Int { case col = 0, gemmOut = 1 }

    final class Buffers {
        var pointers: [UnsafeMutablePointer<Float>?] = [nil, nil]
        var capacities: [Int] = [0, 0]
        deinit { for p in pointers { p?.deallocate() } }
    }

    static let key = "pdpipe.engine.scratch"

    /// A buffer of at least `count` floats, valid until the next request for the same slot
    /// on this thread. Contents are undefined.
    static func buffer(_ slot: Slot, count: Int) -> UnsafeMutablePointer<Float> {
        let dict = Thread.current.threadDictionary
        let buffers: Buffers
        if let b = dict[key] as? Buffers { buffers = b } else { buffers = Buffers(); dict[key] = buffers }
        let i = slot.rawValue
        if buffers.capacities[i] < count {
            buffers.pointers[i]?.deallocate()
            buffers.pointers[i] = .allocate(capacity: count)
            buffers.capacities[i] = count
        }
        return buffers.pointers[i]!
    }
}
