// Convolution primitives (forward, backward-data, backward-weights) around f32 user buffers, NCHW
// or channel-blocked (nChw8c / nChw16c); fp32 or bf16 inside.
#include "CDNNL.h"
#include "dnnl_api.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if PD_HAVE_DNNL
/// One argument of a primitive: the caller's plain f32 buffer and, when oneDNN wants another
/// layout or type, an owned buffer in that layout plus the reorder between the two.
typedef struct {
    int arg, output;
    dnnl_memory_t user, inner;
    dnnl_primitive_t reorder;
    pd_scratch scratch;
} port;

typedef struct {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    pd_scratch scratch;
    port ports[4];
    int count;
} op;

struct pd_dnnl_conv {
    int has_bias, dtype;
    dnnl_alg_kind_t alg;  // winograd or direct, chosen at creation for all three directions
    dnnl_dims_t strides, pads;
    dnnl_memory_desc_t src_user, wei_user, bias_user, dst_user;
    dnnl_memory_desc_t src_any, wei_any, bias_any, dst_any, diff_dst_any, diff_src_any, diff_wei_any;
    op fwd, bwd_data, bwd_weights;
    int have_bwd_data, have_bwd_weights;
};

static void port_destroy(port *p) {
    pd_scratch_destroy(&p->scratch);
    if (p->reorder) pd_dnnl.dnnl_primitive_destroy(p->reorder);
    if (p->inner) pd_dnnl.dnnl_memory_destroy(p->inner);
    if (p->user) pd_dnnl.dnnl_memory_destroy(p->user);
    memset(p, 0, sizeof *p);
}

static void op_destroy(op *o) {
    for (int i = 0; i < o->count; i++) port_destroy(&o->ports[i]);
    pd_scratch_destroy(&o->scratch);
    if (o->prim) pd_dnnl.dnnl_primitive_destroy(o->prim);
    if (o->pd) pd_dnnl.dnnl_primitive_desc_destroy(o->pd);
    memset(o, 0, sizeof *o);
}

/// Adds argument `arg` whose user buffer has `user_md`; `q`/`index` query the primitive's own md.
static int op_port(op *o, int arg, int output, const dnnl_memory_desc_t *user_md, dnnl_query_t q, int index,
                   char *err, size_t errlen) {
    port *p = &o->ports[o->count++];
    memset(p, 0, sizeof *p);
    p->arg = arg; p->output = output;
    const dnnl_memory_desc_t *md = pd_dnnl.dnnl_primitive_desc_query_md(o->pd, q, index);
    dnnl_primitive_desc_t rpd = NULL;
    CHECK(pd_dnnl.dnnl_memory_create(&p->user, user_md, pd_dnnl.engine, DNNL_MEMORY_NONE), "user memory");
    if (!md) { if (err && errlen) snprintf(err, errlen, "oneDNN: primitive has no md for arg %d", arg); return -1; }
    if (pd_dnnl.dnnl_memory_desc_equal(md, user_md)) return 0;
    CHECK(pd_dnnl.dnnl_memory_create(&p->inner, md, pd_dnnl.engine, DNNL_MEMORY_ALLOCATE), "inner memory");
    if (output) CHECK(pd_reorder_desc_create(&rpd, md, user_md), "reorder desc");
    else CHECK(pd_reorder_desc_create(&rpd, user_md, md), "reorder desc");
    CHECK(pd_dnnl.dnnl_primitive_create(&p->reorder, rpd), "reorder");
    CHECK(pd_scratch_init(&p->scratch, rpd), "reorder scratchpad");
    pd_dnnl.dnnl_primitive_desc_destroy(rpd);
    return 0;
fail:
    if (rpd) pd_dnnl.dnnl_primitive_desc_destroy(rpd);
    return -1;
}

static int op_create(op *o, const void *desc, const_dnnl_primitive_desc_t hint, char *err, size_t errlen) {
    CHECK(pd_desc_create(&o->pd, desc, NULL, hint), "primitive descriptor");
    CHECK(pd_dnnl.dnnl_primitive_create(&o->prim, o->pd), "primitive");
    CHECK(pd_scratch_init(&o->scratch, o->pd), "scratchpad");
    return 0;
fail:
    return -1;
}

