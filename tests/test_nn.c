/*
 * test_nn.c — parameters, Linear and the losses (nn/nn.h).
 *
 * Losses and their gradients are compared with formulas written out here in
 * double precision, independently of how nn.c composes them. Suite "nn";
 * every helper is static: all test files link into one binary.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/nn.h"
#include "tensor/threads.h"
#include "tests/child.h"

static const tg_dtype nn_dtypes[2] = {TG_F32, TG_F64};

/* |got - want| <= rtol |want| + atol, with tolerances for the dtype's precision. */
static void nn_close(double got, double want, tg_dtype dt, const char *what, int i) {
    double rtol = dt == TG_F32 ? 3e-6 : 1e-12, atol = dt == TG_F32 ? 1e-6 : 1e-13;
    cr_assert(isfinite(got), "%s[%d] (%s): got %g, want %.17g", what, i, tg_dtype_name(dt), got, want);
    cr_assert(fabs(got - want) <= rtol * fabs(want) + atol, "%s[%d] (%s): got %.10g, want %.10g (diff %.3g)", what,
              i, tg_dtype_name(dt), got, want, got - want);
}

static tg_var *nn_leaf(tg_tape *t, tg_dtype dt, tg_shape s, const double *v, bool requires_grad) {
    return tg_leaf(t, tg_tensor_from(tg_tape_arena(t), dt, s, v, TG_F64), requires_grad);
}

/* The value as stored (after rounding to dt), for reference formulas. */
static double nn_at(const tg_var *v, int64_t i) { return tg_tensor_get(&v->val, i); }
static double nn_grad(const tg_var *v, int64_t i) {
    cr_assert_not_null(v->grad.data, "no gradient reached this input");
    return tg_tensor_get(&v->grad, i);
}

/* ================================================================ params */

Test(nn, params_add_find_and_layout) {
    tg_params *ps = tg_params_new(TG_F32);
    cr_assert_eq(ps->n, 0);
    cr_assert_eq(ps->count, 0);
    char name[16] = "alpha";
    tg_var *a = tg_params_add(ps, name, TG_SHAPE(3, 4));
    strcpy(name, "zzzzz");   /* the name was copied */
    tg_var *b = tg_params_add(ps, "beta", TG_SHAPE(5));
    tg_var *c = tg_params_add(ps, "gamma", TG_SCALAR_SHAPE);
    cr_assert_eq(ps->n, 12 + 5 + 1, "n is the sum of numels");
    cr_assert_eq(ps->count, 3);
    cr_assert_eq(ps->vars[0], a);
    cr_assert_eq(ps->vars[1], b);
    cr_assert_eq(ps->vars[2], c);
    cr_assert_eq(tg_params_find(ps, "alpha"), a);
    cr_assert_eq(tg_params_find(ps, "beta"), b);
    cr_assert_eq(tg_params_find(ps, "gamma"), c);
    cr_assert_null(tg_params_find(ps, "zzzzz"));
    cr_assert_null(tg_params_find(ps, "alph"));
    cr_assert_null(tg_params_find(ps, ""));
    cr_assert_str_eq(a->name, "alpha");
    cr_assert_str_eq(b->name, "beta");
    cr_assert(a->requires_grad && b->requires_grad && c->requires_grad);
    cr_assert(tg_shape_eq(a->val.shape, TG_SHAPE(3, 4)));
    cr_assert(tg_shape_eq(a->grad.shape, TG_SHAPE(3, 4)));
    cr_assert_eq(c->val.numel, 1);
    cr_assert_eq(a->val.dtype, TG_F32);
    /* Views into the flat blocks, in order of creation. */
    cr_assert_eq(a->val.data, ps->data);
    cr_assert_eq(a->grad.data, ps->grad);
    cr_assert_eq(b->val.data, (void *)((float *)ps->data + 12));
    cr_assert_eq(b->grad.data, (void *)((float *)ps->grad + 12));
    cr_assert_eq(c->val.data, (void *)((float *)ps->data + 17));
    /* New parameters are zero, values and gradients. */
    for (int64_t i = 0; i < ps->n; i++) {
        cr_assert_eq(((float *)ps->data)[i], 0.0f);
        cr_assert_eq(((float *)ps->grad)[i], 0.0f);
    }
    /* Writing through a parameter shows in the flat block. */
    tg_tensor_set(&b->val, 2, 3.5);
    cr_assert_eq(((float *)ps->data)[14], 3.5f);
    tg_params_free(ps);
}

