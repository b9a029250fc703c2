/*
 * test_bmm.c — tg_matmul on batches (torch.matmul's N-d rules): gradient
 * checks of broadcast batch dims with every transpose flag, shapes, the
 * batched float32 product against the 2-D products of its matrices bit for
 * bit, the bits unchanged by the thread count, no allocation in steady
 * state, and the shape errors.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "autograd/autograd.h"
#include "tensor/gemm.h"
#include "tensor/kernels.h"
#include "tensor/threads.h"
#include "tests/alloc_count.h"
#include "tests/child.h"

#define S(...) TG_SHAPE(__VA_ARGS__)

/* A batched pair: a's and b's batch dims (op(a) (M, K), op(b) (K, N) after them). */
typedef struct {
    tg_shape batch_a, batch_b, batch_out;
} bcase;

static const bcase bcases[] = {
    {S(2, 3), {0}, S(2, 3)},            /* (2, 3, M, K) @ (K, N): b broadcast; one folded GEMM */
    {{0}, S(4), S(4)},                  /* (M, K) @ (4, K, N): a broadcast */
    {S(2, 1), S(3), S(2, 3)},           /* (2, 1, M, K) @ (3, K, N): both broadcast */
    {S(3), S(3), S(3)},                 /* equal batches */
    {S(1), S(2), S(2)},                 /* a size-1 batch dim against 2 */
    {S(2, 1, 3), S(1, 2, 1), S(2, 2, 3)},
    {S(1, 1), {0}, S(1, 1)},            /* only size-1 batch dims */
    {S(3), S(1), S(3)},                 /* b's size-1 batch dim */
};
enum { NBCASES = sizeof bcases / sizeof bcases[0] };

/* batch + the matrix (rows, cols), or (cols, rows) stored transposed. */
static tg_shape with_matrix(tg_shape batch, int64_t rows, int64_t cols, bool transposed) {
    tg_shape s = batch;
    s.d[s.ndim++] = transposed ? cols : rows;
    s.d[s.ndim++] = transposed ? rows : cols;
    return s;
}

static tg_var *f_bmm(tg_tape *t, tg_var **v, void *c) {
    const bool *tr = c;
    return tg_matmul(t, v[0], v[1], tr[0], tr[1]);
}

/* ---------------------------------------------------------------- gradients */

Test(bmm, gradcheck_broadcast_batches_every_transpose) {
    enum { M = 3, K = 4, N = 2 };
    for (int c = 0; c < NBCASES; c++)
        for (int k = 0; k < 4; k++) {
            bool tr[2] = {k & 1, k & 2};
            tg_arena *ar = tg_arena_new();
            tg_rng r = tg_rng_seed(100 + (uint64_t)c);
            tg_tensor *in[2] = {
                tg_tensor_uniform(ar, TG_F64, with_matrix(bcases[c].batch_a, M, K, tr[0]), -1, 1, &r),
                tg_tensor_uniform(ar, TG_F64, with_matrix(bcases[c].batch_b, K, N, tr[1]), -1, 1, &r)};
            tg_gradcheck_result res = tg_gradcheck(f_bmm, in, 2, tr, 1e-6, 1e-7, 1e-6);
            char s1[96], s2[96];
            cr_expect(res.ok && res.checked == in[0]->numel + in[1]->numel,
                      "case %d %s%s @ %s%s: input %d element %lld analytic %.10g numeric %.10g", c,
                      tg_shape_str(in[0]->shape, s1), tr[0] ? "^T" : "", tg_shape_str(in[1]->shape, s2),
                      tr[1] ? "^T" : "", res.worst_input, (long long)res.worst_index, res.analytic, res.numeric);
            tg_arena_free(ar);
        }
}

Test(bmm, output_shapes_follow_torch_matmul) {
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    for (int c = 0; c < NBCASES; c++) {
        tg_var *x = tg_leaf(t, tg_tensor_zeros(a, TG_F32, with_matrix(bcases[c].batch_a, 5, 6, false)), false);
        tg_var *y = tg_leaf(t, tg_tensor_zeros(a, TG_F32, with_matrix(bcases[c].batch_b, 6, 7, false)), false);
        tg_var *z = tg_matmul(t, x, y, false, false);
        char s1[96], s2[96];
        tg_shape want = with_matrix(bcases[c].batch_out, 5, 7, false);
        cr_expect(tg_shape_eq(z->val.shape, want), "case %d: %s, want %s", c, tg_shape_str(z->val.shape, s1),
                  tg_shape_str(want, s2));
    }
    tg_tape_free(t);
}

