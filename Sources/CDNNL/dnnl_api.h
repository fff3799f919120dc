// Internal: the oneDNN entry points the engine uses, resolved with dlsym by dnnl_loader.c.
#ifndef PD_DNNL_API_H
#define PD_DNNL_API_H
#if __has_include(<oneapi/dnnl/dnnl.h>)
#define PD_HAVE_DNNL 1
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>

#define PD_DNNL_FUNCTIONS(X) \
    X(dnnl_version) X(dnnl_get_effective_cpu_isa) X(dnnl_engine_create) X(dnnl_stream_create) \
    X(dnnl_stream_wait) X(dnnl_memory_desc_init_by_tag) X(dnnl_memory_desc_equal) X(dnnl_memory_desc_get_size) \
    X(dnnl_memory_create) X(dnnl_memory_destroy) X(dnnl_memory_set_data_handle) \
    X(dnnl_convolution_forward_desc_init) X(dnnl_convolution_backward_data_desc_init) \
    X(dnnl_convolution_backward_weights_desc_init) X(dnnl_eltwise_forward_desc_init) \
    X(dnnl_eltwise_backward_desc_init) X(dnnl_matmul_desc_init) X(dnnl_softmax_forward_desc_init) \
    X(dnnl_memory_desc_init_by_strides) X(dnnl_primitive_attr_create) X(dnnl_primitive_attr_destroy) \
    X(dnnl_primitive_attr_set_output_scales) X(dnnl_reorder_primitive_desc_create) \
    X(dnnl_primitive_desc_create) X(dnnl_primitive_desc_destroy) X(dnnl_primitive_desc_query) \
    X(dnnl_primitive_desc_query_md) X(dnnl_primitive_create) X(dnnl_primitive_destroy) X(dnnl_primitive_execute)

struct pd_dnnl_api {
#define PD_DNNL_FIELD(name) __typeof__(&name) name;
    PD_DNNL_FUNCTIONS(PD_DNNL_FIELD)
#undef PD_DNNL_FIELD
    void (*omp_set_num_threads)(int);
    dnnl_engine_t engine;
    dnnl_stream_t stream;
};
/// Valid after a successful pd_dnnl_load.
extern struct pd_dnnl_api pd_dnnl;

/// In a function with `char *err, size_t errlen` and a `fail:` label: on a oneDNN error, write
/// what failed into err and jump to fail.
#define CHECK(expr, what) do { dnnl_status_t s_ = (expr); if (s_ != dnnl_success) { \
    if (err && errlen) snprintf(err, errlen, "oneDNN: %s failed (status %d)", what, (int)s_); goto fail; } } while (0)
#else
#define PD_HAVE_DNNL 0
#endif
#endif
