/*
 * kernels_index.c — the loops behind tensor/kernels.h's "shape and indexing"
 * section: permute, strided slices, padding windows, gather / scatter-add
 * and index_select / index_add.
 *
 * Copies move elements by their size (memcpy), so they take any dtype,
 * int64 included; the "acc" forms add, so they take float32 or float64
 * (TG_DISPATCH). Every loop runs on one thread in a fixed order, so results
 * (repeated indices accumulating in index order) are the same for any
 * thread count.
 */
#include "tensor/kernels.h"

#include <string.h>

/* Row-major strides of s, in elements. */
static void strides_of(tg_shape s, int64_t *st) {
    int64_t acc = 1;
    for (int k = s.ndim - 1; k >= 0; k--) st[k] = acc, acc *= s.d[k];
}

/* len elements from src (stride ss) to dst (stride ds): copied, or added if acc. */
static void row(tg_dtype dt, char *dst, int64_t ds, const char *src, int64_t ss, int64_t len, bool acc) {
    size_t es = tg_dtype_size(dt);
    if (!acc && ds == 1 && ss == 1) memcpy(dst, src, (size_t)len * es);
    else if (!acc)
        for (int64_t j = 0; j < len; j++) memcpy(dst + (size_t)(j * ds) * es, src + (size_t)(j * ss) * es, es);
    else
        TG_DISPATCH(dt, {
            T *d = (T *)dst; const T *s = (const T *)src;
            for (int64_t j = 0; j < len; j++) d[j * ds] += s[j * ss];
        });
}

/* The box of extents n[0..nd) walked in row-major order: dst[doff] = src[soff]
 * (or +=), the offsets moving by ds[k] and ss[k] elements along axis k. */
static void walk(tg_dtype dt, int nd, const int64_t *n, char *dst, const int64_t *ds, const char *src,
                 const int64_t *ss, bool acc) {
    size_t es = tg_dtype_size(dt);
    int64_t rows = 1, idx[TG_MAX_DIMS] = {0}, doff = 0, soff = 0;
    for (int k = 0; k < nd; k++) rows *= n[k];
    if (rows == 0) return;
    if (nd == 0) { row(dt, dst, 1, src, 1, 1, acc); return; }
    int last = nd - 1;
    rows /= n[last];
    for (int64_t r = 0; r < rows; r++) {
        row(dt, dst + (size_t)doff * es, ds[last], src + (size_t)soff * es, ss[last], n[last], acc);
        for (int k = last - 1; k >= 0; k--) {
            doff += ds[k], soff += ss[k];
            if (++idx[k] < n[k]) break;
            doff -= ds[k] * n[k], soff -= ss[k] * n[k], idx[k] = 0;
        }
    }
}

/* ---------------------------------------------------------------- permute */

void tg_tensor_permute(tg_tensor *out, const tg_tensor *x, const int *perm, bool acc) {
    char b1[96], b2[96];
    int nd = x->shape.ndim, seen = 0;
    bool ok = out->dtype == x->dtype && out->shape.ndim == nd;
    for (int k = 0; ok && k < nd; k++) {
        ok = perm[k] >= 0 && perm[k] < nd && !(seen & 1 << perm[k]) && out->shape.d[k] == x->shape.d[perm[k]];
        seen |= 1 << perm[k];
    }
    TG_CHECK(ok, "tg_tensor_permute: %s is not a permutation of %s", tg_shape_str(out->shape, b1),
             tg_shape_str(x->shape, b2));
    int64_t xs[TG_MAX_DIMS], os[TG_MAX_DIMS], ss[TG_MAX_DIMS];
    strides_of(x->shape, xs);
    strides_of(out->shape, os);
    for (int k = 0; k < nd; k++) ss[k] = xs[perm[k]];   /* output axis k walks x's axis perm[k] */
    walk(x->dtype, nd, out->shape.d, out->data, os, x->data, ss, acc);
}

/* ---------------------------------------------------------------- strided slices */

/* dense (big's shape but n_axis along axis) and big[..., start : : step, ...]
 * along axis: copied one way or the other, or added into the destination. */
