/*
 * gemm.c — matrix product C = alpha * op(A) @ op(B) + beta * C, row-major.
 *
 * Letters used throughout:
 *   M, N, K   op(A) is (M, K), op(B) is (K, N), C is (M, N)
 *   MR, NR    micro-tile: the micro-kernel computes an (MR, NR) tile of C
 *             held entirely in vector registers
 *   MC, KC, NC  cache blocks: op(A) is cut into (MC, KC) blocks, op(B) into
 *             (KC, NC) blocks
 *
 * float32 follows GotoBLAS / BLIS (Goto & van de Geijn 2008; Van Zee & van
 * de Geijn 2015). Five loops around a micro-kernel:
 *
 *   for jc in N by NC:                          C column block
 *     for pc in K by KC:                        rank-KC update
 *       pack op(B)[pc:, jc:] -> Bp (KC, NC)     as NC/NR panels of (KC, NR)
 *       for ic in M by MC:
 *         pack op(A)[ic:, pc:] -> Ap (MC, KC)   as MC/MR panels of (KC, MR)
 *         for ir in MC by MR:                   Ap panel stays in L1
 *           for jr in NC by NR:                 Bp panels stream from L2
 *             C[ic+ir:, jc+jr:] (MR, NR) += Ap panel @ Bp panel
 *
 * Packing reads op(A) and op(B) through their transposes directly, so the
 * four (transA, transB) variants differ only in the packing routines. Panels
 * are zero-padded to full MR / NR, so the micro-kernel always runs a full
 * tile and only its final write to C is clipped to the (m, n) valid corner.
 *
 * A narrow C (N = 20 against NR = 32) would spend most of each tile on that
 * padding; when the tiles fit C^T clearly better, the same loops compute
 * C^T = op(B)^T @ op(A)^T and write each tile back transposed.
 *
 * Threads share out the tiles of C (see "Threads" below): each tile is
 * computed whole, every K block, by one thread running these loops on its
 * slice of C.
 *
 * Summation order: C[i][j] = sum over K blocks, in order, of the block's
 * products summed k = 0, 1, ... by the micro-kernel. K is cut into equal
 * blocks that depend only on K, and a tile keeps its place in the (MR, NR)
 * grid whichever thread computes it, so the result depends only on the
 * shapes (and on the kernel chosen), not on the number of threads.
 *
 * float64 is used for gradient checks, so it takes a simpler blocked path:
 * pack a (KC, NC) block of op(B) row-major, then for each row of op(A)
 * accumulate a row of C in a contiguous buffer.
 */
#include "tensor/gemm.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/pool.h"

/* x86: AVX2 / AVX-512 kernels behind target attributes. SSE2 is part of the
 * x86-64 baseline, so packing uses it without any run-time check. */
#if defined(__x86_64__) || defined(__i386__)
#define TG_GEMM_X86 1
#include <immintrin.h>
#else
#define TG_GEMM_X86 0
#endif
#if defined(__x86_64__) || (defined(__i386__) && defined(__SSE2__))
#define TG_GEMM_SSE2 1
#else
#define TG_GEMM_SSE2 0
#endif

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

/* Cuts n into the fewest pieces of at most max_block, of equal size rounded
 * up to a multiple of unit (the last piece takes the remainder). Equal pieces
 * avoid a thin last block, e.g. K = 784 with KC = 512 gives 392 + 392
 * instead of 512 + 272. */
static int64_t even_block(int64_t n, int64_t max_block, int64_t unit)
{
    int64_t pieces = ceil_div(n, max_block);
    return min64(max_block, round_up(ceil_div(n, pieces), unit));
}

/* ------------------------------------------------------------------------ */
/* Pack buffers. A buffer is sized for a kernel's largest blocks the first
 * time it is used and kept, so calls in steady state never allocate.
 *
 * A float32 product holds `gemm_lock` while it runs and gives the r-th range
 * it starts the buffers of slot r, whatever thread runs that range (a small
 * product, run whole on the caller, uses slot 0). So a first call on T
 * threads allocates all that later calls on up to T threads need, however
 * the pool happens to share the ranges out. A product started while another
 * thread's holds the lock runs on its own thread with that thread's
 * buffers, as float64 always does; a thread-specific key frees those when
 * the thread exits (the main thread's stay reachable until the process
 * ends). */

typedef struct {
    void *p;
    size_t cap;  /* bytes */
} pack_buf;

typedef struct {
    pack_buf a, b, c;
    bool registered;  /* with pack_key, for the destructor */
} pack_bufs;

static atomic_flag gemm_lock = ATOMIC_FLAG_INIT;
static pack_bufs slot_pack[TG_MAX_THREADS];

static _Thread_local pack_bufs tls_pack;
static pthread_key_t pack_key;
static pthread_once_t pack_key_once = PTHREAD_ONCE_INIT;

static void pack_bufs_free(void *p)
{
    pack_bufs *pb = p;
    free(pb->a.p);
    free(pb->b.p);
    free(pb->c.p);
    *pb = (pack_bufs){0};
}

static void pack_key_create(void)
{
    TG_CHECK(pthread_key_create(&pack_key, pack_bufs_free) == 0,
             "tg_gemm: cannot create a thread-specific key");
}

/* The calling thread's buffers. */
static pack_bufs *thread_pack_bufs(void)
{
    pack_bufs *pb = &tls_pack;
    if (!pb->registered) {
        pthread_once(&pack_key_once, pack_key_create);
        pthread_setspecific(pack_key, pb);
        pb->registered = true;
    }
    return pb;
}

