import Foundation

/// An exclusive per-key lock (flock on `locks/<key>.lock`), so concurrent `pdpipe run`s never compute
/// the same stage twice. The holder writes its pid, host and command into the file; a waiter prints it.
final class StageLock {
    private let fd: Int32

    /// Blocks until the lock is held; calls `onWait(holderInfo)` once if another process holds it.
    /// Returns nil when `isCancelled` becomes true while waiting.
    init?(url: URL, onWait: (String) -> Void, isCancelled: () -> Bool) throws {
        fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError("cannot open lock file \(url.path)") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            onWait(Self.holder(fd: fd))
            while flock(fd, LOCK_EX | LOCK_NB) != 0 {
                if isCancelled() { close(fd); return nil }
                usleep(50_000)
            }
        }
        let info = "pid \(getpid()) on \(ProcessInfo.processInfo.hostName): "
            + CommandLine.arguments.joined(separator: " ") + "\n"
        ftruncate(fd, 0)
        _ = info.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    private static func holder(fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = pread(fd, &buffer, buffer.count, 0)
        let text = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
        return text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? "another process" : text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func release() {
        ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
    }
}
