/*
 * elementwise.c — ops applied element by element: the broadcasting binary
 * ops (add, sub, mul, div) and the unary maps (neg, exp, log, sqrt, square,
 * pow, relu, sigmoid, tanh, softplus, adding or multiplying by a scalar).
 *
 * Each op: forward y = f(x) by a tensor kernel (tensor/kernels.h), then one
 * tape entry; backward dx += dy * f'(x), with f' written from whichever of
 * x and y is cheaper and more accurate.
 *
 * Broadcasting. c = a + b with a (2, 3) and b (3,) adds b to every row. In
 * backward each element of b was used once per row, so its gradient is the
 * sum over the rows of dc: every broadcast operand's gradient is dc (times
 * the local derivative) summed back to that operand's shape
 * (tg_tensor_acc_sum_to).
 */
#include "autograd/internal.h"

/* ================================================================ binary, broadcasting */

static tg_var *binary(TG_LOC, tg_tape *t, tg_op op, tg_var *a, tg_var *b,
                      void (*kernel)(tg_tensor *, const tg_tensor *, const tg_tensor *)) {
    char b1[96], b2[96];
    tg_shape s;
    tg_check_same_dtype(file, line, tg_ops[op].name, a, b);
    OP_CHECK(tg_shape_broadcast(a->val.shape, b->val.shape, &s), "%s: shapes %s and %s are not broadcastable",
             tg_ops[op].name, tg_shape_str(a->val.shape, b1), tg_shape_str(b->val.shape, b2));
    tg_var *out = tg_var_new(t, a->val.dtype, s);
    kernel(&out->val, &a->val, &b->val);
    tg_record(t, op, out, a, b);
    return out;
}

/* c = a + b:  da += dc,  db += dc  (each summed back to its operand's shape) */
tg_var *tg_add_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) { return binary(file, line, t, TG_OP_ADD, a, b, tg_tensor_add); }
TG_BACKWARD(add) {
    tg_tensor *ga = grad_of(t, e->in[0]), *gb = grad_of(t, e->in[1]), *g = &e->out->grad;
    if (ga) tg_tensor_acc_sum_to(ga, g, 1);
    if (gb) tg_tensor_acc_sum_to(gb, g, 1);
}

/* c = a - b:  da += dc,  db -= dc */
tg_var *tg_sub_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) { return binary(file, line, t, TG_OP_SUB, a, b, tg_tensor_sub); }
TG_BACKWARD(sub) {
    tg_tensor *ga = grad_of(t, e->in[0]), *gb = grad_of(t, e->in[1]), *g = &e->out->grad;
    if (ga) tg_tensor_acc_sum_to(ga, g, 1);
    if (gb) tg_tensor_acc_sum_to(gb, g, -1);
}

/* c = a b:  da += dc b,  db += dc a. For x * x both terms land in x's gradient. */
tg_var *tg_mul_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) { return binary(file, line, t, TG_OP_MUL, a, b, tg_tensor_mul); }
TG_BACKWARD(mul) {
    tg_var *a = e->in[0], *b = e->in[1];
    tg_tensor *ga = grad_of(t, a), *gb = grad_of(t, b), *g = &e->out->grad, *tmp = scratch(t, g);
    if (ga) tg_tensor_mul(tmp, g, &b->val), tg_tensor_acc_sum_to(ga, tmp, 1);
    if (gb) tg_tensor_mul(tmp, g, &a->val), tg_tensor_acc_sum_to(gb, tmp, 1);
}

/* c = a / b:  da += dc / b,  db -= dc a / b^2 */
tg_var *tg_div_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) { return binary(file, line, t, TG_OP_DIV, a, b, tg_tensor_div); }
TG_BACKWARD(div) {
    tg_var *a = e->in[0], *b = e->in[1];
    tg_tensor *ga = grad_of(t, a), *gb = grad_of(t, b), *g = &e->out->grad, *tmp = scratch(t, g);
    if (ga) tg_tensor_div(tmp, g, &b->val), tg_tensor_acc_sum_to(ga, tmp, 1);
    if (gb) {
        tg_tensor *b2 = scratch(t, &b->val);
        tg_tensor_square(b2, &b->val);
        tg_tensor_mul(tmp, g, &a->val);
        tg_tensor_div(tmp, tmp, b2);
        tg_tensor_acc_sum_to(gb, tmp, -1);
    }
}

/* ================================================================ unary */

/* y = f(x) by kernel; the entry keeps s (a scalar argument) in e->f. */
static tg_var *unary(tg_tape *t, tg_op op, tg_var *x, void (*kernel)(tg_tensor *, const tg_tensor *)) {
    tg_var *out = tg_var_new(t, x->val.dtype, x->val.shape);
    kernel(&out->val, &x->val);
    tg_record(t, op, out, x, NULL);
    return out;
}

static tg_var *unary_s(tg_tape *t, tg_op op, tg_var *x, double s,
                       void (*kernel)(tg_tensor *, const tg_tensor *, double)) {
    tg_var *out = tg_var_new(t, x->val.dtype, x->val.shape);
    kernel(&out->val, &x->val, s);
    tg_entry *e = tg_record(t, op, out, x, NULL);
    if (e) e->f = s;
    return out;
}

/* The pieces every unary rule names: x, y, dy and dx (d, where a rule has
 * one, holds the local derivative dy/dx in scratch memory). */
