/*
 * test_custom.c — user-defined ops (tg_custom): a gradient check of ops that
 * keep state in their context, NULL gradients for inputs that want none,
 * no-grad scopes, and the checks on the arguments.
 */
#include <criterion/criterion.h>
#include <math.h>

#include "autograd/autograd.h"
#include "tests/child.h"
#include "tests/custom_op.h"

/* A softmax over all elements written as a user op that saves its output's
 * sum of exponentials in ctx for backward: y = e^x / s, s = sum e^x;
 * dx += y (dy - sum(dy y)). */
typedef struct {
    double s;   /* written by forward, read by backward */
    int forwards, backwards;
} softmax_ctx;

static void softmax_forward(tg_tape *t, tg_tensor *out, const tg_tensor *const *in, int n, void *ctx) {
    (void)t, (void)n;
    softmax_ctx *c = ctx;
    c->s = 0;
    for (int64_t i = 0; i < in[0]->numel; i++) c->s += exp(tg_tensor_get(in[0], i));
    for (int64_t i = 0; i < out->numel; i++) tg_tensor_set(out, i, exp(tg_tensor_get(in[0], i)) / c->s);
    c->forwards++;
}

static void softmax_backward(tg_tape *t, tg_tensor *const *din, const tg_tensor *dout, const tg_tensor *out,
                             const tg_tensor *const *in, int n, void *ctx) {
    (void)t, (void)in, (void)n;
    softmax_ctx *c = ctx;
    double dot = 0;
    for (int64_t i = 0; i < out->numel; i++) dot += tg_tensor_get(dout, i) * tg_tensor_get(out, i);
    for (int64_t i = 0; i < out->numel; i++)
        tg_tensor_set(din[0], i, tg_tensor_get(din[0], i) + tg_tensor_get(out, i) * (tg_tensor_get(dout, i) - dot));
    c->backwards++;
}

static const tg_function user_softmax = {"user_softmax", softmax_forward, softmax_backward};

static tg_var *f_softmax(tg_tape *t, tg_var **v, void *ctx) {
    /* composed with library ops on both sides, so the custom entry sits mid-tape */
    tg_var *x = tg_mul_scalar(t, v[0], 1.5);
    tg_var *y = tg_custom(t, &user_softmax, &x, 1, x->val.shape, ctx);
    return tg_mul(t, y, v[0]);
}

Test(custom, a_user_op_with_state_passes_the_gradient_check) {
    tg_arena *a = tg_arena_new();
    tg_rng r = tg_rng_seed(3);
    tg_tensor *x = tg_tensor_uniform(a, TG_F64, TG_SHAPE(2, 5), -2, 2, &r);
    softmax_ctx c = {0};
    tg_gradcheck_result res = tg_gradcheck(f_softmax, &x, 1, &c, 1e-6, 1e-8, 1e-6);
    cr_expect(res.ok, "max abs err %g at element %lld: analytic %g, numeric %g", res.max_abs_err,
              (long long)res.worst_index, res.analytic, res.numeric);
    cr_expect_eq(c.backwards, 1, "backward ran %d times", c.backwards);
    cr_expect_eq(c.forwards, 1 + 2 * 10, "one forward per evaluation");
    tg_arena_free(a);
}

static tg_var *f_cube_mul(tg_tape *t, tg_var **v, void *ctx) {
    (void)ctx;
    return tg_custom(t, &tg_test_cube_mul, v, 2, v[0]->val.shape, NULL);
}

Test(custom, two_inputs_pass_the_gradient_check) {
    tg_arena *a = tg_arena_new();
    tg_rng r = tg_rng_seed(4);
    tg_tensor *in[2] = {tg_tensor_uniform(a, TG_F64, TG_SHAPE(3, 4), -2, 2, &r),
                        tg_tensor_uniform(a, TG_F64, TG_SHAPE(3, 4), -2, 2, &r)};
    tg_gradcheck_result res = tg_gradcheck(f_cube_mul, in, 2, NULL, 1e-6, 1e-7, 1e-6);
    cr_expect(res.ok, "max abs err %g (input %d element %lld)", res.max_abs_err, res.worst_input,
              (long long)res.worst_index);
    tg_arena_free(a);
}

Test(custom, an_input_without_gradient_gets_null_and_values_are_right) {
    tg_tape *t = tg_tape_new();
    tg_arena *ar = tg_tape_arena(t);
    tg_var *v[2] = {tg_leaf(t, tg_tensor_full(ar, TG_F32, TG_SHAPE(3), 2.0), true),
                    tg_leaf(t, tg_tensor_full(ar, TG_F32, TG_SHAPE(3), -0.5), false)};
    tg_var *y = tg_custom(t, &tg_test_cube_mul, v, 2, TG_SHAPE(3), NULL);
    cr_expect_eq(y->val.dtype, TG_F32);
    cr_expect_eq(tg_tensor_get(&y->val, 1), -4.0);   /* 2^3 * -0.5 */
    tg_backward(t, tg_sum(t, y));
    cr_expect_eq(tg_tensor_get(&v[0]->grad, 2), 3 * 4 * -0.5);   /* 3 a^2 b */
    cr_expect_null(v[1]->grad.data, "the constant input got a gradient buffer");
    tg_tape_free(t);
}

Test(custom, no_grad_scope_records_nothing) {
    tg_tape *t = tg_tape_new();
    tg_var *v[2] = {tg_leaf(t, tg_tensor_full(tg_tape_arena(t), TG_F64, TG_SHAPE(2), 1.0), true),
                    tg_leaf(t, tg_tensor_full(tg_tape_arena(t), TG_F64, TG_SHAPE(2), 1.0), true)};
    bool prev = tg_no_grad(t);
    tg_var *y = tg_custom(t, &tg_test_cube_mul, v, 2, TG_SHAPE(2), NULL);
    tg_set_grad(t, prev);
    cr_expect_eq(t->n, 0);
    cr_expect_not(y->requires_grad);
    tg_tape_free(t);
}

static void custom_on_int64(void) {
    tg_tape *t = tg_tape_new();
    tg_var *v[2] = {tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_I64, TG_SHAPE(2)), false),
                    tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_I64, TG_SHAPE(2)), false)};
    tg_custom(t, &tg_test_cube_mul, v, 2, TG_SHAPE(2), NULL);
}

static void custom_without_backward(void) {
    static const tg_function half = {"half", NULL, NULL};
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_F32, TG_SHAPE(2)), true);
    tg_custom(t, &half, &x, 1, TG_SHAPE(2), NULL);
}

Test(custom, bad_arguments_abort_naming_the_caller) {
    tg_expect_abort(custom_on_int64, "cube_mul", "int64", "test_custom.c:");
    tg_expect_abort(custom_without_backward, "needs a forward and a backward", "test_custom.c:");
}
