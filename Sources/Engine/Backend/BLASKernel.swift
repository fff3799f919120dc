import CEngineSupport
import COpenBLAS
import Foundation

/// OpenBLAS kernel selection.
///
/// Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not recognise recent CPUs and may run a slow
/// kernel (e.g. "Prescott" on current Xeons). At start-up `BLASKernel.configure()` reads the
/// CPU's features with cpuid, picks SkylakeX (AVX-512 F/BW/VL with OS ZMM support) or Haswell
/// (AVX2 + FMA), and switches OpenBLAS to it in-process: OpenBLAS reads OPENBLAS_CORETYPE in
/// `gotoblas_dynamic_init()`, so we set the variable, call `gotoblas_dynamic_quit()` +
/// `gotoblas_dynamic_init()`, and unset it again at once (child processes such as shell stages
/// never see it). A small sgemm self-check against a naive Double product then verifies the
/// kernel; on failure the library's own choice is restored.
///
/// `PDPIPE_BLAS_KERNEL` controls it: unset or `auto` = detect; `default`/`off` = leave OpenBLAS
/// alone; a core name (`SkylakeX`, `Haswell`, ...) = use that one (still self-checked).
/// In `auto` mode a user-set OPENBLAS_CORETYPE is kept when it is at least as capable as the
/// detected kernel and upgraded otherwise; `default` keeps it untouched. The user's variable
/// stays in the environment either way.
public enum BLASKernel {
    public enum Status: Sendable, Equatable {
        /// A kernel was selected and passed the self-check.
        case selected
        /// The selected kernel failed the self-check; the library default was restored.
        case fallback(failed: String, error: Double)
        /// Left as OpenBLAS chose (disabled, user override, no better kernel, or already best).
        case unchanged(reason: String)
    }

    public struct Report: Sendable, Equatable, CustomStringConvertible {
        public var initialCore: String
        public var core: String
        public var threads: Int
        public var status: Status
        /// Scaled error of the self-check on the kernel in use (nil if not run).
        public var selfCheckError: Double?

        public var description: String {
            let how: String
            switch status {
            case .selected: how = "selected (library default \(initialCore))"
            case .fallback(let failed, let e): how = "fallback: \(failed) failed self-check (scaled error \(e))"
            case .unchanged(let reason): how = "library default (\(reason))"
            }
            return "OpenBLAS \(core), \(threads) threads, \(how)"
        }
    }

