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
    tg_check_float(file, line, tg_ops[op].name, a);
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

/* y = f(x) by kernel, x float32 or float64 (else the op aborts, naming its caller). */
static tg_var *unary(TG_LOC, tg_tape *t, tg_op op, tg_var *x, void (*kernel)(tg_tensor *, const tg_tensor *)) {
    tg_check_float(file, line, tg_ops[op].name, x);
    tg_var *out = tg_var_new(t, x->val.dtype, x->val.shape);
    kernel(&out->val, &x->val);
    tg_record(t, op, out, x, NULL);
    return out;
}

/* The same with a scalar argument s, which the entry keeps in e->f. */
static tg_var *unary_s(TG_LOC, tg_tape *t, tg_op op, tg_var *x, double s,
                       void (*kernel)(tg_tensor *, const tg_tensor *, double)) {
    tg_check_float(file, line, tg_ops[op].name, x);
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
tg_var *tg_neg_(TG_LOC, tg_tape *t, tg_var *a) { return unary(file, line, t, TG_OP_NEG, a, tg_tensor_neg); }
TG_BACKWARD(neg) { UNARY_RULE; tg_tensor_acc_sum_to(dx, dy, -1); }

/* y = x + s:  dx += dy */
tg_var *tg_add_scalar_(TG_LOC, tg_tape *t, tg_var *a, double s) {
    return unary_s(file, line, t, TG_OP_ADD_SCALAR, a, s, tg_tensor_add_scalar);
}
TG_BACKWARD(add_scalar) { UNARY_RULE; tg_tensor_acc_sum_to(dx, dy, 1); }

/* y = x s:  dx += dy s */
tg_var *tg_mul_scalar_(TG_LOC, tg_tape *t, tg_var *a, double s) {
    return unary_s(file, line, t, TG_OP_MUL_SCALAR, a, s, tg_tensor_mul_scalar);
}
TG_BACKWARD(mul_scalar) { UNARY_RULE; tg_tensor_acc_sum_to(dx, dy, e->f); }

/* y = e^x:  dx += dy y */
tg_var *tg_exp_(TG_LOC, tg_tape *t, tg_var *a) { return unary(file, line, t, TG_OP_EXP, a, tg_tensor_exp); }
TG_BACKWARD(exp) { UNARY_RULE; tg_tensor_acc_mul(dx, dy, y); }

/* y = ln x:  dx += dy / x */
tg_var *tg_log_(TG_LOC, tg_tape *t, tg_var *a) { return unary(file, line, t, TG_OP_LOG, a, tg_tensor_log); }
TG_BACKWARD(log) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    tg_tensor_rdiv_scalar(d, 1, x), tg_tensor_acc_mul(dx, dy, d);
}

/* y = sqrt x:  dx += dy / (2 y) */
tg_var *tg_sqrt_(TG_LOC, tg_tape *t, tg_var *a) { return unary(file, line, t, TG_OP_SQRT, a, tg_tensor_sqrt); }
TG_BACKWARD(sqrt) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    tg_tensor_rdiv_scalar(d, 0.5, y), tg_tensor_acc_mul(dx, dy, d);
}

/* y = x^2:  dx += dy 2x */
tg_var *tg_square_(TG_LOC, tg_tape *t, tg_var *a) {
    return unary(file, line, t, TG_OP_SQUARE, a, tg_tensor_square);
}
TG_BACKWARD(square) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    tg_tensor_mul_scalar(d, x, 2), tg_tensor_acc_mul(dx, dy, d);
}

/* y = x^p:  dx += dy p x^(p-1), written without dividing by x so x = 0 works
 * for p >= 1 (and p = 0 gives 0). */
