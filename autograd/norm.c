/*
 * norm.c — layer_norm, batch_norm and dropout: fused ops, each one tape
 * entry, its backward written next to its forward. The loops are
 * tensor/kernels_norm.c's.
 *
 * Both normalisations see x as (A, G, B) groups (tg_norm_layout) and share
 * one backward: with xhat = (x - mean) rstd, rstd = 1 / sqrt(var + eps),
 * y = xhat w + b and h = dy w,
 *     dw += sum dy xhat,   db += sum dy,
 *     dx += rstd (h - mean(h) - xhat mean(h xhat))   (statistics of the group itself)
 *     dx += rstd h                                   (fixed statistics: batch_norm in eval)
 * the means over the group's A B elements.
 */
#include "autograd/internal.h"

/* What the shared backward needs: the layout, the statistics it normalised
 * with, and where the optional weight and bias sit among the inputs. */
typedef struct {
    tg_norm_layout l;
    tg_tensor *mean, *rstd;   /* (G) float64 */
    bool through_stats;       /* the statistics are x's own (layer_norm, batch_norm training) */
    int w, b;                 /* input index of weight and bias, -1: absent */
} norm_ctx;

/* Checks an optional affine parameter: x's dtype and the shape want. */
static void check_param(TG_LOC, const char *op, const char *what, const tg_var *x, const tg_var *p, tg_shape want) {
    char b1[96], b2[96], b3[96];
    if (!p) return;
    tg_check_same_dtype(file, line, op, x, p);
    OP_CHECK(tg_shape_eq(p->val.shape, want), "%s: %s %s does not fit input %s (want %s)", op, what,
             tg_shape_str(p->val.shape, b1), tg_shape_str(x->val.shape, b2), tg_shape_str(want, b3));
}

/* y = xhat w + b with the statistics in c, recorded as op over x, w, b. */
static tg_var *norm_out(tg_tape *t, tg_op op, tg_var *x, tg_var *w, tg_var *b, norm_ctx *c) {
    tg_var *out = tg_var_new(t, x->val.dtype, x->val.shape);
    tg_tensor_norm_apply(&out->val, &x->val, c->mean, c->rstd, w ? &w->val : NULL, b ? &b->val : NULL, c->l);
    tg_var *ins[3] = {x};
    int n = 1;
    c->w = w ? n : -1;
    if (w) ins[n++] = w;
    c->b = b ? n : -1;
    if (b) ins[n++] = b;
    tg_entry *e = tg_record_n(t, op, out, ins, n);
    if (e) {
        norm_ctx *saved = tg_arena_alloc(tg_tape_arena(t), sizeof *saved);
        *saved = *c, e->ctx = saved;
    }
    return out;
}

static tg_tensor *stats_tensor(tg_tape *t, int64_t g) { return tg_tensor_new(tg_tape_arena(t), TG_F64, TG_SHAPE(g)); }

TG_BACKWARD(norm) {
    const norm_ctx *c = e->ctx;
    tg_tensor *dx = grad_of(t, e->ins[0]);
    tg_tensor *dw = c->w >= 0 ? grad_of(t, e->ins[c->w]) : NULL, *db = c->b >= 0 ? grad_of(t, e->ins[c->b]) : NULL;
    tg_tensor_acc_norm_grad(dx, dw, db, &e->out->grad, &e->ins[0]->val, c->mean, c->rstd,
                            c->w >= 0 ? &e->ins[c->w]->val : NULL, c->l, c->through_stats);
}

/* ---------------------------------------------------------------- layer_norm */

/* Rows of the last nd dims: mean = sum x / D, var = sum (x - mean)^2 / D,
 * y = (x - mean) / sqrt(var + eps) w + b; backward: the group rule above. */
tg_var *tg_layer_norm_(TG_LOC, tg_tape *t, tg_var *x, int normalized_ndim, tg_var *weight, tg_var *bias,
                       double eps) {
    char b1[96];
    tg_check_float(file, line, "layer_norm", x);
    int nd = x->val.shape.ndim;
    OP_CHECK(normalized_ndim >= 1 && normalized_ndim <= nd,
             "layer_norm: normalized_ndim %d must be in [1, %d] for input %s", normalized_ndim, nd,
             tg_shape_str(x->val.shape, b1));
    tg_shape ns = {.ndim = normalized_ndim};
    int64_t d = 1;
    for (int k = 0; k < normalized_ndim; k++) ns.d[k] = x->val.shape.d[nd - normalized_ndim + k], d *= ns.d[k];
    check_param(file, line, "layer_norm", "weight", x, weight, ns);
    check_param(file, line, "layer_norm", "bias", x, bias, ns);
    OP_CHECK(d > 0 && eps >= 0, "layer_norm: empty normalised shape or negative eps %g for input %s", eps,
             tg_shape_str(x->val.shape, b1));
    norm_ctx c = {.l = {1, x->val.numel / d, d, false}, .through_stats = true};
    c.mean = stats_tensor(t, c.l.G), c.rstd = stats_tensor(t, c.l.G);
    tg_tensor_norm_stats(c.mean, NULL, c.rstd, &x->val, c.l, eps);
    return norm_out(t, TG_OP_LAYER_NORM, x, weight, bias, &c);
}

