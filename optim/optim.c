/* optim.c — Adam and SGD with momentum, each one loop over the parameters. */
#include "optim/optim.h"

#include <stdlib.h>
#include <tgmath.h>

#include "tensor/pool.h"
#include "tensor/vmath.h"

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

/* One Adam update over elements [0, n). Two copies of the loop, so neither
 * has a branch and both vectorise. */
#define ADAM_KERNEL(NAME, T)                                                          \
    TG_SIMD static void NAME(int64_t n, T *restrict p, const T *restrict g, T *restrict m,    \
                     T *restrict v, T b1, T b2, T c1, T c2, T ss, T bc, T eps, T wd) { \
        if (wd != 0)                                                                  \
            for (int64_t i = 0; i < n; i++) {                                         \
                T gi = g[i] + wd * p[i];                                              \
                m[i] = m[i] * b1 + gi * c1;                                           \
                v[i] = v[i] * b2 + gi * gi * c2;                                      \
                p[i] -= ss * (m[i] / (sqrt(v[i]) / bc + eps));                        \
            }                                                                         \
        else                                                                          \
            for (int64_t i = 0; i < n; i++) {                                         \
                m[i] = m[i] * b1 + g[i] * c1;                                         \
                v[i] = v[i] * b2 + g[i] * g[i] * c2;                                  \
                p[i] -= ss * (m[i] / (sqrt(v[i]) / bc + eps));                        \
            }                                                                         \
    }
ADAM_KERNEL(adam_f32, float)
ADAM_KERNEL(adam_f64, double)

typedef struct {
    tg_adam *o;
    double b1, b2, c1, c2, ss, bc, eps, wd;
} adam_args;

/* Elements [begin, end) of one step; ranges are independent, so the result
 * does not depend on how the pool splits them. */
static void adam_range(void *ctx, int64_t begin, int64_t end) {
    const adam_args *a = ctx;
    tg_params *ps = a->o->ps;
    int64_t n = end - begin;
    if (ps->dtype == TG_F32)
        adam_f32(n, (float *)ps->data + begin, (const float *)ps->grad + begin, (float *)a->o->m + begin,
                 (float *)a->o->v + begin, (float)a->b1, (float)a->b2, (float)a->c1, (float)a->c2, (float)a->ss,
                 (float)a->bc, (float)a->eps, (float)a->wd);
    else
        adam_f64(n, (double *)ps->data + begin, (const double *)ps->grad + begin, (double *)a->o->m + begin,
                 (double *)a->o->v + begin, a->b1, a->b2, a->c1, a->c2, a->ss, a->bc, a->eps, a->wd);
}

/* The same sequence of operations as torch.optim.Adam's single-tensor path,
 * so float32 results agree with PyTorch's to rounding. 1 - beta is formed in
 * double, then rounded (as PyTorch): in float, 1 - (float)0.999 is 1.3e-5 off
 * 0.001, which the double bias correction would not match. */
void tg_adam_step(tg_adam *o) {
    o->step++;
    double bc1 = 1 - pow(o->beta1, (double)o->step), bc2 = 1 - pow(o->beta2, (double)o->step);
    adam_args a = {.o = o, .b1 = o->beta1, .b2 = o->beta2, .c1 = 1 - o->beta1, .c2 = 1 - o->beta2,
                   .ss = o->lr / bc1, .bc = sqrt(bc2), .eps = o->eps, .wd = o->weight_decay};
    tg_parallel_for(o->ps->n, 1 << 15, adam_range, &a);
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
