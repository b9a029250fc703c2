/*
 * test_ops_map.c — the elementwise maps, maximum / minimum, comparisons and
 * where at their edges: kinks hit exactly (PyTorch's conventions there),
 * extreme arguments, ties, broadcasting, float32 against float64, and the
 * abort messages; and the broadcasting forms of bce, bce_logits and reparam.
 * (Every op's gradient check and PyTorch comparison are in test_ops.c and
 * test_torch_ops.c.)
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

#include "autograd/autograd.h"
#include "tensor/kernels.h"
#include "tests/child.h"

#define S(...) TG_SHAPE(__VA_ARGS__)

typedef tg_var *(*map_fn)(tg_tape *t, tg_var *x);

static tg_var *m_abs(tg_tape *t, tg_var *x) { return tg_abs(t, x); }
static tg_var *m_clamp(tg_tape *t, tg_var *x) { return tg_clamp(t, x, -0.5, 2.0); }
static tg_var *m_log1p(tg_tape *t, tg_var *x) { return tg_log1p(t, x); }
static tg_var *m_expm1(tg_tape *t, tg_var *x) { return tg_expm1(t, x); }
static tg_var *m_leaky(tg_tape *t, tg_var *x) { return tg_leaky_relu(t, x, 0.01); }
static tg_var *m_elu(tg_tape *t, tg_var *x) { return tg_elu(t, x, 0.7); }
static tg_var *m_gelu(tg_tape *t, tg_var *x) { return tg_gelu(t, x); }
static tg_var *m_gelu_tanh(tg_tape *t, tg_var *x) { return tg_gelu_tanh(t, x); }
static tg_var *m_silu(tg_tape *t, tg_var *x) { return tg_silu(t, x); }
static tg_var *m_hardtanh(tg_tape *t, tg_var *x) { return tg_hardtanh(t, x, -0.5, 2.0); }

/* Value and gradient of a map at one point, in dtype dt. */
static void at(map_fn f, tg_dtype dt, double x0, double *y, double *g) {
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_full(tg_tape_arena(t), dt, S(1), x0), true);
    tg_var *out = f(t, x);
    tg_backward(t, tg_sum(t, out));
    *y = tg_tensor_get(&out->val, 0), *g = tg_tensor_get(&x->grad, 0);
    tg_tape_free(t);
}

/* Expects f(x0) = y0 and f'(x0) = g0 (each rounded to the dtype) within tol
 * (relative, absolute below 1), in both dtypes. */
static void expect_at(const char *what, map_fn f, double x0, double y0, double g0, double tol64, double tol32) {
    for (int dt = 0; dt < 2; dt++) {
        double y, g, tol = dt == TG_F64 ? tol64 : tol32;
        at(f, dt, x0, &y, &g);
        double yw = dt == TG_F32 ? (float)y0 : y0, gw = dt == TG_F32 ? (float)g0 : g0;
        cr_expect(fabs(y - yw) <= tol * fmax(1, fabs(yw)) && fabs(g - gw) <= tol * fmax(1, fabs(gw)),
                  "%s(%g) %s: value %.17g (want %.17g), gradient %.17g (want %.17g)", what, x0,
                  dt == TG_F64 ? "float64" : "float32", y, yw, g, gw);
    }
}

/* ---------------------------------------------------------------- kinks, as PyTorch */

Test(ops_map, gradients_at_exactly_zero) {
    expect_at("abs", m_abs, 0.0, 0.0, 0.0, 0, 0);             /* sign(0) = 0 */
    expect_at("abs", m_abs, -1e-30, 1e-30, -1.0, 0, 0);
    expect_at("leaky_relu", m_leaky, 0.0, 0.0, 0.01, 0, 1e-9); /* slope at 0 */
    expect_at("leaky_relu", m_leaky, 1e-30, 1e-30, 1.0, 0, 0);
    expect_at("leaky_relu", m_leaky, -2.0, -0.02, 0.01, 0, 1e-9);
    expect_at("elu", m_elu, 0.0, 0.0, 0.7, 0, 1e-7);           /* alpha e^0 at 0 */
}

