import Foundation
import Stages

/// `${dotted.key}` interpolation of params into stage fields.
/// A field that is exactly `${key}` takes the param's value with its type; inside a longer string the
/// value is formatted. `${inputs.NAME}` is left for the stage (it is a runtime path); `$${` is a literal `${`.
enum Interpolation {
    struct Failure: Error { var message: String }

    /// The dotted keys referenced by `${...}` in a string (excluding `inputs.`).
    static func references(in s: String) throws -> [String] {
        var refs: [String] = []
        _ = try substitute(s) { key in
            if !key.hasPrefix("inputs.") { refs.append(key) }
            return .string("")
        }
        return refs
    }

    /// Replaces each reference with `lookup(key)`; returns the typed value for a whole-value reference.
    static func substitute(_ s: String, lookup: (String) throws -> ParamValue) throws -> ParamValue {
        let chars = Array(s)
        var out = ""
        var i = 0
        var pieces = 0
        var whole: ParamValue?
        while i < chars.count {
            if chars[i] == "$", i + 2 < chars.count, chars[i + 1] == "$", chars[i + 2] == "{" {
                out += "${"; i += 3; pieces += 1; continue
            }
            if chars[i] == "$", i + 1 < chars.count, chars[i + 1] == "{" {
                guard let close = chars[(i + 2)...].firstIndex(of: "}") else {
                    throw Failure(message: "unterminated `${` in `\(s)` (write `$${` for a literal)")
                }
                let key = String(chars[(i + 2)..<close]).trimmingCharacters(in: .whitespaces)
                guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" }) else {
                    throw Failure(message: "bad interpolation `${\(key)}` (expected ${param.key})")
                }
                if key.hasPrefix("inputs.") {
                    out += "${" + key + "}"
                } else {
                    let v = try lookup(key)
                    if i == 0 && close == chars.count - 1 { whole = v }
                    out += v.shortDescription
                }
                pieces += 1
                i = close + 1
                continue
            }
            out.append(chars[i]); i += 1
        }
        if let whole { return whole }
        return .string(out)
    }
}

extension ParamType {
    /// Whether a value fits this type (ints are accepted where numbers are).
    func accepts(_ v: ParamValue) -> Bool {
        switch (self, v) {
        case (.any, _): return true
        case (.int, .int): return true
        case (.int, .double(let d)): return d.rounded() == d && abs(d) < 1e15
        case (.double, .int), (.double, .double): return true
        case (.bool, .bool): return true
        case (.string, .string): return true
        case (.list(let t), .list(let items)): return items.allSatisfy { t.accepts($0) }
        case (.map(let t), .map(let m)): return m.values.allSatisfy { t.accepts($0) }
        case (.oneOf(let options), .string(let s)): return options.contains(s)
        case (.pairs(let t), .list(let items)):
            return items.allSatisfy { if case .list(let kv) = $0, kv.count == 2, case .string = kv[0] { return t.accepts(kv[1]) } else { return false } }
        default: return false
        }
    }

    /// Normalises a value to the type (int-valued doubles to ints, ints to doubles for numbers),
    /// so `1` and `1.0` give the same key.
    func normalise(_ v: ParamValue) -> ParamValue {
        switch (self, v) {
        case (.int, .double(let d)): return .int(Int(d))
        case (.double, .int(let i)): return .double(Double(i))
        case (.list(let t), .list(let items)): return .list(items.map { t.normalise($0) })
        case (.map(let t), .map(let m)): return .map(m.mapValues { t.normalise($0) })
        case (.pairs(let t), .list(let items)):
            return .list(items.map { if case .list(let kv) = $0, kv.count == 2 { return .list([kv[0], t.normalise(kv[1])]) } else { return $0 } })
        default: return v
        }
    }
}
