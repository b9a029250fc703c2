/*
 * kernels_pool.c — the loops behind max_pool2d, avg_pool2d and
 * upsample_nearest2d. x is (N, C, H, W), out (N, C, Ho, Wo); both are walked
 * as N C planes. The planes are split over the thread pool; each is computed
 * whole by one thread in row-major order, so every result — overlapping
 * windows' gradients added into one dx element included — is the same for
 * any thread count.
 */
#include "tensor/kernels.h"

#include <math.h>

#include "tensor/pool.h"

#define WORK_GRAIN 16384   /* about this many element visits per thread range, at least */

/* Rounds a / b toward -inf (b > 0), as PyTorch's div_rtn. */
static int64_t div_floor(int64_t a, int64_t b) { return a / b - (a % b != 0 && a < 0); }

int64_t tg_pool2d_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation, bool ceil_mode) {
    int64_t span = dilation * (kernel - 1) + 1;
    int64_t out = div_floor(in + 2 * pad - span + (ceil_mode ? stride - 1 : 0), stride) + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad) out--;   /* the last window must start inside x or its left pad */
    return out;
}

/* One job over the planes: which kernel, its tensors, and the plane sizes. */
typedef struct {
    const tg_pool2d *g;
    const tg_tensor *x;   /* the (N, C, H, W) side: x, or dx's shape */
    tg_tensor *xw;        /* dx (backward) */
    const tg_tensor *y;   /* the (N, C, Ho, Wo) side: dy (backward) */
    tg_tensor *yw;        /* out (forward) */
    tg_tensor *idx;       /* max: argmax positions, y's shape */
    int64_t H, W, Ho, Wo;
} job;

static job job_of(const char *fn, const tg_tensor *big, const tg_tensor *small) {
    char b1[96], b2[96];
    TG_CHECK(big->shape.ndim == 4 && small->shape.ndim == 4 && big->shape.d[0] == small->shape.d[0] &&
                 big->shape.d[1] == small->shape.d[1],
             "%s: wants (N, C, H, W) and (N, C, Ho, Wo), got %s and %s", fn, tg_shape_str(big->shape, b1),
             tg_shape_str(small->shape, b2));
    TG_CHECK(big->dtype == small->dtype, "%s: dtypes differ", fn);
    return (job){.H = big->shape.d[2], .W = big->shape.d[3], .Ho = small->shape.d[2], .Wo = small->shape.d[3]};
}

static void check_geom(const char *fn, const tg_pool2d *g) {
    for (int k = 0; k < 2; k++)
        TG_CHECK(g->kernel[k] >= 1 && g->stride[k] >= 1 && g->dilation[k] >= 1 && g->padding[k] >= 0,
                 "%s: kernel, stride and dilation must be >= 1 and padding >= 0 (axis %d: %lld, %lld, %lld, %lld)", fn,
                 k, (long long)g->kernel[k], (long long)g->stride[k], (long long)g->dilation[k],
                 (long long)g->padding[k]);
}

/* Runs fn over the planes of j, ranges sized by per_plane element visits. */
static void over_planes(const tg_tensor *big, int64_t per_plane, tg_range_fn fn, job *j) {
    int64_t planes = big->shape.d[0] * big->shape.d[1];
    int64_t grain = per_plane > 0 ? WORK_GRAIN / per_plane : planes;
    tg_parallel_for(planes, grain < 1 ? 1 : grain, fn, j);
}

/* The window of output (o) along one axis: [*lo, *hi) of the input, clipped to
 * it, stepping by dilation from the first element at or after 0. */
static void window(int64_t o, int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, int64_t *lo, int64_t *hi) {
    int64_t start = o * s - p, end = start + (k - 1) * d + 1;
    while (start < 0) start += d;
    *lo = start, *hi = end < in ? end : in;
}

/* ---------------------------------------------------------------- max_pool2d */

