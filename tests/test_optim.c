/*
 * test_optim.c — Adam and SGD (optim/optim.h) against independent
 * double-precision implementations of the published updates, and Adam on a
 * quadratic built with autograd ops.
 *
 * Suite "optim"; every helper is static: all test files link into one binary.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "optim/optim.h"

enum { OPT_N = 17 };   /* scalars in the test parameter block: a (3, 4) and b (5) */

static const tg_dtype opt_dtypes[2] = {TG_F32, TG_F64};

/* A params block with two parameters, values drawn from r. */
static tg_params *opt_params(tg_dtype dt, tg_rng *r) {
    tg_params *ps = tg_params_new(dt);
    tg_var *a = tg_params_add(ps, "a", TG_SHAPE(3, 4));
    tg_var *b = tg_params_add(ps, "b", TG_SHAPE(5));
    tg_tensor_fill_uniform(&a->val, -2, 2, r);
    tg_tensor_fill_uniform(&b->val, -2, 2, r);
    cr_assert_eq(ps->n, OPT_N);
    return ps;
}

static double opt_get(const tg_params *ps, const void *block, int64_t i) {
    return ps->dtype == TG_F32 ? (double)((const float *)block)[i] : ((const double *)block)[i];
}

static void opt_set(const tg_params *ps, void *block, int64_t i, double v) {
    if (ps->dtype == TG_F32) ((float *)block)[i] = (float)v;
    else ((double *)block)[i] = v;
}

/* Gradients for one step: different every step, a few fixed special cases. */
static void opt_fill_grad(tg_params *ps, tg_rng *r, int step) {
    for (int64_t i = 0; i < ps->n; i++) opt_set(ps, ps->grad, i, 3 * tg_rng_normal(r));
    opt_set(ps, ps->grad, 0, 0.0);                          /* always zero */
    opt_set(ps, ps->grad, 1, 1000.0 * (step % 2 ? 1 : -1));  /* large, flipping sign */
    opt_set(ps, ps->grad, 2, 1e-3);                         /* small, constant */
}

/* Compares got with the double reference want. Rounding errors are relative
 * to the size of the terms that were added, not of the result (p - lr g can
 * cancel to near 0), so the tolerance scales with mag: the same recurrence
 * run on absolute values, which the references track. float32: each step
 * rounds a few times (~6e-8 each), so 1e-6 relative to mag over 8 steps;
 * float64 agrees to rounding. */
static void opt_close(const tg_params *ps, double got, double want, double mag, const char *what, int step, int64_t i) {
    double rtol = ps->dtype == TG_F32 ? 1e-6 : 1e-12;
    cr_assert(fabs(got - want) <= rtol * (fabs(want) + mag), "%s (%s) step %d element %lld: got %.10g want %.10g "
              "(terms of size %.3g)", what, tg_dtype_name(ps->dtype), step, (long long)i, got, want, mag);
}

/* ================================================================ Adam */

typedef struct {
    double lr, beta1, beta2, eps, wd;
} opt_adam_cfg;

/* Adam as published (Kingma & Ba, Algorithm 1) with torch.optim.Adam's L2
 * weight decay added to the gradient; all in double. pm, mm: magnitudes of
 * the terms summed into p and m (see opt_close). */
typedef struct {
    double p[OPT_N], m[OPT_N], v[OPT_N];
    double pm[OPT_N], mm[OPT_N];
} opt_adam_ref;

static void ref_adam_step(const opt_adam_cfg *c, int t, opt_adam_ref *s, const double *grad) {
    double bc1 = 1 - pow(c->beta1, t), bc2 = 1 - pow(c->beta2, t);
    for (int i = 0; i < OPT_N; i++) {
        double g = grad[i] + c->wd * s->p[i], gm = fabs(grad[i]) + c->wd * s->pm[i];
        s->m[i] = c->beta1 * s->m[i] + (1 - c->beta1) * g;
        s->v[i] = c->beta2 * s->v[i] + (1 - c->beta2) * g * g;
        double mhat = s->m[i] / bc1, vhat = s->v[i] / bc2;
        s->p[i] -= c->lr * mhat / (sqrt(vhat) + c->eps);
        s->mm[i] = c->beta1 * s->mm[i] + (1 - c->beta1) * gm;
        s->pm[i] += c->lr * (s->mm[i] / bc1) / (sqrt(vhat) + c->eps);
    }
}