/* ---------------------------------------------------------------- batch_norm */

/* Channels of x (N, C, ...): training, mean and var (biased) over the N x
 * spatial values of each channel, y = (x - mean) / sqrt(var + eps) w + b, and
 * running_mean = (1 - m) running_mean + m mean, running_var = (1 - m)
 * running_var + m var n / (n - 1) (unbiased) in place; backward: the group
 * rule through the statistics. Eval: running statistics instead, so y is
 * affine in x: dx += dy w / sqrt(running_var + eps). */
tg_var *tg_batch_norm_(TG_LOC, tg_tape *t, tg_var *x, tg_var *weight, tg_var *bias, tg_tensor *running_mean,
                       tg_tensor *running_var, bool training, double momentum, double eps) {
    char b1[96], b2[96], b3[96];
    tg_check_float(file, line, "batch_norm", x);
    tg_shape s = x->val.shape;
    OP_CHECK(s.ndim >= 2, "batch_norm: input %s must be (N, C, ...)", tg_shape_str(s, b1));
    int64_t ch = s.d[1], spatial = 1;
    for (int k = 2; k < s.ndim; k++) spatial *= s.d[k];
    check_param(file, line, "batch_norm", "weight", x, weight, TG_SHAPE(ch));
    check_param(file, line, "batch_norm", "bias", x, bias, TG_SHAPE(ch));
    const tg_tensor *run[2] = {running_mean, running_var};
    for (int k = 0; k < 2; k++)
        OP_CHECK(!run[k] || (run[k]->dtype != TG_I64 && run[k]->numel == ch),
                 "batch_norm: running %s %s %s does not fit input %s (want %s float)", k ? "var" : "mean",
                 tg_shape_str(run[k]->shape, b1), tg_dtype_name(run[k]->dtype), tg_shape_str(s, b2),
                 tg_shape_str(TG_SHAPE(ch), b3));
    OP_CHECK((running_mean == NULL) == (running_var == NULL), "batch_norm: give both running statistics or neither");
    OP_CHECK(training || running_mean, "batch_norm: eval mode needs running_mean and running_var (input %s)",
             tg_shape_str(s, b1));
    OP_CHECK(!training || s.d[0] * spatial > 1, "batch_norm: expected more than 1 value per channel when training, "
             "got input %s", tg_shape_str(s, b1));
    OP_CHECK(eps >= 0, "batch_norm: negative eps %g", eps);
    norm_ctx c = {.l = {s.d[0], ch, spatial, true}, .through_stats = training};
    c.mean = stats_tensor(t, ch), c.rstd = stats_tensor(t, ch);
    if (training) {
        tg_tensor *var = stats_tensor(t, ch);
        double n = (double)(s.d[0] * spatial);
        tg_tensor_norm_stats(c.mean, var, c.rstd, &x->val, c.l, eps);
        if (running_mean) {
            tg_tensor_running_update(running_mean, c.mean, momentum, 1.0);
            tg_tensor_running_update(running_var, var, momentum, n / (n - 1));
        }
    } else {
        tg_tensor_norm_running(c.mean, c.rstd, running_mean, running_var, eps);
    }
    return norm_out(t, TG_OP_BATCH_NORM, x, weight, bias, &c);
}

/* ---------------------------------------------------------------- dropout */

/* Inverted dropout: y = x mask, mask = 1 / (1 - p) with probability 1 - p,
 * else 0 (tg_tensor_dropout_mask: one uniform per element, row-major), saved
 * on the entry: dx += dy mask. p = 0 or eval: x itself (no draw, no entry);
 * p = 1: zeros (no draw). */
tg_var *tg_dropout_(TG_LOC, tg_tape *t, tg_var *x, double p, bool training, tg_rng *r) {
    char b1[96];
    tg_check_float(file, line, "dropout", x);
    OP_CHECK(p >= 0 && p <= 1, "dropout: probability p %g must be in [0, 1] (input %s)", p,
             tg_shape_str(x->val.shape, b1));
    if (!training || p == 0) return x;
    OP_CHECK(r || p == 1, "dropout: training with p %g needs an rng (input %s)", p, tg_shape_str(x->val.shape, b1));
    tg_tensor *mask = scratch(t, &x->val);
    if (p == 1) tg_tensor_fill(mask, 0);
    else tg_tensor_dropout_mask(mask, p, r);
    tg_var *out = tg_var_new(t, x->val.dtype, x->val.shape);
    tg_tensor_mul(&out->val, &x->val, mask);
    tg_entry *e = tg_record(t, TG_OP_DROPOUT, out, x, NULL);
    if (e) e->saved = mask;
    return out;
}

TG_BACKWARD(dropout) { tg_tensor_acc_mul(tg_var_grad(t, e->in[0]), &e->out->grad, e->saved); }