static void *pack_buf_reserve(pack_buf *pb, size_t bytes)
{
    if (bytes > pb->cap) {
        size_t cap = (size_t)round_up((int64_t)bytes, 64);
        free(pb->p);
        pb->p = aligned_alloc(64, cap);
        TG_CHECK(pb->p != NULL, "tg_gemm: cannot allocate a %zu-byte pack buffer", cap);
        pb->cap = cap;
    }
    return pb->p;
}

/* ------------------------------------------------------------------------ */
/* float32 packing.
 *
 * A packed panel is w consecutive rows (or columns) of op(A) (or op(B))
 * stored k-major: panel[k * w + r], (kb, w). Past the n valid ones it holds
 * zeros: they only reach tile entries that are never written to C, and
 * zeros keep them finite and fast. Depending on the transpose flag the
 * source is either already k-major (a strided copy) or r-major (a
 * transpose). On x86-64 both use SSE2; elsewhere plain loops. */

/* panel[k * w + r] = src[k * ld + r] for r < n, 0 for n <= r < w.
 *   src: (kb, >= n) with row stride ld;  panel: (kb, w) */
static void pack_panel_copy(const float *src, int64_t ld, int n, int w, int64_t kb,
                            float *restrict panel)
{
    for (int64_t k = 0; k < kb; k++, src += ld, panel += w) {
        int r = 0;
#if TG_GEMM_SSE2
        for (; r + 4 <= n; r += 4) _mm_storeu_ps(panel + r, _mm_loadu_ps(src + r));
#endif
        for (; r < n; r++) panel[r] = src[r];
        for (; r < w; r++) panel[r] = 0.0f;
    }
}

/* panel[k * w + r] = src[r * ld + k] for r < n, 0 for n <= r < w.
 *   src: (n, >= kb) with row stride ld;  panel: (kb, w)
 * Written in 4x4 blocks: 4 rows x 4 k are loaded and transposed in
 * registers, so both the reads and the writes are contiguous runs. */
#if TG_GEMM_X86
static bool cpu_has_avx512(void);

/* The (16, 16) block at src (row stride ld) transposed into dst (row
 * stride ldd): dst[j * ldd + i] = src[i * ld + j]. Three shuffle stages:
 * pairs of rows interleaved, then quads within each 128-bit lane, then
 * 128-bit lanes gathered across the four quads of rows. */