Test(nn, params_pointers_survive_growth) {
    tg_params *ps = tg_params_new(TG_F64);
    tg_var *first = tg_params_add(ps, "first", TG_SHAPE(7, 3));
    for (int64_t i = 0; i < 21; i++) {
        TG_F64P(&first->val)[i] = (double)i + 0.5;
        TG_F64P(&first->grad)[i] = -(double)i;
    }
    tg_var *vars[300];
    char name[32];
    for (int k = 0; k < 300; k++) {   /* 300 * 143 scalars: the block grows several times */
        snprintf(name, sizeof name, "p%d", k);
        vars[k] = tg_params_add(ps, name, TG_SHAPE(13, 11));
        /* Fill each with its own values straight away. */
        for (int64_t i = 0; i < 143; i++) TG_F64P(&vars[k]->val)[i] = 1000.0 * k + (double)i;
    }
    cr_assert_eq(ps->n, 21 + 300 * 143);
    cr_assert_eq(ps->count, 301);
    cr_assert_eq(tg_params_find(ps, "first"), first, "the same tg_var");
    cr_assert_eq(first->val.data, ps->data, "repointed into the grown block");
    cr_assert_eq(first->grad.data, ps->grad);
    for (int64_t i = 0; i < 21; i++) {
        cr_assert_eq(TG_F64P(&first->val)[i], (double)i + 0.5, "value %lld lost", (long long)i);
        cr_assert_eq(TG_F64P(&first->grad)[i], -(double)i, "gradient %lld lost", (long long)i);
    }
    int64_t off = 21;
    for (int k = 0; k < 300; k++) {
        snprintf(name, sizeof name, "p%d", k);
        cr_assert_eq(tg_params_find(ps, name), vars[k]);
        cr_assert_eq(vars[k]->val.data, (void *)(TG_F64P(&first->val) + off), "parameter %d not at offset %lld", k,
                     (long long)off);
        cr_assert_eq(vars[k]->grad.data, (void *)((double *)ps->grad + off));
        for (int64_t i = 0; i < 143; i++) {
            cr_assert_eq(((double *)ps->data)[off + i], 1000.0 * k + (double)i, "parameter %d value %lld", k,
                         (long long)i);
            cr_assert_eq(((double *)ps->grad)[off + i], 0.0);
        }
        off += 143;
    }
    tg_params_free(ps);
}

Test(nn, params_zero_grad) {
    tg_params *ps = tg_params_new(TG_F32);
    tg_params_add(ps, "a", TG_SHAPE(10, 10));
    tg_params_add(ps, "b", TG_SHAPE(3));
    tg_params_add(ps, "c", TG_SHAPE(300, 1001));   /* enough to be split over the threads */
    for (int64_t i = 0; i < ps->n; i++) ((float *)ps->grad)[i] = 1.0f + (float)i, ((float *)ps->data)[i] = 2.0f;
    tg_threads_set(2);
    tg_params_zero_grad(ps);
    for (int64_t i = 0; i < ps->n; i++) {
        cr_assert_eq(((float *)ps->grad)[i], 0.0f, "gradient %lld", (long long)i);
        cr_assert_eq(((float *)ps->data)[i], 2.0f, "zero_grad touched value %lld", (long long)i);
    }
    tg_params_free(ps);
    tg_params_free(NULL);
}

static void params_duplicate_name(void) {
    tg_params *ps = tg_params_new(TG_F32);
    tg_params_add(ps, "w", TG_SHAPE(2));
    tg_params_add(ps, "w", TG_SHAPE(3));
}

Test(nn, params_duplicate_name_aborts) {
    tg_expect_abort(params_duplicate_name, "tapegrad: tg_params_add: a parameter called \"w\" already exists");
}

/* ================================================================ linear */

