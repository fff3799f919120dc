import Foundation

/// An exclusive per-key lock (flock on `locks/<key>.lock`), so concurrent `pdpipe run`s never compute
/// the same stage twice. The holder writes its pid, host and command into the file; a waiter prints it.
/// The kernel drops a flock when its holder dies (even by SIGKILL), so a dead holder's lock is taken
/// over at once; its text is still in the file (a clean release empties it), which tells the new
/// holder that it took over from a crashed run.
final class StageLock {
    private let fd: Int32

    /// Blocks until the lock is held; calls `onWait(holderInfo)` once if another process holds it and
    /// `onTakeover(previousHolder)` when the lock was left by a holder that died without releasing it.
    /// Returns nil when `isCancelled` becomes true while waiting.
    init?(url: URL, onWait: (String) -> Void, onTakeover: (String) -> Void = { _ in }, isCancelled: () -> Bool) throws {
        // O_CLOEXEC: shell stages started while we hold the lock must not inherit (and outlive) it.
        fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError("cannot open lock file \(url.path): \(String(cString: strerror(errno)))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            // A holder writes its line just after taking the lock, so the file can still be empty
            // for a moment: wait for the line (up to a second) before naming an anonymous holder.
            let waitStart = Date()
            var announced = false
            repeat {
                if !announced {
                    if let holder = Self.holder(fd: fd) {
                        onWait(holder); announced = true
                    } else if Date().timeIntervalSince(waitStart) > 1 {
                        onWait("another process"); announced = true
                    }
                }
                if isCancelled() { close(fd); return nil }
                usleep(announced ? 50_000 : 5_000)
            } while flock(fd, LOCK_EX | LOCK_NB) != 0
        }
        if let stale = Self.holder(fd: fd) { onTakeover(stale) }
        let info = "pid \(getpid()) on \(Runner.hostName): "
            + CommandLine.arguments.joined(separator: " ") + "\n"
        ftruncate(fd, 0)
        _ = info.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// The holder line written by the process that has (or had) the lock; nil when empty.
    private static func holder(fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = pread(fd, &buffer, buffer.count, 0)
        let text = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
        return text.isEmpty ? nil : text
    }

    func release() {
        ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
    }
}
