/*
 * kernels_map.c — the loops behind kernels.h's elementwise maps, comparisons
 * and where. Every operand has one shape: the autograd ops broadcast with
 * tg_tensor_expand first, so the broadcasting walk stays kernels.c's alone.
 * Written for both dtypes with TG_DISPATCH (T is float or double); plain
 * single-threaded loops, so results do not depend on the thread count.
 */
#include "tensor/kernels.h"

#include <tgmath.h>

#include "tensor/vmath.h"

static void same(const char *fn, const tg_tensor *a, const tg_tensor *b) {
    char b1[96], b2[96];
    TG_CHECK(a->dtype == b->dtype && tg_shape_eq(a->shape, b->shape), "%s: operands %s %s and %s %s differ", fn,
             tg_shape_str(a->shape, b1), tg_dtype_name(a->dtype), tg_shape_str(b->shape, b2), tg_dtype_name(b->dtype));
}

/* e^v: the vectorisable float32 version (tensor/vmath.h) or libm's. */
static inline double exp_d(double v) { return (exp)(v); }
#define EXP(v) _Generic((v), float: tg_expf, default: exp_d)(v)

/* sigmoid(v) and sigmoid(v) (1 - sigmoid(v)) from e = e^-|v|, which never
 * overflows: exact 0 and 1 far out, no 1 - s cancellation. */
#define SIGMOID_PARTS(T, SUF)                                                                   \
    static inline T sig_##SUF(T v) { T e = EXP(-fabs(v)), r = 1 / (1 + e); return v >= 0 ? r : e * r; } \
    static inline T dsig_##SUF(T v) { T e = EXP(-fabs(v)), r = 1 / (1 + e); return e * r * r; }
SIGMOID_PARTS(float, f)
SIGMOID_PARTS(double, d)
#define SIG(v) _Generic((v), float: sig_f, default: sig_d)(v)
#define DSIG(v) _Generic((v), float: dsig_f, default: dsig_d)(v)

#define SQRT_HALF 0.70710678118654752440    /* 1 / sqrt 2 */
#define INV_SQRT_2PI 0.39894228040143267794 /* 1 / sqrt(2 pi) */
#define GELU_K 0.79788456080286535588       /* sqrt(2 / pi) */
#define GELU_C 0.044715