Test(nn, linear_new_shapes_names_and_init) {
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = nn_dtypes[k];
        tg_params *ps = tg_params_new(dt);
        tg_rng r = tg_rng_seed(100 + k);
        tg_linear l = tg_linear_new(ps, "fc", 100, 1000, &r);
        cr_assert_eq(l.in, 100);
        cr_assert_eq(l.out, 1000);
        cr_assert(tg_shape_eq(l.weight->val.shape, TG_SHAPE(1000, 100)), "weight is (out, in)");
        cr_assert(tg_shape_eq(l.bias->val.shape, TG_SHAPE(1000)), "bias is (out)");
        cr_assert_eq(tg_params_find(ps, "fc.weight"), l.weight);
        cr_assert_eq(tg_params_find(ps, "fc.bias"), l.bias);
        cr_assert_eq(ps->n, 100 * 1000 + 1000);
        double bound = 1.0 / sqrt(100.0);
        double s = 0, s2 = 0, wmin = INFINITY, wmax = -INFINITY;
        for (int64_t i = 0; i < l.weight->val.numel; i++) {
            double w = tg_tensor_get(&l.weight->val, i);
            cr_assert(w >= -bound && w <= bound, "weight %lld = %g outside +-%g", (long long)i, w, bound);
            s += w, s2 += w * w, wmin = fmin(wmin, w), wmax = fmax(wmax, w);
        }
        double n = (double)l.weight->val.numel, mean = s / n, var = s2 / n - mean * mean;
        /* U(-b, b): mean 0 (standard error b / sqrt(3 n) = 1.8e-4), variance b^2 / 3
         * (relative standard error ~0.3%). */
        cr_assert(fabs(mean) < 1e-3, "%s weight mean %g", tg_dtype_name(dt), mean);
        cr_assert(fabs(var / (bound * bound / 3) - 1) < 0.02, "%s weight variance %g, want %g", tg_dtype_name(dt), var,
                  bound * bound / 3);
        cr_assert(wmin < -0.99 * bound && wmax > 0.99 * bound, "range [%g, %g] does not fill +-%g", wmin, wmax, bound);
        double bs = 0;
        for (int64_t i = 0; i < 1000; i++) {
            double b = tg_tensor_get(&l.bias->val, i);
            cr_assert(b >= -bound && b <= bound, "bias %lld = %g", (long long)i, b);
            bs += b;
        }
        cr_assert(fabs(bs / 1000) < 0.01, "bias mean %g", bs / 1000);   /* standard error 1.8e-3 */
        tg_params_free(ps);
    }
}

Test(nn, linear_new_bound_follows_fan_in_and_is_seeded) {
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng r1 = tg_rng_seed(5), r2 = tg_rng_seed(5);
    tg_linear a = tg_linear_new(ps, "a", 4, 3, &r1);
    tg_linear b = tg_linear_new(ps, "b", 4, 3, &r2);
    tg_linear c = tg_linear_new(ps, "c", 4, 3, &r1);
    int differ = 0;
    for (int64_t i = 0; i < 12; i++) {
        cr_assert_eq(tg_tensor_get(&a.weight->val, i), tg_tensor_get(&b.weight->val, i), "same seed, same weights");
        differ += tg_tensor_get(&a.weight->val, i) != tg_tensor_get(&c.weight->val, i);
        cr_assert(fabs(tg_tensor_get(&a.weight->val, i)) <= 0.5);
    }
    cr_assert_gt(differ, 10, "consecutive layers drew the same weights");
    /* in = 1: bound 1. A big fan-in: bound 1/sqrt(10000) = 0.01. */
    tg_linear d = tg_linear_new(ps, "d", 1, 50, &r1), e = tg_linear_new(ps, "e", 10000, 2, &r1);
    double dmax = 0, emax = 0;
    for (int64_t i = 0; i < 50; i++) dmax = fmax(dmax, fabs(tg_tensor_get(&d.weight->val, i)));
    for (int64_t i = 0; i < 20000; i++) emax = fmax(emax, fabs(tg_tensor_get(&e.weight->val, i)));
    cr_assert(dmax <= 1.0 && dmax > 0.8, "in = 1: max |w| %g", dmax);
    cr_assert(emax <= 0.01 && emax > 0.0099, "in = 10000: max |w| %g", emax);
    tg_params_free(ps);
}

static void linear_new_bad_sizes(void) {
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng r = tg_rng_seed(1);
    tg_linear_new(ps, "bad", 0, 3, &r);
}

Test(nn, linear_new_rejects_bad_sizes) {
    tg_expect_abort(linear_new_bad_sizes, "tapegrad: tg_linear_new: bad: sizes must be positive, got in 0, out 3");
}