static void opt_run_adam(tg_dtype dt, const opt_adam_cfg *c, bool set_hyper) {
    tg_rng r = tg_rng_seed(dt == TG_F32 ? 1 : 2);
    tg_params *ps = opt_params(dt, &r);
    tg_adam *opt = tg_adam_new(ps, c->lr);
    cr_assert_eq(opt->step, 0);
    cr_assert_eq(opt->lr, c->lr);
    if (set_hyper) {
        opt->beta1 = c->beta1, opt->beta2 = c->beta2, opt->eps = c->eps;
    } else {
        cr_assert(opt->beta1 == 0.9 && opt->beta2 == 0.999 && opt->eps == 1e-8, "defaults as torch.optim.Adam");
    }
    cr_assert_eq(opt->weight_decay, 0.0, "no weight decay by default");
    opt->weight_decay = c->wd;

    opt_adam_ref ref;
    memset(&ref, 0, sizeof ref);
    double g[OPT_N];
    for (int i = 0; i < OPT_N; i++) ref.p[i] = opt_get(ps, ps->data, i), ref.pm[i] = fabs(ref.p[i]);  /* stored start */
    double p0 = ref.p[0];
    for (int step = 1; step <= 8; step++) {
        opt_fill_grad(ps, &r, step);
        for (int i = 0; i < OPT_N; i++) g[i] = opt_get(ps, ps->grad, i);
        tg_adam_step(opt);
        ref_adam_step(c, step, &ref, g);
        cr_assert_eq(opt->step, step);
        for (int i = 0; i < OPT_N; i++) {
            opt_close(ps, opt_get(ps, ps->data, i), ref.p[i], ref.pm[i], "adam p", step, i);
            opt_close(ps, opt_get(ps, opt->m, i), ref.m[i], ref.mm[i], "adam m", step, i);
            opt_close(ps, opt_get(ps, opt->v, i), ref.v[i], 0, "adam v", step, i);   /* a sum of squares */
            cr_assert_eq(opt_get(ps, ps->grad, i), g[i], "the step must not change the gradient");
        }
    }
    /* Element 0 always had a zero gradient: only weight decay moves it. */
    if (c->wd != 0) cr_assert_neq(opt_get(ps, ps->data, 0), p0, "weight decay did not act");
    else cr_assert_eq(opt_get(ps, ps->data, 0), p0, "a zero gradient moved the parameter");
    tg_adam_free(opt);
    tg_params_free(ps);
}

Test(optim, adam_matches_reference) {
    opt_adam_cfg c = {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .wd = 0};
    for (int k = 0; k < 2; k++) opt_run_adam(opt_dtypes[k], &c, false);
}

Test(optim, adam_matches_reference_with_weight_decay) {
    opt_adam_cfg c = {.lr = 3e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .wd = 0.1};
    for (int k = 0; k < 2; k++) opt_run_adam(opt_dtypes[k], &c, false);
}

Test(optim, adam_matches_reference_with_other_hyperparameters) {
    opt_adam_cfg c = {.lr = 5e-3, .beta1 = 0.5, .beta2 = 0.9, .eps = 1e-3, .wd = 0.01};
    for (int k = 0; k < 2; k++) opt_run_adam(opt_dtypes[k], &c, true);
}

Test(optim, adam_first_step_moves_each_parameter_by_lr) {
    /* After one step m̂ = g and v̂ = g², so the update is lr g / (|g| + eps):
     * -lr sign(g) for |g| >> eps, 0 for g = 0. */
    tg_rng r = tg_rng_seed(3);
    tg_params *ps = opt_params(TG_F64, &r);
    double before[OPT_N];
    for (int i = 0; i < OPT_N; i++) before[i] = opt_get(ps, ps->data, i);
    opt_fill_grad(ps, &r, 1);
    tg_adam *opt = tg_adam_new(ps, 0.1);
    tg_adam_step(opt);
    for (int i = 0; i < OPT_N; i++) {
        double g = opt_get(ps, ps->grad, i), d = opt_get(ps, ps->data, i) - before[i];
        double want = g == 0 ? 0 : -0.1 * g / (fabs(g) + 1e-8);
        cr_assert(fabs(d - want) < 1e-12, "element %d: moved %g, want %g", i, d, want);
    }
    tg_adam_free(opt);
    tg_params_free(ps);
}

