/*
 * conv.c — 2-D convolution and its transpose as packed GEMMs over im2col.
 *
 * Letters (conv2d's view; conv_transpose2d is the same geometry read
 * backwards, its input being conv2d's output):
 *   N, C, H, W      the conv input x (N, C, H, W)
 *   O, kh, kw       the weight w (O, C / G, kh, kw), G groups
 *   Ho, Wo          the conv output y (N, O, Ho, Wo)
 *   K = C/G kh kw   one group's rows of col; P = Ho Wo; L = N P
 *
 * Layout. The whole batch is one matrix: col (C kh kw, L) holds in row
 * (c, ki, kj) and column (n, oh, ow) the input pixel that weight tap meets
 * (0 in the padding). A group's rows are consecutive, so each group is one
 * GEMM whose long dimension is L = N Ho Wo, never one small product per
 * image. The products work on "channel-major" copies (C, L) of the NCHW
 * tensors (cm_from / cm_to move between them, the bias folded in):
 *
 *   forward           yt (O, L)  = W (O, K) @ col (K, L)         then y = yt in NCHW + b
 *   weight gradient   dW (O, K) += dyt (O, L) @ col^T (L, K)     the batch summed inside the GEMM
 *   input gradient    dcol (K, L) = W^T (K, O) @ dyt (O, L)       then col2im adds it into dx
 *
 * conv_transpose2d's forward is the input-gradient path (its x as dyt) and
 * its backward is the forward path (dx) and the weight path (dW with x as
 * dyt and im2col of dy), so the two ops share every loop below.
 *
 * Threads and determinism. The GEMMs thread themselves and sum in an order
 * fixed by the shapes (tensor/gemm.h). im2col, col2im and the layout copies
 * run on the pool (tensor/pool.h) over ranges of whole rows or planes, each
 * output element written by one thread in a fixed order; bias sums run one
 * channel per task, in double, n then (h, w). Results are bit-identical for
 * any thread count.
 *
 * Memory: col, dcol and the channel-major copies come from the caller's
 * scratch arena (the tape's arena in autograd), so a steady-state step
 * allocates nothing.
 */
#include <string.h>

#include "tensor/kernels.h"
#include "tensor/pool.h"

#define GRAIN_ELEMS 16384   /* elements per parallel range, at least */

typedef struct {
    int64_t N, C, H, W;          /* conv input */
    int64_t O, kh, kw, G;        /* weight, groups */
    int64_t Ho, Wo;              /* conv output */
    int64_t sh, sw, ph, pw, dh, dw;
} geom;

static inline int64_t one_if_zero(int64_t v) { return v ? v : 1; }

int64_t tg_conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
    stride = one_if_zero(stride), dil = one_if_zero(dil);
    int64_t span = in + 2 * pad - dil * (k - 1) - 1;
    return span < 0 ? 0 : span / stride + 1;
}

int64_t tg_conv_transpose_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t out_pad) {
    stride = one_if_zero(stride), dil = one_if_zero(dil);
    return (in - 1) * stride - 2 * pad + dil * (k - 1) + out_pad + 1;
}

/* The geometry of the convolution in (N, C, H, W) -> out (N, O, Ho, Wo)
 * through w (O, C / G, kh, kw), checked (fn names the kernel). */
static geom geom_of(const char *fn, const tg_tensor *in, const tg_tensor *w, const tg_tensor *out, tg_conv_args a) {
    char b1[96], b2[96], b3[96];
    geom g = {0};
    bool ok = in->shape.ndim == 4 && w->shape.ndim == 4 && out->shape.ndim == 4 && in->dtype == w->dtype &&
              in->dtype == out->dtype;
    if (ok) {
        g = (geom){in->shape.d[0], in->shape.d[1], in->shape.d[2], in->shape.d[3],
                   w->shape.d[0], w->shape.d[2], w->shape.d[3], one_if_zero(a.groups),
                   out->shape.d[2], out->shape.d[3],
                   one_if_zero(a.stride[0]), one_if_zero(a.stride[1]), a.padding[0], a.padding[1],
                   one_if_zero(a.dilation[0]), one_if_zero(a.dilation[1])};
        ok = g.G > 0 && g.C % g.G == 0 && g.O % g.G == 0 && w->shape.d[1] * g.G == g.C && out->shape.d[0] == g.N &&
             out->shape.d[1] == g.O && g.sh > 0 && g.sw > 0 && g.dh > 0 && g.dw > 0 && g.ph >= 0 && g.pw >= 0 &&
             g.kh > 0 && g.kw > 0;
    }
    TG_CHECK(ok, "%s: input %s, weight %s, output %s (groups %lld) do not fit in (N, C, H, W), w (O, C / groups, "
             "kh, kw), out (N, O, Ho, Wo)", fn, tg_shape_str(in->shape, b1), tg_shape_str(w->shape, b2),
             tg_shape_str(out->shape, b3), (long long)one_if_zero(a.groups));
    return g;
}

