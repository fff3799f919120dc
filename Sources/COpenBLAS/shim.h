// OpenBLAS (Debian libopenblas-dev): CBLAS, the LAPACK routines the metrics need,
// and the dynamic-arch hooks used for kernel selection.
#include <cblas.h>

void ssyevd_(const char *jobz, const char *uplo, const int *n, float *a, const int *lda,
             float *w, float *work, const int *lwork, int *iwork, const int *liwork, int *info);
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
             double *w, double *work, const int *lwork, int *iwork, const int *liwork, int *info);
void gotoblas_dynamic_init(void);
void gotoblas_dynamic_quit(void);
// Thread-server controls (exported by OpenBLAS's pthread build): re-read OPENBLAS_* variables,
// stop the worker threads (they restart on the next call, reading the new settings).
void openblas_read_env(void);
int openblas_thread_timeout(void);
int blas_thread_shutdown_(void);