/* A known value: a (2, 1, 2) rows [1, 2] and [3, 4] times b (2, 1) = [[10],
 * [100]]; the gradient of sum(out) with respect to the broadcast b sums both
 * batches: db = [1 + 3, 2 + 4]. */
Test(bmm, broadcast_gradient_is_summed_over_the_batch) {
    tg_tape *t = tg_tape_new();
    tg_arena *ar = tg_tape_arena(t);
    double av[4] = {1, 2, 3, 4}, bv[2] = {10, 100};
    tg_var *a = tg_leaf(t, tg_tensor_from(ar, TG_F64, S(2, 1, 2), av, TG_F64), true);
    tg_var *b = tg_leaf(t, tg_tensor_from(ar, TG_F64, S(2, 1), bv, TG_F64), true);
    tg_var *z = tg_matmul(t, a, b, false, false);
    cr_expect(tg_shape_eq(z->val.shape, S(2, 1, 1)));
    cr_expect_eq(tg_tensor_get(&z->val, 0), 210.0);
    cr_expect_eq(tg_tensor_get(&z->val, 1), 430.0);
    tg_backward(t, tg_sum(t, z));
    cr_expect_eq(tg_tensor_get(&b->grad, 0), 4.0);
    cr_expect_eq(tg_tensor_get(&b->grad, 1), 6.0);
    for (int i = 0; i < 4; i++) cr_expect_eq(tg_tensor_get(&a->grad, i), bv[i % 2]);
    tg_tape_free(t);
}

/* The kernel into a smaller batch: out (2, 1, M, N) from a (2, 3, M, K) and
 * b (3, K, N) is beta out + the sum over the 3 of the products; beta counts
 * once per out matrix, on the first product landing there. */
Test(bmm, kernel_sums_into_a_smaller_out_batch_with_beta) {
    enum { M = 2, K = 3, N = 4 };
    tg_arena *ar = tg_arena_new();
    tg_rng r = tg_rng_seed(21);
    for (int k = 0; k < 4; k++) {
        bool ta = k & 1, tb = k & 2;
        tg_tensor *a = tg_tensor_uniform(ar, TG_F64, with_matrix(S(2, 3), M, K, ta), -1, 1, &r);
        tg_tensor *b = tg_tensor_uniform(ar, TG_F64, with_matrix(S(3), K, N, tb), -1, 1, &r);
        tg_tensor *out = tg_tensor_uniform(ar, TG_F64, S(2, 1, M, N), -1, 1, &r), *want = tg_tensor_copy(ar, out);
        tg_tensor_bmm(out, a, ta, b, tb, 0.5);
        for (int64_t i = 0; i < 2; i++)
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) {
                    double acc = 0.5 * tg_tensor_get(want, (i * M + m) * N + n);
                    for (int64_t j = 0; j < 3; j++)
                        for (int64_t q = 0; q < K; q++)
                            acc += tg_tensor_get(a, (i * 3 + j) * M * K + (ta ? q * M + m : m * K + q)) *
                                   tg_tensor_get(b, j * K * N + (tb ? n * K + q : q * N + n));
                    cr_expect_float_eq(tg_tensor_get(out, (i * M + m) * N + n), acc, 1e-12, "ta=%d tb=%d", ta, tb);
                }
    }
    tg_arena_free(ar);
}

/* ---------------------------------------------------------------- bits */

/* Big enough for the GEMM to share each product out over threads (M N K >= 2^19). */
enum { BM = 70, BK = 90, BN = 100 };

/* The matrix at batch index i (row-major over batch) of x, broadcast to
 * batch shape full: a 2-D view (no copy). */
static tg_tensor matrix_at(const tg_tensor *x, tg_shape full, int64_t i) {
    int xb = x->shape.ndim - 2;
    int64_t rows = x->shape.d[xb], cols = x->shape.d[xb + 1], off = 0, stride = 1;
    for (int k = full.ndim - 1; k >= 0; k--) {
        int64_t ik = i % full.d[k];
        i /= full.d[k];
        int kx = k - (full.ndim - xb);
        int64_t size = kx >= 0 ? x->shape.d[kx] : 1;
        if (size != 1) off += ik * stride;
        stride *= size;
    }
    return tg_tensor_wrap(TG_F32, S(rows, cols), TG_F32P(x) + off * rows * cols);
}