Test(nn, linear_forward_matches_naive_loop) {
    enum { B = 5, IN = 7, OUT = 4 };
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = nn_dtypes[k];
        tg_params *ps = tg_params_new(dt);
        tg_rng r = tg_rng_seed(17);
        tg_linear l = tg_linear_new(ps, "fc", IN, OUT, &r);
        tg_tape *t = tg_tape_new();
        tg_var *x = tg_leaf(t, tg_tensor_normal(tg_tape_arena(t), dt, TG_SHAPE(B, IN), &r), true);
        tg_var *y = tg_linear_forward(t, &l, x);
        cr_assert(tg_shape_eq(y->val.shape, TG_SHAPE(B, OUT)));
        cr_assert_eq(y->val.dtype, dt);
        for (int b = 0; b < B; b++)
            for (int o = 0; o < OUT; o++) {
                double want = nn_at(l.bias, o);
                for (int i = 0; i < IN; i++) want += nn_at(x, b * IN + i) * nn_at(l.weight, o * IN + i);
                nn_close(nn_at(y, b * OUT + o), want, dt, "y", b * OUT + o);
            }

        /* Backward of L = sum(w * y): dW = w^T x, db = column sums of w, dx = w W.
         * Parameter gradients land in the flat block, and accumulate. */
        tg_tensor *w = tg_tensor_normal(tg_tape_arena(t), dt, TG_SHAPE(B, OUT), &r);
        tg_backward_seed(t, y, w);
        for (int rep = 1; rep <= 2; rep++) {
            for (int o = 0; o < OUT; o++) {
                double db = 0;
                for (int b = 0; b < B; b++) db += tg_tensor_get(w, b * OUT + o);
                nn_close(nn_grad(l.bias, o), rep * db, dt, "dbias", o);
                for (int i = 0; i < IN; i++) {
                    double dw = 0;
                    for (int b = 0; b < B; b++) dw += tg_tensor_get(w, b * OUT + o) * nn_at(x, b * IN + i);
                    nn_close(nn_grad(l.weight, o * IN + i), rep * dw, dt, "dweight", o * IN + i);
                }
            }
            if (rep == 1) {
                for (int b = 0; b < B; b++)
                    for (int i = 0; i < IN; i++) {
                        double dx = 0;
                        for (int o = 0; o < OUT; o++) dx += tg_tensor_get(w, b * OUT + o) * nn_at(l.weight, o * IN + i);
                        nn_close(nn_grad(x, b * IN + i), dx, dt, "dx", b * IN + i);
                    }
                /* A second forward and backward, on a fresh tape (a tape is one
                 * step), adds the same again to the parameter gradients. */
                tg_tape *t2 = tg_tape_new();
                tg_var *x2 = tg_leaf(t2, &x->val, false);
                tg_backward_seed(t2, tg_linear_forward(t2, &l, x2), w);
                tg_tape_free(t2);
            }
        }
        cr_assert_eq(l.weight->grad.data, ps->grad, "parameter gradients live in the params block");
        tg_tape_free(t);
        tg_params_free(ps);
    }
}

/* fc (7 -> 4) applied to zeros of the given shape. */
static void linear_forward_on(tg_shape s) {
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng r = tg_rng_seed(1);
    tg_linear l = tg_linear_new(ps, "fc", 7, 4, &r);
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_F32, s), false);
    tg_linear_forward(t, &l, x);
}
static void linear_forward_wrong_width(void) { linear_forward_on(TG_SHAPE(5, 6)); }
static void linear_forward_scalar_input(void) { linear_forward_on(TG_SCALAR_SHAPE); }

Test(nn, linear_forward_wrong_width_aborts) {
    tg_expect_abort(linear_forward_wrong_width, "tapegrad: linear fc.weight: input (5, 6) does not match (..., 7)",
                    "(at tests/test_nn.c:");
}

Test(nn, linear_forward_scalar_input_aborts) {
    tg_expect_abort(linear_forward_scalar_input, "tapegrad: linear fc.weight: input () does not match (..., 7)",
                    "(at tests/test_nn.c:");
}

