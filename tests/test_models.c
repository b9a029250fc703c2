/*
 * test_models.c — the VAE family (models/parts.h): float64 gradient
 * checks of every model's loss, agreement with the reference VAE and PyTorch,
 * the naming scheme, KL schedules and KL maths, the Gaussian likelihood, and
 * the evaluation maths (importance weights, log-sum-exp, active units).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "models/vae.h"
#include "models/parts.h"
#include "tensor/threads.h"
#include "tests/child.h"
#include "tests/fixture.h"

#define LOG_2PI 1.8378770664093454836

static double scalar(const tg_var *v) { return tg_tensor_get(&v->val, 0); }

/* ================================================================ tiny models
 *
 * D = 6, L = 3, K = 3, batch 4, in float64. */

enum { TD = 6, TL = 3, TK = 3, TB = 4 };

typedef struct {
    tg_params *ps;
    tg_vae_model m;
    tg_arena *a;
    tg_tensor *x;        /* (TB, TD) */
    tg_tensor *labels;   /* (TB) or NULL */
} tiny;

static tiny tiny_new(tg_vae_config c, uint64_t seed) {
    tiny s = {.ps = tg_params_new(TG_F64), .a = tg_arena_new()};
    tg_rng r = tg_rng_seed(seed);
    s.m = tg_vae_model_new(s.ps, &c, &r);
    if (c.lik == TG_LIK_BERNOULLI) {   /* targets in [0, 1], some exactly 0 or 1 */
        s.x = tg_tensor_uniform(s.a, TG_F64, TG_SHAPE(TB, TD), 0, 1, &r);
        tg_tensor_set(s.x, 0, 0.0), tg_tensor_set(s.x, 1, 1.0);
    } else {
        s.x = tg_tensor_normal(s.a, TG_F64, TG_SHAPE(TB, TD), &r);
    }
    if (c.classes > 0) {
        s.labels = tg_tensor_new(s.a, TG_F64, TG_SHAPE(TB));
        for (int i = 0; i < TB; i++) tg_tensor_set(s.labels, i, (double)((i * 2 + 1) % TK));
    }
    return s;
}

static void tiny_free(tiny *s) {
    tg_params_free(s->ps);
    tg_arena_free(s->a);
}

static tg_vae_config tiny_config(int n_hidden) {
    int64_t h[] = {5, 4};
    return tg_vae_config_new(TD, n_hidden, h, TL);
}

/* ================================================================ gradient checks */

typedef struct {
    const tiny *s;
    double anneal;
} gc_ctx;

/* The model's loss with its parameters replaced by the checker's leaves and a
 * fixed eps drawn inside, so every evaluation sees the same sample. */
static tg_var *f_model_loss(tg_tape *t, tg_var **v, void *c) {
    const gc_ctx *g = c;
    tg_vae_model m = g->s->m;
    tg_var **slots[16];
    int n = tg_vae_model_slots(&m, slots, 16);
    for (int i = 0; i < n; i++) *slots[i] = v[i];
    tg_rng r = tg_rng_seed(7);
    tg_tensor *eps = tg_tensor_normal(tg_tape_arena(t), TG_F64, TG_SHAPE(TB, TL), &r);
    tg_var *x = tg_leaf(t, g->s->x, false);
    return tg_vae_model_forward(t, &m, x, g->s->labels, eps, NULL, g->anneal).loss;
}

static void gradcheck_model(const char *what, tg_vae_config c, int want_params) {
    tiny s = tiny_new(c, 11);
    cr_assert_eq(s.ps->count, want_params, "%s: %d parameters, want %d", what, s.ps->count, want_params);
    tg_tensor *in[16];
    for (int i = 0; i < s.ps->count; i++) in[i] = tg_tensor_copy(s.a, &s.ps->vars[i]->val);
    /* slots and ps->vars list the same parameters in the same order */
    tg_var **slots[16];
    cr_assert_eq(tg_vae_model_slots(&s.m, slots, 16), s.ps->count);
    for (int i = 0; i < s.ps->count; i++) cr_assert_eq(*slots[i], s.ps->vars[i], "%s: slot %d", what, i);
    gc_ctx g = {.s = &s, .anneal = 1.0};
    tg_gradcheck_result res = tg_gradcheck(f_model_loss, in, s.ps->count, &g, 1e-6, 1e-6, 1e-5);
    cr_expect(res.ok && res.checked > 0, "%s: gradient check failed at input %d (%s) element %lld: analytic %.10g "
              "numeric %.10g (max abs err %.3g, %lld checked)", what, res.worst_input,
              res.worst_input >= 0 ? s.ps->vars[res.worst_input]->name : "?", (long long)res.worst_index,
              res.analytic, res.numeric, res.max_abs_err, (long long)res.checked);
    tiny_free(&s);
}

Test(models, gradcheck_vae_bernoulli_two_hidden_layers) {
    gradcheck_model("VAE Bernoulli (5, 4)", tiny_config(2), 14);
}

Test(models, gradcheck_vae_gaussian_learned_variance) {
    tg_vae_config c = tiny_config(1);
    c.lik = TG_LIK_GAUSSIAN, c.gauss_learn_logvar = true, c.gauss_logvar = 0.3;
    gradcheck_model("VAE Gaussian, learned log-variance", c, 11);
}

