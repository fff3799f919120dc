// Elementwise primitives over plain f32 buffers (no reorders: a 1-D buffer has one layout).
#include "CDNNL.h"
#include "dnnl_api.h"
#include <stdio.h>
#include <stdlib.h>

#if PD_HAVE_DNNL
struct pd_dnnl_eltwise {
    dnnl_alg_kind_t alg;
    dnnl_memory_desc_t md;
    dnnl_primitive_desc_t pd, bwd_pd;
    dnnl_primitive_t prim, bwd;
    dnnl_memory_t src, dst, diff_dst, diff_src;
    pd_scratch scratch, bwd_scratch;
};

pd_dnnl_eltwise *pd_dnnl_eltwise_create(int kind, long count, char *err, size_t errlen) {
    if (!pd_dnnl_loaded()) { if (err && errlen) snprintf(err, errlen, "oneDNN is not loaded"); return NULL; }
    if (kind != PD_DNNL_SWISH || count <= 0) {
        if (err && errlen) snprintf(err, errlen, "oneDNN: bad eltwise request");
        return NULL;
    }
    pd_dnnl_eltwise *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    dnnl_dims_t dims = {count};
    dnnl_eltwise_desc_t d;
    // swish(x) = x * sigmoid(alpha x); alpha 1 is SiLU.
    e->alg = dnnl_eltwise_swish;
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_tag(&e->md, 1, dims, dnnl_f32, dnnl_a), "md");
    CHECK(pd_dnnl.dnnl_eltwise_forward_desc_init(&d, dnnl_forward_training, e->alg, &e->md, 1.f, 0.f),
          "eltwise forward desc");
    CHECK(pd_desc_create(&e->pd, &d, NULL, NULL), "eltwise primitive descriptor");
    CHECK(pd_dnnl.dnnl_primitive_create(&e->prim, e->pd), "eltwise primitive");
    CHECK(pd_scratch_init(&e->scratch, e->pd), "eltwise scratchpad");
    CHECK(pd_dnnl.dnnl_memory_create(&e->src, &e->md, pd_dnnl.engine, DNNL_MEMORY_NONE), "memory");
    CHECK(pd_dnnl.dnnl_memory_create(&e->dst, &e->md, pd_dnnl.engine, DNNL_MEMORY_NONE), "memory");
    CHECK(pd_dnnl.dnnl_memory_create(&e->diff_dst, &e->md, pd_dnnl.engine, DNNL_MEMORY_NONE), "memory");
    CHECK(pd_dnnl.dnnl_memory_create(&e->diff_src, &e->md, pd_dnnl.engine, DNNL_MEMORY_NONE), "memory");
    return e;
fail:
    pd_dnnl_eltwise_destroy(e);
    return NULL;
}

void pd_dnnl_eltwise_destroy(pd_dnnl_eltwise *e) {
    if (!e) return;
    dnnl_memory_t m[4] = {e->src, e->dst, e->diff_dst, e->diff_src};
    for (int i = 0; i < 4; i++) if (m[i]) pd_dnnl.dnnl_memory_destroy(m[i]);
    pd_scratch_destroy(&e->scratch);
    pd_scratch_destroy(&e->bwd_scratch);
    if (e->bwd) pd_dnnl.dnnl_primitive_destroy(e->bwd);
    if (e->bwd_pd) pd_dnnl.dnnl_primitive_desc_destroy(e->bwd_pd);
    if (e->prim) pd_dnnl.dnnl_primitive_destroy(e->prim);
    if (e->pd) pd_dnnl.dnnl_primitive_desc_destroy(e->pd);
    free(e);
}

int pd_dnnl_eltwise_forward(pd_dnnl_eltwise *e, const float *x, float *y) {
    if (pd_dnnl.dnnl_memory_set_data_handle(e->src, (void *)x) != dnnl_success ||
        pd_dnnl.dnnl_memory_set_data_handle(e->dst, y) != dnnl_success) return -1;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_SRC, e->src}, {DNNL_ARG_DST, e->dst}};
    if (pd_execute(e->prim, &e->scratch, 2, args) != dnnl_success) return -1;
    return pd_dnnl.dnnl_stream_wait(pd_dnnl.stream) == dnnl_success ? 0 : -1;
}

/// The backward primitive, made on first use (sampling never needs it).
static int ensure_backward(pd_dnnl_eltwise *e) {
    if (e->bwd) return 0;
    char *err = NULL;
    size_t errlen = 0;
    dnnl_eltwise_desc_t d;
    CHECK(pd_dnnl.dnnl_eltwise_backward_desc_init(&d, e->alg, &e->md, &e->md, 1.f, 0.f), "eltwise backward desc");
    CHECK(pd_desc_create(&e->bwd_pd, &d, NULL, e->pd), "eltwise backward descriptor");
    CHECK(pd_dnnl.dnnl_primitive_create(&e->bwd, e->bwd_pd), "eltwise backward primitive");
    CHECK(pd_scratch_init(&e->bwd_scratch, e->bwd_pd), "eltwise backward scratchpad");
    return 0;
fail:
    return -1;
}

int pd_dnnl_eltwise_backward(pd_dnnl_eltwise *e, const float *x, const float *dy, float *dx) {
    if (ensure_backward(e)) return -1;
    if (pd_dnnl.dnnl_memory_set_data_handle(e->src, (void *)x) != dnnl_success ||
        pd_dnnl.dnnl_memory_set_data_handle(e->diff_dst, (void *)dy) != dnnl_success ||
        pd_dnnl.dnnl_memory_set_data_handle(e->diff_src, dx) != dnnl_success) return -1;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->src}, {DNNL_ARG_DIFF_DST, e->diff_dst}, {DNNL_ARG_DIFF_SRC, e->diff_src}};
    if (pd_execute(e->bwd, &e->bwd_scratch, 3, args) != dnnl_success) return -1;
    return pd_dnnl.dnnl_stream_wait(pd_dnnl.stream) == dnnl_success ? 0 : -1;
}
#else
pd_dnnl_eltwise *pd_dnnl_eltwise_create(int kind, long count, char *err, size_t errlen) {
    (void)kind; (void)count;
    if (err && errlen) snprintf(err, errlen, "pdpipe was built without oneDNN headers (install libdnnl-dev)");
    return NULL;
}
void pd_dnnl_eltwise_destroy(pd_dnnl_eltwise *e) { (void)e; }
int pd_dnnl_eltwise_forward(pd_dnnl_eltwise *e, const float *x, float *y) { (void)e; (void)x; (void)y; return -1; }
int pd_dnnl_eltwise_backward(pd_dnnl_eltwise *e, const float *x, const float *dy, float *dx) {
    (void)e; (void)x; (void)dy; (void)dx; return -1;
}
#endif
