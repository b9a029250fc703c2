/*
 * test_conv.c — conv2d and conv_transpose2d: values and gradients against
 * direct loops in float64 over many geometries, conv_transpose2d as the
 * adjoint of conv2d, bit-identical results on 1, 2 and 3 threads, no
 * allocation in a steady-state step, and the argument errors.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autograd/autograd.h"
#include "tensor/threads.h"
#include "tests/alloc_count.h"
#include "tests/child.h"

#define S(...) TG_SHAPE(__VA_ARGS__)

typedef struct {
    int64_t N, C, H, W, O, kh, kw;
    tg_conv_args a;
    bool bias;
} geo;

/* Every geometry the direct loops are compared on (x (N, C, H, W), O output
 * channels of conv2d, or of conv_transpose2d). */
static const geo geos[] = {
    {2, 3, 5, 4, 4, 3, 3, {.stride = {2, 2}, .padding = {1, 1}}, true},
    {1, 2, 7, 5, 3, 2, 3, {.stride = {1, 2}, .padding = {0, 1}}, true},               /* non-square kernel */
    {2, 2, 1, 1, 3, 1, 1, {.groups = 1}, true},                                         /* 1x1 input and kernel */
    {2, 2, 1, 1, 3, 3, 3, {.padding = {1, 1}}, false},                                 /* 1x1 input, k 3, no bias */
    {1, 3, 7, 9, 2, 2, 2, {.padding = {3, 2}}, true},                                  /* padding past the kernel */
    {2, 2, 9, 8, 3, 2, 3, {.stride = {4, 5}, .padding = {1, 0}}, true},                /* stride past the kernel */
    {1, 2, 9, 7, 2, 3, 2, {.stride = {2, 1}, .padding = {2, 1}, .dilation = {2, 3}}, true},   /* dilation */
    {2, 4, 6, 5, 6, 3, 3, {.stride = {1, 2}, .padding = {1, 1}, .groups = 2}, true},   /* groups */
    {3, 1, 6, 6, 4, 4, 4, {.stride = {2, 2}, .padding = {1, 1}}, true},                /* the VAE's k 4 s 2 p 1 */
    {2, 5, 11, 13, 3, 5, 3, {.stride = {3, 2}, .padding = {2, 0}, .dilation = {1, 2}}, true},
    {1, 1, 64, 70, 2, 3, 3, {.padding = {1, 1}}, true},   /* too large for the offset table: the row walk */
    {2, 2, 40, 40, 2, 5, 5, {.stride = {2, 2}, .padding = {3, 3}, .dilation = {2, 2}}, true},
};
#define N_GEOS (int)(sizeof geos / sizeof *geos)

static int64_t dim(int64_t v) { return v ? v : 1; }

/* ---------------------------------------------------------------- direct loops */

/* The one loop both directions share: every (n, o, oh, ow) tap (c, ki, kj)
 * that lands inside x, calling f with the flat indices into x, w, y. */
typedef struct {
    const double *x, *w, *y;
    double *ox, *ow, *oy;
} bufs;

#define FOR_TAPS(g, Ho, Wo)                                                                               \
    for (int64_t n = 0; n < (g)->N; n++)                                                                  \
        for (int64_t o = 0; o < (g)->O; o++)                                                              \
            for (int64_t oh = 0; oh < (Ho); oh++)                                                         \
                for (int64_t ow_ = 0; ow_ < (Wo); ow_++)                                                  \
                    for (int64_t cg = 0, G = dim((g)->a.groups), Cg = (g)->C / G, Og = (g)->O / G,        \
                                 c = o / Og * Cg; cg < Cg; cg++, c++)                                     \
                        for (int64_t ki = 0; ki < (g)->kh; ki++)                                          \
                            for (int64_t kj = 0; kj < (g)->kw; kj++)                                      \
                                for (int64_t ih = oh * dim((g)->a.stride[0]) - (g)->a.padding[0] +        \
                                                  ki * dim((g)->a.dilation[0]),                           \
                                             iw = ow_ * dim((g)->a.stride[1]) - (g)->a.padding[1] +       \
                                                  kj * dim((g)->a.dilation[1]),                           \
                                             once = 1;                                                    \
                                     once && ih >= 0 && ih < (g)->H && iw >= 0 && iw < (g)->W; once = 0)

