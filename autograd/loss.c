/*
 * loss.c — the VAE's fused ops: the reparameterized sample, and binary
 * cross-entropy on probabilities and on logits. Each exists as one op for
 * its numerics (a clamped log, a log1p that never overflows) or, for the
 * sample, because backward needs the very eps forward drew.
 */
#include "autograd/internal.h"

/* ---------------------------------------------------------------- reparam */

/* z = mu + e^(logvar / 2) eps, mu and logvar broadcast together, eps ~ N(0, I)
 * of z's shape given, saved on the entry (never redrawn):  dmu += dz,
 * dlogvar += dz eps e^(logvar / 2) / 2, each summed back to its shape. */
tg_var *tg_reparam_(TG_LOC, tg_tape *t, tg_var *mu, tg_var *logvar, const tg_tensor *eps) {
    char b1[96], b2[96];
    tg_tensor *emu, *elv;
    tg_var *out = tg_broadcast_out(file, line, t, "reparam", mu, logvar, &emu, &elv);
    OP_CHECK(tg_shape_eq(eps->shape, out->val.shape) && eps->dtype == mu->val.dtype,
             "reparam: eps is %s %s, mu and logvar broadcast to %s %s", tg_shape_str(eps->shape, b1),
             tg_dtype_name(eps->dtype), tg_shape_str(out->val.shape, b2), tg_dtype_name(mu->val.dtype));
    tg_tensor *sigma = scratch(t, eps);
    tg_tensor_mul_scalar(sigma, elv, 0.5);
    tg_tensor_exp(sigma, sigma);                        /* e^(logvar / 2) */
    tg_tensor_mul(sigma, sigma, eps);
    tg_tensor_add(&out->val, emu, sigma);
    tg_entry *e = tg_record(t, TG_OP_REPARAM, out, mu, logvar);
    if (e) e->saved = tg_tensor_copy(tg_tape_arena(t), eps);   /* the eps this sample used */
    return out;
}

tg_var *tg_reparam_sample_(TG_LOC, tg_tape *t, tg_var *mu, tg_var *logvar, tg_rng *r) {
    tg_shape s = mu->val.shape;
    tg_shape_broadcast(mu->val.shape, logvar->val.shape, &s);   /* if they do not, tg_reparam_ says so */
    tg_tensor *eps = tg_tensor_normal(tg_tape_arena(t), mu->val.dtype, s, r);
    return tg_reparam_(file, line, t, mu, logvar, eps);
}

TG_BACKWARD(reparam) {
    const tg_tensor *dz = &e->out->grad, *eps = e->saved;
    tg_tensor *dmu = grad_of(t, e->in[0]), *dlv = grad_of(t, e->in[1]);
    if (dmu) tg_tensor_acc_sum_to(dmu, dz, 1);
    if (dlv) {
        tg_tensor *sigma = scratch(t, &e->in[1]->val), *d = scratch(t, dz);
        tg_tensor_mul_scalar(sigma, &e->in[1]->val, 0.5);
        tg_tensor_exp(sigma, sigma);                    /* e^(logvar / 2) */
        tg_tensor_mul_scalar(d, dz, 0.5);
        tg_tensor_mul(d, d, sigma);
        tg_tensor_mul(d, d, eps);
        tg_tensor_acc_sum_to(dlv, d, 1);
    }
}

/* ---------------------------------------------------------------- bce */

/* l = -(y ln p + (1 - y) ln(1 - p)), logs clamped at -100 (PyTorch's
 * binary_cross_entropy), p and y broadcast together:
 * dp += dl (p - y) / max(p (1 - p), 1e-12),  dy += dl (max(ln(1 - p), -100) - max(ln p, -100)). */
tg_var *tg_bce_(TG_LOC, tg_tape *t, tg_var *p, tg_var *y) {
    return tg_broadcast_op(file, line, t, TG_OP_BCE, p, y, tg_tensor_bce);
}

TG_BACKWARD(bce) {
    const tg_tensor *dl = &e->out->grad;
    tg_tensor *p = tg_expanded(t, &e->in[0]->val, dl->shape), *y = tg_expanded(t, &e->in[1]->val, dl->shape);
    tg_tensor *dp = grad_of(t, e->in[0]), *dy = grad_of(t, e->in[1]), *d = scratch(t, dl);
    if (dp) tg_tensor_bce_dp(d, p, y), tg_tensor_mul(d, d, dl), tg_tensor_acc_sum_to(dp, d, 1);
    if (dy) tg_tensor_bce_dy(d, p), tg_tensor_mul(d, d, dl), tg_tensor_acc_sum_to(dy, d, 1);
}