/* (in) and (A, B, in) inputs give, row for row, what the (rows, in) batch gives, values and gradients. */
Test(nn, linear_takes_any_leading_shape) {
    tg_rng r = tg_rng_seed(9);
    tg_params *ps = tg_params_new(TG_F64);
    tg_linear fc = tg_linear_new(ps, "fc", 4, 3, &r);
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    tg_tensor *x = tg_tensor_new(a, TG_F64, TG_SHAPE(2, 5, 4));
    tg_tensor_fill_uniform(x, -1, 1, &r);
    tg_var *y3 = tg_linear_relu(t, &fc, tg_leaf(t, x, false));
    cr_assert(tg_shape_eq(y3->val.shape, TG_SHAPE(2, 5, 3)), "(2, 5, 4) -> (2, 5, 3)");
    tg_backward(t, tg_sum(t, y3));
    double gw[12];
    for (int i = 0; i < 12; i++) gw[i] = tg_tensor_get(&fc.weight->grad, i);
    tg_params_zero_grad(ps);
    tg_tensor flat = tg_tensor_wrap(TG_F64, TG_SHAPE(10, 4), x->data);
    tg_var *y2 = tg_linear_relu(t, &fc, tg_leaf(t, &flat, false));
    tg_backward(t, tg_sum(t, y2));
    for (int64_t i = 0; i < 30; i++) cr_expect_eq(tg_tensor_get(&y3->val, i), tg_tensor_get(&y2->val, i), "y[%lld]", (long long)i);
    for (int i = 0; i < 12; i++) cr_expect_eq(tg_tensor_get(&fc.weight->grad, i), gw[i], "dW[%d]", i);
    tg_tensor row = tg_tensor_wrap(TG_F64, TG_SHAPE(4), (double *)x->data + 4);   /* row 1 alone, 1-D */
    tg_var *y1 = tg_linear_forward(t, &fc, tg_leaf(t, &row, false));
    cr_assert(tg_shape_eq(y1->val.shape, TG_SHAPE(3)), "(4) -> (3)");
    for (int j = 0; j < 3; j++) {
        double want = tg_tensor_get(&fc.bias->val, j);
        for (int k = 0; k < 4; k++) want += tg_tensor_get(&fc.weight->val, j * 4 + k) * tg_tensor_get(&row, k);
        cr_expect(fabs(tg_tensor_get(&y1->val, j) - want) < 1e-15, "1-D row, output %d", j);
    }
    tg_tape_free(t);
    tg_params_free(ps);
}

/* ================================================================ losses */

static const tg_reduction nn_reductions[3] = {TG_REDUCE_SUM, TG_REDUCE_MEAN, TG_REDUCE_NONE};
static const char *const nn_reduction_names[3] = {"sum", "mean", "none"};

/* Runs backward from a loss: directly if reduced, else seeded with weights w,
 * so the expected gradient is nn_factor times the elementwise derivative. */
static void nn_backward(tg_tape *t, tg_var *loss, tg_reduction red, const tg_tensor *w) {
    if (red == TG_REDUCE_NONE) tg_backward_seed(t, loss, w);
    else tg_backward(t, loss);
}

static double nn_factor(tg_reduction red, const tg_tensor *w, int64_t i, int64_t n) {
    return red == TG_REDUCE_SUM ? 1.0 : red == TG_REDUCE_MEAN ? 1.0 / (double)n : tg_tensor_get(w, i);
}

/* Checks the loss value for a reduction against per-element references. */
static void nn_check_reduced(const tg_var *loss, tg_reduction red, const double *ref, int64_t n, tg_shape s,
                             tg_dtype dt, const char *what) {
    if (red == TG_REDUCE_NONE) {
        cr_assert(tg_shape_eq(loss->val.shape, s), "%s none keeps the shape", what);
        for (int64_t i = 0; i < n; i++) nn_close(nn_at(loss, i), ref[i], dt, what, (int)i);
        return;
    }
    cr_assert_eq(loss->val.numel, 1, "%s reduces to one element", what);
    cr_assert_eq(loss->val.shape.ndim, 0, "%s reduces to a 0-dim scalar", what);
    double s_ = 0;
    for (int64_t i = 0; i < n; i++) s_ += ref[i];
    nn_close(nn_at(loss, 0), red == TG_REDUCE_SUM ? s_ : s_ / (double)n, dt, what, -1);
}

/* -- BCE on probabilities */

/* -(y max(ln p, -100) + (1 - y) max(ln(1 - p), -100)), written out. */
static double ref_bce(double p, double y) {
    double lp = p > 0 ? log(p) : -INFINITY, lq = p < 1 ? log1p(-p) : -INFINITY;
    if (lp < -100) lp = -100;
    if (lq < -100) lq = -100;
    return -(y * lp + (1 - y) * lq);
}

/* d/dp of -(y ln p + (1 - y) ln(1 - p)) = -y/p + (1 - y)/(1 - p) inside (0, 1).
 * Where p (1 - p) < 1e-12 (including p = 0 and 1, where the clamped log has
 * no useful derivative) PyTorch's binary_cross_entropy backward divides
 * (p - y) by 1e-12 instead; the expected values there follow that convention,
 * e.g. -1e12 at p = 0, y = 1 (pinned on purpose: it is what PyTorch returns). */
