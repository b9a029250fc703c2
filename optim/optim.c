/* optim.c — Adam and SGD with momentum, each one loop over the parameters. */
#include "optim/optim.h"

#include <stdlib.h>
#include <tgmath.h>

#include "tensor/kernels.h"

static void *zeroed(const tg_params *ps) {
    void *p = calloc((size_t)(ps->n ? ps->n : 1), tg_dtype_size(ps->dtype));
    TG_CHECK(p, "optimizer: out of memory for %lld parameters", (long long)ps->n);
    return p;
}

/* ---------------------------------------------------------------- Adam */

tg_adam *tg_adam_new(tg_params *ps, double lr) {
    tg_adam *o = calloc(1, sizeof *o);
    TG_CHECK(o, "tg_adam_new: out of memory");
    *o = (tg_adam){.ps = ps, .lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                   .m = zeroed(ps), .v = zeroed(ps)};
    return o;
}

/* The same sequence of operations as torch.optim.Adam's single-tensor path,
 * so float32 results agree with PyTorch's to rounding. 1 - beta is formed in
 * double, then rounded (as PyTorch): in float, 1 - (float)0.999 is 1.3e-5 off
 * 0.001, which the double bias correction would not match. */
void tg_adam_step(tg_adam *o) {
    o->step++;
    double bc1 = 1 - pow(o->beta1, (double)o->step), bc2 = 1 - pow(o->beta2, (double)o->step);
    /* p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), m and v updated first (tensor/kernels.h) */
    tg_shape s = TG_SHAPE(o->ps->n);
    tg_tensor p = tg_tensor_wrap(o->ps->dtype, s, o->ps->data), g = tg_tensor_wrap(o->ps->dtype, s, o->ps->grad),
              m = tg_tensor_wrap(o->ps->dtype, s, o->m), v = tg_tensor_wrap(o->ps->dtype, s, o->v);
    if (o->decoupled && o->weight_decay != 0) tg_tensor_mul_scalar(&p, &p, 1 - o->lr * o->weight_decay);   /* AdamW */
    tg_tensor_adam(&p, &g, &m, &v, o->beta1, o->beta2, o->lr / bc1, sqrt(bc2), o->eps,
                   o->decoupled ? 0 : o->weight_decay);
}

tg_adam *tg_adamw_new(tg_params *ps, double lr, double weight_decay) {
    tg_adam *o = tg_adam_new(ps, lr);
    o->weight_decay = weight_decay, o->decoupled = true;
    return o;
}

void tg_adam_free(tg_adam *o) {
    if (o) free(o->m), free(o->v), free(o);
}

/* ---------------------------------------------------------------- SGD */

tg_sgd *tg_sgd_new(tg_params *ps, double lr, double momentum) {
    tg_sgd *o = calloc(1, sizeof *o);
    TG_CHECK(o, "tg_sgd_new: out of memory");
    *o = (tg_sgd){.ps = ps, .lr = lr, .momentum = momentum, .buf = zeroed(ps)};
    return o;
}

void tg_sgd_step(tg_sgd *o) {
    TG_DISPATCH(o->ps->dtype, {
        T *p = o->ps->data, *g = o->ps->grad, *b = o->buf;
        const T mom = (T)o->momentum, undamp = (T)(1 - o->dampening), wd = (T)o->weight_decay, lr = (T)o->lr;
        for (int64_t i = 0; i < o->ps->n; i++) {
            T gi = wd != 0 ? g[i] + wd * p[i] : g[i];
            if (mom != 0) {
                b[i] = o->step == 0 ? gi : b[i] * mom + gi * undamp;
                gi = o->nesterov ? gi + mom * b[i] : b[i];
            }
            p[i] -= lr * gi;
        }
    });
    o->step++;
}

void tg_sgd_free(tg_sgd *o) {
    if (o) free(o->buf), free(o);
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
