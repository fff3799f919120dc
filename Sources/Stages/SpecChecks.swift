import Engine
import Foundation

/// Spec-time checks that a kind's own `validate` cannot make: they need the names a shell stage turns
/// into environment variables, or the fields of the stage another one consumes. Made before any work,
/// so a mistake is reported at its line instead of after upstream stages ran.
public enum SpecChecks {
    public static func isASCIILetter(_ u: Unicode.Scalar) -> Bool { (u >= "a" && u <= "z") || (u >= "A" && u <= "Z") }
    public static func isASCIIDigit(_ u: Unicode.Scalar) -> Bool { u >= "0" && u <= "9" }

    /// ASCII letters, digits and the scalars of `extra`.
    public static func isPlainName(_ s: String, extra: String) -> Bool {
        s.unicodeScalars.allSatisfy { isASCIILetter($0) || isASCIIDigit($0) || extra.unicodeScalars.contains($0) }
    }

    /// `[A-Za-z_][A-Za-z0-9_]*`: the names `sh` can read back as `$NAME`.
    public static func isEnvironmentName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, !isASCIIDigit(first) else { return false }
        return isPlainName(s, extra: "_")
    }

    /// Names that map to one variable (`a-b` and `a_b` are both `..._A_B`): the stage would see one
    /// of them at random. Returns each clash once, with the variable.
    public static func clashes(_ names: [String], prefix: String) -> [(first: String, second: String, variable: String)] {
        var seen: [String: String] = [:]
        var out: [(String, String, String)] = []
        for n in names {
            let v = prefix + ShellStage.envName(n)
            if let other = seen[v], other != n { out.append((other, n, v)) } else { seen[v] = n }
        }
        return out
    }

    /// Problems with a shell stage's `env` keys, `params` names and `outs` (field, offending item, message).
    public static func shell(_ fields: [String: ParamValue]) -> [(field: String, item: String?, message: String)] {
        var out: [(String, String?, String)] = []
        // Outs are moved out of the working directory one after the other: one inside another
        // (or `.` with anything else) would be gone when its turn comes.
        let outs = (fields["outs"]?.listValue ?? []).compactMap(\.stringValue)
        let parts = outs.map { ShellStage.outComponents($0) }
        for (i, a) in parts.enumerated() {
            for (j, b) in parts.enumerated() where i != j && a.count <= b.count && Array(b.prefix(a.count)) == a && !(a == b && (outs[i] == outs[j] || i > j)) {
                out.append(("outs", outs[j], a.isEmpty
                    ? "out `.` is the whole working directory; it cannot be listed with other outs (`\(outs[j])`)"
                    : "out `\(outs[j])` is inside out `\(outs[i])`"))
            }
        }
        for key in (fields["env"]?.mapValue ?? [:]).keys.sorted() where !isEnvironmentName(key) {
            out.append(("env", key, "env name `\(key.debugDescription.dropFirst().dropLast())` is not a variable name (letters, digits and `_`, not starting with a digit)"))
        }
        let keys = (fields["params"]?.listValue ?? []).compactMap(\.stringValue)
        for k in keys where !isPlainName(k, extra: "_-.") {
            out.append(("params", k, "param `\(k)` cannot be exported as an environment variable (ASCII letters, digits, `_`, `-` and `.` only)"))
        }
        for c in clashes(keys, prefix: "PDPIPE_PARAM_") {
            out.append(("params", c.second, "params `\(c.first)` and `\(c.second)` would both be exported as $\(c.variable)"))
        }
        return out
    }

    /// Why a train stage with these fields cannot train on `resolution`-pixel images (the patch sizes
    /// R/4, R/2 and R must survive the U-Net's halvings), or nil.
    public static func trainResolutionProblem(_ train: [String: ParamValue], resolution: Int) -> String? {
        let mult = (train["channel_mult"]?.listValue ?? []).compactMap(\.intValue)
        guard !mult.isEmpty, resolution > 0 else { return nil }
        let divisor = UNetConfig(imageChannels: 1, channelMult: mult).sizeDivisor
        if resolution % 4 != 0 {
            return "resolution \(resolution) is not a multiple of 4 (patch sizes are R/4, R/2 and R)"
        }
        if (resolution / 4) % divisor != 0 {
            return "resolution \(resolution): the smallest patch, \(resolution / 4) pixels, is not a multiple of \(divisor) "
                + "(channel_mult has \(mult.count) levels, so the U-Net halves \(mult.count - 1) times); use a multiple of \(4 * divisor)"
        }
        return nil
    }
}