Test(models, gradcheck_vae_gaussian_fixed_variance) {
    tg_vae_config c = tiny_config(1);
    c.lik = TG_LIK_GAUSSIAN, c.gauss_logvar = -0.5;
    gradcheck_model("VAE Gaussian, fixed log-variance", c, 10);
}

Test(models, gradcheck_beta_vae) {
    tg_vae_config c = tiny_config(1);
    c.beta = 4;
    gradcheck_model("beta-VAE, beta 4", c, 10);
}

Test(models, gradcheck_cvae_standard_prior) {
    tg_vae_config c = tiny_config(1);
    c.classes = TK;
    gradcheck_model("CVAE, standard prior", c, 10);
}

Test(models, gradcheck_cvae_learned_prior) {
    tg_vae_config c = tiny_config(2);
    c.classes = TK, c.prior = TG_PRIOR_LEARNED;
    gradcheck_model("CVAE, learned prior (5, 4)", c, 16);
}

/* ================================================================ reference and names */

Test(models, one_hidden_layer_matches_reference_vae_names_init_loss_and_gradients) {
    for (int dt = 0; dt < 2; dt++) {
        tg_dtype dtype = dt ? TG_F64 : TG_F32;
        tg_params *pr = tg_params_new(dtype), *pm = tg_params_new(dtype);
        tg_rng r1 = tg_rng_seed(5), r2 = tg_rng_seed(5);
        tg_vae ref = tg_vae_new(pr, 784, 400, 20, &r1);
        int64_t h = 400;
        tg_vae_config c = tg_vae_config_new(784, 1, &h, 20);
        tg_vae_model m = tg_vae_model_new(pm, &c, &r2);
        cr_assert_eq(pm->count, pr->count);
        for (int i = 0; i < pr->count; i++) {
            cr_expect_str_eq(pm->vars[i]->name, pr->vars[i]->name);
            cr_expect(tg_shape_eq(pm->vars[i]->val.shape, pr->vars[i]->val.shape), "%s: shape", pr->vars[i]->name);
        }
        cr_assert_eq(pm->n, pr->n);
        cr_expect(memcmp(pm->data, pr->data, (size_t)pr->n * tg_dtype_size(dtype)) == 0, "same init from the same rng");

        tg_tape *t = tg_tape_new();
        tg_arena *a = tg_tape_arena(t);
        tg_rng rd = tg_rng_seed(9);
        tg_tensor *x = tg_tensor_uniform(a, dtype, TG_SHAPE(8, 784), 0, 1, &rd);
        tg_tensor *eps = tg_tensor_normal(a, dtype, TG_SHAPE(8, 20), &rd);
        tg_vae_out o1 = tg_vae_forward(t, &ref, tg_leaf(t, x, false), eps, NULL);
        tg_backward(t, o1.loss);   /* a backward drops the entries before it: one model at a time */
        tg_vae_model_out o2 = tg_vae_model_forward(t, &m, tg_leaf(t, x, false), NULL, eps, NULL, 1.0);
        tg_backward(t, o2.loss);
        double tol = dt ? 1e-12 : 1e-5;
        cr_expect(fabs(scalar(o2.loss) - scalar(o1.loss)) <= tol * fabs(scalar(o1.loss)), "loss %.10g vs reference %.10g",
                  scalar(o2.loss), scalar(o1.loss));
        cr_expect(fabs(scalar(o2.recon) - scalar(o1.bce)) <= tol * fabs(scalar(o1.bce)));
        cr_expect(fabs(scalar(o2.kl) - scalar(o1.kl)) <= tol * fabs(scalar(o1.kl)) + 1e-6);
        for (int i = 0; i < pr->count; i++) {
            double err = tg_rel_max_err(&pm->vars[i]->grad, &pr->vars[i]->grad);
            cr_expect(err <= (dt ? 1e-10 : 1e-4), "%s: gradient relative error %.3g", pr->vars[i]->name, err);
        }
        tg_tape_free(t);
        tg_params_free(pr), tg_params_free(pm);
    }
}

Test(models, one_hidden_layer_loss_matches_pytorch_fixture) {
    tg_fixture *fx = tg_fixture_load("tests/fixtures/vae_ref.bin");
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng r = tg_rng_seed(0);
    int64_t h = 400;
    tg_vae_config c = tg_vae_config_new(784, 1, &h, 20);
    tg_vae_model m = tg_vae_model_new(ps, &c, &r);
    for (int i = 0; i < ps->count; i++) {   /* load by name, as a checkpoint would */
        char name[128];
        snprintf(name, sizeof name, "init.%s", ps->vars[i]->name);
        const tg_tensor *w = tg_fixture_get(fx, name);
        cr_assert(tg_shape_eq(w->shape, ps->vars[i]->val.shape), "%s: shape differs from PyTorch's", name);
        memcpy(ps->vars[i]->val.data, w->data, (size_t)w->numel * 4);
    }
    tg_tape *t = tg_tape_new();
    tg_vae_model_out o = tg_vae_model_forward(t, &m, tg_leaf(t, (tg_tensor *)tg_fixture_get(fx, "x"), false), NULL,
                                              tg_fixture_get(fx, "eps"), NULL, 1.0);
    double want = tg_tensor_get(tg_fixture_get(fx, "loss"), 0);
    cr_expect(fabs(scalar(o.loss) - want) <= 1e-4 * fabs(want), "loss %.6f vs PyTorch %.6f", scalar(o.loss), want);
    tg_tape_free(t);
    tg_params_free(ps);
    tg_fixture_free(fx);
}

