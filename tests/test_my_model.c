/* test_my_model.c — examples/my_model.c, the model written outside the library
 * that docs/new_model.md walks through:
 *   - build/my_model on the tiny synthetic dataset (tests/vae_cli.c): it
 *     registers "free-bits-vae", trains it one epoch with the library's
 *     trainer, evaluates and samples it: a run directory of that model with
 *     the trainer's files, parameters under their PyTorch names, a figure line
 *     that adds up, and samples.png of 64 images;
 *   - the model itself (the file included with its main renamed): its
 *     objective is recon + sum_l max(kl_l, B 0.25) in training and recon + kl
 *     at evaluation, recomputed here by hand with the same noise, and its
 *     gradient agrees with central differences in float64. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/png_read.h"
#include "tests/tmpdir.h"
#include "tests/vae_cli.h"

#define main my_model_main
#include "examples/my_model.c"
#undef main

TestSuite(my_model, .init = tg_cli_setup, .fini = tg_tmpdir_teardown, .timeout = 120);

Test(my_model, the_program_trains_evaluates_and_samples_its_own_model) {
    char args[1200], want[700];
    snprintf(args, sizeof args, "%s %s", tg_tmp("data"), tg_tmp("run"));
    int rc = tg_cli_run_program("build/my_model", args);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, tg_cli_text("stderr"));
    char *out = tg_cli_text("stdout");
    cr_log_info("%s", out);
    snprintf(want, sizeof want, "training free-bits-vae in %s\nepoch 1/1  train ", tg_tmp("run"));
    cr_expect(!strncmp(out, want, strlen(want)), "stdout starts otherwise:\n%s", out);

    /* The run is the model's: config.json names it, metrics.csv has its terms. */
    char *cfg = tg_cli_text("run/config.json");
    cr_expect(strstr(cfg, "\"model\":\"free-bits-vae\""), "%s", cfg);
    free(cfg);
    double rows[1][TG_M_COLS];
    tg_cli_check_metrics("run", 1, 0.05, rows);   /* header epoch,train_loss,test_loss,recon,kl,kl_weight,seconds */

    /* Its parameters under their names and shapes (hidden 200, latent 10). */
    tg_safetensors st;
    tg_err e;
    cr_assert_eq(tg_safetensors_read(tg_tmp("run/model.safetensors"), &st, &e), 0, "%s", e.msg);
    const char *names[] = {"fc1.weight", "fc_mu.weight", "fc_logvar.bias", "fc2.weight", "fc3.weight"};
    const int64_t shape[][2] = {{200, 784}, {10, 200}, {10, 0}, {200, 10}, {784, 200}};
    for (int i = 0; i < 5; i++) {
        const tg_st_tensor *t = tg_safetensors_find(&st, names[i]);
        cr_assert_not_null(t, "no %s", names[i]);
        cr_expect(t->tensor.shape.d[0] == shape[i][0] && (shape[i][1] == 0 || t->tensor.shape.d[1] == shape[i][1]),
                  "%s: (%lld, ...)", names[i], (long long)t->tensor.shape.d[0]);
    }
    tg_safetensors_free(&st);

    /* The evaluator's line: the ELBO's terms add up, the IS-NLL is finite and
     * no worse than the one-sample ELBO by much, units within the latent. */
    const char *line = strstr(out, "\ntest: ");
    cr_assert_not_null(line, "%s", out);
    double loss, recon, kl, nll;
    int iw, au, L;
    cr_assert_eq(sscanf(line, "\ntest: loss %lf  recon %lf  kl %lf  nll %lf (%d importance samples)  active units %d of %d",
                        &loss, &recon, &kl, &nll, &iw, &au, &L), 7, "%s", line);
    cr_expect(fabs(loss - (recon + kl)) <= 0.011, "loss %g, recon + kl %g", loss, recon + kl);
    cr_expect(isfinite(nll) && nll < loss + 1, "nll %g, loss %g", nll, loss);
    cr_expect(kl >= 0 && recon > 0 && isfinite(loss), "recon %g kl %g", recon, kl);
    cr_expect(iw == 50 && L == 10 && au >= 0 && au <= 10, "%d samples, %d of %d units", iw, au, L);

    /* 64 samples in an 8 x 8 grid of 28 x 28 images, 2 pixels apart. */
    snprintf(want, sizeof want, "wrote %s/samples.png\n", tg_tmp("run"));
    cr_expect(strstr(out, want), "%s", out);
    tg_png_img png = tg_png_read(tg_tmp("run/samples.png"));
    cr_expect(png.w == 8 * 30 + 2 && png.h == 8 * 30 + 2, "samples.png is %lldx%lld", (long long)png.w,
              (long long)png.h);
    tg_png_free(&png);
    free(out);
}

/* ---------------------------------------------------------------- the model alone */

#define B 4

typedef struct {
    tg_model m;
    tg_tensor *x;
    tg_rng noise;
    bool train;
} fb_case;

static double loss_of(tg_tape *t, fb_case *c, bool backward, double *terms) {
    tg_rng r = c->noise;   /* the same eps every call */
    tg_model_batch b = {.x = tg_leaf(t, c->x, false), .rng = &r, .train = c->train, .epoch = 1};
    tg_model_out o = tg_model_loss(t, &c->m, &b);
    double v = tg_item(o.loss);
    if (terms) terms[0] = tg_item(o.term[0]), terms[1] = tg_item(o.term[1]);
    if (backward) tg_backward(t, o.loss);
    tg_tape_reset(t);
    return v;
}