    /// The core OpenBLAS is using now.
    public static var currentCore: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p).trimmingCharacters(in: .whitespaces)
    }

    /// The kernel this CPU should use, or nil if none of the known-good ones fits.
    public static func recommendedCore(for f: pd_cpu_features) -> String? {
        if f.avx512f != 0 && f.avx512bw != 0 && f.avx512vl != 0 && f.os_avx512 != 0 { return "SkylakeX" }
        if f.avx2 != 0 && f.fma != 0 && f.os_avx != 0 { return "Haswell" }
        return nil
    }

    /// Whether the library's own choice `current` is at least as good as `wanted` (e.g. it picked
    /// Cooperlake, whose sgemm kernels are SkylakeX's, on a CPU with AVX-512 BF16).
    static func covers(_ current: String, _ wanted: String) -> Bool {
        let families: [String: Set<String>] = [
            "skylakex": ["skylakex", "cooperlake", "sapphirerapids"],
            "haswell": ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"],
        ]
        return families[wanted.lowercased()]?.contains(current.lowercased()) ?? false
    }

    /// The instruction set a named kernel needs that the CPU lacks (so a forced kernel cannot
    /// crash with an illegal instruction), or nil.
    static func missingFeature(for core: String, _ f: pd_cpu_features) -> String? {
        let avx512 = ["skylakex", "cooperlake", "sapphirerapids"], avx2 = ["haswell", "zen"]
        if avx512.contains(core.lowercased()) && !(f.avx512f != 0 && f.avx512bw != 0 && f.avx512vl != 0 && f.os_avx512 != 0) { return "AVX-512" }
        if avx2.contains(core.lowercased()) && !(f.avx2 != 0 && f.fma != 0 && f.os_avx != 0) { return "AVX2/FMA" }
        return nil
    }

    /// Largest error of `sgemm` against a Double reference over a few odd shapes (both
    /// transposes, small and threaded sizes), scaled by sum_k |a_ik| |b_kj|.
    public static func selfCheckError(
        sgemm: (_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ a: [Float], _ b: [Float]) -> [Float]
    ) -> Double {
        var rng = RandomGenerator(seed: 0x5EED)
        var worst = 0.0
        for (m, n, k, ta, tb) in [(67, 45, 53, false, false), (33, 129, 71, true, false), (256, 200, 96, false, true), (5, 3, 300, true, true)] {
            let a = (0..<m * k).map { _ in rng.uniform(-1, 1) }, b = (0..<k * n).map { _ in rng.uniform(-1, 1) }
            let c = sgemm(ta, tb, m, n, k, a, b)
            for i in 0..<m { for j in 0..<n {
                var s = 0.0, mag = 0.0
                for l in 0..<k {
                    let x = Double(ta ? a[l * m + i] : a[i * k + l]), y = Double(tb ? b[j * k + l] : b[l * n + j])
                    s += x * y; mag += abs(x * y)
                }
                let e = abs(Double(c[i * n + j]) - s) / max(mag, 1e-30)
                worst = max(worst, e.isNaN ? .infinity : e)
            } }
        }
        return worst
    }

    /// The self-check on the live OpenBLAS.
    public static func selfCheckError() -> Double {
        selfCheckError { ta, tb, m, n, k, a, b in
            var c = [Float](repeating: .nan, count: m * n)
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), 1, a, Int32(ta ? m : k), b, Int32(tb ? k : n), 0, &c, Int32(n))
            return c
        }
    }

    /// Self-check threshold on the scaled error (Float32 accumulation gives ~1e-7).
    public static let tolerance = 1e-4

    /// Switches OpenBLAS to `core`, or back to the library's own choice for nil (which honours a
    /// user-set OPENBLAS_CORETYPE). The process environment is left exactly as it was: the
    /// variable is changed only for the duration of the re-initialisation. Used by `configure`
    /// and by the benchmark's kernel comparison; call only while no other thread uses BLAS.
    public static func switchCore(to core: String?) {
        let saved = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
        if let core { setenv("OPENBLAS_CORETYPE", core, 1) }
        gotoblas_dynamic_quit()
        gotoblas_dynamic_init()
        if let saved { setenv("OPENBLAS_CORETYPE", saved, 1) } else { unsetenv("OPENBLAS_CORETYPE") }
    }

    /// OpenBLAS workers spin (sched_yield) for 2^28 cycles (~0.1 s) after each call before
    /// sleeping; on a small machine that steals the cores from the engine's own parallel loops
    /// between BLAS calls (measured: ~20 % of a training step in sched_yield). Setting
    /// OPENBLAS_THREAD_TIMEOUT to its minimum (2^4 cycles) makes them sleep at once; the cost is
    /// one condition-variable wake-up per BLAS call. Applied by re-reading the environment and
    /// restarting the thread server; the variable is removed again at once. A user-set
    /// OPENBLAS_THREAD_TIMEOUT is respected.
    public static func shortenThreadTimeout() {
        lock.lock(); defer { lock.unlock() }
        guard ProcessInfo.processInfo.environment["OPENBLAS_THREAD_TIMEOUT"] == nil else { return }
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1)
        openblas_read_env()
        unsetenv("OPENBLAS_THREAD_TIMEOUT")
        _ = blas_thread_shutdown_()
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var configured: Report?

    /// Selects and verifies the kernel once per process (later calls return the first report).
    /// Call at start-up, before any other thread uses BLAS.
    @discardableResult
    public static func configure(environment: [String: String] = ProcessInfo.processInfo.environment) -> Report {
        lock.lock(); defer { lock.unlock() }
        if let configured { return configured }
        let report = decide(environment: environment)
        configured = report
        return report
    }

    /// The report of `configure()`, or the untouched state if it was never called.
    public static var report: Report {
        lock.lock(); defer { lock.unlock() }
        return configured ?? Report(initialCore: currentCore, core: currentCore, threads: Int(openblas_get_num_threads()),
                                    status: .unchanged(reason: "not configured"), selfCheckError: nil)
    }

    /// What start-up should do, decided from the environment, the CPU's features and the
    /// kernel OpenBLAS picked (pure: no kernel is switched here).
    enum Plan: Equatable {
        case leave(reason: String)
        /// The kernel in use is already right; only self-check it.
        case keep(reason: String)
        case use(core: String)
    }

    static func plan(environment env: [String: String], features: pd_cpu_features, initial: String) -> Plan {
        let setting = env["PDPIPE_BLAS_KERNEL"] ?? "auto"
        switch setting.lowercased() {
        case "default", "off", "none":
            return .leave(reason: "PDPIPE_BLAS_KERNEL=\(setting)")
        case "auto", "":
            // A user's (or machine image's) OPENBLAS_CORETYPE is kept when it is at least as
            // capable as the detected best kernel, and upgraded otherwise: a weaker forced
            // kernel halves sgemm speed (Haswell 255 vs SkylakeX 492 GFLOP/s measured on
            // AVX-512 machines). PDPIPE_BLAS_KERNEL=default keeps any user choice untouched.
            guard let core = recommendedCore(for: features) else {
                return .leave(reason: "no AVX2/AVX-512 kernel fits this CPU")
            }
            if core.caseInsensitiveCompare(initial) == .orderedSame || covers(initial, core) {
                return .keep(reason: "already \(initial)")
            }
            return .use(core: core)
        default:
            if let unsupported = missingFeature(for: setting, features) {
                return .leave(reason: "PDPIPE_BLAS_KERNEL=\(setting) needs \(unsupported), which this CPU lacks")
            }
            if setting.caseInsensitiveCompare(initial) == .orderedSame { return .keep(reason: "already \(initial)") }
            return .use(core: setting)
        }
    }

    static func decide(environment env: [String: String]) -> Report {
        let initial = currentCore
        func report(_ s: Status, check: Double?) -> Report {
            Report(initialCore: initial, core: currentCore, threads: Int(openblas_get_num_threads()), status: s, selfCheckError: check)
        }
        switch plan(environment: env, features: pd_detect_cpu_features(), initial: initial) {
        case .leave(let reason):
            return report(.unchanged(reason: reason), check: nil)
        case .keep(let reason):
            return report(.unchanged(reason: reason), check: selfCheckError())
        case .use(let wanted):
            switchCore(to: wanted)
            let err = selfCheckError()
            if err < tolerance && currentCore.caseInsensitiveCompare(wanted) == .orderedSame {
                return report(.selected, check: err)
            }
            switchCore(to: nil)
            return report(.fallback(failed: wanted, error: err), check: selfCheckError())
        }
    }
}

