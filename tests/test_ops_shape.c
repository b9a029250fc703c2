/*
 * test_ops_shape.c — the shape and indexing ops at their edges: the last
 * index, repeated indices, indices out of range (the abort names the
 * caller), size-1 expansion, padding wider than the axis, steps longer than
 * the axis, permutations and their inverses, split and chunk, int64 values
 * moved by shape ops, the compositions (stack, split, chunk, flatten, ...)
 * gradient-checked, and the tape-free kernels.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "autograd/autograd.h"
#include "tensor/kernels.h"
#include "tests/child.h"

#define S(...) TG_SHAPE(__VA_ARGS__)
#define HERE "(at tests/test_ops_shape.c:"

TestSuite(ops_shape, .timeout = 60);

static tg_var *f64(tg_tape *t, tg_shape s, const double *v, bool grad) {
    return tg_leaf(t, tg_tensor_from(tg_tape_arena(t), TG_F64, s, v, TG_F64), grad);
}
static tg_var *i64(tg_tape *t, tg_shape s, const int64_t *v) {
    return tg_leaf(t, tg_tensor_from(tg_tape_arena(t), TG_I64, s, v, TG_I64), false);
}
/* 0, 1, 2, ... in a float64 leaf of shape s. */
static tg_var *iota(tg_tape *t, tg_shape s, bool grad) {
    tg_tensor *x = tg_tensor_new(tg_tape_arena(t), TG_F64, s);
    for (int64_t i = 0; i < x->numel; i++) tg_tensor_set(x, i, (double)i);
    return tg_leaf(t, x, grad);
}
static void expect_values(const tg_tensor *x, tg_shape s, const double *want) {
    char b1[96], b2[96];
    cr_assert(tg_shape_eq(x->shape, s), "shape %s, want %s", tg_shape_str(x->shape, b1), tg_shape_str(s, b2));
    for (int64_t i = 0; i < x->numel; i++)
        cr_expect_eq(tg_tensor_get(x, i), want[i], "element %lld: %g, want %g", (long long)i, tg_tensor_get(x, i), want[i]);
}
/* Backward of sum(y): every element of y seeds 1. */
static void backward_sum(tg_tape *t, tg_var *y) { tg_backward(t, tg_sum(t, y)); }

/* ---------------------------------------------------------------- indexing: values and gradients */

Test(ops_shape, gather_at_the_last_index) {
    tg_tape *t = tg_tape_new();
    tg_var *x = iota(t, S(2, 4), true);   /* [[0 1 2 3] [4 5 6 7]] */
    tg_var *y = tg_gather(t, x, 1, i64(t, S(2, 3), (int64_t[]){3, 3, 0, 3, 1, 3}));
    expect_values(&y->val, S(2, 3), (double[]){3, 3, 0, 7, 5, 7});
    backward_sum(t, y);
    expect_values(&x->grad, S(2, 4), (double[]){1, 0, 0, 2, 0, 1, 0, 2});
    tg_tape_free(t);
}

Test(ops_shape, repeated_indices_accumulate_in_embedding_and_index_select) {
    tg_tape *t = tg_tape_new();
    tg_var *w = iota(t, S(4, 2), true);
    tg_var *ix = i64(t, S(2, 3), (int64_t[]){1, 3, 1, 1, 3, 0});
    tg_var *e = tg_embedding(t, w, ix);
    expect_values(&e->val, S(2, 3, 2), (double[]){2, 3, 6, 7, 2, 3, 2, 3, 6, 7, 0, 1});
    tg_backward(t, tg_sum(t, tg_mul_scalar(t, e, 0.5)));
    expect_values(&w->grad, S(4, 2), (double[]){0.5, 0.5, 1.5, 1.5, 0, 0, 1, 1});
    tg_tape_reset(t);

    tg_var *x = iota(t, S(2, 3), true);
    tg_var *y = tg_index_select(t, x, 1, i64(t, S(5), (int64_t[]){2, 2, 0, 2, 2}));
    expect_values(&y->val, S(2, 5), (double[]){2, 2, 0, 2, 2, 5, 5, 3, 5, 5});
    backward_sum(t, y);
    expect_values(&x->grad, S(2, 3), (double[]){1, 0, 4, 1, 0, 4});
    tg_tape_free(t);
}

