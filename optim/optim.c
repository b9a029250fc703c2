/* optim.c — Adam and SGD with momentum, each one loop over the parameters. */
#include "optim/optim.h"

#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "tensor/kernels.h"

static void *zeroed(const tg_params *ps) {
    void *p = calloc((size_t)(ps->n ? ps->n : 1), tg_dtype_size(ps->dtype));
    TG_CHECK(p, "optimizer: out of memory for %lld parameters", (long long)ps->n);
    return p;
}

/* ---------------------------------------------------------------- groups */

static tg_param_groups groups_new(const tg_params *ps) {
    tg_param_groups gs = {.of = malloc(sizeof(int) * (size_t)(ps->count ? ps->count : 1))};
    TG_CHECK(gs.of, "optimizer: out of memory");
    for (int k = 0; k < ps->count; k++) gs.of[k] = -1;
    return gs;
}

static int groups_add(tg_param_groups *gs, const tg_params *ps, const char *who, const char *prefix, double lr,
                      double weight_decay) {
    size_t len = strlen(prefix);
    TG_CHECK(len > 0 && len < sizeof gs->g[0].prefix, "%s: prefix \"%s\" must have 1 to %zu characters", who, prefix,
             sizeof gs->g[0].prefix - 1);
    TG_CHECK(gs->n < TG_MAX_GROUPS, "%s: %d groups already", who, TG_MAX_GROUPS);
    int hits = 0;
    for (int k = 0; k < ps->count; k++) {
        if (strncmp(ps->vars[k]->name, prefix, len) != 0) continue;
        TG_CHECK(gs->of[k] < 0, "%s: parameter %s is already in the group of \"%s\"", who, ps->vars[k]->name,
                 gs->g[gs->of[k]].prefix);
        gs->of[k] = gs->n, hits++;
    }
    TG_CHECK(hits > 0, "%s: no parameter's name begins with \"%s\"", who, prefix);
    gs->g[gs->n] = (tg_param_group){.lr = lr, .weight_decay = weight_decay};
    memcpy(gs->g[gs->n].prefix, prefix, len + 1);
    return gs->n++;
}

/* Calls step(o, lo, n, lr, wd) on each run of consecutive parameters of one
 * group: scalars [lo, lo + n) of the flat block, with that group's rate and
 * decay (lr and wd for the default group). Without groups: one run of all. */
typedef void run_fn(void *o, int64_t lo, int64_t n, double lr, double wd);
static void for_each_run(const tg_param_groups *gs, const tg_params *ps, double lr, double wd, void *o, run_fn *step) {
    if (gs->n == 0) {
        step(o, 0, ps->n, lr, wd);
        return;
    }
    size_t es = tg_dtype_size(ps->dtype);
    for (int k = 0, j; k < ps->count; k = j) {
        int g = gs->of[k];
        for (j = k + 1; j < ps->count && gs->of[j] == g;) j++;
        int64_t lo = ((char *)ps->vars[k]->val.data - (char *)ps->data) / (int64_t)es;
        int64_t hi = ((char *)ps->vars[j - 1]->val.data - (char *)ps->data) / (int64_t)es + ps->vars[j - 1]->val.numel;
        step(o, lo, hi - lo, g < 0 ? lr : gs->g[g].lr, g < 0 ? wd : gs->g[g].weight_decay);
    }
}

/* A view of n scalars of buf (ps->dtype) from lo. */
static tg_tensor slice(const tg_params *ps, void *buf, int64_t lo, int64_t n) {
    return tg_tensor_wrap(ps->dtype, TG_SHAPE(n), (char *)buf + lo * (int64_t)tg_dtype_size(ps->dtype));
}

/* ---------------------------------------------------------------- Adam */

tg_adam *tg_adam_new(tg_params *ps, double lr) {
    tg_adam *o = calloc(1, sizeof *o);
    TG_CHECK(o, "tg_adam_new: out of memory");
    *o = (tg_adam){.ps = ps, .lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                   .m = zeroed(ps), .v = zeroed(ps), .groups = groups_new(ps)};
    return o;
}

int tg_adam_add_group(tg_adam *o, const char *prefix, double lr, double weight_decay) {
    return groups_add(&o->groups, o->ps, "tg_adam_add_group", prefix, lr, weight_decay);
}

/* The same sequence of operations as torch.optim.Adam's single-tensor path,
 * so float32 results agree with PyTorch's to rounding (subnormal values
 * are flushed to zero, as with torch.set_flush_denormal(True)). 1 - beta is formed in
 * double, then rounded (as PyTorch): in float, 1 - (float)0.999 is 1.3e-5 off
 * 0.001, which the double bias correction would not match. */