/* The loop of every map: out[i] = EXPR, with v = x[i] (lo, hi the scalars). */
#define MAP_LOOP(NAME, EXPR)                                                   \
    {                                                                          \
        same("tg_tensor_" #NAME, out, in);                                     \
        TG_DISPATCH(out->dtype, {                                              \
            const T *x = in->data; T *y = out->data;                           \
            for (int64_t i = 0; i < out->numel; i++) { T v = x[i]; y[i] = (EXPR); } \
        });                                                                    \
    }
#define MAP(NAME, EXPR) TG_SIMD void tg_tensor_##NAME(tg_tensor *out, const tg_tensor *in) MAP_LOOP(NAME, EXPR)
#define MAP_S(NAME, S, EXPR) \
    TG_SIMD void tg_tensor_##NAME(tg_tensor *out, const tg_tensor *in, double S) MAP_LOOP(NAME, EXPR)
#define MAP_S2(NAME, EXPR) \
    TG_SIMD void tg_tensor_##NAME(tg_tensor *out, const tg_tensor *in, double lo, double hi) MAP_LOOP(NAME, EXPR)

MAP(abs, fabs(v))
MAP(sign, v > 0 ? (T)1 : v < 0 ? (T)-1 : (T)0)
MAP_S2(clamp, (v < (T)lo ? (T)lo : v) > (T)hi ? (T)hi : (v < (T)lo ? (T)lo : v))
MAP_S2(in_range, (T)lo <= v && v <= (T)hi ? (T)1 : (T)0)
MAP_S2(in_open_range, (T)lo < v && v < (T)hi ? (T)1 : (T)0)
MAP(log1p, log1p(v))
MAP(expm1, expm1(v))
MAP_S(leaky_relu, slope, v > 0 ? v : v * (T)slope)
MAP_S(leaky_relu_grad, slope, v > 0 ? (T)1 : (T)slope)
MAP_S(elu, alpha, v > 0 ? v : (T)alpha * expm1(v))
MAP_S(elu_grad, alpha, v > 0 ? (T)1 : (T)alpha * EXP(v))
MAP(gelu, (T)0.5 * v * erfc(-v * (T)SQRT_HALF))
MAP(gelu_grad, (T)0.5 * erfc(-v * (T)SQRT_HALF) + v * EXP((T)-0.5 * v * v) * (T)INV_SQRT_2PI)
MAP(gelu_tanh, v * SIG((T)(2 * GELU_K) * (v + (T)GELU_C * v * v * v)))
MAP(gelu_tanh_grad, SIG((T)(2 * GELU_K) * (v + (T)GELU_C * v * v * v))
                    + v * DSIG((T)(2 * GELU_K) * (v + (T)GELU_C * v * v * v)) * (T)(2 * GELU_K)
                          * (1 + (T)(3 * GELU_C) * v * v))
MAP(silu, v * SIG(v))
MAP(silu_grad, SIG(v) + v * DSIG(v))

/* out[i] = EXPR of p = a[i], q = b[i]. */
#define ZIP_LOOP(NAME, EXPR)                                                   \
    TG_DISPATCH(out->dtype, {                                                  \
        const T *pa = a->data, *pb = b->data; T *y = out->data;                \
        for (int64_t i = 0; i < out->numel; i++) { T p = pa[i], q = pb[i]; y[i] = (EXPR); } \
    })
#define ZIP(NAME, EXPR)                                                                        \
    TG_SIMD void tg_tensor_##NAME(tg_tensor *out, const tg_tensor *a, const tg_tensor *b) {    \
        same("tg_tensor_" #NAME, out, a), same("tg_tensor_" #NAME, out, b);                    \
        ZIP_LOOP(NAME, EXPR);                                                                  \
    }

ZIP(maximum, p != p ? p : q != q ? q : p > q ? p : q)
ZIP(minimum, p != p ? p : q != q ? q : p < q ? p : q)
ZIP(max_share, p == q ? (T)0.5 : p < q ? (T)0 : (T)1)

TG_SIMD void tg_tensor_compare(tg_tensor *out, const tg_tensor *a, const tg_tensor *b, tg_cmp cmp) {
    same("tg_tensor_compare", out, a), same("tg_tensor_compare", out, b);
    switch (cmp) {
    case TG_CMP_EQ: ZIP_LOOP(eq, p == q ? (T)1 : (T)0); break;
    case TG_CMP_NE: ZIP_LOOP(ne, p != q ? (T)1 : (T)0); break;
    case TG_CMP_LT: ZIP_LOOP(lt, p < q ? (T)1 : (T)0); break;
    case TG_CMP_LE: ZIP_LOOP(le, p <= q ? (T)1 : (T)0); break;
    case TG_CMP_GT: ZIP_LOOP(gt, p > q ? (T)1 : (T)0); break;
    case TG_CMP_GE: ZIP_LOOP(ge, p >= q ? (T)1 : (T)0); break;
    default: TG_CHECK(0, "tg_tensor_compare: unknown comparison %d", (int)cmp);
    }
}

void tg_tensor_nonzero(tg_tensor *out, const tg_tensor *x) {
    char b1[96], b2[96];
    TG_CHECK(tg_shape_eq(out->shape, x->shape), "tg_tensor_nonzero: out %s, x %s differ", tg_shape_str(out->shape, b1),
             tg_shape_str(x->shape, b2));
    TG_DISPATCH(out->dtype, {
        T *y = out->data;
        if (x->dtype == TG_I64) for (int64_t i = 0; i < x->numel; i++) y[i] = TG_I64P(x)[i] != 0;
        else if (x->dtype == TG_F32) for (int64_t i = 0; i < x->numel; i++) y[i] = TG_F32P(x)[i] != 0;
        else for (int64_t i = 0; i < x->numel; i++) y[i] = TG_F64P(x)[i] != 0;
    });
}

TG_SIMD void tg_tensor_where(tg_tensor *out, const tg_tensor *m, const tg_tensor *a, const tg_tensor *b) {
    same("tg_tensor_where", out, m), same("tg_tensor_where", out, a), same("tg_tensor_where", out, b);
    TG_DISPATCH(out->dtype, {
        const T *c = m->data, *pa = a->data, *pb = b->data; T *y = out->data;
        for (int64_t i = 0; i < out->numel; i++) y[i] = c[i] != 0 ? pa[i] : pb[i];
    });
}