extension Engine {
    /// Start-up: sets the thread count for BLAS and the engine's loops, makes idle OpenBLAS
    /// workers sleep at once, selects the OpenBLAS kernel, then the compute backend (oneDNN or
    /// OpenBLAS, `BackendSelection`). Call once from the executable's entry point before any compute.
    @discardableResult
    public static func startUp(threads: Int? = nil) -> BLASKernel.Report {
        setThreads(threads ?? self.threads)
        keepFreedMemory()
        BLASKernel.shortenThreadTimeout()
        let report = BLASKernel.configure()
        BackendSelection.configure()
        return report
    }

    /// Training allocates and frees the same multi-megabyte activation buffers every step; by
    /// default glibc returns them to the kernel (mmap/trim), so every step page-faults and
    /// zero-fills them again (measured ~3 % of a block's time in clear_page). Keep freed memory
    /// in the heap instead.
    public static func keepFreedMemory() {
        pd_keep_freed_memory()
    }

    /// One line for `--version`/verbose output: kernel, threads, selection status.
    public static var blasDescription: String { BLASKernel.report.description }

    /// One line for `--version`: the compute backend and why (e.g. "backend onednn: oneDNN 2.6.3 avx2, ...").
    public static var backendDescription: String { BackendSelection.report.description }
}