Test(models, deeper_and_conditional_naming_scheme) {
    int64_t h[TG_VAE_MAX_HIDDEN];
    cr_assert_eq(tg_vae_parse_hidden("512,256", h), 2);
    tg_vae_config c = tg_vae_config_new(784, 2, h, 20);
    c.classes = 10, c.prior = TG_PRIOR_LEARNED, c.lik = TG_LIK_GAUSSIAN, c.gauss_learn_logvar = true;
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng r = tg_rng_seed(1);
    tg_vae_model_new(ps, &c, &r);
    static const struct { const char *name; int64_t d0, d1; } want[] = {
        {"enc1.weight", 512, 794}, {"enc1.bias", 512, -1}, {"enc2.weight", 256, 512}, {"enc2.bias", 256, -1},
        {"fc_mu.weight", 20, 256}, {"fc_mu.bias", 20, -1}, {"fc_logvar.weight", 20, 256}, {"fc_logvar.bias", 20, -1},
        {"dec1.weight", 256, 30}, {"dec1.bias", 256, -1}, {"dec2.weight", 512, 256}, {"dec2.bias", 512, -1},
        {"out.weight", 784, 512}, {"out.bias", 784, -1}, {"prior.weight", 40, 10}, {"prior.bias", 40, -1},
        {"dec_logvar", 784, -1},
    };
    int n = (int)(sizeof want / sizeof want[0]);
    cr_assert_eq(ps->count, n);
    for (int i = 0; i < n; i++) {
        tg_shape s = want[i].d1 < 0 ? TG_SHAPE(want[i].d0) : TG_SHAPE(want[i].d0, want[i].d1);
        char b1[96], b2[96];
        cr_expect_str_eq(ps->vars[i]->name, want[i].name);
        cr_expect(tg_shape_eq(ps->vars[i]->val.shape, s), "%s: %s, want %s", want[i].name,
                  tg_shape_str(ps->vars[i]->val.shape, b1), tg_shape_str(s, b2));
    }
    tg_params_free(ps);
}

static void learned_prior_without_classes(void) {
    tg_vae_config c = tiny_config(1);
    c.prior = TG_PRIOR_LEARNED;   /* p(z | y) needs labels: classes stays 0 */
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng r = tg_rng_seed(1);
    tg_vae_model_new(ps, &c, &r);
}

Test(models, learned_prior_without_classes_aborts) {
    tg_expect_abort(learned_prior_without_classes, "tapegrad: tg_vae_model_new: a learned prior p(z|y) needs classes > 0");
}

static void cvae_without_labels(void) {
    tg_vae_config c = tiny_config(1);
    c.classes = TK;
    tiny s = tiny_new(c, 1);
    tg_tape *t = tg_tape_new();
    tg_rng r = tg_rng_seed(1);
    tg_vae_model_forward(t, &s.m, tg_leaf(t, s.x, false), NULL, NULL, &r, 1.0);
}

Test(models, cvae_without_labels_aborts) {
    tg_expect_abort(cvae_without_labels, "tapegrad: vae model: a CVAE (3 classes) needs labels");
}

Test(models, parse_hidden) {
    int64_t h[TG_VAE_MAX_HIDDEN];
    cr_expect_eq(tg_vae_parse_hidden("400", h), 1);
    cr_expect_eq(h[0], 400);
    cr_expect_eq(tg_vae_parse_hidden("1,2,3,4,5,6,7,8", h), 8);
    cr_expect_eq(h[7], 8);
    const char *bad[] = {"", ",", "400,", ",400", "1,2,3,4,5,6,7,8,9", "0", "-4", "4x", "4,,5", "99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(tg_vae_parse_hidden(bad[i], h), -1, "\"%s\" accepted", bad[i]);
    cr_expect_eq(tg_vae_parse_hidden(NULL, h), -1);
}

/* ================================================================ KL weights and KL maths */

static void expect_near(double got, double want, double tol, const char *what) {
    cr_expect(fabs(got - want) <= tol, "%s: %.12g, want %.12g", what, got, want);
}

Test(models, kl_schedule_linear_by_epoch_and_by_step) {
    tg_kl_schedule e = {.kind = TG_KL_LINEAR, .by_epoch = true, .warmup = 10};
    expect_near(tg_kl_weight(&e, 12345, 0), 0.0, 0, "epoch 0");
    expect_near(tg_kl_weight(&e, 0, 3), 0.3, 1e-15, "epoch 3");
    expect_near(tg_kl_weight(&e, 0, 10), 1.0, 0, "epoch 10");
    expect_near(tg_kl_weight(&e, 0, 50), 1.0, 0, "epoch 50");
    tg_kl_schedule s = {.kind = TG_KL_LINEAR, .warmup = 1000};
    expect_near(tg_kl_weight(&s, 0, 7), 0.0, 0, "step 0");
    expect_near(tg_kl_weight(&s, 250, 7), 0.25, 1e-15, "step 250");
    expect_near(tg_kl_weight(&s, 999, 0), 0.999, 1e-15, "step 999");
    expect_near(tg_kl_weight(&s, 1000, 0), 1.0, 0, "step 1000");
    tg_kl_schedule none = {.kind = TG_KL_LINEAR, .warmup = 0};
    expect_near(tg_kl_weight(&none, 0, 0), 1.0, 0, "no warm-up");
    tg_kl_schedule k = {.kind = TG_KL_CONSTANT};
    expect_near(tg_kl_weight(&k, 0, 0), 1.0, 0, "constant");
}

