/*
 * softmax.c — softmax, log_softmax and the negative log-likelihood of int64
 * labels. The first two are fused ops for their numerics (the lane's
 * maximum subtracted before exponentiating); nll picks one element per label,
 * so cross-entropy (nn.h) is nll of log_softmax, as in PyTorch.
 */
#include "autograd/internal.h"

/* ---------------------------------------------------------------- softmax */

/* softmax y = e^{x - m} / sum e^{x - m}:  dx += y (dy - sum(dy y));
 * log_softmax y = x - m - ln sum e^{x - m}:  dx += dy - e^y sum(dy). */
static tg_var *softmax(TG_LOC, tg_tape *t, tg_op op, tg_var *a, int axis) {
    tg_check_float(file, line, tg_ops[op].name, a);
    axis = tg_check_axis(file, line, tg_ops[op].name, axis, a->val.shape.ndim);
    tg_var *out = tg_var_new(t, a->val.dtype, a->val.shape);
    tg_tensor_softmax(&out->val, &a->val, axis, op == TG_OP_LOG_SOFTMAX);
    tg_entry *e = tg_record(t, op, out, a, NULL);
    if (e) e->i[0] = axis;
    return out;
}

tg_var *tg_softmax_(TG_LOC, tg_tape *t, tg_var *a, int axis) { return softmax(file, line, t, TG_OP_SOFTMAX, a, axis); }
tg_var *tg_log_softmax_(TG_LOC, tg_tape *t, tg_var *a, int axis) {
    return softmax(file, line, t, TG_OP_LOG_SOFTMAX, a, axis);
}

TG_BACKWARD(softmax) {
    tg_tensor_acc_softmax_grad(tg_var_grad(t, e->in[0]), &e->out->val, &e->out->grad, (int)e->i[0],
                               e->op == TG_OP_LOG_SOFTMAX);
}

/* ---------------------------------------------------------------- nll */

/* y[n, ...] = -logp[n, c, ...] with c = labels[n, ...] (0 where ignored):
 * dlogp[n, c, ...] += -dy[n, ...]. The classes picked (-1 where ignored) are
 * saved on the entry as int64. */
tg_var *tg_nll_(TG_LOC, tg_tape *t, tg_var *logp, tg_var *labels, int64_t ignore_index) {
    char b1[96], b2[96], b3[96];
    tg_check_float(file, line, "nll", logp);
    tg_check_index(file, line, "nll", labels);
    int nd = logp->val.shape.ndim, axis = nd == 1 ? 0 : 1;   /* (C) or (N, C, d1, ...) */
    OP_CHECK(nd >= 1, "nll: logp must be (N, C, ...) or (C), got a 0-dimensional tensor");
    tg_shape want = tg_reduced_shape(logp->val.shape, axis, false);
    OP_CHECK(tg_shape_eq(labels->val.shape, want), "nll: labels %s do not fit logp %s (labels want %s)",
             tg_shape_str(labels->val.shape, b1), tg_shape_str(logp->val.shape, b2), tg_shape_str(want, b3));
    int64_t classes = logp->val.shape.d[axis];
    tg_tensor *idx = tg_tensor_new(tg_tape_arena(t), TG_I64, want);
    int64_t bad = tg_tensor_class_index(idx, &labels->val, classes, ignore_index);
    OP_CHECK(bad < 0, "nll: label %lld at index %lld is not a class in [0, %lld) nor ignore_index %lld",
             (long long)(bad < 0 ? 0 : TG_I64P(&labels->val)[bad]), (long long)bad, (long long)classes,
             (long long)ignore_index);
    tg_var *out = tg_var_new(t, logp->val.dtype, want);
    tg_tensor_gather_axis(&out->val, &logp->val, idx, axis, -1.0);
    tg_entry *e = tg_record(t, TG_OP_NLL, out, logp, NULL);
    if (e) e->saved = idx, e->i[0] = axis;
    return out;
}

TG_BACKWARD(nll) {
    tg_tensor_acc_scatter_axis(tg_var_grad(t, e->in[0]), &e->out->grad, e->saved, (int)e->i[0], -1.0);
}
