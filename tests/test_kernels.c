/*
 * test_kernels.c — the tape-free tensor kernels (tensor/kernels.h) against
 * plain loops written here: broadcasting and its sum-back, maps, reductions
 * (and their independence of the thread count), matmul with every transpose,
 * slices, one_hot, the fused loss terms, logsumexp.
 */
#include <criterion/criterion.h>
#include <math.h>

#include "tensor/kernels.h"
#include "tensor/pool.h"

static tg_arena *arena;
static void setup(void) { arena = tg_arena_new(); }
static void teardown(void) { tg_arena_free(arena); }
TestSuite(kernels, .init = setup, .fini = teardown, .timeout = 120);

static tg_rng rng;

/* A float64 tensor of shape s with values in [-2, 2). */
static tg_tensor *rnd(tg_shape s) {
    tg_tensor *t = tg_tensor_new(arena, TG_F64, s);
    for (int64_t i = 0; i < t->numel; i++) tg_tensor_set(t, i, 4 * tg_rng_uniform(&rng) - 2);
    return t;
}

static double at(const tg_tensor *t, int64_t i) { return tg_tensor_get(t, i); }

Test(kernels, broadcasting_binary_ops_match_loops) {
    rng = tg_rng_seed(1);
    tg_tensor *a = rnd(TG_SHAPE(2, 1, 3)), *b = rnd(TG_SHAPE(4, 1)), *o = tg_tensor_new(arena, TG_F64, TG_SHAPE(2, 4, 3));
    tg_shape s;
    cr_assert(tg_shape_broadcast(a->shape, b->shape, &s) && tg_shape_eq(s, o->shape));
    cr_expect(!tg_shape_broadcast(TG_SHAPE(2, 3), TG_SHAPE(4), &s), "(2, 3) and (4) do not broadcast");
    void (*ops[])(tg_tensor *, const tg_tensor *, const tg_tensor *) = {tg_tensor_add, tg_tensor_sub, tg_tensor_mul,
                                                                        tg_tensor_div};
    for (int k = 0; k < 4; k++) {
        ops[k](o, a, b);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 4; j++)
                for (int c = 0; c < 3; c++) {
                    double x = at(a, i * 3 + c), y = at(b, j);
                    double want = k == 0 ? x + y : k == 1 ? x - y : k == 2 ? x * y : x / y;
                    cr_expect_eq(at(o, (i * 4 + j) * 3 + c), want, "op %d at (%d, %d, %d)", k, i, j, c);
                }
    }
}

Test(kernels, sum_back_and_broadcast_are_transposes) {
    rng = tg_rng_seed(2);
    tg_tensor *g = rnd(TG_SHAPE(3, 4)), *col = tg_tensor_zeros(arena, TG_F64, TG_SHAPE(3, 1)),
              *row = tg_tensor_zeros(arena, TG_F64, TG_SHAPE(4));
    tg_tensor_acc_sum_to(col, g, 1);
    tg_tensor_acc_sum_to(row, g, -2);
    for (int i = 0; i < 3; i++) {
        double s = 0;
        for (int j = 0; j < 4; j++) s += at(g, i * 4 + j);
        cr_expect(fabs(at(col, i) - s) < 1e-15, "row sum %d", i);
    }
    for (int j = 0; j < 4; j++) {
        double s = 0;
        for (int i = 0; i < 3; i++) s += at(g, i * 4 + j);
        cr_expect(fabs(at(row, j) + 2 * s) < 1e-14, "column sum %d, scaled by -2", j);
    }
    /* <sum_to(g), v> = <g, broadcast(v)>: the two are adjoint. */
    tg_tensor *v = rnd(TG_SHAPE(4)), *big = tg_tensor_zeros(arena, TG_F64, TG_SHAPE(3, 4));
    tg_tensor_acc_broadcast(big, v, 0.5);
    double lhs = 0, rhs = 0;
    for (int j = 0; j < 4; j++) lhs += -0.5 * at(row, j) * at(v, j) / 2;
    for (int k = 0; k < 12; k++) rhs += at(g, k) * at(big, k);
    cr_expect(fabs(lhs - rhs) < 1e-13, "%g vs %g", lhs, rhs);
    tg_tensor *e = tg_tensor_new(arena, TG_F64, TG_SHAPE(3, 4));
    tg_tensor_expand(e, v);
    for (int k = 0; k < 12; k++) cr_expect_eq(at(e, k), at(v, k % 4));
}