#define UNARY_RULE                                                             \
    const tg_tensor *x = &e->in[0]->val, *y = &e->out->val, *dy = &e->out->grad; \
    tg_tensor *dx = tg_var_grad(t, e->in[0]);                                  \
    (void)x, (void)y

/* y = -x:  dx -= dy */
tg_var *tg_neg_(TG_LOC, tg_tape *t, tg_var *a) { (void)file, (void)line; return unary(t, TG_OP_NEG, a, tg_tensor_neg); }
TG_BACKWARD(neg) { UNARY_RULE; tg_tensor_acc_sum_to(dx, dy, -1); }

/* y = x + s:  dx += dy */
tg_var *tg_add_scalar_(TG_LOC, tg_tape *t, tg_var *a, double s) {
    (void)file, (void)line;
    return unary_s(t, TG_OP_ADD_SCALAR, a, s, tg_tensor_add_scalar);
}
TG_BACKWARD(add_scalar) { UNARY_RULE; tg_tensor_acc_sum_to(dx, dy, 1); }

/* y = x s:  dx += dy s */
tg_var *tg_mul_scalar_(TG_LOC, tg_tape *t, tg_var *a, double s) {
    (void)file, (void)line;
    return unary_s(t, TG_OP_MUL_SCALAR, a, s, tg_tensor_mul_scalar);
}
TG_BACKWARD(mul_scalar) { UNARY_RULE; tg_tensor_acc_sum_to(dx, dy, e->f); }

/* y = e^x:  dx += dy y */
tg_var *tg_exp_(TG_LOC, tg_tape *t, tg_var *a) { (void)file, (void)line; return unary(t, TG_OP_EXP, a, tg_tensor_exp); }
TG_BACKWARD(exp) { UNARY_RULE; tg_tensor_acc_mul(dx, dy, y); }

/* y = ln x:  dx += dy / x */
tg_var *tg_log_(TG_LOC, tg_tape *t, tg_var *a) { (void)file, (void)line; return unary(t, TG_OP_LOG, a, tg_tensor_log); }
TG_BACKWARD(log) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    tg_tensor_rdiv_scalar(d, 1, x), tg_tensor_acc_mul(dx, dy, d);
}

/* y = sqrt x:  dx += dy / (2 y) */
tg_var *tg_sqrt_(TG_LOC, tg_tape *t, tg_var *a) { (void)file, (void)line; return unary(t, TG_OP_SQRT, a, tg_tensor_sqrt); }
TG_BACKWARD(sqrt) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    tg_tensor_rdiv_scalar(d, 0.5, y), tg_tensor_acc_mul(dx, dy, d);
}

/* y = x^2:  dx += dy 2x */
tg_var *tg_square_(TG_LOC, tg_tape *t, tg_var *a) {
    (void)file, (void)line;
    return unary(t, TG_OP_SQUARE, a, tg_tensor_square);
}
TG_BACKWARD(square) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    tg_tensor_mul_scalar(d, x, 2), tg_tensor_acc_mul(dx, dy, d);
}

/* y = x^p:  dx += dy p x^(p-1), written without dividing by x so x = 0 works
 * for p >= 1 (and p = 0 gives 0). */
tg_var *tg_pow_(TG_LOC, tg_tape *t, tg_var *a, double p) {
    (void)file, (void)line;
    return unary_s(t, TG_OP_POW, a, p, tg_tensor_pow_scalar);
}
TG_BACKWARD(pow) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    if (e->f == 0) tg_tensor_fill(d, 0);
    else tg_tensor_pow_scalar(d, x, e->f - 1), tg_tensor_mul_scalar(d, d, e->f);
    tg_tensor_acc_mul(dx, dy, d);
}

/* y = max(x, 0):  dx += dy where x > 0 (0 at x = 0, as PyTorch) */
tg_var *tg_relu_(TG_LOC, tg_tape *t, tg_var *a) { (void)file, (void)line; return unary(t, TG_OP_RELU, a, tg_tensor_relu); }
TG_BACKWARD(relu) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    tg_tensor_step(d, x), tg_tensor_acc_mul(dx, dy, d);
}

/* y = 1 / (1 + e^-x):  dx += dy y (1 - y) */
tg_var *tg_sigmoid_(TG_LOC, tg_tape *t, tg_var *a) {
    (void)file, (void)line;
    return unary(t, TG_OP_SIGMOID, a, tg_tensor_sigmoid);
}
TG_BACKWARD(sigmoid) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    tg_tensor_rsub_scalar(d, 1, y), tg_tensor_mul(d, y, d), tg_tensor_acc_mul(dx, dy, d);
}

/* y = tanh x:  dx += dy (1 - y^2) */
tg_var *tg_tanh_(TG_LOC, tg_tape *t, tg_var *a) { (void)file, (void)line; return unary(t, TG_OP_TANH, a, tg_tensor_tanh); }
TG_BACKWARD(tanh) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    tg_tensor_square(d, y), tg_tensor_rsub_scalar(d, 1, d), tg_tensor_acc_mul(dx, dy, d);
}

/* y = ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|) (no overflow):  dx += dy sigmoid(x) */
tg_var *tg_softplus_(TG_LOC, tg_tape *t, tg_var *a) {
    (void)file, (void)line;
    return unary(t, TG_OP_SOFTPLUS, a, tg_tensor_softplus);
}
TG_BACKWARD(softplus) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    tg_tensor_sigmoid(d, x), tg_tensor_acc_mul(dx, dy, d);
}