/* conv2d: y (N, O, Ho, Wo) = x * w + b, and from dy: dx, dw, db (all double). */
static void direct_conv2d(const geo *g, int64_t Ho, int64_t Wo, const double *x, const double *w, const double *b,
                          double *y, const double *dy, double *dx, double *dw, double *db) {
    for (int64_t i = 0; i < g->N * g->O * Ho * Wo; i++) y[i] = b ? b[i / (Ho * Wo) % g->O] : 0;
    FOR_TAPS(g, Ho, Wo) {
        int64_t xi = ((n * g->C + c) * g->H + ih) * g->W + iw, wi = ((o * Cg + cg) * g->kh + ki) * g->kw + kj;
        int64_t yi = ((n * g->O + o) * Ho + oh) * Wo + ow_;
        y[yi] += w[wi] * x[xi];
        dx[xi] += w[wi] * dy[yi];
        dw[wi] += x[xi] * dy[yi];
    }
    for (int64_t i = 0; db && i < g->N * g->O * Ho * Wo; i++) db[i / (Ho * Wo) % g->O] += dy[i];
}

/* conv_transpose2d as the scatter of each input pixel through the kernel
 * (a loop of its own, not conv2d's): x (N, Cin, H, W), w (Cin, Cout / G, kh, kw). */
static void direct_conv_transpose2d(int64_t N, int64_t Cin, int64_t H, int64_t W, int64_t Cout, int64_t kh, int64_t kw,
                                    tg_conv_args a, int64_t Ho, int64_t Wo, const double *x, const double *w,
                                    const double *b, double *y) {
    int64_t G = dim(a.groups), Cg = Cin / G, Og = Cout / G;
    for (int64_t i = 0; i < N * Cout * Ho * Wo; i++) y[i] = b ? b[i / (Ho * Wo) % Cout] : 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < Cin; c++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t v = 0; v < W; v++)
                    for (int64_t og = 0; og < Og; og++)
                        for (int64_t ki = 0; ki < kh; ki++)
                            for (int64_t kj = 0; kj < kw; kj++) {
                                int64_t o = c / Cg * Og + og;
                                int64_t yh = h * dim(a.stride[0]) - a.padding[0] + ki * dim(a.dilation[0]);
                                int64_t yw = v * dim(a.stride[1]) - a.padding[1] + kj * dim(a.dilation[1]);
                                if (yh < 0 || yh >= Ho || yw < 0 || yw >= Wo) continue;
                                y[((n * Cout + o) * Ho + yh) * Wo + yw] +=
                                    x[((n * Cin + c) * H + h) * W + v] * w[((c * Og + og) * kh + ki) * kw + kj];
                            }
}

static void expect_close(const char *what, int k, const tg_tensor *got, const double *want) {
    double scale = 0, worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < got->numel; i++) scale = fmax(scale, fabs(want[i]));
    for (int64_t i = 0; i < got->numel; i++) {
        double e = fabs(tg_tensor_get(got, i) - want[i]);
        if (e > worst) worst = e, at = i;
    }
    cr_expect(worst <= 1e-12 * fmax(scale, 1), "geometry %d: %s element %lld: %.17g, direct loop %.17g", k, what,
              (long long)at, tg_tensor_get(got, at), want[at]);
}

/* conv2d's x (N, C, H, W) and w (O, C / groups, kh, kw) for g, uniform in [-1, 1). */
static void conv2d_leaves(tg_tape *t, const geo *g, tg_rng *r, bool grad, tg_var **x, tg_var **w) {
    tg_arena *ar = tg_tape_arena(t);
    *x = tg_leaf(t, tg_tensor_uniform(ar, TG_F64, S(g->N, g->C, g->H, g->W), -1, 1, r), grad);
    *w = tg_leaf(t, tg_tensor_uniform(ar, TG_F64, S(g->O, g->C / dim(g->a.groups), g->kh, g->kw), -1, 1, r), grad);
}