Test(optim, adam_on_empty_params) {
    tg_params *ps = tg_params_new(TG_F32);
    tg_adam *opt = tg_adam_new(ps, 1e-3);
    tg_adam_step(opt);
    cr_assert_eq(opt->step, 1);
    tg_adam_free(opt);
    tg_params_free(ps);
    tg_adam_free(NULL);
}

/* ================================================================ SGD */

typedef struct {
    double lr, momentum, dampening, wd;
    bool nesterov;
} opt_sgd_cfg;

/* torch.optim.SGD, as its documentation writes the update:
 *   g = grad + wd p
 *   if momentum: b = g at t = 1, else b = momentum b + (1 - dampening) g
 *                g = g + momentum b if nesterov, else b
 *   p = p - lr g */
static void ref_sgd_step(const opt_sgd_cfg *c, int t, double *p, const double *grad, double *b, double *pm,
                         double *bm) {
    for (int i = 0; i < OPT_N; i++) {
        double g = grad[i] + c->wd * p[i], gm = fabs(grad[i]) + c->wd * pm[i];
        if (c->momentum != 0) {
            b[i] = t == 1 ? g : c->momentum * b[i] + (1 - c->dampening) * g;
            bm[i] = t == 1 ? gm : c->momentum * bm[i] + (1 - c->dampening) * gm;
            g = c->nesterov ? g + c->momentum * b[i] : b[i];
            gm = c->nesterov ? gm + c->momentum * bm[i] : bm[i];
        }
        p[i] -= c->lr * g;
        pm[i] += c->lr * gm;
    }
}

static void opt_run_sgd(tg_dtype dt, const opt_sgd_cfg *c) {
    tg_rng r = tg_rng_seed(dt == TG_F32 ? 10 : 20);
    tg_params *ps = opt_params(dt, &r);
    tg_sgd *opt = tg_sgd_new(ps, c->lr, c->momentum);
    cr_assert(opt->dampening == 0 && opt->weight_decay == 0 && !opt->nesterov, "defaults as torch.optim.SGD");
    opt->dampening = c->dampening, opt->weight_decay = c->wd, opt->nesterov = c->nesterov;

    double p[OPT_N], g[OPT_N], b[OPT_N] = {0}, pm[OPT_N], bm[OPT_N] = {0};
    for (int i = 0; i < OPT_N; i++) p[i] = opt_get(ps, ps->data, i), pm[i] = fabs(p[i]);
    for (int step = 1; step <= 8; step++) {
        opt_fill_grad(ps, &r, step);
        for (int i = 0; i < OPT_N; i++) g[i] = opt_get(ps, ps->grad, i);
        double p_before[OPT_N];
        for (int i = 0; i < OPT_N; i++) p_before[i] = p[i];
        tg_sgd_step(opt);
        ref_sgd_step(c, step, p, g, b, pm, bm);
        for (int i = 0; i < OPT_N; i++) {
            opt_close(ps, opt_get(ps, ps->data, i), p[i], pm[i], "sgd p", step, i);
            cr_assert_eq(opt_get(ps, ps->grad, i), g[i], "the step must not change the gradient");
            if (c->momentum != 0) {
                opt_close(ps, opt_get(ps, opt->buf, i), b[i], bm[i], "sgd buf", step, i);
                if (step == 1)   /* the first buffer is the (decayed) gradient itself, undamped */
                    opt_close(ps, opt_get(ps, opt->buf, i), g[i] + c->wd * p_before[i], bm[i], "sgd first buf",
                              step, i);
            }
        }
    }
    tg_sgd_free(opt);
    tg_params_free(ps);
}

Test(optim, sgd_plain) {
    opt_sgd_cfg c = {.lr = 0.1};
    for (int k = 0; k < 2; k++) opt_run_sgd(opt_dtypes[k], &c);
}

Test(optim, sgd_plain_weight_decay) {
    opt_sgd_cfg c = {.lr = 0.05, .wd = 0.1};
    for (int k = 0; k < 2; k++) opt_run_sgd(opt_dtypes[k], &c);
}

Test(optim, sgd_momentum) {
    opt_sgd_cfg c = {.lr = 0.01, .momentum = 0.9};
    for (int k = 0; k < 2; k++) opt_run_sgd(opt_dtypes[k], &c);
}

Test(optim, sgd_momentum_dampening) {
    opt_sgd_cfg c = {.lr = 0.01, .momentum = 0.9, .dampening = 0.1};
    for (int k = 0; k < 2; k++) opt_run_sgd(opt_dtypes[k], &c);
}