Test(kernels, maps_and_fused_terms_match_libm) {
    rng = tg_rng_seed(3);
    tg_tensor *x = rnd(TG_SHAPE(64)), *y = tg_tensor_new(arena, TG_F64, TG_SHAPE(64)),
              *t = tg_tensor_new(arena, TG_F64, TG_SHAPE(64)), *p = tg_tensor_new(arena, TG_F64, TG_SHAPE(64));
    for (int64_t i = 0; i < 64; i++) tg_tensor_set(t, i, tg_rng_uniform(&rng)), tg_tensor_set(p, i, 0.01 + 0.98 * tg_rng_uniform(&rng));
    struct { void (*f)(tg_tensor *, const tg_tensor *); double (*ref)(double); } maps[] = {
        {tg_tensor_exp, exp}, {tg_tensor_tanh, tanh}, {tg_tensor_square, NULL}, {tg_tensor_sigmoid, NULL},
        {tg_tensor_softplus, NULL}, {tg_tensor_relu, NULL}, {tg_tensor_step, NULL}, {tg_tensor_neg, NULL}};
    for (int k = 0; k < 8; k++) {
        maps[k].f(y, x);
        for (int64_t i = 0; i < 64; i++) {
            double v = at(x, i), want = maps[k].ref ? maps[k].ref(v)
                                        : k == 2 ? v * v : k == 3 ? 1 / (1 + exp(-v)) : k == 4 ? log1p(exp(v))
                                        : k == 5 ? fmax(v, 0) : k == 6 ? (v > 0) : -v;
            cr_expect(fabs(at(y, i) - want) <= 1e-14 * (1 + fabs(want)), "map %d at %g: %g vs %g", k, v, at(y, i), want);
        }
    }
    tg_tensor_bce_logits(y, x, t);
    double sum = 0;
    for (int64_t i = 0; i < 64; i++) {
        double v = at(x, i), s = 1 / (1 + exp(-v)), want = -(at(t, i) * log(s) + (1 - at(t, i)) * log(1 - s));
        cr_expect(fabs(at(y, i) - want) < 1e-12, "bce_logits at %g", v);
        sum += at(y, i);
    }
    tg_tensor *rs = tg_tensor_new(arena, TG_F64, TG_SHAPE(2)), xr = tg_tensor_wrap(TG_F64, TG_SHAPE(2, 32), x->data),
              tr = tg_tensor_wrap(TG_F64, TG_SHAPE(2, 32), t->data);
    int64_t rows[] = {1, 1};   /* both rows of x against the second row of t */
    tg_tensor_bce_logits_rows(rs, &xr, &tr, NULL);
    double first = 0;
    for (int64_t i = 0; i < 32; i++) first += at(y, i);
    cr_expect(fabs(at(rs, 0) - first) < 1e-12 && fabs(at(rs, 0) + at(rs, 1) - sum) < 1e-12, "row sums of the terms");
    tg_tensor_bce_logits_rows(rs, &xr, &tr, rows);
    double other = 0;
    for (int64_t i = 0; i < 32; i++) {
        double v = at(x, i), tt = at(t, 32 + i);
        other += fmax(v, 0) - v * tt + log1p(exp(-fabs(v)));
    }
    cr_expect(fabs(at(rs, 0) - other) < 1e-12, "rows[] picks the target row");
    tg_tensor_bce(y, p, t);
    for (int64_t i = 0; i < 64; i++) {
        double want = -(at(t, i) * log(at(p, i)) + (1 - at(t, i)) * log(1 - at(p, i)));
        cr_expect(fabs(at(y, i) - want) < 1e-12, "bce at p = %g", at(p, i));
    }
}

Test(kernels, whole_sums_do_not_depend_on_the_thread_count) {
    rng = tg_rng_seed(4);
    tg_tensor *x = tg_tensor_new(arena, TG_F32, TG_SHAPE(5000003));   /* > one block of chunks, odd tail */
    double naive = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        TG_F32P(x)[i] = (float)tg_rng_uniform(&rng);
        naive += TG_F32P(x)[i];
    }
    double s[3];
    for (int k = 0; k < 3; k++) {
        tg_threads_set(k + 1);
        s[k] = tg_tensor_sum(x);
    }
    tg_threads_set(0);
    cr_expect(s[0] == s[1] && s[1] == s[2], "sums at 1, 2, 3 threads: %.17g %.17g %.17g", s[0], s[1], s[2]);
    cr_expect(fabs(s[0] - naive) < 1e-9 * naive, "%.17g vs %.17g", s[0], naive);
}

