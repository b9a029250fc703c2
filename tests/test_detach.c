/*
 * test_detach.c — gradient control and the small conveniences around it:
 * tg_detach (stop-gradient, and the straight-through estimator written with
 * it), tg_item, and the losses' shape checks naming the caller's file:line.
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