__attribute__((target("avx512f")))
static void transpose16_f32(const float *src, int64_t ld, float *dst, int64_t ldd)
{
    __m512 r[16], a[16], b[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * ld);
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        a[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
        a[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
    }
    /* b[4q + e], 128-bit lane L: rows 4q .. 4q+3 at column 4L + e */
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        b[4 * q] = _mm512_shuffle_ps(a[4 * q], a[4 * q + 2], 0x44);
        b[4 * q + 1] = _mm512_shuffle_ps(a[4 * q], a[4 * q + 2], 0xEE);
        b[4 * q + 2] = _mm512_shuffle_ps(a[4 * q + 1], a[4 * q + 3], 0x44);
        b[4 * q + 3] = _mm512_shuffle_ps(a[4 * q + 1], a[4 * q + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int e = 0; e < 4; e++) {
        __m512 u0 = _mm512_shuffle_f32x4(b[e], b[4 + e], 0x44), u1 = _mm512_shuffle_f32x4(b[e], b[4 + e], 0xEE);
        __m512 v0 = _mm512_shuffle_f32x4(b[8 + e], b[12 + e], 0x44), v1 = _mm512_shuffle_f32x4(b[8 + e], b[12 + e], 0xEE);
        _mm512_storeu_ps(dst + (0 + e) * ldd, _mm512_shuffle_f32x4(u0, v0, 0x88));
        _mm512_storeu_ps(dst + (4 + e) * ldd, _mm512_shuffle_f32x4(u0, v0, 0xDD));
        _mm512_storeu_ps(dst + (8 + e) * ldd, _mm512_shuffle_f32x4(u1, v1, 0x88));
        _mm512_storeu_ps(dst + (12 + e) * ldd, _mm512_shuffle_f32x4(u1, v1, 0xDD));
    }
}
#endif

static void pack_panel_transpose(const float *src, int64_t ld, int n, int w, int64_t kb,
                                 float *restrict panel)
{
#if TG_GEMM_X86
    /* Full panels of 16 or 32 rows (B's for the AVX-512 kernel, the im2col
     * matrix of a weight gradient) go through 16 x 16 blocks: a quarter of
     * the instructions of the 4 x 4 blocks below. */
    static int avx512 = -1;   /* a benign race on the first calls */
    if (avx512 < 0) avx512 = cpu_has_avx512();
    if (avx512 && n == w && w % 16 == 0 && kb >= 16) {
        int64_t done = kb & ~(int64_t)15;
        for (int64_t k = 0; k < done; k += 16)
            for (int r = 0; r < w; r += 16) transpose16_f32(src + r * ld + k, ld, panel + k * w + r, w);
        src += done, panel += done * w, kb -= done;
    }
#endif
    int64_t k = 0;
#if TG_GEMM_SSE2
    int n4 = n & ~3;
    for (; k + 4 <= kb; k += 4, panel += 4 * w) {
        int r = 0;
        for (; r < n4; r += 4) {
            const float *s = src + r * ld + k;
            __m128 x0 = _mm_loadu_ps(s), x1 = _mm_loadu_ps(s + ld);
            __m128 x2 = _mm_loadu_ps(s + 2 * ld), x3 = _mm_loadu_ps(s + 3 * ld);
            _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
            _mm_storeu_ps(panel + r, x0);
            _mm_storeu_ps(panel + w + r, x1);
            _mm_storeu_ps(panel + 2 * w + r, x2);
            _mm_storeu_ps(panel + 3 * w + r, x3);
        }
        for (int kk = 0; kk < 4; kk++) {
            float *p = panel + kk * w;
            for (int rr = r; rr < n; rr++) p[rr] = src[rr * ld + k + kk];
            for (int rr = n; rr < w; rr++) p[rr] = 0.0f;
        }
    }
#endif
    for (; k < kb; k++, panel += w) {
        for (int r = 0; r < n; r++) panel[r] = src[r * ld + k];
        for (int r = n; r < w; r++) panel[r] = 0.0f;
    }
}

/* Packs op(A)[i0 : i0+mb, k0 : k0+kb] into panels of mr rows.
 *   A: (M, K) with row stride lda, or (K, M) if transA
 *   Ap: (ceil(mb / mr), kb, mr) */
static void pack_a_f32(bool transA, const float *A, int64_t lda, int64_t i0, int64_t k0,
                       int64_t mb, int64_t kb, int mr, float *restrict Ap)
{
    for (int64_t ip = 0; ip < mb; ip += mr, Ap += kb * mr) {
        int m = (int)min64(mr, mb - ip);
        if (transA) pack_panel_copy(A + k0 * lda + (i0 + ip), lda, m, mr, kb, Ap);
        else pack_panel_transpose(A + (i0 + ip) * lda + k0, lda, m, mr, kb, Ap);
    }
}

/* Packs op(B)[k0 : k0+kb, j0 : j0+nb] into panels of nr columns.
 *   B: (K, N) with row stride ldb, or (N, K) if transB
 *   Bp: (ceil(nb / nr), kb, nr) */
static void pack_b_f32(bool transB, const float *B, int64_t ldb, int64_t k0, int64_t j0,
                       int64_t kb, int64_t nb, int nr, float *restrict Bp)
{
    for (int64_t jq = 0; jq < nb; jq += nr, Bp += kb * nr) {
        int n = (int)min64(nr, nb - jq);
        if (transB) pack_panel_transpose(B + (j0 + jq) * ldb + k0, ldb, n, nr, kb, Bp);
        else pack_panel_copy(B + k0 * ldb + (j0 + jq), ldb, n, nr, kb, Bp);
    }
}

/* ------------------------------------------------------------------------ */
/* float32 micro-kernels.
 *
 * Each computes t = Ap @ Bp for one packed panel pair, t (MR, NR), then
 * writes C[:m, :n] = alpha * t + beta * C[:m, :n] (beta == 0: C is not
 * read). m <= MR and n <= NR clip edge tiles.
 *   a: (kc, MR) packed panel of op(A)
 *   b: (kc, NR) packed panel of op(B), 64-byte aligned
 *   c: top-left of the C tile, row stride ldc */
typedef void ukr_f32_fn(int64_t kc, const float *restrict a, const float *restrict b,
                        float *restrict c, int64_t ldc, float alpha, float beta, int m, int n);

/* Writes the (m, n) corner of a tile t (row stride ldt) into C. */
static void store_tile_f32(const float *t, int ldt, float *restrict c, int64_t ldc,
                           float alpha, float beta, int m, int n)
{
    for (int i = 0; i < m; i++) {
        const float *ti = t + i * ldt;
        float *ci = c + i * ldc;
        if (beta == 0.0f)
            for (int j = 0; j < n; j++) ci[j] = alpha * ti[j];
        else
            for (int j = 0; j < n; j++) ci[j] = alpha * ti[j] + beta * ci[j];
    }
}

/* Portable C kernel, (4, 8). With the loops fully unrolled the compiler
 * keeps the 32 accumulators in 8 vector registers of whatever baseline it
 * targets (SSE2 on x86-64, NEON on arm64). */
enum { GEN_MR = 4, GEN_NR = 8 };

static void ukr_generic(int64_t kc, const float *restrict a, const float *restrict b,
                        float *restrict c, int64_t ldc, float alpha, float beta, int m, int n)
{
    float acc[GEN_MR][GEN_NR] = {{0}};
    for (int64_t k = 0; k < kc; k++, a += GEN_MR, b += GEN_NR) {
#pragma GCC unroll 8
        for (int i = 0; i < GEN_MR; i++)
#pragma GCC unroll 16
            for (int j = 0; j < GEN_NR; j++) acc[i][j] += a[i] * b[j];
    }
    store_tile_f32(&acc[0][0], GEN_NR, c, ldc, alpha, beta, m, n);
}

#if TG_GEMM_X86

/* AVX2 + FMA kernel, (6, 16): 12 ymm accumulators, 2 for the row of Bp,
 * 1 for the broadcast of Ap — 15 of the 16 ymm registers. */
enum { AVX2_MR = 6, AVX2_NR = 16 };

__attribute__((target("avx2,fma")))
static void ukr_avx2(int64_t kc, const float *restrict a, const float *restrict b,
                     float *restrict c, int64_t ldc, float alpha, float beta, int m, int n)
{
    __m256 acc[AVX2_MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < AVX2_MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();

    for (int64_t k = 0; k < kc; k++, a += AVX2_MR, b += AVX2_NR) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 8
        for (int i = 0; i < AVX2_MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }

    __m256 va = _mm256_set1_ps(alpha);
    if (m == AVX2_MR && n == AVX2_NR) {
        if (beta == 0.0f) {
#pragma GCC unroll 8
            for (int i = 0; i < AVX2_MR; i++) {
                _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, acc[i][0]));
                _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, acc[i][1]));
            }
        } else {
            __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
            for (int i = 0; i < AVX2_MR; i++) {
                float *ci = c + i * ldc;
                _mm256_storeu_ps(ci, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci),
                                                     _mm256_mul_ps(va, acc[i][0])));
                _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8),
                                                         _mm256_mul_ps(va, acc[i][1])));
            }
        }
    } else {
        _Alignas(32) float t[AVX2_MR][AVX2_NR];
#pragma GCC unroll 8
        for (int i = 0; i < AVX2_MR; i++) {
            _mm256_store_ps(&t[i][0], acc[i][0]);
            _mm256_store_ps(&t[i][8], acc[i][1]);
        }
        store_tile_f32(&t[0][0], AVX2_NR, c, ldc, alpha, beta, m, n);
    }
}

