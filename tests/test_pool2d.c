/*
 * test_pool2d.c — max_pool2d, avg_pool2d and upsample_nearest2d at their
 * edges: where a tie's gradient goes (as PyTorch 1.13's CPU kernel), a
 * window holding only padding, a ceil-mode window reaching past the padding,
 * a 1x1 input, global pooling, float32 next to float64, bit-identical
 * results at 1, 2 and 3 threads, no allocation in a steady-state step, and
 * the abort messages. Expected values were printed by PyTorch 1.13.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "autograd/autograd.h"
#include "tensor/kernels.h"
#include "tensor/threads.h"
#include "tests/alloc_count.h"
#include "tests/child.h"

#define S(...) TG_SHAPE(__VA_ARGS__)
#define HERE "(at tests/test_pool2d.c:"

TestSuite(pool2d, .timeout = 60);

static tg_var *f64(tg_tape *t, tg_shape s, const double *v, bool grad) {
    return tg_leaf(t, tg_tensor_from(tg_tape_arena(t), TG_F64, s, v, TG_F64), grad);
}

static void expect_values(const tg_tensor *x, const double *want, int64_t n, const char *what) {
    cr_assert_eq(x->numel, n, "%s: %lld values, want %lld", what, (long long)x->numel, (long long)n);
    for (int64_t i = 0; i < n; i++)
        cr_expect(tg_tensor_get(x, i) == want[i] || (isnan(want[i]) && isnan(tg_tensor_get(x, i))),
                  "%s[%lld] = %.17g, want %.17g", what, (long long)i, tg_tensor_get(x, i), want[i]);
}

/* y's gradient seeded with ones, then backward. */
static void backward_ones(tg_tape *t, tg_var *y) { tg_backward(t, tg_sum(t, y)); }

/* ---------------------------------------------------------------- max_pool2d ties and NaN */

Test(pool2d, max_pool_tie_gradient_goes_to_the_first_in_the_window) {
    tg_tape *t = tg_tape_new();
    /* 2x2 windows at stride 1 over a plane of repeated 3s and 2s: PyTorch's
     * indices are (1, 1, 3, 7), the first maximum of each window in row-major order. */
    tg_var *x = f64(t, S(1, 1, 3, 3), (double[]){1, 3, 3, 3, 0, 1, 2, 2, 2}, true);
    tg_var *y = tg_max_pool2d(t, x, (tg_pool_args){.kernel = {2, 2}, .stride = {1, 1}});
    expect_values(&y->val, (double[]){3, 3, 3, 2}, 4, "y");
    backward_ones(t, y);
    expect_values(&x->grad, (double[]){0, 2, 0, 1, 0, 0, 0, 1, 0}, 9, "dx");   /* torch: the same */
    tg_tape_reset(t);

    /* All four equal: the whole gradient goes to the first. */
    x = f64(t, S(1, 1, 2, 2), (double[]){5, 5, 5, 5}, true);
    backward_ones(t, tg_max_pool2d(t, x, (tg_pool_args){.kernel = {2, 2}}));
    expect_values(&x->grad, (double[]){1, 0, 0, 0}, 4, "dx all equal");
    tg_tape_reset(t);

    /* NaN wins, and of two NaNs the later (PyTorch: val > max || isnan(val)). */
    x = f64(t, S(1, 1, 1, 4), (double[]){NAN, 1, NAN, 0}, true);
    y = tg_max_pool2d(t, x, (tg_pool_args){.kernel = {1, 4}});
    cr_expect(isnan(tg_tensor_get(&y->val, 0)));
    backward_ones(t, y);
    expect_values(&x->grad, (double[]){0, 0, 1, 0}, 4, "dx NaN");
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- windows in and past the padding */

Test(pool2d, max_pool_window_entirely_in_padding) {
    /* x 1x1, kernel 3, stride 3, padding 1, dilation 2, ceil_mode: one window
     * reading rows and columns -1, 1, 3, none of them x's. PyTorch: -inf and
     * no gradient (without ceil_mode the output would be 0x0: an abort). */
    tg_tape *t = tg_tape_new();
    tg_var *x = f64(t, S(1, 1, 1, 1), (double[]){7}, true);
    tg_pool_args a = {.kernel = {3, 3}, .stride = {3, 3}, .padding = {1, 1}, .dilation = {2, 2}, .ceil_mode = true};
    tg_var *y = tg_max_pool2d(t, x, a);
    expect_values(&y->val, (double[]){-INFINITY}, 1, "y");
    tg_backward_seed(t, y, tg_tensor_full(tg_tape_arena(t), TG_F64, y->val.shape, 1.0));
    expect_values(&x->grad, (double[]){0}, 1, "dx");
    /* Only padding and -inf: still -inf, and the gradient goes to the first element of x in the window. */
    tg_tape_reset(t);
    x = f64(t, S(1, 1, 2, 2), (double[]){-INFINITY, -INFINITY, -INFINITY, -INFINITY}, true);
    y = tg_max_pool2d(t, x, (tg_pool_args){.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}});
    expect_values(&y->val, (double[]){-INFINITY, -INFINITY, -INFINITY, -INFINITY}, 4, "y -inf");
    tg_backward_seed(t, y, tg_tensor_full(tg_tape_arena(t), TG_F64, y->val.shape, 1.0));
    expect_values(&x->grad, (double[]){4, 0, 0, 0}, 4, "dx -inf");   /* PyTorch's indices: all 0 */
    tg_tape_free(t);
}

