import Foundation

/// Time left of a running stage from its progress reports. The rate counts only the work done
/// since this process's first report: an extension or a resumed checkpoint starts part-way, and
/// counting the recorded part as if done now would promise an end in seconds.
public struct ProgressEstimate: Sendable {
    public let start: Date
    public let doneAtStart: Double

    public init(start: Date, doneAtStart: Double) {
        self.start = start
        self.doneAtStart = doneAtStart
    }

    /// Seconds left at `now`, or nil before a thousandth of the total has been done here.
    public func secondsLeft(done: Double, total: Double, now: Date = Date()) -> Double? {
        let progressed = done - doneAtStart
        guard total > 0, progressed / total > 0.001 else { return nil }
        return now.timeIntervalSince(start) * max(0, total - done) / progressed
    }
}
