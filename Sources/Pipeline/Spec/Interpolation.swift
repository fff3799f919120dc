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