/// Binds the user pointers (in port order), reorders inputs in, runs, reorders outputs out.
static int op_execute(op *o, void *const *buffers) {
    dnnl_exec_arg_t args[4];
    for (int i = 0; i < o->count; i++) {
        port *p = &o->ports[i];
        if (pd_dnnl.dnnl_memory_set_data_handle(p->user, buffers[i]) != dnnl_success) return -1;
        args[i].arg = p->arg;
        args[i].memory = p->inner ? p->inner : p->user;
        if (p->inner && !p->output) {
            dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, p->user}, {DNNL_ARG_TO, p->inner}};
            if (pd_execute(p->reorder, &p->scratch, 2, r) != dnnl_success) return -1;
        }
    }
    if (pd_execute(o->prim, &o->scratch, o->count, args) != dnnl_success) return -1;
    for (int i = 0; i < o->count; i++) {
        port *p = &o->ports[i];
        if (p->inner && p->output) {
            dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, p->inner}, {DNNL_ARG_TO, p->user}};
            if (pd_execute(p->reorder, &p->scratch, 2, r) != dnnl_success) return -1;
        }
    }
    return pd_dnnl.dnnl_stream_wait(pd_dnnl.stream) == dnnl_success ? 0 : -1;
}

/// The format tag of f32 activations in channel blocks of `block` (1: plain NCHW), or undef.
static dnnl_format_tag_t activation_tag(int block) {
    switch (block) {
    case 1: return dnnl_nchw;
    case 8: return dnnl_nChw8c;
    case 16: return dnnl_nChw16c;
    default: return dnnl_format_tag_undef;
    }
}

/// The forward primitive with the convolution's algorithm (`c->alg`).
static int forward_op(pd_dnnl_conv *c, int inference, char *err, size_t errlen) {
    dnnl_convolution_desc_t d;
    CHECK(pd_dnnl.dnnl_convolution_forward_desc_init(&d, inference ? dnnl_forward_inference : dnnl_forward_training,
          c->alg, &c->src_any, &c->wei_any, c->has_bias ? &c->bias_any : NULL, &c->dst_any,
          c->strides, c->pads, c->pads), "convolution forward desc");
    if (op_create(&c->fwd, &d, NULL, err, errlen)) goto fail;
    return 0;
fail:
    op_destroy(&c->fwd);
    return -1;
}

pd_dnnl_conv *pd_dnnl_conv_create(int batch, int cin, int cout, int height, int width, int kernel, int pad,
                                  int src_block, int dst_block, int has_bias, int dtype, int inference, int winograd,
                                  char *err, size_t errlen) {
    if (!pd_dnnl_loaded()) { if (err && errlen) snprintf(err, errlen, "oneDNN is not loaded"); return NULL; }
    pd_dnnl_conv *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->has_bias = has_bias; c->dtype = dtype;
    int oh = height + 2 * pad - kernel + 1, ow = width + 2 * pad - kernel + 1;
    dnnl_dims_t src = {batch, cin, height, width}, wei = {cout, cin, kernel, kernel}, bias = {cout}, dst = {batch, cout, oh, ow};
    c->strides[0] = c->strides[1] = 1;
    c->pads[0] = c->pads[1] = pad;
    dnnl_data_type_t lo = dtype == PD_DNNL_BF16 ? dnnl_bf16 : dnnl_f32;
    dnnl_format_tag_t src_tag = activation_tag(src_block), dst_tag = activation_tag(dst_block);
    if (src_tag == dnnl_format_tag_undef || dst_tag == dnnl_format_tag_undef || cin % src_block || cout % dst_block) {
        if (err && errlen) snprintf(err, errlen, "oneDNN: unsupported activation blocks %d -> %d for %d -> %d channels",
                                    src_block, dst_block, cin, cout);
        goto fail;
    }
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_tag(&c->src_user, 4, src, dnnl_f32, src_tag), "md");
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_tag(&c->wei_user, 4, wei, dnnl_f32, dnnl_oihw), "md");
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_tag(&c->bias_user, 1, bias, dnnl_f32, dnnl_x), "md");
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_tag(&c->dst_user, 4, dst, dnnl_f32, dst_tag), "md");
    // Low-precision operands; the output, bias and all gradients that leave the op stay f32.
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_tag(&c->src_any, 4, src, lo, dnnl_format_tag_any), "md");
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_tag(&c->wei_any, 4, wei, lo, dnnl_format_tag_any), "md");
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_tag(&c->bias_any, 1, bias, dnnl_f32, dnnl_format_tag_any), "md");
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_tag(&c->dst_any, 4, dst, dnnl_f32, dnnl_format_tag_any), "md");
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_tag(&c->diff_dst_any, 4, dst, lo, dnnl_format_tag_any), "md");
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_tag(&c->diff_src_any, 4, src, dnnl_f32, dnnl_format_tag_any), "md");
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_tag(&c->diff_wei_any, 4, wei, dnnl_f32, dnnl_format_tag_any), "md");

    // Winograd F(4x4, 3x3) where oneDNN has it (fp32 3x3 on AVX-512; it pads odd channel counts):
    // 2.25x fewer multiplications than direct, outputs within ~3e-6 relative of it; else direct.
    c->alg = winograd && kernel == 3 && dtype == PD_DNNL_F32 ? dnnl_convolution_winograd : dnnl_convolution_direct;
    if (forward_op(c, inference, err, errlen)) {
        if (c->alg == dnnl_convolution_direct) goto fail;
        c->alg = dnnl_convolution_direct;
        if (forward_op(c, inference, err, errlen)) goto fail;
    }
    if (op_port(&c->fwd, DNNL_ARG_SRC, 0, &c->src_user, dnnl_query_src_md, 0, err, errlen)) goto fail;
    if (op_port(&c->fwd, DNNL_ARG_WEIGHTS, 0, &c->wei_user, dnnl_query_weights_md, 0, err, errlen)) goto fail;
    if (has_bias && op_port(&c->fwd, DNNL_ARG_BIAS, 0, &c->bias_user, dnnl_query_weights_md, 1, err, errlen)) goto fail;
    if (op_port(&c->fwd, DNNL_ARG_DST, 1, &c->dst_user, dnnl_query_dst_md, 0, err, errlen)) goto fail;
    return c;