tg_var *tg_pow_(TG_LOC, tg_tape *t, tg_var *a, double p) {
    return unary_s(file, line, t, TG_OP_POW, a, p, tg_tensor_pow_scalar);
}
TG_BACKWARD(pow) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    if (e->f == 0) tg_tensor_fill(d, 0);
    else tg_tensor_pow_scalar(d, x, e->f - 1), tg_tensor_mul_scalar(d, d, e->f);
    tg_tensor_acc_mul(dx, dy, d);
}

/* y = max(x, 0):  dx += dy where x > 0 (0 at x = 0, as PyTorch) */
tg_var *tg_relu_(TG_LOC, tg_tape *t, tg_var *a) { return unary(file, line, t, TG_OP_RELU, a, tg_tensor_relu); }
/* y > 0 exactly where x > 0, so the mask is read off y: dx = dy [y > 0],
 * written in one pass when nothing reached dx yet, else added. */
TG_BACKWARD(relu) {
    const tg_tensor *y = &e->out->val, *dy = &e->out->grad;
    if (grad_untouched(e->in[0])) {
        tg_tensor *dx = tg_var_grad_unset(t, e->in[0]);
        if (dx) tg_tensor_mask_pos(dx, dy, y);
        return;
    }
    tg_tensor *d = scratch(t, y);
    tg_tensor_mask_pos(d, dy, y);
    tg_tensor_acc_sum_to(tg_var_grad(t, e->in[0]), d, 1);
}

/* y = 1 / (1 + e^-x):  dx += dy y (1 - y) */
tg_var *tg_sigmoid_(TG_LOC, tg_tape *t, tg_var *a) {
    return unary(file, line, t, TG_OP_SIGMOID, a, tg_tensor_sigmoid);
}
TG_BACKWARD(sigmoid) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    tg_tensor_rsub_scalar(d, 1, y), tg_tensor_mul(d, y, d), tg_tensor_acc_mul(dx, dy, d);
}

/* y = tanh x:  dx += dy (1 - y^2) */
tg_var *tg_tanh_(TG_LOC, tg_tape *t, tg_var *a) { return unary(file, line, t, TG_OP_TANH, a, tg_tensor_tanh); }
TG_BACKWARD(tanh) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    tg_tensor_square(d, y), tg_tensor_rsub_scalar(d, 1, d), tg_tensor_acc_mul(dx, dy, d);
}

/* y = ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|) (no overflow):  dx += dy sigmoid(x) */
tg_var *tg_softplus_(TG_LOC, tg_tape *t, tg_var *a) {
    return unary(file, line, t, TG_OP_SOFTPLUS, a, tg_tensor_softplus);
}
TG_BACKWARD(softplus) {
    UNARY_RULE;
    tg_tensor *d = scratch(t, y);
    tg_tensor_sigmoid(d, x), tg_tensor_acc_mul(dx, dy, d);
}

/* ================================================================ more maps, comparisons and where */

/* unary / unary_s for an op that checks its input is float. */
static tg_var *map(TG_LOC, tg_tape *t, tg_op op, tg_var *x, void (*kernel)(tg_tensor *, const tg_tensor *)) {
    tg_check_float(file, line, tg_ops[op].name, x);
    return unary(file, line, t, op, x, kernel);
}

static tg_var *map_s(TG_LOC, tg_tape *t, tg_op op, tg_var *x, double s,
                     void (*kernel)(tg_tensor *, const tg_tensor *, double)) {
    tg_check_float(file, line, tg_ops[op].name, x);
    return unary_s(file, line, t, op, x, s, kernel);
}

/* dx += dy d, where CALL writes the local derivative dy/dx into d. */
#define LOCAL_RULE(CALL)                                                       \
    do {                                                                       \
        UNARY_RULE;                                                            \
        tg_tensor *d = scratch(t, y);                                          \
        CALL;                                                                  \
        tg_tensor_acc_mul(dx, dy, d);                                          \
    } while (0)

