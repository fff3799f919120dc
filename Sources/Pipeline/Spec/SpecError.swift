import Foundation

/// A place in a spec file (1-based line and column), for `file:line:column: message`.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }
    public var description: String { "\(file):\(line):\(column)" }
}

/// One problem in a spec file.
public struct SpecDiagnostic: Sendable, Hashable, CustomStringConvertible {
    public var location: SourceLocation?
    public var message: String
    public init(_ location: SourceLocation?, _ message: String) {
        self.location = location
        self.message = message
    }
    public var description: String {
        if let location { return "\(location): \(message)" }
        return message
    }
}

/// All problems found while loading a spec; nothing runs when this is thrown (exit code 2).
public struct SpecError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [SpecDiagnostic]
    public init(_ diagnostics: [SpecDiagnostic]) { self.diagnostics = diagnostics }
    public init(_ location: SourceLocation?, _ message: String) { self.diagnostics = [SpecDiagnostic(location, message)] }
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// Levenshtein distance, for did-you-mean suggestions on unknown keys.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
            current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}

/// " (did you mean `x`?)" when a candidate is close enough, else "".
func didYouMean(_ word: String, among candidates: [String]) -> String {
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }) else { return "" }
    let limit = max(2, word.count / 3)
    return best.1 <= limit ? " (did you mean `\(best.0)`?)" : ""
}