fail:
    pd_dnnl_conv_destroy(c);
    return NULL;
}

/// Creates the backward primitives on first use (sampling never needs them).
static int ensure_bwd_data(pd_dnnl_conv *c, char *err, size_t errlen) {
    if (c->have_bwd_data) return 0;
    dnnl_convolution_desc_t d;
    CHECK(pd_dnnl.dnnl_convolution_backward_data_desc_init(&d, c->alg, &c->diff_src_any, &c->wei_any,
          &c->diff_dst_any, c->strides, c->pads, c->pads), "convolution backward-data desc");
    if (op_create(&c->bwd_data, &d, c->fwd.pd, err, errlen)) goto fail;
    if (op_port(&c->bwd_data, DNNL_ARG_WEIGHTS, 0, &c->wei_user, dnnl_query_weights_md, 0, err, errlen)) goto fail;
    if (op_port(&c->bwd_data, DNNL_ARG_DIFF_DST, 0, &c->dst_user, dnnl_query_diff_dst_md, 0, err, errlen)) goto fail;
    if (op_port(&c->bwd_data, DNNL_ARG_DIFF_SRC, 1, &c->src_user, dnnl_query_diff_src_md, 0, err, errlen)) goto fail;
    c->have_bwd_data = 1;
    return 0;
fail:
    op_destroy(&c->bwd_data);
    return -1;
}

static int ensure_bwd_weights(pd_dnnl_conv *c, char *err, size_t errlen) {
    if (c->have_bwd_weights) return 0;
    dnnl_convolution_desc_t d;
    CHECK(pd_dnnl.dnnl_convolution_backward_weights_desc_init(&d, c->alg, &c->src_any, &c->diff_wei_any,
          c->has_bias ? &c->bias_any : NULL, &c->diff_dst_any, c->strides, c->pads, c->pads), "convolution backward-weights desc");
    if (op_create(&c->bwd_weights, &d, c->fwd.pd, err, errlen)) goto fail;
    if (op_port(&c->bwd_weights, DNNL_ARG_SRC, 0, &c->src_user, dnnl_query_src_md, 0, err, errlen)) goto fail;
    if (op_port(&c->bwd_weights, DNNL_ARG_DIFF_DST, 0, &c->dst_user, dnnl_query_diff_dst_md, 0, err, errlen)) goto fail;
    if (op_port(&c->bwd_weights, DNNL_ARG_DIFF_WEIGHTS, 1, &c->wei_user, dnnl_query_diff_weights_md, 0, err, errlen)) goto fail;
    if (c->has_bias && op_port(&c->bwd_weights, DNNL_ARG_DIFF_BIAS, 1, &c->bias_user, dnnl_query_diff_weights_md, 1, err, errlen)) goto fail;
    c->have_bwd_weights = 1;
    return 0;
fail:
    op_destroy(&c->bwd_weights);
    return -1;
}

