import Foundation

/// A Swift type a stage field can hold: it converts a resolved `ParamValue` to the typed value and back.
public protocol ConfigValue: Sendable {
    /// The type named in messages ("number", "list of integer").
    static var paramType: ParamType { get }
    /// nil when the value does not have this type.
    init?(param: ParamValue)
    /// The canonical form, which enters the stage key: `1` and `1.0` in a number field give one key.
    var param: ParamValue { get }
}

extension Int: ConfigValue {
    public static var paramType: ParamType { .int }
    public init?(param: ParamValue) {
        switch param {
        case .int(let v): self = v
        // An integral number (`2.0`, or a double interpolated into the field) is that integer;
        // beyond 1e15 doubles are too sparse to say which integer was meant.
        case .double(let d) where d.rounded() == d && abs(d) < 1e15: self = Int(d)
        default: return nil
        }
    }
    public var param: ParamValue { .int(self) }
}

extension Double: ConfigValue {
    public static var paramType: ParamType { .double }
    public init?(param: ParamValue) {
        switch param {
        case .int(let v): self = Double(v)
        case .double(let v): self = v
        default: return nil
        }
    }
    public var param: ParamValue { .double(self) }
}

extension Bool: ConfigValue {
    public static var paramType: ParamType { .bool }
    public init?(param: ParamValue) { guard case .bool(let v) = param else { return nil }; self = v }
    public var param: ParamValue { .bool(self) }
}

extension String: ConfigValue {
    public static var paramType: ParamType { .string }
    public init?(param: ParamValue) { guard case .string(let v) = param else { return nil }; self = v }
    public var param: ParamValue { .string(self) }
}

/// Free-form values (a table's baseline: axis -> any matrix value).
extension ParamValue: ConfigValue {
    public static var paramType: ParamType { .any }
    public init?(param: ParamValue) { self = param }
    public var param: ParamValue { self }
}

extension Array: ConfigValue where Element: ConfigValue {
    public static var paramType: ParamType { .list(Element.paramType) }
    public init?(param: ParamValue) {
        guard case .list(let items) = param else { return nil }
        var out: [Element] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard let v = Element(param: item) else { return nil }
            out.append(v)
        }
        self = out
    }
    public var param: ParamValue { .list(map(\.param)) }
}

extension Dictionary: ConfigValue where Key == String, Value: ConfigValue {
    public static var paramType: ParamType { .map(Value.paramType) }
    public init?(param: ParamValue) {
        guard case .map(let m) = param else { return nil }
        var out: [String: Value] = [:]
        for (k, v) in m {
            guard let value = Value(param: v) else { return nil }
            out[k] = value
        }
        self = out
    }
    public var param: ParamValue { .map(mapValues(\.param)) }
}

/// A YAML map whose order matters (a table's `columns`). Resolved as a list of `[key, value]` pairs,
/// which is also its key form.
public struct OrderedPairs: ConfigValue, Equatable {
    public struct Pair: Sendable, Equatable {
        public var key: String
        public var value: String
        public init(_ key: String, _ value: String) { (self.key, self.value) = (key, value) }
    }
    public var pairs: [Pair]
    public init(_ pairs: [Pair] = []) { self.pairs = pairs }

    public static var paramType: ParamType { .pairs(.string) }
    public init?(param: ParamValue) {
        guard case .list(let items) = param else { return nil }
        var out: [Pair] = []
        for item in items {
            guard case .list(let kv) = item, kv.count == 2, case .string(let k) = kv[0], case .string(let v) = kv[1] else { return nil }
            out.append(Pair(k, v))
        }
        pairs = out
    }
    public var param: ParamValue { .list(pairs.map { .list([.string($0.key), .string($0.value)]) }) }
}

/// A closed set of names (`schedule: stochastic | progressive`): a String-backed enum.
public protocol ConfigEnum: ConfigValue, CaseIterable, RawRepresentable where RawValue == String {}