Test(ops_map, clamp_passes_the_gradient_at_its_bounds_inclusive) {
    expect_at("clamp", m_clamp, -0.5, -0.5, 1.0, 0, 0);
    expect_at("clamp", m_clamp, 2.0, 2.0, 1.0, 0, 0);
    expect_at("clamp", m_clamp, -0.5000001, -0.5, 0.0, 0, 0);   /* just outside, in float32 too */
    expect_at("clamp", m_clamp, 2.0000003, 2.0, 0.0, 0, 0);
    expect_at("clamp", m_clamp, 1.0, 1.0, 1.0, 0, 0);
    tg_tape *t = tg_tape_new();
    double v[4] = {-1e300, -3, 4, 1e300};
    tg_var *x = tg_leaf(t, tg_tensor_from(tg_tape_arena(t), TG_F64, S(4), v, TG_F64), true);
    tg_var *lo = tg_clamp(t, x, -INFINITY, 3.0), *hi = tg_clamp(t, x, -2.0, INFINITY);
    double want_lo[4] = {-1e300, -3, 3, 3}, want_hi[4] = {-2, -2, 4, 1e300};
    tg_backward(t, tg_sum(t, tg_add(t, lo, hi)));
    double want_g[4] = {1, 1, 1, 1};   /* each element passes exactly one of the two */
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(tg_tensor_get(&lo->val, i), want_lo[i]);
        cr_expect_eq(tg_tensor_get(&hi->val, i), want_hi[i]);
        cr_expect_eq(tg_tensor_get(&x->grad, i), want_g[i], "element %d", i);
    }
    tg_tape_free(t);
}

/* hardtanh(x, min_val, max_val) of the n values xs in both dtypes: expects
 * the values want_y and the gradients of the sum want_g, exactly. */
static void expect_hardtanh(int n, const double *xs, double min_val, double max_val, const double *want_y,
                            const double *want_g) {
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t = tg_tape_new();
        tg_var *x = tg_leaf(t, tg_tensor_from(tg_tape_arena(t), dt, S(n), xs, TG_F64), true);
        tg_var *y = tg_hardtanh(t, x, min_val, max_val);
        tg_backward(t, tg_sum(t, y));
        for (int i = 0; i < n; i++) {
            double yi = tg_tensor_get(&y->val, i), gi = tg_tensor_get(&x->grad, i);
            double yw = dt == TG_F32 ? (float)want_y[i] : want_y[i];
            cr_expect((yi == yw || (isnan(yi) && isnan(yw))) && gi == want_g[i],
                      "hardtanh(%g, %g, %g) %s: value %.17g (want %.17g), gradient %g (want %g)", xs[i], min_val,
                      max_val, dt == TG_F64 ? "float64" : "float32", yi, yw, gi, want_g[i]);
        }
        tg_tape_free(t);
    }
}

/* The values below are PyTorch 1.13's F.hardtanh and its gradient (float64
 * and float32 alike), except at NaN: see the last test. */
Test(ops_map, hardtanh_stops_the_gradient_at_its_bounds_exclusive) {
    expect_at("hardtanh", m_hardtanh, -0.5, -0.5, 0.0, 0, 0);         /* at the bounds: 0, unlike clamp */
    expect_at("hardtanh", m_hardtanh, 2.0, 2.0, 0.0, 0, 0);
    expect_at("hardtanh", m_hardtanh, -0.4999999, -0.4999999, 1.0, 0, 0);   /* just inside, in float32 too */
    expect_at("hardtanh", m_hardtanh, 1.9999999, 1.9999999, 1.0, 0, 0);
    expect_at("hardtanh", m_hardtanh, -0.5000001, -0.5, 0.0, 0, 0);   /* just outside */
    expect_at("hardtanh", m_hardtanh, 2.0000003, 2.0, 0.0, 0, 0);
    expect_at("hardtanh", m_hardtanh, 1.0, 1.0, 1.0, 0, 0);
    expect_at("clamp", m_clamp, -0.5, -0.5, 1.0, 0, 0);               /* the same point through clamp */
    double xs[6] = {-1, 1, 0.5, -3, -INFINITY, INFINITY};             /* PyTorch's defaults, -1 and 1 */
    double y[6] = {-1, 1, 0.5, -1, -1, 1}, g[6] = {0, 0, 1, 0, 0, 0};
    expect_hardtanh(6, xs, -1, 1, y, g);
}