static void max_range(void *ctx, int64_t p0, int64_t p1) {
    const job *j = ctx;
    const tg_pool2d *g = j->g;
    int64_t H = j->H, W = j->W, Ho = j->Ho, Wo = j->Wo;
    TG_DISPATCH(j->x->dtype, {
        for (int64_t p = p0; p < p1; p++) {
            const T *x = (const T *)j->x->data + p * H * W;
            T *y = (T *)j->yw->data + p * Ho * Wo;
            int64_t *at = j->idx ? TG_I64P(j->idx) + p * Ho * Wo : NULL;
            for (int64_t oh = 0; oh < Ho; oh++) {
                int64_t h0, h1;
                window(oh, H, g->kernel[0], g->stride[0], g->padding[0], g->dilation[0], &h0, &h1);
                for (int64_t ow = 0; ow < Wo; ow++) {
                    int64_t w0, w1;
                    window(ow, W, g->kernel[1], g->stride[1], g->padding[1], g->dilation[1], &w0, &w1);
                    T best = -INFINITY;
                    int64_t bi = h0 < h1 && w0 < w1 ? h0 * W + w0 : -1;   /* PyTorch's start: the first element */
                    for (int64_t ih = h0; ih < h1; ih += g->dilation[0])
                        for (int64_t iw = w0; iw < w1; iw += g->dilation[1]) {
                            T v = x[ih * W + iw];
                            if (v > best || isnan(v)) best = v, bi = ih * W + iw;   /* ties: the first; NaN: the last */
                        }
                    y[oh * Wo + ow] = best;
                    if (at) at[oh * Wo + ow] = bi;
                }
            }
        }
    });
}

void tg_tensor_max_pool2d(tg_tensor *out, tg_tensor *idx, const tg_tensor *x, const tg_pool2d *g) {
    check_geom("tg_tensor_max_pool2d", g);
    job j = job_of("tg_tensor_max_pool2d", x, out);
    TG_CHECK(!idx || (idx->dtype == TG_I64 && idx->numel == out->numel), "tg_tensor_max_pool2d: idx must be int64 of out's size");
    j.g = g, j.x = x, j.yw = out, j.idx = idx;
    over_planes(x, j.Ho * j.Wo * g->kernel[0] * g->kernel[1], max_range, &j);
}

static void max_grad_range(void *ctx, int64_t p0, int64_t p1) {
    const job *j = ctx;
    int64_t HW = j->H * j->W, n = j->Ho * j->Wo;
    TG_DISPATCH(j->xw->dtype, {
        for (int64_t p = p0; p < p1; p++) {
            T *dx = (T *)j->xw->data + p * HW;
            const T *dy = (const T *)j->y->data + p * n;
            const int64_t *at = TG_I64P(j->idx) + p * n;
            for (int64_t o = 0; o < n; o++)
                if (at[o] >= 0) dx[at[o]] += dy[o];   /* in output order: overlapping windows add in a fixed order */
        }
    });
}

void tg_tensor_acc_max_pool2d_grad(tg_tensor *dx, const tg_tensor *dy, const tg_tensor *idx) {
    job j = job_of("tg_tensor_acc_max_pool2d_grad", dx, dy);
    TG_CHECK(idx->dtype == TG_I64 && idx->numel == dy->numel, "tg_tensor_acc_max_pool2d_grad: idx must be int64 of dy's size");
    j.xw = dx, j.y = dy, j.idx = (tg_tensor *)idx;
    over_planes(dx, j.Ho * j.Wo, max_grad_range, &j);
}

/* ---------------------------------------------------------------- avg_pool2d */

/* Output (o)'s window along one axis, clipped to x: [*lo, *hi); returns the
 * count along that axis the divisor uses (the window clipped to the padded
 * input if count_include_pad, else to x). */
static int64_t avg_window(int64_t o, int64_t in, int64_t k, int64_t s, int64_t p, bool include_pad, int64_t *lo,
                          int64_t *hi) {
    int64_t start = o * s - p, end = start + k;
    if (end > in + p) end = in + p;
    int64_t padded = end - start;
    *lo = start < 0 ? 0 : start, *hi = end < in ? end : in;
    return include_pad ? padded : *hi - *lo;
}

