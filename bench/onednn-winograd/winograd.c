// Direct against Winograd F(4x4, 3x3) for oneDNN's fp32 3x3 convolutions on the U-Nets' shapes:
// forward, backward-data and backward-weights (bias included), activations already in the
// channel-blocked layout both primitives pick (nChw16c on AVX-512), weights reordered from OIHW
// once. Prints medians of interleaved rounds and each output's relative L2 difference between the
// two algorithms. Build and run: bench/onednn-winograd/run [rounds]
#include <oneapi/dnnl/dnnl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(x) do { dnnl_status_t status_ = (x); \
    if (status_ != dnnl_success) { fprintf(stderr, "oneDNN error %d: %s\n", (int)status_, #x); exit(1); } } while (0)

static dnnl_engine_t engine;
static dnnl_stream_t stream;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/// A memory of descriptor `md` filled with a fixed pseudo-random pattern (or zeros).
static dnnl_memory_t filled(const dnnl_memory_desc_t *md, unsigned seed, float scale) {
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, engine, DNNL_MEMORY_ALLOCATE));
    float *p;
    CHECK(dnnl_memory_get_data_handle(m, (void **)&p));
    size_t n = dnnl_memory_desc_get_size(md) / sizeof(float);
    for (size_t i = 0; i < n; i++) { seed = seed * 1664525u + 1013904223u; p[i] = scale * ((float)(seed >> 8) / 16777216.0f - 0.5f); }
    return m;
}

/// A primitive with its arguments; `out` is what it computes, in OIHW / the activations' layout
/// after the optional `post` reorder (weight gradients leave in the primitive's own layout).
typedef struct {
    dnnl_primitive_t prim, post;
    dnnl_exec_arg_t args[4], post_args[2];
    int count;
    dnnl_memory_t out;
    const char *impl;
} op;

static void make_op(op *o, const void *desc, const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd_out) {
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, desc, NULL, engine, hint));
    CHECK(dnnl_primitive_create(&o->prim, pd));
    CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &o->impl));
    *pd_out = pd;
}

static double run_op(op *o) {
    double t = now();
    CHECK(dnnl_primitive_execute(o->prim, stream, o->count, o->args));
    CHECK(dnnl_stream_wait(stream));
    return now() - t;
}

typedef struct { op dir[3]; } conv;  // forward, backward-data, backward-weights

/// One algorithm's three primitives for batch n, ci -> co channels, h x h, 3x3 "same"; the
/// activations (x, dy) are shared between algorithms, the weights reordered into each one's layout.
static void make_conv(conv *c, dnnl_alg_kind_t alg, int n, int ci, int co, int h, dnnl_memory_t *x, dnnl_memory_t *dy) {
    dnnl_dims_t src = {n, ci, h, h}, wei = {co, ci, 3, 3}, dst = {n, co, h, h}, bias = {co}, strides = {1, 1}, pads = {1, 1};
    dnnl_memory_desc_t src_md, dst_md, wei_any, bias_md, wei_user;
    CHECK(dnnl_memory_desc_init_by_tag(&src_md, 4, src, dnnl_f32, dnnl_nChw16c));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst, dnnl_f32, dnnl_nChw16c));
    CHECK(dnnl_memory_desc_init_by_tag(&wei_any, 4, wei, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&bias_md, 1, bias, dnnl_f32, dnnl_x));
    CHECK(dnnl_memory_desc_init_by_tag(&wei_user, 4, wei, dnnl_f32, dnnl_oihw));
    if (!*x) { *x = filled(&src_md, 1, 2.f); *dy = filled(&dst_md, 2, 2.f); }

    dnnl_convolution_desc_t d;
    dnnl_primitive_desc_t fwd_pd, pd;
    CHECK(dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, alg, &src_md, &wei_any, &bias_md, &dst_md, strides, pads, pads));
    make_op(&c->dir[0], &d, NULL, &fwd_pd);
    // The weights in this algorithm's layout (Winograd's is its own transformed format).
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(fwd_pd, dnnl_query_weights_md, 0);
    dnnl_memory_t w_user = filled(&wei_user, 3, 0.2f), w = filled(wmd, 0, 0.f), b = filled(&bias_md, 4, 0.2f);
    dnnl_primitive_desc_t rpd;
    dnnl_primitive_t reorder;
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, &wei_user, engine, wmd, engine, NULL));
    CHECK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, w_user}, {DNNL_ARG_TO, w}};
    CHECK(dnnl_primitive_execute(reorder, stream, 2, r));
    CHECK(dnnl_stream_wait(stream));
    dnnl_memory_t y = filled(&dst_md, 0, 0.f), dx = filled(&src_md, 0, 0.f);
    c->dir[0].out = y;
    c->dir[0].count = 4;
    c->dir[0].args[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, *x};
    c->dir[0].args[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, w};
    c->dir[0].args[2] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, b};
    c->dir[0].args[3] = (dnnl_exec_arg_t){DNNL_ARG_DST, y};

    CHECK(dnnl_convolution_backward_data_desc_init(&d, alg, &src_md, &wei_any, &dst_md, strides, pads, pads));
    make_op(&c->dir[1], &d, fwd_pd, &pd);
    const dnnl_memory_desc_t *bwd_wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_t wb = w;
    if (!dnnl_memory_desc_equal(bwd_wmd, wmd)) {  // backward-data may want its own weights layout
        wb = filled(bwd_wmd, 0, 0.f);
        CHECK(dnnl_reorder_primitive_desc_create(&rpd, &wei_user, engine, bwd_wmd, engine, NULL));
        CHECK(dnnl_primitive_create(&reorder, rpd));
        dnnl_exec_arg_t r2[2] = {{DNNL_ARG_FROM, w_user}, {DNNL_ARG_TO, wb}};
        CHECK(dnnl_primitive_execute(reorder, stream, 2, r2));
        CHECK(dnnl_stream_wait(stream));
    }
    c->dir[1].out = dx;
    c->dir[1].count = 3;
    c->dir[1].args[0] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, wb};
    c->dir[1].args[1] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, *dy};
    c->dir[1].args[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, dx};

    CHECK(dnnl_convolution_backward_weights_desc_init(&d, alg, &src_md, &wei_any, &bias_md, &dst_md, strides, pads, pads));
    make_op(&c->dir[2], &d, fwd_pd, &pd);
    // Weight gradients in OIHW for both algorithms, so the two can be compared element by element.
    const dnnl_memory_desc_t *dwmd = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
    dnnl_memory_t dw = filled(dwmd, 0, 0.f), db = filled(&bias_md, 0, 0.f), dw_user = filled(&wei_user, 0, 0.f);
    c->dir[2].count = 4;
    c->dir[2].args[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, *x};
    c->dir[2].args[1] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, *dy};
    c->dir[2].args[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, dw};
    c->dir[2].args[3] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, db};
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, dwmd, engine, &wei_user, engine, NULL));
    CHECK(dnnl_primitive_create(&c->dir[2].post, rpd));
    c->dir[2].post_args[0] = (dnnl_exec_arg_t){DNNL_ARG_FROM, dw};
    c->dir[2].post_args[1] = (dnnl_exec_arg_t){DNNL_ARG_TO, dw_user};
    c->dir[2].out = dw_user;
}