Test(ops_map, hardtanh_with_infinite_bounds) {
    double xs[6] = {-1e30, -3, 0.3, 4, INFINITY, -INFINITY};
    double id_g[6] = {1, 1, 1, 1, 0, 0};                              /* inf < inf is false: 0 there */
    expect_hardtanh(6, xs, -INFINITY, INFINITY, xs, id_g);
    double y[4] = {-1e30, -3, 0.3, 0.3}, g[4] = {1, 1, 0, 0};        /* no lower bound; 0.3 is the upper */
    expect_hardtanh(4, xs, -INFINITY, 0.3, y, g);
}

Test(ops_map, hardtanh_with_min_val_at_or_above_max_val_is_max_val_with_no_gradient) {
    /* F.hardtanh accepts both (only the nn.Hardtanh module asserts min_val < max_val). */
    double xs[5] = {-2, -1, 0.25, 1, 3}, zero[5] = {0, 0, 0, 0, 0};
    double eq[5] = {0.25, 0.25, 0.25, 0.25, 0.25}, above[5] = {-1, -1, -1, -1, -1};
    expect_hardtanh(5, xs, 0.25, 0.25, eq, zero);
    expect_hardtanh(5, xs, 1, -1, above, zero);                       /* min(max(x, 1), -1) = -1 */
}

Test(ops_map, hardtanh_of_nan_is_nan_with_gradient_0) {
    /* PyTorch 1.13 gives 0 or 1 here, by the element's place in its vectorised
     * loop; tapegrad takes 0, as clamp's gradient at NaN. */
    double xs[3] = {NAN, 0.5, NAN}, y[3] = {NAN, 0.5, NAN}, g[3] = {0, 1, 0};
    expect_hardtanh(3, xs, -1, 1, y, g);
}

Test(ops_map, maximum_and_minimum_split_the_gradient_at_ties) {
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t = tg_tape_new();
        tg_arena *ar = tg_tape_arena(t);
        double av[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {1, 5, 3};   /* b (3) broadcast over a's rows */
        tg_var *a = tg_leaf(t, tg_tensor_from(ar, dt, S(2, 3), av, TG_F64), true);
        tg_var *b = tg_leaf(t, tg_tensor_from(ar, dt, S(3), bv, TG_F64), true);
        tg_var *mx = tg_maximum(t, a, b), *mn = tg_minimum(t, a, b);
        double want_mx[6] = {1, 5, 3, 4, 5, 6}, want_mn[6] = {1, 2, 3, 1, 5, 3};
        for (int i = 0; i < 6; i++) {
            cr_expect_eq(tg_tensor_get(&mx->val, i), want_mx[i]);
            cr_expect_eq(tg_tensor_get(&mn->val, i), want_mn[i]);
        }
        tg_backward(t, tg_sum(t, tg_add(t, mx, tg_mul_scalar(t, mn, 10))));
        /* max: a gets 1/2 at the ties (0, 0), (0, 2), (1, 1), 1 where larger; min alike, x10. */
        double want_ga[6] = {5.5, 10, 5.5, 1, 5.5, 1}, want_gb[3] = {5.5 + 10, 1 + 5.5, 5.5 + 10};
        for (int i = 0; i < 6; i++) cr_expect_eq(tg_tensor_get(&a->grad, i), want_ga[i], "da %d", i);
        for (int i = 0; i < 3; i++) cr_expect_eq(tg_tensor_get(&b->grad, i), want_gb[i], "db %d", i);
        tg_tape_free(t);
    }
}

Test(ops_map, maximum_of_a_var_with_itself_has_gradient_one) {
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_full(tg_tape_arena(t), TG_F64, S(3), -1.5), true);
    tg_backward(t, tg_sum(t, tg_add(t, tg_maximum(t, x, x), tg_minimum(t, x, x))));
    for (int i = 0; i < 3; i++) cr_expect_eq(tg_tensor_get(&x->grad, i), 2.0);
    tg_tape_free(t);
}

