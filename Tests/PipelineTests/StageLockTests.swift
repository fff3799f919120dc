import Foundation
import Testing
@testable import Pipeline

/// The per-key lock's wait message, checked against a holder we control byte by byte.
@Suite struct StageLockTests {
    /// A holder takes the flock first and writes its line a moment later. A waiter arriving in
    /// between must name the holder once its line appears, not an anonymous "another process".
    @Test func aWaiterNamesAHolderThatWritesItsLineLate() throws {
        let f = try Fixture()
        defer { withExtendedLifetime(f) {} }  // its deinit removes the directory
        let url = f.url("k.lock")
        let holderFD = try Self.takeLockSilently(url)

        let line = "pid 4242 on testhost: pdpipe run pipelines/x.yaml"
        let holder = Thread {
            usleep(300_000)
            _ = line.withCString { pwrite(holderFD, $0, strlen($0), 0) }
            usleep(300_000)
            ftruncate(holderFD, 0)  // a clean release empties the file
            flock(holderFD, LOCK_UN)
            close(holderFD)
        }
        holder.start()

        var messages: [String] = [], takeovers: [String] = []
        let lock = try StageLock(url: url, onWait: { messages.append($0) },
                                 onTakeover: { takeovers.append($0) }, isCancelled: { false })
        #expect(lock != nil)
        #expect(messages == [line])
        #expect(takeovers.isEmpty)
        lock?.release()
    }

    /// A holder that never writes its line is still reported, after a bounded wait.
    @Test func aSilentHolderIsReportedAsAnotherProcess() throws {
        let f = try Fixture()
        defer { withExtendedLifetime(f) {} }  // its deinit removes the directory
        let url = f.url("k.lock")
        let holderFD = try Self.takeLockSilently(url)
        let holder = Thread {
            usleep(1_600_000)
            flock(holderFD, LOCK_UN)
            close(holderFD)
        }
        holder.start()
        var messages: [String] = []
        let lock = try StageLock(url: url, onWait: { messages.append($0) }, isCancelled: { false })
        #expect(messages == ["another process"])
        lock?.release()
    }

    /// Takes the flock as a holder would, without writing a holder line (the file stays empty).
    private static func takeLockSilently(_ url: URL) throws -> Int32 {
        let fd = open(url.path, O_RDWR | O_CREAT, 0o644)
        try #require(fd >= 0)
        try #require(flock(fd, LOCK_EX | LOCK_NB) == 0)
        return fd
    }
}
