/*
 * test_gemm.c — tg_gemm_f32 / tg_gemm_f64 against a naive triple loop in
 * double, for every kernel this CPU supports.
 *
 * Each problem draws A, B and C0 once, computes the exact-ish reference
 *   dot[i][j] = sum_k op(A)[i][k] op(B)[k][j]      (double, k = 0, 1, ...)
 *   mag[i][j] = sum_k |op(A)[i][k] op(B)[k][j]|
 * and then checks, for each kernel and each (alpha, beta),
 *   |C[i][j] - (alpha dot + beta C0)| <= (K + 3) eps (|alpha| mag + |beta C0|)
 * which is the classical bound for a length-K dot product (Higham, ch. 3)
 * with room for the alpha and beta roundings. With beta = 0, C is filled
 * with NaN first: its old contents must be ignored. Every matrix has spare
 * columns (lda > cols etc.) holding a sentinel: A's and B's must not leak
 * into C, C's must come back untouched.
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/gemm.h"
#include "tensor/pool.h"
#include "tests/alloc_count.h"
#include "tests/child.h"

static const char *const kernel_names[] = {"avx512", "avx2", "generic"};
enum { NKERNEL_NAMES = sizeof kernel_names / sizeof kernel_names[0] };

/* (alpha, beta) pairs: plain product, accumulation, a general mix, and
 * beta = 0 with a non-unit alpha. */
static const double alpha_beta[][2] = {{1, 0}, {1, 1}, {-0.5, 2}, {2.5, 0}, {0.75, -1}};
enum { NALPHA_BETA = sizeof alpha_beta / sizeof alpha_beta[0] };

#define SENTINEL 0x1p100  /* fills the spare columns past each row; exact in float */

/* ------------------------------------------------------------------------ */
/* A small deterministic generator (splitmix64), independent of tensor.c. */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1), rounded to float when the problem is float32. */
static double draw(uint64_t *s, tg_dtype dt)
{
    double u = (double)(splitmix(s) >> 11) * 0x1.0p-53 * 2.0 - 1.0;
    return dt == TG_F32 ? (double)(float)u : u;
}

/* ------------------------------------------------------------------------ */
/* One problem: sizes, operands (as doubles and as the dtype under test) and
 * the reference. Stored shapes: A is (M, K), or (K, M) if ta; B is (K, N),
 * or (N, K) if tb; C is (M, N). Each has `pad` spare columns. */

typedef struct {
    tg_dtype dt;
    bool ta, tb;
    int64_t M, N, K;
    int64_t lda, ldb, ldc;
    int64_t a_rows, b_rows;
    double *A, *B, *C0;  /* (a_rows, lda), (b_rows, ldb), (M, ldc) */
    double *dot, *mag;   /* (M, N) each */
    void *Ax, *Bx, *Cx;  /* A, B as float or double; C the output buffer */
} problem;

static double op_a(const problem *p, int64_t i, int64_t k)
{
    return p->ta ? p->A[k * p->lda + i] : p->A[i * p->lda + k];
}

static double op_b(const problem *p, int64_t k, int64_t j)
{
    return p->tb ? p->B[j * p->ldb + k] : p->B[k * p->ldb + j];
}

static void *xmalloc(size_t bytes)
{
    void *q = malloc(bytes > 0 ? bytes : 1);
    cr_assert(q != NULL, "out of memory");
    return q;
}

/* Fills an (rows, ld) matrix: cols random values then the sentinel. */
static double *random_matrix(int64_t rows, int64_t cols, int64_t ld, tg_dtype dt, uint64_t *s)
{
    double *m = xmalloc((size_t)(rows * ld) * sizeof(double));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < ld; c++) m[r * ld + c] = c < cols ? draw(s, dt) : SENTINEL;
    return m;
}