static double ref_bce_dp(double p, double y) {
    if (p * (1 - p) < 1e-12) return (p - y) / 1e-12;
    return -y / p + (1 - y) / (1 - p);
}

/* d/dy = -ln p + ln(1 - p), with the same clamps. */
static double ref_bce_dy(double p) {
    double lp = p > 0 ? fmax(log(p), -100) : -100, lq = p < 1 ? fmax(log1p(-p), -100) : -100;
    return lq - lp;
}

Test(nn, loss_bce_values_and_gradients) {
    enum { N = 12 };
    const double p[N] = {0.0, 1.0, 0.0, 1.0, 0.3, 0.9, 1e-5, 0.5, 0.999, 0.2, 1e-50, 0.75};
    const double y[N] = {1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.5, 0.0, 0.7, 1.0, 0.25};
    tg_shape s = TG_SHAPE(3, 4);
    for (int k = 0; k < 2; k++)
        for (int rr = 0; rr < 3; rr++) {
            tg_dtype dt = nn_dtypes[k];
            tg_reduction red = nn_reductions[rr];
            tg_tape *t = tg_tape_new();
            tg_var *pv = nn_leaf(t, dt, s, p, true), *yv = nn_leaf(t, dt, s, y, true);
            double ref[N];
            for (int i = 0; i < N; i++) ref[i] = ref_bce(nn_at(pv, i), nn_at(yv, i));
            tg_var *loss = tg_loss_bce(t, pv, yv, red);
            char what[64];
            snprintf(what, sizeof what, "bce %s", nn_reduction_names[rr]);
            nn_check_reduced(loss, red, ref, N, s, dt, what);
            if (red == TG_REDUCE_NONE) {
                /* The clamp: exactly 100 where p says the other class for certain. */
                cr_assert_eq(nn_at(loss, 0), 100.0, "p = 0, y = 1 (%s): %g", tg_dtype_name(dt), nn_at(loss, 0));
                cr_assert_eq(nn_at(loss, 1), 100.0, "p = 1, y = 0 (%s): %g", tg_dtype_name(dt), nn_at(loss, 1));
                cr_assert_eq(nn_at(loss, 2), 0.0, "p = 0, y = 0");
                cr_assert_eq(nn_at(loss, 3), 0.0, "p = 1, y = 1");
            }
            tg_tensor *w = tg_tensor_from(tg_tape_arena(t), dt, s,
                                          (double[N]){1, 2, 3, 0.5, -1, 1.5, 2, -0.25, 1, 3, 1, 0.1}, TG_F64);
            nn_backward(t, loss, red, w);
            for (int i = 0; i < N; i++) {
                double f = nn_factor(red, w, i, N), pi = nn_at(pv, i), yi = nn_at(yv, i);
                snprintf(what, sizeof what, "bce %s dp", nn_reduction_names[rr]);
                nn_close(nn_grad(pv, i), f * ref_bce_dp(pi, yi), dt, what, i);
                snprintf(what, sizeof what, "bce %s dy", nn_reduction_names[rr]);
                nn_close(nn_grad(yv, i), f * ref_bce_dy(pi), dt, what, i);
            }
            tg_tape_free(t);
        }
}

/* -- BCE on logits */

/* ln(1 + e^x) - x y, written the direct way; in double e^300 is finite, so
 * this needs no stabilising for |x| <= 300. */
static double ref_bce_logits(double x, double y) { return log1p(exp(x)) - x * y; }
static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