extension ConfigEnum {
    public static var paramType: ParamType { .oneOf(allCases.map(\.rawValue)) }
    public init?(param: ParamValue) {
        guard case .string(let s) = param else { return nil }
        self.init(rawValue: s)
    }
    public var param: ParamValue { .string(rawValue) }
}

/// What is wrong with one field (or, for `.relation`, between fields) of a stage's config.
public struct ConfigProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// A required field has no value.
        case missing
        /// The value has the wrong type; `message` is e.g. "must be number, got `lots`".
        case type
        /// The value is out of range; `message` is e.g. "must be between 0 and 1".
        case value
        /// A check across fields (the kind's `validate`); `field` is where to point.
        case relation
        /// No such field (a caller's typo; the spec loader reports these with a did-you-mean).
        case unknown
    }
    public var field: String
    public var reason: Reason
    public var message: String

    public init(field: String, reason: Reason, message: String) {
        (self.field, self.reason, self.message) = (field, reason, message)
    }
    /// A cross-field problem, as returned by `StageKind.validate`.
    public init(_ field: String, _ message: String) { self.init(field: field, reason: .relation, message: message) }

    public var description: String {
        switch reason {
        case .missing: return "missing required field `\(field)`"
        case .type: return "field `\(field)` \(message)"
        case .value, .relation, .unknown: return "field `\(field)`: \(message)"
        }
    }
}

/// All problems of one config, thrown by decoding.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var problems: [ConfigProblem]
    public init(_ problems: [ConfigProblem]) { self.problems = problems }
    public var description: String { problems.map(\.description).joined(separator: "; ") }
}

/// A value check with its summary in words (for help output); `test` returns the message when invalid.
public struct Check<Value: Sendable>: Sendable {
    public var summary: String
    public var test: @Sendable (Value) -> String?
    public init(_ summary: String, _ test: @escaping @Sendable (Value) -> String?) {
        (self.summary, self.test) = (summary, test)
    }
}

/// The largest seed: seeds are free in memory and time, but above 2^53 a seed read back as a
/// JSON number (reports, table formulas over fields) would no longer be exact.
public let maxSeed = 1 << 53

/// Numbers in messages: integers without a fraction, others in `%g` form.
func describeNumber(_ v: Double) -> String {
    v.rounded() == v && abs(v) < 1e15 ? String(Int(v)) : String(format: "%g", v)
}

extension Check where Value == Int {
    public static func between(_ low: Int, _ high: Int) -> Check {
        Check("\(low)...\(high)") { (low...high).contains($0) ? nil : "must be between \(low) and \(high)" }
    }
}

extension Check where Value == Double {
    /// `low <= v <= high`; NaN and infinities fail.
    public static func between(_ low: Double, _ high: Double) -> Check {
        Check("\(describeNumber(low))...\(describeNumber(high))") {
            $0 >= low && $0 <= high ? nil : "must be between \(describeNumber(low)) and \(describeNumber(high))"
        }
    }
    /// `0 < v <= high`; NaN and infinities fail.
    public static func positive(atMost high: Double) -> Check {
        Check("(0, \(describeNumber(high))]") { $0 > 0 && $0 <= high ? nil : "must be positive and at most \(describeNumber(high))" }
    }
}

extension Check where Value == [Int] {
    /// Between `count.lowerBound` and `count.upperBound` items, each in `items`.
    public static func list(count: ClosedRange<Int>, items: ClosedRange<Int>) -> Check {
        Check("\(count.lowerBound)...\(count.upperBound) items in \(items.lowerBound)...\(items.upperBound)") { list in
            if !count.contains(list.count) { return "must list \(count.lowerBound) to \(count.upperBound) values, got \(list.count)" }
            if let bad = list.first(where: { !items.contains($0) }) {
                return "values must be between \(items.lowerBound) and \(items.upperBound), got \(bad)"
            }
            return nil
        }
    }
}

