// Which activation layout should the U-Net keep on oneDNN? Times one convolution geometry's
// forward, backward-data and backward-weights (batch 32, fp32, bias) three ways:
//   nchw     the backend today: plain NCHW buffers, the primitive in the layout it picks
//            (`format_tag_any`: nChw8c on AVX2, nChw16c on AVX-512), reordered in and out at
//            every call;
//   nhwc     NHWC buffers handed to a primitive created for NHWC: no reorders at all;
//   blocked  the layout the primitive picks, already in place: what keeping activations blocked
//            through the whole network would cost (weights are still reordered from OIHW).
// and, where oneDNN has native bf16 kernels (avx512_core_bf16 or AMX), three bf16 ways (bf16
// inputs, weights and output gradients; f32 outputs, input and weight gradients):
//   bf16 nchw     f32 NCHW buffers reordered to the primitive's bf16 layout at every call;
//   bf16 blocked  f32 buffers already in the channel-blocked layout (nChw16c), converted to
//                 bf16 at every call (what the backend does with blocked activations);
//   bf16 kernel   the bf16 primitive alone, its operands already bf16 in place: the ceiling.
// Medians of interleaved rounds. Build and run: bench/onednn-layouts/run [rounds]
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(x) do { dnnl_status_t status_ = (x); \
    if (status_ != dnnl_success) { fprintf(stderr, "oneDNN error %d: %s\n", (int)status_, #x); exit(1); } } while (0)

enum layout { NCHW, NHWC, BLOCKED, BF16_NCHW, BF16_BLOCKED, BF16_KERNEL, LAYOUTS };

static dnnl_engine_t engine;
static dnnl_stream_t stream;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static dnnl_memory_t allocate(const dnnl_memory_desc_t *md, float fill_step) {
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, engine, DNNL_MEMORY_ALLOCATE));
    void *p;
    CHECK(dnnl_memory_get_data_handle(m, &p));
    if (md->data_type == dnnl_bf16) {  // bf16: the upper half of the f32 value
        size_t n = dnnl_memory_desc_get_size(md) / sizeof(unsigned short);
        for (size_t i = 0; i < n; i++) {
            float f = (float)(i % 7) * fill_step - 0.3f;
            unsigned int bits;
            memcpy(&bits, &f, sizeof bits);
            ((unsigned short *)p)[i] = (unsigned short)(bits >> 16);
        }
    } else {
        size_t n = dnnl_memory_desc_get_size(md) / sizeof(float);
        for (size_t i = 0; i < n; i++) ((float *)p)[i] = (float)(i % 7) * fill_step - 0.3f;
    }
    return m;
}

/// A reorder between `user` and a new buffer of `md`; NULL when the two layouts are the same.
typedef struct { dnnl_memory_t user, inner; dnnl_primitive_t reorder; int output; } port;

static port make_port(dnnl_memory_t user, const dnnl_memory_desc_t *md, int output) {
    port p = {user, user, NULL, output};
    const dnnl_memory_desc_t *user_md;
    CHECK(dnnl_memory_get_memory_desc(user, &user_md));
    if (dnnl_memory_desc_equal(user_md, md)) return p;
    p.inner = allocate(md, 0.01f);
    dnnl_primitive_desc_t rpd;
    if (output) CHECK(dnnl_reorder_primitive_desc_create(&rpd, md, engine, user_md, engine, NULL));
    else CHECK(dnnl_reorder_primitive_desc_create(&rpd, user_md, engine, md, engine, NULL));
    CHECK(dnnl_primitive_create(&p.reorder, rpd));
    dnnl_primitive_desc_destroy(rpd);
    return p;
}

static void move(port *p, int output_phase, int skip) {
    if (!p->reorder || p->output != output_phase || skip) return;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, p->output ? p->inner : p->user}, {DNNL_ARG_TO, p->output ? p->user : p->inner}};
    CHECK(dnnl_primitive_execute(p->reorder, stream, 2, args));
}

typedef struct { dnnl_primitive_desc_t pd; dnnl_primitive_t prim; port ports[4]; int args[4]; int count; const char *impl; } op;

/// Runs `o`: reorders in, primitive, reorders out; `blocked` skips activation reorders (ports
/// other than weights), as if the network kept the primitive's layout.
static double run_op(op *o, int blocked) {
    double t0 = now();
    dnnl_exec_arg_t args[4];
    for (int i = 0; i < o->count; i++) {
        int is_weights = o->args[i] == DNNL_ARG_WEIGHTS || o->args[i] == DNNL_ARG_DIFF_WEIGHTS;
        move(&o->ports[i], 0, blocked && !is_weights);
        args[i].arg = o->args[i];
        args[i].memory = o->ports[i].inner;
    }
    CHECK(dnnl_primitive_execute(o->prim, stream, o->count, args));
    for (int i = 0; i < o->count; i++) {
        int is_weights = o->args[i] == DNNL_ARG_WEIGHTS || o->args[i] == DNNL_ARG_DIFF_WEIGHTS;
        move(&o->ports[i], 1, blocked && !is_weights);
    }
    CHECK(dnnl_stream_wait(stream));
    return now() - t0;
}