Test(ops_map, maximum_and_minimum_propagate_nan) {
    tg_tape *t = tg_tape_new();
    tg_arena *ar = tg_tape_arena(t);
    double av[2] = {NAN, 1}, bv[2] = {1, NAN};
    tg_var *a = tg_leaf(t, tg_tensor_from(ar, TG_F32, S(2), av, TG_F64), false);
    tg_var *b = tg_leaf(t, tg_tensor_from(ar, TG_F32, S(2), bv, TG_F64), false);
    tg_var *mx = tg_maximum(t, a, b), *mn = tg_minimum(t, a, b);
    for (int i = 0; i < 2; i++) cr_expect(isnan(tg_tensor_get(&mx->val, i)) && isnan(tg_tensor_get(&mn->val, i)));
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- accuracy and extremes */

Test(ops_map, log1p_near_minus_one_and_zero) {
    double x = -1 + 1e-12, y, g;   /* 1 + x is exact (Sterbenz): about 1.00009e-12 */
    at(m_log1p, TG_F64, x, &y, &g);
    cr_expect_float_eq(y, log(1 + x), 1e-14 * fabs(y));
    cr_expect_float_eq(g, 1 / (1 + x), 1e-14 / (1 + x));
    expect_at("log1p", m_log1p, 1e-20, 1e-20, 1.0, 0, 0);      /* exact, not ln(1) = 0 */
    expect_at("log1p", m_log1p, -1e-10, -1.00000000005e-10, 1 / (1 - 1e-10), 1e-15, 1e-6);
    at(m_log1p, TG_F64, -1.0, &y, &g);
    cr_expect(isinf(y) && y < 0, "log1p(-1) = %g, want -inf", y);
}

Test(ops_map, expm1_near_zero) {
    expect_at("expm1", m_expm1, 1e-20, 1e-20, 1.0, 0, 0);
    expect_at("expm1", m_expm1, 1e-10, 1.00000000005e-10, 1 + 1e-10, 1e-15, 1e-6);
    expect_at("expm1", m_expm1, -3e-8, -2.99999995500000045e-08, exp(-3e-8), 1e-15, 1e-6);
    expect_at("expm1", m_expm1, -100, -1.0, 0.0, 1e-15, 1e-6);
}

Test(ops_map, smooth_activations_at_plus_minus_30_and_1e4) {
    static const map_fn fs[] = {m_gelu, m_gelu_tanh, m_silu};
    static const char *names[] = {"gelu", "gelu_tanh", "silu"};
    static const double xs[] = {30, -30, 1e4, -1e4};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 4; i++)
            for (int dt = 0; dt < 2; dt++) {
                double y, g, x = xs[i];
                at(fs[k], dt, x, &y, &g);
                bool ok = x > 0 ? fabs(y - x) <= 1e-11 * x && fabs(g - 1) <= 1e-11 : fabs(y) < 1e-11 && fabs(g) < 1e-11;
                cr_expect(ok && !isnan(y) && !isnan(g), "%s(%g) %s = %g, gradient %g", names[k], x,
                          dt == TG_F64 ? "float64" : "float32", y, g);
            }
}

Test(ops_map, elu_at_large_negative) {
    expect_at("elu", m_elu, -1e4, -0.7, 0.0, 0, 0);
    expect_at("elu", m_elu, -30, 0.7 * expm1(-30.0), 0.7 * exp(-30.0), 1e-15, 1e-6);
    expect_at("elu", m_elu, -1e-10, 0.7 * expm1(-1e-10), 0.7 * exp(-1e-10), 1e-15, 1e-6);
}