/* Copies n doubles into a new buffer of the given dtype. */
static void *to_dtype(const double *x, int64_t n, tg_dtype dt)
{
    if (dt == TG_F64) {
        double *y = xmalloc((size_t)n * sizeof(double));
        memcpy(y, x, (size_t)n * sizeof(double));
        return y;
    }
    float *y = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

static problem problem_new(tg_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                           int64_t pad, uint64_t seed)
{
    problem p = {.dt = dt, .ta = ta, .tb = tb, .M = M, .N = N, .K = K};
    uint64_t s = seed;
    int64_t a_cols = ta ? M : K, b_cols = tb ? K : N;
    p.a_rows = ta ? K : M;
    p.b_rows = tb ? N : K;
    p.lda = a_cols + pad;
    p.ldb = b_cols + pad;
    p.ldc = N + pad;
    p.A = random_matrix(p.a_rows, a_cols, p.lda, dt, &s);
    p.B = random_matrix(p.b_rows, b_cols, p.ldb, dt, &s);
    p.C0 = random_matrix(M, N, p.ldc, dt, &s);
    p.dot = xmalloc((size_t)(M * N) * sizeof(double));
    p.mag = xmalloc((size_t)(M * N) * sizeof(double));
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double d = 0, m = 0;
            for (int64_t k = 0; k < K; k++) {
                double t = op_a(&p, i, k) * op_b(&p, k, j);
                d += t;
                m += fabs(t);
            }
            p.dot[i * N + j] = d;
            p.mag[i * N + j] = m;
        }
    p.Ax = to_dtype(p.A, p.a_rows * p.lda, dt);
    p.Bx = to_dtype(p.B, p.b_rows * p.ldb, dt);
    p.Cx = to_dtype(p.C0, M * p.ldc, dt);
    return p;
}

static void problem_free(problem *p)
{
    free(p->A); free(p->B); free(p->C0); free(p->dot); free(p->mag);
    free(p->Ax); free(p->Bx); free(p->Cx);
}

static double c_get(const problem *p, int64_t idx)
{
    return p->dt == TG_F32 ? (double)((float *)p->Cx)[idx] : ((double *)p->Cx)[idx];
}

static void c_set(problem *p, int64_t idx, double v)
{
    if (p->dt == TG_F32) ((float *)p->Cx)[idx] = (float)v;
    else ((double *)p->Cx)[idx] = v;
}

/* C = C0, with the M x N values replaced by NaN when nan_fill. */
static void c_reset(problem *p, bool nan_fill)
{
    for (int64_t i = 0; i < p->M; i++)
        for (int64_t j = 0; j < p->ldc; j++) {
            int64_t idx = i * p->ldc + j;
            c_set(p, idx, nan_fill && j < p->N ? NAN : p->C0[idx]);
        }
}

static void run_gemm(problem *p, double alpha, double beta)
{
    if (p->dt == TG_F32)
        tg_gemm_f32(p->ta, p->tb, p->M, p->N, p->K, (float)alpha, p->Ax, p->lda, p->Bx, p->ldb,
                    (float)beta, p->Cx, p->ldc);
    else
        tg_gemm_f64(p->ta, p->tb, p->M, p->N, p->K, alpha, p->Ax, p->lda, p->Bx, p->ldb, beta,
                    p->Cx, p->ldc);
}

/* Runs the problem once with (alpha, beta) and checks every element of C,
 * spare columns included. `kernel` only labels the failure message. */
static void check_run(problem *p, double alpha, double beta, const char *kernel)
{
    double eps = p->dt == TG_F32 ? FLT_EPSILON : DBL_EPSILON;
    double rel = (double)(p->K + 3) * eps;
    c_reset(p, beta == 0.0);
    run_gemm(p, alpha, beta);
    for (int64_t i = 0; i < p->M; i++)
        for (int64_t j = 0; j < p->ldc; j++) {
            int64_t idx = i * p->ldc + j;
            double got = c_get(p, idx), c0 = p->C0[idx];
            if (j >= p->N) {
                if (got != c0)
                    cr_assert(false, "%s %s: spare column C[%lld][%lld] of ldc=%lld was "
                              "overwritten (%g)", tg_dtype_name(p->dt), kernel,
                              (long long)i, (long long)j, (long long)p->ldc, got);
                continue;
            }
            double want = alpha * p->dot[i * p->N + j] + (beta == 0.0 ? 0.0 : beta * c0);
            double tol = rel * (fabs(alpha) * p->mag[i * p->N + j] + fabs(beta * c0)) + 1e-300;
            if (!(fabs(got - want) <= tol))
                cr_assert(false, "%s kernel=%s transA=%d transB=%d M=%lld N=%lld K=%lld "
                          "lda=%lld ldb=%lld ldc=%lld alpha=%g beta=%g: C[%lld][%lld] = %.9g, "
                          "want %.9g (|diff| %.3g > tol %.3g)",
                          tg_dtype_name(p->dt), kernel, p->ta, p->tb, (long long)p->M,
                          (long long)p->N, (long long)p->K, (long long)p->lda,
                          (long long)p->ldb, (long long)p->ldc, alpha, beta, (long long)i,
                          (long long)j, got, want, fabs(got - want), tol);
        }
}