static void strided(tg_tensor *big, tg_tensor *dense, int axis, int64_t start, int64_t step, bool into_big, bool acc) {
    char b1[96], b2[96];
    int nd = big->shape.ndim;
    int64_t n = axis >= 0 && axis < nd ? dense->shape.d[axis] : 0;
    bool ok = axis >= 0 && axis < nd && big->dtype == dense->dtype && dense->shape.ndim == nd && step >= 1 &&
              start >= 0 && (n == 0 || start + (n - 1) * step < big->shape.d[axis]);
    for (int k = 0; ok && k < nd; k++) ok = k == axis || big->shape.d[k] == dense->shape.d[k];
    TG_CHECK(ok, "tg_tensor_slice: %s from %lld step %lld along axis %d does not fit in %s",
             tg_shape_str(dense->shape, b1), (long long)start, (long long)step, axis, tg_shape_str(big->shape, b2));
    int64_t bs[TG_MAX_DIMS], ds[TG_MAX_DIMS];
    strides_of(big->shape, bs);
    strides_of(dense->shape, ds);
    char *b = (char *)big->data + (size_t)(start * bs[axis]) * tg_dtype_size(big->dtype);
    bs[axis] *= step;
    if (into_big) walk(big->dtype, nd, dense->shape.d, b, bs, dense->data, ds, acc);
    else walk(big->dtype, nd, dense->shape.d, dense->data, ds, b, bs, acc);
}

void tg_tensor_slice(tg_tensor *out, const tg_tensor *x, int axis, int64_t start, int64_t step, bool acc) {
    strided((tg_tensor *)x, out, axis, start, step, false, acc);
}

void tg_tensor_slice_place(tg_tensor *dst, const tg_tensor *src, int axis, int64_t start, int64_t step, bool acc) {
    strided(dst, (tg_tensor *)src, axis, start, step, true, acc);
}

/* ---------------------------------------------------------------- padding */

/* The part of x that lands in out when x[i] goes to out[i + lo]: copied
 * into out (to_out) or from out into x, or added. */
static void window(tg_tensor *out, tg_tensor *x, const int64_t *lo, bool to_out, bool acc) {
    char b1[96], b2[96];
    int nd = x->shape.ndim;
    TG_CHECK(out->dtype == x->dtype && out->shape.ndim == nd, "tg_tensor_pad: %s and %s differ in dtype or rank",
             tg_shape_str(out->shape, b1), tg_shape_str(x->shape, b2));
    int64_t os[TG_MAX_DIMS], xs[TG_MAX_DIMS], n[TG_MAX_DIMS], ooff = 0, xoff = 0;
    strides_of(out->shape, os);
    strides_of(x->shape, xs);
    for (int k = 0; k < nd; k++) {
        int64_t x0 = lo[k] < 0 ? -lo[k] : 0, o0 = lo[k] > 0 ? lo[k] : 0;
        n[k] = x->shape.d[k] - x0 < out->shape.d[k] - o0 ? x->shape.d[k] - x0 : out->shape.d[k] - o0;
        if (n[k] <= 0) return;   /* nothing overlaps */
        ooff += o0 * os[k], xoff += x0 * xs[k];
    }
    size_t es = tg_dtype_size(x->dtype);
    char *o = (char *)out->data + (size_t)ooff * es, *xp = (char *)x->data + (size_t)xoff * es;
    if (to_out) walk(x->dtype, nd, n, o, os, xp, xs, acc);
    else walk(x->dtype, nd, n, xp, xs, o, os, acc);
}

void tg_tensor_pad(tg_tensor *out, const tg_tensor *x, const int64_t *lo, double value) {
    tg_tensor_fill(out, value);
    window(out, (tg_tensor *)x, lo, true, false);
}

void tg_tensor_unpad(tg_tensor *dx, const tg_tensor *dy, const int64_t *lo, bool acc) {
    if (!acc) tg_tensor_fill(dx, 0);
    window((tg_tensor *)dy, dx, lo, false, acc);
}

/* ---------------------------------------------------------------- indices */

/* -1, or the flat position of the first entry of index outside [0, n). */
static int64_t bad_index(const tg_tensor *index, int64_t n) {
    TG_CHECK(index->dtype == TG_I64, "index kernels: indices must be int64, got %s", tg_dtype_name(index->dtype));
    const int64_t *ix = index->data;
    for (int64_t i = 0; i < index->numel; i++)
        if (ix[i] < 0 || ix[i] >= n) return i;
    return -1;
}

enum { GATHER, GATHER_ACC, SCATTER_ACC };

/* For every position p of index (row-major): a's element at p with axis
 * replaced by index[p], and b's element at p. GATHER: b = a; GATHER_ACC:
 * b += a; SCATTER_ACC: a += b. a and b have index's rank and are at least
 * its size in every dimension (a except along axis). */
