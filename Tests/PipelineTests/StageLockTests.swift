import Foundation
import Testing
@testable import Pipeline

/// The per-key lock's wait message, checked against a holder we control byte by byte.
@Suite struct StageLockTests {
    /// A holder takes the flock first and writes its line a moment later. A waiter arriving in
    /// between must name the holder once its line appears, not an anonymous "another process".
    @Test func aWaiterNamesAHolderThatWritesItsLineLate() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("stagelock-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("k.lock")
        let holderFD = open(url.path, O_RDWR | O_CREAT, 0o644)
        #expect(holderFD >= 0)
        #expect(flock(holderFD, LOCK_EX | LOCK_NB) == 0)  // locked, file still empty

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
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("stagelock-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("k.lock")
        let holderFD = open(url.path, O_RDWR | O_CREAT, 0o644)
        #expect(flock(holderFD, LOCK_EX | LOCK_NB) == 0)
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
}
