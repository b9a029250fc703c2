/*
 * test_ops.c — every op in the table gradient-checked in float64, then
 * broadcasting, edge values, reused nodes, the no-grad scope and the
 * shape-error messages.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "tests/child.h"
#include "tests/custom_op.h"
#include "tests/custom_op.h"

/* ================================================================ one case per op
 *
 * Each case builds the op from leaves; the test walks tg_ops, so an op added
 * to the enum without a case here fails the suite. */

typedef struct {
    tg_gradcheck_fn f;
    int n;                 /* inputs */
    tg_shape shape[3];
    double lo, hi;         /* inputs drawn uniformly from [lo, hi) */
    double atol, rtol;
} op_case;

static tg_var *f_add(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_add(t, v[0], v[1]); }
static tg_var *f_sub(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_sub(t, v[0], v[1]); }
static tg_var *f_mul(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_mul(t, v[0], v[1]); }
static tg_var *f_div(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_div(t, v[0], v[1]); }
static tg_var *f_neg(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_neg(t, v[0]); }
static tg_var *f_add_scalar(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_add_scalar(t, v[0], 2.5); }
static tg_var *f_mul_scalar(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_mul_scalar(t, v[0], -1.5); }
static tg_var *f_exp(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_exp(t, v[0]); }
static tg_var *f_log(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_log(t, v[0]); }
static tg_var *f_sqrt(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_sqrt(t, v[0]); }
static tg_var *f_square(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_square(t, v[0]); }
static tg_var *f_pow(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_pow(t, v[0], 2.7); }
static tg_var *f_relu(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_relu(t, v[0]); }
static tg_var *f_sigmoid(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_sigmoid(t, v[0]); }
static tg_var *f_tanh(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_tanh(t, v[0]); }
static tg_var *f_softplus(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_softplus(t, v[0]); }
static tg_var *f_matmul(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_matmul(t, v[0], v[1], false, true); }
static tg_var *f_affine(tg_tape *t, tg_var **v, void *c) {
    tg_act act = c ? *(tg_act *)c : TG_ACT_RELU;
    return tg_affine(t, v[0], v[1], v[2], act);
}
static tg_var *f_sum(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_sum_axis(t, v[0], 1, true); }
static tg_var *f_mean(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_mean_axis(t, v[0], -1, false); }
static tg_var *f_reshape(tg_tape *t, tg_var **v, void *c) {
    (void)c;  /* square the view so the gradient is not constant */
    return tg_square(t, tg_reshape(t, v[0], TG_SHAPE(4, 6)));
}
static tg_var *f_transpose(tg_tape *t, tg_var **v, void *c) {
    (void)c;  /* multiply by a non-symmetric weight so a wrong permutation shows */
    tg_var *tr = tg_transpose(t, v[0], 0, 2);
    return tg_mul(t, tr, tr);
}
static tg_var *f_concat(tg_tape *t, tg_var **v, void *c) {
    (void)c;
    tg_var *cat = tg_cat(t, v, 3, 1);   /* variadic: the case's three leaves */
    return tg_mul(t, cat, cat);
}
static tg_var *f_narrow(tg_tape *t, tg_var **v, void *c) {
    (void)c;
    tg_var *n = tg_narrow(t, v[0], 1, 1, 2);
    return tg_mul(t, n, n);
}
static tg_var *f_reparam(tg_tape *t, tg_var **v, void *c) {
    (void)c;
    tg_rng r = tg_rng_seed(7);   /* the same eps on every evaluation */
    tg_tensor *eps = tg_tensor_normal(tg_tape_arena(t), TG_F64, v[0]->val.shape, &r);
    return tg_reparam(t, v[0], v[1], eps);
}
static tg_var *f_bce(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_bce(t, v[0], v[1]); }
static tg_var *f_bce_logits(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_bce_logits(t, v[0], v[1]); }
static tg_var *f_bce_logits_sum(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_bce_logits_sum(t, v[0], v[1]); }

/* elementwise maps, comparisons and where */
static tg_var *f_abs(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_abs(t, v[0]); }
static tg_var *f_clamp(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_clamp(t, v[0], -0.9, 1.3); }
static tg_var *f_maximum(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_maximum(t, v[0], v[1]); }
static tg_var *f_minimum(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_minimum(t, v[0], v[1]); }
static tg_var *f_log1p(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_log1p(t, v[0]); }
static tg_var *f_expm1(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_expm1(t, v[0]); }
static tg_var *f_leaky_relu(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_leaky_relu(t, v[0], 0.1); }
static tg_var *f_elu(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_elu(t, v[0], 0.7); }
static tg_var *f_gelu(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_gelu(t, v[0]); }
static tg_var *f_gelu_tanh(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_gelu_tanh(t, v[0]); }
static tg_var *f_silu(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_silu(t, v[0]); }
static tg_var *f_hardtanh(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_hardtanh(t, v[0], -0.9, 1.3); }
static tg_var *f_where(tg_tape *t, tg_var **v, void *c) {
    (void)c;  /* a fixed int64 cond (2, 3, 1) broadcast against a (3, 4) and b (4) */
    double cv[6] = {1, 0, -2, 0, 0, 5};
    tg_var *cond = tg_leaf(t, tg_tensor_from(tg_tape_arena(t), TG_I64, TG_SHAPE(2, 3, 1), cv, TG_F64), false);
    return tg_where(t, cond, v[0], v[1]);
}

/* reductions and the softmax family */
static tg_var *f_max(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_max(t, v[0]); }
static tg_var *f_min(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_min_axis(t, v[0], -2, false); }
static tg_var *f_logsumexp(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_logsumexp_axis(t, v[0], 1, true); }
static tg_var *f_std(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_std_axis(t, v[0], 1, 1, false); }
static tg_var *f_softmax(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_softmax(t, v[0], -1); }
static tg_var *f_log_softmax(tg_tape *t, tg_var **v, void *c) { (void)c; return tg_log_softmax(t, v[0], 0); }
static tg_var *f_nll(tg_tape *t, tg_var **v, void *c) {
    (void)c;   /* (N, C, d) = (2, 4, 3) with one ignored label */
    int64_t lab[6] = {3, 0, TG_IGNORE_INDEX, 1, 2, 1};
    tg_tensor *y = tg_tensor_new(tg_tape_arena(t), TG_I64, TG_SHAPE(2, 3));
    memcpy(y->data, lab, sizeof lab);
    return tg_nll(t, v[0], tg_leaf(t, y, false), TG_IGNORE_INDEX);
}