Test(ops_map, float32_matches_float64) {
    static const map_fn fs[] = {m_abs, m_clamp, m_log1p, m_expm1, m_leaky, m_elu, m_gelu, m_gelu_tanh, m_silu,
                                m_hardtanh};
    tg_tape *t = tg_tape_new();
    tg_arena *ar = tg_tape_arena(t);
    tg_rng r = tg_rng_seed(5);
    tg_tensor *x64 = tg_tensor_uniform(ar, TG_F64, S(101), -0.99, 6, &r);
    tg_tensor *x32 = tg_tensor_cast(ar, x64, TG_F32);
    x64 = tg_tensor_cast(ar, x32, TG_F64);   /* the same points in both */
    for (size_t k = 0; k < sizeof fs / sizeof *fs; k++) {
        tg_var *a = tg_leaf(t, x64, true), *b = tg_leaf(t, x32, true);
        tg_var *ya = fs[k](t, a);
        tg_backward(t, tg_sum(t, ya));   /* drops the entries: the float32 graph is built after */
        tg_var *yb = fs[k](t, b);
        tg_backward(t, tg_sum(t, yb));
        cr_expect_eq(yb->val.dtype, TG_F32);
        for (int i = 0; i < 101; i++) {
            double y = tg_tensor_get(&ya->val, i), g = tg_tensor_get(&a->grad, i);
            cr_expect(fabs(tg_tensor_get(&yb->val, i) - y) <= 2e-6 * fmax(1, fabs(y)), "map %zu value %d", k, i);
            cr_expect(fabs(tg_tensor_get(&b->grad, i) - g) <= 2e-6 * fmax(1, fabs(g)), "map %zu gradient %d", k, i);
        }
    }
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- comparisons and where */

Test(ops_map, comparisons_broadcast_give_0_1_in_the_float_dtype_and_record_nothing) {
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t = tg_tape_new();
        tg_arena *ar = tg_tape_arena(t);
        double av[3] = {1, 2, NAN}, bv[2] = {2, 1};
        tg_var *a = tg_leaf(t, tg_tensor_from(ar, dt, S(3), av, TG_F64), true);      /* (3) */
        tg_var *b = tg_leaf(t, tg_tensor_from(ar, dt, S(2, 1), bv, TG_F64), true);   /* (2, 1) */
        tg_var *(*ops[6])(const char *, int, tg_tape *, tg_var *, tg_var *) = {tg_eq_, tg_ne_, tg_lt_, tg_le_, tg_gt_,
                                                                               tg_ge_};
        /* rows: b = 2 then b = 1, against a = 1, 2, NaN */
        static const double want[6][6] = {
            {0, 1, 0, 1, 0, 0}, {1, 0, 1, 0, 1, 1}, {1, 0, 0, 0, 0, 0},
            {1, 1, 0, 1, 0, 0}, {0, 0, 0, 0, 1, 0}, {0, 1, 0, 1, 1, 0},
        };
        for (int k = 0; k < 6; k++) {
            tg_var *c = ops[k](TG_AT, t, a, b);
            cr_expect(tg_shape_eq(c->val.shape, S(2, 3)) && c->val.dtype == (tg_dtype)dt);
            cr_expect_not(c->requires_grad);
            for (int i = 0; i < 6; i++) cr_expect_eq(tg_tensor_get(&c->val, i), want[k][i], "op %d element %d", k, i);
        }
        cr_expect_eq(t->n, 0, "comparisons must not be recorded");
        tg_tape_free(t);
    }
}

Test(ops_map, where_broadcasts_cond_and_sums_gradients_back) {
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t = tg_tape_new();
        tg_arena *ar = tg_tape_arena(t);
        double cv[2] = {7, 0}, av[3] = {1, 2, 3}, bv[2] = {-1, -2};
        tg_var *c = tg_leaf(t, tg_tensor_from(ar, TG_I64, S(2, 1, 1), cv, TG_F64), false);   /* int64 */
        tg_var *a = tg_leaf(t, tg_tensor_from(ar, dt, S(3), av, TG_F64), true);
        tg_var *b = tg_leaf(t, tg_tensor_from(ar, dt, S(2, 1), bv, TG_F64), true);
        tg_var *y = tg_where(t, c, a, b);   /* (2, 2, 3): first block a, second b */
        cr_expect(tg_shape_eq(y->val.shape, S(2, 2, 3)) && y->val.dtype == (tg_dtype)dt);
        double want[12] = {1, 2, 3, 1, 2, 3, -1, -1, -1, -2, -2, -2};
        for (int i = 0; i < 12; i++) cr_expect_eq(tg_tensor_get(&y->val, i), want[i]);
        tg_backward(t, tg_sum(t, tg_mul(t, y, y)));   /* d/dy = 2y */
        for (int i = 0; i < 3; i++) cr_expect_eq(tg_tensor_get(&a->grad, i), 4 * av[i]);
        for (int i = 0; i < 2; i++) cr_expect_eq(tg_tensor_get(&b->grad, i), 6 * bv[i]);
        cr_expect_null(c->grad.data);
        tg_tape_free(t);
    }
}

