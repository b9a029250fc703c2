/*
 * kernels_norm.c — the loops behind layer_norm, batch_norm and dropout.
 *
 * A normalisation sees x as (A, G, B): group g is the A B values x[a, g, b].
 * Layer norm's groups are the rows, (1, rows, D); batch norm's the channels,
 * (N, C, spatial). Each group's statistics are summed in double in the order
 * a, then b, by one thread, so results do not depend on the thread count.
 */
#include "tensor/kernels.h"

#include <math.h>

static void check_layout(const char *fn, const tg_tensor *x, tg_norm_layout l) {
    TG_CHECK(l.A * l.G * l.B == x->numel, "%s: layout (%lld, %lld, %lld) does not cover %lld values", fn,
             (long long)l.A, (long long)l.G, (long long)l.B, (long long)x->numel);
}

static void check_stats(const char *fn, const tg_tensor *s, tg_norm_layout l) {
    TG_CHECK(s && s->dtype == TG_F64 && s->numel == l.G, "%s: statistics must be %lld float64 values", fn,
             (long long)l.G);
}

/* The index of x[a, g, b], and of the affine parameter it is scaled by. */
#define AT(l, a, g, b) (((a) * (l).G + (g)) * (l).B + (b))
#define PARAM(l, g, b) ((l).per_group ? (g) : (b))

/* Visits group g's elements in the order a, b, with i their flat index. */
#define FOR_GROUP(l, g) \
    for (int64_t a = 0; a < (l).A; a++) \
        for (int64_t b = 0, i = AT(l, a, g, 0); b < (l).B; b++, i++)

void tg_tensor_norm_stats(tg_tensor *mean, tg_tensor *var, tg_tensor *rstd, const tg_tensor *x, tg_norm_layout l,
                          double eps) {
    check_layout("tg_tensor_norm_stats", x, l);
    check_stats("tg_tensor_norm_stats", mean, l);
    check_stats("tg_tensor_norm_stats", rstd, l);
    if (var) check_stats("tg_tensor_norm_stats", var, l);
    double m = (double)(l.A * l.B);
    TG_DISPATCH(x->dtype, {
        const T *xp = x->data;
        for (int64_t g = 0; g < l.G; g++) {
            double s = 0, q = 0;
            FOR_GROUP(l, g) s += (double)xp[i];
            double mu = s / m;
            FOR_GROUP(l, g) q += ((double)xp[i] - mu) * ((double)xp[i] - mu);   /* two passes: no cancellation */
            TG_F64P(mean)[g] = mu;
            TG_F64P(rstd)[g] = 1.0 / sqrt(q / m + eps);
            if (var) TG_F64P(var)[g] = q / m;
        }
    });
}

void tg_tensor_norm_running(tg_tensor *mean, tg_tensor *rstd, const tg_tensor *running_mean,
                            const tg_tensor *running_var, double eps) {
    TG_CHECK(mean->dtype == TG_F64 && rstd->dtype == TG_F64 && running_mean->numel == mean->numel &&
                 running_var->numel == mean->numel && rstd->numel == mean->numel,
             "tg_tensor_norm_running: %lld running values for %lld float64 statistics",
             (long long)running_mean->numel, (long long)mean->numel);
    for (int64_t g = 0; g < mean->numel; g++) {
        TG_F64P(mean)[g] = tg_tensor_get(running_mean, g);
        TG_F64P(rstd)[g] = 1.0 / sqrt(tg_tensor_get(running_var, g) + eps);
    }
}

void tg_tensor_running_update(tg_tensor *running, const tg_tensor *stat, double momentum, double factor) {
    TG_CHECK(stat->dtype == TG_F64 && stat->numel == running->numel,
             "tg_tensor_running_update: %lld float64 statistics for %lld running values", (long long)stat->numel,
             (long long)running->numel);
    for (int64_t g = 0; g < running->numel; g++)
        tg_tensor_set(running, g, momentum * (TG_F64P(stat)[g] * factor) + (1 - momentum) * tg_tensor_get(running, g));
}