/* The objective by hand, from the posterior and decoder and the eps the rng gives. */
static void by_hand(fb_case *c, bool train, double *loss, double *recon, double *kl) {
    tg_tape *t = tg_tape_new();
    tg_rng r = c->noise;
    tg_var *mu, *lv;
    tg_var *x = tg_leaf(t, c->x, false);
    c->m.type->posterior(t, c->m.self, x, NULL, &mu, &lv);
    const int64_t L = mu->val.shape.d[1], D = c->x->shape.d[1];
    tg_tensor *eps = tg_tensor_normal(tg_tape_arena(t), TG_F64, TG_SHAPE(B, L), &r);
    tg_tensor *z = tg_tensor_new(tg_tape_arena(t), TG_F64, TG_SHAPE(B, L));
    double kl_dim[16] = {0};
    for (int64_t i = 0; i < B * L; i++) {
        double m = tg_tensor_get(&mu->val, i), v = tg_tensor_get(&lv->val, i);
        tg_tensor_set(z, i, m + exp(v / 2) * tg_tensor_get(eps, i));
        kl_dim[i % L] += 0.5 * (-1 - v + m * m + exp(v));
    }
    tg_var *logits = c->m.type->decode(t, c->m.self, tg_leaf(t, z, false), NULL);
    *recon = 0;
    for (int64_t i = 0; i < B * D; i++) {
        double l = tg_tensor_get(&logits->val, i), y = tg_tensor_get(c->x, i);
        *recon += fmax(l, 0) - l * y + log1p(exp(-fabs(l)));
    }
    *kl = 0;
    double used = 0;
    for (int64_t l = 0; l < L; l++) *kl += kl_dim[l], used += train ? fmax(kl_dim[l], B * 0.25) : kl_dim[l];
    *loss = *recon + used;
    tg_tape_free(t);
}

Test(my_model, the_objective_is_free_bits_in_training_and_the_elbo_at_evaluation) {
    tg_model_register(&free_bits_vae_type);
    cr_assert_eq(tg_model_find("free-bits-vae"), &free_bits_vae_type);
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng init = tg_rng_seed(3), dr = tg_rng_seed(4);
    tg_model_config cfg = {.rows = 4, .cols = 5, .n_hidden = 1, .hidden = {6}, .latent = 3, .lik = TG_LIK_BERNOULLI};
    fb_case c = {.noise = tg_rng_seed(5)};
    c.m = tg_model_new(&free_bits_vae_type, ps, &cfg, &init);
    /* One latent dimension far from the prior (its KL above B 0.25), the others near it (below). */
    free_bits_vae *fb = c.m.self;
    tg_tensor_set(&fb->fc_mu.bias->val, 0, 2.0);
    tg_arena *a = tg_arena_new();
    c.x = tg_tensor_new(a, TG_F64, TG_SHAPE(B, 20));
    for (int64_t i = 0; i < B * 20; i++) tg_tensor_set(c.x, i, tg_rng_uniform(&dr));
    tg_tape *t = tg_tape_new();
    for (int train = 0; train < 2; train++) {
        c.train = train;
        double got[2], want, recon, kl;
        double loss = loss_of(t, &c, false, got);
        by_hand(&c, train, &want, &recon, &kl);
        cr_expect(fabs(loss - want) < 1e-9 * want, "train %d: loss %.12g, by hand %.12g", train, loss, want);
        cr_expect(fabs(got[0] - recon) < 1e-9 * recon && fabs(got[1] - kl) < 1e-9 * kl,
                  "train %d: recon %.12g kl %.12g, by hand %.12g %.12g", train, got[0], got[1], recon, kl);
        if (train) cr_expect_gt(loss - (recon + kl), 0.5, "the free bits raised the loss by %g", loss - (recon + kl));
    }

    /* The training objective's gradient against central differences. */
    c.train = true;
    tg_params_zero_grad(ps);
    loss_of(t, &c, true, NULL);
    int checked = 0;
    for (int v = 0; v < ps->count; v++) {
        tg_var *p = ps->vars[v];
        for (int64_t i = 0; i < p->val.numel; i += 3) {
            double x0 = tg_tensor_get(&p->val, i), h = 1e-6;
            tg_tensor_set(&p->val, i, x0 + h);
            double up = loss_of(t, &c, false, NULL);
            tg_tensor_set(&p->val, i, x0 - h);
            double dn = loss_of(t, &c, false, NULL);
            tg_tensor_set(&p->val, i, x0);
            double num = (up - dn) / (2 * h), ana = tg_tensor_get(&p->grad, i);
            cr_expect(fabs(num - ana) <= 1e-6 * fmax(1, fabs(num)), "%s[%lld]: analytic %.10g, numeric %.10g",
                      p->name, (long long)i, ana, num);
            checked++;
        }
    }
    cr_expect_gt(checked, 50);
    tg_tape_free(t);
    tg_model_free(&c.m);
    tg_params_free(ps);
    tg_arena_free(a);
}