/* y = |x|:  dx += dy sign(x) (0 at 0, as PyTorch) */
tg_var *tg_abs_(TG_LOC, tg_tape *t, tg_var *a) { return map(file, line, t, TG_OP_ABS, a, tg_tensor_abs); }
TG_BACKWARD(abs) { LOCAL_RULE(tg_tensor_sign(d, x)); }

/* y = min(max(x, lo), hi):  dx += dy where lo <= x <= hi, bounds included (torch.clamp) */
tg_var *tg_clamp_(TG_LOC, tg_tape *t, tg_var *a, double lo, double hi) {
    tg_check_float(file, line, "clamp", a);
    OP_CHECK(lo == lo && hi == hi, "clamp: a NaN bound (lo %g, hi %g); use -INFINITY or INFINITY for none", lo, hi);
    tg_var *out = tg_var_new(t, a->val.dtype, a->val.shape);
    tg_tensor_clamp(&out->val, &a->val, lo, hi);
    tg_entry *e = tg_record(t, TG_OP_CLAMP, out, a, NULL);
    if (e) e->f = lo, e->f2 = hi;
    return out;
}
TG_BACKWARD(clamp) { LOCAL_RULE(tg_tensor_in_range(d, x, e->f, e->f2)); }

/* y = ln(1 + x):  dx += dy / (1 + x) */
tg_var *tg_log1p_(TG_LOC, tg_tape *t, tg_var *a) { return map(file, line, t, TG_OP_LOG1P, a, tg_tensor_log1p); }
TG_BACKWARD(log1p) { LOCAL_RULE((tg_tensor_add_scalar(d, x, 1), tg_tensor_rdiv_scalar(d, 1, d))); }

/* y = e^x - 1:  dx += dy (y + 1) */
tg_var *tg_expm1_(TG_LOC, tg_tape *t, tg_var *a) { return map(file, line, t, TG_OP_EXPM1, a, tg_tensor_expm1); }
TG_BACKWARD(expm1) { LOCAL_RULE(tg_tensor_add_scalar(d, y, 1)); }

/* y = x > 0 ? x : slope x:  dx += dy (x > 0 ? 1 : slope) (slope at 0, as PyTorch) */
tg_var *tg_leaky_relu_(TG_LOC, tg_tape *t, tg_var *a, double slope) {
    return map_s(file, line, t, TG_OP_LEAKY_RELU, a, slope, tg_tensor_leaky_relu);
}
TG_BACKWARD(leaky_relu) { LOCAL_RULE(tg_tensor_leaky_relu_grad(d, x, e->f)); }

/* y = x > 0 ? x : alpha (e^x - 1):  dx += dy (x > 0 ? 1 : alpha e^x) (alpha at 0, as PyTorch) */
tg_var *tg_elu_(TG_LOC, tg_tape *t, tg_var *a, double alpha) {
    return map_s(file, line, t, TG_OP_ELU, a, alpha, tg_tensor_elu);
}
TG_BACKWARD(elu) { LOCAL_RULE(tg_tensor_elu_grad(d, x, e->f)); }

/* y = x Phi(x), Phi the normal CDF:  dx += dy (Phi(x) + x phi(x)) */
tg_var *tg_gelu_(TG_LOC, tg_tape *t, tg_var *a) { return map(file, line, t, TG_OP_GELU, a, tg_tensor_gelu); }
TG_BACKWARD(gelu) { LOCAL_RULE(tg_tensor_gelu_grad(d, x)); }

/* y = x (1 + tanh u) / 2 = x s, s = sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3):
 * dx += dy (s + 2 x s (1 - s) du/dx) */
tg_var *tg_gelu_tanh_(TG_LOC, tg_tape *t, tg_var *a) {
    return map(file, line, t, TG_OP_GELU_TANH, a, tg_tensor_gelu_tanh);
}
TG_BACKWARD(gelu_tanh) { LOCAL_RULE(tg_tensor_gelu_tanh_grad(d, x)); }

