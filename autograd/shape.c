/*
 * shape.c — ops that move values without changing them: reshape (a view),
 * transpose, concat, narrow; and one_hot, which makes a constant.
 *
 * Their backward moves the gradient back the way the values came.
 */
#include "autograd/internal.h"

/* ---------------------------------------------------------------- reshape */

/* y = x viewed with shape s (no copy):  dx += dy, element for element. */
tg_var *tg_reshape_(TG_LOC, tg_tape *t, tg_var *a, tg_shape s) {
    char b1[96], b2[96];
    OP_CHECK(tg_shape_numel(s) == a->val.numel, "reshape: cannot view %s as %s",
             tg_shape_str(a->val.shape, b1), tg_shape_str(s, b2));
    tg_var *out = tg_arena_calloc(tg_tape_arena(t), sizeof *out);
    out->val = tg_tensor_wrap(a->val.dtype, s, a->val.data);   /* a view: shares a's values */
    out->grad = tg_tensor_wrap(a->val.dtype, s, NULL);
    tg_record(t, TG_OP_RESHAPE, out, a, NULL);
    return out;
}

TG_BACKWARD(reshape) {
    tg_tensor *dx = tg_var_grad(t, e->in[0]);
    tg_tensor flat = tg_tensor_wrap(dx->dtype, TG_SHAPE(dx->numel), dx->data);
    tg_tensor dy = tg_tensor_wrap(dx->dtype, TG_SHAPE(dx->numel), e->out->grad.data);
    tg_tensor_acc_sum_to(&flat, &dy, 1);
}

/* ---------------------------------------------------------------- transpose */

/* y = x with axes d0 and d1 swapped:  dx += dy with them swapped back. */
tg_var *tg_transpose_(TG_LOC, tg_tape *t, tg_var *a, int d0, int d1) {
    d0 = tg_check_axis(file, line, "transpose", d0, a->val.shape.ndim);
    d1 = tg_check_axis(file, line, "transpose", d1, a->val.shape.ndim);
    tg_shape s = a->val.shape;
    s.d[d0] = a->val.shape.d[d1], s.d[d1] = a->val.shape.d[d0];
    tg_var *out = tg_var_new(t, a->val.dtype, s);
    tg_tensor_swap_axes(&out->val, &a->val, d0, d1, false);
    tg_entry *e = tg_record(t, TG_OP_TRANSPOSE, out, a, NULL);
    if (e) e->i[0] = d0, e->i[1] = d1;
    return out;
}

TG_BACKWARD(transpose) {
    tg_tensor_swap_axes(tg_var_grad(t, e->in[0]), &e->out->grad, (int)e->i[0], (int)e->i[1], true);
}

/* ---------------------------------------------------------------- concat */

/* y = [a, b] along axis:  da += the first part of dy, db += the rest. */
tg_var *tg_concat_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b, int axis) {
    char b1[96], b2[96];
    tg_check_same_dtype(file, line, "concat", a, b);
    tg_shape sa = a->val.shape, sb = b->val.shape;
    bool ok = sa.ndim == sb.ndim;
    axis = tg_check_axis(file, line, "concat", axis, sa.ndim);
    for (int k = 0; ok && k < sa.ndim; k++) ok = k == axis || sa.d[k] == sb.d[k];
    OP_CHECK(ok, "concat: shapes %s and %s differ outside axis %d", tg_shape_str(sa, b1), tg_shape_str(sb, b2), axis);
    tg_shape s = sa;
    s.d[axis] += sb.d[axis];
    tg_var *out = tg_var_new(t, a->val.dtype, s);
    tg_tensor_place(&out->val, &a->val, axis, 0, false);
    tg_tensor_place(&out->val, &b->val, axis, sa.d[axis], false);
    tg_entry *e = tg_record(t, TG_OP_CONCAT, out, a, b);
    if (e) e->i[0] = axis;
    return out;
}

TG_BACKWARD(concat) {
    int axis = (int)e->i[0];
    tg_tensor *ga = grad_of(t, e->in[0]), *gb = grad_of(t, e->in[1]);
    if (ga) tg_tensor_narrow(ga, &e->out->grad, axis, 0, true);
    if (gb) tg_tensor_narrow(gb, &e->out->grad, axis, e->in[0]->val.shape.d[axis], true);
}

/* ---------------------------------------------------------------- narrow */

/* y = x[..., start : start + len, ...] along axis:  dx[that slice] += dy. */
tg_var *tg_narrow_(TG_LOC, tg_tape *t, tg_var *a, int axis, int64_t start, int64_t len) {
    char b1[96];
    axis = tg_check_axis(file, line, "narrow", axis, a->val.shape.ndim);
    OP_CHECK(start >= 0 && len >= 0 && start + len <= a->val.shape.d[axis],
             "narrow: [%lld, %lld) is outside axis %d of %s", (long long)start, (long long)(start + len), axis,
             tg_shape_str(a->val.shape, b1));
    tg_shape s = a->val.shape;
    s.d[axis] = len;
    tg_var *out = tg_var_new(t, a->val.dtype, s);
    tg_tensor_narrow(&out->val, &a->val, axis, start, false);
    tg_entry *e = tg_record(t, TG_OP_NARROW, out, a, NULL);
    if (e) e->i[0] = axis, e->i[1] = start, e->i[2] = len;
    return out;
}

TG_BACKWARD(narrow) { tg_tensor_place(tg_var_grad(t, e->in[0]), &e->out->grad, (int)e->i[0], e->i[1], true); }

/* ---------------------------------------------------------------- one_hot */

/* y (n, K): row i is 1 at column labels[i], else 0. Labels are integers: no
 * gradient, so nothing is recorded. */
tg_var *tg_one_hot_(TG_LOC, tg_tape *t, tg_var *labels, int64_t classes) {
    char b1[96];
    OP_CHECK(labels->val.shape.ndim == 1, "one_hot: labels must be 1-D, got %s", tg_shape_str(labels->val.shape, b1));
    OP_CHECK(classes > 0, "one_hot: %lld classes", (long long)classes);
    tg_dtype dt = labels->val.dtype == TG_I64 ? TG_F32 : labels->val.dtype;   /* int64 labels give float32 */
    tg_var *out = tg_var_new(t, dt, TG_SHAPE(labels->val.numel, classes));
    int64_t bad = tg_tensor_one_hot(&out->val, &labels->val);
    OP_CHECK(bad < 0, "one_hot: label %g at index %lld is not a class in [0, %lld)",
             bad < 0 ? 0.0 : tg_tensor_get(&labels->val, bad), (long long)bad, (long long)classes);
    return out;
}