Test(bmm, batched_product_equals_the_2d_products_bit_for_bit, .timeout = 60) {
    static const char *kernels[] = {"generic", "avx2", "avx512"};
    tg_arena *ar = tg_arena_new();
    tg_rng r = tg_rng_seed(5);
    for (int kn = 0; kn < 3; kn++) {
        if (!tg_gemm_kernel_supported(kernels[kn])) continue;
        tg_gemm_force_kernel(kernels[kn]);
        for (int c = 0; c < NBCASES; c++)
            for (int k = 0; k < 4; k++) {
                bool ta = k & 1, tb = k & 2;
                const bcase *bc = &bcases[c];
                tg_tensor *a = tg_tensor_uniform(ar, TG_F32, with_matrix(bc->batch_a, BM, BK, ta), -1, 1, &r);
                tg_tensor *b = tg_tensor_uniform(ar, TG_F32, with_matrix(bc->batch_b, BK, BN, tb), -1, 1, &r);
                tg_tensor *out = tg_tensor_new(ar, TG_F32, with_matrix(bc->batch_out, BM, BN, false));
                tg_tensor *one = tg_tensor_new(ar, TG_F32, S(BM, BN));
                tg_tensor_bmm(out, a, ta, b, tb, 0.0);
                int64_t n = tg_shape_numel(bc->batch_out);
                for (int64_t i = 0; i < n; i++) {
                    tg_tensor ai = matrix_at(a, bc->batch_out, i), bi = matrix_at(b, bc->batch_out, i);
                    tg_tensor_matmul(one, &ai, ta, &bi, tb, 0.0);
                    cr_assert(memcmp(one->data, TG_F32P(out) + i * BM * BN, sizeof(float) * BM * BN) == 0,
                              "kernel %s case %d ta=%d tb=%d: batch %lld differs from its 2-D product", kernels[kn],
                              c, ta, tb, (long long)i);
                }
                tg_arena_reset(ar);
            }
    }
    tg_gemm_force_kernel("auto");
    tg_arena_free(ar);
}

/* Out, dA and dB of sum(u * op(a) @ op(b)) in float32 into bytes (numel of each, in order). */
static void run_f32(const bcase *bc, bool ta, bool tb, float *bytes) {
    tg_tape *t = tg_tape_new();
    tg_arena *ar = tg_tape_arena(t);
    tg_rng r = tg_rng_seed(77);
    tg_var *a = tg_leaf(t, tg_tensor_uniform(ar, TG_F32, with_matrix(bc->batch_a, BM, BK, ta), -1, 1, &r), true);
    tg_var *b = tg_leaf(t, tg_tensor_uniform(ar, TG_F32, with_matrix(bc->batch_b, BK, BN, tb), -1, 1, &r), true);
    tg_var *z = tg_matmul(t, a, b, ta, tb);
    tg_backward_seed(t, z, tg_tensor_uniform(ar, TG_F32, z->val.shape, -1, 1, &r));
    const tg_tensor *parts[3] = {&z->val, &a->grad, &b->grad};
    for (int p = 0; p < 3; p++) {
        memcpy(bytes, parts[p]->data, sizeof(float) * (size_t)parts[p]->numel);
        bytes += parts[p]->numel;
    }
    tg_tape_free(t);
}

Test(bmm, thread_count_does_not_change_the_bits, .timeout = 120) {
    for (int c = 0; c < NBCASES; c++)
        for (int k = 0; k < 4; k++) {
            bool ta = k & 1, tb = k & 2;
            const bcase *bc = &bcases[c];
            size_t n = (size_t)(tg_shape_numel(bc->batch_out) * BM * BN + tg_shape_numel(bc->batch_a) * BM * BK +
                                tg_shape_numel(bc->batch_b) * BK * BN);
            float *one = calloc(n, sizeof(float)), *many = calloc(n, sizeof(float));
            tg_threads_set(1);
            run_f32(bc, ta, tb, one);
            for (int threads = 2; threads <= 4; threads++) {
                tg_threads_set(threads);
                run_f32(bc, ta, tb, many);
                cr_expect(memcmp(one, many, n * sizeof(float)) == 0, "case %d ta=%d tb=%d: %d threads differ from 1",
                          c, ta, tb, threads);
            }
            free(one), free(many);
        }
    tg_threads_set(0);
}

/* The 2-D product is the one it always was: tg_matmul's value and gradients
 * are tg_tensor_matmul's bytes. */
