#include "CEngineSupport.h"
#if defined(__GLIBC__)
#include <malloc.h>
void pd_keep_freed_memory(void) {
    mallopt(M_MMAP_THRESHOLD, 512 << 20);  // large buffers come from the heap, not fresh mmaps
    mallopt(M_TRIM_THRESHOLD, 1 << 30);    // and freed memory is kept for reuse
}
#else
void pd_keep_freed_memory(void) {}
#endif
