/*
 * test_norm.c — layer_norm, batch_norm and dropout beyond the per-op cases
 * of test_ops.c and test_torch_ops.c: edge batches, running statistics
 * against PyTorch, momentum and eps, dropout's extremes and statistics, the
 * train / eval switch, buffers in checkpoints (both ways with PyTorch), no
 * allocation in a steady-state step, and the same bits for any thread count.
 *
 * PyTorch values are pasted with the commands that made them (PyTorch
 * 1.13, float64 unless said).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/checkpoint.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "tensor/threads.h"
#include "tests/alloc_count.h"
#include "tests/child.h"
#include "tests/tmpdir.h"

#define S(...) TG_SHAPE(__VA_ARGS__)

/* A leaf of the given values, in the tape's arena. */
static tg_var *leaf(tg_tape *t, tg_dtype dt, tg_shape s, const double *v, bool rg) {
    return tg_leaf(t, tg_tensor_from(tg_tape_arena(t), dt, s, v, TG_F64), rg);
}

static void expect_values(const tg_tensor *got, const double *want, int64_t n, double tol, const char *what) {
    cr_assert_eq(got->numel, n, "%s: %lld values, want %lld", what, (long long)got->numel, (long long)n);
    for (int64_t i = 0; i < n; i++)
        cr_expect(fabs(tg_tensor_get(got, i) - want[i]) <= tol * fmax(1, fabs(want[i])), "%s[%lld]: %.17g, want %.17g",
                  what, (long long)i, tg_tensor_get(got, i), want[i]);
}

static const double W3[3] = {0.5, 1, 2}, B3[3] = {0.1, -0.2, 0.3};

/* ================================================================ batch_norm edges */

Test(norm, batch_norm_batch_of_one_in_eval_mode) {
    /* F.batch_norm(tensor([[1., -2., .5]]), tensor([.1, .2, .3]), tensor([.5, 2, 1.5]),
     *              tensor([.5, 1, 2.]), tensor([.1, -.2, .3]), False, .1, 1e-5) */
    static const double want[3] = {0.73638973920232, -1.755631029537692, 0.6265975437144258};
    double rmv[3] = {0.1, 0.2, 0.3}, rvv[3] = {0.5, 2, 1.5};
    tg_tape *t = tg_tape_new();
    tg_tensor rm = tg_tensor_wrap(TG_F64, S(3), rmv), rv = tg_tensor_wrap(TG_F64, S(3), rvv);
    tg_var *x = leaf(t, TG_F64, S(1, 3), (double[]){1, -2, 0.5}, true);
    tg_var *y = tg_batch_norm(t, x, leaf(t, TG_F64, S(3), W3, true), leaf(t, TG_F64, S(3), B3, true), &rm, &rv, false,
                              0.1, 1e-5);
    expect_values(&y->val, want, 3, 1e-14, "eval output");
    cr_expect(rmv[0] == 0.1 && rvv[2] == 1.5, "eval mode must not touch the running statistics");
    tg_backward(t, tg_sum(t, y));   /* affine: dx = w / sqrt(rv + eps) */
    for (int c = 0; c < 3; c++)
        cr_expect_float_eq(tg_tensor_get(&x->grad, c), W3[c] / sqrt(rvv[c] + 1e-5), 1e-15);
    tg_tape_free(t);
}

static void train_batch_of_one(void) {
    tg_tape *t = tg_tape_new();
    tg_batch_norm(t, leaf(t, TG_F64, S(1, 3), (double[]){1, 2, 3}, true), NULL, NULL, NULL, NULL, true, 0.1, 1e-5);
}

Test(norm, batch_norm_training_on_one_value_per_channel_aborts) {
    /* PyTorch: "Expected more than 1 value per channel when training" */
    tg_expect_abort(train_batch_of_one, "batch_norm", "more than 1 value per channel", "(1, 3)", "test_norm.c");
}

