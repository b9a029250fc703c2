/*
 * reduce.c — sum and mean, of all elements or along one axis (keepdim or not).
 *
 * Every input element was added into exactly one output, so its gradient is
 * that output's gradient (divided by the count for a mean): backward
 * broadcasts dy back over what was summed.
 */
#include "autograd/internal.h"

#include <math.h>

static tg_var *reduce(TG_LOC, tg_tape *t, tg_op op, tg_var *a, int axis, bool keepdim, bool whole) {
    tg_shape s = TG_SCALAR_SHAPE;
    int64_t n = a->val.numel;
    if (!whole) {
        axis = tg_check_axis(file, line, tg_ops[op].name, axis, a->val.shape.ndim);
        n = a->val.shape.d[axis];
        s = tg_reduced_shape(a->val.shape, axis, keepdim);
    }
    tg_var *out = tg_var_new(t, a->val.dtype, s);
    double scale = op == TG_OP_MEAN ? 1.0 / (double)n : 1.0;
    if (whole) tg_tensor_set(&out->val, 0, tg_tensor_sum(&a->val) * scale);
    else tg_tensor_sum_axis(&out->val, &a->val, axis, scale);
    tg_entry *e = tg_record(t, op, out, a, NULL);
    if (e) e->i[0] = whole ? 0 : axis, e->i[1] = keepdim, e->i[2] = whole;
    return out;
}

tg_var *tg_sum_(TG_LOC, tg_tape *t, tg_var *a) { return reduce(file, line, t, TG_OP_SUM, a, 0, false, true); }
tg_var *tg_mean_(TG_LOC, tg_tape *t, tg_var *a) { return reduce(file, line, t, TG_OP_MEAN, a, 0, false, true); }
tg_var *tg_sum_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim) {
    return reduce(file, line, t, TG_OP_SUM, a, axis, keepdim, false);
}
tg_var *tg_mean_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim) {
    return reduce(file, line, t, TG_OP_MEAN, a, axis, keepdim, false);
}

/* y = s sum x (s = 1, or 1/n for a mean):  dx += s dy, dy broadcast back over
 * the summed axis (all of x for a whole sum). The table registers this rule
 * for both sum and mean. */
TG_BACKWARD(sum) {
    tg_tensor *a = &e->in[0]->val, *dx = tg_var_grad(t, e->in[0]);
    int axis = (int)e->i[0];
    double n = e->i[2] ? (double)a->numel : (double)a->shape.d[axis];
    double scale = e->op == TG_OP_MEAN ? 1.0 / n : 1.0;
    if (e->i[2]) {
        tg_tensor_acc_scalar(dx, tg_tensor_get(&e->out->grad, 0) * scale);
        return;
    }
    tg_shape kept = a->shape;   /* dy with the summed axis kept as 1, to broadcast */
    kept.d[axis] = 1;
    tg_tensor dy = tg_tensor_wrap(a->dtype, kept, e->out->grad.data);
    tg_tensor_acc_broadcast(dx, &dy, scale);
}

/* ---------------------------------------------------------------- max, min, argmax, argmin */

tg_shape tg_reduced_shape(tg_shape s, int axis, bool keepdim) {
    s.d[axis] = 1;
    if (!keepdim) {
        for (int i = axis; i + 1 < s.ndim; i++) s.d[i] = s.d[i + 1];
        s.ndim--;
    }
    return s;
}

/* The max (or min) of a's lanes along *axis (made non-negative): the
 * values (NULL unless values) and, in *idx (int64, the same shape), their
 * indices. whole: a's elements as one lane, a 0-dim result. */
static tg_var *extremum(TG_LOC, tg_tape *t, const char *op, tg_var *a, int *axis, bool keepdim, bool whole, bool min,
                        tg_var **idx, bool values) {
    char b[96];
    tg_check_float(file, line, op, a);
    tg_tensor x = a->val;
    if (whole) x = tg_tensor_wrap(a->val.dtype, TG_SHAPE(a->val.numel), a->val.data), *axis = 0;
    int ax = *axis = tg_check_axis(file, line, op, *axis, x.shape.ndim);
    OP_CHECK(x.shape.d[ax] > 0, "%s: axis %d of %s is empty", op, ax, tg_shape_str(a->val.shape, b));
    tg_shape s = whole ? TG_SCALAR_SHAPE : tg_reduced_shape(x.shape, ax, keepdim);
    tg_var *out = values ? tg_var_new(t, x.dtype, s) : NULL;
    *idx = tg_var_new(t, TG_I64, s);
    tg_tensor_max_axis(out ? &out->val : NULL, &(*idx)->val, &x, ax, min);
    return out;
}

/* y = max x (min alike). Of all elements: dx += dy / k at each of the k
 * elements equal to y (ties share, as torch.max(x)). Along an axis:
 * dx[..., i, ...] += dy at the index i torch.max(x, dim) returns, the first
 * of ties (saved on the entry as int64). */
