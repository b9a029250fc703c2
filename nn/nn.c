/* nn.c — parameters, Linear and the losses, composed from autograd ops. */
#include "nn/nn.h"

#include "tensor/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- params */

tg_params *tg_params_new(tg_dtype dt) {
    tg_params *ps = calloc(1, sizeof *ps);
    TG_CHECK(ps, "tg_params_new: out of memory");
    ps->dtype = dt;
    ps->training = true;
    return ps;
}

void tg_params_free(tg_params *ps) {
    if (!ps) return;
    for (int i = 0; i < ps->count; i++) free((char *)ps->vars[i]->name), free(ps->vars[i]);
    for (int i = 0; i < ps->n_bufs; i++) free((char *)ps->bufs[i]->name), free(ps->bufs[i]->val.data), free(ps->bufs[i]);
    free(ps->bufs);
    free(ps->vars), free(ps->data), free(ps->grad), free(ps);
}

/* Points every parameter's value and gradient at its place in the blocks. */
static void params_repoint(tg_params *ps) {
    size_t es = tg_dtype_size(ps->dtype), off = 0;
    for (int i = 0; i < ps->count; i++) {
        tg_var *v = ps->vars[i];
        v->val.data = (char *)ps->data + off * es;
        v->grad.data = (char *)ps->grad + off * es;
        off += (size_t)v->val.numel;
    }
}

tg_var *tg_params_add(tg_params *ps, const char *name, tg_shape s) {
    TG_CHECK(!tg_params_find(ps, name), "tg_params_add: a parameter called \"%s\" already exists", name);
    TG_CHECK(!tg_params_find_buffer(ps, name), "tg_params_add: a buffer called \"%s\" already exists", name);
    int64_t numel = tg_shape_numel(s);
    size_t es = tg_dtype_size(ps->dtype);
    if (ps->n + numel > ps->n_cap) {   /* grow both blocks, keeping values and gradients */
        int64_t cap = ps->n_cap ? ps->n_cap : 1024;
        while (cap < ps->n + numel) cap *= 2;
        void *d = realloc(ps->data, (size_t)cap * es), *g = realloc(ps->grad, (size_t)cap * es);
        TG_CHECK(d && g, "tg_params_add: out of memory for %lld parameters", (long long)cap);
        ps->data = d, ps->grad = g, ps->n_cap = cap;
    }
    if (ps->count == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 16;
        ps->vars = realloc(ps->vars, (size_t)ps->cap * sizeof *ps->vars);
        TG_CHECK(ps->vars, "tg_params_add: out of memory");
    }
    tg_var *v = calloc(1, sizeof *v);
    char *nm = malloc(strlen(name) + 1);
    TG_CHECK(v && nm, "tg_params_add: out of memory");
    v->val = tg_tensor_wrap(ps->dtype, s, NULL);
    v->grad = tg_tensor_wrap(ps->dtype, s, NULL);
    v->requires_grad = true;
    v->name = strcpy(nm, name);
    ps->vars[ps->count++] = v;
    memset((char *)ps->data + (size_t)ps->n * es, 0, (size_t)numel * es);
    memset((char *)ps->grad + (size_t)ps->n * es, 0, (size_t)numel * es);
    ps->n += numel;
    params_repoint(ps);
    return v;
}

tg_var *tg_params_find(const tg_params *ps, const char *name) {
    for (int i = 0; i < ps->count; i++)
        if (strcmp(ps->vars[i]->name, name) == 0) return ps->vars[i];
    return NULL;
}

/* ---------------------------------------------------------------- initialisers */

void tg_init_fans(const tg_tensor *w, int64_t *fan_in, int64_t *fan_out) {
    TG_CHECK(w->shape.ndim >= 1, "tg_init_fans: a tensor of no dimensions has no fans");
    if (w->shape.ndim == 1) {
        *fan_in = *fan_out = w->shape.d[0];
        return;
    }
    int64_t field = 1;
    for (int i = 2; i < w->shape.ndim; i++) field *= w->shape.d[i];
    *fan_in = w->shape.d[1] * field, *fan_out = w->shape.d[0] * field;
}

