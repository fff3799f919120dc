// User-managed scratchpads for every primitive (why: dnnl_api.h), from one growable buffer per
// executing thread, freed when the thread exits.
#include "CDNNL.h"
#include "dnnl_api.h"
#include <pthread.h>
#include <stdlib.h>

#if PD_HAVE_DNNL
typedef struct { void *data; size_t capacity; } thread_buffer;

static pthread_key_t buffer_key;
static pthread_once_t buffer_once = PTHREAD_ONCE_INIT;

static void free_buffer(void *p) {
    thread_buffer *b = p;
    free(b->data);
    free(b);
}

static void make_key(void) { pthread_key_create(&buffer_key, free_buffer); }

/// The calling thread's buffer of at least `size` bytes (64-byte aligned), NULL if out of memory.
static void *thread_scratch(size_t size) {
    pthread_once(&buffer_once, make_key);
    thread_buffer *b = pthread_getspecific(buffer_key);
    if (!b) {
        if (!(b = calloc(1, sizeof *b))) return NULL;
        pthread_setspecific(buffer_key, b);
    }
    if (b->capacity < size) {
        size_t rounded = (size + 63) & ~(size_t)63;
        free(b->data);
        b->data = aligned_alloc(64, rounded);
        b->capacity = b->data ? rounded : 0;
    }
    return b->data;
}

dnnl_status_t pd_desc_create(dnnl_primitive_desc_t *pd, const void *desc, dnnl_primitive_attr_t attr,
                             const_dnnl_primitive_desc_t hint) {
    dnnl_primitive_attr_t own = NULL;
    dnnl_status_t s = dnnl_success;
    if (!attr && (s = pd_dnnl.dnnl_primitive_attr_create(&own)) != dnnl_success) return s;
    dnnl_primitive_attr_t a = attr ? attr : own;
    if ((s = pd_dnnl.dnnl_primitive_attr_set_scratchpad_mode(a, dnnl_scratchpad_mode_user)) == dnnl_success)
        s = pd_dnnl.dnnl_primitive_desc_create(pd, desc, a, pd_dnnl.engine, hint);
    if (own) pd_dnnl.dnnl_primitive_attr_destroy(own);
    return s;
}

dnnl_status_t pd_reorder_desc_create(dnnl_primitive_desc_t *pd, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to) {
    dnnl_primitive_attr_t attr;
    dnnl_status_t s = pd_dnnl.dnnl_primitive_attr_create(&attr);
    if (s != dnnl_success) return s;
    if ((s = pd_dnnl.dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)) == dnnl_success)
        s = pd_dnnl.dnnl_reorder_primitive_desc_create(pd, from, pd_dnnl.engine, to, pd_dnnl.engine, attr);
    pd_dnnl.dnnl_primitive_attr_destroy(attr);
    return s;
}

dnnl_status_t pd_scratch_init(pd_scratch *s, const_dnnl_primitive_desc_t pd) {
    s->mem = NULL;
    s->size = 0;
    const dnnl_memory_desc_t *md = pd_dnnl.dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (!md || (s->size = pd_dnnl.dnnl_memory_desc_get_size(md)) == 0) return dnnl_success;
    return pd_dnnl.dnnl_memory_create(&s->mem, md, pd_dnnl.engine, DNNL_MEMORY_NONE);
}

void pd_scratch_destroy(pd_scratch *s) {
    if (s->mem) pd_dnnl.dnnl_memory_destroy(s->mem);
    s->mem = NULL;
    s->size = 0;
}

dnnl_status_t pd_execute(dnnl_primitive_t prim, pd_scratch *s, int count, const dnnl_exec_arg_t *args) {
    if (!s->mem) return pd_dnnl.dnnl_primitive_execute(prim, pd_dnnl.stream, count, args);
    void *buffer = thread_scratch(s->size);
    if (!buffer) return dnnl_out_of_memory;
    dnnl_status_t st = pd_dnnl.dnnl_memory_set_data_handle(s->mem, buffer);
    if (st != dnnl_success) return st;
    dnnl_exec_arg_t all[8];
    if (count > 7) return dnnl_invalid_arguments;
    for (int i = 0; i < count; i++) all[i] = args[i];
    all[count] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, s->mem};
    // The CPU stream runs primitives synchronously: the buffer is free again when this returns.
    return pd_dnnl.dnnl_primitive_execute(prim, pd_dnnl.stream, count + 1, all);
}
#endif