static void check_bias(const char *fn, const tg_tensor *b, int64_t channels, tg_dtype dt) {
    char b1[96];
    TG_CHECK(!b || (b->shape.ndim == 1 && b->shape.d[0] == channels && b->dtype == dt),
             "%s: bias %s does not fit (%lld)", fn, b ? tg_shape_str(b->shape, b1) : "", (long long)channels);
}

static inline void *at(const tg_tensor *t, int64_t off) {
    return (char *)t->data + off * (int64_t)tg_dtype_size(t->dtype);
}

static void gemm(tg_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda,
                 const void *B, int64_t ldb, double beta, void *C, int64_t ldc) {
    if (dt == TG_F32) tg_gemm_f32(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, (float)beta, C, ldc);
    else tg_gemm_f64(ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

/* ---------------------------------------------------------------- layouts */

/* The range [lo, hi) of output columns ow whose input column ow s + off lies in [0, W). */
static inline void valid_range(int64_t Wo, int64_t W, int64_t s, int64_t off, int64_t *lo, int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = W - 1 - off < 0 ? 0 : (W - 1 - off) / s + 1;
    if (h > Wo) h = Wo;
    if (l > h) l = h;
    *lo = l, *hi = h;
}

typedef struct {
    const geom *g;
    const tg_tensor *x;    /* (N, C, H, W), or (N, C, S) / (C, N S) for the layout copies */
    tg_tensor *col;        /* (C kh kw, L), or the other layout */
    const tg_tensor *bias; /* cm_to: (C) or NULL */
    int64_t C, S;          /* layout copies: channels and pixels per image */
    bool acc;
} conv_job;

/* col for items i = r N + n: row r = (c, ki, kj), image n. Consecutive
 * items write consecutive memory; the planes they read are re-read by the
 * next tap of the same channel while still in cache. */
static void im2col_range(void *ctx, int64_t begin, int64_t end) {
    const conv_job *j = ctx;
    const geom *g = j->g;
    int64_t P = g->Ho * g->Wo, L = g->N * P;
    TG_DISPATCH(j->x->dtype, {
        const T *x = j->x->data;
        T *col = j->col->data;
        for (int64_t i = begin; i < end; i++) {
            int64_t r = i / g->N, n = i % g->N, c = r / (g->kh * g->kw), ki = r / g->kw % g->kh, kj = r % g->kw;
            const T *xp = x + (n * g->C + c) * g->H * g->W;
            T *dst = col + r * L + n * P;
            int64_t off = kj * g->dw - g->pw, lo, hi;
            valid_range(g->Wo, g->W, g->sw, off, &lo, &hi);
            for (int64_t oh = 0; oh < g->Ho; oh++, dst += g->Wo) {
                int64_t ih = oh * g->sh - g->ph + ki * g->dh;
                if (ih < 0 || ih >= g->H) {
                    memset(dst, 0, (size_t)g->Wo * sizeof(T));
                    continue;
                }
                const T *row = xp + ih * g->W + off;
                for (int64_t ow = 0; ow < lo; ow++) dst[ow] = 0;
                if (g->sw == 1) memcpy(dst + lo, row + lo, (size_t)(hi - lo) * sizeof(T));
                else for (int64_t ow = lo; ow < hi; ow++) dst[ow] = row[ow * g->sw];
                for (int64_t ow = hi; ow < g->Wo; ow++) dst[ow] = 0;
            }
        }
    });
}

/* dx planes for items i = c N + n (plane (n, c)): every tap of that plane,
 * in (ki, kj, oh, ow) order, so each element sums in a fixed order.
 * Consecutive items read consecutive stretches of the same col rows. */
static void col2im_range(void *ctx, int64_t begin, int64_t end) {
    const conv_job *j = ctx;
    const geom *g = j->g;
    int64_t P = g->Ho * g->Wo, L = g->N * P;
    TG_DISPATCH(j->col->dtype, {
        T *dx = j->col->data;          /* the image (written) */
        const T *col = j->x->data;     /* the columns (read) */
        for (int64_t i = begin; i < end; i++) {
            int64_t c = i / g->N, n = i % g->N;
            T *xp = dx + (n * g->C + c) * g->H * g->W;
            for (int64_t ki = 0; ki < g->kh; ki++)
                for (int64_t kj = 0; kj < g->kw; kj++) {
                    const T *src = col + ((c * g->kh + ki) * g->kw + kj) * L + n * P;
                    int64_t off = kj * g->dw - g->pw, lo, hi;
                    valid_range(g->Wo, g->W, g->sw, off, &lo, &hi);
                    for (int64_t oh = 0; oh < g->Ho; oh++, src += g->Wo) {
                        int64_t ih = oh * g->sh - g->ph + ki * g->dh;
                        if (ih < 0 || ih >= g->H) continue;
                        T *row = xp + ih * g->W + off;
                        if (g->sw == 1) for (int64_t ow = lo; ow < hi; ow++) row[ow] += src[ow];
                        else for (int64_t ow = lo; ow < hi; ow++) row[ow * g->sw] += src[ow];
                    }
                }
        }
    });
}

static int64_t grain_for(int64_t elems_per_item) {
    int64_t gr = GRAIN_ELEMS / (elems_per_item > 0 ? elems_per_item : 1);
    return gr > 0 ? gr : 1;
}

/* col (C kh kw, N Ho Wo) = the patches of x (N, C, H, W). */
static void im2col(const geom *g, tg_tensor *col, const tg_tensor *x) {
    conv_job j = {.g = g, .x = x, .col = col};
    tg_parallel_for(g->N * g->C * g->kh * g->kw, grain_for(g->Ho * g->Wo), im2col_range, &j);
}

/* dx (N, C, H, W) += the patches of col summed back onto their pixels. */
static void col2im_acc(const geom *g, tg_tensor *dx, const tg_tensor *col) {
    conv_job j = {.g = g, .x = col, .col = dx};
    tg_parallel_for(g->N * g->C, grain_for(g->kh * g->kw * g->Ho * g->Wo), col2im_range, &j);
}

/* Items i = c N + n: dst (C, N S)[c, n S ..] = src (N, C, S)[n, c, ..]. */
static void cm_from_range(void *ctx, int64_t begin, int64_t end) {
    const conv_job *j = ctx;
    int64_t N = j->x->numel / (j->C * j->S), S = j->S;
    size_t es = tg_dtype_size(j->x->dtype);
    for (int64_t i = begin; i < end; i++) {
        int64_t c = i / N, n = i % N;
        memcpy((char *)j->col->data + (size_t)(i * S) * es, (const char *)j->x->data + (size_t)((n * j->C + c) * S) * es,
               (size_t)S * es);
    }
}

/* Items i = n C + c: dst (N, C, S)[n, c, ..] (+)= src (C, N S)[c, n S ..] + b[c]. */
static void cm_to_range(void *ctx, int64_t begin, int64_t end) {
    const conv_job *j = ctx;
    int64_t C = j->C, S = j->S, N = j->col->numel / (C * S);
    TG_DISPATCH(j->x->dtype, {
        const T *src = j->x->data, *b = j->bias ? j->bias->data : NULL;
        T *dst = j->col->data;
        for (int64_t i = begin; i < end; i++) {
            int64_t n = i / C, c = i % C;
            const T *s = src + (c * N + n) * S;
            T *d = dst + i * S, bc = b ? b[c] : 0;
            if (j->acc) for (int64_t k = 0; k < S; k++) d[k] += s[k] + bc;
            else for (int64_t k = 0; k < S; k++) d[k] = s[k] + bc;
        }
    });
}

/* (C, N S) channel-major copy of x (N, C, S...) in the arena. */
static tg_tensor *cm_from(tg_arena *ar, const tg_tensor *x) {
    int64_t N = x->shape.d[0], C = x->shape.d[1], S = x->numel / (N * C > 0 ? N * C : 1);
    tg_tensor *t = tg_tensor_new(ar, x->dtype, TG_SHAPE(C, N * S));
    conv_job j = {.x = x, .col = t, .C = C, .S = S};
    tg_parallel_for(N * C, grain_for(S), cm_from_range, &j);
    return t;
}

/* y (N, C, S...) = (or += if acc) src (C, N S) + b per channel (b may be NULL). */
static void cm_to(tg_tensor *y, const tg_tensor *src, const tg_tensor *b, bool acc) {
    int64_t N = y->shape.d[0], C = y->shape.d[1], S = y->numel / (N * C > 0 ? N * C : 1);
    conv_job j = {.x = src, .col = y, .bias = b, .C = C, .S = S, .acc = acc};
    tg_parallel_for(N * C, grain_for(S), cm_to_range, &j);
}

/* db[c] += sum over n, then s of v[n nstride + c cstride + s]: one channel a task. */
typedef struct {
    tg_tensor *db;
    const tg_tensor *v;
    int64_t N, S, nstride, cstride;
} bias_job;

static void bias_range(void *ctx, int64_t begin, int64_t end) {
    const bias_job *j = ctx;
    TG_DISPATCH(j->v->dtype, {
        const T *v = j->v->data;
        T *db = j->db->data;
        for (int64_t c = begin; c < end; c++) {
            double s = 0;
            for (int64_t n = 0; n < j->N; n++) {
                const T *p = v + n * j->nstride + c * j->cstride;
                for (int64_t k = 0; k < j->S; k++) s += p[k];
            }
            db[c] += (T)s;
        }
    });
}

static void bias_acc(tg_tensor *db, const tg_tensor *v, int64_t N, int64_t S, int64_t nstride, int64_t cstride) {
    bias_job j = {db, v, N, S, nstride, cstride};
    tg_parallel_for(db->numel, grain_for(N * S), bias_range, &j);
}

/* ---------------------------------------------------------------- the three products */

/* yt (O, L) = W_g (O/G, K) @ col_g (K, L) for each group g. */
static void gemm_forward(const geom *g, tg_tensor *yt, const tg_tensor *w, const tg_tensor *col) {
    int64_t K = g->C / g->G * g->kh * g->kw, Og = g->O / g->G, L = g->N * g->Ho * g->Wo;
    for (int64_t k = 0; k < g->G; k++)
        gemm(w->dtype, false, false, Og, L, K, at(w, k * Og * K), K, at(col, k * K * L), L, 0.0, at(yt, k * Og * L), L);
}

/* dW_g (O/G, K) += dyt_g (O/G, L) @ col_g^T: the sum over the batch is the GEMM's inner dimension. */
static void gemm_weight(const geom *g, tg_tensor *dw, const tg_tensor *dyt, const tg_tensor *col) {
    int64_t K = g->C / g->G * g->kh * g->kw, Og = g->O / g->G, L = g->N * g->Ho * g->Wo;
    for (int64_t k = 0; k < g->G; k++)
        gemm(dw->dtype, false, true, Og, K, L, at(dyt, k * Og * L), L, at(col, k * K * L), L, 1.0, at(dw, k * Og * K), K);
}

/* dcol_g (K, L) = W_g^T (K, O/G) @ dyt_g (O/G, L). */
static void gemm_input(const geom *g, tg_tensor *dcol, const tg_tensor *w, const tg_tensor *dyt) {
    int64_t K = g->C / g->G * g->kh * g->kw, Og = g->O / g->G, L = g->N * g->Ho * g->Wo;
    for (int64_t k = 0; k < g->G; k++)
        gemm(w->dtype, true, false, K, L, Og, at(w, k * Og * K), K, at(dyt, k * Og * L), L, 0.0, at(dcol, k * K * L), L);
}

static tg_tensor *new_col(tg_arena *ar, const geom *g, tg_dtype dt) {
    return tg_tensor_new(ar, dt, TG_SHAPE(g->C * g->kh * g->kw, g->N * g->Ho * g->Wo));
}

/* ---------------------------------------------------------------- conv2d */

static geom conv2d_geom(const char *fn, const tg_tensor *x, const tg_tensor *w, const tg_tensor *y, tg_conv_args a) {
    geom g = geom_of(fn, x, w, y, a);
    TG_CHECK(g.Ho == tg_conv_out_size(g.H, g.kh, g.sh, g.ph, g.dh) && g.Wo == tg_conv_out_size(g.W, g.kw, g.sw, g.pw, g.dw) &&
                 g.Ho > 0 && g.Wo > 0,
             "%s: output %lld x %lld is not conv2d's %lld x %lld", fn, (long long)g.Ho, (long long)g.Wo,
             (long long)tg_conv_out_size(g.H, g.kh, g.sh, g.ph, g.dh), (long long)tg_conv_out_size(g.W, g.kw, g.sw, g.pw, g.dw));
    return g;
}

tg_tensor *tg_conv2d_forward(tg_arena *scratch, tg_tensor *y, const tg_tensor *x, const tg_tensor *w,
                             const tg_tensor *b, tg_conv_args a, bool acc) {
    geom g = conv2d_geom("tg_conv2d_forward", x, w, y, a);
    check_bias("tg_conv2d_forward", b, g.O, x->dtype);
    tg_tensor *col = new_col(scratch, &g, x->dtype);
    tg_tensor *yt = tg_tensor_new(scratch, x->dtype, TG_SHAPE(g.O, g.N * g.Ho * g.Wo));
    im2col(&g, col, x);
    gemm_forward(&g, yt, w, col);
    cm_to(y, yt, b, acc);
    return col;
}

void tg_conv2d_backward(tg_arena *scratch, tg_tensor *dx, tg_tensor *dw, tg_tensor *db, const tg_tensor *dy,
                        const tg_tensor *x, const tg_tensor *w, const tg_tensor *col, tg_conv_args a) {
    geom g = conv2d_geom("tg_conv2d_backward", x, w, dy, a);
    check_bias("tg_conv2d_backward", db, g.O, x->dtype);
    TG_CHECK((!dx || (dx->dtype == x->dtype && tg_shape_eq(dx->shape, x->shape))) &&
                 (!dw || (dw->dtype == w->dtype && tg_shape_eq(dw->shape, w->shape))) &&
                 (!col || (col->dtype == x->dtype && col->numel == g.C * g.kh * g.kw * g.N * g.Ho * g.Wo)),
             "tg_conv2d_backward: dx, dw or col of the wrong shape or dtype");
    if (!dx && !dw && !db) return;
    tg_tensor *dyt = cm_from(scratch, dy);
    if (db) bias_acc(db, dyt, 1, g.N * g.Ho * g.Wo, 0, g.N * g.Ho * g.Wo);
    if (dw) {
        if (!col) {
            tg_tensor *c = new_col(scratch, &g, x->dtype);
            im2col(&g, c, x);
            col = c;
        }
        gemm_weight(&g, dw, dyt, col);
    }
    if (dx) {
        tg_tensor *dcol = new_col(scratch, &g, x->dtype);
        gemm_input(&g, dcol, w, dyt);
        col2im_acc(&g, dx, dcol);
    }
}

/* ---------------------------------------------------------------- conv_transpose2d */

/* conv2d's geometry from y (its input) to x (its output) through w. */
static geom transpose_geom(const char *fn, const tg_tensor *y, const tg_tensor *x, const tg_tensor *w, tg_conv_args a) {
    geom g = geom_of(fn, y, w, x, a);
    int64_t oph = a.output_padding[0], opw = a.output_padding[1];
    TG_CHECK(g.H == tg_conv_transpose_out_size(g.Ho, g.kh, g.sh, g.ph, g.dh, oph) &&
                 g.W == tg_conv_transpose_out_size(g.Wo, g.kw, g.sw, g.pw, g.dw, opw) && oph >= 0 && opw >= 0,
             "%s: output %lld x %lld is not conv_transpose2d's %lld x %lld", fn, (long long)g.H, (long long)g.W,
             (long long)tg_conv_transpose_out_size(g.Ho, g.kh, g.sh, g.ph, g.dh, oph),
             (long long)tg_conv_transpose_out_size(g.Wo, g.kw, g.sw, g.pw, g.dw, opw));
    return g;
}

void tg_conv_transpose2d_forward(tg_arena *scratch, tg_tensor *y, const tg_tensor *x, const tg_tensor *w,
                                 const tg_tensor *b, tg_conv_args a) {
    geom g = transpose_geom("tg_conv_transpose2d_forward", y, x, w, a);
    check_bias("tg_conv_transpose2d_forward", b, g.C, x->dtype);
    if (b) {
        tg_tensor bv = tg_tensor_wrap(b->dtype, TG_SHAPE(g.C, 1, 1), b->data);
        tg_tensor_expand(y, &bv);
    } else {
        tg_tensor_fill(y, 0);
    }
    tg_tensor *xt = cm_from(scratch, x);
    tg_tensor *dcol = new_col(scratch, &g, x->dtype);
    gemm_input(&g, dcol, w, xt);
    col2im_acc(&g, y, dcol);
}

void tg_conv_transpose2d_backward(tg_arena *scratch, tg_tensor *dx, tg_tensor *dw, tg_tensor *db, const tg_tensor *dy,
                                  const tg_tensor *x, const tg_tensor *w, tg_conv_args a) {
    geom g = transpose_geom("tg_conv_transpose2d_backward", dy, x, w, a);
    check_bias("tg_conv_transpose2d_backward", db, g.C, x->dtype);
    TG_CHECK((!dx || (dx->dtype == x->dtype && tg_shape_eq(dx->shape, x->shape))) &&
                 (!dw || (dw->dtype == w->dtype && tg_shape_eq(dw->shape, w->shape))),
             "tg_conv_transpose2d_backward: dx or dw of the wrong shape or dtype");
    if (db) bias_acc(db, dy, g.N, g.H * g.W, g.C * g.H * g.W, g.H * g.W);
    if (!dx && !dw) return;
    tg_tensor *col = new_col(scratch, &g, x->dtype);
    im2col(&g, col, dy);
    if (dx) {
        tg_tensor *t = tg_tensor_new(scratch, x->dtype, TG_SHAPE(g.O, g.N * g.Ho * g.Wo));
        gemm_forward(&g, t, w, col);
        cm_to(dx, t, NULL, true);
    }
    if (dw) gemm_weight(&g, dw, cm_from(scratch, x), col);
}

/* ---------------------------------------------------------------- the layout kernels on their own */

void tg_tensor_im2col(tg_tensor *col, const tg_tensor *x, int64_t kh, int64_t kw, tg_conv_args a) {
    tg_tensor wshape = tg_tensor_wrap(x->dtype, TG_SHAPE(1, x->shape.d[1], kh, kw), NULL);
    int64_t Ho = tg_conv_out_size(x->shape.d[2], kh, a.stride[0], a.padding[0], a.dilation[0]);
    int64_t Wo = tg_conv_out_size(x->shape.d[3], kw, a.stride[1], a.padding[1], a.dilation[1]);
    tg_tensor yshape = tg_tensor_wrap(x->dtype, TG_SHAPE(x->shape.d[0], 1, Ho, Wo), NULL);
    tg_conv_args a1 = a;
    a1.groups = 1;
    geom g = geom_of("tg_tensor_im2col", x, &wshape, &yshape, a1);
    TG_CHECK(col->dtype == x->dtype && col->shape.ndim == 2 && col->shape.d[0] == g.C * kh * kw &&
                 col->shape.d[1] == g.N * Ho * Wo && Ho > 0 && Wo > 0,
             "tg_tensor_im2col: col must be (C kh kw, N Ho Wo) = (%lld, %lld)", (long long)(g.C * kh * kw),
             (long long)(g.N * Ho * Wo));
    im2col(&g, col, x);
}

void tg_tensor_col2im_acc(tg_tensor *dx, const tg_tensor *col, int64_t kh, int64_t kw, tg_conv_args a) {
    tg_tensor wshape = tg_tensor_wrap(dx->dtype, TG_SHAPE(1, dx->shape.d[1], kh, kw), NULL);
    int64_t Ho = tg_conv_out_size(dx->shape.d[2], kh, a.stride[0], a.padding[0], a.dilation[0]);
    int64_t Wo = tg_conv_out_size(dx->shape.d[3], kw, a.stride[1], a.padding[1], a.dilation[1]);
    tg_tensor yshape = tg_tensor_wrap(dx->dtype, TG_SHAPE(dx->shape.d[0], 1, Ho, Wo), NULL);
    tg_conv_args a1 = a;
    a1.groups = 1;
    geom g = geom_of("tg_tensor_col2im_acc", dx, &wshape, &yshape, a1);
    TG_CHECK(col->dtype == dx->dtype && col->shape.ndim == 2 && col->shape.d[0] == g.C * kh * kw &&
                 col->shape.d[1] == g.N * Ho * Wo,
             "tg_tensor_col2im_acc: col must be (C kh kw, N Ho Wo) = (%lld, %lld)", (long long)(g.C * kh * kw),
             (long long)(g.N * Ho * Wo));
    col2im_acc(&g, dx, col);
}