void tg_init_kaiming_uniform(tg_tensor *w, double a, tg_rng *r) {
    int64_t fan_in, fan_out;
    tg_init_fans(w, &fan_in, &fan_out);
    double b = sqrt(2.0 / (1 + a * a)) * sqrt(3.0 / (double)fan_in);
    tg_tensor_fill_uniform(w, -b, b, r);
}

void tg_init_xavier_uniform(tg_tensor *w, double gain, tg_rng *r) {
    int64_t fan_in, fan_out;
    tg_init_fans(w, &fan_in, &fan_out);
    double b = gain * sqrt(6.0 / (double)(fan_in + fan_out));
    tg_tensor_fill_uniform(w, -b, b, r);
}

void tg_init_normal(tg_tensor *w, double mean, double std, tg_rng *r) {
    tg_tensor_fill_normal(w, r);
    tg_tensor_mul_scalar(w, w, std);
    tg_tensor_add_scalar(w, w, mean);
}

void tg_init_zeros(tg_tensor *w) { tg_tensor_fill(w, 0); }

/* ---------------------------------------------------------------- clipping */

double tg_params_clip_grad_norm(tg_params *ps, double max_norm) {
    tg_tensor g = tg_tensor_wrap(ps->dtype, TG_SHAPE(ps->n), ps->grad);
    double norm = sqrt(tg_tensor_sum_squares(&g)), coef = max_norm / (norm + 1e-6);
    if (coef < 1) tg_tensor_mul_scalar(&g, &g, coef);
    return norm;
}

void tg_params_zero_grad(tg_params *ps) {
    tg_tensor g = tg_tensor_wrap(ps->dtype, TG_SHAPE(ps->n), ps->grad);
    tg_tensor_zero(&g);
}

/* ---------------------------------------------------------------- linear */

static tg_linear linear_new(tg_params *ps, const char *name, int64_t in, int64_t out, bool bias, tg_rng *r) {
    TG_CHECK(in > 0 && out > 0, "tg_linear_new: %s: sizes must be positive, got in %lld, out %lld", name,
             (long long)in, (long long)out);
    char buf[256];
    tg_linear l = {.in = in, .out = out};
    snprintf(buf, sizeof buf, "%s.weight", name);
    l.weight = tg_params_add(ps, buf, TG_SHAPE(out, in));
    double bound = 1.0 / sqrt((double)in);   /* kaiming_uniform(a=sqrt(5)) reduces to this */
    tg_tensor_fill_uniform(&l.weight->val, -bound, bound, r);
    if (bias) {
        snprintf(buf, sizeof buf, "%s.bias", name);
        l.bias = tg_params_add(ps, buf, TG_SHAPE(out));
        tg_tensor_fill_uniform(&l.bias->val, -bound, bound, r);
    }
    return l;
}

tg_linear tg_linear_new(tg_params *ps, const char *name, int64_t in, int64_t out, tg_rng *r) {
    return linear_new(ps, name, in, out, true, r);
}

tg_linear tg_linear_new_nobias(tg_params *ps, const char *name, int64_t in, int64_t out, tg_rng *r) {
    return linear_new(ps, name, in, out, false, r);
}

/* x (B, in) -> act(x W^T + b), or act(x W^T) without bias. */
static tg_var *linear_rows(TG_LOC, tg_tape *t, const tg_linear *l, tg_var *x, tg_act act) {
    if (l->bias) return tg_affine_(file, line, t, x, l->weight, l->bias, act);   /* x W^T + b, fused */
    tg_var *y = tg_matmul_(file, line, t, x, l->weight, false, true);
    return act == TG_ACT_RELU ? tg_relu_(file, line, t, y) : y;
}

static tg_var *linear(TG_LOC, tg_tape *t, const tg_linear *l, tg_var *x, tg_act act) {
    char b[96];
    tg_shape s = x->val.shape;
    if (s.ndim < 1 || s.d[s.ndim - 1] != l->in)
        tg_die(file, line, "linear %s: input %s does not match (..., %lld)", l->weight->name, tg_shape_str(s, b),
               (long long)l->in);
    if (s.ndim == 2) return linear_rows(file, line, t, l, x, act);
    /* (..., in) as (rows, in), and the result back as (..., out) */
    tg_var *rows = tg_reshape_(file, line, t, x, TG_SHAPE(x->val.numel / l->in, l->in));
    tg_var *y = linear_rows(file, line, t, l, rows, act);
    s.d[s.ndim - 1] = l->out;
    return tg_reshape_(file, line, t, y, s);
}