/// Relative L2 difference of two memories' f32 contents (same descriptor).
static double relative_l2(dnnl_memory_t a, dnnl_memory_t b) {
    const dnnl_memory_desc_t *md;
    float *p, *q;
    CHECK(dnnl_memory_get_memory_desc(a, &md));
    CHECK(dnnl_memory_get_data_handle(a, (void **)&p));
    CHECK(dnnl_memory_get_data_handle(b, (void **)&q));
    size_t n = dnnl_memory_desc_get_size(md) / sizeof(float);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) { double e = (double)p[i] - q[i]; num += e * e; den += (double)q[i] * q[i]; }
    return sqrt(num / den);
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 9;
    if (rounds < 1 || rounds > 99) { fprintf(stderr, "usage: winograd [rounds 1-99]\n"); return 2; }
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    const dnnl_version_t *v = dnnl_version();
    printf("oneDNN %d.%d.%d, effective ISA %d (dnnl_cpu_isa_t), %d rounds, fp32\n\n", v->major, v->minor, v->patch,
           (int)dnnl_get_effective_cpu_isa(), rounds);
    // batch, in -> out channels, size: the experiments' U-Net (32 model channels, batch 32 in
    // training and 64 in sampling) and the benchmark U-Net (64 model channels).
    const int shapes[][4] = {{32, 32, 32, 32}, {32, 64, 64, 16}, {32, 96, 64, 16}, {32, 64, 64, 8},
                             {64, 64, 64, 32}, {64, 128, 128, 16}, {64, 192, 128, 16}, {64, 128, 128, 8}};
    printf("| batch, in -> out, size | direction | direct ms | Winograd ms | speed-up | relative L2 difference | Winograd impl |\n");
    printf("|---|---|---:|---:|---:|---:|---|\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *g = shapes[s];
        dnnl_memory_t x = NULL, dy = NULL;
        conv c[2] = {0};
        make_conv(&c[0], dnnl_convolution_direct, g[0], g[1], g[2], g[3], &x, &dy);
        make_conv(&c[1], dnnl_convolution_winograd, g[0], g[1], g[2], g[3], &x, &dy);
        double t[2][3][99];
        for (int r = -1; r < rounds; r++)  // round -1 warms up
            for (int a = 0; a < 2; a++)
                for (int d = 0; d < 3; d++) { double e = run_op(&c[a].dir[d]); if (r >= 0) t[a][d][r] = e; }
        const char *directions[3] = {"forward", "backward-data", "backward-weights"};
        for (int d = 0; d < 3; d++) {
            for (int a = 0; a < 2; a++) {
                op *o = &c[a].dir[d];
                if (o->post) { CHECK(dnnl_primitive_execute(o->post, stream, 2, o->post_args)); CHECK(dnnl_stream_wait(stream)); }
            }
            qsort(t[0][d], rounds, sizeof(double), by_value);
            qsort(t[1][d], rounds, sizeof(double), by_value);
            double direct = t[0][d][rounds / 2], wino = t[1][d][rounds / 2];
            printf("| %d, %d -> %d, %dx%d | %s | %.2f | %.2f | %.2fx | %.1e | %s |\n", g[0], g[1], g[2], g[3], g[3], directions[d],
                   direct * 1e3, wino * 1e3, direct / wino, relative_l2(c[1].dir[d].out, c[0].dir[d].out), c[1].dir[d].impl);
        }
    }
    return 0;
}
