/* test_model_torch.c — the convolutional VAE and the VQ-VAE (models/conv_vae.c,
 * models/vq_vae.c) against their PyTorch modules (scripts/model_fixtures.py):
 * the fixture's state_dict loads by name into the model built from a config,
 * and the loss terms and every parameter's gradient equal PyTorch's, float64.
 * For the VQ-VAE these are the straight-through gradients PyTorch's autograd
 * gives for z_q = z_e + (e - z_e).detach(), and the codes are PyTorch's. */
#include <criterion/criterion.h>
#include <math.h>

#include "models/model.h"
#include "nn/checkpoint.h"
#include "io/safetensors.h"
#include "tests/fixture.h"

static const tg_tensor *get(const tg_safetensors *st, const char *path, const char *name) {
    const tg_st_tensor *e = tg_safetensors_find(st, name);
    cr_assert(e, "%s: no tensor %s (regenerate with /usr/bin/python3 scripts/model_fixtures.py)", path, name);
    return &e->tensor;
}

static double item(const tg_var *v) { return tg_tensor_get(&v->val, 0); }

static void expect_value(const char *what, double got, const tg_tensor *want) {
    double w = tg_tensor_get(want, 0);
    cr_expect(fabs(got - w) <= 1e-10 * fabs(w), "%s: %.15g, PyTorch %.15g", what, got, w);
}

/* Builds type from cfg in float64, loads path's state_dict, runs one batch
 * (loss() with train set, so the VQ-VAE's prior moves as in training) and
 * compares the terms named in names[] and every gradient. */
static void against_torch(const char *name, tg_model_config cfg, const char *path, int n, const char *const names[],
                          bool with_eps) {
    tg_safetensors st;
    tg_err e;
    cr_assert_eq(tg_safetensors_read(path, &st, &e), 0, "%s", e.msg);
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng r = tg_rng_seed(1);
    tg_model m = tg_model_new(tg_model_find(name), ps, &cfg, &r);
    cr_assert_eq(tg_params_load(ps, path, &e), 0, "the PyTorch state_dict does not load: %s", e.msg);
    tg_tape *t = tg_tape_new();
    tg_params_zero_grad(ps);
    tg_model_batch b = {.x = tg_leaf(t, (tg_tensor *)get(&st, path, "x"), false), .rng = &r, .train = true,
                        .eps = with_eps ? get(&st, path, "eps") : NULL, .epoch = 1, .steps_per_epoch = 1,
                        .epochs = 1};
    tg_model_out o = tg_model_loss(t, &m, &b);
    for (int i = 0; i < n; i++) expect_value(names[i], item(o.term[i]), get(&st, path, names[i]));
    if (o.codes) {
        const tg_tensor *want = get(&st, path, "codes");
        cr_assert_eq(o.codes->val.numel, want->numel);
        for (int64_t i = 0; i < want->numel; i++)
            cr_expect_eq(TG_I64P(&o.codes->val)[i], (int64_t)tg_tensor_get(want, i), "code %lld", (long long)i);
    }
    tg_backward(t, o.loss);
    char g[160];
    for (int v = 0; v < ps->count; v++) {
        snprintf(g, sizeof g, "grad.%s", ps->vars[v]->name);
        const tg_tensor *want = get(&st, path, g);
        double err = tg_rel_max_err(&ps->vars[v]->grad, want);
        cr_expect(err < 1e-9, "%s %s: relative error %g against PyTorch", name, g, err);
    }
    tg_tape_free(t);
    tg_model_free(&m);
    tg_params_free(ps);
    tg_safetensors_free(&st);
}

Test(model_torch, conv_vae_terms_and_gradients_equal_pytorch) {
    tg_model_config c = {.rows = 8, .cols = 4, .latent = 3, .lik = TG_LIK_BERNOULLI};
    const char *names[] = {"recon", "kl"};
    against_torch("conv-vae", c, "tests/fixtures/conv_vae.safetensors", 2, names, true);
}

Test(model_torch, vq_vae_terms_codes_and_straight_through_gradients_equal_pytorch) {
    tg_model_config c = {.rows = 8, .cols = 8, .codes = 5, .code_dim = 3, .commitment = 0.25,
                         .lik = TG_LIK_BERNOULLI};
    const char *names[] = {"recon", "codebook", "commitment"};
    against_torch("vq-vae", c, "tests/fixtures/vq_vae.safetensors", 3, names, false);
}
