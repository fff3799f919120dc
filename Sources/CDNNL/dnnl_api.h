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
    X(dnnl_primitive_attr_set_output_scales) X(dnnl_primitive_attr_set_scratchpad_mode) X(dnnl_reorder_primitive_desc_create) \
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

// Scratchpads. By default oneDNN keeps a primitive's scratchpad in thread-local storage of the
// thread that created the primitive; executed on another thread (the pipeline runs stages on a
// pool of threads and caches primitives across them), the primitive then reads a null or too
// small buffer: Winograd convolutions, which always need one, crash. So every primitive here is
// created in user-scratchpad mode and executed with a buffer of the executing thread.

/// The scratchpad of one primitive: its size and a memory object bound at each execution.
typedef struct { dnnl_memory_t mem; size_t size; } pd_scratch;

/// dnnl_primitive_desc_create in user-scratchpad mode (`attr` may be NULL; it is modified).
dnnl_status_t pd_desc_create(dnnl_primitive_desc_t *pd, const void *desc, dnnl_primitive_attr_t attr,
                             const_dnnl_primitive_desc_t hint);
/// A reorder between two f32/bf16 layouts in user-scratchpad mode.
dnnl_status_t pd_reorder_desc_create(dnnl_primitive_desc_t *pd, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to);
/// Reads the primitive descriptor's scratchpad size and makes its memory object.
dnnl_status_t pd_scratch_init(pd_scratch *s, const_dnnl_primitive_desc_t pd);
void pd_scratch_destroy(pd_scratch *s);
/// Executes `prim` with `args` plus its scratchpad (a buffer of the calling thread).
dnnl_status_t pd_execute(dnnl_primitive_t prim, pd_scratch *s, int count, const dnnl_exec_arg_t *args);
#else
#define PD_HAVE_DNNL 0
#endif
#endif
