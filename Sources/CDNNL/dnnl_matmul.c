// Batched matmul primitives over strided plain f32 buffers (transposes and leading dimensions
// are expressed as strides, so oneDNN reads the engine's buffers in place).
#include "CDNNL.h"
#include "dnnl_api.h"
#include <stdio.h>
#include <stdlib.h>

#if PD_HAVE_DNNL
struct pd_dnnl_matmul {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst;
    pd_scratch scratch;
};

pd_dnnl_matmul *pd_dnnl_matmul_create(long batch, long m, long n, long k, int trans_a, int trans_b,
                                      long lda, long ldb, long ldc, long stride_a, long stride_b, long stride_c,
                                      float alpha, char *err, size_t errlen) {
    if (!pd_dnnl_loaded()) { if (err && errlen) snprintf(err, errlen, "oneDNN is not loaded"); return NULL; }
    pd_dnnl_matmul *mm = calloc(1, sizeof *mm);
    if (!mm) return NULL;
    dnnl_primitive_attr_t attr = NULL;
    // op(A) is [M, K]: element (m, k) sits at m*lda + k, or at k*lda + m when A is stored transposed.
    // A stride of 0 shares one matrix across the batch: oneDNN broadcasts a batch dimension of 1.
    dnnl_dims_t src_dims = {stride_a ? batch : 1, m, k}, wei_dims = {stride_b ? batch : 1, k, n}, dst_dims = {batch, m, n};
    dnnl_dims_t src_strides = {stride_a ? stride_a : m * k, trans_a ? 1 : lda, trans_a ? lda : 1};
    dnnl_dims_t wei_strides = {stride_b ? stride_b : k * n, trans_b ? 1 : ldb, trans_b ? ldb : 1};
    dnnl_dims_t dst_strides = {stride_c, ldc, 1};
    dnnl_memory_desc_t src_md, wei_md, dst_md;
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_strides(&src_md, 3, src_dims, dnnl_f32, src_strides), "md");
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_strides(&wei_md, 3, wei_dims, dnnl_f32, wei_strides), "md");
    CHECK(pd_dnnl.dnnl_memory_desc_init_by_strides(&dst_md, 3, dst_dims, dnnl_f32, dst_strides), "md");
    dnnl_matmul_desc_t d;
    CHECK(pd_dnnl.dnnl_matmul_desc_init(&d, &src_md, &wei_md, NULL, &dst_md), "matmul desc");
    CHECK(pd_dnnl.dnnl_primitive_attr_create(&attr), "attributes");
    if (alpha != 1.0f) CHECK(pd_dnnl.dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha), "output scale");
    CHECK(pd_desc_create(&mm->pd, &d, attr, NULL), "matmul primitive descriptor");
    CHECK(pd_dnnl.dnnl_primitive_create(&mm->prim, mm->pd), "matmul primitive");
    CHECK(pd_scratch_init(&mm->scratch, mm->pd), "matmul scratchpad");
    CHECK(pd_dnnl.dnnl_memory_create(&mm->src, &src_md, pd_dnnl.engine, DNNL_MEMORY_NONE), "memory");
    CHECK(pd_dnnl.dnnl_memory_create(&mm->wei, &wei_md, pd_dnnl.engine, DNNL_MEMORY_NONE), "memory");
    CHECK(pd_dnnl.dnnl_memory_create(&mm->dst, &dst_md, pd_dnnl.engine, DNNL_MEMORY_NONE), "memory");
    pd_dnnl.dnnl_primitive_attr_destroy(attr);
    return mm;
fail:
    if (attr) pd_dnnl.dnnl_primitive_attr_destroy(attr);
    pd_dnnl_matmul_destroy(mm);
    return NULL;
}

void pd_dnnl_matmul_destroy(pd_dnnl_matmul *mm) {
    if (!mm) return;
    pd_scratch_destroy(&mm->scratch);
    if (mm->src) pd_dnnl.dnnl_memory_destroy(mm->src);
    if (mm->wei) pd_dnnl.dnnl_memory_destroy(mm->wei);
    if (mm->dst) pd_dnnl.dnnl_memory_destroy(mm->dst);
    if (mm->prim) pd_dnnl.dnnl_primitive_destroy(mm->prim);
    if (mm->pd) pd_dnnl.dnnl_primitive_desc_destroy(mm->pd);
    free(mm);
}

const char *pd_dnnl_matmul_impl(const pd_dnnl_matmul *mm) {
    const char *s = NULL;
    if (pd_dnnl.dnnl_primitive_desc_query(mm->pd, dnnl_query_impl_info_str, 0, &s) != dnnl_success) return NULL;
    return s;
}

int pd_dnnl_matmul_run(pd_dnnl_matmul *mm, const float *a, const float *b, float *c) {
    if (pd_dnnl.dnnl_memory_set_data_handle(mm->src, (void *)a) != dnnl_success ||
        pd_dnnl.dnnl_memory_set_data_handle(mm->wei, (void *)b) != dnnl_success ||
        pd_dnnl.dnnl_memory_set_data_handle(mm->dst, c) != dnnl_success) return -1;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, mm->src}, {DNNL_ARG_WEIGHTS, mm->wei}, {DNNL_ARG_DST, mm->dst}};
    if (pd_execute(mm->prim, &mm->scratch, 3, args) != dnnl_success) return -1;
    return pd_dnnl.dnnl_stream_wait(pd_dnnl.stream) == dnnl_success ? 0 : -1;
}
#else
pd_dnnl_matmul *pd_dnnl_matmul_create(long batch, long m, long n, long k, int trans_a, int trans_b,
                                      long lda, long ldb, long ldc, long stride_a, long stride_b, long stride_c,
                                      float alpha, char *err, size_t errlen) {
    (void)batch; (void)m; (void)n; (void)k; (void)trans_a; (void)trans_b; (void)lda; (void)ldb; (void)ldc;
    (void)stride_a; (void)stride_b; (void)stride_c; (void)alpha;
    if (err && errlen) snprintf(err, errlen, "pdpipe was built without oneDNN headers (install libdnnl-dev)");
    return NULL;
}
void pd_dnnl_matmul_destroy(pd_dnnl_matmul *mm) { (void)mm; }
const char *pd_dnnl_matmul_impl(const pd_dnnl_matmul *mm) { (void)mm; return NULL; }
int pd_dnnl_matmul_run(pd_dnnl_matmul *mm, const float *a, const float *b, float *c) {
    (void)mm; (void)a; (void)b; (void)c; return -1;
}
#endif