tg_var *tg_linear_forward_(TG_LOC, tg_tape *t, const tg_linear *l, tg_var *x) {
    return linear(file, line, t, l, x, TG_ACT_NONE);
}

tg_var *tg_linear_relu_(TG_LOC, tg_tape *t, const tg_linear *l, tg_var *x) {
    return linear(file, line, t, l, x, TG_ACT_RELU);
}

/* ---------------------------------------------------------------- convolutions */

static tg_conv conv_new(tg_params *ps, const char *name, int64_t in, int64_t out, int64_t kh, int64_t kw,
                        tg_conv_args a, bool bias, bool transposed, tg_rng *r) {
    int64_t g = a.groups ? a.groups : 1;
    TG_CHECK(in > 0 && out > 0 && kh > 0 && kw > 0 && g > 0 && in % g == 0 && out % g == 0,
             "tg_conv%s_new: %s: in %lld, out %lld, kernel %lldx%lld, groups %lld: sizes must be positive and the "
             "channels divisible by groups", transposed ? "_transpose2d" : "2d", name, (long long)in, (long long)out,
             (long long)kh, (long long)kw, (long long)g);
    char buf[256];
    tg_conv c = {.in = in, .out = out, .transposed = transposed, .args = a};
    snprintf(buf, sizeof buf, "%s.weight", name);
    c.weight = tg_params_add(ps, buf, transposed ? TG_SHAPE(in, out / g, kh, kw) : TG_SHAPE(out, in / g, kh, kw));
    tg_init_kaiming_uniform(&c.weight->val, sqrt(5.0), r);
    if (bias) {
        int64_t fan_in, fan_out;
        tg_init_fans(&c.weight->val, &fan_in, &fan_out);
        double bound = 1.0 / sqrt((double)fan_in);
        snprintf(buf, sizeof buf, "%s.bias", name);
        c.bias = tg_params_add(ps, buf, TG_SHAPE(out));
        tg_tensor_fill_uniform(&c.bias->val, -bound, bound, r);
    }
    return c;
}

tg_conv tg_conv2d_new(tg_params *ps, const char *name, int64_t in, int64_t out, int64_t kh, int64_t kw,
                      tg_conv_args a, bool bias, tg_rng *r) {
    return conv_new(ps, name, in, out, kh, kw, a, bias, false, r);
}

tg_conv tg_conv_transpose2d_new(tg_params *ps, const char *name, int64_t in, int64_t out, int64_t kh, int64_t kw,
                                tg_conv_args a, bool bias, tg_rng *r) {
    return conv_new(ps, name, in, out, kh, kw, a, bias, true, r);
}

tg_var *tg_conv_forward_(TG_LOC, tg_tape *t, const tg_conv *l, tg_var *x) {
    return l->transposed ? tg_conv_transpose2d_(file, line, t, x, l->weight, l->bias, l->args)
                         : tg_conv2d_(file, line, t, x, l->weight, l->bias, l->args);
}

tg_var *tg_conv_relu_(TG_LOC, tg_tape *t, const tg_conv *l, tg_var *x) {
    tg_conv fused = *l;
    fused.args.relu = true;
    return tg_conv_forward_(file, line, t, &fused, x);
}

/* ---------------------------------------------------------------- losses */

static tg_var *reduce(tg_tape *t, tg_var *x, tg_reduction r) {
    return r == TG_REDUCE_SUM ? tg_sum(t, x) : r == TG_REDUCE_MEAN ? tg_mean(t, x) : x;
}

/* Aborts naming the loss, both shapes and the caller's file:line unless x and y have one shape. */
static void same_shape(TG_LOC, const char *loss, const tg_var *x, const tg_var *y) {
    char b1[96], b2[96];
    if (!tg_shape_eq(x->val.shape, y->val.shape))
        tg_die(file, line, "%s: shapes %s and %s differ", loss, tg_shape_str(x->val.shape, b1),
               tg_shape_str(y->val.shape, b2));
}