/* Every (alpha, beta) with every supported kernel (float32) or with the
 * one float64 path. */
static void check_problem(problem *p)
{
    if (p->dt == TG_F64) {
        for (int ab = 0; ab < NALPHA_BETA; ab++)
            check_run(p, alpha_beta[ab][0], alpha_beta[ab][1], "f64");
        return;
    }
    for (int k = 0; k < NKERNEL_NAMES; k++) {
        if (!tg_gemm_kernel_supported(kernel_names[k])) continue;
        tg_gemm_force_kernel(kernel_names[k]);
        for (int ab = 0; ab < NALPHA_BETA; ab++)
            check_run(p, alpha_beta[ab][0], alpha_beta[ab][1], kernel_names[k]);
    }
    tg_gemm_force_kernel("auto");
}

/* ------------------------------------------------------------------------ */
/* Odd shapes: M, N, K over {1, 7, 16, 129, 784}, one transpose combination
 * per test so Criterion runs them in parallel. Spare columns: lda, ldb, ldc
 * exceed the column counts by 3. The few combinations above 2^24 products
 * (two sizes of 784 and one of at least 129) are left to the VAE tests. */

static const int64_t odd_sizes[] = {1, 7, 16, 129, 784};
enum { NODD = sizeof odd_sizes / sizeof odd_sizes[0] };

static void check_odd_shapes(tg_dtype dt, bool ta, bool tb)
{
    uint64_t seed = 1000 * (uint64_t)dt + 10 * (uint64_t)ta + (uint64_t)tb;
    for (int a = 0; a < NODD; a++)
        for (int b = 0; b < NODD; b++)
            for (int c = 0; c < NODD; c++) {
                int64_t M = odd_sizes[a], N = odd_sizes[b], K = odd_sizes[c];
                if (M * N * K > (1 << 24)) continue;
                problem p = problem_new(dt, ta, tb, M, N, K, 3, seed++);
                check_problem(&p);
                problem_free(&p);
            }
}

Test(gemm, f32_odd_shapes_nn) { check_odd_shapes(TG_F32, false, false); }
Test(gemm, f32_odd_shapes_nt) { check_odd_shapes(TG_F32, false, true); }
Test(gemm, f32_odd_shapes_tn) { check_odd_shapes(TG_F32, true, false); }
Test(gemm, f32_odd_shapes_tt) { check_odd_shapes(TG_F32, true, true); }
Test(gemm, f64_odd_shapes_nn) { check_odd_shapes(TG_F64, false, false); }
Test(gemm, f64_odd_shapes_nt) { check_odd_shapes(TG_F64, false, true); }
Test(gemm, f64_odd_shapes_tn) { check_odd_shapes(TG_F64, true, false); }
Test(gemm, f64_odd_shapes_tt) { check_odd_shapes(TG_F64, true, true); }

/* ------------------------------------------------------------------------ */
/* The VAE's shapes (784 -> 400 -> 20 -> 400 -> 784, batch 128), as the
 * layers call them, with tight leading dimensions:
 *   forward    y  = x @ W^T     M = B,   N = out, K = in,  transB
 *   backward   dX = dY @ W      M = B,   N = in,  K = out
 *              dW = dY^T @ x    M = out, N = in,  K = B,   transA */

typedef struct {
    bool ta, tb;
    int64_t M, N, K;
} shape_case;