Test(norm, batch_norm_batch_of_two_in_training_mode) {
    /* rm, rv = torch.zeros(3, dtype=f64), torch.ones(3, dtype=f64)
     * F.batch_norm(tensor([[1., -2., .5], [3., 0., .25]]), rm, rv, w, b, True, .1, 1e-5), then rm, rv */
    static const double want[6] = {-0.3999975000187499, -1.1999950000374997, 2.2993603070362516,
                                   0.5999975000187499,  0.7999950000374998,  -1.699360307036252};
    static const double want_rm[3] = {0.2, -0.1, 0.037500000000000006}, want_rv[3] = {1.1, 1.1, 0.9031250000000001};
    double rmv[3] = {0}, rvv[3] = {1, 1, 1};
    tg_tensor rm = tg_tensor_wrap(TG_F64, S(3), rmv), rv = tg_tensor_wrap(TG_F64, S(3), rvv);
    tg_tape *t = tg_tape_new();
    tg_var *x = leaf(t, TG_F64, S(2, 3), (double[]){1, -2, 0.5, 3, 0, 0.25}, true);
    tg_var *y = tg_batch_norm(t, x, leaf(t, TG_F64, S(3), W3, true), leaf(t, TG_F64, S(3), B3, true), &rm, &rv, true,
                              0.1, 1e-5);
    expect_values(&y->val, want, 6, 1e-14, "output");
    expect_values(&rm, want_rm, 3, 1e-15, "running_mean");
    expect_values(&rv, want_rv, 3, 1e-15, "running_var (unbiased)");
    /* The gradient of sum(y) through the batch statistics is 0 for x. */
    tg_backward(t, tg_sum(t, y));
    for (int i = 0; i < 6; i++) cr_expect(fabs(tg_tensor_get(&x->grad, i)) < 1e-12, "dx[%d] %g", i, tg_tensor_get(&x->grad, i));
    tg_tape_free(t);
}

/* x_k (2, 3, 2): x_k.flatten()[i] = sin(1.7 i + k) (1 + k), as scripts/norm_fixtures.py. */
static tg_var *batch_k(tg_tape *t, tg_dtype dt, int k) {
    double v[12];
    for (int i = 0; i < 12; i++) v[i] = sin(1.7 * i + k) * (1 + k);
    return leaf(t, dt, S(2, 3, 2), v, false);
}

/* bn = torch.nn.BatchNorm1d(3, momentum=0.3, eps=1e-3).double(), weight (.5, 1, 2), bias (.1, -.2, .3);
 * bn(x_k) for k in 0, 1, 2 (train mode); then bn.eval() and bn(x_3 with (1 + k) replaced by 4). */
static const double TORCH_RM[3] = {0.27628613216025577, -0.2915067593296594, 0.28737028392896585};
static const double TORCH_RV[3] = {2.6944758444973185, 2.6904754738830956, 2.6753905468993873};
static const double TORCH_EVAL[12] = {0.1877681746987331, -1.2022304983969962, 0.2618533787994331, 2.3424466514620583,
                                      -1.8434246227770306, -4.332339402345503, 0.7371117401461993, 0.8964595250084184,
                                      -1.920072076086686, -1.2957933803491943, 4.413052566384121, 1.3523927632054293};

/* A tg_batchnorm "bn" (3) with the weights above, momentum 0.3 and eps 1e-3, after three training steps. */
static tg_batchnorm trained_bn(tg_params *ps, tg_tape *t) {
    tg_batchnorm bn = tg_batchnorm_new(ps, "bn", 3);
    bn.momentum = 0.3, bn.eps = 1e-3;
    for (int c = 0; c < 3; c++) tg_tensor_set(&bn.weight->val, c, W3[c]), tg_tensor_set(&bn.bias->val, c, B3[c]);
    for (int k = 0; k < 3; k++) {
        tg_batchnorm_forward(t, &bn, batch_k(t, ps->dtype, k));
        tg_tape_reset(t);
    }
    return bn;
}