Test(ops_shape, scatter_add_values_and_gradients) {
    tg_tape *t = tg_tape_new();
    tg_var *x = iota(t, S(3, 2), true);
    tg_var *src = f64(t, S(2, 2), (double[]){10, 20, 30, 40}, true);
    tg_var *y = tg_scatter_add(t, x, 0, i64(t, S(2, 2), (int64_t[]){2, 2, 2, 0}), src);
    expect_values(&y->val, S(3, 2), (double[]){0, 41, 2, 3, 44, 25});
    tg_var *w = f64(t, S(3, 2), (double[]){1, 2, 3, 4, 5, 6}, false);
    tg_backward(t, tg_sum(t, tg_mul(t, y, w)));
    expect_values(&x->grad, S(3, 2), (double[]){1, 2, 3, 4, 5, 6});
    expect_values(&src->grad, S(2, 2), (double[]){5, 6, 5, 2});   /* w gathered at the indices */
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- indices out of range abort naming the caller */

static void gather_past_the_end(void) {
    tg_tape *t = tg_tape_new();
    tg_var *x = iota(t, S(2, 4), false);
    tg_gather(t, x, 1, i64(t, S(2, 2), (int64_t[]){3, 0, 4, 1}));
}
static const int gather_at = __LINE__ - 2;   /* the line of the tg_gather call above */
static void index_select_negative(void) {
    tg_tape *t = tg_tape_new();
    tg_var *x = iota(t, S(2, 4), false);
    tg_index_select(t, x, 0, i64(t, S(2), (int64_t[]){1, -1}));
}
static void embedding_past_the_table(void) {
    tg_tape *t = tg_tape_new();
    tg_var *w = iota(t, S(3, 2), true);
    tg_embedding(t, w, i64(t, S(1, 2), (int64_t[]){0, 3}));
}
static void scatter_add_negative(void) {
    tg_tape *t = tg_tape_new();
    tg_var *x = iota(t, S(3, 2), true);
    tg_scatter_add(t, x, 0, i64(t, S(1, 2), (int64_t[]){-3, 0}), iota(t, S(1, 2), false));
}
static void index_of_floats(void) {
    tg_tape *t = tg_tape_new();
    tg_gather(t, iota(t, S(2), false), 0, iota(t, S(2), false));
}

Test(ops_shape, index_out_of_range_or_negative_aborts_naming_it_and_the_caller) {
    char at[64];
    snprintf(at, sizeof at, HERE "%d)", gather_at);
    tg_expect_abort(gather_past_the_end, "tapegrad: gather: index 4 at position 2 of index (2, 2) is out of range "
                    "for axis 1 of (2, 4) (size 4)", at);
    tg_expect_abort(index_select_negative, "index_select: index -1 at position 1", "axis 0 of (2, 4)", HERE);
    tg_expect_abort(embedding_past_the_table, "embedding: index 3 at position 1", "(size 3)", HERE);
    tg_expect_abort(scatter_add_negative, "scatter_add: index -3 at position 0", HERE);
    tg_expect_abort(index_of_floats, "gather: indices must be an int64 tensor, got float64", HERE);
}

/* ---------------------------------------------------------------- shape ops at their edges */

Test(ops_shape, expand_of_a_size_1_axis_and_new_axes) {
    tg_tape *t = tg_tape_new();
    tg_var *x = iota(t, S(3, 1), true);
    tg_var *y = tg_expand(t, x, S(2, -1, 2));   /* a new leading axis, the size-1 axis grown */
    expect_values(&y->val, S(2, 3, 2), (double[]){0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2});
    backward_sum(t, y);
    expect_values(&x->grad, S(3, 1), (double[]){4, 4, 4});
    tg_tape_free(t);
}

static void expand_a_size_2_axis(void) {
    tg_tape *t = tg_tape_new();
    tg_expand(t, iota(t, S(3, 2), false), S(3, 4));
}
static void expand_new_axis_of_minus_1(void) {
    tg_tape *t = tg_tape_new();
    tg_expand(t, iota(t, S(3), false), S(-1, 3));
}

Test(ops_shape, expand_of_a_larger_axis_or_a_new_minus_1_aborts) {
    tg_expect_abort(expand_a_size_2_axis, "expand: cannot expand (3, 2) to (3, 4)", HERE);
    tg_expect_abort(expand_new_axis_of_minus_1, "expand: cannot expand (3,) to (-1, 3)", HERE);
}

Test(ops_shape, pad_larger_than_the_dimension) {
    tg_tape *t = tg_tape_new();
    tg_var *x = f64(t, S(2), (double[]){1, 2}, true);
    tg_var *y = tg_pad(t, x, (int64_t[]){5, 4}, 2, -1.0);
    expect_values(&y->val, S(11), (double[]){-1, -1, -1, -1, -1, 1, 2, -1, -1, -1, -1});
    tg_var *w = iota(t, S(11), false);
    tg_backward(t, tg_sum(t, tg_mul(t, y, w)));
    expect_values(&x->grad, S(2), (double[]){5, 6});
    tg_tape_reset(t);
    /* Cropping (negative pads) on one side, padding on the other, of a 2-d x. */
    x = iota(t, S(2, 3), true);
    y = tg_pad(t, x, (int64_t[]){-2, 1, 1, -1}, 4, 9.0);   /* last axis: crop 2, pad 1; first: pad 1, crop 1 */
    expect_values(&y->val, S(2, 2), (double[]){9, 9, 2, 9});
    backward_sum(t, y);
    expect_values(&x->grad, S(2, 3), (double[]){0, 0, 1, 0, 0, 0});
    tg_tape_free(t);
}

static void pad_crops_past_the_axis(void) {
    tg_tape *t = tg_tape_new();
    tg_pad(t, iota(t, S(2, 3), false), (int64_t[]){-4, 0}, 2, 0.0);
}
static void pad_odd_count(void) {
    tg_tape *t = tg_tape_new();
    tg_pad(t, iota(t, S(2, 3), false), (int64_t[]){1, 1, 1}, 3, 0.0);
}

Test(ops_shape, pad_cropping_past_the_axis_or_odd_pads_abort) {
    tg_expect_abort(pad_crops_past_the_axis, "pad: pads (-4, 0) leave axis 1 of (2, 3) with -1 elements", HERE);
    tg_expect_abort(pad_odd_count, "pad: 3 pads for (2, 3)", HERE);
}

Test(ops_shape, slice_with_step_larger_than_the_axis) {
    tg_tape *t = tg_tape_new();
    tg_var *x = iota(t, S(3, 2), true);
    tg_var *y = tg_slice(t, x, 0, 1, INT64_MAX, 5);   /* x[1::5]: one row */
    expect_values(&y->val, S(1, 2), (double[]){2, 3});
    backward_sum(t, y);
    expect_values(&x->grad, S(3, 2), (double[]){0, 0, 1, 1, 0, 0});
    tg_tape_reset(t);
    /* Python's clamping: -100 is the start, a stop before the start is empty. */
    x = iota(t, S(7), true);
    expect_values(&tg_slice(t, x, 0, -100, 3, 1)->val, S(3), (double[]){0, 1, 2});
    expect_values(&tg_slice(t, x, -1, -3, 100, 2)->val, S(2), (double[]){4, 6});
    expect_values(&tg_slice(t, x, 0, 2, INT64_MAX, INT64_MAX)->val, S(1), (double[]){2});
    tg_var *e = tg_slice(t, x, 0, 5, 2, 1);
    cr_expect(tg_shape_eq(e->val.shape, S(0)));
    backward_sum(t, tg_add(t, tg_sum(t, e), tg_sum(t, tg_slice(t, x, 0, 6, 7, 3))));
    expect_values(&x->grad, S(7), (double[]){0, 0, 0, 0, 0, 0, 1});
    tg_tape_free(t);
}

static void slice_step_0(void) {
    tg_tape *t = tg_tape_new();
    tg_slice(t, iota(t, S(3), false), 0, 0, 3, 0);
}

Test(ops_shape, slice_step_0_aborts) { tg_expect_abort(slice_step_0, "slice: step 0; steps must be positive", HERE); }

Test(ops_shape, permute_identity_and_its_inverse) {
    tg_tape *t = tg_tape_new();
    tg_var *x = iota(t, S(2, 3, 4, 5), true);
    tg_var *id = tg_permute(t, x, S(0, 1, 2, 3));
    cr_expect_eq(memcmp(id->val.data, x->val.data, 120 * sizeof(double)), 0);
    tg_var *p = tg_permute(t, x, S(2, 0, -1, 1));   /* (4, 2, 5, 3) */
    cr_expect(tg_shape_eq(p->val.shape, S(4, 2, 5, 3)));
    cr_expect_eq(tg_tensor_get(&p->val, 1 * 30 + 1 * 15 + 2 * 3 + 1), 1 * 60 + 1 * 20 + 1 * 5 + 2);  /* p[1,1,2,1] = x[1,1,1,2] */
    tg_var *back = tg_permute(t, p, S(1, 3, 0, 2));   /* the inverse */
    cr_expect(tg_shape_eq(back->val.shape, x->val.shape));
    cr_expect_eq(memcmp(back->val.data, x->val.data, 120 * sizeof(double)), 0);
    tg_var *w = iota(t, S(2, 3, 4, 5), false);
    tg_backward(t, tg_sum(t, tg_mul(t, tg_add(t, back, id), w)));   /* d/dx = 2 w */
    for (int i = 0; i < 120; i++) cr_expect_eq(tg_tensor_get(&x->grad, i), 2.0 * i);
    tg_tape_free(t);
}

static void permute_repeated_axis(void) {
    tg_tape *t = tg_tape_new();
    tg_permute(t, iota(t, S(2, 3, 4), false), S(0, 2, -1));
}

Test(ops_shape, permute_not_a_permutation_aborts) {
    tg_expect_abort(permute_repeated_axis, "permute: dims (0, 2, -1) are not a permutation of the 3 axes of (2, 3, 4)",
                    HERE);
}

/* ---------------------------------------------------------------- split, chunk, cat, stack */

static void split_not_summing(void) {
    tg_tape *t = tg_tape_new();
    tg_var *out[2];
    tg_split(t, iota(t, S(2, 5), false), 1, (int64_t[]){2, 2}, 2, out);
}

Test(ops_shape, split_sizes_not_summing_to_the_axis_abort) {
    tg_expect_abort(split_not_summing, "split: 2 sizes adding up to 4 do not split axis 1 of (2, 5)", HERE);
}

Test(ops_shape, split_and_chunk_sizes_as_pytorch) {
    tg_tape *t = tg_tape_new();
    tg_var *x = iota(t, S(6), true), *out[4];
    tg_split(t, x, 0, (int64_t[]){1, 0, 5}, 3, out);
    cr_expect(tg_shape_eq(out[1]->val.shape, S(0)));
    expect_values(&out[2]->val, S(5), (double[]){1, 2, 3, 4, 5});
    cr_expect_eq(tg_chunk(t, x, 4, 0, out), 3);   /* torch.chunk(arange(6), 4): sizes 2, 2, 2 */
    expect_values(&out[2]->val, S(2), (double[]){4, 5});
    cr_expect_eq(tg_chunk(t, iota(t, S(5), false), 3, -1, out), 3);   /* 2, 2, 1 */
    cr_expect(tg_shape_eq(out[2]->val.shape, S(1)));
    cr_expect_eq(tg_chunk(t, iota(t, S(2), false), 4, 0, out), 2);   /* 1, 1 */
    tg_tape_free(t);
}

Test(ops_shape, cat_is_one_entry_and_concat_wraps_it) {
    tg_tape *t = tg_tape_new();
    tg_var *a = iota(t, S(2, 1), true), *b = iota(t, S(2, 2), false), *c = iota(t, S(2, 3), true);
    tg_var *y = tg_cat(t, (tg_var *[]){a, b, c}, 3, -1);
    expect_values(&y->val, S(2, 6), (double[]){0, 0, 1, 0, 1, 2, 1, 2, 3, 3, 4, 5});
    cr_expect_eq(t->n, 1);
    cr_expect_eq(t->entries[0].op, TG_OP_CONCAT);
    cr_expect_eq(t->entries[0].n_ins, 3);
    tg_var *z = tg_concat(t, a, a, 0);
    cr_expect_eq(t->n, 2);
    cr_expect_eq(t->entries[1].n_ins, 2);
    tg_backward(t, tg_add(t, tg_sum(t, y), tg_sum(t, z)));
    expect_values(&a->grad, S(2, 1), (double[]){3, 3});   /* once in y, twice in z */
    expect_values(&c->grad, S(2, 3), (double[]){1, 1, 1, 1, 1, 1});
    cr_expect_null(b->grad.data);
    tg_tape_free(t);
}

Test(ops_shape, stack_and_the_views) {
    tg_tape *t = tg_tape_new();
    tg_var *a = iota(t, S(2, 3), true), *b = iota(t, S(2, 3), true);
    tg_var *s = tg_stack(t, (tg_var *[]){a, b}, 2, -1);
    cr_expect(tg_shape_eq(s->val.shape, S(2, 3, 2)));
    cr_expect_eq(tg_tensor_get(&s->val, 5), 2.0);   /* s[0, 2, 1] = b[0, 2] */
    cr_expect(tg_shape_eq(tg_stack(t, (tg_var *[]){a, b, a}, 3, 0)->val.shape, S(3, 2, 3)));
    tg_var *x = iota(t, S(2, 3, 4, 5), false);
    cr_expect(tg_shape_eq(tg_flatten(t, x, 1, 2)->val.shape, S(2, 12, 5)));
    cr_expect(tg_shape_eq(tg_flatten(t, x, 0, -1)->val.shape, S(120)));
    cr_expect(tg_shape_eq(tg_unflatten(t, x, -1, S(-1, 1))->val.shape, S(2, 3, 4, 5, 1)));
    cr_expect(tg_shape_eq(tg_unflatten(t, x, 1, S(1, 3, 1))->val.shape, S(2, 1, 3, 1, 4, 5)));
    tg_var *u = tg_unsqueeze(t, a, 0);
    cr_expect(tg_shape_eq(u->val.shape, S(1, 2, 3)));
    cr_expect(tg_shape_eq(tg_squeeze(t, u, 0)->val.shape, S(2, 3)));
    cr_expect(tg_shape_eq(tg_squeeze(t, u, 1)->val.shape, S(1, 2, 3)), "squeezing a size-2 axis changes nothing");
    cr_expect(tg_shape_eq(tg_unsqueeze(t, a, -1)->val.shape, S(2, 3, 1)));
    cr_expect_eq(tg_flatten(t, x, 1, 2)->val.data, x->val.data, "flatten is a view");
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- int64 values move through shape ops */

static void expand_int64(void) {
    tg_tape *t = tg_tape_new();
    tg_expand(t, i64(t, S(1), (int64_t[]){1}), S(3));
}

Test(ops_shape, int64_values_through_permute_cat_stack_and_index_select) {
    tg_expect_abort(expand_int64, "expand: takes float32 or float64 values, got an int64 tensor", HERE);
    tg_tape *t = tg_tape_new();
    const int64_t big = ((int64_t)1 << 53) + 1;   /* not a double */
    tg_var *x = i64(t, S(2, 3), (int64_t[]){big, 1, 2, 3, -4, big + 2});
    tg_var *p = tg_permute(t, x, S(1, 0));
    int64_t want_p[6] = {big, 3, 1, -4, 2, big + 2};
    cr_expect_eq(p->val.dtype, TG_I64);
    cr_expect_eq(memcmp(p->val.data, want_p, sizeof want_p), 0);
    tg_var *c = tg_cat(t, (tg_var *[]){x, x}, 2, 1);
    int64_t want_c[12] = {big, 1, 2, big, 1, 2, 3, -4, big + 2, 3, -4, big + 2};
    cr_expect_eq(memcmp(c->val.data, want_c, sizeof want_c), 0);
    tg_var *s = tg_index_select(t, x, 1, i64(t, S(3), (int64_t[]){2, 2, 0}));
    int64_t want_s[6] = {2, 2, big, big + 2, big + 2, 3};
    cr_expect_eq(memcmp(s->val.data, want_s, sizeof want_s), 0);
    tg_var *g = tg_gather(t, x, 0, i64(t, S(1, 3), (int64_t[]){1, 0, 1}));
    int64_t want_g[3] = {3, 1, big + 2};
    cr_expect_eq(memcmp(g->val.data, want_g, sizeof want_g), 0);
    tg_var *st = tg_stack(t, (tg_var *[]){x, x}, 2, 0);
    cr_expect_eq(TG_I64P(&st->val)[11], big + 2);
    cr_expect_eq(TG_I64P(&tg_slice(t, x, 1, 0, 3, 2)->val)[3], big + 2);
    cr_expect_eq(TG_I64P(&tg_pad(t, x, (int64_t[]){1, 0}, 2, 7.0)->val)[4], 7);
    cr_expect_eq(TG_I64P(&tg_flatten(t, x, 0, 1)->val)[5], big + 2);
    cr_expect_eq(t->n, 0, "int64 values record nothing");
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- the compositions, gradient-checked */

static tg_var *f_composed(tg_tape *t, tg_var **v, void *c) {
    tg_var *out[4];
    switch (*(int *)c) {
    case 0: return tg_square(t, tg_stack(t, v, 3, 1));
    case 1: tg_split(t, v[0], 1, (int64_t[]){1, 3, 1}, 3, out); return tg_mul(t, out[1], tg_expand(t, out[2], S(2, 3)));
    case 2: tg_chunk(t, v[0], 2, -1, out); return tg_mul(t, tg_slice(t, out[0], -1, 1, 3, 1), out[1]);   /* 3 + 2 */
    case 3: return tg_square(t, tg_flatten(t, tg_unsqueeze(t, v[0], 1), 0, 1));
    case 4: return tg_square(t, tg_unflatten(t, tg_squeeze(t, v[0], 0), 0, S(-1, 5)));
    case 5: return tg_square(t, tg_permute(t, tg_pad(t, tg_slice(t, v[0], 1, 0, 5, 2), (int64_t[]){1, 0, 0, 2}, 4, 0.0),
                                         S(1, 0)));
    default: return tg_square(t, tg_cat(t, v, 1, 0));   /* cat of one */
    }
}

Test(ops_shape, compositions_are_gradient_checked) {
    tg_shape shapes[][3] = {{S(2, 3), S(2, 3), S(2, 3)}, {S(2, 5)}, {S(2, 5)}, {S(2, 5)}, {S(1, 10)}, {S(2, 5)}, {S(3)}};
    int n_in[] = {3, 1, 1, 1, 1, 1, 1};
    for (int k = 0; k < 7; k++) {
        tg_arena *a = tg_arena_new();
        tg_rng r = tg_rng_seed(5);
        tg_tensor *in[3];
        for (int i = 0; i < n_in[k]; i++) in[i] = tg_tensor_uniform(a, TG_F64, shapes[k][i], -2, 2, &r);
        tg_gradcheck_result res = tg_gradcheck(f_composed, in, n_in[k], &k, 1e-6, 1e-7, 1e-6);
        cr_expect(res.ok && res.checked > 0, "composition %d: input %d element %lld analytic %g numeric %g", k,
                  res.worst_input, (long long)res.worst_index, res.analytic, res.numeric);
        tg_arena_free(a);
    }
}

Test(ops_shape, float32_values_match_float64) {
    tg_tape *t = tg_tape_new();
    tg_var *x = iota(t, S(3, 4), false);
    tg_var *xf = tg_leaf(t, tg_tensor_cast(tg_tape_arena(t), &x->val, TG_F32), false);
    tg_var *ix = i64(t, S(2, 4), (int64_t[]){2, 0, 1, 2, 0, 0, 2, 1});
    for (int f = 0; f < 2; f++) {
        tg_var *v = f ? xf : x;
        tg_var *ys[] = {tg_permute(t, v, S(1, 0)), tg_pad(t, v, (int64_t[]){1, -1}, 2, 0.5), tg_slice(t, v, 1, 1, 4, 2),
                        tg_gather(t, v, 0, ix), tg_expand(t, tg_slice(t, v, 0, 0, 1, 1), S(2, 3, 4))};
        double want[][4] = {{0, 4, 8, 1}, {0.5, 0, 1, 2}, {1, 3, 5, 7}, {8, 1, 6, 11}, {0, 1, 2, 3}};
        for (int k = 0; k < 5; k++) {
            cr_expect_eq(ys[k]->val.dtype, v->val.dtype);
            for (int i = 0; i < 4; i++) cr_expect_eq(tg_tensor_get(&ys[k]->val, i), want[k][i], "op %d dtype %d", k, f);
        }
    }
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- the tape-free kernels */

Test(ops_shape, gather_and_scatter_add_kernels_without_a_tape) {
    tg_arena *a = tg_arena_new();
    double xv[6] = {1, 2, 3, 4, 5, 6};
    tg_tensor *x = tg_tensor_from(a, TG_F64, S(2, 3), xv, TG_F64);
    tg_tensor *ix = tg_tensor_from(a, TG_I64, S(2, 2), (int64_t[]){2, 2, 0, 1}, TG_I64);
    tg_tensor *g = tg_tensor_new(a, TG_F64, S(2, 2));
    cr_expect_eq(tg_tensor_gather(g, x, 1, ix, false), -1);
    expect_values(g, S(2, 2), (double[]){3, 3, 4, 5});
    tg_tensor *acc = tg_tensor_zeros(a, TG_F64, S(2, 3));
    cr_expect_eq(tg_tensor_scatter_add(acc, 1, ix, g), -1);
    expect_values(acc, S(2, 3), (double[]){0, 0, 6, 4, 5, 0});
    TG_I64P(ix)[3] = 3;
    cr_expect_eq(tg_tensor_gather(g, x, 1, ix, false), 3, "the position of the bad index");
    cr_expect_eq(tg_tensor_scatter_add(acc, 1, ix, g), 3);
    expect_values(acc, S(2, 3), (double[]){0, 0, 6, 4, 5, 0});   /* nothing written */
    tg_tensor *sel = tg_tensor_new(a, TG_F64, S(2, 1));
    cr_expect_eq(tg_tensor_index_select(sel, x, 1, tg_tensor_from(a, TG_I64, S(1), (int64_t[]){-1}, TG_I64)), 0);
    tg_arena_free(a);
}
