import Foundation
import Stages

/// Params as nested maps addressed by dotted keys (`train.real_p`), with where each was set.
public struct ParamTree: Sendable {
    public private(set) var root: [String: ParamValue] = [:]
    /// Location of each dotted key (leaves and inner maps) where it was last set.
    public private(set) var locations: [String: SourceLocation] = [:]

    public init() {}

    /// All dotted keys, inner maps included (`train`, `train.real_p`).
    public var allKeys: [String] { locations.keys.sorted() }

    public func value(at key: String) -> ParamValue? {
        var current: ParamValue = .map(root)
        for part in key.split(separator: ".", omittingEmptySubsequences: false) {
            guard case .map(let m) = current, let next = m[String(part)] else { return nil }
            current = next
        }
        return current
    }

    public func contains(_ key: String) -> Bool { value(at: key) != nil }

    /// Adds every entry of a YAML map under `prefix` (declaration).
    mutating func declare(_ yaml: YAMLValue, prefix: String = "") {
        guard let entries = yaml.entries else { return }
        for e in entries {
            let key = prefix.isEmpty ? e.key : prefix + "." + e.key
            set(key, e.value.value, location: e.keyLocation)
            if e.value.entries != nil { declare(e.value, prefix: key) }
        }
    }

    /// Sets a dotted key, creating inner maps as needed.
    public mutating func set(_ key: String, _ value: ParamValue, location: SourceLocation) {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        root = Self.setting(parts[...], value, in: root)
        locations[key] = location
        if case .map(let m) = value {
            for sub in m.keys { forgetLocations(under: key + "." + sub) }
            for (sub, _) in m { locations[key + "." + sub] = location }
        }
    }

    private mutating func forgetLocations(under key: String) {
        for k in locations.keys where k == key || k.hasPrefix(key + ".") { locations[k] = nil }
    }

    private static func setting(_ parts: ArraySlice<String>, _ value: ParamValue, in map: [String: ParamValue]) -> [String: ParamValue] {
        var map = map
        let head = parts.first!
        if parts.count == 1 {
            map[head] = value
        } else {
            let inner = map[head]?.mapValue ?? [:]
            map[head] = .map(setting(parts.dropFirst(), value, in: inner))
        }
        return map
    }
}