Test(nn, loss_bce_logits_values_and_gradients) {
    enum { N = 12 };
    const double x[N] = {-300, 300, -300, 300, 0, 2.5, -2.5, 10, -0.7, 30, 88, -88};
    const double y[N] = {1, 0, 0, 1, 0.5, 1, 1, 0, 0.3, 1, 0.2, 0.6};
    tg_shape s = TG_SHAPE(N);
    for (int k = 0; k < 2; k++)
        for (int rr = 0; rr < 3; rr++) {
            tg_dtype dt = nn_dtypes[k];
            tg_reduction red = nn_reductions[rr];
            tg_tape *t = tg_tape_new();
            tg_var *xv = nn_leaf(t, dt, s, x, true), *yv = nn_leaf(t, dt, s, y, true);
            double ref[N];
            for (int i = 0; i < N; i++) ref[i] = ref_bce_logits(nn_at(xv, i), nn_at(yv, i));
            tg_var *loss = tg_loss_bce_logits(t, xv, yv, red);
            char what[64];
            snprintf(what, sizeof what, "bce_logits %s", nn_reduction_names[rr]);
            if (red == TG_REDUCE_NONE) {
                for (int i = 0; i < N; i++) {
                    double got = nn_at(loss, i);
                    cr_assert(isfinite(got), "x = %g: %g", x[i], got);
                    /* Absolute tolerance relative to |x|: the reference's ln(1 + e^300)
                     * carries an error of an ulp of 300. */
                    double tol = (dt == TG_F32 ? 3e-6 : 1e-13) * (1 + fabs(x[i]));
                    cr_assert(fabs(got - ref[i]) <= tol, "%s[%d] (%s): got %.10g want %.10g", what, i,
                              tg_dtype_name(dt), got, ref[i]);
                }
                cr_assert(fabs(nn_at(loss, 0) - 300) < 1e-9, "x = -300, y = 1 costs 300");
                cr_assert(fabs(nn_at(loss, 1) - 300) < 1e-9, "x = 300, y = 0 costs 300");
                cr_assert(fabs(nn_at(loss, 2)) < 1e-30, "x = -300, y = 0 costs ~0: %g", nn_at(loss, 2));
                cr_assert(fabs(nn_at(loss, 3)) < 1e-30, "x = 300, y = 1 costs ~0: %g", nn_at(loss, 3));
            } else {
                double sum = 0;
                for (int i = 0; i < N; i++) sum += ref[i];
                double want = red == TG_REDUCE_SUM ? sum : sum / N, got = nn_at(loss, 0);
                cr_assert_eq(loss->val.numel, 1);
                cr_assert(fabs(got - want) <= (dt == TG_F32 ? 3e-6 : 1e-13) * (1 + 900), "%s: got %.10g want %.10g",
                          what, got, want);
            }
            tg_tensor *w = tg_tensor_from(tg_tape_arena(t), dt, s, (double[N]){1, -2, 0.5, 3, 1, 1, 2, -1, 0.3, 1, 2, 1},
                                          TG_F64);
            nn_backward(t, loss, red, w);
            for (int i = 0; i < N; i++) {
                double f = nn_factor(red, w, i, N), xi = nn_at(xv, i), yi = nn_at(yv, i);
                snprintf(what, sizeof what, "bce_logits %s dx", nn_reduction_names[rr]);
                nn_close(nn_grad(xv, i), f * (ref_sigmoid(xi) - yi), dt, what, i);
                snprintf(what, sizeof what, "bce_logits %s dy", nn_reduction_names[rr]);
                nn_close(nn_grad(yv, i), f * -xi, dt, what, i);
            }
            tg_tape_free(t);
        }
}

Test(nn, loss_bce_logits_agrees_with_bce_of_sigmoid) {
    tg_tape *t = tg_tape_new();
    const double x[6] = {-4, -1, -0.1, 0.2, 1.5, 6}, y[6] = {0, 1, 0.5, 0.3, 1, 0};
    tg_var *xv = nn_leaf(t, TG_F64, TG_SHAPE(6), x, false), *yv = nn_leaf(t, TG_F64, TG_SHAPE(6), y, false);
    tg_var *a = tg_loss_bce_logits(t, xv, yv, TG_REDUCE_NONE);
    tg_var *b = tg_loss_bce(t, tg_sigmoid(t, xv), yv, TG_REDUCE_NONE);
    for (int i = 0; i < 6; i++) nn_close(nn_at(a, i), nn_at(b, i), TG_F64, "bce_logits vs bce(sigmoid)", i);
    tg_tape_free(t);
}

/* -- MSE */

