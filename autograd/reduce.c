/*
 * reduce.c — sum and mean, of all elements or along one axis (keepdim or not).
 *
 * Every input element was added into exactly one output, so its gradient is
 * that output's gradient (divided by the count for a mean): backward
 * broadcasts dy back over what was summed.
 */
#include "autograd/internal.h"

static tg_var *reduce(TG_LOC, tg_tape *t, tg_op op, tg_var *a, int axis, bool keepdim, bool whole) {
    tg_shape s = TG_SCALAR_SHAPE;
    int64_t n = a->val.numel;
    if (!whole) {
        axis = tg_check_axis(file, line, tg_ops[op].name, axis, a->val.shape.ndim);
        n = a->val.shape.d[axis];
        s = a->val.shape;
        if (keepdim) s.d[axis] = 1;
        else {
            for (int i = axis; i < s.ndim - 1; i++) s.d[i] = s.d[i + 1];
            s.ndim--;
        }
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