Test(pool2d, avg_pool_ceil_mode_window_past_the_padding) {
    /* x = 1..5 in a row, windows of 2 at stride 2, ceil_mode: the last
     * window reaches past the input (and its padding). PyTorch 1.13: */
    struct { int64_t pad; bool off; double y[3], dx[5]; } cases[] = {
        {1, false, {0.5, 2.5, 4.5}, {0.5, 0.5, 0.5, 0.5, 0.5}},   /* the first window's pad counts, the last has none */
        {1, true, {1.0, 2.5, 4.5}, {1.0, 0.5, 0.5, 0.5, 0.5}},
        {0, false, {1.5, 3.5, 5.0}, {0.5, 0.5, 0.5, 0.5, 1.0}},   /* past the input: not counted even with the pad */
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        tg_tape *t = tg_tape_new();
        tg_var *x = f64(t, S(1, 1, 1, 5), (double[]){1, 2, 3, 4, 5}, true);
        tg_var *y = tg_avg_pool2d(t, x, (tg_pool_args){.kernel = {1, 2}, .padding = {0, cases[k].pad},
                                                       .ceil_mode = true, .count_include_pad_off = cases[k].off});
        expect_values(&y->val, cases[k].y, 3, "y");
        backward_ones(t, y);
        expect_values(&x->grad, cases[k].dx, 5, "dx");
        tg_tape_free(t);
    }
}

/* ---------------------------------------------------------------- 1x1 input, global pooling */

Test(pool2d, one_by_one_input) {
    tg_tape *t = tg_tape_new();
    double v[6] = {0.5, -1, 2, 3, -4, 0.25};
    tg_var *x = f64(t, S(2, 3, 1, 1), v, true);
    tg_var *m = tg_max_pool2d(t, x, (tg_pool_args){.kernel = {1, 1}});
    tg_var *a = tg_avg_pool2d(t, x, (tg_pool_args){.kernel = {1, 1}});
    tg_var *u = tg_upsample_nearest2d(t, x, 2, 3);
    expect_values(&m->val, v, 6, "max");
    expect_values(&a->val, v, 6, "avg");
    cr_expect(tg_shape_eq(u->val.shape, S(2, 3, 2, 3)));
    for (int64_t i = 0; i < u->val.numel; i++) cr_expect_eq(tg_tensor_get(&u->val, i), v[i / 6]);
    backward_ones(t, tg_add(t, tg_add(t, tg_sum(t, m), tg_sum(t, a)), tg_sum(t, u)));
    expect_values(&x->grad, (double[]){8, 8, 8, 8, 8, 8}, 6, "dx");   /* 1 + 1 + 6 */
    tg_tape_free(t);
}

