/*
 * test_detach.c — gradient control and the small conveniences of nn/:
 * tg_detach (stop-gradient, and the straight-through estimator written with
 * it), tg_item, the losses' shape checks naming the caller's file:line, and
 * the initialisers (fans and bounds as torch.nn.init).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

#include "nn/nn.h"
#include "tests/child.h"

TestSuite(detach, .timeout = 120);

static tg_var *leaf(tg_tape *t, const double *v, int64_t n, bool grad) {
    return tg_leaf(t, tg_tensor_from(tg_tape_arena(t), TG_F64, TG_SHAPE(n), v, TG_F64), grad);
}

Test(detach, stops_the_gradient_and_shares_the_value) {
    tg_tape *t = tg_tape_new();
    double xv[] = {1.5, -2.0, 0.25};
    tg_var *x = leaf(t, xv, 3, true), *d = tg_detach(t, x);
    cr_expect(d->val.data == x->val.data && !d->requires_grad, "a view with no gradient");
    tg_backward(t, tg_sum(t, tg_mul(t, d, x)));   /* d(sum(detach(x) x))/dx = x, not 2x */
    for (int i = 0; i < 3; i++) cr_expect_eq(tg_tensor_get(&x->grad, i), xv[i], "dx[%d]", i);
    cr_expect_null(d->grad.data, "the detached var received no gradient");
    tg_tape_free(t);
}

Test(detach, straight_through_estimator) {
    /* y = x + detach(round(x) - x): y's value is round(x), dy/dx = 1. */
    tg_tape *t = tg_tape_new();
    double xv[] = {0.4, 1.6, -2.7, 3.5}, qv[4], wv[] = {1, -2, 3, 0.5};
    for (int i = 0; i < 4; i++) qv[i] = round(xv[i]);
    tg_var *x = leaf(t, xv, 4, true), *q = leaf(t, qv, 4, false), *w = leaf(t, wv, 4, false);
    tg_var *y = tg_add(t, x, tg_detach(t, tg_sub(t, q, x)));
    for (int i = 0; i < 4; i++) cr_expect_eq(tg_tensor_get(&y->val, i), qv[i], "y[%d] is the rounded value", i);
    tg_backward(t, tg_sum(t, tg_mul(t, y, w)));
    for (int i = 0; i < 4; i++) cr_expect_eq(tg_tensor_get(&x->grad, i), wv[i], "dx[%d] passes straight through", i);
    tg_tape_free(t);
}

Test(detach, item_is_the_value_of_a_scalar) {
    tg_tape *t = tg_tape_new();
    double xv[] = {2, 3};
    tg_var *x = leaf(t, xv, 2, false);
    cr_expect_eq(tg_item(tg_sum(t, x)), 5.0);
    tg_tape_free(t);
}

static void item_of_a_vector(void) {
    tg_tape *t = tg_tape_new();
    double xv[] = {2, 3};
    tg_item(leaf(t, xv, 2, false));
}
static const int item_at = __LINE__ - 2;

static void mse_of_column_against_vector(void) {
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    tg_var *x = tg_leaf(t, tg_tensor_zeros(a, TG_F64, TG_SHAPE(4, 1)), false);
    tg_var *y = tg_leaf(t, tg_tensor_zeros(a, TG_F64, TG_SHAPE(4)), false);
    tg_loss_mse(t, x, y, TG_REDUCE_MEAN);   /* would broadcast to (4, 4) */
}
static const int mse_at = __LINE__ - 2;

static void kl_of_mismatched_shapes(void) {
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    tg_loss_kl_normal(t, tg_leaf(t, tg_tensor_zeros(a, TG_F64, TG_SHAPE(2, 3)), false),
                      tg_leaf(t, tg_tensor_zeros(a, TG_F64, TG_SHAPE(3)), false));
}

Test(detach, misuse_aborts_naming_the_caller) {
    char at[64];
    snprintf(at, sizeof at, "test_detach.c:%d", item_at);
    tg_expect_abort(item_of_a_vector, "item", "(2,)", "2 elements", at);
    snprintf(at, sizeof at, "test_detach.c:%d", mse_at);
    tg_expect_abort(mse_of_column_against_vector, "mse", "(4, 1)", "(4,)", at);
    tg_expect_abort(kl_of_mismatched_shapes, "kl_normal", "(2, 3)", "(3,)", "test_detach.c:");
}

/* ---------------------------------------------------------------- initialisers
 * Bounds as torch.nn.init computes them (printed by PyTorch 1.13):
 * kaiming_uniform_(a=sqrt(5)) on (400, 784): 0.03571428571428571; (a=0, the
 * ReLU gain) 0.08748177652797065; xavier_uniform_ on (400, 784): 0.07118684968143743;
 * fans of (8, 3, 5, 5): (75, 200). */

/* The largest |x| of t and its mean square. */
static void spread(const tg_tensor *t, double *max_abs, double *mean_sq) {
    *max_abs = 0, *mean_sq = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = tg_tensor_get(t, i);
        *max_abs = fmax(*max_abs, fabs(v));
        *mean_sq += v * v / (double)t->numel;
    }
}

Test(detach, initialisers_use_pytorchs_fans_and_bounds) {
    tg_arena *a = tg_arena_new();
    tg_rng r = tg_rng_seed(3);
    int64_t fi, fo;
    tg_init_fans(tg_tensor_new(a, TG_F32, TG_SHAPE(8, 3, 5, 5)), &fi, &fo);
    cr_expect(fi == 75 && fo == 200, "conv fans %lld %lld", (long long)fi, (long long)fo);
    tg_tensor *w = tg_tensor_new(a, TG_F64, TG_SHAPE(400, 784));
    const struct { int kind; double arg, bound; } cases[] = {
        {0, sqrt(5.0), 0.03571428571428571}, {0, 0.0, 0.08748177652797065}, {1, 1.0, 0.07118684968143743}};
    for (int k = 0; k < 3; k++) {
        if (cases[k].kind == 0) tg_init_kaiming_uniform(w, cases[k].arg, &r);
        else tg_init_xavier_uniform(w, cases[k].arg, &r);
        double mx, ms, b = cases[k].bound;
        spread(w, &mx, &ms);
        /* U(-b, b): every value within b, the largest within 0.1% of it, variance b^2 / 3 within 2% (313,600 draws). */
        cr_expect(mx <= b && mx > 0.999 * b, "case %d: max |w| %.17g, bound %.17g", k, mx, b);
        cr_expect(fabs(ms / (b * b / 3) - 1) < 0.02, "case %d: variance %g, want %g", k, ms, b * b / 3);
    }
    tg_init_normal(w, 0.5, 0.02, &r);
    double mean = 0, var = 0;
    for (int64_t i = 0; i < w->numel; i++) mean += tg_tensor_get(w, i) / (double)w->numel;
    for (int64_t i = 0; i < w->numel; i++) var += pow(tg_tensor_get(w, i) - mean, 2) / (double)w->numel;
    cr_expect(fabs(mean - 0.5) < 1e-3 && fabs(sqrt(var) / 0.02 - 1) < 0.01, "normal: mean %g std %g", mean, sqrt(var));
    tg_init_zeros(w);
    for (int64_t i = 0; i < w->numel; i++) cr_assert_eq(tg_tensor_get(w, i), 0.0);
    tg_arena_free(a);
}
