/*
 * test_conv_f32.c — the float32 convolution paths (batch chunks, the
 * AVX-512 row walks of im2col / col2im at strides 1 and 2, the gathers of
 * other geometries) against the same convolutions in float64, which
 * tests/test_conv.c checks against direct loops and PyTorch: values and
 * every gradient, on the conv VAE's layers (a smaller batch) and on odd
 * geometries. Normwise relative error <= 1e-5 per tensor (float32 rounding
 * of sums over at most a few thousand terms).
 */
#include <criterion/criterion.h>
#include <math.h>

#include "autograd/autograd.h"

typedef struct {
    const char *name;
    bool transpose;
    int64_t n, c, h, w, o, kh, kw;
    tg_conv_args a;
} geometry;

static const geometry cases[] = {
    {"conv 1->32 k4 s2 p1 on 28x28", false, 3, 1, 28, 28, 32, 4, 4, {.stride = {2, 2}, .padding = {1, 1}}},
    {"conv 32->64 k4 s2 p1 on 14x14", false, 3, 32, 14, 14, 64, 4, 4, {.stride = {2, 2}, .padding = {1, 1}}},
    {"convT 64->32 k4 s2 p1 on 7x7", true, 3, 64, 7, 7, 32, 4, 4, {.stride = {2, 2}, .padding = {1, 1}}},
    {"convT 32->1 k4 s2 p1 on 14x14", true, 3, 32, 14, 14, 1, 4, 4, {.stride = {2, 2}, .padding = {1, 1}}},
    /* the VQ-VAE's 1x1 convolutions on its 7x7 grid */
    {"conv 16->64 k1 on 7x7", false, 3, 16, 7, 7, 64, 1, 1, {.stride = {1, 1}}},
    {"conv 64->16 k1 on 7x7", false, 3, 64, 7, 7, 16, 1, 1, {.stride = {1, 1}}},
    {"conv 8->128 k3 p1 on 7x7", false, 2, 8, 7, 7, 128, 3, 3, {.padding = {1, 1}}},
    {"conv 3->5 k3 s1 p1 on 9x11", false, 2, 3, 9, 11, 5, 3, 3, {.padding = {1, 1}}},
    {"conv 4->6 k(3,2) s(2,3) p(2,1) d(1,2) on 13x17", false, 2, 4, 13, 17, 6, 3, 2,
     {.stride = {2, 3}, .padding = {2, 1}, .dilation = {1, 2}}},
    {"conv 4->4 k3 s1 groups 2 on 40x40", false, 2, 4, 40, 40, 4, 3, 3, {.padding = {1, 1}, .groups = 2}},
    {"convT 5->3 k3 s2 p1 op1 on 6x5", true, 2, 5, 6, 5, 3, 3, 3,
     {.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 1}}},
    {"convT 3->2 k5 s3 p2 on 8x9", true, 2, 3, 8, 9, 2, 5, 5, {.stride = {3, 3}, .padding = {2, 2}}},
};

/* |a - b|_2 / |b|_2 of two tensors of one shape (a float32, b float64). */
static double rel_err(const tg_tensor *a, const tg_tensor *b) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < b->numel; i++) {
        double d = tg_tensor_get(a, i) - tg_tensor_get(b, i);
        num += d * d, den += tg_tensor_get(b, i) * tg_tensor_get(b, i);
    }
    return sqrt(num / fmax(den, 1e-300));
}

/* Runs the case in dtype dt from the double draws; returns y and the gradients in out[0..3]. */
static void run(const geometry *g, tg_dtype dt, tg_tape *t, const tg_tensor *const src[4], tg_tensor *out[4]) {
    tg_var *v[3];
    for (int k = 0; k < 3; k++) v[k] = tg_leaf(t, tg_tensor_cast(tg_tape_arena(t), src[k], dt), true);
    tg_var *y = g->transpose ? tg_conv_transpose2d(t, v[0], v[1], v[2], g->a) : tg_conv2d(t, v[0], v[1], v[2], g->a);
    tg_backward_seed(t, y, tg_tensor_cast(tg_tape_arena(t), src[3], dt));
    out[0] = &y->val;
    for (int k = 0; k < 3; k++) out[k + 1] = &v[k]->grad;
}

Test(conv_f32, float32_paths_agree_with_float64) {
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const geometry *g = &cases[c];
        tg_arena *a = tg_arena_new();
        tg_rng r = tg_rng_seed(100 + c);
        int64_t groups = g->a.groups ? g->a.groups : 1;
        tg_shape ws = g->transpose ? TG_SHAPE(g->c, g->o / groups, g->kh, g->kw) : TG_SHAPE(g->o, g->c / groups, g->kh, g->kw);
        tg_tensor *src[4] = {tg_tensor_uniform(a, TG_F64, TG_SHAPE(g->n, g->c, g->h, g->w), -1, 1, &r),
                             tg_tensor_uniform(a, TG_F64, ws, -0.5, 0.5, &r),
                             tg_tensor_uniform(a, TG_F64, TG_SHAPE(g->o), -0.5, 0.5, &r), NULL};
        /* the upstream gradient needs the output shape: ask the float64 op once */
        tg_tape *t64 = tg_tape_new(), *t32 = tg_tape_new();
        tg_var *x = tg_leaf(t64, src[0], false), *w = tg_leaf(t64, src[1], false), *b = tg_leaf(t64, src[2], false);
        tg_var *y = g->transpose ? tg_conv_transpose2d(t64, x, w, b, g->a) : tg_conv2d(t64, x, w, b, g->a);
        src[3] = tg_tensor_uniform(a, TG_F64, y->val.shape, -1, 1, &r);
        tg_tape_reset(t64);
        tg_tensor *o64[4], *o32[4];
        run(g, TG_F64, t64, (const tg_tensor *const *)src, o64);
        run(g, TG_F32, t32, (const tg_tensor *const *)src, o32);
        static const char *what[4] = {"output", "dx", "dw", "db"};
        for (int k = 0; k < 4; k++) {
            double e = rel_err(o32[k], o64[k]);
            cr_expect(e <= 1e-5, "%s: %s float32 vs float64 relative error %.3g", g->name, what[k], e);
        }
        tg_tape_free(t64), tg_tape_free(t32);
        tg_arena_free(a);
    }
}
