import Foundation

/// Crash-test hook (in the spirit of SQLite's crash tests): with `PDPIPE_FAULT_POINT=NAME:N` in
/// the environment, the process SIGKILLs itself the N-th time it reaches the point `NAME`, so a
/// test can crash a run at an exact step of the commit protocol. Unset (always, outside tests),
/// `hit` is one comparison.
enum FaultPoint {
    /// Where the runner commits a result: outputs written, hashed, fsynced, moved, recorded.
    static let names = ["outputs-written", "hashed", "synced", "moved", "recorded"]

    private static let target: (name: String, count: Int)? = {
        guard let spec = ProcessInfo.processInfo.environment["PDPIPE_FAULT_POINT"], !spec.isEmpty else { return nil }
        let parts = spec.split(separator: ":")
        return (String(parts[0]), parts.count > 1 ? Int(parts[1]) ?? 1 : 1)
    }()
    private static let hits = Counter()

    static func hit(_ name: String) {
        guard let target, target.name == name else { return }
        if hits.increment() == target.count { kill(getpid(), SIGKILL) }
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func increment() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
    }
}