Test(bmm, two_d_is_unchanged) {
    tg_tape *t = tg_tape_new();
    tg_arena *ar = tg_tape_arena(t);
    tg_rng r = tg_rng_seed(3);
    for (int k = 0; k < 4; k++) {
        bool ta = k & 1, tb = k & 2;
        tg_var *a = tg_leaf(t, tg_tensor_uniform(ar, TG_F32, ta ? S(40, 30) : S(30, 40), -1, 1, &r), true);
        tg_var *b = tg_leaf(t, tg_tensor_uniform(ar, TG_F32, tb ? S(50, 40) : S(40, 50), -1, 1, &r), true);
        tg_var *z = tg_matmul(t, a, b, ta, tb);
        tg_tensor *g = tg_tensor_uniform(ar, TG_F32, S(30, 50), -1, 1, &r);
        tg_tensor *ref = tg_tensor_new(ar, TG_F32, S(30, 50));
        tg_tensor *ga = tg_tensor_zeros(ar, TG_F32, a->val.shape), *gb = tg_tensor_zeros(ar, TG_F32, b->val.shape);
        tg_tensor_matmul(ref, &a->val, ta, &b->val, tb, 0.0);
        if (!ta) tg_tensor_matmul(ga, g, false, &b->val, !tb, 1.0);
        else tg_tensor_matmul(ga, &b->val, tb, g, true, 1.0);
        if (!tb) tg_tensor_matmul(gb, &a->val, !ta, g, false, 1.0);
        else tg_tensor_matmul(gb, g, true, &a->val, ta, 1.0);
        tg_backward_seed(t, z, g);
        cr_expect(memcmp(z->val.data, ref->data, 30 * 50 * sizeof(float)) == 0, "ta=%d tb=%d: value", ta, tb);
        cr_expect(memcmp(a->grad.data, ga->data, 30 * 40 * sizeof(float)) == 0, "ta=%d tb=%d: dA", ta, tb);
        cr_expect(memcmp(b->grad.data, gb->data, 40 * 50 * sizeof(float)) == 0, "ta=%d tb=%d: dB", ta, tb);
        tg_tape_reset(t);
    }
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- memory */

static void step(tg_tape *t, tg_tensor *x, tg_tensor *y) {
    tg_var *a = tg_leaf(t, x, true), *b = tg_leaf(t, y, true);
    tg_var *z = tg_matmul(t, a, b, true, false);   /* (2, 1, 5, 6)^T @ (3, 5, 7) -> (2, 3, 6, 7) */
    tg_backward(t, tg_sum(t, tg_matmul(t, z, b, false, true)));
    tg_tape_reset(t);
}

Test(bmm, steady_state_allocates_nothing) {
    tg_tape *t = tg_tape_new();
    tg_arena *keep = tg_arena_new();
    tg_rng r = tg_rng_seed(9);
    tg_tensor *x = tg_tensor_uniform(keep, TG_F64, S(2, 1, 5, 6), -1, 1, &r);
    tg_tensor *y = tg_tensor_uniform(keep, TG_F64, S(3, 5, 7), -1, 1, &r);
    step(t, x, y);
    uint64_t before = tg_test_alloc_count();
    for (int i = 0; i < 3; i++) step(t, x, y);
    cr_expect_eq(tg_test_alloc_count(), before, "%llu allocations in 3 steady-state steps",
                 (unsigned long long)(tg_test_alloc_count() - before));
    tg_arena_free(keep);
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- errors */

static void matmul_of(tg_shape sa, bool ta, tg_shape sb, bool tb) {
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    tg_var *x = tg_leaf(t, tg_tensor_zeros(a, TG_F32, sa), false);
    tg_var *y = tg_leaf(t, tg_tensor_zeros(a, TG_F32, sb), false);
    tg_matmul(t, x, y, ta, tb);
}
static const int matmul_at = __LINE__ - 2;   /* the line of the tg_matmul call above */

static void bad_inner(void) { matmul_of(S(2, 3, 4), true, S(5, 4), false); }
static void bad_batch(void) { matmul_of(S(2, 3, 4), false, S(3, 4, 5), false); }
static void bad_vector(void) { matmul_of(S(4), false, S(4, 5), true); }

Test(bmm, shape_errors_name_op_shapes_flags_and_caller) {
    char at[64];
    snprintf(at, sizeof at, "(at tests/test_bmm.c:%d)", matmul_at);
    tg_expect_abort(bad_inner, "tapegrad: matmul: inner dimensions differ: (2, 3, 4)^T @ (5, 4)", at);
    tg_expect_abort(bad_batch, "tapegrad: matmul: batch dimensions are not broadcastable: (2, 3, 4) @ (3, 4, 5)", at);
    tg_expect_abort(bad_vector, "tapegrad: matmul: operands must be at least 2-D", "(4,) and (4, 5)^T", at);
}