/* AVX-512 kernel, (12, 32): 24 zmm accumulators, 2 for the row of Bp, the
 * broadcasts of Ap fold into the FMAs. Edge tiles use masked loads/stores. */
enum { AVX512_MR = 12, AVX512_NR = 32 };

/* The kernel for mr rows (12, or 8 for pre-packed products whose M is a
 * multiple of 8 but not of 12, e.g. a convolution's 64 output channels:
 * no padded rows to compute). Each element's sum is the same either way. */
__attribute__((target("avx512f"), always_inline))
static inline void ukr_avx512_rows(const int mr, int64_t kc, const float *restrict a, const float *restrict b,
                                   float *restrict c, int64_t ldc, float alpha, float beta, int m, int n)
{
    __m512 acc[AVX512_MR][2];
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();

    for (int64_t k = 0; k < kc; k++, a += mr, b += AVX512_NR) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
    }

    /* Column masks for the two 16-wide halves of the tile. */
    uint32_t cols = n >= 32 ? 0xffffffffu : ((uint32_t)1 << n) - 1;
    __mmask16 k0 = (__mmask16)(cols & 0xffff), k1 = (__mmask16)(cols >> 16);
    __m512 va = _mm512_set1_ps(alpha);
    /* Loops unrolled with a test on i, so acc stays in registers. */
    if (beta == 0.0f) {
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            if (i >= m) break;
            _mm512_mask_storeu_ps(c + i * ldc, k0, _mm512_mul_ps(va, acc[i][0]));
            _mm512_mask_storeu_ps(c + i * ldc + 16, k1, _mm512_mul_ps(va, acc[i][1]));
        }
    } else {
        __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            if (i >= m) break;
            float *ci = c + i * ldc;
            __m512 c0 = _mm512_maskz_loadu_ps(k0, ci), c1 = _mm512_maskz_loadu_ps(k1, ci + 16);
            _mm512_mask_storeu_ps(ci, k0, _mm512_fmadd_ps(vb, c0, _mm512_mul_ps(va, acc[i][0])));
            _mm512_mask_storeu_ps(ci + 16, k1, _mm512_fmadd_ps(vb, c1, _mm512_mul_ps(va, acc[i][1])));
        }
    }
}

__attribute__((target("avx512f")))
static void ukr_avx512(int64_t kc, const float *restrict a, const float *restrict b,
                       float *restrict c, int64_t ldc, float alpha, float beta, int m, int n)
{
    ukr_avx512_rows(AVX512_MR, kc, a, b, c, ldc, alpha, beta, m, n);
}

__attribute__((target("avx512f")))
static void ukr_avx512_8(int64_t kc, const float *restrict a, const float *restrict b,
                         float *restrict c, int64_t ldc, float alpha, float beta, int m, int n)
{
    ukr_avx512_rows(8, kc, a, b, c, ldc, alpha, beta, m, n);
}

static bool cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static bool cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

#endif /* TG_GEMM_X86 */

static bool cpu_any(void) { return true; }

/* ------------------------------------------------------------------------ */
/* Kernel table, widest first: "auto" picks the first supported entry.
 * Block sizes, for Zen 4 (32 KiB L1d, 1 MiB L2 per core): the Ap panel
 * (KC, MR) = 19 KiB stays in L1 while the Bp panels stream past it, the Bp
 * block (KC, NC) = 800 KiB roughly fills L2. KC = 400 keeps the VAE's K = 400
 * in one block and splits K = 784 as 392 + 392. On the VAE shapes, KC from
 * 256 to 512 and NC from 256 to 1024 measured within 3% of each other. */

#define MAX_MR 16  /* bounds of every kernel's (MR, NR) */
#define MAX_NR 32
_Static_assert(GEN_MR <= MAX_MR && GEN_NR <= MAX_NR, "generic tile too large");
#if TG_GEMM_X86
_Static_assert(AVX2_MR <= MAX_MR && AVX2_NR <= MAX_NR, "avx2 tile too large");
_Static_assert(AVX512_MR <= MAX_MR && AVX512_NR <= MAX_NR, "avx512 tile too large");
#endif

typedef struct {
    const char *name;
    int mr, nr;          /* micro-tile (MR, NR) */
    int mc, kc, nc;      /* cache blocks; mc % mr == 0, nc % nr == 0 */
    ukr_f32_fn *ukr;
    bool (*supported)(void);
} gemm_kernel;

static const gemm_kernel kernels[] = {
#if TG_GEMM_X86
    {"avx512", AVX512_MR, AVX512_NR, 144, 400, 512, ukr_avx512, cpu_has_avx512},
    {"avx2", AVX2_MR, AVX2_NR, 144, 400, 512, ukr_avx2, cpu_has_avx2},
#endif
    {"generic", GEN_MR, GEN_NR, 128, 256, 512, ukr_generic, cpu_any},
};
enum { NKERNELS = sizeof kernels / sizeof kernels[0] };

/* The kernel in use; NULL until the first call picks one. Atomic so that
 * concurrent callers may race on that first pick harmlessly. */
static _Atomic(const gemm_kernel *) active_kernel;

static const gemm_kernel *find_kernel(const char *name)
{
    for (int i = 0; i < NKERNELS; i++)
        if (strcmp(kernels[i].name, name) == 0) return &kernels[i];
    return NULL;
}

static const gemm_kernel *best_kernel(void)
{
    for (int i = 0; i < NKERNELS; i++)
        if (kernels[i].supported()) return &kernels[i];
    return &kernels[NKERNELS - 1];
}