static const int64_t layers[][2] = {{784, 400}, {400, 20}, {20, 400}, {400, 784}};  /* (in, out) */
enum { NLAYERS = sizeof layers / sizeof layers[0], BATCH = 128 };

static shape_case vae_case(int layer, int which)
{
    int64_t in = layers[layer][0], out = layers[layer][1];
    switch (which) {
    case 0: return (shape_case){false, true, BATCH, out, in};
    case 1: return (shape_case){false, false, BATCH, in, out};
    default: return (shape_case){true, false, out, in, BATCH};
    }
}

static void check_vae_shapes(tg_dtype dt)
{
    for (int l = 0; l < NLAYERS; l++)
        for (int w = 0; w < 3; w++) {
            shape_case s = vae_case(l, w);
            problem p = problem_new(dt, s.ta, s.tb, s.M, s.N, s.K, 0, 77 + 3 * l + w);
            check_problem(&p);
            problem_free(&p);
        }
}

Test(gemm, f32_vae_shapes) { check_vae_shapes(TG_F32); }
Test(gemm, f64_vae_shapes) { check_vae_shapes(TG_F64); }

/* The largest odd combinations, skipped above, once with padding. */
Test(gemm, f32_large_all_transposes)
{
    for (int t = 0; t < 4; t++) {
        problem p = problem_new(TG_F32, t & 1, t & 2, 784, 784, 129, 5, 500 + t);
        check_problem(&p);
        problem_free(&p);
    }
}

/* ------------------------------------------------------------------------ */
/* Degenerate sizes and alpha = 0, with every kernel. */

static void check_degenerate(tg_dtype dt)
{
    enum { M = 9, N = 13, LDC = 15 };
    double C[M * LDC];
    float Cf[M * LDC];
    float Af[M * 4], Bf[4 * N];
    double A[M * 4], B[4 * N];
    for (int i = 0; i < M * 4; i++) { A[i] = NAN; Af[i] = NAN; }  /* must not be read */
    for (int i = 0; i < 4 * N; i++) { B[i] = NAN; Bf[i] = NAN; }

    for (int beta_i = 0; beta_i < 3; beta_i++) {
        double beta = (double[]){0.0, 1.0, -2.0}[beta_i];
        for (int mode = 0; mode < 3; mode++) {  /* M = 0, K = 0, alpha = 0 */
            for (int i = 0; i < M * LDC; i++) {
                C[i] = beta == 0.0 && mode != 0 ? NAN : i + 1.0;
                Cf[i] = (float)C[i];
            }
            int64_t m = mode == 0 ? 0 : M, k = mode == 1 ? 0 : 4;
            double alpha = mode == 2 ? 0.0 : 1.0;
            if (dt == TG_F32)
                tg_gemm_f32(false, false, m, N, k, (float)alpha, Af, 4, Bf, N, (float)beta, Cf, LDC);
            else
                tg_gemm_f64(false, false, m, N, k, alpha, A, 4, B, N, beta, C, LDC);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < LDC; j++) {
                    double got = dt == TG_F32 ? Cf[i * LDC + j] : C[i * LDC + j];
                    double old = i * LDC + j + 1.0;
                    /* M = 0 and spare columns: untouched; else beta * old. */
                    double want = mode == 0 || j >= N ? (beta == 0.0 && mode != 0 ? NAN : old)
                                                      : (beta == 0.0 ? 0.0 : beta * old);
                    bool ok = isnan(want) ? isnan(got) : got == want;
                    cr_assert(ok, "%s %s mode=%d beta=%g: C[%d][%d] = %g, want %g",
                              tg_dtype_name(dt), tg_gemm_kernel_name(), mode, beta, i, j, got,
                              want);
                }
        }
    }
}

Test(gemm, degenerate_sizes_and_zero_alpha)
{
    check_degenerate(TG_F64);
    for (int k = 0; k < NKERNEL_NAMES; k++) {
        if (!tg_gemm_kernel_supported(kernel_names[k])) continue;
        tg_gemm_force_kernel(kernel_names[k]);
        check_degenerate(TG_F32);
    }
}

/* ------------------------------------------------------------------------ */
/* Determinism: for a given kernel the result depends only on the shapes —
 * not on repetition, on what ran before, on leading dimensions or on the
 * alignment of the pointers. Bitwise comparison. */

