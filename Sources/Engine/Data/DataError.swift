/// A data-loading failure the user can act on: the message names the file and what is wrong with it.
/// The `dataset` stage turns it into a `StageError` (exit code 1, nothing cached).
public struct DataError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
