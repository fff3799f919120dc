// Row-wise softmax over a plain f32 [rows, cols] buffer, in place (oneDNN's vectorised kernel:
// attention's scores, where a scalar expf per element cost more than the products around it).
#include "CDNNL.h"
#include "dnnl_api.h"
#include <stdio.h>
#include <stdlib.h>

#if PD_HAVE_DNNL
struct pd_dnnl_softmax {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t data;
    pd_scratch scratch;
};

pd_dnnl_softmax *pd_dnnl_softmax_create(long rows, long cols, char *err, size_t errlen) {
    if (!pd_dnnl_loaded()) { if (err && errlen) snprintf(err, errlen, "oneDNN is not loaded"); return NULL; }
    if (rows <= 0 || cols <= 0) { if (err && errlen) snprintf(err, errlen, "oneDNN: bad softmax shape"); return NULL; }
    pd_dnnl_softmax *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    dnnl_dims_t dims = {rows, cols};
    dnnl_memory_desc_t md;
    dnnl_softmax_desc_t d;
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_tag(&md, 2, dims, dnnl_f32, dnnl_ab), "md");
    CHECK(pd_dnnl.dnnl_softmax_forward_desc_init(&d, dnnl_forward_inference, &md, 1), "softmax desc");
    CHECK(pd_desc_create(&s->pd, &d, NULL, NULL), "softmax primitive descriptor");
    CHECK(pd_dnnl.dnnl_primitive_create(&s->prim, s->pd), "softmax primitive");
    CHECK(pd_scratch_init(&s->scratch, s->pd), "softmax scratchpad");
    CHECK(pd_dnnl.dnnl_memory_create(&s->data, &md, pd_dnnl.engine, DNNL_MEMORY_NONE), "memory");
    return s;
fail:
    pd_dnnl_softmax_destroy(s);
    return NULL;
}

void pd_dnnl_softmax_destroy(pd_dnnl_softmax *s) {
    if (!s) return;
    pd_scratch_destroy(&s->scratch);
    if (s->data) pd_dnnl.dnnl_memory_destroy(s->data);
    if (s->prim) pd_dnnl.dnnl_primitive_destroy(s->prim);
    if (s->pd) pd_dnnl.dnnl_primitive_desc_destroy(s->pd);
    free(s);
}

int pd_dnnl_softmax_forward(pd_dnnl_softmax *s, float *m) {
    if (pd_dnnl.dnnl_memory_set_data_handle(s->data, m) != dnnl_success) return -1;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_SRC, s->data}, {DNNL_ARG_DST, s->data}};
    if (pd_execute(s->prim, &s->scratch, 2, args) != dnnl_success) return -1;
    return pd_dnnl.dnnl_stream_wait(pd_dnnl.stream) == dnnl_success ? 0 : -1;
}
#else
pd_dnnl_softmax *pd_dnnl_softmax_create(long rows, long cols, char *err, size_t errlen) {
    (void)rows; (void)cols;
    if (err && errlen) snprintf(err, errlen, "pdpipe was built without oneDNN headers (install libdnnl-dev)");
    return NULL;
}
void pd_dnnl_softmax_destroy(pd_dnnl_softmax *s) { (void)s; }
int pd_dnnl_softmax_forward(pd_dnnl_softmax *s, float *m) { (void)s; (void)m; return -1; }
#endif