Test(norm, running_stats_after_three_steps_equal_pytorch_with_momentum_and_eps) {
    tg_params *ps = tg_params_new(TG_F64);
    tg_tape *t = tg_tape_new();
    tg_batchnorm bn = trained_bn(ps, t);
    expect_values(bn.running_mean, TORCH_RM, 3, 1e-14, "running_mean");
    expect_values(bn.running_var, TORCH_RV, 3, 1e-14, "running_var");
    cr_expect_eq(TG_I64P(bn.num_batches_tracked)[0], 3);
    tg_params_train(ps, false);   /* eval: the running statistics and eps 1e-3 */
    double v[12];
    for (int i = 0; i < 12; i++) v[i] = sin(1.7 * i + 3) * 4;
    tg_var *y = tg_batchnorm_forward(t, &bn, leaf(t, TG_F64, S(2, 3, 2), v, false));
    expect_values(&y->val, TORCH_EVAL, 12, 1e-14, "eval output");
    cr_expect_eq(TG_I64P(bn.num_batches_tracked)[0], 3, "eval does not count batches");
    tg_tape_free(t);
    tg_params_free(ps);
}

/* f(x) = batch_norm of x (N, C, H, W) in eval mode with fixed running statistics: affine in x. */
static tg_var *f_bn_eval(tg_tape *t, tg_var **v, void *c) {
    (void)c;
    tg_tensor *rm = tg_tensor_from(tg_tape_arena(t), TG_F64, S(3), (double[]){0.2, -0.1, 0.4}, TG_F64);
    tg_tensor *rv = tg_tensor_from(tg_tape_arena(t), TG_F64, S(3), (double[]){0.7, 1.3, 2.1}, TG_F64);
    return tg_batch_norm(t, v[0], v[1], v[2], rm, rv, false, 0.1, 1e-5);
}
/* training, (N, C, H, W), no affine */
static tg_var *f_bn_4d(tg_tape *t, tg_var **v, void *c) {
    (void)c;
    return tg_square(t, tg_batch_norm(t, v[0], NULL, NULL, NULL, NULL, true, 0.1, 1e-5));
}
/* over the last dim, no affine */
static tg_var *f_ln_plain(tg_tape *t, tg_var **v, void *c) {
    (void)c;
    return tg_square(t, tg_layer_norm(t, v[0], 1, NULL, NULL, 1e-5));
}

static void gradcheck(const char *what, tg_gradcheck_fn f, int n, const tg_shape *s) {
    tg_arena *a = tg_arena_new();
    tg_rng r = tg_rng_seed(99);
    tg_tensor *in[3];
    for (int i = 0; i < n; i++) in[i] = tg_tensor_uniform(a, TG_F64, s[i], -2, 2, &r);
    tg_gradcheck_result res = tg_gradcheck(f, in, n, NULL, 1e-6, 1e-7, 1e-6);
    cr_expect(res.ok, "%s: input %d element %lld analytic %.10g numeric %.10g", what, res.worst_input,
              (long long)res.worst_index, res.analytic, res.numeric);
    tg_arena_free(a);
}

Test(norm, gradients_in_eval_mode_4d_and_without_affine) {
    gradcheck("batch_norm eval", f_bn_eval, 3, (tg_shape[]){S(2, 3, 2), S(3), S(3)});
    gradcheck("batch_norm 4-d", f_bn_4d, 1, (tg_shape[]){S(2, 3, 2, 2)});
    gradcheck("layer_norm plain", f_ln_plain, 1, (tg_shape[]){S(3, 5)});
}

Test(norm, float32_matches_float64) {
    tg_tape *t = tg_tape_new();
    tg_rng r = tg_rng_seed(3);
    tg_tensor *x64 = tg_tensor_uniform(tg_tape_arena(t), TG_F64, S(4, 3, 5), -2, 2, &r);
    tg_var *y[2];
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = k ? TG_F32 : TG_F64;
        tg_var *x = tg_leaf(t, tg_tensor_cast(tg_tape_arena(t), x64, dt), false);
        y[k] = tg_layer_norm(t, tg_batch_norm(t, x, NULL, NULL, NULL, NULL, true, 0.1, 1e-5), 2, NULL, NULL, 1e-5);
    }
    for (int64_t i = 0; i < x64->numel; i++)
        cr_expect(fabs(tg_tensor_get(&y[0]->val, i) - tg_tensor_get(&y[1]->val, i)) < 1e-5, "element %lld", (long long)i);
    tg_tape_free(t);
}