Test(models, kl_schedule_cyclical_four_cycles_half_ramp) {
    /* 1000 steps, C = 4: cycles of 250 steps, ramp over the first 125. */
    tg_kl_schedule s = {.kind = TG_KL_CYCLICAL, .total_steps = 1000, .cycles = 4, .ratio = 0.5};
    for (int c = 0; c < 4; c++) {
        int64_t s0 = 250 * c;
        char what[64];
        snprintf(what, sizeof what, "cycle %d start", c);
        expect_near(tg_kl_weight(&s, s0, 0), 0.0, 0, what);
        snprintf(what, sizeof what, "cycle %d mid-ramp", c);
        expect_near(tg_kl_weight(&s, s0 + 50, 0), 0.4, 1e-15, what);
        expect_near(tg_kl_weight(&s, s0 + 100, 0), 0.8, 1e-15, what);
        snprintf(what, sizeof what, "cycle %d end of ramp", c);
        expect_near(tg_kl_weight(&s, s0 + 125, 0), 1.0, 0, what);
        snprintf(what, sizeof what, "cycle %d held", c);
        expect_near(tg_kl_weight(&s, s0 + 200, 0), 1.0, 0, what);
        expect_near(tg_kl_weight(&s, s0 + 249, 0), 1.0, 0, what);
    }
    expect_near(tg_kl_weight(&s, 1000, 0), 1.0, 0, "past the end");
    /* A cycle length that is not an integer: 10 steps, 4 cycles of 2.5. */
    tg_kl_schedule u = {.kind = TG_KL_CYCLICAL, .total_steps = 10, .cycles = 4, .ratio = 0.5};
    expect_near(tg_kl_weight(&u, 0, 0), 0.0, 0, "u step 0");
    expect_near(tg_kl_weight(&u, 1, 0), 0.8, 1e-15, "u step 1 (tau 0.4)");
    expect_near(tg_kl_weight(&u, 2, 0), 1.0, 0, "u step 2 (tau 0.8)");
    expect_near(tg_kl_weight(&u, 3, 0), 0.4, 1e-15, "u step 3 (tau 0.2)");
    expect_near(tg_kl_weight(&u, 5, 0), 0.0, 0, "u step 5 (cycle 3 start)");
}

static tg_var *leaf_of(tg_tape *t, const double *v, int64_t n) {
    return tg_leaf(t, tg_tensor_from(tg_tape_arena(t), TG_F64, TG_SHAPE(1, n), v, TG_F64), false);
}

Test(models, gaussian_kl_reduces_to_standard_and_matches_hand_values) {
    tg_tape *t = tg_tape_new();
    double mq[] = {0.3, -1.2, 2.0}, lq[] = {-0.5, 0.7, 0.0}, zero[] = {0, 0, 0};
    tg_var *vmq = leaf_of(t, mq, 3), *vlq = leaf_of(t, lq, 3);
    tg_var *std = tg_kl_diag_normal(t, vmq, vlq, NULL, NULL);
    tg_var *g0 = tg_kl_diag_normal(t, vmq, vlq, leaf_of(t, zero, 3), leaf_of(t, zero, 3));
    tg_var *ref = tg_loss_kl_normal(t, vmq, vlq);
    double sum = 0;
    for (int i = 0; i < 3; i++) {
        expect_near(tg_tensor_get(&g0->val, i), tg_tensor_get(&std->val, i), 1e-15, "N(0,1) prior");
        sum += tg_tensor_get(&std->val, i);
    }
    expect_near(sum, scalar(ref), 1e-14, "sum equals tg_loss_kl_normal");
    /* Hand values: KL(N(0.3, e^-0.5) || N(1, e^0.4)) = 1/2 (0.4 + 0.5 + e^-0.9 + 0.49 e^-0.4 - 1) */
    double mp[] = {1.0, -1.2, 0.0}, lp[] = {0.4, 0.7, -1.0};
    tg_var *g = tg_kl_diag_normal(t, vmq, vlq, leaf_of(t, mp, 3), leaf_of(t, lp, 3));
    double h0 = 0.5 * (0.4 + 0.5 + exp(-0.9) + 0.49 * exp(-0.4) - 1);
    expect_near(tg_tensor_get(&g->val, 0), h0, 1e-15, "hand value 0");
    expect_near(tg_tensor_get(&g->val, 1), 0.0, 1e-15, "q = p gives 0");
    expect_near(tg_tensor_get(&g->val, 2), 0.5 * (-1.0 + exp(1.0) + 4.0 * exp(1.0) - 1), 1e-13, "hand value 2");
    tg_tape_free(t);
}