static const gemm_kernel *current_kernel(void)
{
    const gemm_kernel *kr = atomic_load_explicit(&active_kernel, memory_order_acquire);
    if (kr == NULL) {
        kr = best_kernel();
        atomic_store_explicit(&active_kernel, kr, memory_order_release);
    }
    return kr;
}

bool tg_gemm_kernel_supported(const char *name)
{
    if (name == NULL) return false;
    if (strcmp(name, "auto") == 0) return true;
    const gemm_kernel *kr = find_kernel(name);
    return kr != NULL && kr->supported();
}

void tg_gemm_force_kernel(const char *name)
{
    TG_CHECK(name != NULL, "tg_gemm_force_kernel: name is NULL");
    const gemm_kernel *kr;
    if (strcmp(name, "auto") == 0) {
        kr = best_kernel();
    } else {
        kr = find_kernel(name);
        TG_CHECK(kr != NULL, "tg_gemm_force_kernel: unknown kernel \"%s\" "
                 "(use auto, avx512, avx2 or generic)", name);
        TG_CHECK(kr->supported(), "tg_gemm_force_kernel: this CPU cannot run kernel \"%s\" "
                 "(check with tg_gemm_kernel_supported)", name);
    }
    atomic_store_explicit(&active_kernel, kr, memory_order_release);
}

const char *tg_gemm_kernel_name(void) { return current_kernel()->name; }

/* ------------------------------------------------------------------------ */
/* Argument checks and trivial cases shared by both dtypes. */

static void check_args(const char *fn, bool transA, bool transB, int64_t M, int64_t N,
                       int64_t K, const void *A, int64_t lda, const void *B, int64_t ldb,
                       const void *C, int64_t ldc)
{
    TG_CHECK(M >= 0 && N >= 0 && K >= 0,
             "%s: negative size M=%" PRId64 " N=%" PRId64 " K=%" PRId64, fn, M, N, K);
    int64_t a_cols = transA ? M : K, b_cols = transB ? K : N;
    TG_CHECK(lda >= max64(1, a_cols), "%s: lda=%" PRId64 " is less than the %" PRId64
             " columns of A%s", fn, lda, a_cols, transA ? " (transA: A is (K, M))" : "");
    TG_CHECK(ldb >= max64(1, b_cols), "%s: ldb=%" PRId64 " is less than the %" PRId64
             " columns of B%s", fn, ldb, b_cols, transB ? " (transB: B is (N, K))" : "");
    TG_CHECK(ldc >= max64(1, N), "%s: ldc=%" PRId64 " is less than N=%" PRId64, fn, ldc, N);
    bool need_ab = M > 0 && N > 0 && K > 0;
    TG_CHECK(!need_ab || (A != NULL && B != NULL), "%s: A or B is NULL", fn);
    TG_CHECK(M == 0 || N == 0 || C != NULL, "%s: C is NULL", fn);
}

/* ------------------------------------------------------------------------ */
/* float32 */

static void scale_c_f32(int64_t M, int64_t N, float beta, float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++) {
        float *ci = C + i * ldc;
        if (beta == 0.0f) memset(ci, 0, (size_t)N * sizeof(float));
        else if (beta != 1.0f)
            for (int64_t j = 0; j < N; j++) ci[j] *= beta;
    }
}

/* Writes the transpose of the (m, n) corner of a tile t (row stride ldt):
 * C[j][i] = alpha * t[i][j] + beta * C[j][i]. */
static void store_tile_transposed_f32(const float *t, int ldt, float *restrict c, int64_t ldc,
                                      float alpha, float beta, int m, int n)
{
    for (int j = 0; j < n; j++) {
        float *cj = c + j * ldc;
        if (beta == 0.0f)
            for (int i = 0; i < m; i++) cj[i] = alpha * t[i * ldt + j];
        else
            for (int i = 0; i < m; i++) cj[i] = alpha * t[i * ldt + j] + beta * cj[i];
    }
}

/* One product P (M, N) = op(A) @ op(B),  C = alpha * P + beta * C, where C
 * holds P as it is (c_trans false: P[i][j] at C[i * ldc + j]) or transposed
 * (c_trans true: P[i][j] at C[j * ldc + i]). */
typedef struct {
    const gemm_kernel *kr;
    bool c_trans, transA, transB;
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int64_t lda, ldb, ldc;
} product;

/* Which tiles of P a call computes. Tiles are numbered in the (mr, nr) grid
 * of P, by columns (col_major: tile (ip, jp) is jp * row_panels + ip) or by
 * rows (ip * col_panels + jp); the call computes those numbered [t0, t1). */
typedef struct {
    bool col_major;
    int64_t t0, t1;
} tile_range;

static const tile_range all_tiles = {true, 0, INT64_MAX};

/* Whether any tile of row panels [ip0, ip1) x column panels [jp0, jp1) is
 * in the range. */
static bool block_has_tiles(const tile_range *tr, int64_t ip0, int64_t ip1, int64_t jp0,
                            int64_t jp1, int64_t row_panels, int64_t col_panels)
{
    int64_t outer0 = tr->col_major ? jp0 : ip0, outer1 = tr->col_major ? jp1 : ip1;
    int64_t inner0 = tr->col_major ? ip0 : jp0, inner1 = tr->col_major ? ip1 : jp1;
    int64_t stride = tr->col_major ? row_panels : col_panels;
    for (int64_t o = outer0; o < outer1; o++)  /* tiles o * stride + [inner0, inner1) */
        if (o * stride + inner0 < tr->t1 && o * stride + inner1 > tr->t0) return true;
    return false;
}

/* The five loops of the header comment, over the tiles of `tr` only (and
 * packing only the blocks they need), with pack buffers pb. */