Test(conv, conv2d_matches_direct_loops_values_and_gradients) {
    for (int k = 0; k < N_GEOS; k++) {
        const geo *g = &geos[k];
        tg_tape *t = tg_tape_new();
        tg_arena *ar = tg_tape_arena(t);
        tg_rng r = tg_rng_seed(100 + k);
        tg_var *x, *w;
        conv2d_leaves(t, g, &r, true, &x, &w);
        tg_var *b = g->bias ? tg_leaf(t, tg_tensor_uniform(ar, TG_F64, S(g->O), -1, 1, &r), true) : NULL;
        tg_var *y = tg_conv2d(t, x, w, b, g->a);
        int64_t Ho = y->val.shape.d[2], Wo = y->val.shape.d[3];
        cr_expect_eq(Ho, (g->H + 2 * g->a.padding[0] - dim(g->a.dilation[0]) * (g->kh - 1) - 1) / dim(g->a.stride[0]) + 1);
        tg_tensor *dy = tg_tensor_uniform(ar, TG_F64, y->val.shape, -1, 1, &r);
        tg_backward_seed(t, y, dy);
        double *want = calloc((size_t)(y->val.numel + x->val.numel + w->val.numel + g->O), sizeof(double));
        double *dx = want + y->val.numel, *dw = dx + x->val.numel, *db = dw + w->val.numel;
        direct_conv2d(g, Ho, Wo, x->val.data, w->val.data, b ? b->val.data : NULL, want, dy->data, dx, dw, db);
        expect_close("output", k, &y->val, want);
        expect_close("dx", k, &x->grad, dx);
        expect_close("dw", k, &w->grad, dw);
        if (b) expect_close("db", k, &b->grad, db);
        free(want);
        tg_tape_free(t);
    }
}

Test(conv, conv_transpose2d_matches_a_direct_scatter) {
    for (int k = 0; k < N_GEOS; k++) {
        const geo *g = &geos[k];
        tg_conv_args a = g->a;
        a.output_padding[0] = dim(a.stride[0]) - 1;   /* the largest allowed */
        a.output_padding[1] = k % 2 ? 0 : dim(a.stride[1]) - 1;
        tg_tape *t = tg_tape_new();
        tg_arena *ar = tg_tape_arena(t);
        tg_rng r = tg_rng_seed(200 + k);
        int64_t G = dim(a.groups);
        tg_tensor *x = tg_tensor_uniform(ar, TG_F64, S(g->N, g->C, g->H, g->W), -1, 1, &r);
        tg_tensor *w = tg_tensor_uniform(ar, TG_F64, S(g->C, g->O / G, g->kh, g->kw), -1, 1, &r);
        tg_tensor *b = g->bias ? tg_tensor_uniform(ar, TG_F64, S(g->O), -1, 1, &r) : NULL;
        tg_var *y = tg_conv_transpose2d(t, tg_leaf(t, x, true), tg_leaf(t, w, true), b ? tg_leaf(t, b, true) : NULL, a);
        int64_t Ho = y->val.shape.d[2], Wo = y->val.shape.d[3];
        cr_expect_eq(Ho, (g->H - 1) * dim(a.stride[0]) - 2 * a.padding[0] + dim(a.dilation[0]) * (g->kh - 1) +
                             a.output_padding[0] + 1);
        double *want = malloc((size_t)y->val.numel * sizeof(double));
        direct_conv_transpose2d(g->N, g->C, g->H, g->W, g->O, g->kh, g->kw, a, Ho, Wo, x->data, w->data,
                                b ? b->data : NULL, want);
        expect_close("conv_transpose2d output", k, &y->val, want);
        free(want);
        tg_tape_free(t);
    }
}

/* <conv2d(x, w), u> = <x, conv_transpose2d(u, w)> for every geometry, the
 * output_padding chosen so conv_transpose2d gives back x's size. */
