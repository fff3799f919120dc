import CEngineSupport
import Testing
@testable import Engine

/// Kernel-selection logic. These tests never switch OpenBLAS's kernel or set OPENBLAS_CORETYPE:
/// they check the decision rules and the self-check against deliberately good/bad products.
@Suite struct KernelSelectionTests {
    static func features(avx2: Bool = false, fma: Bool = false, avx512: Bool = false, osAVX: Bool = true, osZMM: Bool = true) -> pd_cpu_features {
        var f = pd_cpu_features()
        f.avx2 = avx2 ? 1 : 0; f.fma = fma ? 1 : 0
        f.avx512f = avx512 ? 1 : 0; f.avx512bw = avx512 ? 1 : 0; f.avx512vl = avx512 ? 1 : 0
        f.os_avx = osAVX ? 1 : 0; f.os_avx512 = osZMM ? 1 : 0
        return f
    }

    @Test func recommendedCoreFollowsFeatures() {
        #expect(BLASKernel.recommendedCore(for: Self.features(avx2: true, fma: true, avx512: true)) == "SkylakeX")
        // AVX-512 in the CPU but the OS does not save ZMM state: Haswell.
        #expect(BLASKernel.recommendedCore(for: Self.features(avx2: true, fma: true, avx512: true, osZMM: false)) == "Haswell")
        #expect(BLASKernel.recommendedCore(for: Self.features(avx2: true, fma: true)) == "Haswell")
        #expect(BLASKernel.recommendedCore(for: Self.features(avx2: true, fma: false)) == nil)
        #expect(BLASKernel.recommendedCore(for: Self.features(avx2: true, fma: true, osAVX: false)) == nil)
    }

    @Test func forcedKernelNeedsItsInstructionSet() {
        let avx2Only = Self.features(avx2: true, fma: true)
        #expect(BLASKernel.missingFeature(for: "SkylakeX", avx2Only) == "AVX-512")
        #expect(BLASKernel.missingFeature(for: "Haswell", avx2Only) == nil)
        #expect(BLASKernel.missingFeature(for: "haswell", Self.features()) == "AVX2/FMA")
    }

    @Test func libraryChoiceThatCoversTheRecommendationIsKept() {
        #expect(BLASKernel.covers("Cooperlake", "SkylakeX"))
        #expect(!BLASKernel.covers("Prescott", "SkylakeX"))
        #expect(!BLASKernel.covers("Haswell", "SkylakeX"))
        #expect(BLASKernel.covers("Zen", "Haswell"))
    }

    static func naive(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ a: [Float], _ b: [Float]) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for l in 0..<k {
            c[i * n + j] += (ta ? a[l * m + i] : a[i * k + l]) * (tb ? b[j * k + l] : b[l * n + j])
        } } }
        return c
    }

    @Test func selfCheckAcceptsCorrectAndRejectsWrongProducts() {
        #expect(BLASKernel.selfCheckError(sgemm: Self.naive) < BLASKernel.tolerance)
        // The live OpenBLAS (whatever kernel the environment gives) passes.
        #expect(BLASKernel.selfCheckError() < BLASKernel.tolerance)
        // A kernel that drops the last k term, ignores a transpose, or returns nan must fail.
        let dropsTerm: (Bool, Bool, Int, Int, Int, [Float], [Float]) -> [Float] = { ta, tb, m, n, k, a, b in
            var c = Self.naive(ta, tb, m, n, k, a, b)
            for i in 0..<m { for j in 0..<n { c[i * n + j] -= (ta ? a[(k - 1) * m + i] : a[i * k + k - 1]) * (tb ? b[j * k + k - 1] : b[(k - 1) * n + j]) } }
            return c
        }
        #expect(BLASKernel.selfCheckError(sgemm: dropsTerm) > BLASKernel.tolerance)
        #expect(BLASKernel.selfCheckError(sgemm: { _, tb, m, n, k, a, b in Self.naive(false, tb, m, n, k, a, b) }) > BLASKernel.tolerance)
        #expect(BLASKernel.selfCheckError(sgemm: { _, _, m, n, _, _, _ in [Float](repeating: .nan, count: m * n) }) > BLASKernel.tolerance)
    }

    @Test func disabledSelectionLeavesLibraryAlone() {
        let r = BLASKernel.decide(environment: ["PDPIPE_BLAS_KERNEL": "default"])
        #expect(r.status == .unchanged(reason: "PDPIPE_BLAS_KERNEL=default"))
        #expect(r.core == r.initialCore)
    }

    @Test func planUpgradesOnlyAWeakerUserKernel() {
        let zmm = Self.features(avx2: true, fma: true, avx512: true), avx2 = Self.features(avx2: true, fma: true)
        // A machine-set OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU is upgraded; on an AVX2 CPU it stays.
        #expect(BLASKernel.plan(environment: ["OPENBLAS_CORETYPE": "Haswell"], features: zmm, initial: "Haswell") == .use(core: "SkylakeX"))
        #expect(BLASKernel.plan(environment: ["OPENBLAS_CORETYPE": "Haswell"], features: avx2, initial: "Haswell") == .keep(reason: "already Haswell"))
        #expect(BLASKernel.plan(environment: [:], features: zmm, initial: "Prescott") == .use(core: "SkylakeX"))
        #expect(BLASKernel.plan(environment: [:], features: zmm, initial: "CooperLake") == .keep(reason: "already CooperLake"))
        #expect(BLASKernel.plan(environment: ["PDPIPE_BLAS_KERNEL": "off", "OPENBLAS_CORETYPE": "Haswell"], features: zmm, initial: "Haswell")
                == .leave(reason: "PDPIPE_BLAS_KERNEL=off"))
        #expect(BLASKernel.plan(environment: ["PDPIPE_BLAS_KERNEL": "SkylakeX"], features: avx2, initial: "Haswell")
                == .leave(reason: "PDPIPE_BLAS_KERNEL=SkylakeX needs AVX-512, which this CPU lacks"))
        #expect(BLASKernel.plan(environment: ["PDPIPE_BLAS_KERNEL": "Haswell"], features: zmm, initial: "Prescott") == .use(core: "Haswell"))
        #expect(BLASKernel.plan(environment: [:], features: Self.features(), initial: "Prescott") == .leave(reason: "no AVX2/AVX-512 kernel fits this CPU"))
    }
}