Test(ops_map, where_takes_a_comparison_and_a_nan_cond_is_true) {
    tg_tape *t = tg_tape_new();
    tg_arena *ar = tg_tape_arena(t);
    double xv[4] = {-2, -0.5, 0.5, 2}, cv[1] = {NAN};
    tg_var *x = tg_leaf(t, tg_tensor_from(ar, TG_F64, S(4), xv, TG_F64), true);
    tg_var *zero = tg_leaf(t, tg_tensor_zeros(ar, TG_F64, S(1)), false);
    tg_var *y = tg_where(t, tg_gt(t, x, zero), x, tg_mul_scalar(t, x, 0.1));   /* leaky_relu(x, 0.1) */
    tg_var *ref = tg_leaky_relu(t, x, 0.1);
    for (int i = 0; i < 4; i++) cr_expect_eq(tg_tensor_get(&y->val, i), tg_tensor_get(&ref->val, i));
    tg_var *n = tg_leaf(t, tg_tensor_from(ar, TG_F32, S(1), cv, TG_F64), false);
    tg_var *w = tg_where(t, n, x, zero);
    for (int i = 0; i < 4; i++) cr_expect_eq(tg_tensor_get(&w->val, i), xv[i]);
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- broadcasting losses */

static tg_var *f_loss(tg_tape *t, tg_var **v, void *c) {
    switch (*(int *)c) {
    case 0: return tg_bce(t, v[0], v[1]);
    case 1: return tg_bce_logits(t, v[0], v[1]);
    default: {
        tg_shape s;
        tg_shape_broadcast(v[0]->val.shape, v[1]->val.shape, &s);
        tg_rng r = tg_rng_seed(9);   /* the same eps on every evaluation */
        return tg_reparam(t, v[0], v[1], tg_tensor_normal(tg_tape_arena(t), TG_F64, s, &r));
    }
    }
}

Test(ops_map, bce_bce_logits_and_reparam_broadcast) {
    static const tg_shape pairs[][2] = {{S(3, 1), S(4)}, {S(4), S(2, 3, 4)}, {S(2, 1, 3), S(4, 1)}, {S(3, 4), S(3, 4)}};
    tg_arena *ar = tg_arena_new();
    for (int k = 0; k < 3; k++)
        for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
            tg_rng r = tg_rng_seed(p);
            tg_tensor *in[2] = {tg_tensor_uniform(ar, TG_F64, pairs[p][0], 0.05, 0.95, &r),
                                tg_tensor_uniform(ar, TG_F64, pairs[p][1], 0.05, 0.95, &r)};
            tg_gradcheck_result res = tg_gradcheck(f_loss, in, 2, &k, 1e-6, 1e-7, 1e-6);
            cr_expect(res.ok, "loss %d pair %zu: input %d analytic %g numeric %g", k, p, res.worst_input, res.analytic,
                      res.numeric);
        }
    tg_arena_free(ar);
    tg_tape *t = tg_tape_new();
    tg_rng r = tg_rng_seed(1);
    tg_var *mu = tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_F32, S(5, 1)), true);
    tg_var *lv = tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_F32, S(3)), true);
    tg_var *z = tg_reparam_sample(t, mu, lv, &r);
    cr_expect(tg_shape_eq(z->val.shape, S(5, 3)));
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- errors */

static tg_var *leaf(tg_tape *t, tg_dtype dt, tg_shape s) {
    return tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), dt, s), false);
}

