import Engine
import Foundation

/// What the engine computes on, for the record kept beside each result (never hashed): results of
/// one key computed on different backends or CPUs agree only to floating-point rounding.
public enum EngineInfo {
    /// The compute backend stages use (`openblas`, `onednn`).
    public static var backend: String { Engine.defaultBackend.name }

    /// The revision of that backend's numerics (`OneDNNBackend.numericsRevision`); nil for
    /// OpenBLAS, the reference whose keys carry no backend components.
    public static var backendNumerics: Int? {
        Engine.defaultBackend is OneDNNBackend ? OneDNNBackend.numericsRevision : nil
    }

    /// Why that backend: the start-up selection's detail (library and ISA, or the fallback's reason).
    public static var backendDetail: String { BackendSelection.report.detail }

    /// The CPU model (`model name` of /proc/cpuinfo), read once.
    public static let cpuModel: String = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":") else { return "unknown" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }()
}
