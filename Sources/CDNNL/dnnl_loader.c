#include "CDNNL.h"
#include "dnnl_api.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#if PD_HAVE_DNNL
struct pd_dnnl_api pd_dnnl;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_status = -1;
static char load_error[256];

static void load(void) {
    // Passive: idle OpenMP workers sleep at once instead of spinning for milliseconds, so they
    // do not take the cores from OpenBLAS's threads and the engine's own loops between calls.
    // libgomp reads the variable when it is loaded (with libdnnl, just below), so it is removed
    // again afterwards: child processes (shell stages) see the user's environment unchanged.
    int ours = getenv("OMP_WAIT_POLICY") == NULL;
    if (ours) setenv("OMP_WAIT_POLICY", "passive", 1);
    void *h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (ours) unsetenv("OMP_WAIT_POLICY");
    if (!h) { snprintf(load_error, sizeof load_error, "%s", dlerror()); return; }
#define PD_DNNL_RESOLVE(name) \
    if (!(pd_dnnl.name = (__typeof__(&name))dlsym(h, #name))) { \
        snprintf(load_error, sizeof load_error, "libdnnl.so.2 lacks %s", #name); return; }
    PD_DNNL_FUNCTIONS(PD_DNNL_RESOLVE)
#undef PD_DNNL_RESOLVE
    // libgomp comes with libdnnl (its OpenMP runtime); dlsym on the handle searches its dependencies.
    pd_dnnl.omp_set_num_threads = (void (*)(int))dlsym(h, "omp_set_num_threads");
    if (pd_dnnl.dnnl_engine_create(&pd_dnnl.engine, dnnl_cpu, 0) != dnnl_success ||
        pd_dnnl.dnnl_stream_create(&pd_dnnl.stream, pd_dnnl.engine, dnnl_stream_default_flags) != dnnl_success) {
        snprintf(load_error, sizeof load_error, "oneDNN: cannot create the CPU engine or stream");
        return;
    }
    load_status = 0;
}

int pd_dnnl_load(char *err, size_t errlen) {
    pthread_once(&once, load);
    if (load_status != 0 && err && errlen) snprintf(err, errlen, "%s", load_error);
    return load_status;
}

int pd_dnnl_loaded(void) { return load_status == 0; }

void pd_dnnl_version(int *major, int *minor, int *patch) {
    *major = *minor = *patch = 0;
    if (load_status != 0) return;
    const dnnl_version_t *v = pd_dnnl.dnnl_version();
    *major = v->major; *minor = v->minor; *patch = v->patch;
}

int pd_dnnl_effective_isa(void) { return load_status == 0 ? (int)pd_dnnl.dnnl_get_effective_cpu_isa() : -1; }

void pd_dnnl_set_threads(int n) {
    if (load_status == 0 && pd_dnnl.omp_set_num_threads) pd_dnnl.omp_set_num_threads(n);
}
#else
int pd_dnnl_load(char *err, size_t errlen) {
    if (err && errlen) snprintf(err, errlen, "pdpipe was built without oneDNN headers (install libdnnl-dev)");
    return -1;
}
int pd_dnnl_loaded(void) { return 0; }
void pd_dnnl_version(int *major, int *minor, int *patch) { *major = *minor = *patch = 0; }
int pd_dnnl_effective_isa(void) { return -1; }
void pd_dnnl_set_threads(int n) { (void)n; }
#endif
