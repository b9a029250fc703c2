/*
 * test_threads.c — training gives bit-identical parameters whatever the
 * thread count: every parallel split in the library (GEMM tiles, Adam ranges)
 * leaves each output computed by one thread in a fixed order.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "models/vae.h"
#include "optim/optim.h"
#include "tensor/pool.h"
#include "tensor/threads.h"

/* Trains the reference VAE for a few steps from seed 9 with n threads; returns
 * a malloc'd copy of the parameter block and writes the losses. */
static float *train(int threads, int steps, double *losses, int64_t *n) {
    tg_threads_set(threads);
    tg_rng r = tg_rng_seed(9);
    tg_params *ps = tg_params_new(TG_F32);
    tg_vae m = tg_vae_new(ps, 784, 400, 20, &r);
    tg_adam *opt = tg_adam_new(ps, 1e-3);
    tg_tape *t = tg_tape_new();
    tg_arena *keep = tg_arena_new();
    tg_tensor *x = tg_tensor_uniform(keep, TG_F32, TG_SHAPE(128, 784), 0, 1, &r);
    for (int k = 0; k < steps; k++) {
        tg_params_zero_grad(ps);
        tg_vae_out o = tg_vae_forward(t, &m, tg_leaf(t, x, false), NULL, &r);
        losses[k] = tg_tensor_get(&o.loss->val, 0);
        tg_backward(t, o.loss);
        tg_adam_step(opt);
        tg_tape_reset(t);
    }
    *n = ps->n;
    float *out = malloc((size_t)ps->n * sizeof *out);
    memcpy(out, ps->data, (size_t)ps->n * sizeof *out);
    tg_arena_free(keep);
    tg_tape_free(t);
    tg_adam_free(opt);
    tg_params_free(ps);
    return out;
}

Test(threads, training_is_bit_identical_for_1_2_and_3_threads) {
    enum { STEPS = 4 };
    double l1[STEPS], ln[STEPS];
    int64_t n, nn;
    float *p1 = train(1, STEPS, l1, &n);
    for (int threads = 2; threads <= 3; threads++) {
        float *pn = train(threads, STEPS, ln, &nn);
        cr_assert_eq(nn, n);
        for (int k = 0; k < STEPS; k++) cr_expect_eq(l1[k], ln[k], "step %d loss differs at %d threads", k, threads);
        cr_expect(memcmp(p1, pn, (size_t)n * sizeof *p1) == 0, "parameters differ between 1 and %d threads", threads);
        free(pn);
    }
    free(p1);
    tg_pool_shutdown();
}
