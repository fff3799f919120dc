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

/// GroupNorm on channel-blocked activations [N, C/b, H, W, b] (b a multiple of 8, at most 64),
/// images first_image ..< end_image, the Swift reference's arithmetic bit for bit, vectorised for
/// the CPU it runs on. Forward: writes y and, per (image, group), mean and rstd; `scratch` holds
/// 2 * channels doubles (one caller thread each).
void pd_groupnorm_blocked_forward(long first_image, long end_image, long block, long channels, long spatial, long groups,
                                  float eps, const float *x, const float *gamma, const float *beta, float *y,
                                  float *mean, float *rstd, double *scratch);
/// Backward: writes dx and, per (image, channel) c, sums[2 (n C + c)] = sum(dy) and
/// sums[2 (n C + c) + 1] = sum(dy xhat) (the dBeta / dGamma terms). Returns -1 if groups > 256.
int pd_groupnorm_blocked_backward(long first_image, long end_image, long block, long channels, long spatial, long groups,
                                  const float *x, const float *gamma, const float *mean, const float *rstd,
                                  const float *dy, float *dx, float *sums);
/// GroupNorm then SiLU, y = z sigmoid(z) with z = GroupNorm(x), in one pass (the sigmoid's
/// exponential a polynomial to 2 ulp); mean, rstd and scratch as in the plain forward.
void pd_groupnorm_silu_blocked_forward(long first_image, long end_image, long block, long channels, long spatial, long groups,
                                       float eps, const float *x, const float *gamma, const float *beta, float *y,
                                       float *mean, float *rstd, double *scratch);
/// Its backward from x (z recomputed): dx and sums as in the plain backward, with dL/dz in place
/// of dy. Returns -1 if groups > 256.
int pd_groupnorm_silu_blocked_backward(long first_image, long end_image, long block, long channels, long spatial, long groups,
                                       const float *x, const float *gamma, const float *beta, const float *mean,
                                       const float *rstd, const float *dy, float *dx, float *sums);

#include <sys/types.h>
/// Starts `path argv` (environment `envp`, directory `cwd`, stdout and stderr to `out_fd`, stdin
/// /dev/null) under a group-leader process of its own process group that exits with the command's
/// status and, on Linux, kills the whole group when the calling thread exits (PR_SET_PDEATHSIG
/// fires on the forking thread's exit, which includes the runner being killed), so no command
/// outlives a killed runner. Returns the leader's pid (= the
/// process group id) or -errno. The calling thread must be the one that waits for it.
pid_t pd_spawn_group(const char *path, char *const argv[], char *const envp[], const char *cwd, int out_fd);
#endif