static void layer_norm_bad_weight(void) {
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_F64, S(2, 3, 4)), true);
    tg_layer_norm(t, x, 2, tg_leaf(t, tg_tensor_ones(tg_tape_arena(t), TG_F64, S(4, 3)), true), NULL, 1e-5);
}
static void batch_norm_bad_running(void) {
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_F32, S(2, 3)), true);
    tg_tensor *rm = tg_tensor_zeros(tg_tape_arena(t), TG_F32, S(4));
    tg_batch_norm(t, x, NULL, NULL, rm, rm, false, 0.1, 1e-5);
}
static void dropout_bad_p(void) {
    tg_tape *t = tg_tape_new();
    tg_rng r = tg_rng_seed(1);
    tg_dropout(t, tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_F32, S(5)), true), 1.5, true, &r);
}

Test(norm, shape_errors_name_the_op_the_shapes_and_the_caller) {
    tg_expect_abort(layer_norm_bad_weight, "layer_norm: weight (4, 3)", "(2, 3, 4)", "want (3, 4)", "test_norm.c:");
    tg_expect_abort(batch_norm_bad_running, "batch_norm: running mean (4,) float32", "(2, 3)", "want (3,)", "test_norm.c:");
    tg_expect_abort(dropout_bad_p, "dropout: probability p 1.5", "(5,)", "test_norm.c:");
}

/* ================================================================ dropout */

Test(norm, dropout_p0_is_identity_with_gradient_one) {
    tg_tape *t = tg_tape_new();
    tg_rng r = tg_rng_seed(5), r0 = r;
    tg_var *x = tg_leaf(t, tg_tensor_uniform(tg_tape_arena(t), TG_F64, S(3, 4), -1, 1, &r), true);
    r0 = r;
    tg_var *y = tg_dropout(t, x, 0.0, true, &r);
    cr_expect_eq(y, x, "p = 0 returns x itself");
    cr_expect(memcmp(&r, &r0, sizeof r) == 0, "p = 0 draws nothing");
    tg_backward(t, tg_sum(t, y));
    for (int i = 0; i < 12; i++) cr_expect_eq(tg_tensor_get(&x->grad, i), 1.0);
    tg_tape_free(t);
}

Test(norm, dropout_p1_gives_zeros_and_p0999_scales_by_1000) {
    tg_tape *t = tg_tape_new();
    tg_rng r = tg_rng_seed(6);
    tg_var *x = tg_leaf(t, tg_tensor_full(tg_tape_arena(t), TG_F64, S(20000), 2.0), true);
    tg_var *y = tg_dropout(t, x, 1.0, true, &r);
    tg_backward(t, tg_sum(t, y));
    for (int64_t i = 0; i < 20000; i++) cr_assert(tg_tensor_get(&y->val, i) == 0 && tg_tensor_get(&x->grad, i) == 0);
    tg_tape_reset(t);
    x = tg_leaf(t, tg_tensor_full(tg_tape_arena(t), TG_F64, S(20000), 2.0), true);
    y = tg_dropout(t, x, 0.999, true, &r);
    tg_backward(t, tg_sum(t, y));
    int kept = 0;
    for (int64_t i = 0; i < 20000; i++) {
        double v = tg_tensor_get(&y->val, i), g = tg_tensor_get(&x->grad, i);
        cr_assert(v == 0 || fabs(v - 2000) < 1e-9, "element %lld: %g (want 0 or 2 / (1 - 0.999))", (long long)i, v);
        cr_assert(g == v / 2, "element %lld: gradient %g for value %g", (long long)i, g, v);
        kept += v != 0;
    }
    cr_expect(kept >= 4 && kept <= 50, "%d of 20000 kept at p = 0.999 (expected about 20)", kept);
    tg_tape_free(t);
}