/* C (M, N) = op(A) @ op(B) from tight copies placed `offset` floats into
 * buffers with `pad` spare columns. */
static void gemm_placed(const shape_case *s, const float *A, const float *B, float *C,
                        int64_t offset, int64_t pad)
{
    int64_t ar = s->ta ? s->K : s->M, ac = s->ta ? s->M : s->K;
    int64_t br = s->tb ? s->N : s->K, bc = s->tb ? s->K : s->N;
    int64_t lda = ac + pad, ldb = bc + pad, ldc = s->N + pad;
    float *Ab = xmalloc((size_t)(offset + ar * lda) * sizeof(float));
    float *Bb = xmalloc((size_t)(offset + br * ldb) * sizeof(float));
    float *Cb = xmalloc((size_t)(offset + s->M * ldc) * sizeof(float));
    for (int64_t r = 0; r < ar; r++) memcpy(Ab + offset + r * lda, A + r * ac, (size_t)ac * 4);
    for (int64_t r = 0; r < br; r++) memcpy(Bb + offset + r * ldb, B + r * bc, (size_t)bc * 4);
    tg_gemm_f32(s->ta, s->tb, s->M, s->N, s->K, 0.5f, Ab + offset, lda, Bb + offset, ldb, 0.0f,
                Cb + offset, ldc);
    for (int64_t r = 0; r < s->M; r++)
        memcpy(C + r * s->N, Cb + offset + r * ldc, (size_t)s->N * 4);
    free(Ab); free(Bb); free(Cb);
}

Test(gemm, f32_deterministic)
{
    uint64_t seed = 9;
    for (int k = 0; k < NKERNEL_NAMES; k++) {
        if (!tg_gemm_kernel_supported(kernel_names[k])) continue;
        tg_gemm_force_kernel(kernel_names[k]);
        for (int l = 0; l < NLAYERS; l++)
            for (int w = 0; w < 3; w++) {
                shape_case s = vae_case(l, w);
                int64_t na = s.M * s.K, nb = s.K * s.N, nc = s.M * s.N;
                float *A = xmalloc((size_t)na * 4), *B = xmalloc((size_t)nb * 4);
                float *C1 = xmalloc((size_t)nc * 4), *C2 = xmalloc((size_t)nc * 4);
                for (int64_t i = 0; i < na; i++) A[i] = (float)draw(&seed, TG_F32);
                for (int64_t i = 0; i < nb; i++) B[i] = (float)draw(&seed, TG_F32);
                gemm_placed(&s, A, B, C1, 0, 0);
                const int64_t placements[][2] = {{0, 0}, {1, 0}, {3, 7}, {16, 1}};
                for (int q = 0; q < 4; q++) {
                    gemm_placed(&s, A, B, C2, placements[q][0], placements[q][1]);
                    cr_assert(memcmp(C1, C2, (size_t)nc * 4) == 0,
                              "kernel %s M=%lld N=%lld K=%lld: result changed with offset %lld, "
                              "pad %lld", kernel_names[k], (long long)s.M, (long long)s.N,
                              (long long)s.K, (long long)placements[q][0],
                              (long long)placements[q][1]);
                }
                free(A); free(B); free(C1); free(C2);
            }
    }
}

/* ------------------------------------------------------------------------ */
/* Steady state allocates nothing: after one (784, 784, 784) call per
 * kernel, calls of smaller sizes, any transposes, never reach malloc
 * (counted by alloc_count.c). On 1 to 3 threads: the first threaded call
 * starts the workers and sizes every buffer, whichever threads run what. */