static void make_op(op *o, const void *desc, const_dnnl_primitive_desc_t hint) {
    memset(o, 0, sizeof *o);
    CHECK(dnnl_primitive_desc_create(&o->pd, desc, NULL, engine, hint));
    CHECK(dnnl_primitive_create(&o->prim, o->pd));
    CHECK(dnnl_primitive_desc_query(o->pd, dnnl_query_impl_info_str, 0, &o->impl));
}

static void add_port(op *o, int arg, dnnl_memory_t user, dnnl_query_t q, int index, int output) {
    o->ports[o->count] = make_port(user, dnnl_primitive_desc_query_md(o->pd, q, index), output);
    o->args[o->count++] = arg;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct { op fwd, bwd_data, bwd_weights; } conv;

static int is_bf16(enum layout l) { return l >= BF16_NCHW; }

static void make_conv(conv *c, int n, int ci, int co, int h, int k, enum layout layout) {
    int pad = k / 2;
    dnnl_dims_t src = {n, ci, h, h}, wei = {co, ci, k, k}, dst = {n, co, h, h}, bias = {co}, strides = {1, 1}, pads = {pad, pad};
    dnnl_format_tag_t user_tag = layout == NHWC ? dnnl_nhwc : layout == BF16_BLOCKED ? dnnl_nChw16c : dnnl_nchw;
    dnnl_format_tag_t prim_tag = layout == NHWC ? dnnl_nhwc : dnnl_format_tag_any;
    // bf16: the operands the kernel reads are bf16, what it writes (dst, gradients) f32.
    dnnl_data_type_t lo = is_bf16(layout) ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t src_user, dst_user, wei_user, bias_user, src_any, dst_any, wei_any, bias_any, diff_dst_any, diff_src_any, diff_wei_any;
    CHECK(dnnl_memory_desc_init_by_tag(&src_user, 4, src, dnnl_f32, user_tag));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_user, 4, dst, dnnl_f32, user_tag));
    CHECK(dnnl_memory_desc_init_by_tag(&wei_user, 4, wei, dnnl_f32, dnnl_oihw));
    CHECK(dnnl_memory_desc_init_by_tag(&bias_user, 1, bias, dnnl_f32, dnnl_x));
    CHECK(dnnl_memory_desc_init_by_tag(&src_any, 4, src, lo, prim_tag));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_any, 4, dst, dnnl_f32, prim_tag));
    CHECK(dnnl_memory_desc_init_by_tag(&wei_any, 4, wei, lo, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&bias_any, 1, bias, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&diff_dst_any, 4, dst, lo, prim_tag));
    CHECK(dnnl_memory_desc_init_by_tag(&diff_src_any, 4, src, dnnl_f32, prim_tag));
    CHECK(dnnl_memory_desc_init_by_tag(&diff_wei_any, 4, wei, dnnl_f32, dnnl_format_tag_any));
    dnnl_memory_t x = allocate(&src_user, 0.1f), w = allocate(&wei_user, 0.01f), b = allocate(&bias_user, 0.1f);
    dnnl_memory_t y = allocate(&dst_user, 0.f), dy = allocate(&dst_user, 0.1f), dx = allocate(&src_user, 0.f);
    dnnl_memory_t dw = allocate(&wei_user, 0.f), db = allocate(&bias_user, 0.f);

    dnnl_convolution_desc_t d;
    CHECK(dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, dnnl_convolution_direct, &src_any, &wei_any,
                                             &bias_any, &dst_any, strides, pads, pads));
    make_op(&c->fwd, &d, NULL);
    add_port(&c->fwd, DNNL_ARG_SRC, x, dnnl_query_src_md, 0, 0);
    add_port(&c->fwd, DNNL_ARG_WEIGHTS, w, dnnl_query_weights_md, 0, 0);
    add_port(&c->fwd, DNNL_ARG_BIAS, b, dnnl_query_weights_md, 1, 0);
    add_port(&c->fwd, DNNL_ARG_DST, y, dnnl_query_dst_md, 0, 1);

    CHECK(dnnl_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, &diff_src_any, &wei_any, &diff_dst_any, strides, pads, pads));
    make_op(&c->bwd_data, &d, c->fwd.pd);
    add_port(&c->bwd_data, DNNL_ARG_WEIGHTS, w, dnnl_query_weights_md, 0, 0);
    add_port(&c->bwd_data, DNNL_ARG_DIFF_DST, dy, dnnl_query_diff_dst_md, 0, 0);
    add_port(&c->bwd_data, DNNL_ARG_DIFF_SRC, dx, dnnl_query_diff_src_md, 0, 1);

    CHECK(dnnl_convolution_backward_weights_desc_init(&d, dnnl_convolution_direct, &src_any, &diff_wei_any, &bias_any,
                                                      &diff_dst_any, strides, pads, pads));
    make_op(&c->bwd_weights, &d, c->fwd.pd);
    add_port(&c->bwd_weights, DNNL_ARG_SRC, x, dnnl_query_src_md, 0, 0);
    add_port(&c->bwd_weights, DNNL_ARG_DIFF_DST, dy, dnnl_query_diff_dst_md, 0, 0);
    add_port(&c->bwd_weights, DNNL_ARG_DIFF_WEIGHTS, dw, dnnl_query_diff_weights_md, 0, 1);
    add_port(&c->bwd_weights, DNNL_ARG_DIFF_BIAS, db, dnnl_query_diff_weights_md, 1, 1);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 9;
    if (rounds < 1 || rounds > 99) { fprintf(stderr, "usage: layouts [rounds 1-99]\n"); return 2; }
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    const dnnl_version_t *v = dnnl_version();
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    // bf16 rows only with native kernels (below, oneDNN 2.6 emulates or lacks them).
    int bf16 = isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx;
    int layouts = bf16 ? LAYOUTS : BF16_NCHW;
    printf("oneDNN %d.%d.%d, effective ISA %d (dnnl_cpu_isa_t), %d rounds, batch 32, fp32%s\n\n",
           v->major, v->minor, v->patch, (int)isa, rounds, bf16 ? " and bf16" : " (no native bf16 here)");
    // The experiments' U-Net (model_channels 32, mult [1,2,2]): 3x3 at 32, 64 and 96 -> 64
    // channels, and 1x1 (attention's qkv, skip projections).
    const int shapes[][4] = {{32, 32, 32, 3}, {64, 64, 16, 3}, {64, 64, 8, 3}, {96, 64, 16, 3}, {32, 32, 32, 1}, {64, 192, 16, 1}};
    printf("| conv (in -> out, size, kernel) | direction | nchw ms | nhwc ms | blocked ms | nhwc speed-up | blocked speed-up |%s impl |\n",
           bf16 ? " bf16 nchw ms | bf16 blocked ms | bf16 kernel ms | bf16 blocked vs fp32 blocked |" : "");
    printf("|---|---|---:|---:|---:|---:|---:|%s---|\n", bf16 ? "---:|---:|---:|---:|" : "");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *g = shapes[s];
        conv c[LAYOUTS];
        for (int l = 0; l < layouts; l++) make_conv(&c[l], 32, g[0], g[1], g[2], g[3], (enum layout)l);
        double t[LAYOUTS][3][99];
        for (int r = -1; r < rounds; r++) {  // round -1 warms up
            for (int l = 0; l < layouts; l++) {
                // NCHW, NHWC and the bf16 ones run as the backend would; BLOCKED and BF16_KERNEL
                // are NCHW's primitives without the activation reorders.
                int blocked = l == BLOCKED || l == BF16_KERNEL;
                double a = run_op(&c[l].fwd, blocked), b = run_op(&c[l].bwd_data, blocked), w = run_op(&c[l].bwd_weights, blocked);
                if (r >= 0) { t[l][0][r] = a; t[l][1][r] = b; t[l][2][r] = w; }
            }
        }
        const char *directions[3] = {"forward", "backward-data", "backward-weights"};
        for (int d = 0; d < 3; d++) {
            double m[LAYOUTS];
            for (int l = 0; l < layouts; l++) { qsort(t[l][d], rounds, sizeof(double), by_value); m[l] = t[l][d][rounds / 2]; }
            const op *o = d == 0 ? &c[NCHW].fwd : d == 1 ? &c[NCHW].bwd_data : &c[NCHW].bwd_weights;
            const op *on = d == 0 ? &c[NHWC].fwd : d == 1 ? &c[NHWC].bwd_data : &c[NHWC].bwd_weights;
            char extra[256] = "";
            if (bf16) {
                const op *ob = d == 0 ? &c[BF16_BLOCKED].fwd : d == 1 ? &c[BF16_BLOCKED].bwd_data : &c[BF16_BLOCKED].bwd_weights;
                snprintf(extra, sizeof extra, " %.2f | %.2f | %.2f | %.2fx | %s /", m[BF16_NCHW] * 1e3, m[BF16_BLOCKED] * 1e3,
                         m[BF16_KERNEL] * 1e3, m[BLOCKED] / m[BF16_BLOCKED], ob->impl);
            }
            printf("| %d -> %d, %dx%d, %dx%d | %s | %.2f | %.2f | %.2f | %.2fx | %.2fx |%s %s / %s |\n", g[0], g[1], g[2], g[2], g[3], g[3],
                   directions[d], m[NCHW] * 1e3, m[NHWC] * 1e3, m[BLOCKED] * 1e3, m[NCHW] / m[NHWC], m[NCHW] / m[BLOCKED], extra, o->impl, on->impl);
        }
    }
    return 0;
}
