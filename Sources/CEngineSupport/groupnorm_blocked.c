// GroupNorm on channel-blocked activations ([N, C/b, H, W, b]: a pixel's b channels side by side),
// compiled once per instruction set and picked at load time (target_clones: AVX-512, AVX2,
// baseline), because Swift's SIMD types compile to baseline SSE2 for a portable binary. The
// arithmetic is the Swift reference's, operation for operation (no FMA contraction, the same
// summation orders), so both give the same bits: GroupNormKernels.blockedForwardReference and
// blockedBackwardReference, checked by BlockedLayoutTests.
#include "CEngineSupport.h"
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#pragma STDC FP_CONTRACT OFF

// The helpers below are forced inline: a helper the compiler leaves out of line is compiled once,
// for the baseline, and every clone would call that SSE2 copy (objdump showed it).
#define PD_INLINE static inline __attribute__((always_inline))
#if defined(__x86_64__) && defined(__linux__)
#define PD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PD_CLONES  // one build for the target's baseline (no ifunc dispatch here)
#endif

/// e^x on [-87, 88] (inputs outside are clamped there): x = n ln 2 + r with |r| <= ln 2 / 2
/// (ln 2 split in two so n ln 2 is exact), e^r by Cephes' expf polynomial, 2^n built in the
/// exponent bits. Plain float arithmetic in a fixed order, so the vectorised loops give the same
/// bits as scalar code on every instruction set.
PD_INLINE float exp_approx(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln 2): 1.5 * 2^23 trick
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    union { int32_t i; float f; } two_n = {.i = ((int32_t)n + 127) << 23};
    return p * two_n.f;
}

PD_INLINE float sigmoid(float z) { return 1.0f / (1.0f + exp_approx(-z)); }

/// Per channel of one image: sum and sum of squares in Double, even and odd pixels in two
/// chains (added at the end), then each group's mean and 1 / sqrt(var + eps), then y.
PD_INLINE void forward_image(int silu, long b, long c, long s, long groups, float eps, const float *restrict x,
                                 const float *restrict gamma, const float *restrict beta, float *restrict y,
                                 float *restrict mean, float *restrict rstd, double *restrict sums,
                                 double *restrict squares) {
    long cpg = c / groups;
    double count = (double)(cpg * s);
    for (long blk = 0; blk < c / b; blk++) {
        const float *xb = x + blk * b * s;
        double s0[64], s1[64], q0[64], q1[64];
        for (long l = 0; l < b; l++) s0[l] = s1[l] = q0[l] = q1[l] = 0;
        long i = 0;
        for (; i + 2 <= s; i += 2) {
            const float *u = xb + i * b, *v = u + b;
            for (long l = 0; l < b; l++) {
                double du = u[l], dv = v[l];
                s0[l] += du; q0[l] += du * du; s1[l] += dv; q1[l] += dv * dv;
            }
        }
        if (i < s) {
            for (long l = 0; l < b; l++) { double du = xb[i * b + l]; s0[l] += du; q0[l] += du * du; }
        }
        for (long l = 0; l < b; l++) { sums[blk * b + l] = s0[l] + s1[l]; squares[blk * b + l] = q0[l] + q1[l]; }
    }
    for (long g = 0; g < groups; g++) {
        double sum = 0, square = 0;
        for (long ch = g * cpg; ch < (g + 1) * cpg; ch++) { sum += sums[ch]; square += squares[ch]; }
        double m = sum / count, variance = square / count - m * m;
        if (!(variance > 0)) variance = 0;  // Swift's max(0, v)
        mean[g] = (float)m;
        rstd[g] = (float)(1.0 / sqrt(variance + (double)eps));
    }
    for (long blk = 0; blk < c / b; blk++) {
        float scale[64], shift[64];
        for (long l = 0; l < b; l++) {
            long ch = blk * b + l, g = ch / cpg;
            scale[l] = rstd[g] * gamma[ch];
            shift[l] = beta[ch] - mean[g] * scale[l];
        }
        const float *xb = x + blk * b * s;
        float *yb = y + blk * b * s;
        if (silu) {
            for (long i = 0; i < s; i++)
                for (long l = 0; l < b; l++) {
                    float z = xb[i * b + l] * scale[l] + shift[l];
                    yb[i * b + l] = z * sigmoid(z);
                }
        } else {
            for (long i = 0; i < s; i++)
                for (long l = 0; l < b; l++) yb[i * b + l] = xb[i * b + l] * scale[l] + shift[l];
        }
    }
}