tg_var *tg_loss_bce_(TG_LOC, tg_tape *t, tg_var *p, tg_var *y, tg_reduction r) {
    return reduce(t, tg_bce_(file, line, t, p, y), r);
}

/* Summed or averaged over x and y of one shape: one fused op (no tensor of
 * terms); broadcast operands or no reduction: the elementwise terms. */
tg_var *tg_loss_bce_logits_(TG_LOC, tg_tape *t, tg_var *x, tg_var *y, tg_reduction r) {
    if (r == TG_REDUCE_NONE || !tg_shape_eq(x->val.shape, y->val.shape))
        return reduce(t, tg_bce_logits_(file, line, t, x, y), r);
    tg_var *s = tg_bce_logits_sum_(file, line, t, x, y);
    return r == TG_REDUCE_SUM ? s : tg_mul_scalar(t, s, 1.0 / (double)x->val.numel);
}

tg_var *tg_loss_mse_(TG_LOC, tg_tape *t, tg_var *x, tg_var *y, tg_reduction r) {
    same_shape(file, line, "mse", x, y);
    return reduce(t, tg_square(t, tg_sub_(file, line, t, x, y)), r);
}

/* One op per statement, so the tape order does not depend on the compiler's
 * order of evaluating arguments. */
tg_var *tg_kl_diag_normal(tg_tape *t, tg_var *mq, tg_var *lq, tg_var *mp, tg_var *lp) {
    TG_CHECK((mp == NULL) == (lp == NULL), "tg_kl_diag_normal: give both mu_p and logvar_p, or neither");
    if (!mp) {   /* -1/2 (1 + lq - mq^2 - e^lq) */
        tg_var *a = tg_add_scalar(t, lq, 1.0);
        tg_var *mu2 = tg_square(t, mq);
        tg_var *var = tg_exp(t, lq);
        tg_var *inner = tg_sub(t, tg_sub(t, a, mu2), var);
        return tg_mul_scalar(t, inner, -0.5);
    }
    /* 1/2 (lp - lq + e^{lq - lp} + (mq - mp)^2 e^{-lp} - 1): the division by
     * e^lp written as products with exponentials of differences. */
    tg_var *dl = tg_sub(t, lq, lp);
    tg_var *ratio = tg_exp(t, dl);
    tg_var *d2 = tg_mul(t, tg_square(t, tg_sub(t, mq, mp)), tg_exp(t, tg_neg(t, lp)));
    tg_var *s = tg_sub(t, tg_add(t, ratio, d2), dl);
    return tg_mul_scalar(t, tg_add_scalar(t, s, -1.0), 0.5);
}

tg_var *tg_loss_kl_normal_(TG_LOC, tg_tape *t, tg_var *mu, tg_var *logvar) {
    same_shape(file, line, "kl_normal", mu, logvar);
    return tg_sum(t, tg_kl_diag_normal(t, mu, logvar, NULL, NULL));
}

tg_var *tg_loss_nll_(TG_LOC, tg_tape *t, tg_var *logp, tg_var *labels, tg_reduction r) {
    tg_var *l = tg_nll_(file, line, t, logp, labels, TG_IGNORE_INDEX);
    if (r != TG_REDUCE_MEAN) return reduce(t, l, r);
    int64_t counted = 0;   /* labels not ignored: the mean's denominator */
    for (int64_t i = 0; i < labels->val.numel; i++) counted += TG_I64P(&labels->val)[i] != TG_IGNORE_INDEX;
    tg_var *total = tg_sum(t, l);
    return tg_mul_scalar(t, total, counted ? 1.0 / (double)counted : INFINITY);   /* 0 * inf: NaN, as PyTorch */
}

tg_var *tg_loss_cross_entropy_(TG_LOC, tg_tape *t, tg_var *logits, tg_var *labels, tg_reduction r) {
    tg_var *logp = tg_log_softmax_(file, line, t, logits, logits->val.shape.ndim == 1 ? 0 : 1);
    return tg_loss_nll_(file, line, t, logp, labels, r);
}