Test(kernels, sum_along_an_axis) {
    rng = tg_rng_seed(5);
    tg_tensor *x = rnd(TG_SHAPE(2, 3, 4)), *o = tg_tensor_new(arena, TG_F64, TG_SHAPE(2, 4));
    tg_tensor_sum_axis(o, x, 1, 0.5);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 4; k++) {
            double s = 0;
            for (int j = 0; j < 3; j++) s += at(x, (i * 3 + j) * 4 + k);
            cr_expect(fabs(at(o, i * 4 + k) - 0.5 * s) < 1e-15);
        }
}

Test(kernels, matmul_every_transpose) {
    rng = tg_rng_seed(6);
    const int M = 5, N = 7, K = 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            tg_tensor *a = rnd(ta ? TG_SHAPE(K, M) : TG_SHAPE(M, K)), *b = rnd(tb ? TG_SHAPE(N, K) : TG_SHAPE(K, N));
            tg_tensor *c = rnd(TG_SHAPE(M, N)), *c0 = tg_tensor_copy(arena, c);
            tg_tensor_matmul(c, a, ta, b, tb, 0.5);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0.5 * at(c0, i * N + j);
                    for (int k = 0; k < K; k++) s += at(a, ta ? k * M + i : i * K + k) * at(b, tb ? j * K + k : k * N + j);
                    cr_expect(fabs(at(c, i * N + j) - s) < 1e-13, "ta %d tb %d at (%d, %d)", ta, tb, i, j);
                }
        }
}

Test(kernels, slices_swaps_and_one_hot) {
    rng = tg_rng_seed(7);
    tg_tensor *x = rnd(TG_SHAPE(2, 5, 3)), *part = tg_tensor_new(arena, TG_F64, TG_SHAPE(2, 2, 3));
    tg_tensor_narrow(part, x, 1, 3, false);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 3; k++) cr_expect_eq(at(part, (i * 2 + j) * 3 + k), at(x, (i * 5 + 3 + j) * 3 + k));
    tg_tensor *y = tg_tensor_zeros(arena, TG_F64, TG_SHAPE(2, 5, 3));
    tg_tensor_place(y, part, 1, 3, true);
    tg_tensor_place(y, part, 1, 3, true);
    for (int64_t i = 0; i < 30; i++) cr_expect_eq(at(y, i), (i / 3) % 5 >= 3 ? 2 * at(x, i) : 0.0, "place at %lld", (long long)i);
    tg_tensor *sw = tg_tensor_new(arena, TG_F64, TG_SHAPE(3, 5, 2));
    tg_tensor_swap_axes(sw, x, 0, 2, false);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 5; j++)
            for (int k = 0; k < 3; k++) cr_expect_eq(at(sw, (k * 5 + j) * 2 + i), at(x, (i * 5 + j) * 3 + k));
    tg_tensor *lab = tg_tensor_new(arena, TG_F64, TG_SHAPE(3)), *oh = tg_tensor_new(arena, TG_F64, TG_SHAPE(3, 4));
    double good[] = {2, 0, 3}, bad[] = {1, 4, 0};
    for (int i = 0; i < 3; i++) tg_tensor_set(lab, i, good[i]);
    cr_expect_eq(tg_tensor_one_hot(oh, lab), -1);
    for (int i = 0; i < 12; i++) cr_expect_eq(at(oh, i), (double)(i % 4 == good[i / 4]));
    for (int i = 0; i < 3; i++) tg_tensor_set(lab, i, bad[i]);
    cr_expect_eq(tg_tensor_one_hot(oh, lab), 1, "the index of the label outside [0, 4)");
}

Test(kernels, logsumexp_edges) {
    double v[] = {-1e4, -1e4 + log(2.0), -1e4 + log(2.0)}, inf[] = {-INFINITY, -INFINITY}, pinf[] = {0, INFINITY};
    cr_expect(fabs(tg_logsumexp(v, 3) - (-1e4 + log(5.0))) < 1e-9);
    cr_expect(tg_logsumexp(inf, 2) == -INFINITY && tg_logsumexp(v, 0) == -INFINITY && tg_logsumexp(pinf, 2) == INFINITY);
}
