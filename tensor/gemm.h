/*
 * gemm.h — kernel selection for the matrix product in tensor.h.
 *
 * tg_gemm_f32 is a cache-blocked GEMM in the style of GotoBLAS/BLIS: panels
 * of op(A) and op(B) are packed into contiguous, 64-byte aligned buffers and
 * a register-blocked micro-kernel computes one small tile of C at a time.
 * There are three float32 micro-kernels, chosen once at run time:
 *
 *     "avx512"   12 x 32 tile, AVX-512F intrinsics
 *     "avx2"      6 x 16 tile, AVX2 + FMA intrinsics
 *     "generic"   4 x 8 tile, portable C
 *
 * "auto" (the default) picks the widest one the CPU supports. Tests force
 * each kernel in turn to check them all:
 *
 *     if (tg_gemm_kernel_supported("avx2")) {
 *         tg_gemm_force_kernel("avx2");
 *         tg_gemm_f32(false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
 *     }
 *     tg_gemm_force_kernel("auto");
 *
 * float64 always uses one portable blocked path (it serves gradient checks).
 *
 * Threads: a float32 product of at least about 2^19 multiply-adds (M N K)
 * is shared out over tg_threads_get() threads (tensor/pool.h) by tiles of
 * C, each tile computed whole by one thread; smaller ones run on the
 * caller. float64 always runs on the caller.
 *
 * Determinism: for a given kernel, the order in which the K products of each
 * C element are summed depends only on (M, N, K, transA, transB), never on
 * pointers, alignment, earlier calls or the number of threads: results are
 * bitwise identical on 1 thread or many. Different kernels may round
 * differently from each other.
 *
 * Edge cases, as in BLAS: alpha == 0 or K == 0 reads neither A nor B and
 * sets C = beta * C (zeros when beta == 0, whatever C held). C must not
 * overlap A or B.
 *
 * Memory: pack buffers (64-byte aligned) are allocated at the kernel's full
 * block sizes, about 1 MiB per thread, by the first float32 call that uses
 * that many threads, and reused, so steady state allocates nothing. Calls
 * from several application threads at once are safe: one product uses the
 * pool, the others run on their own threads with per-thread buffers.
 */
#ifndef TG_GEMM_H
#define TG_GEMM_H

#include <stdbool.h>

#include "tensor/tensor.h"

/* Selects the float32 micro-kernel: "auto", "avx512", "avx2" or "generic".
 * Aborts if the name is unknown or the CPU cannot run that kernel. Not meant
 * to be called while another thread is inside tg_gemm_f32. */
void tg_gemm_force_kernel(const char *name);

/* Name of the kernel tg_gemm_f32 uses now ("avx512", "avx2" or "generic"). */
const char *tg_gemm_kernel_name(void);

/* True if `name` is a known kernel this CPU can run ("auto" always is). */
bool tg_gemm_kernel_supported(const char *name);

/* tg_gemm_f32 computed whole on the calling thread, for callers that share
 * work out over the pool themselves (a convolution's batch chunks). It packs
 * into scratch, tg_gemm_f32_scratch_bytes() bytes, 64-byte aligned (an
 * arena allocation is), so it never allocates. The sums are those of
 * tg_gemm_f32: each element of C depends only on K, transA, transB and the
 * kernel, so a product cut into column slices gives the same bits. */
size_t tg_gemm_f32_scratch_bytes(void);
void tg_gemm_f32_serial(void *scratch, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                        float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                        float beta, float *C, int64_t ldc);

/* Pre-packed products, for callers that lay an operand out themselves (a
 * convolution writes im2col straight into B's panels) or reuse one (a
 * weight packed once for many products). Panels are the current kernel's:
 * Ap holds op(A) (M, K) as ceil(M / R) panels of (K, R), R =
 * tg_gemm_f32_panel_rows(M) (the kernel's MR, or a shorter panel where that
 * divides M and MR does not): Ap[(i / R) K R + k R + i % R] = op(A)[i][k];
 * Bp holds B (K, N) as ceil(N / Q) panels of (K, Q), Q =
 * tg_gemm_f32_panel_cols(): Bp[(j / Q) K Q + k Q + j % Q] = B[k][j]; both
 * zero past M and N (Bp aligned to 64 bytes, or to a row of Q floats if
 * that is less). tg_gemm_f32_pack_a fills Ap
 * (ceil(M / R) R K floats) from A (row stride lda). tg_gemm_f32_prepacked
 * sets C (M, N, row stride ldc) = Ap @ Bp on the calling thread, with the
 * sums of tg_gemm_f32 (they depend on K and the kernel only). The kernel
 * must not change between packing and product. */
int tg_gemm_f32_panel_rows(int64_t M);
int tg_gemm_f32_panel_cols(void);
void tg_gemm_f32_pack_a(float *Ap, bool transA, int64_t M, int64_t K, const float *A, int64_t lda);
/* Columns [k0, k0 + kb) of A (M, K) into Ap's panels as tg_gemm_f32_pack_a
 * lays them out; A points at column k0 (row stride lda). Packing a matrix a
 * column block at a time gives the bytes of packing it whole: for an A
 * whose columns are scattered (a convolution's dy, image by image). */
void tg_gemm_f32_pack_a_cols(float *Ap, int64_t M, int64_t K, int64_t k0, int64_t kb, const float *A, int64_t lda);
void tg_gemm_f32_prepacked(int64_t M, int64_t N, int64_t K, const float *Ap, const float *Bp,
                           float *C, int64_t ldc);

#endif