Test(optim, sgd_nesterov) {
    opt_sgd_cfg c = {.lr = 0.01, .momentum = 0.9, .nesterov = true};
    for (int k = 0; k < 2; k++) opt_run_sgd(opt_dtypes[k], &c);
}

Test(optim, sgd_nesterov_weight_decay) {
    opt_sgd_cfg c = {.lr = 0.02, .momentum = 0.8, .wd = 0.01, .nesterov = true};
    for (int k = 0; k < 2; k++) opt_run_sgd(opt_dtypes[k], &c);
}

Test(optim, sgd_everything_but_nesterov) {
    opt_sgd_cfg c = {.lr = 0.03, .momentum = 0.5, .dampening = 0.3, .wd = 0.05};
    for (int k = 0; k < 2; k++) opt_run_sgd(opt_dtypes[k], &c);
}

Test(optim, sgd_hand_worked_momentum) {
    /* One scalar, lr 0.1, momentum 0.9, gradients 1, 1, 1:
     * buffers 1, 1.9, 2.71; p = 0 - 0.1 - 0.19 - 0.271 = -0.561. */
    tg_params *ps = tg_params_new(TG_F64);
    tg_var *w = tg_params_add(ps, "w", TG_SHAPE(1));
    tg_sgd *opt = tg_sgd_new(ps, 0.1, 0.9);
    const double bufs[3] = {1, 1.9, 2.71}, ps_[3] = {-0.1, -0.29, -0.561};
    for (int s = 0; s < 3; s++) {
        TG_F64P(&w->grad)[0] = 1;
        tg_sgd_step(opt);
        cr_assert(fabs(((double *)opt->buf)[0] - bufs[s]) < 1e-12, "step %d buf %g", s + 1, ((double *)opt->buf)[0]);
        cr_assert(fabs(TG_F64P(&w->val)[0] - ps_[s]) < 1e-12, "step %d p %g", s + 1, TG_F64P(&w->val)[0]);
    }
    tg_sgd_free(opt);
    tg_params_free(ps);
    tg_sgd_free(NULL);
}

/* ================================================================ minimising */

/* f(p) = sum((p - c)^2) with autograd ops; returns the final max |p - c|. */
static double opt_minimise(tg_dtype dt, bool use_adam, int steps, double lr) {
    enum { D = 6 };
    const double c[D] = {1.5, -2.0, 0.25, 3.0, -0.75, 0.0};
    tg_params *ps = tg_params_new(dt);
    tg_var *p = tg_params_add(ps, "p", TG_SHAPE(2, 3));
    tg_rng r = tg_rng_seed(77);
    tg_tensor_fill_normal(&p->val, &r);
    tg_adam *adam = use_adam ? tg_adam_new(ps, lr) : NULL;
    tg_sgd *sgd = use_adam ? NULL : tg_sgd_new(ps, lr, 0.9);
    tg_tape *t = tg_tape_new();
    double first_loss = 0, loss_v = 0;
    for (int s = 0; s < steps; s++) {
        tg_params_zero_grad(ps);
        tg_var *cv = tg_leaf(t, tg_tensor_from(tg_tape_arena(t), dt, TG_SHAPE(2, 3), c, TG_F64), false);
        tg_var *loss = tg_sum(t, tg_square(t, tg_sub(t, p, cv)));
        loss_v = tg_tensor_get(&loss->val, 0);
        if (s == 0) first_loss = loss_v;
        tg_backward(t, loss);
        if (adam) tg_adam_step(adam);
        else tg_sgd_step(sgd);
        tg_tape_reset(t);
    }
    cr_assert_lt(loss_v, first_loss, "the loss went down");
    double worst = 0;
    for (int i = 0; i < D; i++) worst = fmax(worst, fabs(tg_tensor_get(&p->val, i) - c[i]));
    tg_tape_free(t);
    tg_adam_free(adam);
    tg_sgd_free(sgd);
    tg_params_free(ps);
    return worst;
}

Test(optim, adam_minimises_a_quadratic) {
    for (int k = 0; k < 2; k++) {
        double err = opt_minimise(opt_dtypes[k], true, 3000, 0.01);
        cr_assert_lt(err, 1e-3, "%s: max |p - c| = %g after 3000 Adam steps", tg_dtype_name(opt_dtypes[k]), err);
    }
}

