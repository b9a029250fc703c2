/*
 * test_iwae.c — the importance-weighted bound of the reference VAE
 * (tg_vae_iwae_loss), composed from the ops: PyTorch's loss and gradients
 * (tests/fixtures/iwae.safetensors, scripts/layer_fixtures.py), a float64
 * gradient check, and Jensen's inequality against the one-sample bounds of
 * the same draws.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "models/vae.h"
#include "nn/checkpoint.h"

#define FIXTURE "tests/fixtures/iwae.safetensors"

static const tg_tensor *fixture_tensor(const tg_safetensors *st, const char *name) {
    const tg_st_tensor *e = tg_safetensors_find(st, name);
    cr_assert(e, FIXTURE ": no tensor %s (regenerate with /usr/bin/python3 scripts/layer_fixtures.py)", name);
    return &e->tensor;
}

static void expect_close(const char *what, double got, double want, double scale) {
    cr_expect(fabs(got - want) <= 1e-12 * fmax(fabs(want), 1e-3 * scale), "%s: %.17g, PyTorch %.17g", what, got, want);
}

Test(iwae, loss_and_gradients_match_pytorch) {
    tg_safetensors st;
    tg_err err;
    cr_assert_eq(tg_safetensors_read(FIXTURE, &st, &err), 0, "%s", err.msg);
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng r = tg_rng_seed(1);
    tg_vae m = tg_vae_new(ps, 6, 5, 3, &r);
    cr_assert_eq(tg_params_load_from(ps, &st, FIXTURE, NULL, &err), 0, "%s", err.msg);
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, (tg_tensor *)fixture_tensor(&st, "x"), false);
    tg_var *loss = tg_vae_iwae_loss(t, &m, x, 3, fixture_tensor(&st, "eps"), NULL);
    expect_close("loss", tg_item(loss), tg_tensor_get(fixture_tensor(&st, "loss"), 0), 0);
    tg_backward(t, loss);
    for (int k = 0; k < ps->count; k++) {
        char name[64];
        snprintf(name, sizeof name, "grad.%s", ps->vars[k]->name);
        const tg_tensor *want = fixture_tensor(&st, name);
        double scale = 0;
        for (int64_t i = 0; i < want->numel; i++) scale = fmax(scale, fabs(tg_tensor_get(want, i)));
        for (int64_t i = 0; i < want->numel; i++)
            expect_close(name, tg_tensor_get(&ps->vars[k]->grad, i), tg_tensor_get(want, i), scale);
    }
    tg_tape_free(t);
    tg_params_free(ps);
    tg_safetensors_free(&st);
}

typedef struct {
    tg_vae *m;
    const tg_tensor *eps;
} gc_ctx;

static tg_var *f_iwae(tg_tape *t, tg_var **v, void *ctx) {
    gc_ctx *c = ctx;
    return tg_vae_iwae_loss(t, c->m, v[0], c->eps->shape.d[0], c->eps, NULL);
}

Test(iwae, gradient_check_through_the_whole_bound) {
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng r = tg_rng_seed(2);
    tg_vae m = tg_vae_new(ps, 7, 6, 3, &r);
    tg_arena *a = tg_arena_new();
    tg_tensor *x = tg_tensor_uniform(a, TG_F64, TG_SHAPE(3, 7), 0.05, 0.95, &r);
    tg_tensor *eps = tg_tensor_normal(a, TG_F64, TG_SHAPE(4, 3, 3), &r);
    gc_ctx c = {&m, eps};
    tg_gradcheck_result res = tg_gradcheck(f_iwae, &x, 1, &c, 1e-6, 1e-7, 1e-6);
    cr_expect(res.ok, "max abs err %g at element %lld: analytic %g, numeric %g", res.max_abs_err,
              (long long)res.worst_index, res.analytic, res.numeric);
    tg_arena_free(a);
    tg_params_free(ps);
}

Test(iwae, the_k_sample_bound_is_tighter_than_its_one_sample_bounds) {
    /* log mean_i w_i >= mean_i log w_i (Jensen), draw for draw: the k-sample
     * loss is at most the mean of the one-sample losses of the same eps. */
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng r = tg_rng_seed(3);
    tg_vae m = tg_vae_new(ps, 8, 6, 2, &r);
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_arena_new();
    const int64_t k = 5, B = 4;
    tg_tensor *x = tg_tensor_uniform(a, TG_F64, TG_SHAPE(B, 8), 0, 1, &r);
    tg_tensor *eps = tg_tensor_normal(a, TG_F64, TG_SHAPE(k, B, 2), &r);
    bool prev = tg_no_grad(t);
    double lk = tg_item(tg_vae_iwae_loss(t, &m, tg_leaf(t, x, false), k, eps, NULL)), mean1 = 0;
    for (int64_t i = 0; i < k; i++) {
        tg_tensor e1 = tg_tensor_wrap(TG_F64, TG_SHAPE(1, B, 2), TG_F64P(eps) + i * B * 2);
        mean1 += tg_item(tg_vae_iwae_loss(t, &m, tg_leaf(t, x, false), 1, &e1, NULL)) / (double)k;
    }
    tg_set_grad(t, prev);
    cr_expect_lt(lk, mean1, "IWAE-5 loss %.6f is not below the mean one-sample loss %.6f", lk, mean1);
    cr_expect_gt(lk, mean1 - 50, "IWAE-5 loss %.6f implausibly far below %.6f", lk, mean1);
    tg_arena_free(a);
    tg_tape_free(t);
    tg_params_free(ps);
}
