/*
 * kernels_reduce.c — the loops behind the max / min, log-sum-exp, softmax
 * and negative log-likelihood ops: each walks x along one axis, a "lane" at
 * a time (the n elements x[o, 0..n-1, k] for each outer o and inner k), in
 * double, single-threaded, so results do not depend on the thread count.
 */
#include "tensor/kernels.h"

#include <math.h>

/* x seen as (outer, n, inner) around axis; lane (o, k) starts at base(o, k)
 * and steps by inner. lane_values: the size of a per-lane operand, checked
 * to be outer * inner (< 0: none). */
typedef struct {
    int64_t outer, n, inner;
} lanes;

static lanes lanes_of(const char *fn, const tg_tensor *x, int axis, int64_t lane_values) {
    TG_CHECK(axis >= 0 && axis < x->shape.ndim, "%s: axis %d of a %d-dimensional tensor", fn, axis, x->shape.ndim);
    lanes l = {1, x->shape.d[axis], 1};
    for (int i = 0; i < axis; i++) l.outer *= x->shape.d[i];
    for (int i = axis + 1; i < x->shape.ndim; i++) l.inner *= x->shape.d[i];
    TG_CHECK(lane_values < 0 || lane_values == l.outer * l.inner, "%s: %lld values for %lld lanes", fn, (long long)lane_values,
             (long long)(l.outer * l.inner));
    return l;
}

static inline int64_t base(lanes l, int64_t o, int64_t k) { return o * l.n * l.inner + k; }

/* Visits every lane: o, k and r = o * inner + k (the lane's one value in out) in scope. */
#define FOR_LANES(l) \
    for (int64_t o = 0; o < (l).outer; o++) \
        for (int64_t k = 0, r = o * (l).inner; k < (l).inner; k++, r++)

static void check_index(const char *fn, const tg_tensor *idx, int64_t lane_values) {
    TG_CHECK(idx->dtype == TG_I64 && idx->numel == lane_values, "%s: indices must be %lld int64 values, got %lld %s",
             fn, (long long)lane_values, (long long)idx->numel, tg_dtype_name(idx->dtype));
}

/* ---------------------------------------------------------------- max, min */

void tg_tensor_max_axis(tg_tensor *out, tg_tensor *idx, const tg_tensor *x, int axis, bool min) {
    TG_CHECK(out || idx, "tg_tensor_max_axis: neither values nor indices wanted");
    int64_t m = out ? out->numel : idx->numel;
    lanes l = lanes_of("tg_tensor_max_axis", x, axis, m);
    TG_CHECK(l.n > 0, "tg_tensor_max_axis: axis %d is empty", axis);
    TG_CHECK(!out || out->dtype == x->dtype, "tg_tensor_max_axis: output dtype differs");
    if (idx) check_index("tg_tensor_max_axis", idx, m);
    TG_DISPATCH(x->dtype, {
        const T *xx = x->data;
        FOR_LANES(l) {
            const T *p = xx + base(l, o, k);
            T b = p[0];
            int64_t at = 0;
            for (int64_t j = 1; j < l.n && !isnan(b); j++) {   /* a NaN wins, the first one */
                T v = p[j * l.inner];
                if (isnan(v) || (min ? v < b : v > b)) b = v, at = j;
            }
            if (out) ((T *)out->data)[r] = b;
            if (idx) TG_I64P(idx)[r] = at;
        }
    });
}

void tg_tensor_argmax_last(tg_tensor *idx, const tg_tensor *x) {
    TG_CHECK(x->shape.ndim > 0, "tg_tensor_argmax_last: x is 0-dimensional");
    tg_tensor_max_axis(NULL, idx, x, x->shape.ndim - 1, false);
}

