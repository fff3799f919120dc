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
/// - The one exception is `Engine.splitWork` (used by convolution): it first drops OpenBLAS to
///   one thread, then runs one worker per thread, each calling single-threaded BLAS on its own
///   share of the batch; BLAS threads are restored afterwards. Again `threads` busy threads.
/// - Engine compute is driven from one caller thread at a time (a training or sampling loop):
///   `Engine.exclusive` serialises it within the process. OpenBLAS's thread count is
///   process-global, `splitWork` changes it for a moment, and sgemm's last bits depend on it
///   (measured: 1 vs 2 threads differ for k >= 288), so interleaved computations would make each
///   other's results irreproducible. Stages running in parallel (`-j`) take turns on the engine.
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

    private static let computeLock = NSRecursiveLock()

    /// Runs `body` as the process's only engine computation (re-entrant), with `threads`
    /// workers if given (restored afterwards).
    public static func exclusive<T>(threads n: Int? = nil, _ body: () throws -> T) rethrows -> T {
        computeLock.lock(); defer { computeLock.unlock() }
        let saved = threads
        guard let n, max(1, n) != saved else { return try body() }
        setThreads(n)
        defer { setThreads(saved) }
        return try body()
    }

    nonisolated(unsafe) private static var _defaultBackend: any ComputeBackend = BLASBackend()

    /// The backend new layers use when none is given (OpenBLAS unless replaced at start-up,
    /// e.g. by a oneDNN backend: `Engine.setDefaultBackend(...)` before building networks).
    /// Inside `Engine.withBackend(_:_:)` it is that scope's backend.
    public static var defaultBackend: any ComputeBackend {
        if let scopedBackend { return scopedBackend }
        lock.lock(); defer { lock.unlock() }
        return _defaultBackend
    }

    public static func setDefaultBackend(_ backend: any ComputeBackend) {
        lock.lock(); _defaultBackend = backend; lock.unlock()
    }

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

extension Engine {
    /// Runs `body(worker, range)` for `min(threads, count)` workers on contiguous ranges of
    /// `0..<count`, with OpenBLAS limited to one thread for the duration (see the policy above),
    /// so each worker may call BLAS on its own data. With one worker, runs inline with BLAS
    /// keeping all threads.
    public static func splitWork(_ count: Int, _ body: (_ worker: Int, _ range: Range<Int>) -> Void) {
        let t = min(threads, count)
        if t <= 1 { if count > 0 { body(0, 0..<count) }; return }
        computeLock.lock(); defer { computeLock.unlock() }
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(Int32(threads)) }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: t) { i in
                box.value(i, count * i / t ..< count * (i + 1) / t)
            }
        }
    }

}

/// Wraps a value the compiler cannot prove Sendable where the engine guarantees exclusive use.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
