/*
 * optim.h — optimizers over a tg_params block, as PyTorch's.
 *
 *     tg_adam *opt = tg_adam_new(ps, 1e-3);   // beta1 0.9, beta2 0.999, eps 1e-8
 *     ...per step: tg_params_zero_grad(ps); forward; tg_backward(t, loss); tg_adam_step(opt);
 *
 * Each step is one loop over the ps->n scalars of the flat parameter block.
 * State (moments, step count) is allocated once, at creation.
 */
#ifndef TG_OPTIM_H
#define TG_OPTIM_H

#include "nn/nn.h"

/* Parameter groups (PyTorch's param_groups): the parameters whose names
 * begin with a prefix take the group's own learning rate and weight decay;
 * every other parameter keeps the optimizer's lr and weight_decay. E.g. a
 * VQ-VAE's codebook at its own rate:
 *     tg_adam *opt = tg_adam_new(ps, 1e-3);
 *     int g = tg_adam_add_group(opt, "codebook", 1e-2, 0);
 *     opt->groups.g[g].lr = tg_lr_cosine(1e-2, epoch, epochs, 0);   // a schedule per group
 * Adding a group aborts if no parameter's name has the prefix, if one of them
 * is already in a group, or if TG_MAX_GROUPS groups exist. */
#define TG_MAX_GROUPS 8
typedef struct {
    char prefix[64];
    double lr, weight_decay;
} tg_param_group;

typedef struct {
    tg_param_group g[TG_MAX_GROUPS];
    int n;
    int *of;    /* (ps->count): -1 (the default) or the group of each parameter */
} tg_param_groups;

/* Adam (Kingma & Ba), bias-corrected, with optional L2 weight decay added to
 * the gradient (torch.optim.Adam, not AdamW):
 *   g = grad + wd p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
typedef struct {
    tg_params *ps;
    double lr, beta1, beta2, eps, weight_decay;
    bool decoupled;    /* AdamW: weight decay applied to p, not added to the gradient */
    int64_t step;      /* steps taken */
    void *m, *v;       /* (ps->n) first and second moments, ps->dtype */
    tg_param_groups groups;   /* parameters with their own lr and weight decay */
} tg_adam;

tg_adam *tg_adam_new(tg_params *ps, double lr);
/* AdamW (Loshchilov & Hutter, torch.optim.AdamW): decoupled weight decay,
 * p -= lr wd p, then the Adam update of the plain gradient. PyTorch's
 * default weight_decay is 0.01. Stepped and freed as Adam. */
tg_adam *tg_adamw_new(tg_params *ps, double lr, double weight_decay);
void tg_adam_step(tg_adam *opt);
void tg_adam_free(tg_adam *opt);
/* A parameter group (above); returns its index in opt->groups.g. */
int tg_adam_add_group(tg_adam *opt, const char *prefix, double lr, double weight_decay);

/* SGD with momentum (torch.optim.SGD): g = grad + wd p; buf = momentum buf +
 * (1 - dampening) g (buf = g on the first step); g = nesterov ? g + momentum buf : buf;
 * p -= lr g. */
typedef struct {
    tg_params *ps;
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
    int64_t step;
    void *buf;         /* (ps->n) momentum buffer */
    tg_param_groups groups;   /* parameters with their own lr and weight decay */
} tg_sgd;

tg_sgd *tg_sgd_new(tg_params *ps, double lr, double momentum);
void tg_sgd_step(tg_sgd *opt);
void tg_sgd_free(tg_sgd *opt);
int tg_sgd_add_group(tg_sgd *opt, const char *prefix, double lr, double weight_decay);

/* Learning-rate schedules, as closed forms of PyTorch's schedulers: the rate
 * for step (or epoch) t >= 0 from the base rate; set opt->lr from them. */
/* StepLR: base gamma^floor(t / step_size). */
double tg_lr_step(double base, int64_t t, int64_t step_size, double gamma);
/* CosineAnnealingLR: eta_min + (base - eta_min) (1 + cos(pi t / t_max)) / 2, t <= t_max. */
double tg_lr_cosine(double base, int64_t t, int64_t t_max, double eta_min);
/* LinearLR (linear warm-up): base (start + (end - start) min(t, total) / total). */
double tg_lr_linear(double base, int64_t t, double start_factor, double end_factor, int64_t total);

#endif