Test(norm, dropout_keep_rate_and_same_seed_same_mask) {
    tg_tape *t = tg_tape_new();
    enum { N = 200000 };
    tg_var *x = tg_leaf(t, tg_tensor_ones(tg_tape_arena(t), TG_F32, S(N)), false);
    tg_rng r1 = tg_rng_seed(42), r2 = tg_rng_seed(42), r3 = tg_rng_seed(43);
    tg_var *a = tg_dropout(t, x, 0.3, true, &r1), *b = tg_dropout(t, x, 0.3, true, &r2), *c = tg_dropout(t, x, 0.3, true, &r3);
    cr_expect(memcmp(a->val.data, b->val.data, N * sizeof(float)) == 0, "same seed, different masks");
    cr_expect(memcmp(a->val.data, c->val.data, N * sizeof(float)) != 0, "different seeds, same mask");
    double kept = 0, sum = 0;
    for (int i = 0; i < N; i++) kept += TG_F32P(&a->val)[i] != 0, sum += TG_F32P(&a->val)[i];
    /* kept ~ Binomial(N, 0.7): sd sqrt(N 0.21) = 205; 5 sd is 0.5% of N 0.7 */
    cr_expect(fabs(kept / N - 0.7) < 5 * sqrt(0.21 / N), "keep rate %g, want 0.7", kept / N);
    cr_expect(fabs(sum / N - 1) < 5 * sqrt(0.21 / N) / 0.7, "mean %g, want 1 (inverted dropout)", sum / N);
    /* the documented draw order: element i kept iff the i-th uniform of the stream < 1 - p */
    tg_rng r = tg_rng_seed(42);
    for (int i = 0; i < 1000; i++) cr_assert_eq(TG_F32P(&a->val)[i] != 0, tg_rng_uniform(&r) < 0.7, "element %d", i);
    tg_tape_free(t);
}

/* ================================================================ train / eval */

Test(norm, train_eval_switch_changes_batch_norm_and_dropout) {
    tg_params *ps = tg_params_new(TG_F64);
    cr_expect(ps->training, "tg_params start in training mode, as PyTorch modules");
    tg_rng r = tg_rng_seed(8);
    tg_batchnorm bn = tg_batchnorm_new(ps, "bn", 3);
    tg_dropout_layer dr = tg_dropout_new(ps, 0.5, &r);
    tg_tape *t = tg_tape_new();
    tg_var *x = batch_k(t, TG_F64, 1);
    tg_var *ytrain = tg_batchnorm_forward(t, &bn, x), *dtrain = tg_dropout_forward(t, &dr, x);
    tg_params_train(ps, false);
    tg_rng before = r;
    tg_var *yeval = tg_batchnorm_forward(t, &bn, x), *deval = tg_dropout_forward(t, &dr, x);
    cr_expect_eq(deval, x, "dropout in eval is the identity");
    cr_expect(memcmp(&before, &r, sizeof r) == 0, "dropout in eval draws nothing");
    cr_expect(memcmp(dtrain->val.data, x->val.data, 12 * sizeof(double)) != 0, "dropout in training changes x");
    /* eval: (x - rm) / sqrt(rv + eps) with the statistics of one step, not the batch's own */
    for (int i = 0; i < 12; i++) {
        int c = (i / 2) % 3;
        double want = (tg_tensor_get(&x->val, i) - tg_tensor_get(bn.running_mean, c)) /
                      sqrt(tg_tensor_get(bn.running_var, c) + 1e-5);
        cr_expect_float_eq(tg_tensor_get(&yeval->val, i), want, 1e-14);
        cr_expect(fabs(tg_tensor_get(&yeval->val, i) - tg_tensor_get(&ytrain->val, i)) > 1e-6);
    }
    cr_expect_eq(TG_I64P(bn.num_batches_tracked)[0], 1);
    tg_tape_free(t);
    tg_params_free(ps);
}

/* ================================================================ checkpoints */

/* A model with buffers: Linear "fc" (4 -> 3), BatchNorm1d "bn" (3), LayerNorm "ln" (3). */
typedef struct {
    tg_linear fc;
    tg_batchnorm bn;
    tg_layernorm ln;
} small;

static small small_new(tg_params *ps, uint64_t seed) {
    tg_rng r = tg_rng_seed(seed);
    small m = {.fc = tg_linear_new(ps, "fc", 4, 3, &r)};
    m.bn = tg_batchnorm_new(ps, "bn", 3);
    m.ln = tg_layernorm_new(ps, "ln", S(3));
    return m;
}

static tg_var *small_forward(tg_tape *t, small *m, tg_var *x) {
    return tg_layernorm_forward(t, &m->ln, tg_relu(t, tg_batchnorm_forward(t, &m->bn, tg_linear_forward(t, &m->fc, x))));
}