void tg_tensor_acc_ties(tg_tensor *dx, const tg_tensor *x, double v, double g) {
    TG_CHECK(dx->dtype == x->dtype && dx->numel == x->numel, "tg_tensor_acc_ties: dx and x differ");
    TG_DISPATCH(x->dtype, {
        const T *xx = x->data;
        T *d = dx->data;
        int64_t ties = 0;
        for (int64_t i = 0; i < x->numel; i++) ties += (double)xx[i] == v || (isnan(v) && isnan(xx[i]));
        for (int64_t i = 0; i < x->numel; i++)
            if ((double)xx[i] == v || (isnan(v) && isnan(xx[i]))) d[i] += (T)(g / (double)ties);
    });
}

/* ---------------------------------------------------------------- gather, scatter */

void tg_tensor_gather_axis(tg_tensor *out, const tg_tensor *x, const tg_tensor *idx, int axis, double scale) {
    lanes l = lanes_of("tg_tensor_gather_axis", x, axis, out->numel);
    check_index("tg_tensor_gather_axis", idx, out->numel);
    TG_CHECK(out->dtype == x->dtype, "tg_tensor_gather_axis: output dtype differs");
    TG_DISPATCH(x->dtype, {
        const T *xx = x->data;
        T *y = out->data;
        FOR_LANES(l) {
            int64_t j = TG_I64P(idx)[r];
            TG_CHECK(j < l.n, "tg_tensor_gather_axis: index %lld of an axis of %lld", (long long)j, (long long)l.n);
            y[r] = j < 0 ? 0 : (T)(scale * xx[base(l, o, k) + j * l.inner]);
        }
    });
}

void tg_tensor_acc_scatter_axis(tg_tensor *dx, const tg_tensor *dy, const tg_tensor *idx, int axis, double scale) {
    lanes l = lanes_of("tg_tensor_acc_scatter_axis", dx, axis, dy->numel);
    check_index("tg_tensor_acc_scatter_axis", idx, dy->numel);
    TG_CHECK(dx->dtype == dy->dtype, "tg_tensor_acc_scatter_axis: dtypes differ");
    TG_DISPATCH(dx->dtype, {
        T *d = dx->data;
        const T *g = dy->data;
        FOR_LANES(l) {
            int64_t j = TG_I64P(idx)[r];
            TG_CHECK(j < l.n, "tg_tensor_acc_scatter_axis: index %lld of an axis of %lld", (long long)j, (long long)l.n);
            if (j >= 0) d[base(l, o, k) + j * l.inner] += (T)(scale * g[r]);
        }
    });
}

int64_t tg_tensor_class_index(tg_tensor *idx, const tg_tensor *labels, int64_t classes, int64_t ignore) {
    TG_CHECK(labels->dtype == TG_I64, "tg_tensor_class_index: labels must be int64, got %s", tg_dtype_name(labels->dtype));
    check_index("tg_tensor_class_index", idx, labels->numel);
    const int64_t *y = TG_I64P(labels);
    for (int64_t i = 0; i < labels->numel; i++) {
        if (y[i] == ignore) TG_I64P(idx)[i] = -1;
        else if (y[i] >= 0 && y[i] < classes) TG_I64P(idx)[i] = y[i];
        else return i;
    }
    return -1;
}

/* ---------------------------------------------------------------- log-sum-exp */

void tg_tensor_logsumexp_axis(tg_tensor *out, const tg_tensor *x, int axis) {
    lanes l = lanes_of("tg_tensor_logsumexp_axis", x, axis, out->numel);
    TG_CHECK(out->dtype == x->dtype, "tg_tensor_logsumexp_axis: output dtype differs");
    TG_DISPATCH(x->dtype, {
        const T *xx = x->data;
        T *y = out->data;
        FOR_LANES(l) {
            const T *p = xx + base(l, o, k);
            double m = -INFINITY, s = 0;
            for (int64_t j = 0; j < l.n; j++) m = fmax(m, (double)p[j * l.inner]);
            if (isinf(m)) { y[r] = (T)m; continue; }   /* all -inf (or empty), or some +inf */
            for (int64_t j = 0; j < l.n; j++) s += exp((double)p[j * l.inner] - m);
            y[r] = (T)(m + log(s));
        }
    });
}