Test(conv, conv_transpose2d_is_the_adjoint_of_conv2d) {
    for (int k = 0; k < N_GEOS; k++) {
        const geo *g = &geos[k];
        tg_tape *t = tg_tape_new();
        tg_arena *ar = tg_tape_arena(t);
        tg_rng r = tg_rng_seed(300 + k);
        tg_var *x, *w;
        conv2d_leaves(t, g, &r, false, &x, &w);
        tg_var *y = tg_conv2d(t, x, w, NULL, g->a);
        tg_var *u = tg_leaf(t, tg_tensor_uniform(ar, TG_F64, y->val.shape, -1, 1, &r), false);
        tg_conv_args a = g->a;
        for (int d = 0; d < 2; d++) {
            int64_t in = d ? g->W : g->H, kk = d ? g->kw : g->kh;
            a.output_padding[d] = (in + 2 * a.padding[d] - dim(a.dilation[d]) * (kk - 1) - 1) % dim(a.stride[d]);
        }
        tg_var *xt = tg_conv_transpose2d(t, u, w, NULL, a);
        cr_assert(tg_shape_eq(xt->val.shape, x->val.shape), "geometry %d: conv_transpose2d does not give x's shape", k);
        double lhs = 0, rhs = 0, mag = 0;
        for (int64_t i = 0; i < y->val.numel; i++) lhs += TG_F64P(&y->val)[i] * TG_F64P(&u->val)[i];
        for (int64_t i = 0; i < x->val.numel; i++) rhs += TG_F64P(&x->val)[i] * TG_F64P(&xt->val)[i];
        for (int64_t i = 0; i < y->val.numel; i++) mag += fabs(TG_F64P(&y->val)[i] * TG_F64P(&u->val)[i]);
        cr_expect(fabs(lhs - rhs) <= 1e-13 * fmax(mag, 1), "geometry %d: <conv(x), u> = %.17g, <x, convT(u)> = %.17g",
                  k, lhs, rhs);
        tg_tape_free(t);
    }
}

static bool same64(const tg_tensor *a, const tg_tensor *b) {
    return a->numel == b->numel && memcmp(a->data, b->data, (size_t)a->numel * sizeof(double)) == 0;
}

/* The tape-free kernels give the tape's numbers: forward, and the three
 * gradients accumulated (+=) onto what was there. */