Test(models, beta_and_anneal_weight_the_kl_and_kl_per_dim_sums_to_kl) {
    tg_vae_config c = tiny_config(1);
    c.beta = 4;
    tiny s = tiny_new(c, 3);
    tg_tape *t = tg_tape_new();
    tg_rng r = tg_rng_seed(1);
    tg_tensor *eps = tg_tensor_normal(s.a, TG_F64, TG_SHAPE(TB, TL), &r);
    tg_vae_model_out o = tg_vae_model_forward(t, &s.m, tg_leaf(t, s.x, false), NULL, eps, NULL, 1.0);
    expect_near(scalar(o.loss), scalar(o.recon) + 4 * scalar(o.kl), 1e-12, "beta 4: loss = recon + 4 kl");
    expect_near(o.kl_weight, 4, 0, "kl_weight");
    tg_vae_model_out h = tg_vae_model_forward(t, &s.m, tg_leaf(t, s.x, false), NULL, eps, NULL, 0.25);
    expect_near(scalar(h.loss), scalar(h.recon) + scalar(h.kl), 1e-12, "beta 4 at anneal 1/4");
    double per[TL] = {0}, sum = 0;
    for (int b = 0; b < TB; b++)   /* by hand: 1/2 (mu^2 + e^lv - lv - 1) summed over the batch */
        for (int l = 0; l < TL; l++) {
            double mu = tg_tensor_get(&o.mu->val, b * TL + l), lv = tg_tensor_get(&o.logvar->val, b * TL + l);
            per[l] += 0.5 * (mu * mu + exp(lv) - lv - 1);
        }
    for (int l = 0; l < TL; l++) {
        sum += tg_tensor_get(&o.kl_per_dim->val, l);
        expect_near(tg_tensor_get(&o.kl_per_dim->val, l), per[l], 1e-12, "kl_per_dim by hand");
    }
    expect_near(sum, scalar(o.kl), 1e-12, "kl_per_dim sums to kl");
    tg_tape_free(t);
    tiny_free(&s);
}

Test(models, gaussian_recon_is_the_full_negative_log_likelihood) {
    for (int learned = 0; learned < 2; learned++) {
        tg_vae_config c = tiny_config(1);
        c.lik = TG_LIK_GAUSSIAN, c.gauss_learn_logvar = learned, c.gauss_logvar = learned ? 0 : 0.7;
        tiny s = tiny_new(c, 4);
        if (learned)
            for (int d = 0; d < TD; d++) tg_tensor_set(&s.m.dec_logvar->val, d, -0.3 + 0.2 * d);
        tg_tape *t = tg_tape_new();
        tg_rng r = tg_rng_seed(2);
        tg_tensor *eps = tg_tensor_normal(s.a, TG_F64, TG_SHAPE(TB, TL), &r);
        tg_vae_model_out o = tg_vae_model_forward(t, &s.m, tg_leaf(t, s.x, false), NULL, eps, NULL, 1.0);
        double want = 0;
        for (int i = 0; i < TB * TD; i++) {
            double v = learned ? -0.3 + 0.2 * (i % TD) : 0.7;
            double e = tg_tensor_get(s.x, i) - tg_tensor_get(&o.logits->val, i);
            want += 0.5 * log(2 * 3.14159265358979323846) + 0.5 * v + 0.5 * e * e / exp(v);
        }
        expect_near(scalar(o.recon), want, 1e-12, learned ? "learned variance" : "fixed variance");
        tg_tape_free(t);
        tiny_free(&s);
    }
}

Test(models, sampling_from_the_prior) {
    tg_vae_config c = tiny_config(2);
    c.classes = TK, c.prior = TG_PRIOR_LEARNED;
    tiny s = tiny_new(c, 6);
    tg_tape *t = tg_tape_new();
    bool prev = tg_no_grad(t);
    tg_rng r = tg_rng_seed(3);
    tg_var *img = tg_vae_model_sample(t, &s.m, TB, s.labels, &r);
    cr_expect(tg_shape_eq(img->val.shape, TG_SHAPE(TB, TD)));
    tg_var *mp, *lp;
    tg_vae_model_prior(t, &s.m, TB, s.labels, &mp, &lp);
    tg_var *at_mean = tg_vae_model_sample_mean(t, &s.m, TB, s.labels);
    tg_var *dec = tg_vae_model_decode(t, &s.m, mp, s.labels);
    for (int i = 0; i < TB * TD; i++) expect_near(tg_tensor_get(&at_mean->val, i), tg_tensor_get(&dec->val, i), 0, "mean");
    /* The same draw by hand: z = mu_p + exp(logvar_p / 2) eps, with eps from the same seed. */
    tg_rng r2 = tg_rng_seed(3);
    tg_tensor *z = tg_tensor_new(tg_tape_arena(t), TG_F64, TG_SHAPE(TB, TL));
    tg_tensor *eps = tg_tensor_normal(tg_tape_arena(t), TG_F64, TG_SHAPE(TB, TL), &r2);
    for (int i = 0; i < TB * TL; i++)
        tg_tensor_set(z, i, tg_tensor_get(&mp->val, i) + exp(0.5 * tg_tensor_get(&lp->val, i)) * tg_tensor_get(eps, i));
    tg_var *dz = tg_vae_model_decode(t, &s.m, tg_leaf(t, z, false), s.labels);
    for (int i = 0; i < TB * TD; i++) expect_near(tg_tensor_get(&img->val, i), tg_tensor_get(&dz->val, i), 1e-12, "sample");
    /* Rows with the same label share the prior. */
    tg_tensor *same = tg_tensor_full(tg_tape_arena(t), TG_F64, TG_SHAPE(2), 2.0);
    tg_var *two = tg_vae_model_sample_mean(t, &s.m, 2, same);
    for (int d = 0; d < TD; d++) expect_near(tg_tensor_get(&two->val, d), tg_tensor_get(&two->val, TD + d), 0, "same label");
    tg_set_grad(t, prev);
    tg_tape_free(t);
    tiny_free(&s);

    tiny u = tiny_new(tiny_config(1), 6);   /* unconditional: the prior mean is z = 0 */
    t = tg_tape_new();
    tg_var *m0 = tg_vae_model_sample_mean(t, &u.m, 2, NULL);
    tg_var *d0 = tg_vae_model_decode(t, &u.m, tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_F64, TG_SHAPE(2, TL)), false), NULL);
    for (int i = 0; i < 2 * TD; i++) expect_near(tg_tensor_get(&m0->val, i), tg_tensor_get(&d0->val, i), 0, "z = 0");
    tg_tape_free(t);
    tiny_free(&u);
}