/* y = x s, s = sigmoid(x):  dx += dy s (1 + x (1 - s)) */
tg_var *tg_silu_(TG_LOC, tg_tape *t, tg_var *a) { return map(file, line, t, TG_OP_SILU, a, tg_tensor_silu); }
TG_BACKWARD(silu) { LOCAL_RULE(tg_tensor_silu_grad(d, x)); }

/* y = min(max(x, min_val), max_val):  dx += dy where min_val < x < max_val,
 * bounds excluded (F.hardtanh; tg_clamp's rule includes them) */
tg_var *tg_hardtanh_(TG_LOC, tg_tape *t, tg_var *a, double min_val, double max_val) {
    tg_check_float(file, line, "hardtanh", a);
    OP_CHECK(min_val == min_val && max_val == max_val,
             "hardtanh: a NaN bound (min_val %g, max_val %g); use -INFINITY or INFINITY for none", min_val, max_val);
    tg_var *out = tg_var_new(t, a->val.dtype, a->val.shape);
    tg_tensor_clamp(&out->val, &a->val, min_val, max_val);
    tg_entry *e = tg_record(t, TG_OP_HARDTANH, out, a, NULL);
    if (e) e->f = min_val, e->f2 = max_val;
    return out;
}
TG_BACKWARD(hardtanh) { LOCAL_RULE(tg_tensor_in_open_range(d, x, e->f, e->f2)); }

tg_tensor *tg_expanded(tg_tape *t, tg_tensor *v, tg_shape s) {
    if (tg_shape_eq(v->shape, s)) return v;
    tg_tensor *x = tg_tensor_new(tg_tape_arena(t), v->dtype, s);
    tg_tensor_expand(x, v);
    return x;
}

tg_var *tg_broadcast_out(TG_LOC, tg_tape *t, const char *op, tg_var *a, tg_var *b, tg_tensor **ea, tg_tensor **eb) {
    char b1[96], b2[96];
    tg_shape s;
    tg_check_float(file, line, op, a), tg_check_float(file, line, op, b);
    tg_check_same_dtype(file, line, op, a, b);
    OP_CHECK(tg_shape_broadcast(a->val.shape, b->val.shape, &s), "%s: shapes %s and %s are not broadcastable", op,
             tg_shape_str(a->val.shape, b1), tg_shape_str(b->val.shape, b2));
    *ea = tg_expanded(t, &a->val, s), *eb = tg_expanded(t, &b->val, s);
    return tg_var_new(t, a->val.dtype, s);
}

tg_var *tg_broadcast_op(TG_LOC, tg_tape *t, tg_op op, tg_var *a, tg_var *b,
                        void (*kernel)(tg_tensor *, const tg_tensor *, const tg_tensor *)) {
    tg_tensor *ea, *eb;
    tg_var *out = tg_broadcast_out(file, line, t, tg_ops[op].name, a, b, &ea, &eb);
    kernel(&out->val, ea, eb);
    tg_record(t, op, out, a, b);
    return out;
}

/* Backward of maximum (x, y = a, b) and minimum (x, y = b, a): da += dy
 * max_share(x, y), db += dy max_share(y, x), summed back to their shapes. */
static void share_back(tg_tape *t, const tg_entry *e, bool is_max) {
    const tg_tensor *g = &e->out->grad;
    tg_tensor *ea = tg_expanded(t, &e->in[0]->val, g->shape), *eb = tg_expanded(t, &e->in[1]->val, g->shape);
    tg_tensor *x = is_max ? ea : eb, *y = is_max ? eb : ea;
    tg_tensor *ga = grad_of(t, e->in[0]), *gb = grad_of(t, e->in[1]), *d = scratch(t, g);
    if (ga) tg_tensor_max_share(d, x, y), tg_tensor_mul(d, d, g), tg_tensor_acc_sum_to(ga, d, 1);
    if (gb) tg_tensor_max_share(d, y, x), tg_tensor_mul(d, d, g), tg_tensor_acc_sum_to(gb, d, 1);
}