PD_INLINE void forward_images(int silu, long first_image, long end_image, long block, long channels, long spatial,
                                  long groups, float eps, const float *x, const float *gamma, const float *beta, float *y,
                                  float *mean, float *rstd, double *scratch) {
    long per_image = channels * spatial;
    for (long n = first_image; n < end_image; n++) {
        const float *xn = x + n * per_image;
        float *yn = y + n * per_image, *mn = mean + n * groups, *rn = rstd + n * groups;
        double *q = scratch + channels;
        // Constant blocks let the compiler unroll the lane loops into whole vectors.
        if (block == 16) forward_image(silu, 16, channels, spatial, groups, eps, xn, gamma, beta, yn, mn, rn, scratch, q);
        else if (block == 8) forward_image(silu, 8, channels, spatial, groups, eps, xn, gamma, beta, yn, mn, rn, scratch, q);
        else forward_image(silu, block, channels, spatial, groups, eps, xn, gamma, beta, yn, mn, rn, scratch, q);
    }
}

PD_CLONES
void pd_groupnorm_blocked_forward(long first_image, long end_image, long block, long channels, long spatial, long groups,
                                  float eps, const float *x, const float *gamma, const float *beta, float *y,
                                  float *mean, float *rstd, double *scratch) {
    forward_images(0, first_image, end_image, block, channels, spatial, groups, eps, x, gamma, beta, y, mean, rstd, scratch);
}

PD_CLONES
void pd_groupnorm_silu_blocked_forward(long first_image, long end_image, long block, long channels, long spatial, long groups,
                                       float eps, const float *x, const float *gamma, const float *beta, float *y,
                                       float *mean, float *rstd, double *scratch) {
    forward_images(1, first_image, end_image, block, channels, spatial, groups, eps, x, gamma, beta, y, mean, rstd, scratch);
}