Test(conv, tape_free_kernels_match_the_ops) {
    const geo *g = &geos[0];
    tg_arena *ar = tg_arena_new();
    tg_rng r = tg_rng_seed(9);
    tg_tensor *x = tg_tensor_uniform(ar, TG_F64, S(2, 3, 5, 4), -1, 1, &r);
    tg_tensor *w = tg_tensor_uniform(ar, TG_F64, S(4, 3, 3, 3), -1, 1, &r);
    tg_tensor *b = tg_tensor_uniform(ar, TG_F64, S(4), -1, 1, &r);
    tg_tensor *y = tg_tensor_new(ar, TG_F64, S(2, 4, 3, 2));
    tg_tensor *col = tg_conv2d_forward(ar, y, x, w, b, g->a, false);
    tg_tensor *dy = tg_tensor_uniform(ar, TG_F64, y->shape, -1, 1, &r);
    tg_tensor *dx = tg_tensor_zeros(ar, TG_F64, x->shape), *dw = tg_tensor_zeros(ar, TG_F64, w->shape);
    tg_tensor *db = tg_tensor_zeros(ar, TG_F64, b->shape);
    tg_conv2d_backward(ar, dx, dw, db, dy, x, w, col, g->a, true, true);
    tg_tape *t = tg_tape_new();
    tg_var *vx = tg_leaf(t, x, true), *vw = tg_leaf(t, w, true), *vb = tg_leaf(t, b, true);
    tg_var *vy = tg_conv2d(t, vx, vw, vb, g->a);
    tg_backward_seed(t, vy, dy);
    cr_expect(same64(&vy->val, y) && same64(&vx->grad, dx) && same64(&vw->grad, dw) && same64(&vb->grad, db));
    tg_conv2d_backward(ar, dx, dw, db, dy, x, w, NULL, g->a, true, true);   /* again, col recomputed: += */
    for (int64_t i = 0; i < x->numel; i++) cr_expect_float_eq(TG_F64P(dx)[i], 2 * TG_F64P(&vx->grad)[i], 1e-12);
    for (int64_t i = 0; i < w->numel; i++) cr_expect_float_eq(TG_F64P(dw)[i], 2 * TG_F64P(&vw->grad)[i], 1e-12);
    for (int64_t i = 0; i < b->numel; i++) cr_expect_float_eq(TG_F64P(db)[i], 2 * TG_F64P(&vb->grad)[i], 1e-12);
    /* im2col and its adjoint col2im on their own: <im2col(x), c> = <x, col2im(c)> */
    tg_tensor *c2 = tg_tensor_new(ar, TG_F64, col->shape), *cr = tg_tensor_uniform(ar, TG_F64, col->shape, -1, 1, &r);
    tg_tensor *back = tg_tensor_zeros(ar, TG_F64, x->shape);
    tg_tensor_im2col(c2, x, 3, 3, g->a);
    cr_expect_eq(memcmp(c2->data, col->data, (size_t)col->numel * sizeof(double)), 0);
    tg_tensor_col2im_acc(back, cr, 3, 3, g->a);
    double lhs = 0, rhs = 0;
    for (int64_t i = 0; i < col->numel; i++) lhs += TG_F64P(c2)[i] * TG_F64P(cr)[i];
    for (int64_t i = 0; i < x->numel; i++) rhs += TG_F64P(x)[i] * TG_F64P(back)[i];
    cr_expect(fabs(lhs - rhs) < 1e-12, "im2col / col2im not adjoint: %.17g vs %.17g", lhs, rhs);
    tg_tape_free(t);
    tg_arena_free(ar);
}

/* ---------------------------------------------------------------- threads, allocations */

typedef struct {
    tg_tensor *y, *dx, *dw, *db;
} results;

/* conv2d 8 -> 16 on 14x14 and its transpose back, k 4 s 2 p 1, float32,
 * large enough that every GEMM and loop is threaded. */
static results run_f32(tg_tape *t, tg_arena *keep, bool transpose) {
    tg_rng r = tg_rng_seed(transpose ? 11 : 10);
    tg_arena *ar = tg_tape_arena(t);
    tg_conv_args a = {.stride = {2, 2}, .padding = {1, 1}};
    tg_tensor *x = tg_tensor_uniform(ar, TG_F32, transpose ? S(32, 16, 7, 7) : S(32, 8, 14, 14), -1, 1, &r);
    tg_tensor *w = tg_tensor_uniform(ar, TG_F32, transpose ? S(16, 8, 4, 4) : S(16, 8, 4, 4), -0.2, 0.2, &r);
    tg_tensor *b = tg_tensor_uniform(ar, TG_F32, transpose ? S(8) : S(16), -1, 1, &r);
    tg_var *vx = tg_leaf(t, x, true), *vw = tg_leaf(t, w, true), *vb = tg_leaf(t, b, true);
    tg_var *y = transpose ? tg_conv_transpose2d(t, vx, vw, vb, a) : tg_conv2d(t, vx, vw, vb, a);
    tg_backward_seed(t, y, tg_tensor_uniform(ar, TG_F32, y->val.shape, -1, 1, &r));
    return (results){tg_tensor_copy(keep, &y->val), tg_tensor_copy(keep, &vx->grad), tg_tensor_copy(keep, &vw->grad),
                     tg_tensor_copy(keep, &vb->grad)};
}

static bool same_bits(const tg_tensor *a, const tg_tensor *b) {
    return a->numel == b->numel && memcmp(a->data, b->data, (size_t)a->numel * sizeof(float)) == 0;
}