Test(pool2d, kernel_the_size_of_the_input_is_global_pooling) {
    tg_tape *t = tg_tape_new();
    tg_rng r = tg_rng_seed(3);
    tg_var *x = tg_leaf(t, tg_tensor_uniform(tg_tape_arena(t), TG_F64, S(2, 3, 4, 5), -2, 2, &r), true);
    tg_var *flat = tg_reshape(t, x, S(2, 3, 20));
    tg_var *m = tg_max_pool2d(t, x, (tg_pool_args){.kernel = {4, 5}});
    tg_var *a = tg_avg_pool2d(t, x, (tg_pool_args){.kernel = {4, 5}});
    tg_var *m_ref = tg_max_axis(t, flat, 2, false), *a_ref = tg_mean_axis(t, flat, 2, false);
    cr_assert(tg_shape_eq(m->val.shape, S(2, 3, 1, 1)) && tg_shape_eq(a->val.shape, S(2, 3, 1, 1)));
    for (int64_t i = 0; i < 6; i++) {
        cr_expect_eq(tg_tensor_get(&m->val, i), tg_tensor_get(&m_ref->val, i));
        cr_expect(fabs(tg_tensor_get(&a->val, i) - tg_tensor_get(&a_ref->val, i)) < 1e-15);
    }
    /* With ceil_mode a kernel may even exceed the input (PyTorch: 2x2 -> 1x1). */
    tg_var *x2 = f64(t, S(1, 1, 2, 2), (double[]){0, 3, 1, 2}, true);
    expect_values(&tg_max_pool2d(t, x2, (tg_pool_args){.kernel = {3, 3}, .ceil_mode = true})->val, (double[]){3}, 1, "max");
    expect_values(&tg_avg_pool2d(t, x2, (tg_pool_args){.kernel = {3, 3}, .ceil_mode = true})->val, (double[]){1.5}, 1, "avg");
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- dtypes, threads */

/* y = sum(w1 max_pool(x)) + sum(w2 avg_pool(x)) + sum(w3 upsample(x)) in dt,
 * overlapping windows with padding; returns the values and dx in out[0..3]. */
static void run_all(tg_dtype dt, tg_shape s, tg_tensor **out, tg_arena *keep) {
    tg_tape *t = tg_tape_new();
    tg_rng r = tg_rng_seed(11);
    tg_arena *ar = tg_tape_arena(t);
    tg_var *x = tg_leaf(t, tg_tensor_uniform(ar, dt, s, -2, 2, &r), true);
    tg_pool_args pa = {.kernel = {3, 3}, .stride = {2, 1}, .padding = {1, 1}, .ceil_mode = true};
    tg_var *m = tg_max_pool2d(t, x, pa);
    tg_var *a = tg_avg_pool2d(t, x, pa);
    tg_var *u = tg_upsample_nearest2d(t, x, 2, 3);
    tg_var *l = tg_add(t, tg_add(t, tg_sum(t, tg_mul(t, m, tg_leaf(t, tg_tensor_uniform(ar, dt, m->val.shape, -1, 1, &r), false))),
                                 tg_sum(t, tg_mul(t, a, tg_leaf(t, tg_tensor_uniform(ar, dt, a->val.shape, -1, 1, &r), false)))),
                       tg_sum(t, tg_mul(t, u, tg_leaf(t, tg_tensor_uniform(ar, dt, u->val.shape, -1, 1, &r), false))));
    tg_backward(t, l);
    out[0] = tg_tensor_copy(keep, &m->val), out[1] = tg_tensor_copy(keep, &a->val);
    out[2] = tg_tensor_copy(keep, &u->val), out[3] = tg_tensor_copy(keep, &x->grad);
    tg_tape_free(t);
}

Test(pool2d, float32_matches_float64) {
    tg_arena *keep = tg_arena_new();
    tg_tensor *a[4], *b[4];
    run_all(TG_F32, S(2, 3, 7, 6), a, keep);
    run_all(TG_F64, S(2, 3, 7, 6), b, keep);
    for (int k = 0; k < 4; k++)
        for (int64_t i = 0; i < b[k]->numel; i++)
            cr_expect(fabs(tg_tensor_get(a[k], i) - tg_tensor_get(b[k], i)) < 1e-5, "tensor %d element %lld: %g vs %g",
                      k, (long long)i, tg_tensor_get(a[k], i), tg_tensor_get(b[k], i));
    tg_arena_free(keep);
}

Test(pool2d, bits_identical_at_1_2_and_3_threads) {
    tg_arena *keep = tg_arena_new();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_tensor *ref[4], *got[4];
        tg_threads_set(1);
        run_all(dt, S(4, 16, 32, 32), ref, keep);   /* 64 planes: split at 2 and 3 threads */
        for (int threads = 2; threads <= 3; threads++) {
            tg_threads_set(threads);
            run_all(dt, S(4, 16, 32, 32), got, keep);
            for (int k = 0; k < 4; k++)
                cr_expect(memcmp(ref[k]->data, got[k]->data, (size_t)ref[k]->numel * tg_dtype_size(dt)) == 0,
                          "%s tensor %d differs at %d threads", tg_dtype_name(dt), k, threads);
        }
    }
    tg_threads_set(0);
    tg_arena_free(keep);
}