void tg_tensor_acc_logsumexp_grad(tg_tensor *dx, const tg_tensor *x, const tg_tensor *y, const tg_tensor *dy, int axis) {
    lanes l = lanes_of("tg_tensor_acc_logsumexp_grad", x, axis, y->numel);
    TG_CHECK(dx->numel == x->numel && dy->numel == y->numel && dx->dtype == x->dtype && dy->dtype == x->dtype,
             "tg_tensor_acc_logsumexp_grad: shapes or dtypes differ");
    TG_DISPATCH(x->dtype, {
        const T *xx = x->data, *yy = y->data, *g = dy->data;
        T *d = dx->data;
        FOR_LANES(l) {
            int64_t b = base(l, o, k), infs = 0;
            double v = yy[r];
            if (v == -INFINITY) continue;               /* e^{x - y} is 0/0: no element contributed */
            if (v == INFINITY) {                        /* the limit: the +inf elements share dy */
                for (int64_t j = 0; j < l.n; j++) infs += xx[b + j * l.inner] == (T)INFINITY;
                for (int64_t j = 0; j < l.n; j++)
                    if (xx[b + j * l.inner] == (T)INFINITY) d[b + j * l.inner] += (T)(g[r] / (double)infs);
                continue;
            }
            for (int64_t j = 0; j < l.n; j++) d[b + j * l.inner] += (T)(g[r] * exp((double)xx[b + j * l.inner] - v));
        }
    });
}

/* ---------------------------------------------------------------- softmax */

void tg_tensor_softmax(tg_tensor *out, const tg_tensor *x, int axis, bool log_) {
    TG_CHECK(out->numel == x->numel && out->dtype == x->dtype, "tg_tensor_softmax: output differs from x");
    lanes l = lanes_of("tg_tensor_softmax", x, axis, -1);
    TG_DISPATCH(x->dtype, {
        const T *xx = x->data;
        T *y = out->data;
        FOR_LANES(l) {
            int64_t b = base(l, o, k);
            double m = -INFINITY, s = 0;
            for (int64_t j = 0; j < l.n; j++) m = fmax(m, (double)xx[b + j * l.inner]);
            for (int64_t j = 0; j < l.n; j++) s += exp((double)xx[b + j * l.inner] - m);
            double ls = log(s);
            for (int64_t j = 0; j < l.n; j++) {
                double z = (double)xx[b + j * l.inner] - m;
                y[b + j * l.inner] = (T)(log_ ? z - ls : exp(z) / s);
            }
            (void)r;
        }
    });
}

void tg_tensor_acc_softmax_grad(tg_tensor *dx, const tg_tensor *y, const tg_tensor *dy, int axis, bool log_) {
    TG_CHECK(dx->numel == y->numel && dy->numel == y->numel && dx->dtype == y->dtype && dy->dtype == y->dtype,
             "tg_tensor_acc_softmax_grad: shapes or dtypes differ");
    lanes l = lanes_of("tg_tensor_acc_softmax_grad", y, axis, -1);
    TG_DISPATCH(y->dtype, {
        const T *yy = y->data, *g = dy->data;
        T *d = dx->data;
        FOR_LANES(l) {
            int64_t b = base(l, o, k);
            double s = 0;   /* softmax: sum dy y; log_softmax: sum dy */
            for (int64_t j = 0; j < l.n; j++) s += (double)g[b + j * l.inner] * (log_ ? 1.0 : (double)yy[b + j * l.inner]);
            for (int64_t j = 0; j < l.n; j++) {
                int64_t i = b + j * l.inner;
                d[i] += (T)(log_ ? g[i] - exp((double)yy[i]) * s : yy[i] * (g[i] - s));
            }
            (void)r;
        }
    });
}