Test(optim, sgd_momentum_minimises_a_quadratic) {
    for (int k = 0; k < 2; k++) {
        double err = opt_minimise(opt_dtypes[k], false, 500, 0.05);
        cr_assert_lt(err, 1e-4, "%s: max |p - c| = %g after 500 SGD steps", tg_dtype_name(opt_dtypes[k]), err);
    }
}

/* ---------------------------------------------------------------- AdamW, clipping, schedules
 * Expected values printed by PyTorch 1.13 in float64 (torch.optim.AdamW,
 * torch.nn.utils.clip_grad_norm_, StepLR, CosineAnnealingLR, LinearLR) for
 * exactly these inputs; the script is in the comment of each test. */

/* p = [1, -2, 0.5, 3]; AdamW(lr=0.1, weight_decay=0.05); three steps with the grads below. */
Test(optim, adamw_matches_pytorch) {
    tg_params *ps = tg_params_new(TG_F64);
    tg_var *p = tg_params_add(ps, "p", TG_SHAPE(4));
    const double p0[] = {1.0, -2.0, 0.5, 3.0}, grads[3][4] = {{0.3, -0.1, 2.0, 0.0}, {-1.0, 0.5, 0.25, 4.0},
                                                                {0.7, 0.7, -0.3, -2.0}};
    const double want[] = {0.9356592565147374, -2.0095512404629376, 0.2697104521518262, 2.8583189738291517};
    for (int i = 0; i < 4; i++) tg_tensor_set(&p->val, i, p0[i]);
    tg_adam *opt = tg_adamw_new(ps, 0.1, 0.05);
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < 4; i++) tg_tensor_set(&p->grad, i, grads[s][i]);
        tg_adam_step(opt);
    }
    for (int i = 0; i < 4; i++)
        cr_expect(fabs(tg_tensor_get(&p->val, i) - want[i]) < 1e-14, "p[%d] = %.17g, PyTorch %.17g", i,
                  tg_tensor_get(&p->val, i), want[i]);
    tg_adam_free(opt);
    tg_params_free(ps);
}

/* grads [3, 4, 12] (norm 13), clip_grad_norm_(max_norm=6.5). */
Test(optim, clip_grad_norm_matches_pytorch) {
    tg_params *ps = tg_params_new(TG_F64);
    tg_var *a = tg_params_add(ps, "a", TG_SHAPE(2)), *b = tg_params_add(ps, "b", TG_SHAPE(1));
    tg_tensor_set(&a->grad, 0, 3), tg_tensor_set(&a->grad, 1, 4), tg_tensor_set(&b->grad, 0, 12);
    cr_expect_eq(tg_params_clip_grad_norm(ps, 100), 13.0, "norm");
    cr_expect(tg_tensor_get(&a->grad, 0) == 3 && tg_tensor_get(&b->grad, 0) == 12, "below max_norm: unchanged");
    cr_expect_eq(tg_params_clip_grad_norm(ps, 6.5), 13.0, "the norm before clipping");
    const double want[] = {1.4999998846153937, 1.9999998461538582, 5.999999538461575};
    double got[] = {tg_tensor_get(&a->grad, 0), tg_tensor_get(&a->grad, 1), tg_tensor_get(&b->grad, 0)};
    for (int i = 0; i < 3; i++) cr_expect(fabs(got[i] - want[i]) < 1e-15, "grad %d = %.17g, PyTorch %.17g", i, got[i], want[i]);
    tg_params_free(ps);
}

/* lr 0.1: StepLR(step_size=3, gamma=0.5), CosineAnnealingLR(T_max=5, eta_min=0.01),
 * LinearLR(start_factor=0.25, total_iters=4), the rate before each step. */
Test(optim, lr_schedules_match_pytorch) {
    const double step[] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025};
    const double cosine[] = {0.1, 0.09140576474687263, 0.06890576474687263, 0.04109423525312736,
                             0.018594235253127367, 0.01};
    const double linear[] = {0.025, 0.043750000000000004, 0.06250000000000001, 0.08125000000000002,
                             0.10000000000000002, 0.10000000000000002};
    for (int t = 0; t < 8; t++) cr_expect(fabs(tg_lr_step(0.1, t, 3, 0.5) - step[t]) < 1e-17, "step %d", t);
    for (int t = 0; t < 6; t++)
        cr_expect(fabs(tg_lr_cosine(0.1, t, 5, 0.01) - cosine[t]) < 1e-15, "cosine %d: %.17g", t,
                  tg_lr_cosine(0.1, t, 5, 0.01));
    for (int t = 0; t < 6; t++)
        cr_expect(fabs(tg_lr_linear(0.1, t, 0.25, 1.0, 4) - linear[t]) < 1e-15, "linear %d", t);
}