static int64_t index_walk(const char *fn, tg_tensor *a, int axis, const tg_tensor *index, tg_tensor *b, int mode) {
    char b1[96], b2[96], b3[96];
    int nd = index->shape.ndim;
    bool ok = a->dtype == b->dtype && a->shape.ndim == nd && b->shape.ndim == nd && axis >= 0 && axis < (nd ? nd : 1);
    for (int k = 0; ok && k < nd; k++)
        ok = index->shape.d[k] <= b->shape.d[k] && (k == axis || index->shape.d[k] <= a->shape.d[k]);
    TG_CHECK(ok, "%s: index %s along axis %d does not fit %s and %s", fn, tg_shape_str(index->shape, b1), axis,
             tg_shape_str(a->shape, b2), tg_shape_str(b->shape, b3));
    int64_t bad = bad_index(index, nd ? a->shape.d[axis] : 1);
    if (bad >= 0) return bad;
    int64_t as[TG_MAX_DIMS] = {0}, bs[TG_MAX_DIMS] = {0}, p[TG_MAX_DIMS] = {0};
    strides_of(a->shape, as);
    strides_of(b->shape, bs);
    const int64_t *ix = index->data;
    size_t es = tg_dtype_size(a->dtype);
    for (int64_t i = 0; i < index->numel; i++) {
        int64_t ao = 0, bo = 0;
        for (int k = 0; k < nd; k++) ao += (k == axis ? ix[i] : p[k]) * as[k], bo += p[k] * bs[k];
        char *ap = (char *)a->data + (size_t)ao * es, *bp = (char *)b->data + (size_t)bo * es;
        if (mode == GATHER) memcpy(bp, ap, es);
        else row(a->dtype, mode == GATHER_ACC ? bp : ap, 1, mode == GATHER_ACC ? ap : bp, 1, 1, true);
        for (int k = nd - 1; k >= 0 && ++p[k] == index->shape.d[k]; k--) p[k] = 0;
    }
    return -1;
}

int64_t tg_tensor_gather(tg_tensor *out, const tg_tensor *x, int axis, const tg_tensor *index, bool acc) {
    return index_walk("tg_tensor_gather", (tg_tensor *)x, axis, index, out, acc ? GATHER_ACC : GATHER);
}

int64_t tg_tensor_scatter_add(tg_tensor *dst, int axis, const tg_tensor *index, const tg_tensor *src) {
    return index_walk("tg_tensor_scatter_add", dst, axis, index, (tg_tensor *)src, SCATTER_ACC);
}

/* x (outer, N, inner) and picked (outer, m, inner), m = index's numel: picked
 * row j is x's row index[j]; copied into picked, or added back into x
 * (index_add). */
static int64_t select_rows(const char *fn, tg_tensor *x, int axis, const tg_tensor *index, tg_tensor *picked,
                           bool into_x) {
    char b1[96], b2[96], b3[96];
    int64_t outer = 1, inner = 1, m = index->numel, N = axis >= 0 && axis < x->shape.ndim ? x->shape.d[axis] : 0;
    for (int k = 0; k < x->shape.ndim; k++)
        if (k != axis) *(k < axis ? &outer : &inner) *= x->shape.d[k];
    TG_CHECK(x->dtype == picked->dtype && axis >= 0 && axis < x->shape.ndim && picked->numel == outer * m * inner,
             "%s: %s indexed by %s along axis %d does not fit %s", fn, tg_shape_str(x->shape, b1),
             tg_shape_str(index->shape, b2), axis, tg_shape_str(picked->shape, b3));
    int64_t bad = bad_index(index, N);
    if (bad >= 0) return bad;
    const int64_t *ix = index->data;
    size_t es = tg_dtype_size(x->dtype);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < m; j++) {
            char *xr = (char *)x->data + (size_t)((o * N + ix[j]) * inner) * es;
            char *pr = (char *)picked->data + (size_t)((o * m + j) * inner) * es;
            if (into_x) row(x->dtype, xr, 1, pr, 1, inner, true);
            else row(x->dtype, pr, 1, xr, 1, inner, false);
        }
    return -1;
}

int64_t tg_tensor_index_select(tg_tensor *out, const tg_tensor *x, int axis, const tg_tensor *index) {
    return select_rows("tg_tensor_index_select", (tg_tensor *)x, axis, index, out, false);
}

int64_t tg_tensor_index_add(tg_tensor *dst, int axis, const tg_tensor *index, const tg_tensor *src) {
    return select_rows("tg_tensor_index_add", dst, axis, index, (tg_tensor *)src, true);
}
