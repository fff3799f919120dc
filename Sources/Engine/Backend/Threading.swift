import Foundation
import COpenBLAS

/// Threading policy (one rule, so the two kinds of parallelism never oversubscribe):
///
/// - The engine owns `Engine.threads` workers (default: the CPU count, overridable by the
///   pipeline's `threads` setting). OpenBLAS is given the same number of threads.
/// - BLAS calls are made only from the caller's thread, one at a time; they use all threads.
/// - Non-BLAS loops (im2col, GroupNorm, SiLU, attention softmax, ...) use `Engine.parallelFor`,
///   which splits the work into at most `Engine.threads` chunks via `concurrentPerform`.
/// - A `parallelFor` body never calls BLAS (the BLAS threads are idle while outer loops run,
///   and vice versa), so at most `threads` threads are busy at any moment.
public enum Engine {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var _threads = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Worker count shared by OpenBLAS and the engine's own parallel loops.
    public static var threads: Int {
        lock.lock(); defer { lock.unlock() }
        return _threads
    }

    /// Sets the worker count for both OpenBLAS and `parallelFor`.
    public static func setThreads(_ n: Int) {
        let n = max(1, n)
        lock.lock(); _threads = n; lock.unlock()
        openblas_set_num_threads(Int32(n))
    }

    /// The backend new layers use when none is given.
    public static let defaultBackend: any ComputeBackend = BLASBackend()

    /// Runs `body` over `0..<count` split into at most `threads` contiguous ranges.
    /// Small jobs (`count * costPerItem` below ~32k) run inline to avoid dispatch overhead.
    @inline(__always)
    public static func parallelFor(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
        let t = min(threads, count)
        if t <= 1 || count * costPerItem < 32_768 { if count > 0 { body(0..<count) }; return }
        withoutActuallyEscaping(body) { body in
            // The body only touches disjoint ranges of caller-owned buffers and finishes before
            // concurrentPerform returns, so handing it to the workers is safe.
            let box = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: t) { i in
                let lo = count * i / t, hi = count * (i + 1) / t
                if lo < hi { box.value(lo..<hi) }
            }
        }
    }
}

/// Wraps a value the compiler cannot prove Sendable where the engine guarantees exclusive use.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