Test(conv, bits_identical_on_1_2_and_3_threads) {
    for (int transpose = 0; transpose < 2; transpose++) {
        tg_arena *keep = tg_arena_new();
        results ref = {0};
        for (int n = 1; n <= 3; n++) {
            tg_threads_set(n);
            tg_tape *t = tg_tape_new();
            results got = run_f32(t, keep, transpose);
            tg_tape_free(t);
            if (n == 1) {
                ref = got;
                continue;
            }
            const char *op = transpose ? "conv_transpose2d" : "conv2d";
            cr_expect(same_bits(got.y, ref.y), "%s output differs on %d threads", op, n);
            cr_expect(same_bits(got.dx, ref.dx), "%s dx differs on %d threads", op, n);
            cr_expect(same_bits(got.dw, ref.dw), "%s dw differs on %d threads", op, n);
            cr_expect(same_bits(got.db, ref.db), "%s db differs on %d threads", op, n);
        }
        tg_threads_set(0);
        tg_arena_free(keep);
    }
}

/* The backward sets (=) the gradients no other rule has reached and adds
 * (+=) into the others: one use gives the bits of the tape-free kernel
 * added onto zeros, two uses of the same x, w, b (y1 + y2) those of the
 * kernel added twice. float32 on the VAE's layers (the AVX-512 paths, 4
 * images) and float64 (the plain loops). */
static void grads_of_uses(tg_tape *t, bool transpose, int uses, tg_tensor *x, tg_tensor *w, tg_tensor *b,
                          const tg_tensor *dy, results *out) {
    tg_conv_args a = {.stride = {2, 2}, .padding = {1, 1}};
    tg_var *vx = tg_leaf(t, x, true), *vw = tg_leaf(t, w, true), *vb = tg_leaf(t, b, true), *y = NULL;
    for (int k = 0; k < uses; k++) {
        tg_var *yk = transpose ? tg_conv_transpose2d(t, vx, vw, vb, a) : tg_conv2d(t, vx, vw, vb, a);
        y = y ? tg_add(t, y, yk) : yk;
    }
    tg_backward_seed(t, y, dy);
    *out = (results){NULL, &vx->grad, &vw->grad, &vb->grad};
}

Test(conv, first_gradients_set_later_ones_add) {
    for (int f64 = 0; f64 < 2; f64++)
        for (int transpose = 0; transpose < 2; transpose++) {
            tg_dtype dt = f64 ? TG_F64 : TG_F32;
            size_t es = f64 ? sizeof(double) : sizeof(float);
            tg_arena *ar = tg_arena_new();
            tg_rng r = tg_rng_seed(21);
            int64_t lo = f64 ? 3 : 32, hi = f64 ? 4 : 64;   /* channels: conv2d lo -> hi on 14x14, transposed back */
            tg_tensor *x = tg_tensor_uniform(ar, dt, transpose ? S(4, hi, 7, 7) : S(4, lo, 14, 14), -1, 1, &r);
            tg_tensor *w = tg_tensor_uniform(ar, dt, transpose ? S(hi, lo, 4, 4) : S(hi, lo, 4, 4), -0.2, 0.2, &r);
            tg_tensor *b = tg_tensor_uniform(ar, dt, transpose ? S(lo) : S(hi), -1, 1, &r);
            tg_tensor *dy = tg_tensor_uniform(ar, dt, transpose ? S(4, lo, 14, 14) : S(4, hi, 7, 7), -1, 1, &r);
            tg_tape *t1 = tg_tape_new(), *t2 = tg_tape_new();
            results one, two;
            grads_of_uses(t1, transpose, 1, x, w, b, dy, &one);
            grads_of_uses(t2, transpose, 2, x, w, b, dy, &two);
            const tg_tensor *got[2][3] = {{one.dx, one.dw, one.db}, {two.dx, two.dw, two.db}};
            tg_tensor *want[3] = {tg_tensor_zeros(ar, dt, x->shape), tg_tensor_zeros(ar, dt, w->shape),
                                  tg_tensor_zeros(ar, dt, b->shape)};
            tg_conv_args a = {.stride = {2, 2}, .padding = {1, 1}};
            for (int uses = 1; uses <= 2; uses++) {
                if (transpose) tg_conv_transpose2d_backward(ar, want[0], want[1], want[2], dy, x, w, a, true, true);
                else tg_conv2d_backward(ar, want[0], want[1], want[2], dy, x, w, NULL, a, true, true);
                for (int k = 0; k < 3; k++)
                    cr_expect(memcmp(got[uses - 1][k]->data, want[k]->data, (size_t)want[k]->numel * es) == 0,
                              "%s %s, %d use(s): gradient %d differs from the kernel's added onto zeros",
                              f64 ? "float64" : "float32", transpose ? "conv_transpose2d" : "conv2d", uses, k);
            }
            tg_tape_free(t1), tg_tape_free(t2);
            tg_arena_free(ar);
        }
}