/* ================================================================ evaluation */

Test(models, logsumexp_is_stable) {
    double v[] = {-1e4, -1e4 + log(3.0), -1e4};
    expect_near(tg_logsumexp(v, 3), -1e4 + log(5.0), 1e-9, "around -1e4");
    double w[] = {1000, 1000};
    expect_near(tg_logsumexp(w, 2), 1000 + log(2.0), 1e-12, "around +1000");
    double x[] = {-INFINITY, -2.0};
    expect_near(tg_logsumexp(x, 2), -2.0, 0, "with -inf");
    double y[] = {-INFINITY, -INFINITY};
    cr_expect(tg_logsumexp(y, 2) == -INFINITY);
    cr_expect(tg_logsumexp(v, 0) == -INFINITY);
}

static tg_vae_config eval_config(int which) {
    tg_vae_config c = tiny_config(1);
    if (which == 1) c.lik = TG_LIK_GAUSSIAN, c.gauss_learn_logvar = true;
    if (which == 2) c.classes = TK, c.prior = TG_PRIOR_LEARNED;
    if (which == 3) c.classes = TK;
    return c;
}

static const char *eval_name[] = {"VAE Bernoulli", "VAE Gaussian", "CVAE learned prior", "CVAE standard prior"};

Test(models, log_weight_equals_minus_recon_minus_log_q_plus_log_p) {
    for (int which = 0; which < 4; which++) {
        tiny s = tiny_new(eval_config(which), 21);
        tg_tape *t = tg_tape_new();
        tg_rng r = tg_rng_seed(8);
        tg_tensor *eps = tg_tensor_normal(s.a, TG_F64, TG_SHAPE(TB, TL), &r);
        double lw[TB];
        tg_vae_model_log_weight(&s.m, s.x, s.labels, eps, lw);
        for (int i = 0; i < TB; i++) {   /* one image at a time through the training forward */
            tg_tensor *xi = tg_tensor_from(s.a, TG_F64, TG_SHAPE(1, TD), TG_F64P(s.x) + i * TD, TG_F64);
            tg_tensor *ei = tg_tensor_from(s.a, TG_F64, TG_SHAPE(1, TL), TG_F64P(eps) + i * TL, TG_F64);
            tg_tensor *li = s.labels ? tg_tensor_from(s.a, TG_F64, TG_SHAPE(1), TG_F64P(s.labels) + i, TG_F64) : NULL;
            tg_vae_model_out o = tg_vae_model_forward(t, &s.m, tg_leaf(t, xi, false), li, ei, NULL, 1.0);
            double logq = 0, logp = 0;
            for (int l = 0; l < TL; l++) {
                double z = tg_tensor_get(&o.z->val, l), mu = tg_tensor_get(&o.mu->val, l);
                double lv = tg_tensor_get(&o.logvar->val, l);
                double mp = o.mu_p ? tg_tensor_get(&o.mu_p->val, l) : 0, lp = o.logvar_p ? tg_tensor_get(&o.logvar_p->val, l) : 0;
                logq += -0.5 * (LOG_2PI + lv + (z - mu) * (z - mu) / exp(lv));
                logp += -0.5 * (LOG_2PI + lp + (z - mp) * (z - mp) / exp(lp));
            }
            double want = -scalar(o.recon) - (logq - logp);
            cr_expect(fabs(lw[i] - want) <= 1e-10 * fmax(1, fabs(want)), "%s image %d: log w %.12g, want %.12g",
                      eval_name[which], i, lw[i], want);
        }
        tg_tape_free(t);
        tiny_free(&s);
    }
}

/* The float32 Bernoulli log-likelihood has its own vectorised loop: it agrees
 * with the float64 path on the same parameters, for a size that is not a
 * multiple of its blocks of 256 and lanes of 8, and the same any thread count. */