static void bad_maximum(void) {
    tg_tape *t = tg_tape_new();
    tg_var *a = leaf(t, TG_F32, S(2, 3)), *b = leaf(t, TG_F32, S(4));
    tg_maximum(t, a, b);
}
static const int bad_maximum_at = __LINE__ - 2;

static void bad_ge(void) {
    tg_tape *t = tg_tape_new();
    tg_var *a = leaf(t, TG_F64, S(3, 2)), *b = leaf(t, TG_F64, S(3));
    tg_ge(t, a, b);
}
static const int bad_ge_at = __LINE__ - 2;

static void bad_where(void) {
    tg_tape *t = tg_tape_new();
    tg_var *c = leaf(t, TG_I64, S(5, 1)), *a = leaf(t, TG_F32, S(2, 3)), *b = leaf(t, TG_F32, S(3));
    tg_where(t, c, a, b);
}
static const int bad_where_at = __LINE__ - 2;

static void int64_abs(void) {
    tg_tape *t = tg_tape_new();
    tg_abs(t, leaf(t, TG_I64, S(3)));
}
static const int int64_abs_at = __LINE__ - 2;

static void mixed_where(void) {
    tg_tape *t = tg_tape_new();
    tg_where(t, leaf(t, TG_F32, S(3)), leaf(t, TG_F32, S(3)), leaf(t, TG_F64, S(3)));
}

static void nan_clamp(void) {
    tg_tape *t = tg_tape_new();
    tg_clamp(t, leaf(t, TG_F32, S(3)), NAN, 1.0);
}

static void nan_hardtanh(void) {
    tg_tape *t = tg_tape_new();
    tg_hardtanh(t, leaf(t, TG_F64, S(3)), -1.0, NAN);
}

static void bad_bce(void) {
    tg_tape *t = tg_tape_new();
    tg_bce(t, leaf(t, TG_F32, S(2, 3)), leaf(t, TG_F32, S(2)));
}

static void bad_eps(void) {
    tg_tape *t = tg_tape_new();
    tg_var *mu = leaf(t, TG_F32, S(2, 1)), *lv = leaf(t, TG_F32, S(3));
    tg_reparam(t, mu, lv, tg_tensor_zeros(tg_tape_arena(t), TG_F32, S(2, 1)));
}

/* "(at tests/test_ops_map.c:<line>)" for the caller's line. */
static const char *at_line(char *buf, size_t n, int line) {
    snprintf(buf, n, "(at tests/test_ops_map.c:%d)", line);
    return buf;
}

Test(ops_map, shape_and_dtype_errors_abort_naming_op_shapes_and_caller) {
    char b[64];
    tg_expect_abort(bad_maximum, "tapegrad: maximum: shapes (2, 3) and (4,) are not broadcastable",
                    at_line(b, sizeof b, bad_maximum_at));
    tg_expect_abort(bad_ge, "tapegrad: ge: shapes (3, 2) and (3,) are not broadcastable", at_line(b, sizeof b, bad_ge_at));
    tg_expect_abort(bad_where, "tapegrad: where: shapes cond (5, 1), a (2, 3) and b (3,) are not broadcastable",
                    at_line(b, sizeof b, bad_where_at));
    tg_expect_abort(int64_abs, "tapegrad: abs: takes float32 or float64 values, got an int64 tensor",
                    at_line(b, sizeof b, int64_abs_at));
    tg_expect_abort(mixed_where, "tapegrad: where: dtypes differ (float32 and float64)", "(at tests/test_ops_map.c:");
    tg_expect_abort(nan_clamp, "tapegrad: clamp: a NaN bound", "(at tests/test_ops_map.c:");
    tg_expect_abort(nan_hardtanh, "tapegrad: hardtanh: a NaN bound (min_val -1, max_val nan)",
                    "(at tests/test_ops_map.c:");
    tg_expect_abort(bad_bce, "tapegrad: bce: shapes (2, 3) and (2,) are not broadcastable", "(at tests/test_ops_map.c:");
    tg_expect_abort(bad_eps, "tapegrad: reparam: eps is (2, 1) float32, mu and logvar broadcast to (2, 3) float32",
                    "(at tests/test_ops_map.c:");
}