/* An encoder-decoder step: conv2d, relu, conv_transpose2d, a loss, backward. */
static void conv_step(tg_tape *t, tg_tensor *x, tg_var *w1, tg_var *b1, tg_var *w2, tg_var *b2) {
    tg_conv_args a = {.stride = {2, 2}, .padding = {1, 1}};
    tg_var *h = tg_relu(t, tg_conv2d(t, tg_leaf(t, x, false), w1, b1, a));
    tg_var *y = tg_conv_transpose2d(t, h, w2, b2, a);
    tg_backward(t, tg_mean(t, tg_square(t, y)));
    tg_tape_reset(t);
}

Test(conv, steady_state_step_allocates_nothing) {
    tg_arena *keep = tg_arena_new();
    tg_rng r = tg_rng_seed(3);
    tg_tape *t = tg_tape_new();
    tg_tensor *x = tg_tensor_uniform(keep, TG_F32, S(64, 1, 28, 28), 0, 1, &r);
    tg_var w1 = {.val = *tg_tensor_uniform(keep, TG_F32, S(32, 1, 4, 4), -0.2, 0.2, &r), .requires_grad = true};
    tg_var b1 = {.val = *tg_tensor_zeros(keep, TG_F32, S(32)), .requires_grad = true};
    tg_var w2 = {.val = *tg_tensor_uniform(keep, TG_F32, S(32, 1, 4, 4), -0.2, 0.2, &r), .requires_grad = true};
    tg_var b2 = {.val = *tg_tensor_zeros(keep, TG_F32, S(1)), .requires_grad = true};
    tg_var *ps[] = {&w1, &b1, &w2, &b2};
    for (int k = 0; k < 4; k++) ps[k]->grad = *tg_tensor_zeros(keep, TG_F32, ps[k]->val.shape);   /* parameters' own */
    conv_step(t, x, &w1, &b1, &w2, &b2);
    conv_step(t, x, &w1, &b1, &w2, &b2);
    uint64_t before = tg_test_alloc_count();
    for (int k = 0; k < 3; k++) conv_step(t, x, &w1, &b1, &w2, &b2);
    cr_expect_eq(tg_test_alloc_count(), before, "%llu allocations in 3 steady-state conv steps",
                 (unsigned long long)(tg_test_alloc_count() - before));
    tg_tape_free(t);
    tg_arena_free(keep);
}

/* ---------------------------------------------------------------- argument errors */

static tg_var *leaf(tg_tape *t, tg_shape s) { return tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_F32, s), true); }

