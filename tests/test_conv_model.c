/*
 * test_conv_model.c — a small convolutional classifier built from the
 * layers a user would take (Conv2d, BatchNorm2d, ReLU, max-pool, dropout,
 * ConvTranspose2d, upsampling, Linear, cross-entropy) trained with Adam:
 * the parameters and the running statistics after a few steps are the same
 * bits at 1, 2 and 3 threads, a steady-state step allocates nothing, and
 * the train / eval switch changes exactly what it should.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "optim/optim.h"
#include "tensor/threads.h"
#include "tests/alloc_count.h"

typedef struct {
    tg_params *ps;
    tg_conv c1, up;
    tg_batchnorm bn;
    tg_dropout_layer drop;
    tg_linear fc;
    tg_adam *opt;
    tg_rng init, noise;
} model;

/* In place: the dropout layer keeps a pointer to m->noise. */
static void model_init(model *m) {
    *m = (model){.ps = tg_params_new(TG_F32), .init = tg_rng_seed(3), .noise = tg_rng_seed(4)};
    m->c1 = tg_conv2d_new(m->ps, "c1", 1, 8, 3, 3, (tg_conv_args){.padding = {1, 1}}, true, &m->init);
    m->bn = tg_batchnorm_new(m->ps, "bn", 8);
    m->up = tg_conv_transpose2d_new(m->ps, "up", 8, 4, 2, 2, (tg_conv_args){.stride = {2, 2}}, false, &m->init);
    m->drop = tg_dropout_new(m->ps, 0.25, &m->noise);
    m->fc = tg_linear_new(m->ps, "fc", 4 * 8 * 8, 10, &m->init);
    m->opt = tg_adam_new(m->ps, 1e-2);
}

static void model_free(model *m) {
    tg_adam_free(m->opt);
    tg_params_free(m->ps);
}

/* x (B, 1, 8, 8) -> logits (B, 10):
 * conv 3x3 -> BN -> ReLU -> max-pool 2 (4x4) -> convT 2x2 s2 (8x8) -> nearest
 * up 1 -> dropout -> flatten -> linear */
static tg_var *forward(tg_tape *t, model *m, tg_var *x) {
    tg_var *h = tg_relu(t, tg_batchnorm_forward(t, &m->bn, tg_conv_forward(t, &m->c1, x)));
    h = tg_max_pool2d(t, h, (tg_pool_args){.kernel = {2, 2}});
    h = tg_upsample_nearest2d(t, tg_conv_forward(t, &m->up, h), 1, 1);
    h = tg_dropout_forward(t, &m->drop, h);
    return tg_linear_forward(t, &m->fc, tg_flatten(t, h, 1, -1));
}

static double step(tg_tape *t, model *m, tg_tensor *x, tg_tensor *y) {
    tg_params_zero_grad(m->ps);
    tg_var *loss = tg_loss_cross_entropy(t, forward(t, m, tg_leaf(t, x, false)), tg_leaf(t, y, false),
                                         TG_REDUCE_MEAN);
    double l = tg_item(loss);
    tg_backward(t, loss);
    tg_adam_step(m->opt);
    tg_tape_reset(t);
    return l;
}

static void batch(tg_arena *a, tg_tensor **x, tg_tensor **y) {
    tg_rng r = tg_rng_seed(11);
    *x = tg_tensor_uniform(a, TG_F32, TG_SHAPE(16, 1, 8, 8), 0, 1, &r);
    *y = tg_tensor_new(a, TG_I64, TG_SHAPE(16));
    for (int i = 0; i < 16; i++) TG_I64P(*y)[i] = (int64_t)tg_rng_below(&r, 10);
}

/* Trains 4 steps at n threads; returns the parameters and buffers as bytes (malloc'd). */
static unsigned char *train_bytes(int threads, size_t *len) {
    tg_threads_set(threads);
    model m;
    model_init(&m);
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_arena_new();
    tg_tensor *x, *y;
    batch(a, &x, &y);
    for (int k = 0; k < 4; k++) step(t, &m, x, y);
    size_t pn = (size_t)m.ps->n * sizeof(float);
    tg_tensor *rm = tg_params_find_buffer(m.ps, "bn.running_mean"), *rv = tg_params_find_buffer(m.ps, "bn.running_var");
    size_t bn = (size_t)rm->numel * sizeof(float);
    unsigned char *out = malloc(pn + 2 * bn);
    memcpy(out, m.ps->data, pn);
    memcpy(out + pn, rm->data, bn);
    memcpy(out + pn + bn, rv->data, bn);
    *len = pn + 2 * bn;
    tg_arena_free(a);
    tg_tape_free(t);
    model_free(&m);
    tg_threads_set(0);
    return out;
}

Test(conv_model, same_bits_at_one_two_and_three_threads) {
    size_t n1, n2, n3;
    unsigned char *b1 = train_bytes(1, &n1), *b2 = train_bytes(2, &n2), *b3 = train_bytes(3, &n3);
    cr_assert(n1 == n2 && n1 == n3);
    cr_expect_eq(memcmp(b1, b2, n1), 0, "1 and 2 threads differ");
    cr_expect_eq(memcmp(b1, b3, n1), 0, "1 and 3 threads differ");
    free(b1), free(b2), free(b3);
}

Test(conv_model, a_steady_state_step_allocates_nothing_and_the_loss_falls) {
    model m;
    model_init(&m);
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_arena_new();
    tg_tensor *x, *y;
    batch(a, &x, &y);
    double first = step(t, &m, x, y);
    step(t, &m, x, y);
    uint64_t before = tg_test_alloc_count();
    double last = 0;
    for (int k = 0; k < 5; k++) last = step(t, &m, x, y);
    cr_expect_eq(tg_test_alloc_count(), before, "%llu allocations in 5 steady-state steps",
                 (unsigned long long)(tg_test_alloc_count() - before));
    cr_expect_lt(last, first, "loss %g after 7 steps, %g at the first", last, first);
    tg_arena_free(a);
    tg_tape_free(t);
    model_free(&m);
}

Test(conv_model, eval_mode_is_deterministic_and_leaves_the_running_statistics) {
    model m;
    model_init(&m);
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_arena_new();
    tg_tensor *x, *y;
    batch(a, &x, &y);
    step(t, &m, x, y);
    tg_tensor *rm = tg_params_find_buffer(m.ps, "bn.running_mean");
    float saved[8];
    memcpy(saved, rm->data, sizeof saved);
    tg_params_train(m.ps, false);
    bool prev = tg_no_grad(t);
    tg_var *o1 = forward(t, &m, tg_leaf(t, x, false)), *o2 = forward(t, &m, tg_leaf(t, x, false));
    cr_expect_eq(memcmp(o1->val.data, o2->val.data, (size_t)o1->val.numel * sizeof(float)), 0,
                 "eval forward differs between two calls (dropout or batch statistics still on)");
    cr_expect_eq(memcmp(saved, rm->data, sizeof saved), 0, "eval changed the running mean");
    tg_tape_reset(t);
    tg_params_train(m.ps, true);
    tg_var *o3 = forward(t, &m, tg_leaf(t, x, false));
    tg_var *o4 = forward(t, &m, tg_leaf(t, x, false));
    cr_expect_neq(memcmp(o3->val.data, o4->val.data, (size_t)o3->val.numel * sizeof(float)), 0,
                  "training forwards draw new dropout masks");
    tg_set_grad(t, prev);
    tg_arena_free(a);
    tg_tape_free(t);
    model_free(&m);
}
