import CDNNL

/// The oneDNN library as loaded at run time (Debian `libdnnl2`, 2.6.x): whether it is there,
/// its version and the instruction set its kernels use on this CPU.
///
/// The library is opened with dlopen by the CDNNL shim, never linked: a machine without it
/// runs on OpenBLAS, and OpenMP's passive waiting (set just before loading) takes effect.
public enum OneDNN {
    /// nil when loaded, otherwise why not (missing library, built without headers, ...).
    public static let loadError: String? = {
        var buf = [CChar](repeating: 0, count: 512)
        if pd_dnnl_load(&buf, buf.count) == 0 { return nil }
        return string(buf)
    }()

    /// A NUL-terminated C message buffer as a String.
    static func string(_ buf: [CChar]) -> String {
        String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static var isAvailable: Bool { loadError == nil }

    /// "2.6.3", or nil when not loaded.
    public static var version: String? {
        guard isAvailable else { return nil }
        var (a, b, c): (Int32, Int32, Int32) = (0, 0, 0)
        pd_dnnl_version(&a, &b, &c)
        return "\(a).\(b).\(c)"
    }

    /// dnnl_cpu_isa_t values of oneDNN 2.6 (bit sets: each ISA includes the ones below it).
    public enum ISA: Int32, Sendable, CaseIterable {
        case all = 0x0, sse41 = 0x1, avx = 0x3, avx2 = 0x7, avx512Mic = 0xf, avx512Mic4ops = 0x1f
        case avx512Core = 0x27, avx512CoreVNNI = 0x67, avx512CoreBF16 = 0xe7, avx512CoreAMX = 0x3e7, avx2VNNI = 0x407

        public var name: String {
            switch self {
            case .all: "any"
            case .sse41: "sse41"
            case .avx: "avx"
            case .avx2: "avx2"
            case .avx512Mic: "avx512_mic"
            case .avx512Mic4ops: "avx512_mic_4ops"
            case .avx512Core: "avx512_core"
            case .avx512CoreVNNI: "avx512_core_vnni"
            case .avx512CoreBF16: "avx512_core_bf16"
            case .avx512CoreAMX: "avx512_core_amx"
            case .avx2VNNI: "avx2_vnni"
            }
        }

        /// Whether this ISA has every instruction of `other`.
        public func includes(_ other: ISA) -> Bool { rawValue & other.rawValue == other.rawValue }

        /// Native bf16 convolutions (avx512_core_bf16 or AMX). Below that oneDNN 2.6 emulates
        /// bf16 on AVX-512 (slower than fp32) and has no bf16 convolution on AVX2.
        public var hasNativeBF16: Bool { includes(.avx512CoreBF16) }
    }

    /// The ISA oneDNN's kernels use here (honours DNNL_MAX_CPU_ISA), nil when not loaded.
    public static var effectiveISA: ISA? {
        let v = pd_dnnl_effective_isa()
        return v < 0 ? nil : ISA(rawValue: v)
    }

    /// "oneDNN 2.6.3 avx2", or why it is not available.
    public static var description: String {
        guard let version else { return "oneDNN unavailable (\(loadError ?? "?"))" }
        return "oneDNN \(version) \(effectiveISA?.name ?? "unknown-isa")"
    }
}
