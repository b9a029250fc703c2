/*
 * test_int64.c — int64 tensors (labels and indices): exact values, fill,
 * conversion, printing, and the places that must refuse them (float kernels,
 * gradients); one_hot of int64 labels.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"
#include "tensor/kernels.h"
#include "tests/child.h"

Test(int64, values_are_exact_beyond_float_precision) {
    tg_arena *a = tg_arena_new();
    int64_t big[3] = {(INT64_C(1) << 53) + 1, -7, INT64_MAX};
    tg_tensor *x = tg_tensor_from(a, TG_I64, TG_SHAPE(3), big, TG_I64);   /* same dtype: copied exactly */
    cr_expect_eq(TG_I64P(x)[0], (INT64_C(1) << 53) + 1);
    cr_expect_eq(TG_I64P(x)[2], INT64_MAX);
    cr_expect_eq(tg_dtype_size(TG_I64), 8);
    cr_expect_str_eq(tg_dtype_name(TG_I64), "int64");
    tg_tensor *c = tg_tensor_copy(a, x);
    cr_expect_eq(memcmp(c->data, big, sizeof big), 0);
    tg_tensor_set(x, 1, 2.6);   /* rounds to nearest */
    cr_expect_eq(TG_I64P(x)[1], 3);
    cr_expect_eq(tg_tensor_get(x, 1), 3.0);
    tg_tensor *z = tg_tensor_zeros(a, TG_I64, TG_SHAPE(2, 2));
    tg_tensor *f = tg_tensor_full(a, TG_I64, TG_SHAPE(2, 2), -4);
    for (int i = 0; i < 4; i++) cr_expect(TG_I64P(z)[i] == 0 && TG_I64P(f)[i] == -4);
    tg_arena_free(a);
}

Test(int64, converts_to_and_from_float) {
    tg_arena *a = tg_arena_new();
    float v[4] = {0, 1.4f, 2.5f, -9};
    tg_tensor *i = tg_tensor_from(a, TG_I64, TG_SHAPE(4), v, TG_F32);
    int64_t want[4] = {0, 1, 3, -9};   /* llround: halves away from zero */
    for (int k = 0; k < 4; k++) cr_expect_eq(TG_I64P(i)[k], want[k], "element %d", k);
    tg_tensor *d = tg_tensor_cast(a, i, TG_F64);
    for (int k = 0; k < 4; k++) cr_expect_eq(TG_F64P(d)[k], (double)want[k]);
    tg_arena_free(a);
}

Test(int64, prints_as_integers) {
    tg_arena *a = tg_arena_new();
    int64_t v[2] = {1234567, -3};
    tg_tensor *x = tg_tensor_from(a, TG_I64, TG_SHAPE(2), v, TG_I64);
    char buf[256] = "";
    FILE *f = fmemopen(buf, sizeof buf, "w");
    tg_tensor_print(f, x, "y");
    fclose(f);
    cr_expect(strstr(buf, "y (2,) int64") && strstr(buf, " 1234567 -3"), "%s", buf);
    tg_arena_free(a);
}

static void float_kernel_on_int64(void) {
    tg_arena *a = tg_arena_new();
    tg_tensor *x = tg_tensor_zeros(a, TG_I64, TG_SHAPE(3));
    tg_tensor_exp(x, x);
}

static void int64_leaf_with_gradient(void) {
    tg_tape *t = tg_tape_new();
    tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_I64, TG_SHAPE(3)), true);
}

/* Every elementwise op refuses int64 values, naming itself and its caller. */
static tg_var *int64_leaf(tg_tape *t) { return tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_I64, TG_SHAPE(3)), false); }
static void exp_of_int64(void) { tg_tape *t = tg_tape_new(); tg_exp(t, int64_leaf(t)); }
static void mul_scalar_of_int64(void) { tg_tape *t = tg_tape_new(); tg_mul_scalar(t, int64_leaf(t), 2.0); }
static void add_of_int64(void) { tg_tape *t = tg_tape_new(); tg_var *a = int64_leaf(t); tg_add(t, a, a); }

Test(int64, elementwise_ops_refuse_it_naming_the_op_and_caller) {
    tg_expect_abort(exp_of_int64, "exp: takes float32 or float64 values, got an int64 tensor", "test_int64.c:");
    tg_expect_abort(mul_scalar_of_int64, "mul_scalar: takes float32 or float64", "test_int64.c:");
    tg_expect_abort(add_of_int64, "add: takes float32 or float64", "test_int64.c:");
}

Test(int64, float_kernels_and_gradients_refuse_it) {
    tg_expect_abort(float_kernel_on_int64, "a float kernel was given an int64 tensor", "kernels.c:");
    tg_expect_abort(int64_leaf_with_gradient, "tg_leaf", "int64", "cannot require a gradient");
}

Test(int64, one_hot_of_int64_labels_is_float32) {
    tg_tape *t = tg_tape_new();
    int64_t lab[3] = {2, 0, 3};
    tg_var *y = tg_leaf(t, tg_tensor_from(tg_tape_arena(t), TG_I64, TG_SHAPE(3), lab, TG_I64), false);
    tg_var *oh = tg_one_hot(t, y, 4);
    cr_assert_eq(oh->val.dtype, TG_F32);
    cr_assert(tg_shape_eq(oh->val.shape, TG_SHAPE(3, 4)));
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) cr_expect_eq(tg_tensor_get(&oh->val, i * 4 + k), k == lab[i] ? 1.0 : 0.0);
    tg_tape_free(t);
}