void tg_tensor_norm_apply(tg_tensor *y, const tg_tensor *x, const tg_tensor *mean, const tg_tensor *rstd,
                          const tg_tensor *w, const tg_tensor *b, tg_norm_layout l) {
    check_layout("tg_tensor_norm_apply", x, l);
    check_stats("tg_tensor_norm_apply", mean, l);
    check_stats("tg_tensor_norm_apply", rstd, l);
    int64_t k = l.per_group ? l.G : l.B;
    TG_CHECK(y->dtype == x->dtype && y->numel == x->numel && (!w || (w->dtype == x->dtype && w->numel == k)) &&
                 (!b || (b->dtype == x->dtype && b->numel == k)),
             "tg_tensor_norm_apply: y, w and b must match x's dtype and layout");
    TG_DISPATCH(x->dtype, {
        const T *xp = x->data, *wp = w ? w->data : NULL, *bp = b ? b->data : NULL;
        T *yp = y->data;
        for (int64_t g = 0; g < l.G; g++) {
            double mu = TG_F64P(mean)[g], rs = TG_F64P(rstd)[g];
            FOR_GROUP(l, g) {
                int64_t p = PARAM(l, g, b);
                double v = ((double)xp[i] - mu) * rs;   /* xhat */
                if (wp) v *= (double)wp[p];
                if (bp) v += (double)bp[p];
                yp[i] = (T)v;
            }
        }
    });
}

/* dw[p] += sum dy xhat and db[p] += sum dy over the elements scaled by
 * parameter p, in double, in the order g, a, b of those elements. */
static void acc_param_grads(tg_tensor *dw, tg_tensor *db, const tg_tensor *dy, const tg_tensor *x,
                            const tg_tensor *mean, const tg_tensor *rstd, tg_norm_layout l) {
    int64_t k = l.per_group ? l.G : l.B;
    TG_DISPATCH(x->dtype, {
        const T *xp = x->data, *gp = dy->data;
        T *dwp = dw ? dw->data : NULL, *dbp = db ? db->data : NULL;
        for (int64_t p = 0; p < k; p++) {
            double sw = 0, sb = 0;
            for (int64_t g = l.per_group ? p : 0; g < (l.per_group ? p + 1 : l.G); g++)
                for (int64_t a = 0; a < l.A; a++)
                    for (int64_t b = l.per_group ? 0 : p; b < (l.per_group ? l.B : p + 1); b++) {
                        int64_t i = AT(l, a, g, b);
                        sw += (double)gp[i] * ((double)xp[i] - TG_F64P(mean)[g]) * TG_F64P(rstd)[g];
                        sb += (double)gp[i];
                    }
            if (dwp) dwp[p] = (T)((double)dwp[p] + sw);
            if (dbp) dbp[p] = (T)((double)dbp[p] + sb);
        }
    });
}

void tg_tensor_acc_norm_grad(tg_tensor *dx, tg_tensor *dw, tg_tensor *db, const tg_tensor *dy, const tg_tensor *x,
                             const tg_tensor *mean, const tg_tensor *rstd, const tg_tensor *w, tg_norm_layout l,
                             bool through_stats) {
    check_layout("tg_tensor_acc_norm_grad", x, l);
    check_stats("tg_tensor_acc_norm_grad", mean, l);
    check_stats("tg_tensor_acc_norm_grad", rstd, l);
    TG_CHECK(dy->dtype == x->dtype && dy->numel == x->numel && (!dx || (dx->dtype == x->dtype && dx->numel == x->numel)),
             "tg_tensor_acc_norm_grad: dy and dx must match x");
    if (dw || db) acc_param_grads(dw, db, dy, x, mean, rstd, l);
    if (!dx) return;
    double m = (double)(l.A * l.B);
    TG_DISPATCH(x->dtype, {
        const T *xp = x->data, *gp = dy->data, *wp = w ? w->data : NULL;
        T *dxp = dx->data;
        for (int64_t g = 0; g < l.G; g++) {
            double mu = TG_F64P(mean)[g], rs = TG_F64P(rstd)[g], sg = 0, sgx = 0;
            /* h = dy w (the gradient reaching xhat); dx = rstd (h - mean h - xhat mean(h xhat)) */
            if (through_stats) FOR_GROUP(l, g) {
                    double h = (double)gp[i] * (wp ? (double)wp[PARAM(l, g, b)] : 1.0);
                    sg += h, sgx += h * ((double)xp[i] - mu) * rs;
                }
            sg /= m, sgx /= m;
            FOR_GROUP(l, g) {
                double h = (double)gp[i] * (wp ? (double)wp[PARAM(l, g, b)] : 1.0), xh = ((double)xp[i] - mu) * rs;
                dxp[i] = (T)((double)dxp[i] + rs * (h - sg - xh * sgx));
            }
        }
    });
}

void tg_tensor_dropout_mask(tg_tensor *mask, double p, tg_rng *r) {
    TG_CHECK(p >= 0 && p <= 1, "tg_tensor_dropout_mask: p %g is outside [0, 1]", p);
    double keep = 1 - p, scale = p < 1 ? 1 / keep : 0;
    for (int64_t i = 0; i < mask->numel; i++) tg_tensor_set(mask, i, tg_rng_uniform(r) < keep ? scale : 0);
}
