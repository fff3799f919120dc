import Foundation
import Stages
import Yams

/// A YAML value with the place it came from. Built from Yams' node API so every later error
/// can name `file:line:column`.
public indirect enum YAMLValue: Sendable {
    case scalar(ParamValue, SourceLocation)
    case list([YAMLValue], SourceLocation)
    /// Ordered entries: (key, key location, value).
    case map([(key: String, keyLocation: SourceLocation, value: YAMLValue)], SourceLocation)

    public var location: SourceLocation {
        switch self {
        case .scalar(_, let l), .list(_, let l), .map(_, let l): return l
        }
    }

    /// The plain value, locations dropped.
    public var value: ParamValue {
        switch self {
        case .scalar(let v, _): return v
        case .list(let items, _): return .list(items.map(\.value))
        case .map(let entries, _):
            var m: [String: ParamValue] = [:]
            for e in entries { m[e.key] = e.value.value }
            return .map(m)
        }
    }

    public var entries: [(key: String, keyLocation: SourceLocation, value: YAMLValue)]? {
        if case .map(let e, _) = self { return e } else { return nil }
    }

    subscript(key: String) -> YAMLValue? { entries?.first { $0.key == key }?.value }

    /// Parses a YAML file; syntax errors and duplicate keys become SpecErrors.
    public static func load(file: URL, displayName: String) throws -> YAMLValue {
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw SpecError(nil, "\(displayName): cannot read file")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw invalidUTF8(data, file: displayName) }
        return try parse(text, file: displayName)
    }

    /// Names the line and column of the first byte that is not UTF-8.
    static func invalidUTF8(_ data: Data, file: String) -> SpecError {
        var decoder = UTF8()
        var bytes = data.makeIterator()
        var line = 1, column = 1
        loop: while true {
            switch decoder.decode(&bytes) {
            case .scalarValue(let u):
                if u == "\n" { line += 1; column = 1 } else { column += 1 }
            case .emptyInput: break loop
            case .error: break loop
            }
        }
        return SpecError(SourceLocation(file: file, line: line, column: column), "not valid UTF-8 text")
    }

    public static func parse(_ text: String, file: String) throws -> YAMLValue {
        let node: Node?
        // Our own parser object, kept alive while converting: Yams holds node anchors weakly and
        // releases them with the parser, and `convert` needs them to refuse aliases.
        let parser: Yams.Parser
        do {
            parser = try Yams.Parser(yaml: text)
            node = try parser.singleRoot()
        } catch let error as YamlError {
            let location = yamlErrorLocation(error, file: file, text: text)
            var problem = yamlErrorProblem(error)
            // libyaml's message for a tab in indentation does not say so.
            if let location, case .scanner = error, text.split(separator: "\n", omittingEmptySubsequences: false)
                .dropFirst(location.line - 1).first?.unicodeScalars.dropFirst(location.column - 1).first == "\t" {
                problem += "; YAML indentation must use spaces, not tabs"
            }
            throw SpecError(location, "YAML syntax error: \(problem)")
        }
        guard let node else { return .map([], SourceLocation(file: file, line: 1, column: 1)) }
        var diagnostics: [SpecDiagnostic] = []
        let value = withExtendedLifetime(parser) { convert(node, file: file, diagnostics: &diagnostics) }
        if !diagnostics.isEmpty { throw SpecError(diagnostics) }
        return value
    }

    private static func location(_ node: Node, _ file: String) -> SourceLocation {
        let mark = node.mark
        return SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    private static func convert(_ node: Node, file: String, diagnostics: inout [SpecDiagnostic]) -> YAMLValue {
        let loc = location(node, file)
        // Yams resolves `*a` to the very node anchored `&a` (shared, not copied), so an alias bomb
        // is small once composed but exponential to walk. Stopping at the anchor, which a walk in
        // document order meets before any alias of it, keeps this linear in the file's size.
        if let anchor = node.anchor {
            // Each use of an alias meets the anchored node again: report it once.
            let d = SpecDiagnostic(loc, "YAML anchors and aliases (`&\(anchor.rawValue)`, `*\(anchor.rawValue)`) are not supported; write the value out")
            if !diagnostics.contains(d) { diagnostics.append(d) }
            return .scalar(.null, loc)
        }
        switch node {
        case .scalar(let scalar):
            return .scalar(scalarValue(scalar, node: node), loc)
        case .sequence(let seq):
            return .list(seq.map { convert($0, file: file, diagnostics: &diagnostics) }, loc)
        case .mapping(let mapping):
            var entries: [(key: String, keyLocation: SourceLocation, value: YAMLValue)] = []
            var seen: [String: SourceLocation] = [:]
            for (k, v) in mapping {
                let kloc = location(k, file)
                guard let key = k.scalar?.string else {
                    diagnostics.append(SpecDiagnostic(kloc, "map keys must be plain strings"))
                    continue
                }
                if let first = seen[key] {
                    diagnostics.append(SpecDiagnostic(kloc, "duplicate key `\(key)` (first at line \(first.line))"))
                    continue
                }
                seen[key] = kloc
                entries.append((key, kloc, convert(v, file: file, diagnostics: &diagnostics)))
            }
            return .map(entries, loc)
        case .alias:
            diagnostics.append(SpecDiagnostic(loc, "YAML aliases are not supported"))
            return .scalar(.null, loc)
        }
    }

    private static func scalarValue(_ scalar: Node.Scalar, node: Node) -> ParamValue {
        if scalar.style == .singleQuoted || scalar.style == .doubleQuoted || scalar.style == .literal
            || scalar.style == .folded {
            return .string(scalar.string)
        }
        if node.null != nil { return .null }
        if let b = node.bool { return .bool(b) }
        if let i = node.int { return .int(i) }
        if let d = node.float { return .double(d) }
        return .string(scalar.string)
    }

    private static func yamlErrorLocation(_ error: YamlError, file: String, text: String) -> SourceLocation? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return SourceLocation(file: file, line: mark.line, column: mark.column)
        case .reader(_, let offset, _, _):
            // The reader reports a byte offset (e.g. of a control character): turn it into line:column.
            let prefix = text.utf8.prefix(max(0, offset ?? 0))
            let line = prefix.filter { $0 == UInt8(ascii: "\n") }.count + 1
            let lineStart = prefix.lastIndex(of: UInt8(ascii: "\n")).map { prefix.index(after: $0) } ?? prefix.startIndex
            let column = String(decoding: prefix[lineStart...], as: UTF8.self).unicodeScalars.count + 1
            return SourceLocation(file: file, line: line, column: column)
        case .duplicatedKeysInMapping(let duplicates, let context):
            // Yams marks the first occurrence; the error is the next one, the same key at the same column below.
            let first = context.mark
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            for key in duplicates {
                for (i, line) in lines.enumerated() where i + 1 > first.line {
                    let indent = line.prefix { $0 == " " }.count
                    let rest = line.dropFirst(indent)
                    if indent + 1 == first.column, rest.hasPrefix(key + ":") || rest.hasPrefix("\"\(key)\":") || rest.hasPrefix("'\(key)':") {
                        return SourceLocation(file: file, line: i + 1, column: indent + 1)
                    }
                }
            }
            return SourceLocation(file: file, line: first.line, column: first.column)
        default: return SourceLocation(file: file, line: 1, column: 1)
        }
    }

    private static func yamlErrorProblem(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _),
             .composer(let context, let problem, _, _):
            // The context names what was open and where it started (an unclosed `[` or quote).
            if let context { return "\(problem) (\(context.text) started at \(context.mark.line):\(context.mark.column))" }
            return problem
        case .reader(let problem, _, let value, _):
            return value >= 0 ? "\(problem) (character 0x\(String(value, radix: 16)))" : problem
        case .duplicatedKeysInMapping(let duplicates, let context):
            return "duplicate key " + duplicates.map { "`\($0)`" }.joined(separator: ", ")
                + " (first at line \(context.mark.line))"
        default: return "\(error)"
        }
    }
}
