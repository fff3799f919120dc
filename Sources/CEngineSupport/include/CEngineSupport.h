#ifndef CENGINESUPPORT_H
#define CENGINESUPPORT_H
/// CPU feature bits read with cpuid (leaf 7 / leaf 1) and the OS's XSAVE support.
typedef struct {
    int avx2;
    int fma;
    int avx512f;
    int avx512bw;
    int avx512vl;
    int os_avx;     // OS saves YMM state
    int os_avx512;  // OS saves ZMM/opmask state
} pd_cpu_features;

pd_cpu_features pd_detect_cpu_features(void);

/// glibc: keep freed memory in the heap (mallopt mmap/trim thresholds) so per-step buffers
/// are reused instead of page-faulted and zero-filled again. No-op elsewhere.
void pd_keep_freed_memory(void);
#endif