Test(norm, checkpoint_with_buffers_round_trips, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_params *ps = tg_params_new(TG_F32), *qs = tg_params_new(TG_F32);
    small m = small_new(ps, 1), q = small_new(qs, 2);
    tg_tape *t = tg_tape_new();
    tg_rng r = tg_rng_seed(4);
    for (int k = 0; k < 2; k++) {
        small_forward(t, &m, tg_leaf(t, tg_tensor_normal(tg_tape_arena(t), TG_F32, S(5, 4), &r), false));
        tg_tape_reset(t);
    }
    tg_err err;
    const char *path = tg_tmp("bn.safetensors");
    cr_assert_eq(tg_params_save(ps, path, 0, NULL, NULL, &err), 0, "%s", err.msg);
    /* PyTorch took this file: with TG_NORM_CHECKPOINT_OUT=/tmp/ours.safetensors set, then
     *   m = torch.nn.Module(); m.fc = torch.nn.Linear(4, 3); m.bn = torch.nn.BatchNorm1d(3); m.ln = torch.nn.LayerNorm(3)
     *   t, _ = safetensors_lite.read("/tmp/ours.safetensors")
     *   m.load_state_dict({k: torch.from_numpy(v) for k, v in t.items()})   # strict: <All keys matched successfully>
     * and m.bn.num_batches_tracked == tensor(2). */
    const char *out = getenv("TG_NORM_CHECKPOINT_OUT");
    if (out) cr_assert_eq(tg_params_save(ps, out, 0, NULL, NULL, &err), 0, "%s", err.msg);
    tg_safetensors st;
    cr_assert_eq(tg_safetensors_read(path, &st, &err), 0, "%s", err.msg);
    const tg_st_tensor *nbt = tg_safetensors_find(&st, "bn.num_batches_tracked");
    cr_assert(nbt && nbt->tensor.dtype == TG_I64 && nbt->tensor.shape.ndim == 0 && TG_I64P(&nbt->tensor)[0] == 2);
    cr_expect(tg_safetensors_find(&st, "bn.running_mean") && tg_safetensors_find(&st, "bn.running_var"));
    tg_safetensors_free(&st);
    cr_assert_eq(tg_params_load(qs, path, &err), 0, "%s", err.msg);
    cr_expect(memcmp(ps->data, qs->data, (size_t)ps->n * sizeof(float)) == 0, "parameters differ after loading");
    cr_expect(memcmp(m.bn.running_mean->data, q.bn.running_mean->data, 3 * sizeof(float)) == 0);
    cr_expect(memcmp(m.bn.running_var->data, q.bn.running_var->data, 3 * sizeof(float)) == 0);
    cr_expect_eq(TG_I64P(q.bn.num_batches_tracked)[0], 2);
    /* A file without the buffers is refused, naming the first missing one; nothing changes. */
    tg_params *plain = tg_params_new(TG_F32);
    small_new(plain, 3);
    plain->n_bufs = 0;   /* save only the parameters, as a model without buffers would */
    cr_assert_eq(tg_params_save(plain, tg_tmp("nobuf.safetensors"), 0, NULL, NULL, &err), 0, "%s", err.msg);
    cr_expect_eq(tg_params_load(qs, tg_tmp("nobuf.safetensors"), &err), -1);
    cr_expect(strstr(err.msg, "no tensor bn.running_mean"), "%s", err.msg);
    cr_expect_eq(TG_I64P(q.bn.num_batches_tracked)[0], 2);
    plain->n_bufs = 3;
    tg_params_free(plain);
    tg_tape_free(t);
    tg_params_free(ps);
    tg_params_free(qs);
}