static void check_steady_state(int threads)
{
    tg_threads_set(threads);
    enum { M = 784, N = 784, K = 784 };
    float *Af = xmalloc((size_t)M * K * 4), *Bf = xmalloc((size_t)K * N * 4);
    float *Cf = xmalloc((size_t)M * N * 4);
    double *Ad = xmalloc((size_t)M * K * 8), *Bd = xmalloc((size_t)K * N * 8);
    double *Cd = xmalloc((size_t)M * N * 8);
    for (int64_t i = 0; i < (int64_t)M * K; i++) { Af[i] = 0.25f; Ad[i] = 0.25; }
    for (int64_t i = 0; i < (int64_t)K * N; i++) { Bf[i] = 0.5f; Bd[i] = 0.5; }

    for (int k = 0; k < NKERNEL_NAMES; k++) {
        if (!tg_gemm_kernel_supported(kernel_names[k])) continue;
        tg_gemm_force_kernel(kernel_names[k]);
        /* Warm-up: the first call of each dtype may allocate pack buffers. */
        tg_gemm_f32(false, true, M, N, K, 1.0f, Af, K, Bf, K, 0.0f, Cf, N);
        if (k == 0) tg_gemm_f64(false, true, M, N, K, 1.0, Ad, K, Bd, K, 0.0, Cd, N);
        uint64_t before = tg_test_alloc_count();
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            /* Leading dimensions of 784 suit every shape here. */
            for (int l = 0; l < NLAYERS; l++)
                for (int w = 0; w < 3; w++) {
                    shape_case s = vae_case(l, w);
                    tg_gemm_f32(ta, tb, s.M, s.N, s.K, 1.0f, Af, M, Bf, N, 1.0f, Cf, N);
                    if (k == 0) /* one float64 path for all kernels */
                        tg_gemm_f64(ta, tb, s.M, s.N, s.K, 1.0, Ad, M, Bd, N, 1.0, Cd, N);
                }
        }
        cr_assert_eq(tg_test_alloc_count(), before,
                     "kernel %s, %d threads: %llu allocations in steady state",
                     kernel_names[k], threads,
                     (unsigned long long)(tg_test_alloc_count() - before));
    }
    free(Af); free(Bf); free(Cf); free(Ad); free(Bd); free(Cd);
    tg_gemm_force_kernel("auto");
    tg_threads_set(0);
    tg_pool_shutdown();
}

Test(gemm, steady_state_allocates_nothing_1_thread) { check_steady_state(1); }
Test(gemm, steady_state_allocates_nothing_2_threads) { check_steady_state(2); }
Test(gemm, steady_state_allocates_nothing_3_threads) { check_steady_state(3); }

/* ------------------------------------------------------------------------ */
/* Threads: each C tile is computed whole by one thread with the same K
 * blocking, so 1, 2 and 3 threads give the same bytes, with every kernel,
 * on the VAE's shapes and on odd ones (ragged edges, thread boundaries
 * inside a column or row panel, C^T orientation, beta = 0 and not). */

static const shape_case odd_thread_cases[] = {
    {false, false, 129, 784, 129}, {true, true, 784, 129, 129},  {false, true, 300, 301, 302},
    {true, false, 1, 784, 784},    {false, false, 784, 1, 784},   {true, true, 37, 1000, 64},
    {false, true, 1000, 37, 64},   {true, false, 97, 97, 97},     {false, false, 13, 2000, 40},
    {true, true, 2000, 13, 40},    {false, false, 64, 64, 2000},  {true, false, 255, 17, 600},
};
enum { NODD_THREAD = sizeof odd_thread_cases / sizeof odd_thread_cases[0] };

/* C = alpha op(A) op(B) + beta C0 for one case, into C (M, N + 2) whose two
 * spare columns must stay as they were. */
static void gemm_case(const shape_case *s, const float *A, const float *B, const float *C0,
                      float alpha, float beta, float *C)
{
    int64_t ldc = s->N + 2;
    memcpy(C, C0, (size_t)(s->M * ldc) * 4);
    tg_gemm_f32(s->ta, s->tb, s->M, s->N, s->K, alpha, A, s->ta ? s->M : s->K, B,
                s->tb ? s->K : s->N, beta, C, ldc);
}