static void adam_run(void *opt, int64_t lo, int64_t n, double lr, double wd) {
    tg_adam *o = opt;
    double bc1 = 1 - pow(o->beta1, (double)o->step), bc2 = 1 - pow(o->beta2, (double)o->step);
    /* p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), m and v updated first (tensor/kernels.h) */
    tg_tensor p = slice(o->ps, o->ps->data, lo, n), g = slice(o->ps, o->ps->grad, lo, n),
              m = slice(o->ps, o->m, lo, n), v = slice(o->ps, o->v, lo, n);
    if (o->decoupled && wd != 0) tg_tensor_mul_scalar(&p, &p, 1 - lr * wd);   /* AdamW */
    tg_tensor_adam(&p, &g, &m, &v, o->beta1, o->beta2, lr / bc1, sqrt(bc2), o->eps, o->decoupled ? 0 : wd);
}

void tg_adam_step(tg_adam *o) {
    o->step++;
    for_each_run(&o->groups, o->ps, o->lr, o->weight_decay, o, adam_run);
}

tg_adam *tg_adamw_new(tg_params *ps, double lr, double weight_decay) {
    tg_adam *o = tg_adam_new(ps, lr);
    o->weight_decay = weight_decay, o->decoupled = true;
    return o;
}

void tg_adam_free(tg_adam *o) {
    if (o) free(o->m), free(o->v), free(o->groups.of), free(o);
}

/* ---------------------------------------------------------------- SGD */

tg_sgd *tg_sgd_new(tg_params *ps, double lr, double momentum) {
    tg_sgd *o = calloc(1, sizeof *o);
    TG_CHECK(o, "tg_sgd_new: out of memory");
    *o = (tg_sgd){.ps = ps, .lr = lr, .momentum = momentum, .buf = zeroed(ps), .groups = groups_new(ps)};
    return o;
}

int tg_sgd_add_group(tg_sgd *o, const char *prefix, double lr, double weight_decay) {
    return groups_add(&o->groups, o->ps, "tg_sgd_add_group", prefix, lr, weight_decay);
}

static void sgd_run(void *opt, int64_t lo, int64_t n, double lr_, double wd_) {
    tg_sgd *o = opt;
    TG_DISPATCH(o->ps->dtype, {
        T *p = (T *)o->ps->data + lo, *g = (T *)o->ps->grad + lo, *b = (T *)o->buf + lo;
        const T mom = (T)o->momentum, undamp = (T)(1 - o->dampening), wd = (T)wd_, lr = (T)lr_;
        for (int64_t i = 0; i < n; i++) {
            T gi = wd != 0 ? g[i] + wd * p[i] : g[i];
            if (mom != 0) {
                b[i] = o->step == 0 ? gi : b[i] * mom + gi * undamp;
                gi = o->nesterov ? gi + mom * b[i] : b[i];
            }
            p[i] -= lr * gi;
        }
    });
}

void tg_sgd_step(tg_sgd *o) {
    for_each_run(&o->groups, o->ps, o->lr, o->weight_decay, o, sgd_run);
    o->step++;
}

void tg_sgd_free(tg_sgd *o) {
    if (o) free(o->buf), free(o->groups.of), free(o);
}

/* ---------------------------------------------------------------- schedules */

double tg_lr_step(double base, int64_t t, int64_t step_size, double gamma) {
    TG_CHECK(t >= 0 && step_size >= 1, "tg_lr_step: t %lld, step_size %lld", (long long)t, (long long)step_size);
    return base * pow(gamma, (double)(t / step_size));
}

double tg_lr_cosine(double base, int64_t t, int64_t t_max, double eta_min) {
    TG_CHECK(t >= 0 && t <= t_max && t_max >= 1, "tg_lr_cosine: t %lld outside [0, t_max = %lld]", (long long)t,
             (long long)t_max);
    return eta_min + (base - eta_min) * (1 + cos(3.14159265358979323846 * (double)t / (double)t_max)) / 2;
}

double tg_lr_linear(double base, int64_t t, double start_factor, double end_factor, int64_t total) {
    TG_CHECK(t >= 0 && total >= 1, "tg_lr_linear: t %lld, total %lld", (long long)t, (long long)total);
    double f = (double)(t < total ? t : total) / (double)total;
    return base * (start_factor + (end_factor - start_factor) * f);
}