Test(norm, a_pytorch_state_dict_with_batch_norm_loads) {
    /* tests/fixtures/norm_torch.safetensors: scripts/norm_fixtures.py (PyTorch, float32) */
    tg_params *ps = tg_params_new(TG_F32);
    tg_tape *t = tg_tape_new();
    tg_batchnorm bn = tg_batchnorm_new(ps, "bn", 3);
    tg_layernorm ln = tg_layernorm_new(ps, "ln", S(4));
    tg_err err;
    cr_assert_eq(tg_params_load(ps, "tests/fixtures/norm_torch.safetensors", &err), 0, "%s", err.msg);
    cr_expect_eq(TG_I64P(bn.num_batches_tracked)[0], 3);
    expect_values(bn.running_mean, TORCH_RM, 3, 1e-6, "running_mean");
    expect_values(bn.running_var, TORCH_RV, 3, 1e-6, "running_var");
    expect_values(&ln.weight->val, (double[]){0.25, 0.5, 0.75, 1}, 4, 0, "ln.weight");
    /* Our three float32 steps from the defaults land on PyTorch's float32 statistics. */
    tg_params *qs = tg_params_new(TG_F32);
    tg_batchnorm ours = trained_bn(qs, t);
    for (int c = 0; c < 3; c++) {
        cr_expect_float_eq(TG_F32P(ours.running_mean)[c], TG_F32P(bn.running_mean)[c], 1e-6);
        cr_expect_float_eq(TG_F32P(ours.running_var)[c], TG_F32P(bn.running_var)[c], 1e-6);
    }
    tg_tape_free(t);
    tg_params_free(ps);
    tg_params_free(qs);
}

/* ================================================================ steady state, threads */

static double norm_step(tg_tape *t, tg_params *ps, small *m, tg_dropout_layer *dr, tg_adam *opt, tg_tensor *x) {
    tg_params_zero_grad(ps);
    tg_var *h = tg_dropout_forward(t, dr, small_forward(t, m, tg_leaf(t, x, false)));
    tg_var *loss = tg_mean(t, tg_square(t, h));
    double l = tg_item(loss);
    tg_backward(t, loss);
    if (opt) tg_adam_step(opt);
    tg_tape_reset(t);
    return l;
}

Test(norm, steady_state_step_allocates_nothing) {
    tg_params *ps = tg_params_new(TG_F32);
    small m = small_new(ps, 5);
    tg_rng r = tg_rng_seed(9);
    tg_dropout_layer dr = tg_dropout_new(ps, 0.2, &r);
    tg_adam *opt = tg_adam_new(ps, 1e-3);
    tg_tape *t = tg_tape_new();
    tg_arena *keep = tg_arena_new();
    tg_tensor *x = tg_tensor_normal(keep, TG_F32, S(64, 4), &r);
    norm_step(t, ps, &m, &dr, opt, x);
    norm_step(t, ps, &m, &dr, opt, x);
    uint64_t before = tg_test_alloc_count();
    for (int k = 0; k < 5; k++) norm_step(t, ps, &m, &dr, opt, x);
    tg_params_train(ps, false);
    for (int k = 0; k < 2; k++) norm_step(t, ps, &m, &dr, NULL, x);
    cr_expect_eq(tg_test_alloc_count(), before, "%llu allocations in steady-state steps",
                 (unsigned long long)(tg_test_alloc_count() - before));
    tg_arena_free(keep);
    tg_tape_free(t);
    tg_adam_free(opt);
    tg_params_free(ps);
}

Test(norm, same_bits_for_any_thread_count) {
    float first[3][64 * 3];
    for (int run = 0; run < 3; run++) {
        tg_threads_set(run == 0 ? 1 : run == 1 ? 3 : 8);
        tg_params *ps = tg_params_new(TG_F32);
        small m = small_new(ps, 5);
        tg_rng r = tg_rng_seed(9);
        tg_dropout_layer dr = tg_dropout_new(ps, 0.2, &r);
        tg_tape *t = tg_tape_new();
        tg_tensor *x = tg_tensor_normal(tg_tape_arena(t), TG_F32, S(512, 4), &r);
        tg_var *y = tg_dropout_forward(t, &dr, small_forward(t, &m, tg_leaf(t, x, false)));
        tg_backward(t, tg_mean(t, tg_square(t, y)));
        memcpy(first[run], ps->grad, (size_t)ps->n * sizeof(float));
        memcpy(first[run] + ps->n, m.bn.running_var->data, 3 * sizeof(float));
        cr_assert(ps->n + 3 <= 64 * 3);
        if (run) cr_expect(memcmp(first[run], first[0], (size_t)(ps->n + 3) * sizeof(float)) == 0, "run %d differs", run);
        tg_tape_free(t);
        tg_params_free(ps);
    }
    tg_threads_set(0);
}