static void check_threads_identical(const shape_case *s, uint64_t *seed)
{
    int64_t na = s->M * s->K, nb = s->K * s->N, nc = s->M * (s->N + 2);
    float *A = xmalloc((size_t)na * 4), *B = xmalloc((size_t)nb * 4);
    float *C0 = xmalloc((size_t)nc * 4), *C1 = xmalloc((size_t)nc * 4);
    float *C2 = xmalloc((size_t)nc * 4);
    for (int64_t i = 0; i < na; i++) A[i] = (float)draw(seed, TG_F32);
    for (int64_t i = 0; i < nb; i++) B[i] = (float)draw(seed, TG_F32);
    for (int64_t i = 0; i < nc; i++) C0[i] = (float)draw(seed, TG_F32);
    const float ab[][2] = {{1.0f, 0.0f}, {0.5f, -1.5f}};
    for (int k = 0; k < NKERNEL_NAMES; k++) {
        if (!tg_gemm_kernel_supported(kernel_names[k])) continue;
        tg_gemm_force_kernel(kernel_names[k]);
        for (int a = 0; a < 2; a++) {
            tg_threads_set(1);
            gemm_case(s, A, B, C0, ab[a][0], ab[a][1], C1);
            for (int threads = 2; threads <= 3; threads++) {
                tg_threads_set(threads);
                gemm_case(s, A, B, C0, ab[a][0], ab[a][1], C2);
                cr_assert(memcmp(C1, C2, (size_t)nc * 4) == 0,
                          "kernel %s transA=%d transB=%d M=%lld N=%lld K=%lld alpha=%g "
                          "beta=%g: %d threads differ from 1", kernel_names[k], s->ta, s->tb,
                          (long long)s->M, (long long)s->N, (long long)s->K, ab[a][0],
                          ab[a][1], threads);
            }
        }
    }
    tg_gemm_force_kernel("auto");
    tg_threads_set(0);
    free(A); free(B); free(C0); free(C1); free(C2);
}

Test(gemm, f32_threads_bit_identical_vae_shapes)
{
    uint64_t seed = 31;
    for (int l = 0; l < NLAYERS; l++)
        for (int w = 0; w < 3; w++) {
            shape_case s = vae_case(l, w);
            check_threads_identical(&s, &seed);
        }
    tg_pool_shutdown();
}

Test(gemm, f32_threads_bit_identical_odd_shapes)
{
    uint64_t seed = 32;
    for (int i = 0; i < NODD_THREAD; i++) check_threads_identical(&odd_thread_cases[i], &seed);
    tg_pool_shutdown();
}

/* Threaded results are also right, not just stable: the odd cases on 3
 * threads against the double reference. */
Test(gemm, f32_threads_correct)
{
    tg_threads_set(3);
    for (int i = 0; i < NODD_THREAD; i++) {
        const shape_case *s = &odd_thread_cases[i];
        problem p = problem_new(TG_F32, s->ta, s->tb, s->M, s->N, s->K, 1, 700 + i);
        check_problem(&p);
        problem_free(&p);
    }
    tg_threads_set(0);
    tg_pool_shutdown();
}

/* Two application threads calling tg_gemm_f32 at once: one product gets
 * the pool and the shared buffers, the other runs on its own thread with
 * its own; both must come out right. */
typedef struct {
    const shape_case *s;
    const float *A, *B, *C0, *want;
    float *C;
    int bad;
} concurrent_arg;

static void *concurrent_gemms(void *argp)
{
    concurrent_arg *a = argp;
    int64_t nc = a->s->M * (a->s->N + 2);
    for (int rep = 0; rep < 20; rep++) {
        gemm_case(a->s, a->A, a->B, a->C0, 0.5f, -1.5f, a->C);
        if (memcmp(a->C, a->want, (size_t)nc * 4) != 0) a->bad = 1;
    }
    return NULL;
}

