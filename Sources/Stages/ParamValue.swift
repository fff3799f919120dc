/// A resolved parameter value, as read from YAML after interpolation and overrides.
/// It is what a stage kind reads and what enters the stage key (as canonical JSON).
public enum ParamValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([ParamValue])
    case map([String: ParamValue])

    public var intValue: Int? {
        switch self {
        case .int(let v): return v
        case .double(let v) where v.rounded() == v && abs(v) < 1e15: return Int(v)
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .double(let v): return v
        default: return nil
        }
    }
    public var boolValue: Bool? { if case .bool(let v) = self { return v } else { return nil } }
    public var stringValue: String? { if case .string(let v) = self { return v } else { return nil } }
    public var listValue: [ParamValue]? { if case .list(let v) = self { return v } else { return nil } }
    public var mapValue: [String: ParamValue]? { if case .map(let v) = self { return v } else { return nil } }

    /// Short human form, used in cell ids and messages (`0.5`, `fashion-mnist`, `[1,2,2]`).
    public var shortDescription: String {
        switch self {
        case .null: return "null"
        case .bool(let v): return v ? "true" : "false"
        case .int(let v): return String(v)
        case .double(let v): return v.rounded() == v && abs(v) < 1e15 ? String(format: "%.1f", v) : "\(v)"
        case .string(let v): return v
        case .list(let vs): return "[" + vs.map(\.shortDescription).joined(separator: ",") + "]"
        case .map(let m): return "{" + m.keys.sorted().map { "\($0):\(m[$0]!.shortDescription)" }.joined(separator: ",") + "}"
        }
    }
}

import Foundation