/* shape and indexing */
/* An int64 index tensor from a literal list, in the tape's arena. */
static tg_var *idx(tg_tape *t, tg_shape s, const int64_t *v) {
    return tg_leaf(t, tg_tensor_from(tg_tape_arena(t), TG_I64, s, v, TG_I64), false);
}
static tg_var *f_permute(tg_tape *t, tg_var **v, void *c) {
    (void)c;  /* squared, so each element's gradient depends on where it went */
    tg_var *p = tg_permute(t, v[0], TG_SHAPE(2, 0, 3, 1));
    return tg_mul(t, p, p);
}
static tg_var *f_expand(tg_tape *t, tg_var **v, void *c) {
    (void)c;  /* (3, 1) -> (2, 3, 4): a new axis and a size-1 axis */
    return tg_square(t, tg_expand(t, v[0], TG_SHAPE(2, -1, 4)));
}
static tg_var *f_pad(tg_tape *t, tg_var **v, void *c) {
    (void)c;  /* last axis cropped by 1 before, padded by 2 after; the one before padded (1, 0) */
    return tg_square(t, tg_pad(t, v[0], (int64_t[]){-1, 2, 1, 0}, 4, 0.5));
}
static tg_var *f_slice(tg_tape *t, tg_var **v, void *c) {
    (void)c;
    return tg_square(t, tg_slice(t, v[0], 1, -6, INT64_MAX, 2));
}
static tg_var *f_gather(tg_tape *t, tg_var **v, void *c) {
    (void)c;  /* index (2, 3) into x (3, 4) along axis 1: repeats and the last column */
    return tg_square(t, tg_gather(t, v[0], 1, idx(t, TG_SHAPE(2, 3), (int64_t[]){3, 0, 3, 1, 1, 2})));
}
static tg_var *f_index_select(tg_tape *t, tg_var **v, void *c) {
    (void)c;
    return tg_square(t, tg_index_select(t, v[0], 0, idx(t, TG_SHAPE(4), (int64_t[]){2, 0, 2, 2})));
}
static tg_var *f_embedding(tg_tape *t, tg_var **v, void *c) {
    (void)c;
    return tg_square(t, tg_embedding(t, v[0], idx(t, TG_SHAPE(2, 2), (int64_t[]){4, 1, 4, 0})));
}
static tg_var *f_scatter_add(tg_tape *t, tg_var **v, void *c) {
    (void)c;  /* src (2, 3) is larger than index (2, 2): its last column gets no gradient */
    tg_var *y = tg_scatter_add(t, v[0], 0, idx(t, TG_SHAPE(2, 2), (int64_t[]){2, 0, 2, 2}), v[1]);
    return tg_square(t, y);
}

/* linear algebra, custom ops */
static tg_var *f_custom(tg_tape *t, tg_var **v, void *c) {
    (void)c;
    return tg_custom(t, &tg_test_cube_mul, v, 2, v[0]->val.shape, NULL);
}


/* convolution */
static tg_var *f_conv2d(tg_tape *t, tg_var **v, void *c) {
    (void)c;  /* x (2, 3, 5, 4), w (4, 3, 3, 3): stride 2, padding 1, a bias */
    return tg_conv2d(t, v[0], v[1], v[2], (tg_conv_args){.stride = {2, 2}, .padding = {1, 1}});
}
static tg_var *f_conv_transpose2d(tg_tape *t, tg_var **v, void *c) {
    (void)c;  /* x (2, 3, 5, 4), w (3, 2, 3, 2) -> (2, 2, 10, 7): stride 2, padding 1, output_padding 1 */
    return tg_conv_transpose2d(t, v[0], v[1], v[2],
                               (tg_conv_args){.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 0}});
}

/* pooling and upsampling */
/* Overlapping windows, padding, dilation and a ceil-mode last window; the
 * inputs are uniform draws, so no two in a window are within h of each other. */
static tg_var *f_max_pool2d(tg_tape *t, tg_var **v, void *c) {
    (void)c;
    return tg_max_pool2d(t, v[0], (tg_pool_args){.kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1},
                                                 .dilation = {1, 2}, .ceil_mode = true});
}
static tg_var *f_avg_pool2d(tg_tape *t, tg_var **v, void *c) {
    (void)c;   /* counts 2 to 6: padding left out, a ceil-mode window past the end; squared */
    tg_var *y = tg_avg_pool2d(t, v[0], (tg_pool_args){.kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1},
                                                      .ceil_mode = true, .count_include_pad_off = true});
    return tg_mul(t, y, y);
}
static tg_var *f_upsample_nearest2d(tg_tape *t, tg_var **v, void *c) {
    (void)c;
    tg_var *y = tg_upsample_nearest2d(t, v[0], 2, 3);
    return tg_mul(t, y, y);
}

/* normalisation and dropout */
static tg_var *f_layer_norm(tg_tape *t, tg_var **v, void *c) {
    (void)c;  /* x (2, 3, 4) over its last two dims, weight and bias (3, 4) */
    return tg_layer_norm(t, v[0], 2, v[1], v[2], 1e-5);
}
static tg_var *f_batch_norm(tg_tape *t, tg_var **v, void *c) {
    (void)c;  /* training: x (3, 2, 4), the gradient through the batch statistics */
    return tg_batch_norm(t, v[0], v[1], v[2], NULL, NULL, true, 0.1, 1e-5);
}
static tg_var *f_dropout(tg_tape *t, tg_var **v, void *c) {
    (void)c;
    tg_rng r = tg_rng_seed(11);   /* re-seeded: every evaluation draws the same mask */
    return tg_dropout(t, v[0], 0.3, true, &r);
}