static void avg_range(void *ctx, int64_t p0, int64_t p1) {
    const job *j = ctx;
    const tg_pool2d *g = j->g;
    int64_t H = j->H, W = j->W, Ho = j->Ho, Wo = j->Wo;
    bool fwd = j->yw != NULL;
    TG_DISPATCH(j->x->dtype, {
        for (int64_t p = p0; p < p1; p++) {
            const T *x = fwd ? (const T *)j->x->data + p * H * W : NULL;
            T *dx = fwd ? NULL : (T *)j->xw->data + p * H * W;
            T *y = fwd ? (T *)j->yw->data + p * Ho * Wo : NULL;
            const T *dy = fwd ? NULL : (const T *)j->y->data + p * Ho * Wo;
            for (int64_t oh = 0; oh < Ho; oh++) {
                int64_t h0, h1;
                int64_t ch = avg_window(oh, H, g->kernel[0], g->stride[0], g->padding[0], g->count_include_pad, &h0, &h1);
                for (int64_t ow = 0; ow < Wo; ow++) {
                    int64_t w0, w1;
                    int64_t cw = avg_window(ow, W, g->kernel[1], g->stride[1], g->padding[1], g->count_include_pad, &w0, &w1);
                    double count = (double)(ch * cw);
                    if (fwd) {
                        double s = 0;
                        for (int64_t ih = h0; ih < h1; ih++)
                            for (int64_t iw = w0; iw < w1; iw++) s += x[ih * W + iw];
                        y[oh * Wo + ow] = count > 0 ? (T)(s / count) : 0;   /* no element (never, given the checks): 0 as PyTorch */
                    } else if (count > 0) {
                        double d = dy[oh * Wo + ow] / count;
                        for (int64_t ih = h0; ih < h1; ih++)
                            for (int64_t iw = w0; iw < w1; iw++) dx[ih * W + iw] += (T)d;
                    }
                }
            }
        }
    });
}

void tg_tensor_avg_pool2d(tg_tensor *out, const tg_tensor *x, const tg_pool2d *g) {
    check_geom("tg_tensor_avg_pool2d", g);
    job j = job_of("tg_tensor_avg_pool2d", x, out);
    j.g = g, j.x = x, j.yw = out;
    over_planes(x, j.Ho * j.Wo * g->kernel[0] * g->kernel[1], avg_range, &j);
}

void tg_tensor_acc_avg_pool2d_grad(tg_tensor *dx, const tg_tensor *dy, const tg_pool2d *g) {
    check_geom("tg_tensor_acc_avg_pool2d_grad", g);
    job j = job_of("tg_tensor_acc_avg_pool2d_grad", dx, dy);
    j.g = g, j.x = dx, j.xw = dx, j.y = dy;
    over_planes(dx, j.Ho * j.Wo * g->kernel[0] * g->kernel[1], avg_range, &j);
}

/* ---------------------------------------------------------------- upsample_nearest2d */

static job upsample_job(const char *fn, const tg_tensor *x, const tg_tensor *y) {
    char b1[96], b2[96];
    job j = job_of(fn, x, y);
    TG_CHECK(j.H > 0 && j.W > 0 && j.Ho % j.H == 0 && j.Wo % j.W == 0, "%s: %s is not an integer scaling of %s", fn,
             tg_shape_str(y->shape, b1), tg_shape_str(x->shape, b2));
    return j;
}

static void upsample_range(void *ctx, int64_t p0, int64_t p1) {
    const job *j = ctx;
    int64_t H = j->H, W = j->W, Ho = j->Ho, Wo = j->Wo, sh = Ho / H, sw = Wo / W;
    TG_DISPATCH(j->x->dtype, {
        for (int64_t p = p0; p < p1; p++) {
            if (j->yw) {   /* forward: y[h, w] = x[h / sh, w / sw] */
                const T *x = (const T *)j->x->data + p * H * W;
                T *y = (T *)j->yw->data + p * Ho * Wo;
                for (int64_t oh = 0; oh < Ho; oh++)
                    for (int64_t ow = 0; ow < Wo; ow++) y[oh * Wo + ow] = x[(oh / sh) * W + ow / sw];
            } else {       /* backward: dx[h, w] += the sum of its sh x sw block of dy */
                T *dx = (T *)j->xw->data + p * H * W;
                const T *dy = (const T *)j->y->data + p * Ho * Wo;
                for (int64_t ih = 0; ih < H; ih++)
                    for (int64_t iw = 0; iw < W; iw++) {
                        double s = 0;
                        for (int64_t a = 0; a < sh; a++)
                            for (int64_t b = 0; b < sw; b++) s += dy[(ih * sh + a) * Wo + iw * sw + b];
                        dx[ih * W + iw] += (T)s;
                    }
            }
        }
    });
}

void tg_tensor_upsample_nearest2d(tg_tensor *out, const tg_tensor *x) {
    job j = upsample_job("tg_tensor_upsample_nearest2d", x, out);
    j.x = x, j.yw = out;
    over_planes(x, j.Ho * j.Wo, upsample_range, &j);
}

void tg_tensor_acc_upsample_nearest2d_grad(tg_tensor *dx, const tg_tensor *dy) {
    job j = upsample_job("tg_tensor_acc_upsample_nearest2d_grad", dx, dy);
    j.x = dx, j.xw = dx, j.y = dy;
    over_planes(dx, j.Ho * j.Wo, upsample_range, &j);
}