static void channels_differ(void) {
    tg_tape *t = tg_tape_new();
    tg_conv2d(t, leaf(t, S(2, 3, 5, 4)), leaf(t, S(4, 2, 3, 3)), NULL, (tg_conv_args){0});
}
static const int channels_line = __LINE__ - 2;   /* the tg_conv2d call above */
static void kernel_too_large(void) {
    tg_tape *t = tg_tape_new();
    tg_conv2d(t, leaf(t, S(1, 2, 3, 8)), leaf(t, S(4, 2, 3, 3)), NULL, (tg_conv_args){.dilation = {2, 1}});
}
static void negative_stride(void) {
    tg_tape *t = tg_tape_new();
    tg_conv2d(t, leaf(t, S(1, 2, 5, 5)), leaf(t, S(4, 2, 3, 3)), NULL, (tg_conv_args){.stride = {-1, 1}});
}
static void negative_padding(void) {
    tg_tape *t = tg_tape_new();
    tg_conv_transpose2d(t, leaf(t, S(1, 2, 5, 5)), leaf(t, S(2, 4, 3, 3)), NULL, (tg_conv_args){.padding = {0, -2}});
}
static void output_padding_too_large(void) {
    tg_tape *t = tg_tape_new();
    tg_conv_transpose2d(t, leaf(t, S(1, 2, 5, 5)), leaf(t, S(2, 4, 3, 3)), NULL,
                        (tg_conv_args){.stride = {2, 2}, .dilation = {2, 1}, .output_padding = {2, 0}});
}
static void output_padding_on_conv2d(void) {
    tg_tape *t = tg_tape_new();
    tg_conv2d(t, leaf(t, S(1, 2, 5, 5)), leaf(t, S(4, 2, 3, 3)), NULL, (tg_conv_args){.output_padding = {1, 0}});
}
static void bias_wrong_size(void) {
    tg_tape *t = tg_tape_new();
    tg_conv2d(t, leaf(t, S(1, 2, 5, 5)), leaf(t, S(4, 2, 3, 3)), leaf(t, S(3)), (tg_conv_args){0});
}
static void groups_do_not_divide(void) {
    tg_tape *t = tg_tape_new();
    tg_conv2d(t, leaf(t, S(1, 6, 5, 5)), leaf(t, S(4, 2, 3, 3)), NULL, (tg_conv_args){.groups = 3});
}
static void transpose_channels_differ(void) {
    tg_tape *t = tg_tape_new();
    tg_conv_transpose2d(t, leaf(t, S(1, 3, 5, 5)), leaf(t, S(2, 4, 3, 3)), NULL, (tg_conv_args){0});
}
static void not_4d(void) {
    tg_tape *t = tg_tape_new();
    tg_conv2d(t, leaf(t, S(3, 5, 5)), leaf(t, S(4, 3, 3, 3)), NULL, (tg_conv_args){0});
}
static void transpose_output_empty(void) {
    tg_tape *t = tg_tape_new();
    tg_conv_transpose2d(t, leaf(t, S(1, 2, 1, 1)), leaf(t, S(2, 4, 1, 1)), NULL, (tg_conv_args){.padding = {1, 1}});
}

Test(conv, argument_errors_abort_naming_op_shapes_and_caller) {
    char at[64];
    snprintf(at, sizeof at, "test_conv.c:%d)", channels_line);
    tg_expect_abort(channels_differ, "tapegrad: conv2d: x (2, 3, 5, 4) has 3 channels, w (4, 2, 3, 3)", "expects 2", at);
    tg_expect_abort(kernel_too_large, "conv2d: kernel 3 x 3 (dilation 2, 1) is larger than the padded input",
                    "(1, 2, 3, 8)", "test_conv.c:");
    tg_expect_abort(negative_stride, "conv2d: negative stride (-1, 1)", "test_conv.c:");
    tg_expect_abort(negative_padding, "conv_transpose2d: negative", "padding (0, -2)", "test_conv.c:");
    tg_expect_abort(output_padding_too_large, "conv_transpose2d: output_padding (2, 0) must be smaller than the "
                    "stride (2, 2) or the dilation (2, 1)", "test_conv.c:");
    tg_expect_abort(output_padding_on_conv2d, "conv2d: output_padding (1, 0) applies to conv_transpose2d only");
    tg_expect_abort(bias_wrong_size, "conv2d: bias (3,) must be (4)", "test_conv.c:");
    tg_expect_abort(groups_do_not_divide, "conv2d: x (1, 6, 5, 5) has 6 channels", "groups", "test_conv.c:");
    tg_expect_abort(transpose_channels_differ, "conv_transpose2d: x (1, 3, 5, 5) has 3 channels", "(2, 4, 3, 3)");
    tg_expect_abort(not_4d, "conv2d: x (3, 5, 5) must be (N, C, H, W)");
    tg_expect_abort(transpose_output_empty, "conv_transpose2d:", "empty output");
}