/* Subnormal values are flushed to zero during an Adam step (x86): a first
 * moment 0.1 g below float32's normal range (g = 1e-37) and a second moment
 * 0.001 g^2 below it (g = 1e-20) are stored as 0, and so is a subnormal
 * moment decaying under g = 0; their parameters move as the formula says
 * with those zeros. Normal values are untouched, and the caller's
 * floating-point mode is the same after the step (a subnormal product is
 * not flushed). float64 likewise with g = 1e-170 (g^2 below 2^-1022). */
Test(optim, adam_flushes_subnormals_and_restores_the_mode) {
#if defined(__x86_64__) || (defined(__i386__) && defined(__SSE2__))
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = opt_dtypes[d];
        tg_rng r = tg_rng_seed(5);
        tg_params *ps = opt_params(dt, &r);
        double tiny_m = dt == TG_F32 ? 1e-37 : 1e-308, tiny_v = dt == TG_F32 ? 1e-20 : 1e-170;
        double sub = dt == TG_F32 ? 1e-39 : 1e-310;   /* a subnormal of the dtype */
        double before[OPT_N];
        for (int i = 0; i < OPT_N; i++) before[i] = opt_get(ps, ps->data, i), opt_set(ps, ps->grad, i, 0.5);
        opt_set(ps, ps->grad, 0, tiny_m);   /* 0.1 g subnormal: m, v flushed */
        opt_set(ps, ps->grad, 1, tiny_v);   /* 0.001 g^2 subnormal: v flushed, m = 0.1 g kept */
        opt_set(ps, ps->grad, 2, 0.0);      /* m starts subnormal, g = 0 */
        tg_adam *opt = tg_adam_new(ps, 1e-3);
        opt_set(ps, opt->m, 2, sub);
        cr_assert(opt_get(ps, opt->m, 2) != 0, "the test's subnormal is representable");
        tg_adam_step(opt);
        cr_expect_eq(opt_get(ps, opt->m, 0), 0.0, "%s: m of g = %g", tg_dtype_name(dt), tiny_m);
        cr_expect_eq(opt_get(ps, opt->v, 0), 0.0, "%s: v of g = %g", tg_dtype_name(dt), tiny_m);
        cr_expect_eq(opt_get(ps, ps->data, 0), before[0], "%s: p of g = %g moved", tg_dtype_name(dt), tiny_m);
        cr_expect_eq(opt_get(ps, opt->v, 1), 0.0, "%s: v of g = %g", tg_dtype_name(dt), tiny_v);
        double m1 = opt_get(ps, opt->m, 1);
        cr_expect(fabs(m1 - 0.1 * tiny_v) <= 1e-6 * 0.1 * tiny_v, "%s: m of g = %g is %g", tg_dtype_name(dt), tiny_v,
                  m1);
        /* p -= lr / (1 - 0.9) m / (0 + eps) */
        double want1 = before[1] - 1e-3 / 0.1 * m1 / 1e-8;
        cr_expect(fabs(opt_get(ps, ps->data, 1) - want1) <= 1e-6 * fabs(want1), "%s: p of g = %g", tg_dtype_name(dt),
                  tiny_v);
        cr_expect_eq(opt_get(ps, opt->m, 2), 0.0, "%s: a subnormal m decaying under g = 0", tg_dtype_name(dt));
        for (int i = 3; i < OPT_N; i++)   /* normal values: the first step moves p by lr sign(g) */
            cr_expect(fabs(opt_get(ps, ps->data, i) - (before[i] - 1e-3)) < 1e-6, "%s: element %d",
                      tg_dtype_name(dt), i);
        tg_adam_free(opt);
        tg_params_free(ps);
    }
    volatile float a = 1e-30f, b = 1e-10f;
    volatile double c = 1e-300, e = 1e-10;
    cr_expect(a * b != 0.0f && c * e != 0.0, "the caller's mode flushes subnormals after the step");
#else
    cr_skip_test("subnormals are flushed on x86 only");
#endif
}