Test(models, log_weight_float32_matches_float64) {
    enum { B = 7, D = 300, L = 3 };
    int64_t h[] = {16};
    tg_vae_config c = tg_vae_config_new(D, 1, h, L);
    tg_params *p32 = tg_params_new(TG_F32), *p64 = tg_params_new(TG_F64);
    tg_rng r = tg_rng_seed(5);
    tg_vae_model m32 = tg_vae_model_new(p32, &c, &r), m64 = tg_vae_model_new(p64, &c, &r);
    for (int64_t i = 0; i < p32->n; i++) ((double *)p64->data)[i] = ((float *)p32->data)[i];
    tg_arena *a = tg_arena_new();
    tg_tensor *x32 = tg_tensor_uniform(a, TG_F32, TG_SHAPE(B, D), 0, 1, &r);
    TG_F32P(x32)[0] = 0, TG_F32P(x32)[1] = 1;
    tg_tensor *x64 = tg_tensor_cast(a, x32, TG_F64);
    tg_tensor *eps = tg_tensor_normal(a, TG_F64, TG_SHAPE(B, L), &r);
    double lw32[B], lw64[B], lw32_1[B];
    tg_vae_model_log_weight(&m64, x64, NULL, eps, lw64);
    tg_vae_model_log_weight(&m32, x32, NULL, eps, lw32);
    tg_threads_set(1);
    tg_vae_model_log_weight(&m32, x32, NULL, eps, lw32_1);
    tg_threads_set(2);
    for (int i = 0; i < B; i++) {
        cr_expect(fabs(lw32[i] - lw64[i]) <= 1e-5 * fabs(lw64[i]), "image %d: float32 %.9g, float64 %.9g", i,
                  lw32[i], lw64[i]);
        cr_expect(lw32[i] == lw32_1[i], "image %d: 2 threads %.17g, 1 thread %.17g", i, lw32[i], lw32_1[i]);
    }
    tg_arena_free(a);
    tg_params_free(p32);
    tg_params_free(p64);
}

Test(models, iw_with_one_sample_is_the_log_weight_of_the_same_draw) {
    for (int which = 0; which < 4; which++) {
        tiny s = tiny_new(eval_config(which), 22);
        tg_rng r = tg_rng_seed(30);
        tg_tensor *eps = tg_tensor_new(s.a, TG_F64, TG_SHAPE(TB, TL));
        for (int i = 0; i < TB * TL; i++) tg_tensor_set(eps, i, tg_rng_normal(&r));   /* the order iw draws in */
        double lw[TB], iw[TB], iw_small[TB];
        tg_vae_model_log_weight(&s.m, s.x, s.labels, eps, lw);
        r = tg_rng_seed(30);
        tg_vae_model_iw_logpx(&s.m, s.x, s.labels, 1, 0, &r, iw);
        r = tg_rng_seed(30);
        tg_vae_model_iw_logpx(&s.m, s.x, s.labels, 1, 3, &r, iw_small);   /* chunks of 3 pairs */
        for (int i = 0; i < TB; i++) {
            cr_expect(fabs(iw[i] - lw[i]) <= 1e-12 * fabs(lw[i]), "%s: iw %.15g vs log w %.15g", eval_name[which], iw[i], lw[i]);
            cr_expect(fabs(iw_small[i] - lw[i]) <= 1e-12 * fabs(lw[i]), "%s: chunked iw %.15g vs %.15g", eval_name[which],
                      iw_small[i], lw[i]);
        }
        tiny_free(&s);
    }
}

/* With K > 1 samples the running log-sum-exp must equal tg_logsumexp over the
 * log weights of the same draws, whatever the chunking; here also with log
 * weights around -1e5 (a Gaussian with variance e^-8), where exp underflows. */
Test(models, iw_equals_logsumexp_of_the_same_draws_for_any_chunking) {
    for (int which = 0; which < 5; which++) {
        tg_vae_config c = eval_config(which < 4 ? which : 1);
        if (which == 4) c.gauss_learn_logvar = false, c.gauss_logvar = -8;
        tiny s = tiny_new(c, 25);
        if (which == 4) tg_tensor_fill(s.x, 40.0);   /* far from every mean */
        enum { K = 5 };
        tg_rng r = tg_rng_seed(31);
        tg_tensor *eps = tg_tensor_new(s.a, TG_F64, TG_SHAPE(TB * K, TL));
        tg_tensor *xs = tg_tensor_new(s.a, TG_F64, TG_SHAPE(TB * K, TD));
        tg_tensor *ls = s.labels ? tg_tensor_new(s.a, TG_F64, TG_SHAPE(TB * K)) : NULL;
        for (int p = 0; p < TB * K; p++) {
            for (int l = 0; l < TL; l++) tg_tensor_set(eps, p * TL + l, tg_rng_normal(&r));
            memcpy(TG_F64P(xs) + p * TD, TG_F64P(s.x) + (p / K) * TD, TD * sizeof(double));
            if (ls) tg_tensor_set(ls, p, tg_tensor_get(s.labels, p / K));
        }
        double lw[TB * K], want[TB];
        tg_vae_model_log_weight(&s.m, xs, ls, eps, lw);
        for (int i = 0; i < TB; i++) want[i] = tg_logsumexp(lw + i * K, K) - log((double)K);
        if (which == 4) cr_expect(lw[0] < -1e4, "log w %.6g is not as small as intended", lw[0]);
        int64_t chunks[] = {1, 3, 7, 0};
        for (int k = 0; k < 4; k++) {
            double iw[TB];
            r = tg_rng_seed(31);
            tg_vae_model_iw_logpx(&s.m, s.x, s.labels, K, chunks[k], &r, iw);
            for (int i = 0; i < TB; i++)
                cr_expect(isfinite(iw[i]) && fabs(iw[i] - want[i]) <= 1e-12 * fabs(want[i]),
                          "case %d chunk %lld image %d: iw %.15g, want %.15g", which, (long long)chunks[k], i, iw[i], want[i]);
        }
        tiny_free(&s);
    }
}

