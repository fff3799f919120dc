// oneDNN (Debian libdnnl2 2.6) for the engine, loaded at run time with dlopen.
//
// Why dlopen and not `link "dnnl"`: (1) a machine without libdnnl2 must still run pdpipe on
// OpenBLAS (the backend falls back), (2) libgomp reads OMP_WAIT_POLICY once, when it is loaded,
// so the engine must set passive waiting before the library (and libgomp with it) is loaded.
// The header is our own API; oneDNN's headers are needed only to compile the .c files, and a
// build without them yields a library that reports "not built with oneDNN".
#ifndef CDNNL_H
#define CDNNL_H
#include <stddef.h>

/// Loads libdnnl.so.2 (once), with OMP_WAIT_POLICY=passive for libgomp unless the user set it
/// (the variable is set only while the library loads).
/// Returns 0 on success; otherwise writes a message into err.
int pd_dnnl_load(char *err, size_t errlen);
/// Whether pd_dnnl_load succeeded.
int pd_dnnl_loaded(void);
/// Library version (0s before a successful load).
void pd_dnnl_version(int *major, int *minor, int *patch);
/// dnnl_get_effective_cpu_isa() as its integer value (see dnnl_cpu_isa_t), -1 if not loaded.
int pd_dnnl_effective_isa(void);
/// Sets the OpenMP thread count of the calling thread (oneDNN's CPU runtime here is OpenMP).
void pd_dnnl_set_threads(int n);

/// Data type of a convolution's src/weights/diff_dst inside oneDNN. Accumulation, bias, the
/// weight and bias gradients and the user-facing buffers are always f32.
enum { PD_DNNL_F32 = 0, PD_DNNL_BF16 = 1 };

/// One convolution geometry (stride 1, square kernel, symmetric padding) with its primitives:
/// forward at creation, backward-data and backward-weights on first use. User buffers are f32:
/// weights OIHW, activations NCHW (block 1) or in channel blocks of 8 or 16 (nChw8c, nChw16c:
/// `src_block` for the input and its gradient, `dst_block` for the output and its gradient).
/// oneDNN picks its own layouts (format `any`) and the wrapper reorders where they differ.
/// `winograd`: fp32 3x3 convolutions run as Winograd F(4x4, 3x3) in all three directions where
/// oneDNN implements it on this CPU (AVX-512), direct otherwise.
typedef struct pd_dnnl_conv pd_dnnl_conv;

pd_dnnl_conv *pd_dnnl_conv_create(int batch, int cin, int cout, int height, int width, int kernel, int pad,
                                  int src_block, int dst_block, int has_bias, int dtype, int inference, int winograd,
                                  char *err, size_t errlen);
void pd_dnnl_conv_destroy(pd_dnnl_conv *c);
/// The channel block of the forward primitive's own input layout (8 for nChw8c), 1 if not blocked.
int pd_dnnl_conv_activation_block(const pd_dnnl_conv *c);
/// Implementation names (e.g. "jit:avx2"); which: 0 forward, 1 backward-data, 2 backward-weights
/// (NULL if that primitive does not exist yet).
const char *pd_dnnl_conv_impl(const pd_dnnl_conv *c, int which);

/// y = conv(x, w) + b (b may be NULL only if created without bias). Returns 0 on success.
int pd_dnnl_conv_forward(pd_dnnl_conv *c, const float *x, const float *w, const float *b, float *y);
/// dx = conv_transpose(dy, w) (overwritten).
int pd_dnnl_conv_backward_data(pd_dnnl_conv *c, const float *w, const float *dy, float *dx);
/// dw = dL/dw, db = dL/db (overwritten; db may be NULL only if created without bias).
int pd_dnnl_conv_backward_weights(pd_dnnl_conv *c, const float *x, const float *dy, float *dw, float *db);


/// An elementwise op over `count` contiguous f32 values (oneDNN's JIT eltwise kernels):
/// swish x / (1 + exp(-x)), i.e. SiLU.
typedef struct pd_dnnl_eltwise pd_dnnl_eltwise;
enum { PD_DNNL_SWISH = 1 };

pd_dnnl_eltwise *pd_dnnl_eltwise_create(int kind, long count, char *err, size_t errlen);
void pd_dnnl_eltwise_destroy(pd_dnnl_eltwise *e);
/// y = f(x) (x == y allowed). Returns 0 on success.
int pd_dnnl_eltwise_forward(pd_dnnl_eltwise *e, const float *x, float *y);
/// dx = f'(x) * dy from the input x (the backward primitive is made on first use).
int pd_dnnl_eltwise_backward(pd_dnnl_eltwise *e, const float *x, const float *dy, float *dx);

/// Softmax of each row of a plain f32 [rows, cols] buffer, in place.
typedef struct pd_dnnl_softmax pd_dnnl_softmax;

pd_dnnl_softmax *pd_dnnl_softmax_create(long rows, long cols, char *err, size_t errlen);
void pd_dnnl_softmax_destroy(pd_dnnl_softmax *s);
/// m[r, :] = exp(m[r, :] - max) / sum(exp(m[r, :] - max)). Returns 0 on success.
int pd_dnnl_softmax_forward(pd_dnnl_softmax *s, float *m);

/// A batched matrix product over plain f32 buffers: for b in 0..<batch,
/// C_b = alpha * op(A_b) * op(B_b) (C overwritten), row-major with leading dimensions
/// lda/ldb/ldc, item b's matrices at a + b*stride_a, b + b*stride_b, c + b*stride_c; op
/// transposes when trans_a / trans_b. Strides are read in place (no reorders); a stride_a or
/// stride_b of 0 uses one matrix for every item.
typedef struct pd_dnnl_matmul pd_dnnl_matmul;

pd_dnnl_matmul *pd_dnnl_matmul_create(long batch, long m, long n, long k, int trans_a, int trans_b,
                                      long lda, long ldb, long ldc, long stride_a, long stride_b, long stride_c,
                                      float alpha, char *err, size_t errlen);
void pd_dnnl_matmul_destroy(pd_dnnl_matmul *mm);
const char *pd_dnnl_matmul_impl(const pd_dnnl_matmul *mm);
int pd_dnnl_matmul_run(pd_dnnl_matmul *mm, const float *a, const float *b, float *c);

#endif