/* c = max(a, b):  da += dc [a > b], db += dc [b > a]; a tie gives each dc / 2 (PyTorch 1.13) */
tg_var *tg_maximum_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) {
    return tg_broadcast_op(file, line, t, TG_OP_MAXIMUM, a, b, tg_tensor_maximum);
}
TG_BACKWARD(maximum) { share_back(t, e, true); }

/* c = min(a, b):  da += dc [a < b], db += dc [b < a]; a tie gives each dc / 2 (PyTorch 1.13) */
tg_var *tg_minimum_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) {
    return tg_broadcast_op(file, line, t, TG_OP_MINIMUM, a, b, tg_tensor_minimum);
}
TG_BACKWARD(minimum) { share_back(t, e, false); }

/* c = [a cmp b] as 0/1: not differentiable, nothing recorded. */
static tg_var *compare(TG_LOC, tg_tape *t, const char *op, tg_var *a, tg_var *b, tg_cmp cmp) {
    tg_tensor *ea, *eb;
    tg_var *out = tg_broadcast_out(file, line, t, op, a, b, &ea, &eb);
    tg_tensor_compare(&out->val, ea, eb, cmp);
    return out;
}
tg_var *tg_eq_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) { return compare(file, line, t, "eq", a, b, TG_CMP_EQ); }
tg_var *tg_ne_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) { return compare(file, line, t, "ne", a, b, TG_CMP_NE); }
tg_var *tg_lt_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) { return compare(file, line, t, "lt", a, b, TG_CMP_LT); }
tg_var *tg_le_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) { return compare(file, line, t, "le", a, b, TG_CMP_LE); }
tg_var *tg_gt_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) { return compare(file, line, t, "gt", a, b, TG_CMP_GT); }
tg_var *tg_ge_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) { return compare(file, line, t, "ge", a, b, TG_CMP_GE); }

/* y = cond ? a : b, m = [cond != 0] broadcast to y's shape, saved on the entry:
 * da += dy m,  db += dy (1 - m) (each summed back to its shape); cond gets nothing. */
tg_var *tg_where_(TG_LOC, tg_tape *t, tg_var *cond, tg_var *a, tg_var *b) {
    char b1[96], b2[96], b3[96];
    tg_shape s;
    tg_check_float(file, line, "where", a), tg_check_float(file, line, "where", b);
    tg_check_same_dtype(file, line, "where", a, b);
    OP_CHECK(tg_shape_broadcast(a->val.shape, b->val.shape, &s) && tg_shape_broadcast(cond->val.shape, s, &s),
             "where: shapes cond %s, a %s and b %s are not broadcastable", tg_shape_str(cond->val.shape, b1),
             tg_shape_str(a->val.shape, b2), tg_shape_str(b->val.shape, b3));
    tg_var *out = tg_var_new(t, a->val.dtype, s);
    tg_tensor *m = tg_tensor_new(tg_tape_arena(t), a->val.dtype, cond->val.shape);
    tg_tensor_nonzero(m, &cond->val);
    m = tg_expanded(t, m, s);
    tg_tensor_where(&out->val, m, tg_expanded(t, &a->val, s), tg_expanded(t, &b->val, s));
    tg_entry *e = tg_record(t, TG_OP_WHERE, out, a, b);
    if (e) e->saved = m;
    return out;
}
TG_BACKWARD(where) {
    const tg_tensor *dy = &e->out->grad, *m = e->saved;
    tg_tensor *ga = grad_of(t, e->in[0]), *gb = grad_of(t, e->in[1]), *d = scratch(t, dy);
    if (ga) tg_tensor_mask_pos(d, dy, m), tg_tensor_acc_sum_to(ga, d, 1);
    if (gb) tg_tensor_rsub_scalar(d, 1, m), tg_tensor_mask_pos(d, dy, d), tg_tensor_acc_sum_to(gb, d, 1);
}