Test(gemm, f32_concurrent_callers)
{
    shape_case s = vae_case(0, 0);  /* (128, 400, 784) */
    int64_t na = s.M * s.K, nb = s.K * s.N, nc = s.M * (s.N + 2);
    uint64_t seed = 5;
    float *A = xmalloc((size_t)na * 4), *B = xmalloc((size_t)nb * 4);
    float *C0 = xmalloc((size_t)nc * 4), *want = xmalloc((size_t)nc * 4);
    for (int64_t i = 0; i < na; i++) A[i] = (float)draw(&seed, TG_F32);
    for (int64_t i = 0; i < nb; i++) B[i] = (float)draw(&seed, TG_F32);
    for (int64_t i = 0; i < nc; i++) C0[i] = (float)draw(&seed, TG_F32);
    tg_threads_set(1);
    gemm_case(&s, A, B, C0, 0.5f, -1.5f, want);
    tg_threads_set(2);
    concurrent_arg args[2];
    pthread_t th[2];
    for (int t = 0; t < 2; t++) {
        args[t] = (concurrent_arg){&s, A, B, C0, want, xmalloc((size_t)nc * 4), 0};
        cr_assert_eq(pthread_create(&th[t], NULL, concurrent_gemms, &args[t]), 0);
    }
    for (int t = 0; t < 2; t++) {
        pthread_join(th[t], NULL);
        cr_assert_eq(args[t].bad, 0, "caller %d got a different C", t);
        free(args[t].C);
    }
    free(A); free(B); free(C0); free(want);
    tg_threads_set(0);
    tg_pool_shutdown();
}

/* ------------------------------------------------------------------------ */
/* Kernel selection. */

Test(gemm, kernel_selection)
{
    cr_assert(tg_gemm_kernel_supported("auto"));
    cr_assert(tg_gemm_kernel_supported("generic"));
    cr_assert(!tg_gemm_kernel_supported("sse9"));
    cr_assert(!tg_gemm_kernel_supported(NULL));

    const char *best = NULL;
    for (int k = 0; k < NKERNEL_NAMES; k++) {
        if (!tg_gemm_kernel_supported(kernel_names[k])) continue;
        if (best == NULL) best = kernel_names[k];
        tg_gemm_force_kernel(kernel_names[k]);
        cr_assert_str_eq(tg_gemm_kernel_name(), kernel_names[k]);
        cr_log_info("gemm kernel %s: supported", kernel_names[k]);
    }
    tg_gemm_force_kernel("auto");
    cr_assert_str_eq(tg_gemm_kernel_name(), best, "auto should pick the widest kernel");
}

static void unknown_kernel(void) { tg_gemm_force_kernel("sse9"); }

Test(gemm, unknown_kernel_aborts)
{
    tg_expect_abort(unknown_kernel, "tapegrad: tg_gemm_force_kernel: unknown kernel \"sse9\"");
}

static void bad_leading_dimension(void)
{
    float A[6] = {0}, B[6] = {0}, C[4] = {0};
    /* A is (2, 3), so lda = 2 is too small. */
    tg_gemm_f32(false, false, 2, 2, 3, 1.0f, A, 2, B, 2, 0.0f, C, 2);
}

Test(gemm, bad_leading_dimension_aborts)
{
    tg_expect_abort(bad_leading_dimension, "tapegrad: tg_gemm_f32: lda=2 is less than the 3 columns of A");
}

/* Packing A a column block at a time, from blocks that lie apart in memory
 * (a convolution's dy, image by image), gives the bytes of packing it
 * whole, zero rows included. */
Test(gemm, f32_pack_a_cols_matches_pack_a)
{
    enum { M = 37, NB = 3, P = 49, K = NB * P };
    int R = tg_gemm_f32_panel_rows(M);
    size_t bytes = (size_t)((M + R - 1) / R * R * K) * sizeof(float);
    float *A = xmalloc((size_t)(M * K) * sizeof(float)), *blocks = xmalloc((size_t)(M * K) * sizeof(float));
    float *whole = xmalloc(bytes), *cols = xmalloc(bytes);
    for (int64_t i = 0; i < M * K; i++) A[i] = (float)((i * 7919) % 1013) - 500.0f;
    for (int64_t b = 0; b < NB; b++)   /* block b as its own (M, P) matrix */
        for (int64_t i = 0; i < M; i++) memcpy(blocks + (b * M + i) * P, A + i * K + b * P, P * sizeof(float));
    memset(whole, 0xff, bytes);
    memset(cols, 0x7f, bytes);
    tg_gemm_f32_pack_a(whole, false, M, K, A, K);
    for (int64_t b = 0; b < NB; b++) tg_gemm_f32_pack_a_cols(cols, M, K, b * P, P, blocks + b * M * P, P);
    cr_assert(memcmp(whole, cols, bytes) == 0);
    free(A), free(blocks), free(whole), free(cols);
}
