import Foundation

/// A column formula of a `table` stage: numbers, references, `+ - * /`, parentheses,
/// `baseline(expr)` (the same formula evaluated in the baseline cell), indexed references
/// `name[expr]` (the metric `name.<value of expr>`, e.g. `train.wall_seconds_at[sample.at_kimg]`)
/// and, in a table with `along`, `reach(y, target, x)`: where the curve of `y` over the `along`
/// axis first reaches `target`, as `x` interpolated linearly between the two points around it.
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
    case indexed(String, TableExpression)
    case reach(TableExpression, TableExpression, TableExpression)

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
            case .indexed(let r, let i): if !out.contains(r) { out.append(r) }; walk(i)
            case .negate(let a), .baseline(let a): walk(a)
            case .binary(_, let a, let b): walk(a); walk(b)
            case .reach(let a, let b, let c): walk(a); walk(b); walk(c)
            }
        }
        walk(self)
        return out
    }

    public var usesBaseline: Bool {
        switch self {
        case .number, .reference: return false
        case .baseline: return true
        case .negate(let a), .indexed(_, let a): return a.usesBaseline
        case .binary(_, let a, let b): return a.usesBaseline || b.usesBaseline
        case .reach(let a, let b, let c): return a.usesBaseline || b.usesBaseline || c.usesBaseline
        }
    }

    public var usesReach: Bool {
        switch self {
        case .number, .reference: return false
        case .reach: return true
        case .negate(let a), .indexed(_, let a), .baseline(let a): return a.usesReach
        case .binary(_, let a, let b): return a.usesReach || b.usesReach
        }
    }

    /// `reach(...)` inside `reach(...)` or `baseline(...)` has no meaning.
    public var nestsReach: Bool {
        switch self {
        case .number, .reference: return false
        case .reach(let a, let b, let c): return a.usesReach || b.usesReach || c.usesReach
        case .baseline(let a), .indexed(_, let a): return a.usesReach
        case .negate(let a): return a.nestsReach
        case .binary(_, let a, let b): return a.nestsReach || b.nestsReach
        }
    }

    /// `baseline(...)` inside `baseline(...)` has no meaning.
    public var nestsBaseline: Bool {
        switch self {
        case .number, .reference: return false
        case .baseline(let a): return a.usesBaseline
        case .negate(let a), .indexed(_, let a): return a.nestsBaseline
        case .binary(_, let a, let b): return a.nestsBaseline || b.nestsBaseline
        case .reach(let a, let b, let c): return a.nestsBaseline || b.nestsBaseline || c.nestsBaseline
        }
    }

    /// The name an indexed reference reads: `name.<value>` with the value in its shortest form.
    public static func indexedName(_ name: String, _ index: Double) -> String {
        name + "." + (index == index.rounded() && abs(index) < 1e15 ? String(Int(index)) : String(format: "%.10g", index))
    }

    /// Evaluates with `lookup` for references in the current cell and `baselineLookup` in the
    /// baseline cell; `reach` evaluates its arguments along the current curve (see `Curve`).
    public func evaluate(_ lookup: (String) throws -> Double, baselineLookup: (String) throws -> Double,
                         reach: ((TableExpression, TableExpression, TableExpression) throws -> Double)? = nil) throws -> Double {
        switch self {
        case .number(let v): return v
        case .reference(let r): return try lookup(r)
        case .indexed(let r, let i): return try lookup(Self.indexedName(r, try i.evaluate(lookup, baselineLookup: baselineLookup, reach: reach)))
        case .negate(let a): return -(try a.evaluate(lookup, baselineLookup: baselineLookup, reach: reach))
        case .baseline(let a): return try a.evaluate(baselineLookup, baselineLookup: baselineLookup)
        case .reach(let y, let target, let x):
            guard let reach else { throw StageError("reach(...) needs a table with `along`") }
            return try reach(y, target, x)
        case .binary(let op, let a, let b):
            let x = try a.evaluate(lookup, baselineLookup: baselineLookup, reach: reach)
            let y = try b.evaluate(lookup, baselineLookup: baselineLookup, reach: reach)
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
            if name == "reach", i < chars.count, chars[i] == "(" {
                i += 1
                try nest(); defer { depth -= 1 }
                var arguments: [TableExpression] = []
                while true {
                    arguments.append(try sum())
                    skipSpaces()
                    guard i < chars.count else { throw ParseError(message: "expected `)` closing reach(", offset: i) }
                    if chars[i] == ")" { i += 1; break }
                    guard chars[i] == "," else { throw ParseError(message: "expected `,` or `)` in reach(", offset: i) }
                    i += 1
                }
                guard arguments.count == 3 else {
                    throw ParseError(message: "reach(y, target, x) takes 3 arguments, not \(arguments.count)", offset: start)
                }
                return .reach(arguments[0], arguments[1], arguments[2])
            }
            if name.hasSuffix(".") { throw ParseError(message: "name `\(name)` ends with `.`", offset: start) }
            if i < chars.count, chars[i] == "[" {
                i += 1
                try nest(); defer { depth -= 1 }
                let index = try sum()
                skipSpaces()
                guard i < chars.count, chars[i] == "]" else { throw ParseError(message: "expected `]` closing \(name)[", offset: i) }
                i += 1
                return .indexed(name, index)
            }
            return .reference(name)
        }
    }
}
