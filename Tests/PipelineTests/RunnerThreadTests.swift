import Foundation
import Testing
@testable import Pipeline

/// Runner worker threads drop what their body captured while the thread is still running, not in
/// the thread-exit destructors, where libdispatch has already freed the thread's continuation
/// cache (a deinit using dispatch there corrupted the heap; see `Runner.startWorker`).
@Suite struct RunnerThreadTests {
    final class Probe: @unchecked Sendable {
        let released: @Sendable (_ threadStillRunning: Bool) -> Void
        init(_ released: @escaping @Sendable (Bool) -> Void) { self.released = released }
        // In a thread-exit destructor, `Thread.current` is a fresh Thread that is not executing.
        deinit { released(Thread.current.isExecuting) }
    }

    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Bool?
        func set(_ v: Bool) { lock.lock(); value = v; lock.unlock() }
        var get: Bool? { lock.lock(); defer { lock.unlock() }; return value }
    }

    @Test func aWorkerReleasesItsCapturesBeforeItsThreadEnds() {
        let go = DispatchSemaphore(value: 0), released = DispatchSemaphore(value: 0)
        let stillRunning = Flag()
        do {
            let probe = Probe { running in stillRunning.set(running); released.signal() }
            // The worker holds the only reference once this scope ends; it waits until then.
            Runner.startWorker { go.wait(); _ = probe }
        }
        go.signal()
        #expect(released.wait(timeout: .now() + 30) == .success)
        #expect(stillRunning.get == true)
    }
}