#define S(...) TG_SHAPE(__VA_ARGS__)
static const op_case cases[TG_OP_COUNT] = {
    [TG_OP_ADD] = {f_add, 2, {S(3, 4), S(4)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_SUB] = {f_sub, 2, {S(2, 3, 4), S(3, 1)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_MUL] = {f_mul, 2, {S(4, 1), S(1, 5)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_DIV] = {f_div, 2, {S(3, 4), S(3, 1)}, 0.5, 2, 1e-7, 1e-6},
    [TG_OP_NEG] = {f_neg, 1, {S(3, 4)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_ADD_SCALAR] = {f_add_scalar, 1, {S(5)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_MUL_SCALAR] = {f_mul_scalar, 1, {S(2, 3)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_EXP] = {f_exp, 1, {S(3, 4)}, -3, 3, 1e-7, 1e-6},
    [TG_OP_LOG] = {f_log, 1, {S(3, 4)}, 0.1, 5, 1e-7, 1e-6},
    [TG_OP_SQRT] = {f_sqrt, 1, {S(3, 4)}, 0.1, 5, 1e-7, 1e-6},
    [TG_OP_SQUARE] = {f_square, 1, {S(3, 4)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_POW] = {f_pow, 1, {S(3, 4)}, 0.2, 3, 1e-7, 1e-6},
    [TG_OP_RELU] = {f_relu, 1, {S(4, 5)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_SIGMOID] = {f_sigmoid, 1, {S(4, 5)}, -6, 6, 1e-7, 1e-6},
    [TG_OP_TANH] = {f_tanh, 1, {S(4, 5)}, -3, 3, 1e-7, 1e-6},
    [TG_OP_SOFTPLUS] = {f_softplus, 1, {S(4, 5)}, -6, 6, 1e-7, 1e-6},
    [TG_OP_MATMUL] = {f_matmul, 2, {S(3, 5), S(4, 5)}, -1, 1, 1e-7, 1e-6},
    [TG_OP_AFFINE] = {f_affine, 3, {S(4, 5), S(3, 5), S(3)}, -1, 1, 1e-7, 1e-6},
    [TG_OP_SUM] = {f_sum, 1, {S(2, 3, 4)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_MEAN] = {f_mean, 1, {S(2, 3, 4)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_RESHAPE] = {f_reshape, 1, {S(2, 3, 4)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_TRANSPOSE] = {f_transpose, 1, {S(2, 3, 4)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_CONCAT] = {f_concat, 3, {S(2, 3, 2), S(2, 1, 2), S(2, 4, 2)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_NARROW] = {f_narrow, 1, {S(3, 5)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_REPARAM] = {f_reparam, 2, {S(4, 3), S(4, 3)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_BCE] = {f_bce, 2, {S(3, 4), S(3, 4)}, 0.05, 0.95, 1e-7, 1e-6},
    [TG_OP_BCE_LOGITS] = {f_bce_logits, 2, {S(3, 4), S(3, 4)}, -3, 3, 1e-7, 1e-6},
    [TG_OP_BCE_LOGITS_SUM] = {f_bce_logits_sum, 2, {S(2, 3, 4), S(2, 3, 4)}, -3, 3, 1e-7, 1e-6},
    /* elementwise maps, comparisons and where */
    /* abs, leaky_relu, elu: relu's inputs (same seed and shape), so as far from 0 */
    [TG_OP_ABS] = {f_abs, 1, {S(4, 5)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_CLAMP] = {f_clamp, 1, {S(4, 5)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_MAXIMUM] = {f_maximum, 2, {S(3, 4), S(2, 1, 4)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_MINIMUM] = {f_minimum, 2, {S(3, 1), S(1, 5)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_LOG1P] = {f_log1p, 1, {S(3, 4)}, -0.9, 3, 1e-7, 1e-6},
    [TG_OP_EXPM1] = {f_expm1, 1, {S(3, 4)}, -3, 3, 1e-7, 1e-6},
    [TG_OP_LEAKY_RELU] = {f_leaky_relu, 1, {S(4, 5)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_ELU] = {f_elu, 1, {S(4, 5)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_GELU] = {f_gelu, 1, {S(4, 5)}, -4, 4, 1e-7, 1e-6},
    [TG_OP_GELU_TANH] = {f_gelu_tanh, 1, {S(4, 5)}, -4, 4, 1e-7, 1e-6},
    [TG_OP_SILU] = {f_silu, 1, {S(4, 5)}, -6, 6, 1e-7, 1e-6},
    [TG_OP_HARDTANH] = {f_hardtanh, 1, {S(4, 5)}, -2, 2, 1e-7, 1e-6},   /* clamp's points: none near a bound */
    [TG_OP_WHERE] = {f_where, 2, {S(3, 4), S(4)}, -2, 2, 1e-7, 1e-6},

    /* reductions and the softmax family */
    [TG_OP_MAX] = {f_max, 1, {S(3, 5)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_MIN] = {f_min, 1, {S(2, 5, 3)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_LOGSUMEXP] = {f_logsumexp, 1, {S(2, 4, 3)}, -3, 3, 1e-7, 1e-6},
    [TG_OP_STD] = {f_std, 1, {S(3, 4, 2)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_SOFTMAX] = {f_softmax, 1, {S(3, 5)}, -3, 3, 1e-7, 1e-6},
    [TG_OP_LOG_SOFTMAX] = {f_log_softmax, 1, {S(4, 3)}, -3, 3, 1e-7, 1e-6},
    [TG_OP_NLL] = {f_nll, 1, {S(2, 4, 3)}, -3, 0, 1e-7, 1e-6},

    /* shape and indexing */
    [TG_OP_PERMUTE] = {f_permute, 1, {S(2, 3, 4, 5)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_EXPAND] = {f_expand, 1, {S(3, 1)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_PAD] = {f_pad, 1, {S(2, 3, 4)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_SLICE] = {f_slice, 1, {S(2, 7, 3)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_GATHER] = {f_gather, 1, {S(3, 4)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_INDEX_SELECT] = {f_index_select, 1, {S(3, 2, 2)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_EMBEDDING] = {f_embedding, 1, {S(5, 3)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_SCATTER_ADD] = {f_scatter_add, 2, {S(3, 2), S(2, 3)}, -2, 2, 1e-7, 1e-6},

    /* linear algebra, custom ops */
    [TG_OP_CUSTOM] = {f_custom, 2, {S(3, 4), S(3, 4)}, -2, 2, 1e-7, 1e-6},   /* variadic: any n */

    /* convolution */
    [TG_OP_CONV2D] = {f_conv2d, 3, {S(2, 3, 5, 4), S(4, 3, 3, 3), S(4)}, -1, 1, 1e-7, 1e-6},
    [TG_OP_CONV_TRANSPOSE2D] = {f_conv_transpose2d, 3, {S(2, 3, 5, 4), S(3, 2, 3, 2), S(2)}, -1, 1, 1e-7, 1e-6},

    /* pooling and upsampling */
    [TG_OP_MAX_POOL2D] = {f_max_pool2d, 1, {S(2, 2, 5, 6)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_AVG_POOL2D] = {f_avg_pool2d, 1, {S(2, 2, 6, 6)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_UPSAMPLE_NEAREST2D] = {f_upsample_nearest2d, 1, {S(2, 2, 3, 2)}, -2, 2, 1e-7, 1e-6},

    /* normalisation and dropout */
    [TG_OP_LAYER_NORM] = {f_layer_norm, 3, {S(2, 3, 4), S(3, 4), S(3, 4)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_BATCH_NORM] = {f_batch_norm, 3, {S(3, 2, 4), S(2), S(2)}, -2, 2, 1e-7, 1e-6},
    [TG_OP_DROPOUT] = {f_dropout, 1, {S(4, 5)}, -2, 2, 1e-7, 1e-6},

};

/* Runs a gradient check of f on inputs drawn from [lo, hi). */
static tg_gradcheck_result check(tg_gradcheck_fn f, int n, const tg_shape *shapes, double lo, double hi,
                                 double atol, double rtol, void *ctx) {
    tg_arena *a = tg_arena_new();
    tg_rng r = tg_rng_seed(2024);
    tg_tensor *in[4];
    for (int i = 0; i < n; i++) in[i] = tg_tensor_uniform(a, TG_F64, shapes[i], lo, hi, &r);
    tg_gradcheck_result res = tg_gradcheck(f, in, n, ctx, 1e-6, atol, rtol);
    tg_arena_free(a);
    return res;
}

static void assert_passes(const char *what, tg_gradcheck_result res) {
    cr_expect(res.ok && res.checked > 0, "%s: gradient check failed: input %d element %lld analytic %.10g numeric %.10g "
              "(max abs err %.3g, %lld elements checked)", what, res.worst_input, (long long)res.worst_index,
              res.analytic, res.numeric, res.max_abs_err, (long long)res.checked);
}

Test(ops, every_op_in_the_table_is_gradient_checked) {
    int checked = 0;
    for (int op = 0; op < TG_OP_COUNT; op++) {
        const tg_op_def *d = &tg_ops[op];
        cr_assert(d->name, "op %d has no entry in tg_ops", op);
        if (!d->backward) {
            cr_expect_eq(op, TG_OP_ONE_HOT, "op %s has no backward and is not known to be non-differentiable", d->name);
            continue;
        }
        const op_case *c = &cases[op];
        cr_assert(c->f, "op %s has no gradient-check case in test_ops.c", d->name);
        cr_expect(d->n_in < 0 ? c->n >= 1 : c->n == d->n_in, "op %s: case has %d inputs, table says %d", d->name,
                  c->n, d->n_in);   /* n_in -1: variadic, the case's leaves are its inputs */
        assert_passes(d->name, check(c->f, c->n, c->shape, c->lo, c->hi, c->atol, c->rtol, NULL));
        checked++;
    }
    cr_expect_eq(checked, TG_OP_COUNT - 1);
}

/* f(x) = x * c where c is a copy of x detached from the tape: the analytic
 * gradient is c = x, the numeric one 2x. The checker must report it. */
static tg_var *f_detached(tg_tape *t, tg_var **v, void *c) {
    (void)c;
    tg_var *copy = tg_leaf(t, tg_tensor_copy(tg_tape_arena(t), &v[0]->val), false);
    return tg_mul(t, v[0], copy);
}

Test(ops, gradient_checker_catches_a_wrong_gradient) {
    tg_gradcheck_result r = check(f_detached, 1, (tg_shape[]){S(3)}, 0.5, 1.5, 1e-7, 1e-6, NULL);
    cr_expect_not(r.ok, "a missing gradient term went unnoticed");
    cr_expect_float_eq(r.numeric, 2 * r.analytic, 1e-5);
}

/* ---------------------------------------------------------------- variants */

static tg_var *f_matmul_flags(tg_tape *t, tg_var **v, void *c) {
    const bool *tr = c;
    return tg_matmul(t, v[0], v[1], tr[0], tr[1]);
}

Test(ops, matmul_all_transposes) {
    for (int k = 0; k < 4; k++) {
        bool tr[2] = {k & 1, k & 2};
        tg_shape s[2] = {tr[0] ? S(5, 3) : S(3, 5), tr[1] ? S(4, 5) : S(5, 4)};
        tg_gradcheck_result r = check(f_matmul_flags, 2, s, -1, 1, 1e-7, 1e-6, tr);
        cr_expect(r.ok, "matmul ta=%d tb=%d: analytic %g numeric %g", tr[0], tr[1], r.analytic, r.numeric);
    }
}

static tg_var *f_reduce_variant(tg_tape *t, tg_var **v, void *c) {
    int k = *(int *)c;
    switch (k) {
    case 0: return tg_sum(t, v[0]);
    case 1: return tg_mean(t, v[0]);
    case 2: return tg_sum_axis(t, v[0], 0, false);
    case 3: return tg_mean_axis(t, v[0], 1, true);
    default: return tg_sum_axis(t, v[0], -1, true);
    }
}

Test(ops, reductions_over_all_and_each_axis) {
    for (int k = 0; k < 5; k++) {
        tg_gradcheck_result r = check(f_reduce_variant, 1, (tg_shape[]){S(2, 3, 4)}, -1, 1, 1e-7, 1e-6, &k);
        cr_expect(r.ok, "reduction variant %d", k);
    }
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    double v[6] = {1, 2, 3, 4, 5, 6};
    tg_var *x = tg_leaf(t, tg_tensor_from(a, TG_F64, S(2, 3), v, TG_F64), false);
    tg_var *s0 = tg_sum_axis(t, x, 0, false), *m1 = tg_mean_axis(t, x, 1, true), *all = tg_sum(t, x);
    cr_expect(tg_shape_eq(s0->val.shape, S(3)) && tg_shape_eq(m1->val.shape, S(2, 1)));
    cr_expect_eq(all->val.shape.ndim, 0);
    cr_expect_float_eq(tg_tensor_get(&s0->val, 2), 9.0, 1e-12);
    cr_expect_float_eq(tg_tensor_get(&m1->val, 1), 5.0, 1e-12);
    cr_expect_float_eq(tg_tensor_get(&all->val, 0), 21.0, 1e-12);
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- broadcasting */

static tg_var *f_binary(tg_tape *t, tg_var **v, void *c) {
    switch (*(int *)c) {
    case 0: return tg_add(t, v[0], v[1]);
    case 1: return tg_sub(t, v[0], v[1]);
    case 2: return tg_mul(t, v[0], v[1]);
    default: return tg_div(t, v[0], v[1]);
    }
}

Test(ops, broadcasting_gradients_sum_back_to_each_shape) {
    static const tg_shape pairs[][2] = {
        {S(3, 4), S(3, 4)}, {S(3, 4), S(4)}, {S(4), S(3, 4)}, {S(3, 1), S(1, 4)}, {S(2, 3, 4), S(3, 1)},
        {S(2, 1, 4), S(1, 3, 1)}, {S(5), S(1)}, {S(2, 3), S(1, 1)}, {S(2, 1, 3, 1), S(4, 1, 5)},
    };
    for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++)
        for (int op = 0; op < 4; op++) {
            tg_gradcheck_result r = check(f_binary, 2, pairs[p], 0.5, 2, 1e-7, 1e-6, &op);
            cr_expect(r.ok, "pair %zu op %d: input %d analytic %g numeric %g", p, op, r.worst_input, r.analytic, r.numeric);
        }
}

Test(ops, broadcasting_values) {
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    double av[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {10, 20, 30}, cv[2] = {100, 200};
    tg_var *A = tg_leaf(t, tg_tensor_from(a, TG_F64, S(2, 3), av, TG_F64), false);
    tg_var *B = tg_leaf(t, tg_tensor_from(a, TG_F64, S(3), bv, TG_F64), false);
    tg_var *C = tg_leaf(t, tg_tensor_from(a, TG_F64, S(2, 1), cv, TG_F64), false);
    tg_var *ab = tg_add(t, A, B), *ac = tg_mul(t, A, C);
    double want_ab[6] = {11, 22, 33, 14, 25, 36}, want_ac[6] = {100, 200, 300, 800, 1000, 1200};
    for (int i = 0; i < 6; i++) {
        cr_expect_float_eq(tg_tensor_get(&ab->val, i), want_ab[i], 1e-12);
        cr_expect_float_eq(tg_tensor_get(&ac->val, i), want_ac[i], 1e-12);
    }
    tg_var *bc = tg_add(t, B, C);   /* (3) + (2, 1) -> (2, 3) */
    cr_expect(tg_shape_eq(bc->val.shape, S(2, 3)));
    cr_expect_float_eq(tg_tensor_get(&bc->val, 4), 220.0, 1e-12);
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- values */

Test(ops, shape_ops_values) {
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    double v[6] = {0, 1, 2, 3, 4, 5};
    tg_var *x = tg_leaf(t, tg_tensor_from(a, TG_F64, S(2, 3), v, TG_F64), false);
    tg_var *tr = tg_transpose(t, x, 0, 1);   /* (3, 2): [[0,3],[1,4],[2,5]] */
    double want_tr[6] = {0, 3, 1, 4, 2, 5};
    for (int i = 0; i < 6; i++) cr_expect_eq(tg_tensor_get(&tr->val, i), want_tr[i]);
    tg_var *n = tg_narrow(t, x, 1, 1, 2);    /* [[1,2],[4,5]] */
    double want_n[4] = {1, 2, 4, 5};
    for (int i = 0; i < 4; i++) cr_expect_eq(tg_tensor_get(&n->val, i), want_n[i]);
    tg_var *c = tg_concat(t, x, n, 1);       /* (2, 5) */
    double want_c[10] = {0, 1, 2, 1, 2, 3, 4, 5, 4, 5};
    for (int i = 0; i < 10; i++) cr_expect_eq(tg_tensor_get(&c->val, i), want_c[i]);
    tg_var *c0 = tg_concat(t, x, x, 0);      /* (4, 3) */
    cr_expect(tg_shape_eq(c0->val.shape, S(4, 3)));
    cr_expect_eq(tg_tensor_get(&c0->val, 9), 3.0);
    tg_var *r = tg_reshape(t, x, S(3, 2));
    cr_expect_eq(r->val.data, x->val.data, "reshape must be a view");
    tg_tape_free(t);
}

Test(ops, one_hot_values_and_no_gradient) {
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    double lab[3] = {2, 0, 1};
    tg_var *y = tg_leaf(t, tg_tensor_from(a, TG_F32, S(3), lab, TG_F64), true);
    tg_var *oh = tg_one_hot(t, y, 4);
    cr_expect(tg_shape_eq(oh->val.shape, S(3, 4)));
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) cr_expect_eq(tg_tensor_get(&oh->val, i * 4 + k), k == lab[i] ? 1.0 : 0.0);
    cr_expect_not(oh->requires_grad);
    cr_expect_eq(t->n, 0, "one_hot must not be recorded");
    tg_tape_free(t);
}

static void one_hot_label_out_of_range(void) {
    tg_tape *t = tg_tape_new();
    double lab[2] = {1, 10};
    tg_var *y = tg_leaf(t, tg_tensor_from(tg_tape_arena(t), TG_F32, S(2), lab, TG_F64), false);
    tg_one_hot(t, y, 10);
}

Test(ops, one_hot_label_out_of_range_aborts) {
    tg_expect_abort(one_hot_label_out_of_range, "tapegrad: one_hot: label 10 at index 1 is not a class in [0, 10)",
                    "(at tests/test_ops.c:");
}

Test(ops, elementwise_values_float32_match_float64) {
    /* The float32 path computes the same function as the float64 one. */
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    tg_rng r = tg_rng_seed(3);
    tg_tensor *x64 = tg_tensor_uniform(a, TG_F64, S(50), 0.1, 3, &r);
    tg_var *x = tg_leaf(t, x64, false), *xf = tg_leaf(t, tg_tensor_cast(a, x64, TG_F32), false);
    tg_var *(*fs[])(tg_tape *, tg_var **, void *) = {f_exp, f_log, f_sqrt, f_square, f_pow, f_relu,
                                                     f_sigmoid, f_tanh, f_softplus, f_neg};
    for (size_t k = 0; k < sizeof fs / sizeof *fs; k++) {
        tg_var *y = fs[k](t, &x, NULL), *yf = fs[k](t, &xf, NULL);
        cr_expect_eq(yf->val.dtype, TG_F32);
        for (int i = 0; i < 50; i++) {
            double d = tg_tensor_get(&y->val, i);
            cr_expect(fabs(tg_tensor_get(&yf->val, i) - d) <= 1e-6 * fmax(1, fabs(d)), "function %zu element %d", k, i);
        }
    }
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- edge values */

/* Value and gradient of a unary op at one point, in dtype dt. */
static void unary_at(tg_var *(*op)(tg_tape *, tg_var **, void *), tg_dtype dt, double x0, double *y, double *g) {
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_full(tg_tape_arena(t), dt, S(1), x0), true);
    tg_var *out = tg_sum(t, op(t, &x, NULL));
    tg_backward(t, out);
    *y = tg_tensor_get(&out->val, 0), *g = tg_tensor_get(&x->grad, 0);
    tg_tape_free(t);
}

Test(ops, edge_sigmoid_at_plus_minus_300) {
    for (int dt = 0; dt < 2; dt++) {
        double y, g;
        unary_at(f_sigmoid, dt, 300, &y, &g);
        cr_expect_eq(y, 1.0);
        cr_expect_eq(g, 0.0);
        unary_at(f_sigmoid, dt, -300, &y, &g);
        cr_expect(y >= 0 && y < 1e-100 && g >= 0 && g < 1e-100 && !isnan(g), "sigmoid(-300) = %g, grad %g", y, g);
        unary_at(f_softplus, dt, 300, &y, &g);
        cr_expect_float_eq(y, 300.0, 1e-9);
        cr_expect_eq(g, 1.0);
        unary_at(f_softplus, dt, -300, &y, &g);
        cr_expect(y >= 0 && y < 1e-100 && isfinite(g), "softplus(-300) = %g", y);
        unary_at(f_tanh, dt, -300, &y, &g);
        cr_expect_eq(y, -1.0);
        cr_expect_eq(g, 0.0);
    }
}

Test(ops, edge_relu_gradient_is_zero_at_zero) {
    for (int dt = 0; dt < 2; dt++) {
        double y, g;
        unary_at(f_relu, dt, 0.0, &y, &g);
        cr_expect_eq(y, 0.0);
        cr_expect_eq(g, 0.0);
        unary_at(f_relu, dt, 1e-30, &y, &g);
        cr_expect_eq(g, 1.0);
        unary_at(f_relu, dt, -1e-30, &y, &g);
        cr_expect_eq(g, 0.0);
    }
}

Test(ops, edge_log_near_zero) {
    double y, g;
    unary_at(f_log, TG_F64, 1e-300, &y, &g);
    cr_expect_float_eq(y, log(1e-300), 1e-9);
    cr_expect_float_eq(g, 1e300, 1e288);
    unary_at(f_log, TG_F32, 1e-30, &y, &g);
    cr_expect(fabs(y - log(1e-30)) < 1e-4 && isfinite(g) && g > 9e29, "log(1e-30) f32 = %g, grad %g", y, g);
    unary_at(f_log, TG_F64, 0.0, &y, &g);
    cr_expect(isinf(y) && y < 0, "log(0) should be -inf, got %g", y);
}

Test(ops, edge_bce_at_zero_and_one_is_clamped_like_pytorch) {
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t = tg_tape_new();
        tg_arena *a = tg_tape_arena(t);
        double pv[4] = {0, 1, 0, 1}, yv[4] = {1, 0, 0, 1};
        tg_var *p = tg_leaf(t, tg_tensor_from(a, dt, S(4), pv, TG_F64), true);
        tg_var *y = tg_leaf(t, tg_tensor_from(a, dt, S(4), yv, TG_F64), false);
        tg_var *l = tg_bce(t, p, y);
        double want[4] = {100, 100, 0, 0};
        for (int i = 0; i < 4; i++) cr_expect_float_eq(tg_tensor_get(&l->val, i), want[i], 1e-4);
        tg_backward(t, tg_sum(t, l));
        for (int i = 0; i < 4; i++) cr_expect(isfinite(tg_tensor_get(&p->grad, i)), "bce grad %d not finite", i);
        cr_expect(tg_tensor_get(&p->grad, 0) < -1e11);   /* (p - y) / max(p(1-p), 1e-12) */
        tg_tape_free(t);
    }
}

Test(ops, edge_bce_logits_at_plus_minus_300) {
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t = tg_tape_new();
        tg_arena *a = tg_tape_arena(t);
        double xv[4] = {300, -300, 300, -300}, yv[4] = {1, 0, 0, 1};
        tg_var *x = tg_leaf(t, tg_tensor_from(a, dt, S(4), xv, TG_F64), true);
        tg_var *y = tg_leaf(t, tg_tensor_from(a, dt, S(4), yv, TG_F64), false);
        tg_var *l = tg_bce_logits(t, x, y);
        double want[4] = {0, 0, 300, 300}, wantg[4] = {0, 0, 1, -1};
        tg_backward(t, tg_sum(t, l));
        for (int i = 0; i < 4; i++) {
            cr_expect_float_eq(tg_tensor_get(&l->val, i), want[i], 1e-9);
            cr_expect_float_eq(tg_tensor_get(&x->grad, i), wantg[i], 1e-9);
        }
        tg_tape_free(t);
    }
}

/* The fused sum: the same values as bce_logits then sum at +-300 and on odd
 * shapes; dx written when first reached, added when x is also used elsewhere
 * (x + x would double it); a scalar x; targets with a gradient (dy = -x). */
Test(ops, edge_bce_logits_sum_matches_the_elementwise_terms_summed) {
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t = tg_tape_new();
        tg_arena *a = tg_tape_arena(t);
        double xv[4] = {300, -300, 300, -300}, yv[4] = {1, 0, 0, 1};
        tg_var *x = tg_leaf(t, tg_tensor_from(a, dt, S(2, 2), xv, TG_F64), true);
        tg_var *y = tg_leaf(t, tg_tensor_from(a, dt, S(2, 2), yv, TG_F64), true);
        tg_var *l = tg_bce_logits_sum(t, x, y);
        cr_expect(tg_shape_eq(l->val.shape, (tg_shape){.ndim = 0}), "a () scalar");
        cr_expect_float_eq(tg_item(l), 600.0, 1e-9);
        tg_backward(t, tg_add(t, l, tg_sum(t, tg_mul_scalar(t, x, 2.0))));   /* x reached twice */
        double wantg[4] = {2, 2, 3, 1};   /* sigmoid(x) - y, plus 2 from the other use */
        for (int i = 0; i < 4; i++) {
            cr_expect_float_eq(tg_tensor_get(&x->grad, i), wantg[i], 1e-9, "dx[%d]", i);
            cr_expect_float_eq(tg_tensor_get(&y->grad, i), -xv[i], 1e-9, "dy[%d]", i);
        }
        tg_tape_free(t);
    }
    /* Odd sizes, against bce_logits + sum in float64. */
    tg_rng r = tg_rng_seed(5);
    int64_t shapes[][3] = {{1, 1, 1}, {3, 7, 1}, {1, 1, 13}, {5, 129, 3}};
    for (int k = 0; k < 4; k++) {
        tg_tape *t = tg_tape_new();
        tg_shape s = TG_SHAPE(shapes[k][0], shapes[k][1], shapes[k][2]);
        tg_tensor *xv = tg_tensor_uniform(tg_tape_arena(t), TG_F64, s, -5, 5, &r);
        tg_tensor *yv = tg_tensor_uniform(tg_tape_arena(t), TG_F64, s, 0, 1, &r);
        tg_var *x = tg_leaf(t, xv, true), *x2 = tg_leaf(t, xv, true), *y = tg_leaf(t, yv, false);
        tg_var *fused = tg_bce_logits_sum(t, x, y), *plain = tg_sum(t, tg_bce_logits(t, x2, y));
        cr_expect_float_eq(tg_item(fused), tg_item(plain), 1e-12 * fabs(tg_item(plain)), "shape %d", k);
        tg_backward(t, tg_add(t, fused, plain));
        for (int64_t i = 0; i < xv->numel; i++)
            cr_expect_float_eq(tg_tensor_get(&x->grad, i), tg_tensor_get(&x2->grad, i), 1e-15, "shape %d, dx[%lld]", k,
                               (long long)i);
        tg_tape_free(t);
    }
}

/* relu, reshape and affine write their input's gradient when nothing reached it yet
 * and add when something did: both orders of a second use give the sum. */
static tg_var *relu_then_other(tg_tape *t, tg_var *x, bool other_first) {
    tg_var *o = other_first ? tg_sum(t, tg_mul_scalar(t, x, 3.0)) : NULL;
    tg_var *r = tg_sum(t, tg_reshape(t, tg_relu(t, tg_reshape(t, x, S(3, 2))), S(6)));
    return other_first ? tg_add(t, o, r) : tg_add(t, r, tg_sum(t, tg_mul_scalar(t, x, 3.0)));
}

Test(ops, relu_reshape_and_affine_set_the_first_gradient_and_add_later_ones) {
    double xv[6] = {-1.5, 0, 0.25, 2, -0.1, 3};
    for (int order = 0; order < 2; order++) {
        tg_tape *t = tg_tape_new();
        tg_var *x = tg_leaf(t, tg_tensor_from(tg_tape_arena(t), TG_F64, S(2, 3), xv, TG_F64), true);
        tg_backward(t, relu_then_other(t, x, order));
        for (int i = 0; i < 6; i++)
            cr_expect_eq(tg_tensor_get(&x->grad, i), (xv[i] > 0 ? 1.0 : 0.0) + 3.0, "order %d, dx[%d]", order, i);
        tg_tape_free(t);
    }
    /* affine: x (2, 3) through w (4, 3) twice, and once; dx = sum over uses of ones(2, 4) @ w. */
    double wv[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    for (int uses = 1; uses <= 2; uses++) {
        tg_tape *t = tg_tape_new();
        tg_arena *a = tg_tape_arena(t);
        tg_var *x = tg_leaf(t, tg_tensor_from(a, TG_F64, S(2, 3), xv, TG_F64), true);
        tg_var *w = tg_leaf(t, tg_tensor_from(a, TG_F64, S(4, 3), wv, TG_F64), true);
        tg_var *b = tg_leaf(t, tg_tensor_zeros(a, TG_F64, S(4)), true);
        tg_var *l = tg_sum(t, tg_affine(t, x, w, b, TG_ACT_NONE));
        if (uses == 2) l = tg_add(t, l, tg_sum(t, tg_affine(t, x, w, b, TG_ACT_NONE)));
        tg_backward(t, l);
        for (int i = 0; i < 6; i++) {
            double col = wv[i % 3] + wv[3 + i % 3] + wv[6 + i % 3] + wv[9 + i % 3];
            cr_expect_eq(tg_tensor_get(&x->grad, i), uses * col, "%d uses, dx[%d]", uses, i);
        }
        tg_tape_free(t);
    }
}

Test(ops, edge_kl_with_large_logvar) {
    /* KL = -1/2 (1 + lv - mu^2 - e^lv); dKL/dlv = (e^lv - 1) / 2, dKL/dmu = mu. */
    struct { tg_dtype dt; double lv; } pts[] = {{TG_F64, 50}, {TG_F64, 300}, {TG_F32, 80}, {TG_F64, -50}};
    for (size_t k = 0; k < sizeof pts / sizeof *pts; k++) {
        tg_tape *t = tg_tape_new();
        tg_arena *a = tg_tape_arena(t);
        tg_var *mu = tg_leaf(t, tg_tensor_full(a, pts[k].dt, S(1, 1), 0.5), true);
        tg_var *lv = tg_leaf(t, tg_tensor_full(a, pts[k].dt, S(1, 1), pts[k].lv), true);
        tg_var *kl = tg_loss_kl_normal(t, mu, lv);
        tg_backward(t, kl);
        double e = exp(pts[k].lv), want = -0.5 * (1 + pts[k].lv - 0.25 - e), got = tg_tensor_get(&kl->val, 0);
        double tol = pts[k].dt == TG_F32 ? 1e-6 : 1e-12;
        cr_expect(isfinite(got) && fabs(got - want) <= tol * fabs(want), "KL(lv=%g) = %g, want %g", pts[k].lv, got, want);
        cr_expect(fabs(tg_tensor_get(&lv->grad, 0) - 0.5 * (e - 1)) <= tol * fabs(0.5 * (e - 1)) + 1e-12);
        cr_expect_float_eq(tg_tensor_get(&mu->grad, 0), 0.5, 1e-7);
        tg_tape_free(t);
    }
}

/* ---------------------------------------------------------------- reuse */

Test(ops, reused_node_accumulates) {
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    double v[3] = {-1.5, 0.5, 2};
    tg_var *x = tg_leaf(t, tg_tensor_from(a, TG_F64, S(3), v, TG_F64), true);
    tg_backward(t, tg_sum(t, tg_mul(t, x, x)));                 /* d/dx sum x*x = 2x */
    for (int i = 0; i < 3; i++) cr_expect_float_eq(tg_tensor_get(&x->grad, i), 2 * v[i], 1e-12);
    tg_tape_reset(t);

    x = tg_leaf(t, tg_tensor_from(a, TG_F64, S(3), v, TG_F64), true);
    tg_var *y = tg_add(t, tg_mul(t, x, x), x);                  /* x used three times */
    tg_backward(t, tg_sum(t, tg_add(t, y, y)));                 /* 2(x^2 + x): grad 4x + 2 */
    for (int i = 0; i < 3; i++) cr_expect_float_eq(tg_tensor_get(&x->grad, i), 4 * v[i] + 2, 1e-12);
    tg_tape_free(t);
}

Test(ops, backward_accumulates_across_calls_until_zeroed) {
    tg_params *ps = tg_params_new(TG_F64);
    tg_var *w = tg_params_add(ps, "w", S(2));
    tg_tensor_fill(&w->val, 3.0);
    tg_tape *t = tg_tape_new();
    for (int k = 0; k < 2; k++) {
        tg_backward(t, tg_sum(t, tg_square(t, w)));   /* each adds 2w = 6 */
        tg_tape_reset(t);
    }
    cr_expect_float_eq(tg_tensor_get(&w->grad, 1), 12.0, 1e-12);
    tg_params_zero_grad(ps);
    cr_expect_eq(tg_tensor_get(&w->grad, 1), 0.0);
    tg_tape_free(t);
    tg_params_free(ps);
}

/* ---------------------------------------------------------------- no-grad */

Test(ops, no_grad_scope_records_nothing) {
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_full(tg_tape_arena(t), TG_F32, S(4), 2.0), true);
    bool prev = tg_no_grad(t);
    tg_var *y = tg_exp(t, tg_mul(t, x, x));
    tg_set_grad(t, prev);
    cr_expect_eq(t->n, 0);
    cr_expect_not(y->requires_grad);
    cr_expect_float_eq(tg_tensor_get(&y->val, 0), exp(4.0), 1e-3);
    tg_var *z = tg_exp(t, x);
    cr_expect(z->requires_grad);
    cr_expect_eq(t->n, 1);
    tg_tape_free(t);
}

Test(ops, leaves_without_grad_get_none) {
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    tg_var *x = tg_leaf(t, tg_tensor_full(a, TG_F64, S(2), 2.0), true);
    tg_var *c = tg_leaf(t, tg_tensor_full(a, TG_F64, S(2), 5.0), false);
    tg_backward(t, tg_sum(t, tg_mul(t, x, c)));
    cr_expect_null(c->grad.data);
    cr_expect_float_eq(tg_tensor_get(&x->grad, 0), 5.0, 1e-12);
    tg_tape_free(t);
}

/* ---------------------------------------------------------------- errors */

static void bad_add(void) {
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    tg_var *x = tg_leaf(t, tg_tensor_zeros(a, TG_F32, S(2, 3)), false);
    tg_var *y = tg_leaf(t, tg_tensor_zeros(a, TG_F32, S(4)), false);
    tg_add(t, x, y);
}
static const int bad_add_at = __LINE__ - 2;   /* the line of the tg_add call above */

static void bad_matmul(void) {
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    tg_var *x = tg_leaf(t, tg_tensor_zeros(a, TG_F32, S(2, 3)), false);
    tg_var *y = tg_leaf(t, tg_tensor_zeros(a, TG_F32, S(4, 5)), false);
    tg_matmul(t, x, y, false, false);
}

Test(ops, shape_mismatch_aborts_naming_op_shapes_and_caller) {
    char at[64];
    snprintf(at, sizeof at, "(at tests/test_ops.c:%d)", bad_add_at);   /* the caller's file:line */
    tg_expect_abort(bad_add, "tapegrad: add: shapes (2, 3) and (4,) are not broadcastable", at);
    tg_expect_abort(bad_matmul, "tapegrad: matmul: inner dimensions differ: (2, 3) @ (4, 5)");
}

Test(ops, second_backward_does_not_rerun_the_first_graph) {
    /* x = 3: backward of sum(2x), then of sum(5x) built afterwards: dx = 2 + 5. */
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_full(tg_tape_arena(t), TG_F64, S(1), 3.0), true);
    tg_backward(t, tg_sum(t, tg_mul_scalar(t, x, 2.0)));
    tg_backward(t, tg_sum(t, tg_mul_scalar(t, x, 5.0)));
    cr_expect_float_eq(tg_tensor_get(&x->grad, 0), 7.0, 1e-12);
    tg_tape_free(t);
}

Test(ops, affine_equals_matmul_add_relu) {
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    tg_rng r = tg_rng_seed(11);
    for (int act = 0; act < 2; act++) {
        tg_var *x = tg_leaf(t, tg_tensor_uniform(a, TG_F64, S(6, 7), -1, 1, &r), true);
        tg_var *w = tg_leaf(t, tg_tensor_uniform(a, TG_F64, S(5, 7), -1, 1, &r), true);
        tg_var *b = tg_leaf(t, tg_tensor_uniform(a, TG_F64, S(5), -1, 1, &r), true);
        tg_var *ref = tg_add(t, tg_matmul(t, x, w, false, true), b);
        if (act) ref = tg_relu(t, ref);
        tg_var *got = tg_affine(t, x, w, b, (tg_act)act);
        for (int i = 0; i < 30; i++)
            cr_expect_float_eq(tg_tensor_get(&got->val, i), tg_tensor_get(&ref->val, i), 1e-12);
        tg_act av = (tg_act)act;
        tg_gradcheck_result res = check(f_affine, 3, (tg_shape[]){S(6, 7), S(5, 7), S(5)}, -1, 1, 1e-7, 1e-6, &av);
        cr_expect(res.ok, "affine act %d: analytic %g numeric %g", act, res.analytic, res.numeric);
        tg_tape_reset(t);
    }
    tg_tape_free(t);
}

Test(ops, edge_affine_relu_gradient_is_zero_at_zero) {
    /* x w^T + b = 0 exactly: the fused ReLU passes no gradient, as relu does at 0. */
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    double xv[2] = {1, 2}, wv[4] = {1, -1, 2, 1}, bv[2] = {1, -4};   /* pre-activations 1 - 2 + 1 = 0, 2 + 2 - 4 = 0 */
    for (int dt = 0; dt < 2; dt++) {
        tg_var *x = tg_leaf(t, tg_tensor_from(a, dt, S(1, 2), xv, TG_F64), true);
        tg_var *w = tg_leaf(t, tg_tensor_from(a, dt, S(2, 2), wv, TG_F64), true);
        tg_var *b = tg_leaf(t, tg_tensor_from(a, dt, S(2), bv, TG_F64), true);
        tg_var *y = tg_affine(t, x, w, b, TG_ACT_RELU);
        tg_backward(t, tg_sum(t, y));
        for (int i = 0; i < 2; i++) {
            cr_expect_eq(tg_tensor_get(&y->val, i), 0.0);
            cr_expect_eq(tg_tensor_get(&x->grad, i), 0.0);
            cr_expect_eq(tg_tensor_get(&b->grad, i), 0.0);
        }
        tg_tape_reset(t);
    }
    tg_tape_free(t);
}

static void bad_affine(void) {
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    tg_var *x = tg_leaf(t, tg_tensor_zeros(a, TG_F32, S(2, 3)), false);
    tg_var *w = tg_leaf(t, tg_tensor_zeros(a, TG_F32, S(4, 5)), false);
    tg_var *b = tg_leaf(t, tg_tensor_zeros(a, TG_F32, S(4)), false);
    tg_affine(t, x, w, b, TG_ACT_NONE);
}

Test(ops, affine_shape_mismatch_aborts) {
    tg_expect_abort(bad_affine, "tapegrad: affine: x (2, 3), w (4, 5), b (4,) do not fit x (B, in), w (out, in), b (out)",
                    "(at tests/test_ops.c:");
}
