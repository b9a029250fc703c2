/*
 * test_alloc.c — after the first step, a training step allocates nothing:
 * activations, gradients and tape entries reuse the tape's arena, GEMM reuses
 * its pack buffers, parameters and Adam state were allocated up front.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "models/model.h"
#include "models/vae.h"
#include "optim/optim.h"
#include "tests/alloc_count.h"

static void step(tg_tape *t, tg_params *ps, tg_vae *m, tg_adam *opt, tg_tensor *x, tg_rng *r) {
    tg_params_zero_grad(ps);
    tg_vae_out o = tg_vae_forward(t, m, tg_leaf(t, x, false), NULL, r);
    tg_backward(t, o.loss);
    tg_adam_step(opt);
    tg_tape_reset(t);
}

Test(alloc, steady_state_training_step_allocates_nothing) {
    tg_rng r = tg_rng_seed(5);
    tg_params *ps = tg_params_new(TG_F32);
    tg_vae m = tg_vae_new(ps, 784, 400, 20, &r);
    tg_adam *opt = tg_adam_new(ps, 1e-3);
    tg_tape *t = tg_tape_new();
    tg_arena *keep = tg_arena_new();
    tg_tensor *x = tg_tensor_uniform(keep, TG_F32, TG_SHAPE(128, 784), 0, 1, &r);

    uint64_t before_first = tg_test_alloc_count();
    step(t, ps, &m, opt, x, &r);
    cr_expect_gt(tg_test_alloc_count(), before_first, "the counter must see the first step's allocations");
    step(t, ps, &m, opt, x, &r);
    uint64_t before = tg_test_alloc_count();
    for (int k = 0; k < 5; k++) step(t, ps, &m, opt, x, &r);
    cr_expect_eq(tg_test_alloc_count(), before, "%llu allocations in 5 steady-state steps",
                 (unsigned long long)(tg_test_alloc_count() - before));

    /* An evaluation pass without gradients allocates nothing either. */
    bool prev = tg_no_grad(t);
    tg_vae_forward(t, &m, tg_leaf(t, x, false), NULL, &r);
    tg_tape_reset(t);
    before = tg_test_alloc_count();
    tg_vae_forward(t, &m, tg_leaf(t, x, false), NULL, &r);
    tg_tape_reset(t);
    tg_set_grad(t, prev);
    cr_expect_eq(tg_test_alloc_count(), before);

    tg_arena_free(keep);
    tg_tape_free(t);
    tg_adam_free(opt);
    tg_params_free(ps);
}

/* The classifier of examples/mlp_classifier.c: 784-256-10, cross-entropy on
 * int64 labels, Adam with a parameter group; evaluation takes the argmax. */
typedef struct {
    tg_linear fc1, fc2;
} mlp;

static tg_var *classifier_loss(tg_tape *t, const mlp *m, tg_tensor *x, tg_tensor *y) {
    tg_var *logits = tg_linear_forward(t, &m->fc2, tg_linear_relu(t, &m->fc1, tg_leaf(t, x, false)));
    tg_argmax(t, logits, 1, false);
    return tg_loss_cross_entropy(t, logits, tg_leaf(t, y, false), TG_REDUCE_MEAN);
}

static void classifier_step(tg_tape *t, tg_params *ps, const mlp *m, tg_adam *opt, tg_tensor *x, tg_tensor *y) {
    tg_params_zero_grad(ps);
    tg_backward(t, classifier_loss(t, m, x, y));
    tg_adam_step(opt);
    tg_tape_reset(t);
}

Test(alloc, steady_state_classifier_step_allocates_nothing) {
    tg_rng r = tg_rng_seed(6);
    tg_params *ps = tg_params_new(TG_F32);
    mlp m = {tg_linear_new(ps, "fc1", 784, 256, &r), tg_linear_new(ps, "fc2", 256, 10, &r)};
    tg_adam *opt = tg_adam_new(ps, 1e-3);
    tg_adam_add_group(opt, "fc2", 1e-2, 0);
    tg_tape *t = tg_tape_new();
    tg_arena *keep = tg_arena_new();
    tg_tensor *x = tg_tensor_uniform(keep, TG_F32, TG_SHAPE(128, 784), 0, 1, &r);
    tg_tensor *y = tg_tensor_new(keep, TG_I64, TG_SHAPE(128));
    for (int i = 0; i < 128; i++) TG_I64P(y)[i] = (int64_t)tg_rng_below(&r, 10);

    classifier_step(t, ps, &m, opt, x, y);
    classifier_step(t, ps, &m, opt, x, y);
    uint64_t before = tg_test_alloc_count();
    for (int k = 0; k < 5; k++) classifier_step(t, ps, &m, opt, x, y);
    cr_expect_eq(tg_test_alloc_count(), before, "%llu allocations in 5 steady-state classifier steps",
                 (unsigned long long)(tg_test_alloc_count() - before));

    tg_arena_free(keep);
    tg_tape_free(t);
    tg_adam_free(opt);
    tg_params_free(ps);
}

/* Every built-in model's training step (tg_model_loss, backward, Adam) on a
 * batch of 64 images of 28 x 28: none allocates once warm. */
static void model_step(tg_tape *t, tg_params *ps, const tg_model *m, tg_adam *opt, tg_tensor *x, tg_tensor *y,
                       tg_rng *r, int64_t step) {
    tg_params_zero_grad(ps);
    tg_model_batch b = {.x = tg_leaf(t, x, false), .labels = m->type->conditional ? y : NULL, .rng = r,
                        .train = true, .step = step, .epoch = 1 + step / 3, .steps_per_epoch = 3, .epochs = 4};
    tg_backward(t, tg_model_loss(t, m, &b).loss);
    tg_adam_step(opt);
    tg_tape_reset(t);
}

Test(alloc, steady_state_step_of_every_model_allocates_nothing) {
    const char *names[] = {"vae", "beta-vae", "annealed-vae", "cvae", "iwae", "conv-vae", "vq-vae"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        tg_rng r = tg_rng_seed(6);
        tg_params *ps = tg_params_new(TG_F32);
        tg_model_config c = {.rows = 28, .cols = 28, .n_hidden = 1, .hidden = {64}, .latent = 8, .beta = 2,
                             .anneal = TG_KL_LINEAR, .anneal_epochs = 3, .k = 3, .codes = 16, .code_dim = 8,
                             .commitment = 0.25, .classes = !strcmp(names[k], "cvae") ? 10 : 0};
        tg_model m = tg_model_new(tg_model_find(names[k]), ps, &c, &r);
        tg_adam *opt = tg_adam_new(ps, 1e-3);
        tg_tape *t = tg_tape_new();
        tg_arena *keep = tg_arena_new();
        tg_tensor *x = tg_tensor_uniform(keep, TG_F32, TG_SHAPE(64, 784), 0, 1, &r);
        tg_tensor *y = tg_tensor_new(keep, TG_I64, TG_SHAPE(64));
        for (int i = 0; i < 64; i++) TG_I64P(y)[i] = i % 10;
        model_step(t, ps, &m, opt, x, y, &r, 0);
        model_step(t, ps, &m, opt, x, y, &r, 1);
        uint64_t before = tg_test_alloc_count();
        for (int s = 2; s < 7; s++) model_step(t, ps, &m, opt, x, y, &r, s);
        cr_expect_eq(tg_test_alloc_count(), before, "%s: %llu allocations in 5 steady-state steps", names[k],
                     (unsigned long long)(tg_test_alloc_count() - before));
        tg_arena_free(keep);
        tg_tape_free(t);
        tg_adam_free(opt);
        tg_model_free(&m);
        tg_params_free(ps);
    }
}