void pd_dnnl_conv_destroy(pd_dnnl_conv *c) {
    if (!c) return;
    op_destroy(&c->fwd); op_destroy(&c->bwd_data); op_destroy(&c->bwd_weights);
    free(c);
}

int pd_dnnl_conv_activation_block(const pd_dnnl_conv *c) {
    const dnnl_memory_desc_t *md = pd_dnnl.dnnl_primitive_desc_query_md(c->fwd.pd, dnnl_query_src_md, 0);
    if (!md || md->format_kind != dnnl_blocked) return 1;
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    return b->inner_nblks == 1 && b->inner_idxs[0] == 1 ? (int)b->inner_blks[0] : 1;
}

const char *pd_dnnl_conv_impl(const pd_dnnl_conv *c, int which) {
    const op *o = which == 0 ? &c->fwd : which == 1 ? &c->bwd_data : &c->bwd_weights;
    if (!o->pd) return NULL;
    const char *s = NULL;
    if (pd_dnnl.dnnl_primitive_desc_query(o->pd, dnnl_query_impl_info_str, 0, &s) != dnnl_success) return NULL;
    return s;
}

int pd_dnnl_conv_forward(pd_dnnl_conv *c, const float *x, const float *w, const float *b, float *y) {
    if (c->has_bias && !b) return -1;
    void *buf[4] = {(void *)x, (void *)w, c->has_bias ? (void *)b : y, y};
    return op_execute(&c->fwd, buf);
}

int pd_dnnl_conv_backward_data(pd_dnnl_conv *c, const float *w, const float *dy, float *dx) {
    if (ensure_bwd_data(c, NULL, 0)) return -1;
    void *buf[3] = {(void *)w, (void *)dy, dx};
    return op_execute(&c->bwd_data, buf);
}

int pd_dnnl_conv_backward_weights(pd_dnnl_conv *c, const float *x, const float *dy, float *dw, float *db) {
    if (c->has_bias && !db) return -1;
    if (ensure_bwd_weights(c, NULL, 0)) return -1;
    void *buf[4] = {(void *)x, (void *)dy, dw, db};
    return op_execute(&c->bwd_weights, buf);
}
#else
pd_dnnl_conv *pd_dnnl_conv_create(int batch, int cin, int cout, int height, int width, int kernel, int pad,
                                  int src_block, int dst_block, int has_bias, int dtype, int inference, int winograd,
                                  char *err, size_t errlen) {
    (void)winograd; (void)batch; (void)cin; (void)cout; (void)height; (void)width; (void)kernel; (void)pad; (void)src_block; (void)dst_block;
    (void)has_bias; (void)dtype; (void)inference;
    if (err && errlen) snprintf(err, errlen, "pdpipe was built without oneDNN headers (install libdnnl-dev)");
    return NULL;
}
void pd_dnnl_conv_destroy(pd_dnnl_conv *c) { (void)c; }

const char *pd_dnnl_conv_impl(const pd_dnnl_conv *c, int which) { (void)c; (void)which; return NULL; }
int pd_dnnl_conv_activation_block(const pd_dnnl_conv *c) { (void)c; return 1; }
int pd_dnnl_conv_forward(pd_dnnl_conv *c, const float *x, const float *w, const float *b, float *y) {
    (void)c; (void)x; (void)w; (void)b; (void)y; return -1;
}
int pd_dnnl_conv_backward_data(pd_dnnl_conv *c, const float *w, const float *dy, float *dx) {
    (void)c; (void)w; (void)dy; (void)dx; return -1;
}
int pd_dnnl_conv_backward_weights(pd_dnnl_conv *c, const float *x, const float *dy, float *dw, float *db) {
    (void)c; (void)x; (void)dy; (void)dw; (void)db; return -1;
}
#endif
