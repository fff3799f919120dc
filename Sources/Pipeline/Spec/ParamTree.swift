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

    /// Adds every entry of a YAML map under `prefix` (declaration). Linear in the map's size: each
    /// entry is converted once and written in place (a 2 MB params file loads in well under a second).
    mutating func declare(_ yaml: YAMLValue, prefix: String = "") {
        guard let entries = yaml.entries else { return }
        for e in entries {
            let key = prefix.isEmpty ? e.key : prefix + "." + e.key
            let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            Self.assign(&root, parts[...], e.value.value)
            recordLocations(e.value, key: key, location: e.keyLocation)
        }
    }

    private mutating func recordLocations(_ yaml: YAMLValue, key: String, location: SourceLocation) {
        locations[key] = location
        for e in yaml.entries ?? [] { recordLocations(e.value, key: key + "." + e.key, location: e.keyLocation) }
    }

    /// Sets a dotted key, creating inner maps as needed.
    public mutating func set(_ key: String, _ value: ParamValue, location: SourceLocation) {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        Self.assign(&root, parts[...], value)
        // The old value's sub-keys are gone (a map replaced by a scalar must not leave `key.sub`
        // among the keys, or did-you-mean suggests a key that no longer exists).
        forgetLocations(under: key)
        locations[key] = location
        if case .map(let m) = value {
            for (sub, _) in m { locations[key + "." + sub] = location }
        }
    }

    private mutating func forgetLocations(under key: String) {
        for k in locations.keys where k.hasPrefix(key + ".") { locations[k] = nil }
    }

    /// Writes in place: each inner map is taken out of its parent before it is changed, so it is
    /// uniquely referenced and not copied (copying made loading quadratic).
    private static func assign(_ map: inout [String: ParamValue], _ parts: ArraySlice<String>, _ value: ParamValue) {
        let head = parts.first!
        if parts.count == 1 { map[head] = value; return }
        var inner = map.removeValue(forKey: head)?.mapValue ?? [:]
        assign(&inner, parts.dropFirst(), value)
        map[head] = .map(inner)
    }
}
