import Foundation

/// A column formula of a `table` stage: numbers, references, `+ - * /`, parentheses and
/// `baseline(expr)` (the same formula evaluated in the baseline cell).
///
/// A reference is a dotted name such as `fid.FD_featurenet` or `train.real_p`; its characters are
/// letters, digits, `_`, `.` and `-` (metric names like `FD_fmnist-classifier` contain `-`), so a
/// subtraction needs spaces: `fid.FD_a - fid.FD_b`. Backquotes quote any name: `` `fid.FD a` ``.
public indirect enum TableExpression: Sendable, Equatable {
    case number(Double)
    case reference(String)
    case negate(TableExpression)
    case binary(Character, TableExpression, TableExpression)
    case baseline(TableExpression)

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var message: String
        /// 0-based character offset in the formula.
        public var offset: Int
        public var description: String { "\(message) at character \(offset + 1)" }
    }

    /// Names the formula reads, in order of first appearance.
    public var references: [String] {
        var out: [String] = []
        func walk(_ e: TableExpression) {
            switch e {
            case .number: break
            case .reference(let r): if !out.contains(r) { out.append(r) }
            case .negate(let a), .baseline(let a): walk(a)
            case .binary(_, let a, let b): walk(a); walk(b)
            }
        }
        walk(self)
        return out
    }

    public var usesBaseline: Bool {
        switch self {
        case .number, .reference: return false
        case .baseline: return true
        case .negate(let a): return a.usesBaseline
        case .binary(_, let a, let b): return a.usesBaseline || b.usesBaseline
        }
    }

    /// `baseline(...)` inside `baseline(...)` has no meaning.
    public var nestsBaseline: Bool {
        switch self {
        case .number, .reference: return false
        case .baseline(let a): return a.usesBaseline
        case .negate(let a): return a.nestsBaseline
        case .binary(_, let a, let b): return a.nestsBaseline || b.nestsBaseline
        }
    }

    /// Evaluates with `lookup` for references in the current cell and `baselineLookup` in the baseline cell.
    public func evaluate(_ lookup: (String) throws -> Double, baselineLookup: (String) throws -> Double) throws -> Double {
        switch self {
        case .number(let v): return v
        case .reference(let r): return try lookup(r)
        case .negate(let a): return -(try a.evaluate(lookup, baselineLookup: baselineLookup))
        case .baseline(let a): return try a.evaluate(baselineLookup, baselineLookup: baselineLookup)
        case .binary(let op, let a, let b):
            let x = try a.evaluate(lookup, baselineLookup: baselineLookup)
            let y = try b.evaluate(lookup, baselineLookup: baselineLookup)
            switch op {
            case "+": return x + y
            case "-": return x - y
            case "*": return x * y
            default: return x / y
            }
        }
    }

    // MARK: parsing (recursive descent: sum -> product -> unary -> primary)

    public static func parse(_ text: String) throws -> TableExpression {
        var p = Parser(chars: Array(text))
        let e = try p.sum()
        p.skipSpaces()
        if p.i < p.chars.count { throw ParseError(message: "unexpected `\(p.chars[p.i])`", offset: p.i) }
        return e
    }

    /// Bounds on a formula: parsing, evaluating and freeing recurse over its tree, so an absurd one
    /// (20,000 nested parentheses) would overflow the stack instead of being reported.
    public static let maxNesting = 64
    public static let maxTerms = 1000

    struct Parser {
        let chars: [Character]
        var i = 0
        var depth = 0
        var terms = 0

        /// Enters one level of nesting (parenthesis, sign, baseline).
        mutating func nest() throws {
            depth += 1
            if depth > TableExpression.maxNesting {
                throw ParseError(message: "nested more than \(TableExpression.maxNesting) levels deep", offset: i)
            }
        }

        /// Counts one operator or operand: a long chain is as deep a tree as nested parentheses.
        mutating func term() throws {
            terms += 1
            if terms > TableExpression.maxTerms {
                throw ParseError(message: "more than \(TableExpression.maxTerms) terms", offset: i)
            }
        }

        mutating func skipSpaces() { while i < chars.count, chars[i].isWhitespace { i += 1 } }

        mutating func sum() throws -> TableExpression {
            var left = try product()
            while true {
                skipSpaces()
                guard i < chars.count, chars[i] == "+" || chars[i] == "-" else { return left }
                let op = chars[i]; i += 1
                left = .binary(op, left, try product())
            }
        }

        mutating func product() throws -> TableExpression {
            var left = try unary()
            while true {
                skipSpaces()
                guard i < chars.count, chars[i] == "*" || chars[i] == "/" else { return left }
                let op = chars[i]; i += 1
                left = .binary(op, left, try unary())
            }
        }

        mutating func unary() throws -> TableExpression {
            skipSpaces()
            if i < chars.count, chars[i] == "-" {
                i += 1
                try nest(); defer { depth -= 1 }
                try term()
                return .negate(try unary())
            }
            try term()
            return try primary()
        }

        static func isNameChar(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" || c == "." }

        mutating func primary() throws -> TableExpression {
            skipSpaces()
            guard i < chars.count else { throw ParseError(message: "expected a number, a name or `(`", offset: i) }
            let start = i
            let c = chars[i]
            if c == "(" {
                i += 1
                try nest(); defer { depth -= 1 }
                let e = try sum()
                skipSpaces()
                guard i < chars.count, chars[i] == ")" else { throw ParseError(message: "expected `)`", offset: i) }
                i += 1
                return e
            }
            if c == "`" {
                guard let close = chars[(i + 1)...].firstIndex(of: "`") else { throw ParseError(message: "unclosed backquote", offset: i) }
                let name = String(chars[(i + 1)..<close])
                i = close + 1
                if name.isEmpty { throw ParseError(message: "empty name", offset: start) }
                return .reference(name)
            }
            if c.isNumber || (c == "." && i + 1 < chars.count && chars[i + 1].isNumber) {
                while i < chars.count, chars[i].isNumber || chars[i] == "." { i += 1 }
                if i < chars.count, chars[i] == "e" || chars[i] == "E" {
                    var j = i + 1
                    if j < chars.count, chars[j] == "+" || chars[j] == "-" { j += 1 }
                    if j < chars.count, chars[j].isNumber {
                        i = j
                        while i < chars.count, chars[i].isNumber { i += 1 }
                    }
                }
                guard let v = Double(String(chars[start..<i])) else { throw ParseError(message: "bad number", offset: start) }
                return .number(v)
            }
            guard c.isLetter || c == "_" else { throw ParseError(message: "unexpected `\(c)`", offset: i) }
            // A `-` belongs to the name when a name character follows it directly.
            while i < chars.count, Self.isNameChar(chars[i])
                || (chars[i] == "-" && i + 1 < chars.count && Self.isNameChar(chars[i + 1]) && chars[i + 1] != ".") {
                i += 1
            }
            let name = String(chars[start..<i])
            skipSpaces()
            if name == "baseline", i < chars.count, chars[i] == "(" {
                i += 1
                try nest(); defer { depth -= 1 }
                let e = try sum()
                skipSpaces()
                guard i < chars.count, chars[i] == ")" else { throw ParseError(message: "expected `)` closing baseline(", offset: i) }
                i += 1
                return .baseline(e)
            }
            if name.hasSuffix(".") { throw ParseError(message: "name `\(name)` ends with `.`", offset: start) }
            return .reference(name)
        }
    }
}