static void gemm_f32_packed(const product *p, const tile_range *tr, pack_bufs *pb)
{
    const gemm_kernel *kr = p->kr;
    const int mr = kr->mr, nr = kr->nr;
    const int64_t M = p->M, N = p->N, K = p->K, ldc = p->ldc;
    const float alpha = p->alpha;
    int64_t kc = even_block(K, kr->kc, 1);
    int64_t mc = even_block(M, kr->mc, mr);
    int64_t nc = even_block(N, kr->nc, nr);
    int64_t row_panels = ceil_div(M, mr), col_panels = ceil_div(N, nr);
    _Alignas(64) float tile[MAX_MR * MAX_NR];  /* (mr, nr), for c_trans */

    /* Buffers sized for the kernel's largest blocks, so they grow at most
     * once per kernel. */
    float *Ap = pack_buf_reserve(&pb->a, (size_t)kr->mc * kr->kc * sizeof(float));
    float *Bp = pack_buf_reserve(&pb->b, (size_t)kr->kc * kr->nc * sizeof(float));

    for (int64_t jc = 0; jc < N; jc += nc) {
        int64_t nb = min64(nc, N - jc);
        int64_t jp0 = jc / nr, jp1 = ceil_div(jc + nb, nr);
        if (!block_has_tiles(tr, 0, row_panels, jp0, jp1, row_panels, col_panels)) continue;
        for (int64_t pc = 0; pc < K; pc += kc) {
            int64_t kb = min64(kc, K - pc);
            /* The first K block applies beta; later ones accumulate. */
            float beta_blk = pc == 0 ? p->beta : 1.0f;
            pack_b_f32(p->transB, p->B, p->ldb, pc, jc, kb, nb, nr, Bp);
            for (int64_t ic = 0; ic < M; ic += mc) {
                int64_t mb = min64(mc, M - ic);
                int64_t ip0 = ic / mr, ip1 = ceil_div(ic + mb, mr);
                if (!block_has_tiles(tr, ip0, ip1, jp0, jp1, row_panels, col_panels)) continue;
                pack_a_f32(p->transA, p->A, p->lda, ic, pc, mb, kb, mr, Ap);
                for (int64_t ir = 0; ir < mb; ir += mr) {
                    int m = (int)min64(mr, mb - ir);
                    const float *a = Ap + ir * kb;
                    int64_t ip = (ic + ir) / mr;
                    for (int64_t jr = 0; jr < nb; jr += nr) {
                        int64_t jp = (jc + jr) / nr;
                        int64_t t = tr->col_major ? jp * row_panels + ip : ip * col_panels + jp;
                        if (t < tr->t0 || t >= tr->t1) continue;
                        int n = (int)min64(nr, nb - jr);
                        const float *b = Bp + jr * kb;
                        int64_t i = ic + ir, j = jc + jr;  /* tile corner in P */
                        if (!p->c_trans) {
                            kr->ukr(kb, a, b, p->C + i * ldc + j, ldc, alpha, beta_blk, m, n);
                        } else {
                            kr->ukr(kb, a, b, tile, nr, 1.0f, 0.0f, mr, nr);
                            store_tile_transposed_f32(tile, nr, p->C + j * ldc + i, ldc, alpha,
                                                      beta_blk, m, n);
                        }
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Threads. The tiles of P, numbered by columns or by rows (tile_range), are
 * cut into contiguous ranges of about equal count, one per thread. A thread
 * computes every K block of its tiles, so each element of C is summed by
 * one thread, in the same order, with the same K blocking and at the same
 * place in the (mr, nr) grid whatever the thread count: the results are
 * bitwise identical for any number of threads.
 *
 * Numbered by columns, a range spans a few column panels: its thread runs
 * the five loops on that column slice, packing all of op(A) and its slice of
 * op(B), and skips the tiles of its first and last panels that are not its
 * own. Numbered by rows, the same with A and B swapped; the numbering that
 * packs less per thread is chosen. Cutting tiles rather than whole panels
 * keeps the threads even: 128 x 400 is 11 x 13 tiles of (12, 32), 72 + 71
 * tiles on 2 threads where whole panels would give 7 + 6 column panels.
 * (Packing the common operand once for all threads, then sharing it, was
 * measured 5-10% slower on 2 Zen 4 cores than packing it twice.)
 *
 * Each range gets at least MIN_MACS multiply-adds, so small products (below
 * 2 MIN_MACS, ~5 us on one core) stay on the calling thread: a pool job
 * costs ~1 us when its workers are awake, ~25 us when they must be woken. */

#define MIN_MACS (1 << 18)

typedef struct {
    product p;
    bool col_major;    /* tile numbering */
    _Atomic int slot;  /* next free slot_pack entry */
} gemm_job;

/* Computes tiles [begin, end) of the job: a tg_range_fn. */
static void gemm_tiles_range(void *ctx, int64_t begin, int64_t end)
{
    gemm_job *g = ctx;
    product sub = g->p;
    const int mr = sub.kr->mr, nr = sub.kr->nr;
    int64_t row_panels = ceil_div(sub.M, mr), col_panels = ceil_div(sub.N, nr);
    tile_range tr = {g->col_major, begin, end};
    if (g->col_major) {  /* column panels [p0, p1) hold the range */
        int64_t p0 = begin / row_panels, p1 = ceil_div(end, row_panels), j0 = p0 * nr;
        sub.N = min64(p1 * nr, sub.N) - j0;
        sub.B += sub.transB ? j0 * sub.ldb : j0;
        sub.C += sub.c_trans ? j0 * sub.ldc : j0;
        tr.t0 -= p0 * row_panels;
        tr.t1 -= p0 * row_panels;
    } else {             /* row panels [p0, p1) */
        int64_t p0 = begin / col_panels, p1 = ceil_div(end, col_panels), i0 = p0 * mr;
        sub.M = min64(p1 * mr, sub.M) - i0;
        sub.A += sub.transA ? i0 : i0 * sub.lda;
        sub.C += sub.c_trans ? i0 : i0 * sub.ldc;
        tr.t0 -= p0 * col_panels;
        tr.t1 -= p0 * col_panels;
    }
    int slot = atomic_fetch_add_explicit(&g->slot, 1, memory_order_relaxed);
    gemm_f32_packed(&sub, &tr, &slot_pack[slot]);
}

/* Runs the product on up to tg_threads_get() threads. */
static void gemm_f32_run(product *p)
{
    const int mr = p->kr->mr, nr = p->kr->nr;
    int64_t M = p->M, N = p->N, K = p->K;
    if (atomic_flag_test_and_set_explicit(&gemm_lock, memory_order_acquire)) {
        /* Another thread's product holds slot_pack: run on this thread. */
        gemm_f32_packed(p, &all_tiles, thread_pack_bufs());
        return;
    }
    /* Holding gemm_lock: slot_pack is ours. */
    int64_t ranges = min64(tg_threads_get(), M * N * K / MIN_MACS);
    if (ranges <= 1) {
        gemm_f32_packed(p, &all_tiles, &slot_pack[0]);
        atomic_flag_clear_explicit(&gemm_lock, memory_order_release);
        return;
    }
    int64_t Mp = round_up(M, mr), Np = round_up(N, nr);
    int64_t row_panels = Mp / mr, col_panels = Np / nr, tiles = row_panels * col_panels;
    gemm_job g = {.p = *p};
    /* Rows and columns of op(A) and op(B) one thread packs: by columns all
     * of op(A) and its share of op(B)'s panels (plus one, partly shared with
     * the next thread); by rows the other way round. K is common. */
    int64_t per = ceil_div(tiles, ranges);
    int64_t share_b = min64(col_panels, ceil_div(per, row_panels) + 1) * nr;
    int64_t share_a = min64(row_panels, ceil_div(per, col_panels) + 1) * mr;
    g.col_major = Mp + share_b <= Np + share_a;
    tg_parallel_for(tiles, tiles / ranges, gemm_tiles_range, &g);
    atomic_flag_clear_explicit(&gemm_lock, memory_order_release);
}

/* The product to run: op(A) @ op(B) as asked, or as C^T when that fits the
 * tiles much better. A narrow C (e.g. N = 20 with NR = 32) wastes most of
 * each tile on zero padding; then
 *   C^T (N, M) = op(B)^T @ op(A)^T
 * is computed instead: op(B)^T is B read with the opposite transpose flag,
 * and the same for A. Tiles are then written back transposed. */
static product make_product(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                            const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                            float *C, int64_t ldc)
{
    const gemm_kernel *kr = current_kernel();
    int64_t work = round_up(M, kr->mr) * round_up(N, kr->nr);
    int64_t work_t = round_up(N, kr->mr) * round_up(M, kr->nr);
    if (8 * work_t < 7 * work)
        return (product){kr, true, !transB, !transA, N, M, K, alpha, beta, B, A, C, ldb, lda, ldc};
    return (product){kr, false, transA, transB, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc};
}

void tg_gemm_f32(bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float beta, float *C, int64_t ldc)
{
    check_args("tg_gemm_f32", transA, transB, M, N, K, A, lda, B, ldb, C, ldc);
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {  /* no products: C = beta * C */
        scale_c_f32(M, N, beta, C, ldc);
        return;
    }

    product p = make_product(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    gemm_f32_run(&p);
}

size_t tg_gemm_f32_scratch_bytes(void)
{
    const gemm_kernel *kr = current_kernel();
    return (size_t)(kr->mc * kr->kc + kr->kc * kr->nc) * sizeof(float);
}

void tg_gemm_f32_serial(void *scratch, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                        float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                        float beta, float *C, int64_t ldc)
{
    check_args("tg_gemm_f32_serial", transA, transB, M, N, K, A, lda, B, ldb, C, ldc);
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        scale_c_f32(M, N, beta, C, ldc);
        return;
    }
    product p = make_product(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    /* The caller's buffer, already the full size: pack_buf_reserve never allocates. */
    size_t abytes = (size_t)p.kr->mc * p.kr->kc * sizeof(float);
    pack_bufs pb = {.a = {scratch, abytes}, .b = {(char *)scratch + abytes, tg_gemm_f32_scratch_bytes() - abytes}};
    gemm_f32_packed(&p, &all_tiles, &pb);
}

/* ------------------------------------------------------------------------ */
/* Pre-packed operands. The panels are those gemm_f32_packed builds, over the
 * whole of K: op(A) as ceil(M / MR) panels of (K, MR), op(B) as ceil(N / NR)
 * panels of (K, NR), each zero-padded. A K block [pc, pc + kb) of a panel
 * is then the stretch from row pc, so the loops are gemm_f32_packed's
 * without the packing, and the K blocks (hence the sums) are the same. */

/* The micro-kernel and its MR for a pre-packed product of M rows: the
 * current kernel's, or on AVX-512 the 8-row one where 8 divides M and 12
 * would pad it by more than 5%. */
static ukr_f32_fn *prepacked_kernel(int64_t M, int *mr)
{
    const gemm_kernel *kr = current_kernel();
#if TG_GEMM_X86
    if (kr->ukr == ukr_avx512 && M % 8 == 0 && round_up(M, AVX512_MR) * 20 > M * 21) {   /* > 5% padding */
        *mr = 8;
        return ukr_avx512_8;
    }
#endif
    *mr = kr->mr;
    return kr->ukr;
}

int tg_gemm_f32_panel_rows(int64_t M)
{
    int mr;
    prepacked_kernel(M, &mr);
    return mr;
}

int tg_gemm_f32_panel_cols(void) { return current_kernel()->nr; }

void tg_gemm_f32_pack_a(float *Ap, bool transA, int64_t M, int64_t K, const float *A, int64_t lda)
{
    check_args("tg_gemm_f32_pack_a", transA, false, M, 1, K, A, lda, A, 1, Ap, 1);
    pack_a_f32(transA, A, lda, 0, 0, M, K, tg_gemm_f32_panel_rows(M), Ap);
}

void tg_gemm_f32_pack_a_cols(float *Ap, int64_t M, int64_t K, int64_t k0, int64_t kb, const float *A, int64_t lda)
{
    TG_CHECK(M >= 0 && k0 >= 0 && kb >= 0 && k0 + kb <= K && lda >= max64(1, kb),
             "tg_gemm_f32_pack_a_cols: M=%" PRId64 " K=%" PRId64 " k0=%" PRId64 " kb=%" PRId64 " lda=%" PRId64,
             M, K, k0, kb, lda);
    int mr = tg_gemm_f32_panel_rows(M);
    for (int64_t ip = 0; ip < M; ip += mr)
        pack_panel_transpose(A + ip * lda, lda, (int)min64(mr, M - ip), mr, kb, Ap + ip * K + k0 * mr);
}

void tg_gemm_f32_prepacked(int64_t M, int64_t N, int64_t K, const float *Ap, const float *Bp,
                           float *C, int64_t ldc)
{
    const gemm_kernel *kr = current_kernel();
    int mr;
    ukr_f32_fn *ukr = prepacked_kernel(M, &mr);
    const int nr = kr->nr;
    TG_CHECK(M >= 0 && N >= 0 && K > 0 && ldc >= max64(1, N) && ((uintptr_t)Bp & (min64(64, 4 * nr) - 1)) == 0,
             "tg_gemm_f32_prepacked: M=%" PRId64 " N=%" PRId64 " K=%" PRId64 " ldc=%" PRId64
             " (K > 0, ldc >= N, Bp aligned to a panel row or 64 bytes)", M, N, K, ldc);
    int64_t kc = even_block(K, kr->kc, 1);
    for (int64_t pc = 0; pc < K; pc += kc) {
        int64_t kb = min64(kc, K - pc);
        float beta = pc == 0 ? 0.0f : 1.0f;
        for (int64_t i = 0; i < M; i += mr) {
            const float *a = Ap + i * K + pc * mr;
            for (int64_t j = 0; j < N; j += nr)
                ukr(kb, a, Bp + j * K + pc * nr, C + i * ldc + j, ldc, 1.0f, beta,
                        (int)min64(mr, M - i), (int)min64(nr, N - j));
        }
    }
}

/* ------------------------------------------------------------------------ */
/* float64: blocked, portable, no micro-kernel. For each (KC64, NC64) block
 * of op(B), packed row-major, every row i of C gets
 *   acc (nb) = op(A)[i, pc : pc+kb] @ Bblock
 * summed k = 0, 1, ..., then C[i, jc:] = alpha * acc + beta_blk * C[i, jc:]. */

enum { KC64 = 256, NC64 = 256 };

void tg_gemm_f64(bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                 double alpha, const double *A, int64_t lda, const double *B, int64_t ldb,
                 double beta, double *C, int64_t ldc)
{
    check_args("tg_gemm_f64", transA, transB, M, N, K, A, lda, B, ldb, C, ldc);
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0) {
        for (int64_t i = 0; i < M; i++) {
            double *ci = C + i * ldc;
            for (int64_t j = 0; j < N; j++) ci[j] = beta == 0.0 ? 0.0 : beta * ci[j];
        }
        return;
    }

    int64_t kc = even_block(K, KC64, 1);
    int64_t nc = even_block(N, NC64, 1);
    pack_bufs *pb = thread_pack_bufs();
    double *Bp = pack_buf_reserve(&pb->b, (size_t)KC64 * NC64 * sizeof(double));
    /* One row of op(A) (kb) and one row accumulator (nb), side by side. */
    double *arow = pack_buf_reserve(&pb->c, (size_t)(KC64 + NC64) * sizeof(double));
    double *acc = arow + KC64;

    for (int64_t jc = 0; jc < N; jc += nc) {
        int64_t nb = min64(nc, N - jc);
        for (int64_t pc = 0; pc < K; pc += kc) {
            int64_t kb = min64(kc, K - pc);
            double beta_blk = pc == 0 ? beta : 1.0;
            /* Bp (kb, nb) = op(B)[pc : pc+kb, jc : jc+nb] */
            for (int64_t k = 0; k < kb; k++)
                for (int64_t j = 0; j < nb; j++)
                    Bp[k * nb + j] = transB ? B[(jc + j) * ldb + pc + k] : B[(pc + k) * ldb + jc + j];
            for (int64_t i = 0; i < M; i++) {
                for (int64_t k = 0; k < kb; k++)
                    arow[k] = transA ? A[(pc + k) * lda + i] : A[i * lda + pc + k];
                for (int64_t j = 0; j < nb; j++) acc[j] = 0.0;
                for (int64_t k = 0; k < kb; k++) {
                    double a = arow[k];
                    const double *bk = Bp + k * nb;
                    for (int64_t j = 0; j < nb; j++) acc[j] += a * bk[j];
                }
                double *ci = C + i * ldc + jc;
                if (beta_blk == 0.0)
                    for (int64_t j = 0; j < nb; j++) ci[j] = alpha * acc[j];
                else
                    for (int64_t j = 0; j < nb; j++) ci[j] = alpha * acc[j] + beta_blk * ci[j];
            }
        }
    }
}