/* ---------------------------------------------------------------- allocations */

static void step(tg_tape *t, tg_tensor *x) {
    tg_var *v = tg_leaf(t, x, true);
    tg_var *m = tg_max_pool2d(t, v, (tg_pool_args){.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
    tg_var *a = tg_avg_pool2d(t, m, (tg_pool_args){.kernel = {2, 2}, .ceil_mode = true});
    tg_var *u = tg_upsample_nearest2d(t, a, 2, 2);
    tg_backward(t, tg_sum(t, tg_mul(t, u, u)));
    tg_tape_reset(t);
}

Test(pool2d, steady_state_step_allocates_nothing) {
    tg_tape *t = tg_tape_new();
    tg_arena *keep = tg_arena_new();
    tg_rng r = tg_rng_seed(4);
    tg_tensor *x = tg_tensor_uniform(keep, TG_F32, S(8, 16, 28, 28), -1, 1, &r);
    step(t, x);
    step(t, x);
    uint64_t before = tg_test_alloc_count();
    for (int k = 0; k < 5; k++) step(t, x);
    cr_expect_eq(tg_test_alloc_count(), before, "%llu allocations in 5 steady-state steps",
                 (unsigned long long)(tg_test_alloc_count() - before));
    /* Without gradients nothing is recorded (and no indices are kept). */
    bool prev = tg_no_grad(t);
    tg_var *y = tg_max_pool2d(t, tg_leaf(t, x, true), (tg_pool_args){.kernel = {2, 2}});
    cr_expect_not(y->requires_grad);
    cr_expect_eq(t->n, 0);
    tg_set_grad(t, prev);
    tg_arena_free(keep);
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- aborts */

static tg_tape *abort_tape;
static tg_var *leaf_of(tg_shape s) {
    abort_tape = tg_tape_new();
    return tg_leaf(abort_tape, tg_tensor_zeros(tg_tape_arena(abort_tape), TG_F32, s), true);
}
static void max_3d(void) { tg_max_pool2d(abort_tape, leaf_of(S(3, 5, 5)), (tg_pool_args){.kernel = {2, 2}}); }
static void max_pad_too_wide(void) {
    tg_max_pool2d(abort_tape, leaf_of(S(1, 2, 5, 5)), (tg_pool_args){.kernel = {3, 3}, .padding = {1, 2}});
}
static void max_kernel_too_large(void) {
    tg_max_pool2d(abort_tape, leaf_of(S(1, 2, 3, 4)), (tg_pool_args){.kernel = {4, 2}, .padding = {0, 1}});
}
static void max_dilated_too_large(void) {
    tg_max_pool2d(abort_tape, leaf_of(S(1, 1, 5, 5)), (tg_pool_args){.kernel = {3, 3}, .dilation = {3, 1}});
}
static void max_zero_kernel(void) { tg_max_pool2d(abort_tape, leaf_of(S(1, 1, 5, 5)), (tg_pool_args){.kernel = {0, 2}}); }
static void avg_kernel_too_large(void) {
    tg_avg_pool2d(abort_tape, leaf_of(S(2, 1, 2, 2)), (tg_pool_args){.kernel = {3, 3}});
}
static void avg_dilated(void) {
    tg_avg_pool2d(abort_tape, leaf_of(S(1, 1, 5, 5)), (tg_pool_args){.kernel = {2, 2}, .dilation = {2, 2}});
}
static void avg_2d(void) { tg_avg_pool2d(abort_tape, leaf_of(S(5, 5)), (tg_pool_args){.kernel = {2, 2}}); }
static void upsample_zero_scale(void) { tg_upsample_nearest2d(abort_tape, leaf_of(S(1, 2, 3, 3)), 2, 0); }
static void upsample_5d(void) { tg_upsample_nearest2d(abort_tape, leaf_of(S(1, 1, 2, 3, 3)), 2, 2); }
static void max_of_int64(void) {
    abort_tape = tg_tape_new();
    tg_var *x = tg_leaf(abort_tape, tg_tensor_zeros(tg_tape_arena(abort_tape), TG_I64, S(1, 1, 2, 2)), false);
    tg_max_pool2d(abort_tape, x, (tg_pool_args){.kernel = {2, 2}});
}

Test(pool2d, bad_arguments_abort_naming_op_shapes_and_caller) {
    tg_expect_abort(max_3d, "max_pool2d: x must be 4-D (N, C, H, W), got (3, 5, 5)", HERE);
    tg_expect_abort(max_pad_too_wide, "max_pool2d: padding must be at most half the kernel",
                    "kernel (3, 3) stride (0, 0) padding (1, 2)", "(x (1, 2, 5, 5))", HERE);
    tg_expect_abort(max_kernel_too_large, "max_pool2d: the kernel is larger than the padded input: x (1, 2, 3, 4)",
                    "kernel (4, 2)", "gives 0 x 3", HERE);
    tg_expect_abort(max_dilated_too_large, "max_pool2d: the kernel is larger than the padded input",
                    "dilation (3, 1)", "gives 0 x 1", HERE);
    tg_expect_abort(max_zero_kernel, "max_pool2d: kernel must be >= 1", "kernel (0, 2)", HERE);
    tg_expect_abort(avg_kernel_too_large, "avg_pool2d: the kernel is larger than the padded input: x (2, 1, 2, 2)",
                    "gives 0 x 0", HERE);
    tg_expect_abort(avg_dilated, "avg_pool2d: has no dilation", "dilation (2, 2)", HERE);
    tg_expect_abort(avg_2d, "avg_pool2d: x must be 4-D (N, C, H, W), got (5, 5)", HERE);
    tg_expect_abort(upsample_zero_scale, "upsample_nearest2d: scales must be integers >= 1, got (2, 0) for x (1, 2, 3, 3)",
                    HERE);
    tg_expect_abort(upsample_5d, "upsample_nearest2d: x must be 4-D", "(1, 1, 2, 3, 3)", HERE);
    tg_expect_abort(max_of_int64, "max_pool2d: takes float32 or float64 values, got an int64 tensor", HERE);
}