/* ---------------------------------------------------------------- bce_logits */

/* l = max(x, 0) - x y + ln(1 + e^-|x|), BCE of sigmoid(x) without overflow,
 * x and y broadcast together:  dx += dl (sigmoid(x) - y),  dy -= dl x. */
tg_var *tg_bce_logits_(TG_LOC, tg_tape *t, tg_var *x, tg_var *y) {
    return tg_broadcast_op(file, line, t, TG_OP_BCE_LOGITS, x, y, tg_tensor_bce_logits);
}

TG_BACKWARD(bce_logits) {
    const tg_tensor *dl = &e->out->grad;
    tg_tensor *x = tg_expanded(t, &e->in[0]->val, dl->shape), *y = tg_expanded(t, &e->in[1]->val, dl->shape);
    tg_tensor *dx = grad_of(t, e->in[0]), *dy = grad_of(t, e->in[1]);
    if (dx && tg_shape_eq(dx->shape, dl->shape)) tg_tensor_acc_bce_logits_dx(dx, dl, x, y);
    else if (dx) {   /* x was broadcast: the whole-shape gradient, summed back */
        tg_tensor *d = tg_tensor_zeros(tg_tape_arena(t), dl->dtype, dl->shape);
        tg_tensor_acc_bce_logits_dx(d, dl, x, y);
        tg_tensor_acc_sum_to(dx, d, 1);
    }
    if (dy) {
        tg_tensor *d = scratch(t, dl);
        tg_tensor_mul(d, dl, x);
        tg_tensor_acc_sum_to(dy, d, -1);
    }
}

/* ---------------------------------------------------------------- bce_logits_sum */

/* L = sum over every element of bce_logits(x, y), x and y of one shape: the
 * loss of a whole batch in one pass, each row's terms summed in a fixed order
 * (tg_tensor_bce_logits_rows) and the rows in turn, so no (B, D) tensor of
 * terms is written and no sum op reads it back. Backward, in one pass:
 *   dx = dL (sigmoid(x) - y)   (written, not added, when nothing reached dx yet)
 *   dy -= dL x                 (when the targets want a gradient) */
tg_var *tg_bce_logits_sum_(TG_LOC, tg_tape *t, tg_var *x, tg_var *y) {
    char b1[96], b2[96];
    tg_check_same_dtype(file, line, "bce_logits_sum", x, y);
    tg_check_float(file, line, "bce_logits_sum", x);
    OP_CHECK(tg_shape_eq(x->val.shape, y->val.shape), "bce_logits_sum: shapes %s and %s differ",
             tg_shape_str(x->val.shape, b1), tg_shape_str(y->val.shape, b2));
    const tg_shape s = x->val.shape;
    int64_t D = s.ndim ? s.d[s.ndim - 1] : 1, P = D ? x->val.numel / D : 0;
    tg_tensor xr = tg_tensor_wrap(x->val.dtype, TG_SHAPE(P, D), x->val.data);
    tg_tensor yr = tg_tensor_wrap(y->val.dtype, TG_SHAPE(P, D), y->val.data);
    tg_tensor *rows = tg_tensor_new(tg_tape_arena(t), TG_F64, TG_SHAPE(P));
    if (P) tg_tensor_bce_logits_rows(rows, &xr, &yr, NULL);
    double sum = 0;
    for (int64_t p = 0; p < P; p++) sum += TG_F64P(rows)[p];
    tg_var *out = tg_var_new(t, x->val.dtype, (tg_shape){.ndim = 0});
    tg_tensor_set(&out->val, 0, sum);
    tg_record(t, TG_OP_BCE_LOGITS_SUM, out, x, y);
    return out;
}

TG_BACKWARD(bce_logits_sum) {
    tg_var *x = e->in[0], *y = e->in[1];
    double dl = tg_tensor_get(&e->out->grad, 0);
    bool set = grad_untouched(x) && x != y;
    tg_tensor *dx = grad_for(t, x, set), *dy = grad_of(t, y);
    if (dx) tg_tensor_bce_logits_grad(dx, &x->val, &y->val, dl, !set);
    if (dy) tg_tensor_acc_sum_to(dy, &x->val, -dl);
}