/// One image: per channel sum(d) and sum(d (x - mean)) rstd in Float (sequential over pixels),
/// per group mean(gamma d) and mean(gamma d xhat), then
/// dx = rstd (gamma d - mean(gamma d)) - (x - mean) rstd^2 mean(gamma d xhat),
/// where d is dy, or with `silu` (GroupNorm followed by SiLU) dL/dz = dy s (1 + z (1 - s)) with
/// z recomputed from x by the forward's own arithmetic and s = sigmoid(z), kept in dx meanwhile.
PD_INLINE void backward_image(int silu, long b, long c, long s, long groups, const float *restrict x,
                              const float *restrict gamma, const float *restrict beta, const float *restrict mean,
                              const float *restrict rstd, const float *restrict dy, float *restrict dx,
                              float *restrict sums) {
    long cpg = c / groups;
    float count = (float)(cpg * s);
    for (long blk = 0; blk < c / b; blk++) {
        const float *xb = x + blk * b * s, *db = dy + blk * b * s;
        float *dzb = dx + blk * b * s;
        float centre[64], scale[64], shift[64], sum_d[64], sum_dx[64];
        for (long l = 0; l < b; l++) {
            long ch = blk * b + l, g = ch / cpg;
            centre[l] = mean[g];
            if (silu) { scale[l] = rstd[g] * gamma[ch]; shift[l] = beta[ch] - mean[g] * scale[l]; }
            sum_d[l] = 0; sum_dx[l] = 0;
        }
        if (silu) {
            for (long i = 0; i < s; i++)
                for (long l = 0; l < b; l++) {
                    float xv = xb[i * b + l], z = xv * scale[l] + shift[l], sg = sigmoid(z);
                    float d = db[i * b + l] * sg * (1.0f + z * (1.0f - sg));
                    dzb[i * b + l] = d;
                    sum_d[l] += d;
                    sum_dx[l] += d * (xv - centre[l]);
                }
        } else {
            for (long i = 0; i < s; i++)
                for (long l = 0; l < b; l++) {
                    float d = db[i * b + l];
                    sum_d[l] += d;
                    sum_dx[l] += d * (xb[i * b + l] - centre[l]);
                }
        }
        for (long l = 0; l < b; l++) {
            long ch = blk * b + l;
            sums[2 * ch] = sum_d[l];
            sums[2 * ch + 1] = sum_dx[l] * rstd[ch / cpg];
        }
    }
    float mean_gamma_d[256], mean_gamma_dxhat[256];
    for (long g = 0; g < groups; g++) {
        float sa = 0, sb = 0;
        for (long ch = g * cpg; ch < (g + 1) * cpg; ch++) { sa += gamma[ch] * sums[2 * ch]; sb += gamma[ch] * sums[2 * ch + 1]; }
        mean_gamma_d[g] = sa / count;
        mean_gamma_dxhat[g] = sb / count;
    }
    const float *source = silu ? dx : dy;
    for (long blk = 0; blk < c / b; blk++) {
        float centre[64], d_scale[64], x_scale[64], shift[64];
        for (long l = 0; l < b; l++) {
            long ch = blk * b + l, g = ch / cpg;
            float rs = rstd[g];
            centre[l] = mean[g];
            d_scale[l] = rs * gamma[ch];
            x_scale[l] = -rs * rs * mean_gamma_dxhat[g];
            shift[l] = -rs * mean_gamma_d[g];
        }
        const float *xb = x + blk * b * s, *db = source + blk * b * s;
        float *out = dx + blk * b * s;
        for (long i = 0; i < s; i++)
            for (long l = 0; l < b; l++)
                out[i * b + l] = d_scale[l] * db[i * b + l] + (xb[i * b + l] - centre[l]) * x_scale[l] + shift[l];
    }
}

PD_INLINE int backward_images(int silu, long first_image, long end_image, long block, long channels, long spatial,
                              long groups, const float *x, const float *gamma, const float *beta, const float *mean,
                              const float *rstd, const float *dy, float *dx, float *sums) {
    if (groups > 256) return -1;
    long per_image = channels * spatial;
    for (long n = first_image; n < end_image; n++) {
        long o = n * per_image;
        const float *mn = mean + n * groups, *rn = rstd + n * groups;
        float *sn = sums + 2 * n * channels;
        // Constant blocks let the compiler unroll the lane loops into whole vectors.
        if (block == 16) backward_image(silu, 16, channels, spatial, groups, x + o, gamma, beta, mn, rn, dy + o, dx + o, sn);
        else if (block == 8) backward_image(silu, 8, channels, spatial, groups, x + o, gamma, beta, mn, rn, dy + o, dx + o, sn);
        else backward_image(silu, block, channels, spatial, groups, x + o, gamma, beta, mn, rn, dy + o, dx + o, sn);
    }
    return 0;
}

PD_CLONES
int pd_groupnorm_blocked_backward(long first_image, long end_image, long block, long channels, long spatial, long groups,
                                  const float *x, const float *gamma, const float *mean, const float *rstd,
                                  const float *dy, float *dx, float *sums) {
    return backward_images(0, first_image, end_image, block, channels, spatial, groups, x, gamma, NULL, mean, rstd, dy, dx, sums);
}

PD_CLONES
int pd_groupnorm_silu_blocked_backward(long first_image, long end_image, long block, long channels, long spatial, long groups,
                                       const float *x, const float *gamma, const float *beta, const float *mean,
                                       const float *rstd, const float *dy, float *dx, float *sums) {
    return backward_images(1, first_image, end_image, block, channels, spatial, groups, x, gamma, beta, mean, rstd, dy, dx, sums);
}
