/*
 * index.c — ops that pick elements by int64 indices: gather, index_select,
 * embedding, and scatter_add which puts them back.
 *
 * Each backward scatters (or, for scatter_add's src, gathers) the gradient
 * the other way, through tensor/kernels_index.c's loops: repeated indices
 * accumulate, in index order, so the result never depends on threads.
 * Indices must lie in [0, size): a negative or too large one aborts naming
 * it and the caller, as PyTorch raises.
 */
#include "autograd/internal.h"

/* Aborts unless a kernel found every index in range (bad < 0). */
static void check_found(TG_LOC, const char *op, int64_t bad, const tg_var *index, int axis, const tg_var *x) {
    char b1[96], b2[96];
    OP_CHECK(bad < 0, "%s: index %lld at position %lld of index %s is out of range for axis %d of %s (size %lld)", op,
             bad < 0 ? 0LL : (long long)TG_I64P(&index->val)[bad], (long long)bad,
             tg_shape_str(index->val.shape, b1), axis, tg_shape_str(x->val.shape, b2),
             (long long)(x->val.shape.ndim ? x->val.shape.d[axis] : 1));
}

/* index has x's rank and fits x (and src, if given) outside axis. */
static void check_fits(TG_LOC, const char *op, const tg_var *x, int axis, const tg_var *index, const tg_var *src) {
    char b1[96], b2[96];
    tg_shape is = index->val.shape, xs = x->val.shape;
    bool ok = is.ndim == xs.ndim && (!src || src->val.shape.ndim == xs.ndim);
    for (int k = 0; ok && k < is.ndim; k++)
        ok = (k == axis || is.d[k] <= xs.d[k]) && (!src || is.d[k] <= src->val.shape.d[k]);
    OP_CHECK(ok, "%s: index %s does not fit %s%s along axis %d (same rank, no larger outside the axis)", op,
             tg_shape_str(is, b1), tg_shape_str(xs, b2), src ? " and src" : "", axis);
}

/* Records op (inputs x and src) with what its backward needs: the axis and the index. */
static tg_var *record_indexed(tg_tape *t, tg_op op, tg_var *out, tg_var *x, tg_var *src, int axis, tg_var *index) {
    tg_entry *e = tg_record(t, op, out, x, src);
    if (e) e->i[0] = axis, e->saved = &index->val;
    return out;
}

/* ---------------------------------------------------------------- gather */

/* y[p] = x[p with axis replaced by index[p]] (torch.gather; y has index's
 * shape):  dx[..., index[p], ...] += dy[p]. */
tg_var *tg_gather_(TG_LOC, tg_tape *t, tg_var *x, int axis, tg_var *index) {
    tg_check_index(file, line, "gather", index);
    axis = tg_check_axis(file, line, "gather", axis, x->val.shape.ndim);
    check_fits(file, line, "gather", x, axis, index, NULL);
    tg_var *out = tg_var_new(t, x->val.dtype, index->val.shape);
    check_found(file, line, "gather", tg_tensor_gather(&out->val, &x->val, axis, &index->val, false), index, axis, x);
    return record_indexed(t, TG_OP_GATHER, out, x, NULL, axis, index);
}

TG_BACKWARD(gather) { tg_tensor_scatter_add(tg_var_grad(t, e->in[0]), (int)e->i[0], e->saved, &e->out->grad); }

/* ---------------------------------------------------------------- index_select, embedding */

/* y = x with axis replaced by the rows index[0..m) (torch.index_select, index
 * 1-D):  dx[..., index[j], ...] += dy[..., j, ...]. */
tg_var *tg_index_select_(TG_LOC, tg_tape *t, tg_var *x, int axis, tg_var *index) {
    char b1[96];
    tg_check_index(file, line, "index_select", index);
    axis = tg_check_axis(file, line, "index_select", axis, x->val.shape.ndim);
    OP_CHECK(index->val.shape.ndim <= 1, "index_select: index must be 1-D, got %s",
             tg_shape_str(index->val.shape, b1));
    tg_shape s = x->val.shape;
    s.d[axis] = index->val.numel;
    tg_var *out = tg_var_new(t, x->val.dtype, s);
    int64_t bad = tg_tensor_index_select(&out->val, &x->val, axis, &index->val);
    check_found(file, line, "index_select", bad, index, axis, x);
    return record_indexed(t, TG_OP_INDEX_SELECT, out, x, NULL, axis, index);
}

/* Shared by embedding (axis 0, index of any shape read flat). */
TG_BACKWARD(index_select) { tg_tensor_index_add(tg_var_grad(t, e->in[0]), (int)e->i[0], e->saved, &e->out->grad); }

/* y (index..., D) = rows of weight (V, D) (F.embedding):  dweight[index[p]] += dy[p]. */
tg_var *tg_embedding_(TG_LOC, tg_tape *t, tg_var *weight, tg_var *index) {
    char b1[96], b2[96];
    tg_check_index(file, line, "embedding", index);
    tg_shape s = index->val.shape;
    OP_CHECK(weight->val.shape.ndim == 2 && s.ndim < TG_MAX_DIMS, "embedding: weight %s must be (V, D) and index %s "
             "below %d dimensions", tg_shape_str(weight->val.shape, b1), tg_shape_str(s, b2), TG_MAX_DIMS);
    s.d[s.ndim++] = weight->val.shape.d[1];
    tg_var *out = tg_var_new(t, weight->val.dtype, s);
    int64_t bad = tg_tensor_index_select(&out->val, &weight->val, 0, &index->val);
    check_found(file, line, "embedding", bad, index, 0, weight);
    return record_indexed(t, TG_OP_EMBEDDING, out, weight, NULL, 0, index);
}

/* ---------------------------------------------------------------- scatter_add */

/* y = x, then y[p with axis replaced by index[p]] += src[p] for every
 * position p of index (torch.scatter_add):  dx += dy, dsrc[p] += dy[p with
 * axis replaced by index[p]] (a gather of dy). */
tg_var *tg_scatter_add_(TG_LOC, tg_tape *t, tg_var *x, int axis, tg_var *index, tg_var *src) {
    tg_check_float(file, line, "scatter_add", x);
    tg_check_same_dtype(file, line, "scatter_add", x, src);
    tg_check_index(file, line, "scatter_add", index);
    axis = tg_check_axis(file, line, "scatter_add", axis, x->val.shape.ndim);
    check_fits(file, line, "scatter_add", x, axis, index, src);
    tg_var *out = tg_var_new(t, x->val.dtype, x->val.shape);
    tg_tensor_expand(&out->val, &x->val);   /* a copy */
    int64_t bad = tg_tensor_scatter_add(&out->val, axis, &index->val, &src->val);
    check_found(file, line, "scatter_add", bad, index, axis, x);
    return record_indexed(t, TG_OP_SCATTER_ADD, out, x, src, axis, index);
}

TG_BACKWARD(scatter_add) {
    tg_tensor *dx = grad_of(t, e->in[0]), *dsrc = grad_of(t, e->in[1]);
    if (dx) tg_tensor_acc_sum_to(dx, &e->out->grad, 1);
    if (dsrc) tg_tensor_gather(dsrc, &e->out->grad, (int)e->i[0], e->saved, true);
}