Test(nn, loss_mse_values_and_gradients) {
    enum { N = 24 };
    tg_shape s = TG_SHAPE(2, 3, 4);
    double x[N], y[N];
    tg_rng r = tg_rng_seed(9);
    for (int i = 0; i < N; i++) x[i] = 4 * tg_rng_uniform(&r) - 2, y[i] = 4 * tg_rng_uniform(&r) - 2;
    x[0] = y[0] = 1.25;   /* an exact zero */
    for (int k = 0; k < 2; k++)
        for (int rr = 0; rr < 3; rr++) {
            tg_dtype dt = nn_dtypes[k];
            tg_reduction red = nn_reductions[rr];
            tg_tape *t = tg_tape_new();
            tg_var *xv = nn_leaf(t, dt, s, x, true), *yv = nn_leaf(t, dt, s, y, true);
            double ref[N];
            for (int i = 0; i < N; i++) {
                double d = nn_at(xv, i) - nn_at(yv, i);
                ref[i] = d * d;
            }
            tg_var *loss = tg_loss_mse(t, xv, yv, red);
            char what[64];
            snprintf(what, sizeof what, "mse %s", nn_reduction_names[rr]);
            nn_check_reduced(loss, red, ref, N, s, dt, what);
            tg_tensor *w = tg_tensor_uniform(tg_tape_arena(t), dt, s, -1, 2, &r);
            nn_backward(t, loss, red, w);
            for (int i = 0; i < N; i++) {
                double f = nn_factor(red, w, i, N), d = nn_at(xv, i) - nn_at(yv, i);
                snprintf(what, sizeof what, "mse %s dx", nn_reduction_names[rr]);
                nn_close(nn_grad(xv, i), f * 2 * d, dt, what, i);
                snprintf(what, sizeof what, "mse %s dy", nn_reduction_names[rr]);
                nn_close(nn_grad(yv, i), -f * 2 * d, dt, what, i);
            }
            tg_tape_free(t);
        }
}

/* -- KL(N(mu, e^logvar) || N(0, 1)) */

/* -1/2 sum(1 + lv - mu^2 - e^lv), and its gradients mu and (e^lv - 1) / 2. */
static void nn_check_kl(tg_dtype dt, const double *mu, const double *lv, int n, tg_shape s) {
    tg_tape *t = tg_tape_new();
    tg_var *m = nn_leaf(t, dt, s, mu, true), *l = nn_leaf(t, dt, s, lv, true);
    double want = 0;
    for (int i = 0; i < n; i++) {
        double mi = nn_at(m, i), li = nn_at(l, i);
        want += -0.5 * (1 + li - mi * mi - exp(li));
    }
    tg_var *kl = tg_loss_kl_normal(t, m, l);
    cr_assert_eq(kl->val.numel, 1);
    nn_close(nn_at(kl, 0), want, dt, "kl", -1);
    tg_backward(t, kl);
    for (int i = 0; i < n; i++) {
        nn_close(nn_grad(m, i), nn_at(m, i), dt, "kl dmu", i);
        nn_close(nn_grad(l, i), 0.5 * (exp(nn_at(l, i)) - 1), dt, "kl dlogvar", i);
    }
    tg_tape_free(t);
}

Test(nn, loss_kl_normal_closed_form) {
    const double mu[6] = {0.0, 1.5, -2.0, 0.3, -0.01, 4.0}, lv[6] = {0.0, -1.0, 2.0, 0.5, -6.0, 1.0};
    for (int k = 0; k < 2; k++) nn_check_kl(nn_dtypes[k], mu, lv, 6, TG_SHAPE(2, 3));
}

Test(nn, loss_kl_normal_zero_at_prior) {
    for (int k = 0; k < 2; k++) {
        tg_tape *t = tg_tape_new();
        tg_var *m = tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), nn_dtypes[k], TG_SHAPE(4, 5)), true);
        tg_var *l = tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), nn_dtypes[k], TG_SHAPE(4, 5)), true);
        tg_var *kl = tg_loss_kl_normal(t, m, l);
        cr_assert_eq(nn_at(kl, 0), 0.0, "KL of the prior with itself is 0, got %g", nn_at(kl, 0));
        tg_backward(t, kl);
        for (int i = 0; i < 20; i++) cr_assert(nn_grad(m, i) == 0 && nn_grad(l, i) == 0);
        tg_tape_free(t);
    }
}

Test(nn, loss_kl_normal_large_logvar_is_finite) {
    /* e^50 ~ 5.2e21 (float64) and e^80 ~ 5.5e34 (float32, max 3.4e38): large
     * but representable, so the loss and gradients must be finite and right. */
    const double mu64[3] = {0.5, -1, 2}, lv64[3] = {50, -3, 1};
    nn_check_kl(TG_F64, mu64, lv64, 3, TG_SHAPE(3));
    const double mu32[3] = {0.5, -1, 2}, lv32[3] = {80, -3, 1};
    nn_check_kl(TG_F32, mu32, lv32, 3, TG_SHAPE(3));
    const double mu_big[2] = {0, 0}, lv_big[2] = {600, 0};   /* e^600 ~ 3.8e260, float64 */
    nn_check_kl(TG_F64, mu_big, lv_big, 2, TG_SHAPE(2));
}
