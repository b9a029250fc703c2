/*
 * shape.c — ops that move values without changing them: reshape (a view),
 * transpose, concat, narrow; and one_hot, which makes a constant.
 *
 * Their backward moves the gradient back the way the values came.
 */
#include "autograd/internal.h"

#include <string.h>

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
    bool set = grad_untouched(e->in[0]);   /* nothing reached dx yet: dx = dy, a copy */
    tg_tensor *dx = grad_for(t, e->in[0], set);
    tg_tensor flat = tg_tensor_wrap(dx->dtype, TG_SHAPE(dx->numel), dx->data);
    tg_tensor dy = tg_tensor_wrap(dx->dtype, TG_SHAPE(dx->numel), e->out->grad.data);
    if (set) memcpy(flat.data, dy.data, (size_t)flat.numel * tg_dtype_size(flat.dtype));
    else tg_tensor_acc_sum_to(&flat, &dy, 1);
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

/* y = [a, b] along axis: tg_cat of the two (one variadic entry). */
tg_var *tg_concat_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b, int axis) {
    return tg_cat_(file, line, t, (tg_var *[]){a, b}, 2, axis);
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

/* ================================================================ shape and indexing: N-d shape ops
 *
 * cat, permute, expand, pad and slice are primitives with a backward of
 * their own; stack, split, chunk, flatten, unflatten, squeeze and unsqueeze
 * are compositions of them, narrow and reshape. Values are moved by element
 * size, so permute, cat, stack, pad, slice and the views take int64 tensors
 * too; expand, split and chunk (tensor/kernels.c's float loops) do not. */

/* ---------------------------------------------------------------- cat */

/* y = [x0, x1, ..., x(n-1)] along axis:  dxk += dy[..., offk : offk + nk, ...]. */
tg_var *tg_cat_(TG_LOC, tg_tape *t, tg_var *const *xs, int n, int axis) {
    char b1[96], b2[96];
    OP_CHECK(n >= 1, "cat: needs at least one tensor, got %d", n);
    tg_shape s = xs[0]->val.shape;
    axis = tg_check_axis(file, line, "cat", axis, s.ndim);
    s.d[axis] = 0;
    for (int k = 0; k < n; k++) {
        tg_shape sk = xs[k]->val.shape;
        tg_check_same_dtype(file, line, "cat", xs[0], xs[k]);
        bool ok = sk.ndim == s.ndim;
        for (int d = 0; ok && d < s.ndim; d++) ok = d == axis || sk.d[d] == s.d[d];
        OP_CHECK(ok, "cat: tensor %d of shape %s differs from tensor 0 of shape %s outside axis %d", k,
                 tg_shape_str(sk, b1), tg_shape_str(xs[0]->val.shape, b2), axis);
        s.d[axis] += sk.d[axis];
    }
    tg_var *out = tg_var_new(t, xs[0]->val.dtype, s);
    int64_t off = 0;
    for (int k = 0; k < n; off += xs[k]->val.shape.d[axis], k++)
        tg_tensor_slice_place(&out->val, &xs[k]->val, axis, off, 1, false);
    tg_entry *e = tg_record_n(t, TG_OP_CONCAT, out, xs, n);
    if (e) e->i[0] = axis;
    return out;
}

TG_BACKWARD(concat) {
    int axis = (int)e->i[0];
    int64_t off = 0;
    for (int k = 0; k < e->n_ins; off += e->ins[k]->val.shape.d[axis], k++) {
        tg_tensor *g = grad_of(t, e->ins[k]);
        if (g) tg_tensor_narrow(g, &e->out->grad, axis, off, true);
    }
}

/* y = stack(xs) = cat of the xs each unsqueezed at axis (in [-ndim-1, ndim]). */
tg_var *tg_stack_(TG_LOC, tg_tape *t, tg_var *const *xs, int n, int axis) {
    OP_CHECK(n >= 1, "stack: needs at least one tensor, got %d", n);
    int nd = xs[0]->val.shape.ndim;
    OP_CHECK(nd < TG_MAX_DIMS, "stack: %d dimensions plus one exceed TG_MAX_DIMS (%d)", nd, TG_MAX_DIMS);
    axis = tg_check_axis(file, line, "stack", axis, nd + 1);
    tg_var **us = tg_arena_alloc(tg_tape_arena(t), (size_t)n * sizeof *us);
    for (int k = 0; k < n; k++) us[k] = tg_unsqueeze_(file, line, t, xs[k], axis);
    return tg_cat_(file, line, t, us, n, axis);
}

/* ---------------------------------------------------------------- split, chunk */

/* out[k] = x[..., offk : offk + sizes[k], ...] along axis, by tg_narrow; the
 * sizes must add up to the axis's size. */
void tg_split_(TG_LOC, tg_tape *t, tg_var *x, int axis, const int64_t *sizes, int n, tg_var **out) {
    char b1[96];
    tg_check_float(file, line, "split", x);
    axis = tg_check_axis(file, line, "split", axis, x->val.shape.ndim);
    int64_t total = 0;
    bool ok = n >= 1;
    for (int k = 0; k < n; k++) ok = ok && sizes[k] >= 0, total += sizes[k];
    OP_CHECK(ok && total == x->val.shape.d[axis], "split: %d sizes adding up to %lld do not split axis %d of %s",
             n, (long long)total, axis, tg_shape_str(x->val.shape, b1));
    int64_t off = 0;
    for (int k = 0; k < n; off += sizes[k], k++) out[k] = tg_narrow_(file, line, t, x, axis, off, sizes[k]);
}

/* torch.chunk: pieces of ceil(size / chunks) along axis, the last smaller,
 * so there may be fewer than chunks of them; returns how many were written. */
int tg_chunk_(TG_LOC, tg_tape *t, tg_var *x, int chunks, int axis, tg_var **out) {
    OP_CHECK(chunks >= 1, "chunk: %d chunks", chunks);
    tg_check_float(file, line, "chunk", x);
    axis = tg_check_axis(file, line, "chunk", axis, x->val.shape.ndim);
    int64_t d = x->val.shape.d[axis], each = (d + chunks - 1) / chunks;
    int n = d == 0 ? chunks : (int)((d + each - 1) / each);
    for (int k = 0; k < n; k++) {
        int64_t start = k * each, len = d - start < each ? d - start : each;
        out[k] = tg_narrow_(file, line, t, x, axis, start, len);
    }
    return n;
}

/* ---------------------------------------------------------------- permute */

/* y = x with axis k of y being axis dims.d[k] of x:  dx += dy permuted back. */
tg_var *tg_permute_(TG_LOC, tg_tape *t, tg_var *x, tg_shape dims) {
    char b1[96], b2[96];
    tg_shape xs = x->val.shape, s = xs;
    int perm[TG_MAX_DIMS], seen = 0;
    bool ok = dims.ndim == xs.ndim;
    for (int k = 0; ok && k < xs.ndim; k++) {
        int64_t d = dims.d[k] < 0 ? dims.d[k] + xs.ndim : dims.d[k];
        ok = d >= 0 && d < xs.ndim && !(seen & 1 << d);
        if (ok) perm[k] = (int)d, seen |= 1 << d, s.d[k] = xs.d[d];
    }
    OP_CHECK(ok, "permute: dims %s are not a permutation of the %d axes of %s", tg_shape_str(dims, b1), xs.ndim,
             tg_shape_str(xs, b2));
    tg_var *out = tg_var_new(t, x->val.dtype, s);
    tg_tensor_permute(&out->val, &x->val, perm, false);
    tg_entry *e = tg_record(t, TG_OP_PERMUTE, out, x, NULL);
    if (e) {
        int *inv = tg_arena_alloc(tg_tape_arena(t), TG_MAX_DIMS * sizeof *inv);
        for (int k = 0; k < xs.ndim; k++) inv[perm[k]] = k;
        e->ctx = inv;
    }
    return out;
}

TG_BACKWARD(permute) { tg_tensor_permute(tg_var_grad(t, e->in[0]), &e->out->grad, e->ctx, true); }

/* ---------------------------------------------------------------- expand */

/* y = x broadcast to s (torch.expand: size-1 axes grow, new axes lead; -1
 * keeps x's size):  dx += dy summed over the broadcast axes. */
tg_var *tg_expand_(TG_LOC, tg_tape *t, tg_var *x, tg_shape s) {
    char b1[96], b2[96];
    tg_check_float(file, line, "expand", x);
    tg_shape xs = x->val.shape;
    int lead = s.ndim - xs.ndim;
    bool ok = lead >= 0;
    for (int k = 0; ok && k < s.ndim; k++) {
        int64_t have = k >= lead ? xs.d[k - lead] : -2;
        if (s.d[k] == -1 && have >= 0) s.d[k] = have;
        ok = s.d[k] >= 0 && (have < 0 || have == s.d[k] || have == 1);
    }
    OP_CHECK(ok, "expand: cannot expand %s to %s", tg_shape_str(xs, b1), tg_shape_str(s, b2));
    tg_var *out = tg_var_new(t, x->val.dtype, s);
    tg_tensor_expand(&out->val, &x->val);
    tg_record(t, TG_OP_EXPAND, out, x, NULL);
    return out;
}

TG_BACKWARD(expand) { tg_tensor_acc_sum_to(tg_var_grad(t, e->in[0]), &e->out->grad, 1); }

/* ---------------------------------------------------------------- pad */

/* y = x padded with value (F.pad, constant mode): pads are (before, after)
 * pairs from the last axis backwards, negative ones crop:  dx += the window
 * of dy where x landed. */
tg_var *tg_pad_(TG_LOC, tg_tape *t, tg_var *x, const int64_t *pads, int n_pads, double value) {
    char b1[96];
    tg_shape s = x->val.shape;
    OP_CHECK(n_pads >= 0 && n_pads % 2 == 0 && n_pads / 2 <= s.ndim,
             "pad: %d pads for %s: want pairs (before, after), at most two per axis", n_pads, tg_shape_str(s, b1));
    int64_t lo[TG_MAX_DIMS] = {0};
    for (int p = 0; p < n_pads / 2; p++) {
        int k = s.ndim - 1 - p;
        lo[k] = pads[2 * p], s.d[k] += pads[2 * p] + pads[2 * p + 1];
        OP_CHECK(s.d[k] >= 0, "pad: pads (%lld, %lld) leave axis %d of %s with %lld elements",
                 (long long)pads[2 * p], (long long)pads[2 * p + 1], k, tg_shape_str(x->val.shape, b1),
                 (long long)s.d[k]);
    }
    tg_var *out = tg_var_new(t, x->val.dtype, s);
    tg_tensor_pad(&out->val, &x->val, lo, value);
    tg_entry *e = tg_record(t, TG_OP_PAD, out, x, NULL);
    if (e) {
        int64_t *keep = tg_arena_alloc(tg_tape_arena(t), sizeof lo);
        memcpy(keep, lo, sizeof lo);
        e->ctx = keep;
    }
    return out;
}

TG_BACKWARD(pad) { tg_tensor_unpad(tg_var_grad(t, e->in[0]), &e->out->grad, e->ctx, true); }

/* ---------------------------------------------------------------- slice */

/* Python's rule for a slice bound with step >= 1: negative counts from the
 * end, then clamped to [0, n]. */
static int64_t slice_bound(int64_t v, int64_t n) {
    if (v < 0) v = v < -n ? 0 : v + n;
    return v > n ? n : v;
}

/* y = x[..., start:stop:step, ...] along axis:  dx[that slice] += dy. */
tg_var *tg_slice_(TG_LOC, tg_tape *t, tg_var *x, int axis, int64_t start, int64_t stop, int64_t step) {
    axis = tg_check_axis(file, line, "slice", axis, x->val.shape.ndim);
    OP_CHECK(step >= 1, "slice: step %lld; steps must be positive (as in PyTorch)", (long long)step);
    int64_t n = x->val.shape.d[axis];
    start = slice_bound(start, n), stop = slice_bound(stop, n);
    tg_shape s = x->val.shape;
    s.d[axis] = stop > start ? 1 + (stop - start - 1) / step : 0;   /* no overflow for any step */
    tg_var *out = tg_var_new(t, x->val.dtype, s);
    tg_tensor_slice(&out->val, &x->val, axis, start, step, false);
    tg_entry *e = tg_record(t, TG_OP_SLICE, out, x, NULL);
    if (e) e->i[0] = axis, e->i[1] = start, e->i[2] = step;
    return out;
}

TG_BACKWARD(slice) {
    tg_tensor_slice_place(tg_var_grad(t, e->in[0]), &e->out->grad, (int)e->i[0], e->i[1], e->i[2], true);
}

/* ---------------------------------------------------------------- views: flatten, unflatten, squeeze, unsqueeze */

/* y = x with axes start..end (inclusive, negatives from the end) merged into one, by tg_reshape. */
tg_var *tg_flatten_(TG_LOC, tg_tape *t, tg_var *x, int start, int end) {
    tg_shape xs = x->val.shape, s = {0};
    if (xs.ndim == 0) return tg_reshape_(file, line, t, x, TG_SHAPE(1));
    start = tg_check_axis(file, line, "flatten", start, xs.ndim);
    end = tg_check_axis(file, line, "flatten", end, xs.ndim);
    OP_CHECK(start <= end, "flatten: start axis %d comes after end axis %d", start, end);
    for (int k = 0; k < xs.ndim; k++) {
        if (k <= start || k > end) s.d[s.ndim++] = xs.d[k];
        else s.d[s.ndim - 1] *= xs.d[k];
    }
    return tg_reshape_(file, line, t, x, s);
}

/* y = x with axis split into sizes (one of them may be -1: inferred), by tg_reshape. */
tg_var *tg_unflatten_(TG_LOC, tg_tape *t, tg_var *x, int axis, tg_shape sizes) {
    char b1[96], b2[96];
    tg_shape xs = x->val.shape, s = {0};
    axis = tg_check_axis(file, line, "unflatten", axis, xs.ndim);
    int64_t known = 1;
    int infer = -1;
    bool ok = sizes.ndim >= 1 && xs.ndim - 1 + sizes.ndim <= TG_MAX_DIMS;
    for (int k = 0; k < sizes.ndim; k++) {
        if (sizes.d[k] == -1 && infer < 0) infer = k;
        else if (sizes.d[k] < 0) ok = false;
        else known *= sizes.d[k];
    }
    if (ok && infer >= 0 && (ok = known > 0 && xs.d[axis] % known == 0)) sizes.d[infer] = xs.d[axis] / known;
    OP_CHECK(ok && tg_shape_numel(sizes) == xs.d[axis], "unflatten: sizes %s do not split axis %d of %s",
             tg_shape_str(sizes, b1), axis, tg_shape_str(xs, b2));
    for (int k = 0; k < xs.ndim; k++) {
        if (k != axis) s.d[s.ndim++] = xs.d[k];
        else
            for (int j = 0; j < sizes.ndim; j++) s.d[s.ndim++] = sizes.d[j];
    }
    return tg_reshape_(file, line, t, x, s);
}

/* y = x without axis if its size is 1, else x's shape (torch.squeeze(dim)), by tg_reshape. */
tg_var *tg_squeeze_(TG_LOC, tg_tape *t, tg_var *x, int axis) {
    tg_shape s = x->val.shape;
    if (s.ndim == 0) return tg_reshape_(file, line, t, x, s);
    axis = tg_check_axis(file, line, "squeeze", axis, s.ndim);
    if (s.d[axis] == 1) s = tg_reduced_shape(s, axis, false);   /* the same shape as summing the axis away */
    return tg_reshape_(file, line, t, x, s);
}

/* y = x with a new axis of size 1 at axis (in [-ndim-1, ndim]), by tg_reshape. */
tg_var *tg_unsqueeze_(TG_LOC, tg_tape *t, tg_var *x, int axis) {
    tg_shape s = x->val.shape;
    OP_CHECK(s.ndim < TG_MAX_DIMS, "unsqueeze: %d dimensions plus one exceed TG_MAX_DIMS (%d)", s.ndim, TG_MAX_DIMS);
    axis = tg_check_axis(file, line, "unsqueeze", axis, s.ndim + 1);
    for (int k = s.ndim; k > axis; k--) s.d[k] = s.d[k - 1];
    s.d[axis] = 1, s.ndim++;
    return tg_reshape_(file, line, t, x, s);
}