Test(models, iw_bound_is_finite_and_above_the_elbo_on_average) {
    for (int which = 0; which < 3; which++) {
        tiny s = tiny_new(eval_config(which), 23);
        enum { N_ELBO = 4000, K = 64, REPS = 40 };
        /* Mean single-sample ELBO per image from many draws. */
        tg_tensor *xs = tg_tensor_new(s.a, TG_F64, TG_SHAPE(N_ELBO, TD));
        tg_tensor *ls = s.labels ? tg_tensor_new(s.a, TG_F64, TG_SHAPE(N_ELBO)) : NULL;
        for (int n = 0; n < N_ELBO; n++) {
            memcpy(TG_F64P(xs) + n * TD, TG_F64P(s.x) + (n % TB) * TD, TD * sizeof(double));
            if (ls) tg_tensor_set(ls, n, tg_tensor_get(s.labels, n % TB));
        }
        tg_rng r = tg_rng_seed(40);
        tg_tensor *eps = tg_tensor_normal(s.a, TG_F64, TG_SHAPE(N_ELBO, TL), &r);
        static double lw[N_ELBO];
        tg_vae_model_log_weight(&s.m, xs, ls, eps, lw);
        double elbo[TB] = {0}, iw[TB] = {0}, one[TB];
        for (int n = 0; n < N_ELBO; n++) elbo[n % TB] += lw[n] / (N_ELBO / TB);
        for (int rep = 0; rep < REPS; rep++) {
            tg_vae_model_iw_logpx(&s.m, s.x, s.labels, K, 50, &r, one);
            for (int i = 0; i < TB; i++) {
                cr_assert(isfinite(one[i]), "%s: iw not finite", eval_name[which]);
                iw[i] += one[i] / REPS;
            }
        }
        for (int i = 0; i < TB; i++)
            cr_expect(iw[i] >= elbo[i], "%s image %d: mean IW-%d %.6f below mean ELBO %.6f", eval_name[which], i, K, iw[i],
                      elbo[i]);
        tiny_free(&s);
    }
}

Test(models, iw_in_float32_agrees_with_float64) {
    tiny s = tiny_new(eval_config(0), 24);
    tg_params *p32 = tg_params_new(TG_F32);
    tg_rng r0 = tg_rng_seed(1);
    tg_vae_config c = eval_config(0);
    tg_vae_model m32 = tg_vae_model_new(p32, &c, &r0);
    for (int i = 0; i < p32->count; i++)
        for (int64_t k = 0; k < p32->vars[i]->val.numel; k++)
            tg_tensor_set(&p32->vars[i]->val, k, tg_tensor_get(&s.ps->vars[i]->val, k));
    double a[TB], b[TB];
    tg_rng r = tg_rng_seed(5);
    tg_vae_model_iw_logpx(&s.m, s.x, NULL, 100, 0, &r, a);
    r = tg_rng_seed(5);
    tg_vae_model_iw_logpx(&m32, s.x, NULL, 100, 0, &r, b);
    for (int i = 0; i < TB; i++) expect_near(b[i], a[i], 1e-4 * fabs(a[i]), "float32 vs float64");
    tg_params_free(p32);
    tiny_free(&s);
}

Test(models, active_units_on_synthetic_batches) {
    /* Dims with std 0, 0.05, 0.5 (variances 0, 0.0025, 0.25) around large
     * means, fed in uneven batches: exactly one exceeds 0.01. */
    enum { N = 3000 };
    static const double stdev[3] = {0, 0.05, 0.5}, mean[3] = {1e8, -1e8, 3e7};
    tg_arena *a = tg_arena_new();
    tg_rng r = tg_rng_seed(77);
    tg_tensor *all = tg_tensor_new(a, TG_F64, TG_SHAPE(N, 3));
    for (int i = 0; i < N; i++)
        for (int l = 0; l < 3; l++) tg_tensor_set(all, i * 3 + l, mean[l] + stdev[l] * tg_rng_normal(&r));
    tg_active_units *au = tg_active_units_new(3);
    int64_t sizes[] = {1, 999, 7, 1993}, at = 0;
    for (int k = 0; k < 4; k++) {
        tg_tensor part = tg_tensor_wrap(TG_F64, TG_SHAPE(sizes[k], 3), TG_F64P(all) + at * 3);
        tg_active_units_add(au, &part);
        at += sizes[k];
    }
    cr_assert_eq(at, N);
    double var[3];
    cr_expect_eq(tg_active_units_count(au, 0.01, var), 1);
    for (int l = 0; l < 3; l++) {   /* exact two-pass variance over all rows */
        double m = 0, ss = 0;
        for (int i = 0; i < N; i++) m += tg_tensor_get(all, i * 3 + l);
        m /= N;
        for (int i = 0; i < N; i++) ss += pow(tg_tensor_get(all, i * 3 + l) - m, 2);
        double want = ss / (N - 1);
        cr_expect(fabs(var[l] - want) <= 1e-6 * want + 1e-12, "dim %d: variance %.9g, want %.9g", l, var[l], want);
    }
    cr_expect(fabs(var[1] - 0.0025) < 0.0003 && fabs(var[2] - 0.25) < 0.03);
    tg_active_units_free(au);
    tg_arena_free(a);
}