/// One field of a stage config: its YAML name, the property it sets, how it is checked.
/// The default is the property's initial value in `Config()`, read through the key path.
public struct ConfigField<Config: StageConfig>: Sendable {
    public let name: String
    public let help: String
    public let type: ParamType
    public let isRequired: Bool
    /// Cannot change the result (e.g. how often training checkpoints): kept out of the stage key,
    /// as are the params that only such fields read.
    public let isOperational: Bool
    /// The field lists param keys the stage reads; the runner passes their values in `StageContext.paramValues`.
    public let listsParamKeys: Bool
    /// At its default the field is left out of the stage key: a field added to a kind after results
    /// were recorded, whose default computes what the kind computed before, keeps those keys valid.
    public let keyOmittedAtDefault: Bool
    /// The accepted values in words, for help output (nil: any value of the type).
    public let bounds: String?
    let read: @Sendable (Config) -> ParamValue
    let write: @Sendable (ParamValue, inout Config) -> ConfigProblem?

    public static func field<Value: ConfigValue>(
        _ name: String, _ keyPath: WritableKeyPath<Config, Value> & Sendable, help: String = "",
        required: Bool = false, operational: Bool = false, listsParamKeys: Bool = false, keyOmittedAtDefault: Bool = false,
        check: Check<Value>? = nil
    ) -> ConfigField {
        let test = check?.test
        return ConfigField(
            name: name, help: help, type: Value.paramType, isRequired: required, isOperational: operational,
            listsParamKeys: listsParamKeys, keyOmittedAtDefault: keyOmittedAtDefault, bounds: check?.summary,
            read: { $0[keyPath: keyPath].param },
            write: { raw, config in
                guard let value = Value(param: raw) else {
                    return ConfigProblem(field: name, reason: .type, message: "must be \(Value.paramType.description), got `\(raw.shortDescription)`")
                }
                if let message = test?(value) { return ConfigProblem(field: name, reason: .value, message: message) }
                config[keyPath: keyPath] = value
                return nil
            })
    }

    /// The erased description (for the spec loader, the expansion and help output).
    public var erased: FieldDescription {
        FieldDescription(name: name, help: help, type: type, defaultValue: isRequired ? nil : read(Config()),
                         isOperational: isOperational, listsParamKeys: listsParamKeys, keyOmittedAtDefault: keyOmittedAtDefault,
                         bounds: bounds)
    }
}

/// A field as the pipeline layer sees it, without the config's Swift type.
public struct FieldDescription: Sendable, Equatable {
    public var name: String
    public var help: String
    public var type: ParamType
    /// nil for a required field.
    public var defaultValue: ParamValue?
    public var isOperational: Bool
    public var listsParamKeys: Bool
    public var keyOmittedAtDefault: Bool
    public var bounds: String?
}

/// The typed fields of one stage kind. Property initialisers are the defaults, in this one place.
public protocol StageConfig: Sendable {
    init()
    static var fields: [ConfigField<Self>] { get }
}

extension StageConfig {
    /// Decodes resolved fields; absent ones keep their defaults. Reports every type, range,
    /// missing or unknown field at once.
    public init(decoding values: [String: ParamValue]) throws {
        var config = Self()
        var problems: [ConfigProblem] = []
        let fields = Self.fields
        for field in fields {
            guard let raw = values[field.name] else {
                if field.isRequired { problems.append(ConfigProblem(field: field.name, reason: .missing, message: "is required")) }
                continue
            }
            if let p = field.write(raw, &config) { problems.append(p) }
        }
        for name in values.keys.sorted() where !fields.contains(where: { $0.name == name }) {
            problems.append(ConfigProblem(field: name, reason: .unknown, message: "no such field"))
        }
        if !problems.isEmpty { throw ConfigErrors(problems) }
        self = config
    }

    /// Every field in canonical form, defaults included: what the stage key and reports see.
    public var resolvedFields: [String: ParamValue] {
        Dictionary(uniqueKeysWithValues: Self.fields.map { ($0.name, $0.read(self)) })
    }
}