static tg_var *max_op(TG_LOC, tg_tape *t, tg_op op, tg_var *a, int axis, bool keepdim, bool whole) {
    tg_var *idx;
    tg_var *out = extremum(file, line, t, tg_ops[op].name, a, &axis, keepdim, whole, op == TG_OP_MIN, &idx, true);
    tg_entry *e = tg_record(t, op, out, a, NULL);
    if (e) e->saved = &idx->val, e->i[0] = axis, e->i[2] = whole;
    return out;
}

tg_var *tg_max_(TG_LOC, tg_tape *t, tg_var *a) { return max_op(file, line, t, TG_OP_MAX, a, 0, false, true); }
tg_var *tg_min_(TG_LOC, tg_tape *t, tg_var *a) { return max_op(file, line, t, TG_OP_MIN, a, 0, false, true); }
tg_var *tg_max_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim) {
    return max_op(file, line, t, TG_OP_MAX, a, axis, keepdim, false);
}
tg_var *tg_min_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim) {
    return max_op(file, line, t, TG_OP_MIN, a, axis, keepdim, false);
}

tg_var *tg_argmax_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim) {
    tg_var *idx;
    extremum(file, line, t, "argmax", a, &axis, keepdim, false, false, &idx, false);
    return idx;
}
tg_var *tg_argmin_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim) {
    tg_var *idx;
    extremum(file, line, t, "argmin", a, &axis, keepdim, false, true, &idx, false);
    return idx;
}

TG_BACKWARD(max) {
    tg_tensor *dx = tg_var_grad(t, e->in[0]);
    if (e->i[2]) tg_tensor_acc_ties(dx, &e->in[0]->val, tg_tensor_get(&e->out->val, 0), tg_tensor_get(&e->out->grad, 0));
    else tg_tensor_acc_scatter_axis(dx, &e->out->grad, e->saved, (int)e->i[0], 1.0);
}

/* ---------------------------------------------------------------- logsumexp */

/* y = log sum_i e^{x_i}:  dx += dy e^{x - y} (0 where y = -inf; where y = +inf
 * dy is shared by the +inf elements). */
tg_var *tg_logsumexp_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim) {
    tg_check_float(file, line, "logsumexp", a);
    axis = tg_check_axis(file, line, "logsumexp", axis, a->val.shape.ndim);
    tg_var *out = tg_var_new(t, a->val.dtype, tg_reduced_shape(a->val.shape, axis, keepdim));
    tg_tensor_logsumexp_axis(&out->val, &a->val, axis);
    tg_entry *e = tg_record(t, TG_OP_LOGSUMEXP, out, a, NULL);
    if (e) e->i[0] = axis;
    return out;
}

TG_BACKWARD(logsumexp) {
    tg_tensor_acc_logsumexp_grad(tg_var_grad(t, e->in[0]), &e->in[0]->val, &e->out->val, &e->out->grad, (int)e->i[0]);
}

/* ---------------------------------------------------------------- var, std */

/* sum (x - mean)^2 / max(n - c, 0) along axis, from primitives; one op per
 * statement so the tape order is fixed. */
tg_var *tg_var_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, double correction, bool keepdim) {
    tg_check_float(file, line, "var_axis", a);
    int ax = tg_check_axis(file, line, "var_axis", axis, a->val.shape.ndim);
    double dof = (double)a->val.shape.d[ax] - correction;
    tg_var *mean = tg_mean_axis_(file, line, t, a, ax, true);
    tg_var *dev = tg_sub_(file, line, t, a, mean);
    tg_var *sq = tg_square_(file, line, t, dev);
    tg_var *ss = tg_sum_axis_(file, line, t, sq, ax, keepdim);
    return tg_mul_scalar_(file, line, t, ss, dof > 0 ? 1.0 / dof : INFINITY);
}

/* y = sqrt v, std's last step:  dv += dy / 2y, but 0 where y = 0 (PyTorch's
 * std_backward mask: a constant lane passes no gradient, not 0 * inf). */
tg_var *tg_std_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, double correction, bool keepdim) {
    tg_var *v = tg_var_axis_(file, line, t, a, axis, correction, keepdim);
    tg_var *out = tg_var_new(t, v->val.dtype, v->val.shape);
    tg_tensor_sqrt(&out->val, &v->val);
    tg_record(t, TG_OP_STD, out, v, NULL);
    return out;
}

TG_BACKWARD(std) {
    const tg_tensor *y = &e->out->val;
    tg_tensor *d = scratch(t, y);
    tg_tensor_rdiv_scalar(d, 0.5, y);
    tg_tensor_mask_pos(d, d, y);   /* 1 / 2y, 0 where y = 0 */
    tg_tensor_acc_mul(tg_var_grad(t, e->in[0]), &e->out->grad, d);
}
