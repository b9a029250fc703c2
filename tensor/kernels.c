/*
 * kernels.c — the loops behind tensor/kernels.h: the broadcasting walk, the
 * elementwise maps, the fused loss terms, the reductions, the shape copies.
 * Every loop is written for both dtypes at once with TG_DISPATCH (T is float
 * or double in its body); TG_SIMD builds AVX-512 / AVX2 clones of the hot ones.
 */
#include "tensor/kernels.h"

#include <string.h>
#include <tgmath.h>

#include "tensor/pool.h"
#include "tensor/vmath.h"

#if defined(__x86_64__) || (defined(__i386__) && defined(__SSE2__))
#define TG_X86_MXCSR 1
#include <xmmintrin.h>   /* _mm_getcsr, _mm_setcsr: the optimizer's subnormal flush */
#else
#define TG_X86_MXCSR 0
#endif

/* exp, log and log1p of either precision: the vectorisable float32 versions
 * (tensor/vmath.h) or libm's double ones. */
static inline double exp_d(double x) { return (exp)(x); }
static inline double log_d(double x) { return (log)(x); }
static inline double log1p_d(double x) { return (log1p)(x); }
#define EXP(v) _Generic((v), float: tg_expf, default: exp_d)(v)
#define LOG(v) _Generic((v), float: tg_logf, default: log_d)(v)
#define LOG1P(v) _Generic((v), float: tg_log1pf, default: log1p_d)(v)

/* 1 / (1 + e^-v) from e = e^-|v|, which never overflows: sigmoid(+-300) is exact. */
static inline float sigmoid_f(float v) {
    float e = tg_expf(v < 0 ? v : -v), r = 1.0f / (1.0f + e);
    return v >= 0 ? r : e * r;
}
static inline double sigmoid_d(double v) {
    double e = exp_d(v < 0 ? v : -v), r = 1.0 / (1.0 + e);
    return v >= 0 ? r : e * r;
}
#define SIGMOID(T, v) _Generic((T)0, float: sigmoid_f, default: sigmoid_d)(v)

/* ln v clamped below at -100, as PyTorch's binary_cross_entropy. */
static inline float clamped_logf(float v) { float l = tg_logf(v); return l > -100.0f ? l : -100.0f; }
static inline double clamped_log(double v) { double l = log_d(v); return l > -100.0 ? l : -100.0; }
#define CLAMPED_LOG(v) _Generic((v), float: clamped_logf, default: clamped_log)(v)

/* Loops over this many elements or more run on the thread pool. */
enum { PAR_GRAIN = 1 << 14 };

/* A loop's operands, for the thread pool's range functions. */
typedef struct {
    tg_dtype dt;
    const void *x, *y, *g;   /* inputs */
    void *out;               /* written, or accumulated into */
    double s;                /* a scalar */
    bool squares;            /* whole sums: of x^2 instead of x */
} kernel_args;

static void check_same(const char *fn, const tg_tensor *a, const tg_tensor *b) {
    char b1[96], b2[96];
    TG_CHECK(a->dtype == b->dtype && tg_shape_eq(a->shape, b->shape), "%s: operands %s %s and %s %s differ", fn,
             tg_shape_str(a->shape, b1), tg_dtype_name(a->dtype), tg_shape_str(b->shape, b2), tg_dtype_name(b->dtype));
}

/* ================================================================ broadcasting
 *
 * Output dimension k has size shape[k]; moving one step along it moves sa[k]
 * elements in a and sb[k] in b (0 where that operand has size 1). Adjacent
 * dimensions that both operands traverse contiguously are merged, so equal
 * shapes become one flat loop. */

typedef struct {
    int nd;
    int64_t shape[TG_MAX_DIMS], sa[TG_MAX_DIMS], sb[TG_MAX_DIMS];
} bcast;

bool tg_shape_broadcast(tg_shape a, tg_shape b, tg_shape *out) {
    tg_shape s = {.ndim = a.ndim > b.ndim ? a.ndim : b.ndim};
    for (int k = s.ndim - 1; k >= 0; k--) {
        int ka = k - (s.ndim - a.ndim), kb = k - (s.ndim - b.ndim);
        int64_t da = ka >= 0 ? a.d[ka] : 1, db = kb >= 0 ? b.d[kb] : 1;
        if (da != db && da != 1 && db != 1) return false;
        s.d[k] = da == 1 ? db : da;
    }
    *out = s;
    return true;
}

/* The walk over shape out of operands of shapes a and b, each broadcast to it. */
static bcast bcast_init(const char *fn, tg_shape out, tg_shape a, tg_shape b) {
    char b1[96], b2[96], b3[96];
    tg_shape s;
    TG_CHECK(tg_shape_broadcast(a, b, &s) && tg_shape_broadcast(s, out, &s) && tg_shape_eq(s, out),
             "%s: %s and %s do not broadcast to %s", fn, tg_shape_str(a, b1), tg_shape_str(b, b2),
             tg_shape_str(out, b3));
    int64_t stra = 1, strb = 1;
    bcast full = {.nd = out.ndim}, bc = {0};
    for (int k = out.ndim - 1; k >= 0; k--) {
        int ka = k - (out.ndim - a.ndim), kb = k - (out.ndim - b.ndim);
        int64_t da = ka >= 0 ? a.d[ka] : 1, db = kb >= 0 ? b.d[kb] : 1;
        full.shape[k] = out.d[k];
        full.sa[k] = da == 1 ? 0 : stra;
        full.sb[k] = db == 1 ? 0 : strb;
        stra *= da, strb *= db;
    }
    /* Merge dimension k into the one before when both operands walk them as one. */
    for (int k = 0; k < full.nd; k++) {
        if (full.shape[k] == 1) continue;
        int m = bc.nd - 1;
        if (m >= 0 && bc.sa[m] == full.sa[k] * full.shape[k] && bc.sb[m] == full.sb[k] * full.shape[k]) {
            bc.shape[m] *= full.shape[k], bc.sa[m] = full.sa[k], bc.sb[m] = full.sb[k];
        } else {
            bc.shape[bc.nd] = full.shape[k], bc.sa[bc.nd] = full.sa[k], bc.sb[bc.nd] = full.sb[k];
            bc.nd++;
        }
    }
    if (bc.nd == 0) bc.nd = 1, bc.shape[0] = 1, bc.sa[0] = bc.sb[0] = 0;
    return bc;
}

/* Runs BODY for every output element in row-major order, with ia, ib, io its
 * offsets in a, b and the output. The innermost loop is written out for the
 * common stride pairs, so that same-shape and row-broadcast (bias) loops
 * vectorise. */
#define BCAST_INNER(SA, SB, BODY)                                                     \
    for (int64_t j_ = 0; j_ < inner_; j_++) {                                         \
        int64_t ia = oa_ + j_ * (SA), ib = ob_ + j_ * (SB), io = r_ * inner_ + j_;    \
        BODY                                                                          \
    }
#define BCAST_LOOP(bc, BODY)                                                          \
    do {                                                                              \
        const bcast *bc_ = &(bc);                                                     \
        int last_ = bc_->nd - 1;                                                      \
        int64_t inner_ = bc_->shape[last_], sa_ = bc_->sa[last_], sb_ = bc_->sb[last_]; \
        int64_t rows_ = 1, idx_[TG_MAX_DIMS] = {0}, oa_ = 0, ob_ = 0;                 \
        for (int d_ = 0; d_ < last_; d_++) rows_ *= bc_->shape[d_];                   \
        for (int64_t r_ = 0; r_ < rows_; r_++) {                                      \
            if (sa_ == 1 && sb_ == 1) BCAST_INNER(1, 1, BODY)                         \
            else if (sa_ == 1 && sb_ == 0) BCAST_INNER(1, 0, BODY)                    \
            else if (sa_ == 0 && sb_ == 1) BCAST_INNER(0, 1, BODY)                    \
            else BCAST_INNER(sa_, sb_, BODY)                                          \
            for (int d_ = last_ - 1; d_ >= 0; d_--) {                                 \
                oa_ += bc_->sa[d_], ob_ += bc_->sb[d_];                               \
                if (++idx_[d_] < bc_->shape[d_]) break;                               \
                oa_ -= bc_->sa[d_] * bc_->shape[d_], ob_ -= bc_->sb[d_] * bc_->shape[d_]; \
                idx_[d_] = 0;                                                         \
            }                                                                         \
        }                                                                             \
    } while (0)

static void check_dtypes(const char *fn, const tg_tensor *o, const tg_tensor *a, const tg_tensor *b) {
    TG_CHECK(a->dtype == o->dtype && (!b || b->dtype == o->dtype), "%s: operands of different dtypes", fn);
}

#define BINARY(NAME, OPER)                                                                         \
    TG_SIMD void tg_tensor_##NAME(tg_tensor *out, const tg_tensor *a, const tg_tensor *b) {        \
        check_dtypes("tg_tensor_" #NAME, out, a, b);                                               \
        bcast bc = bcast_init("tg_tensor_" #NAME, out->shape, a->shape, b->shape);                 \
        TG_DISPATCH(out->dtype, {                                                                  \
            const T *x = a->data, *y = b->data; T *o = out->data;                                  \
            BCAST_LOOP(bc, o[io] = x[ia] OPER y[ib];);                                             \
        });                                                                                        \
    }
BINARY(add, +)
BINARY(sub, -)
BINARY(mul, *)
BINARY(div, /)

TG_SIMD void tg_tensor_acc_sum_to(tg_tensor *dst, const tg_tensor *src, double scale) {
    check_dtypes("tg_tensor_acc_sum_to", src, dst, NULL);
    bcast bc = bcast_init("tg_tensor_acc_sum_to", src->shape, dst->shape, src->shape);
    TG_DISPATCH(dst->dtype, {
        const T *g = src->data; T *d = dst->data;
        if (scale == 1) BCAST_LOOP(bc, d[ia] += g[ib]; (void)io;);
        else if (scale == -1) BCAST_LOOP(bc, d[ia] -= g[ib]; (void)io;);
        else BCAST_LOOP(bc, d[ia] += g[ib] * (T)scale; (void)io;);
    });
}

TG_SIMD void tg_tensor_acc_broadcast(tg_tensor *dst, const tg_tensor *src, double scale) {
    check_dtypes("tg_tensor_acc_broadcast", dst, src, NULL);
    bcast bc = bcast_init("tg_tensor_acc_broadcast", dst->shape, dst->shape, src->shape);
    TG_DISPATCH(dst->dtype, {
        const T *g = src->data; T *d = dst->data;
        BCAST_LOOP(bc, d[ia] += g[ib] * (T)scale; (void)io;);
    });
}

void tg_tensor_expand(tg_tensor *out, const tg_tensor *src) {
    check_dtypes("tg_tensor_expand", out, src, NULL);
    bcast bc = bcast_init("tg_tensor_expand", out->shape, out->shape, src->shape);
    TG_DISPATCH(out->dtype, {
        const T *s = src->data; T *o = out->data;
        BCAST_LOOP(bc, o[io] = s[ib]; (void)ia;);
    });
}

/* ================================================================ elementwise */

static void zero_range(void *ctx, int64_t begin, int64_t end) {
    const kernel_args *k = ctx;
    size_t es = tg_dtype_size(k->dt);
    memset((char *)k->out + (size_t)begin * es, 0, (size_t)(end - begin) * es);
}

void tg_tensor_zero(tg_tensor *x) {
    kernel_args k = {.dt = x->dtype, .out = x->data};
    tg_parallel_for(x->numel, 1 << 16, zero_range, &k);
}

TG_SIMD void tg_tensor_acc_mul(tg_tensor *dst, const tg_tensor *a, const tg_tensor *b) {
    check_same("tg_tensor_acc_mul", dst, a);
    check_same("tg_tensor_acc_mul", dst, b);
    TG_DISPATCH(dst->dtype, {
        const T *restrict x = a->data, *restrict y = b->data; T *restrict d = dst->data;
        for (int64_t i = 0; i < dst->numel; i++) d[i] += x[i] * y[i];
    });
}

TG_SIMD static void acc_scalar_range(void *ctx, int64_t begin, int64_t end) {
    const kernel_args *k = ctx;
    TG_DISPATCH(k->dt, {
        T *restrict d = k->out;
        const T c = (T)k->s;
        for (int64_t i = begin; i < end; i++) d[i] += c;
    });
}

void tg_tensor_acc_scalar(tg_tensor *dst, double c) {
    kernel_args k = {.dt = dst->dtype, .out = dst->data, .s = c};
    tg_parallel_for(dst->numel, PAR_GRAIN, acc_scalar_range, &k);
}

/* out = EXPR(x[i]) for every i (s a double scalar the expression may use). */
#define MAP(NAME, EXPR)                                                      \
    TG_SIMD static void map_##NAME##_range(void *ctx, int64_t begin, int64_t end) { \
        const kernel_args *k = ctx;                                          \
        const double s = k->s;                                               \
        (void)s;                                                             \
        TG_DISPATCH(k->dt, {                                                 \
            const T *x = k->x; T *y = k->out;                                \
            for (int64_t i = begin; i < end; i++) y[i] = (EXPR);             \
        });                                                                  \
    }                                                                        \
    static void map_##NAME(tg_tensor *out, const tg_tensor *in, double s) {  \
        check_same("tg_tensor_" #NAME, out, in);                             \
        kernel_args k = {.dt = out->dtype, .x = in->data, .out = out->data, .s = s}; \
        tg_parallel_for(out->numel, PAR_GRAIN, map_##NAME##_range, &k);      \
    }
MAP(neg, -x[i])
MAP(exp, EXP(x[i]))
MAP(log, LOG(x[i]))
MAP(sqrt, sqrt(x[i]))
MAP(square, x[i] * x[i])
MAP(relu, x[i] > 0 ? x[i] : (T)0)
MAP(sigmoid, SIGMOID(T, x[i]))
MAP(tanh, tanh(x[i]))
MAP(softplus, (x[i] > 0 ? x[i] : (T)0) + LOG1P(EXP(-fabs(x[i]))))
MAP(step, x[i] > 0 ? (T)1 : (T)0)
MAP(add_scalar, x[i] + (T)s)
MAP(mul_scalar, x[i] * (T)s)
MAP(pow_scalar, pow(x[i], (T)s))
MAP(rsub_scalar, (T)s - x[i])
MAP(rdiv_scalar, (T)s / x[i])

void tg_tensor_neg(tg_tensor *out, const tg_tensor *x) { map_neg(out, x, 0); }
void tg_tensor_exp(tg_tensor *out, const tg_tensor *x) { map_exp(out, x, 0); }
void tg_tensor_log(tg_tensor *out, const tg_tensor *x) { map_log(out, x, 0); }
void tg_tensor_sqrt(tg_tensor *out, const tg_tensor *x) { map_sqrt(out, x, 0); }
void tg_tensor_square(tg_tensor *out, const tg_tensor *x) { map_square(out, x, 0); }
void tg_tensor_relu(tg_tensor *out, const tg_tensor *x) { map_relu(out, x, 0); }
void tg_tensor_sigmoid(tg_tensor *out, const tg_tensor *x) { map_sigmoid(out, x, 0); }
void tg_tensor_tanh(tg_tensor *out, const tg_tensor *x) { map_tanh(out, x, 0); }
void tg_tensor_softplus(tg_tensor *out, const tg_tensor *x) { map_softplus(out, x, 0); }
void tg_tensor_step(tg_tensor *out, const tg_tensor *x) { map_step(out, x, 0); }
void tg_tensor_add_scalar(tg_tensor *out, const tg_tensor *x, double s) { map_add_scalar(out, x, s); }
void tg_tensor_mul_scalar(tg_tensor *out, const tg_tensor *x, double s) { map_mul_scalar(out, x, s); }
void tg_tensor_pow_scalar(tg_tensor *out, const tg_tensor *x, double p) { map_pow_scalar(out, x, p); }
void tg_tensor_rsub_scalar(tg_tensor *out, double s, const tg_tensor *x) { map_rsub_scalar(out, x, s); }
void tg_tensor_rdiv_scalar(tg_tensor *out, double s, const tg_tensor *x) { map_rdiv_scalar(out, x, s); }

TG_SIMD static void mask_pos_range(void *ctx, int64_t begin, int64_t end) {
    const kernel_args *k = ctx;
    TG_DISPATCH(k->dt, {
        const T *restrict gy = k->g, *restrict y = k->x; T *restrict o = k->out;
        for (int64_t i = begin; i < end; i++) o[i] = y[i] > 0 ? gy[i] : (T)0;
    });
}

void tg_tensor_mask_pos(tg_tensor *out, const tg_tensor *g, const tg_tensor *m) {
    check_same("tg_tensor_mask_pos", out, g);
    check_same("tg_tensor_mask_pos", out, m);
    kernel_args k = {.dt = out->dtype, .g = g->data, .x = m->data, .out = out->data};
    tg_parallel_for(out->numel, PAR_GRAIN, mask_pos_range, &k);
}

/* ================================================================ losses */

TG_SIMD void tg_tensor_bce(tg_tensor *out, const tg_tensor *p, const tg_tensor *y) {
    check_same("tg_tensor_bce", out, p);
    check_same("tg_tensor_bce", out, y);
    TG_DISPATCH(out->dtype, {
        const T *pp = p->data, *yy = y->data; T *o = out->data;
        for (int64_t i = 0; i < out->numel; i++) {
            T lp = CLAMPED_LOG(pp[i]), lq = CLAMPED_LOG((T)1 - pp[i]);
            o[i] = -(yy[i] * lp + ((T)1 - yy[i]) * lq);
        }
    });
}

TG_SIMD void tg_tensor_bce_dp(tg_tensor *out, const tg_tensor *p, const tg_tensor *y) {
    check_same("tg_tensor_bce_dp", out, p);
    check_same("tg_tensor_bce_dp", out, y);
    TG_DISPATCH(out->dtype, {
        const T *pp = p->data, *yy = y->data; T *o = out->data;
        for (int64_t i = 0; i < out->numel; i++) {
            T pq = pp[i] * ((T)1 - pp[i]);
            o[i] = (pp[i] - yy[i]) / (pq > (T)1e-12 ? pq : (T)1e-12);
        }
    });
}

TG_SIMD void tg_tensor_bce_dy(tg_tensor *out, const tg_tensor *p) {
    check_same("tg_tensor_bce_dy", out, p);
    TG_DISPATCH(out->dtype, {
        const T *pp = p->data; T *o = out->data;
        for (int64_t i = 0; i < out->numel; i++) o[i] = CLAMPED_LOG((T)1 - pp[i]) - CLAMPED_LOG(pp[i]);
    });
}

TG_SIMD static void bce_logits_range(void *ctx, int64_t begin, int64_t end) {
    const kernel_args *k = ctx;
    TG_DISPATCH(k->dt, {
        const T *restrict xx = k->x, *restrict yy = k->y; T *restrict o = k->out;
        for (int64_t i = begin; i < end; i++)
            o[i] = (xx[i] > 0 ? xx[i] : (T)0) - xx[i] * yy[i] + LOG1P(EXP(-fabs(xx[i])));
    });
}

void tg_tensor_bce_logits(tg_tensor *out, const tg_tensor *x, const tg_tensor *y) {
    check_same("tg_tensor_bce_logits", out, x);
    check_same("tg_tensor_bce_logits", out, y);
    kernel_args k = {.dt = out->dtype, .x = x->data, .y = y->data, .out = out->data};
    tg_parallel_for(out->numel, PAR_GRAIN, bce_logits_range, &k);
}

TG_SIMD static void bce_logits_dx_range(void *ctx, int64_t begin, int64_t end) {
    const kernel_args *k = ctx;
    TG_DISPATCH(k->dt, {
        const T *restrict g = k->g, *restrict xx = k->x, *restrict yy = k->y; T *restrict gx = k->out;
        for (int64_t i = begin; i < end; i++) gx[i] += g[i] * (SIGMOID(T, xx[i]) - yy[i]);
    });
}

void tg_tensor_acc_bce_logits_dx(tg_tensor *gx, const tg_tensor *g, const tg_tensor *x, const tg_tensor *y) {
    check_same("tg_tensor_acc_bce_logits_dx", gx, g);
    check_same("tg_tensor_acc_bce_logits_dx", gx, x);
    check_same("tg_tensor_acc_bce_logits_dx", gx, y);
    kernel_args k = {.dt = gx->dtype, .x = x->data, .y = y->data, .g = g->data, .out = gx->data};
    tg_parallel_for(gx->numel, PAR_GRAIN, bce_logits_dx_range, &k);
}

typedef struct {
    tg_tensor *out;
    const uint8_t *src;
    const int64_t *rows;
    int64_t D;
} u8_rows_args;

TG_SIMD static void rows_from_u8_range(void *ctx, int64_t begin, int64_t end) {
    const u8_rows_args *k = ctx;
    const int64_t D = k->D;
    for (int64_t i = begin; i < end; i++) {
        const uint8_t *s = k->src + k->rows[i] * D;
        TG_DISPATCH(k->out->dtype, {
            T *o = (T *)k->out->data + i * D;
            for (int64_t j = 0; j < D; j++) o[j] = (T)s[j] / (T)255;
        });
    }
}

void tg_tensor_rows_from_u8(tg_tensor *out, const uint8_t *src, const int64_t *rows, int64_t n, int64_t D) {
    TG_CHECK(out->shape.ndim == 2 && out->shape.d[0] >= n && out->shape.d[1] == D && out->dtype != TG_I64,
             "tg_tensor_rows_from_u8: out must be float (>= %lld, %lld)", (long long)n, (long long)D);
    u8_rows_args k = {out, src, rows, D};
    tg_parallel_for(n, PAR_GRAIN / (D > 0 ? D : 1) + 1, rows_from_u8_range, &k);
}

/* gx = s (sigmoid(x) - y), or gx += that when squares (reused as "add") is set. */
TG_SIMD static void bce_logits_grad_range(void *ctx, int64_t begin, int64_t end) {
    const kernel_args *k = ctx;
    TG_DISPATCH(k->dt, {
        const T *restrict xx = k->x, *restrict yy = k->y; T *restrict gx = k->out; const T s = (T)k->s;
        if (k->squares)
            for (int64_t i = begin; i < end; i++) gx[i] += s * (SIGMOID(T, xx[i]) - yy[i]);
        else
            for (int64_t i = begin; i < end; i++) gx[i] = s * (SIGMOID(T, xx[i]) - yy[i]);
    });
}

void tg_tensor_bce_logits_grad(tg_tensor *gx, const tg_tensor *x, const tg_tensor *y, double s, bool add) {
    check_same("tg_tensor_bce_logits_grad", gx, x);
    check_same("tg_tensor_bce_logits_grad", gx, y);
    kernel_args k = {.dt = gx->dtype, .x = x->data, .y = y->data, .out = gx->data, .s = s, .squares = add};
    tg_parallel_for(gx->numel, PAR_GRAIN, bce_logits_grad_range, &k);
}

/* Blocks of 256 terms in float, summed into eight double lanes: the loop
 * vectorises and the order is fixed. */
TG_SIMD static double bce_logits_sum_f32(const float *restrict l, const float *restrict y, int64_t D) {
    float t[256];
    double acc[8] = {0};
    for (int64_t d0 = 0; d0 < D; d0 += 256) {
        int64_t n = D - d0 < 256 ? D - d0 : 256, i = 0;
        for (int64_t j = 0; j < n; j++) {
            float v = l[d0 + j];
            t[j] = (v > 0 ? v : 0.0f) - v * y[d0 + j] + tg_log1pf(tg_expf(-fabsf(v)));
        }
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += (double)t[i + k];
        for (; i < n; i++) acc[0] += (double)t[i];
    }
    double s = 0;
    for (int k = 0; k < 8; k++) s += acc[k];
    return s;
}

typedef struct {
    const tg_tensor *x, *y;
    const int64_t *rows;
    double *out;
} bce_rows_args;

static void bce_logits_rows_range(void *ctx, int64_t begin, int64_t end) {
    const bce_rows_args *k = ctx;
    const int64_t D = k->x->shape.d[1];
    const size_t ex = tg_dtype_size(k->x->dtype), ey = tg_dtype_size(k->y->dtype);
    for (int64_t p = begin; p < end; p++) {
        int64_t r = k->rows ? k->rows[p] : p;
        const char *xr = (const char *)k->x->data + (size_t)(p * D) * ex, *yr = (const char *)k->y->data + (size_t)(r * D) * ey;
        if (k->x->dtype == TG_F32 && k->y->dtype == TG_F32) {
            k->out[p] = bce_logits_sum_f32((const float *)xr, (const float *)yr, D);
            continue;
        }
        tg_tensor xt = tg_tensor_wrap(k->x->dtype, TG_SHAPE(D), (void *)xr), yt = tg_tensor_wrap(k->y->dtype, TG_SHAPE(D), (void *)yr);
        double s = 0;
        for (int64_t d = 0; d < D; d++) {
            double l = tg_tensor_get(&xt, d), t = tg_tensor_get(&yt, d);
            s += fmax(l, 0) - l * t + log1p(exp(-fabs(l)));
        }
        k->out[p] = s;
    }
}

void tg_tensor_bce_logits_rows(tg_tensor *out, const tg_tensor *x, const tg_tensor *y, const int64_t *rows) {
    char b1[96], b2[96], b3[96];
    TG_CHECK(x->shape.ndim == 2 && y->shape.ndim == 2 && x->shape.d[1] == y->shape.d[1] && out->dtype == TG_F64 &&
                 out->numel == x->shape.d[0] && (rows || y->shape.d[0] >= x->shape.d[0]),
             "tg_tensor_bce_logits_rows: x %s, y %s into %s float64", tg_shape_str(x->shape, b1),
             tg_shape_str(y->shape, b2), tg_shape_str(out->shape, b3));
    bce_rows_args k = {x, y, rows, out->data};
    tg_parallel_for(x->shape.d[0], 8, bce_logits_rows_range, &k);
}

/* ================================================================ reductions */

/* Whole sums: chunks of SUM_CHUNK elements, each with four double
 * accumulators; the chunk sums are added in order, BLOCK chunks at a time
 * (so the partial sums fit on the stack). The grouping depends only on the
 * size, never on the thread count. */
enum { SUM_CHUNK = 4096, SUM_BLOCK = 1024 };

TG_SIMD static void sum_chunks(void *ctx, int64_t begin, int64_t end) {
    const kernel_args *k = ctx;
    int64_t n = (int64_t)k->s;
    double *part = k->out;
    for (int64_t c = begin; c < end; c++) {
        int64_t lo = c * SUM_CHUNK, hi = lo + SUM_CHUNK < n ? lo + SUM_CHUNK : n, i = lo;
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        TG_DISPATCH(k->dt, {
            const T *x = k->x;
            if (k->squares) {   /* each square in double */
                for (; i + 4 <= hi; i += 4)
                    a0 += (double)x[i] * x[i], a1 += (double)x[i + 1] * x[i + 1], a2 += (double)x[i + 2] * x[i + 2],
                        a3 += (double)x[i + 3] * x[i + 3];
                for (; i < hi; i++) a0 += (double)x[i] * x[i];
            } else {
                for (; i + 4 <= hi; i += 4) a0 += x[i], a1 += x[i + 1], a2 += x[i + 2], a3 += x[i + 3];
                for (; i < hi; i++) a0 += x[i];
            }
        });
        part[c - begin] = (a0 + a1) + (a2 + a3);
    }
}

/* sum_chunks writes part[c - begin]; each pool range gets its own slice. */
typedef struct {
    kernel_args k;
    double *part;
    int64_t first;   /* the block's first chunk */
} sum_block;

static void sum_block_range(void *ctx, int64_t begin, int64_t end) {
    const sum_block *b = ctx;
    kernel_args k = b->k;
    k.out = b->part + begin;
    sum_chunks(&k, b->first + begin, b->first + end);
}

static double sum_whole(const tg_tensor *x, bool squares) {
    int64_t chunks = (x->numel + SUM_CHUNK - 1) / SUM_CHUNK;
    double part[SUM_BLOCK], acc = 0;
    for (int64_t c0 = 0; c0 < chunks; c0 += SUM_BLOCK) {
        int64_t nc = chunks - c0 < SUM_BLOCK ? chunks - c0 : SUM_BLOCK;
        sum_block b = {{.dt = x->dtype, .x = x->data, .s = (double)x->numel, .squares = squares}, part, c0};
        tg_parallel_for(nc, 4, sum_block_range, &b);
        for (int64_t c = 0; c < nc; c++) acc += part[c];
    }
    return acc;
}

double tg_tensor_sum(const tg_tensor *x) { return sum_whole(x, false); }
double tg_tensor_sum_squares(const tg_tensor *x) { return sum_whole(x, true); }

/* outer = product of the sizes before axis, n = its size, inner = product after. */
static void split_axis(tg_shape s, int axis, int64_t *outer, int64_t *n, int64_t *inner) {
    *outer = 1, *inner = 1, *n = s.d[axis];
    for (int i = 0; i < axis; i++) *outer *= s.d[i];
    for (int i = axis + 1; i < s.ndim; i++) *inner *= s.d[i];
}

static void check_axis(const char *fn, const tg_tensor *x, int axis) {
    TG_CHECK(axis >= 0 && axis < x->shape.ndim, "%s: axis %d of a %d-dimensional tensor", fn, axis, x->shape.ndim);
}

TG_SIMD void tg_tensor_sum_axis(tg_tensor *out, const tg_tensor *x, int axis, double scale) {
    check_axis("tg_tensor_sum_axis", x, axis);
    int64_t outer, n, inner;
    split_axis(x->shape, axis, &outer, &n, &inner);
    TG_CHECK(out->dtype == x->dtype && out->numel == outer * inner, "tg_tensor_sum_axis: output of %lld elements, "
             "want %lld", (long long)out->numel, (long long)(outer * inner));
    TG_DISPATCH(x->dtype, {
        const T *xx = x->data; T *y = out->data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < inner; k++) {
                double acc = 0;   /* double accumulator: sums of 10^5 floats stay accurate */
                for (int64_t j = 0; j < n; j++) acc += xx[(o * n + j) * inner + k];
                y[o * inner + k] = (T)(acc * scale);
            }
    });
}

double tg_logsumexp(const double *v, int64_t n) {
    if (n <= 0) return -INFINITY;
    double mx = v[0];
    for (int64_t i = 1; i < n; i++) mx = fmax(mx, v[i]);
    if (isinf(mx)) return mx;   /* all -inf, or some +inf */
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += exp(v[i] - mx);
    return mx + log(s);
}

/* ================================================================ optimizers */

/* One Adam update over elements [0, n). Two copies of the loop, so neither
 * has a branch and both vectorise. */
#define ADAM_KERNEL(NAME, T)                                                          \
    TG_SIMD static void NAME(int64_t n, T *restrict p, const T *restrict g, T *restrict m,    \
                     T *restrict v, T b1, T b2, T c1, T c2, T ss, T bc, T eps, T wd) { \
        if (wd != 0)                                                                  \
            for (int64_t i = 0; i < n; i++) {                                         \
                T gi = g[i] + wd * p[i];                                              \
                m[i] = m[i] * b1 + gi * c1;                                           \
                v[i] = v[i] * b2 + gi * gi * c2;                                      \
                p[i] -= ss * (m[i] / (sqrt(v[i]) / bc + eps));                        \
            }                                                                         \
        else                                                                          \
            for (int64_t i = 0; i < n; i++) {                                         \
                m[i] = m[i] * b1 + g[i] * c1;                                         \
                v[i] = v[i] * b2 + g[i] * g[i] * c2;                                  \
                p[i] -= ss * (m[i] / (sqrt(v[i]) / bc + eps));                        \
            }                                                                         \
    }
ADAM_KERNEL(adam_f32, float)
ADAM_KERNEL(adam_f64, double)

typedef struct {
    tg_tensor *p, *m, *v;
    const tg_tensor *g;
    double b1, b2, c1, c2, ss, bc, eps, wd;
} adam_args;

/* Subnormal numbers (below 2^-126 in float32, 2^-1022 in float64) are
 * flushed to zero while a step runs, as torch.set_flush_denormal(True)
 * does. Training makes many: moments of parameters whose gradients are
 * (nearly) zero decay through that range, and squares of tiny gradients
 * fall into it. x86 processors compute on them through a slow microcode
 * path, which on Intel cores made the reference VAE's Adam 8 times slower
 * from the third epoch on. Only values that small change: a moment flushed
 * to zero would have moved its parameter by at most
 * step_size 2^-126 / eps (about 2^-106 for lr 1e-3, eps 1e-8), far below
 * the precision of any parameter that is not itself subnormal. (The
 * reference VAE's parameters after 4 epochs are byte-identical with and
 * without the flush; 23% of its first moments were subnormal without.)
 * On x86 this sets MXCSR's flush-to-zero and denormals-are-zero bits for
 * the range and restores the caller's mode after; elsewhere the range runs
 * in the caller's mode. */
#if TG_X86_MXCSR
static unsigned flush_subnormals(void) {
    unsigned mode = _mm_getcsr();
    _mm_setcsr(mode | 0x8040u);   /* FTZ (bit 15) | DAZ (bit 6) */
    return mode;
}
static void restore_mode(unsigned mode) { _mm_setcsr(mode); }
#else
static unsigned flush_subnormals(void) { return 0; }
static void restore_mode(unsigned mode) { (void)mode; }
#endif

/* Elements [begin, end) of one step; ranges are independent, so the result
 * does not depend on how the pool splits them. */
static void adam_range(void *ctx, int64_t begin, int64_t end) {
    const adam_args *a = ctx;
    int64_t n = end - begin;
    unsigned mode = flush_subnormals();
    if (a->p->dtype == TG_F32)
        adam_f32(n, TG_F32P(a->p) + begin, TG_F32P(a->g) + begin, TG_F32P(a->m) + begin, TG_F32P(a->v) + begin,
                 (float)a->b1, (float)a->b2, (float)a->c1, (float)a->c2, (float)a->ss, (float)a->bc, (float)a->eps,
                 (float)a->wd);
    else
        adam_f64(n, TG_F64P(a->p) + begin, TG_F64P(a->g) + begin, TG_F64P(a->m) + begin, TG_F64P(a->v) + begin,
                 a->b1, a->b2, a->c1, a->c2, a->ss, a->bc, a->eps, a->wd);
    restore_mode(mode);
}

void tg_tensor_adam(tg_tensor *p, const tg_tensor *g, tg_tensor *m, tg_tensor *v, double beta1, double beta2,
                    double step_size, double bc2_sqrt, double eps, double weight_decay) {
    check_same("tg_tensor_adam", p, g);
    check_same("tg_tensor_adam", p, m);
    check_same("tg_tensor_adam", p, v);
    adam_args a = {.p = p, .g = g, .m = m, .v = v, .b1 = beta1, .b2 = beta2, .c1 = 1 - beta1, .c2 = 1 - beta2,
                   .ss = step_size, .bc = bc2_sqrt, .eps = eps, .wd = weight_decay};
    tg_parallel_for(p->numel, 1 << 15, adam_range, &a);
}

/* ================================================================ linear algebra */

void tg_tensor_matmul(tg_tensor *out, const tg_tensor *a, bool ta, const tg_tensor *b, bool tb, double beta) {
    char b1[96], b2[96], b3[96];
    TG_CHECK(a->shape.ndim == 2 && b->shape.ndim == 2 && out->shape.ndim == 2 && a->dtype == b->dtype &&
                 a->dtype == out->dtype && a->shape.d[!ta] == b->shape.d[tb] && out->shape.d[0] == a->shape.d[ta] &&
                 out->shape.d[1] == b->shape.d[!tb],
             "tg_tensor_matmul: %s%s @ %s%s into %s", tg_shape_str(a->shape, b1), ta ? "^T" : "",
             tg_shape_str(b->shape, b2), tb ? "^T" : "", tg_shape_str(out->shape, b3));
    int64_t M = out->shape.d[0], N = out->shape.d[1], K = a->shape.d[!ta];
    if (a->dtype == TG_F32)
        tg_gemm_f32(ta, tb, M, N, K, 1.0f, a->data, a->shape.d[1], b->data, b->shape.d[1], (float)beta, out->data, N);
    else
        tg_gemm_f64(ta, tb, M, N, K, 1.0, a->data, a->shape.d[1], b->data, b->shape.d[1], beta, out->data, N);
}

/* ================================================================ shapes */

void tg_tensor_swap_axes(tg_tensor *out, const tg_tensor *x, int d0, int d1, bool acc) {
    check_axis("tg_tensor_swap_axes", x, d0);
    check_axis("tg_tensor_swap_axes", x, d1);
    int nd = x->shape.ndim;
    int64_t stride[TG_MAX_DIMS], oshape[TG_MAX_DIMS], ostride[TG_MAX_DIMS], idx[TG_MAX_DIMS] = {0};
    for (int k = nd - 1, s = 1; k >= 0; k--) stride[k] = s, s *= (int)x->shape.d[k];
    for (int k = 0; k < nd; k++) oshape[k] = x->shape.d[k], ostride[k] = stride[k];
    oshape[d0] = x->shape.d[d1], oshape[d1] = x->shape.d[d0];
    ostride[d0] = stride[d1], ostride[d1] = stride[d0];   /* output axis k walks x by ostride[k] */
    TG_CHECK(out->dtype == x->dtype && out->numel == x->numel, "tg_tensor_swap_axes: output of another size or dtype");
    TG_DISPATCH(x->dtype, {
        const T *src = x->data; T *o = out->data;
        int64_t off = 0;
        for (int64_t i = 0; i < x->numel; i++) {
            o[i] = acc ? o[i] + src[off] : src[off];
            for (int k = nd - 1; k >= 0; k--) {
                off += ostride[k];
                if (++idx[k] < oshape[k]) break;
                off -= ostride[k] * oshape[k], idx[k] = 0;
            }
        }
    });
}

/* big[..., start : start + n, ...] along axis (n = small's size there) and
 * small: copied one way or the other, or added into the destination. */
static void slice_copy(tg_tensor *big, tg_tensor *small, int axis, int64_t start, bool into_big, bool acc) {
    char b1[96], b2[96];
    check_axis("tensor slice", big, axis);
    bool ok = big->dtype == small->dtype && big->shape.ndim == small->shape.ndim && start >= 0 &&
              start + small->shape.d[axis] <= big->shape.d[axis];
    for (int k = 0; ok && k < big->shape.ndim; k++) ok = k == axis || big->shape.d[k] == small->shape.d[k];
    TG_CHECK(ok, "tensor slice: %s at %lld along axis %d does not fit in %s", tg_shape_str(small->shape, b1),
             (long long)start, axis, tg_shape_str(big->shape, b2));
    int64_t outer, n, inner, len = small->shape.d[axis];
    split_axis(big->shape, axis, &outer, &n, &inner);
    int64_t run = len * inner;   /* contiguous elements per outer row */
    TG_DISPATCH(big->dtype, {
        T *bg = big->data, *sm = small->data;
        for (int64_t r = 0; r < outer; r++) {
            T *b = bg + (r * n + start) * inner, *s = sm + r * run;
            T *to = into_big ? b : s, *from = into_big ? s : b;
            if (!acc) memcpy(to, from, (size_t)run * sizeof(T));
            else
                for (int64_t j = 0; j < run; j++) to[j] += from[j];
        }
    });
}

void tg_tensor_narrow(tg_tensor *out, const tg_tensor *x, int axis, int64_t start, bool acc) {
    slice_copy((tg_tensor *)x, out, axis, start, false, acc);
}

void tg_tensor_place(tg_tensor *dst, const tg_tensor *src, int axis, int64_t start, bool acc) {
    slice_copy(dst, (tg_tensor *)src, axis, start, true, acc);
}

int64_t tg_tensor_one_hot(tg_tensor *out, const tg_tensor *labels) {
    char b1[96], b2[96];
    int64_t n = labels->numel, K = out->shape.ndim == 2 ? out->shape.d[1] : 0;
    TG_CHECK(labels->shape.ndim == 1 && out->shape.ndim == 2 && out->shape.d[0] == n && K > 0,
             "tg_tensor_one_hot: labels %s into %s, want (n) into (n, K)", tg_shape_str(labels->shape, b1),
             tg_shape_str(out->shape, b2));
    tg_tensor_fill(out, 0);
    for (int64_t i = 0; i < n; i++) {
        double c = tg_tensor_get(labels, i);
        if (!(c >= 0 && c < (double)K && c == (double)(int64_t)c)) return i;
        tg_tensor_set(out, i * K + (int64_t)c, 1.0);
    }
    return -1;
}

/* ================================================================ batched products
 *
 * The batch is walked in row-major order over the broadcast of the three
 * batch shapes; an operand of size 1 (or missing) in a batch dimension has
 * stride 0 there. Each step is one GEMM on matrices at their offsets, with
 * the transpose flags: nothing is copied and nothing is allocated. */

/* x's batch dims (all but the last two) right-aligned to nd dims (missing
 * ones 1) in size, and the element strides of its matrices along them in
 * stride (0 where the size is 1: broadcast). */
static void batch_layout(tg_shape x, int nd, int64_t *size, int64_t *stride) {
    int xb = x.ndim - 2;
    int64_t s = x.d[xb] * x.d[xb + 1];
    for (int k = nd - 1; k >= 0; k--) {
        int kx = k - (nd - xb);
        size[k] = kx >= 0 ? x.d[kx] : 1;
        stride[k] = size[k] == 1 ? 0 : s;
        s *= size[k];
    }
}

/* C = op(A) op(B) + beta C for the matrices at element offsets oa, ob, oc. */
static void gemm_at(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const tg_tensor *a, int64_t oa, int64_t lda,
                    const tg_tensor *b, int64_t ob, int64_t ldb, double beta, tg_tensor *c, int64_t oc) {
    if (c->dtype == TG_F32)
        tg_gemm_f32(ta, tb, M, N, K, 1.0f, TG_F32P(a) + oa, lda, TG_F32P(b) + ob, ldb, (float)beta, TG_F32P(c) + oc, N);
    else
        tg_gemm_f64(ta, tb, M, N, K, 1.0, TG_F64P(a) + oa, lda, TG_F64P(b) + ob, ldb, beta, TG_F64P(c) + oc, N);
}

void tg_tensor_bmm(tg_tensor *out, const tg_tensor *a, bool ta, const tg_tensor *b, bool tb, double beta) {
    char b1[96], b2[96], b3[96];
    tg_shape sa = a->shape, sb = b->shape, so = out->shape, full = {0};
    tg_shape ba = {.ndim = sa.ndim - 2}, bb = {.ndim = sb.ndim - 2}, bo = {.ndim = so.ndim - 2};   /* batch shapes */
    bool ok = ba.ndim >= 0 && bb.ndim >= 0 && bo.ndim >= 0 && a->dtype == b->dtype && a->dtype == out->dtype;
    int64_t M = 0, N = 0, K = 0;
    if (ok) {
        memcpy(ba.d, sa.d, sizeof ba.d), memcpy(bb.d, sb.d, sizeof bb.d), memcpy(bo.d, so.d, sizeof bo.d);
        M = sa.d[ba.ndim + ta], K = sa.d[ba.ndim + !ta], N = sb.d[bb.ndim + !tb];
        ok = sb.d[bb.ndim + tb] == K && so.d[bo.ndim] == M && so.d[bo.ndim + 1] == N &&
             tg_shape_broadcast(ba, bb, &full) && tg_shape_broadcast(full, bo, &full);
    }
    TG_CHECK(ok, "tg_tensor_bmm: %s%s @ %s%s into %s", tg_shape_str(sa, b1), ta ? "^T" : "", tg_shape_str(sb, b2),
             tb ? "^T" : "", tg_shape_str(so, b3));
    if (sa.ndim == 2 && sb.ndim == 2 && so.ndim == 2) {   /* one product: exactly tg_tensor_matmul */
        tg_tensor_matmul(out, a, ta, b, tb, beta);
        return;
    }
    int nd = full.ndim;
    int64_t n = tg_shape_numel(full), na = tg_shape_numel(ba), nb = tg_shape_numel(bb), no = tg_shape_numel(bo);
    int64_t lda = sa.d[sa.ndim - 1], ldb = sb.d[sb.ndim - 1];
    if (n == 0) {   /* no products: out = beta out */
        if (beta == 0) tg_tensor_fill(out, 0);
        else tg_tensor_mul_scalar(out, out, beta);
        return;
    }
    /* Folds into one GEMM, where the batch's matrices sit back to back:
     * rows: op(a) (n, M, K) not transposed and one b: (n M, K) op(b) -> (n M, N);
     * inner: out one matrix, a (n, K, M) read transposed, b (n, K, N):
     * (M, n K) (n K, N), the sum over the batch done by the GEMM itself. */
    if (!ta && nb == 1 && na == n && no == n) {
        gemm_at(false, tb, n * M, N, K, a, 0, lda, b, 0, ldb, beta, out, 0);
        return;
    }
    if (ta && !tb && no == 1 && na == n && nb == n) {
        gemm_at(true, false, M, N, n * K, a, 0, lda, b, 0, ldb, beta, out, 0);
        return;
    }
    int64_t size_o[TG_MAX_DIMS], str_a[TG_MAX_DIMS], str_b[TG_MAX_DIMS], str_o[TG_MAX_DIMS], skip[TG_MAX_DIMS];
    int64_t idx[TG_MAX_DIMS] = {0}, oa = 0, ob = 0, oc = 0;
    batch_layout(sa, nd, skip, str_a);
    batch_layout(sb, nd, skip, str_b);
    batch_layout(so, nd, size_o, str_o);
    for (int64_t i = 0; i < n; i++) {
        /* The first product to land on its out matrix takes beta; later ones add. */
        bool first = true;
        for (int k = 0; k < nd; k++) first = first && (size_o[k] != 1 || idx[k] == 0);
        gemm_at(ta, tb, M, N, K, a, oa, lda, b, ob, ldb, first ? beta : 1.0, out, oc);
        for (int k = nd - 1; k >= 0; k--) {
            oa += str_a[k], ob += str_b[k], oc += str_o[k];
            if (++idx[k] < full.d[k]) break;
            oa -= str_a[k] * full.d[k], ob -= str_b[k] * full.d[k], oc -= str_o[k] * full.d[k], idx[k] = 0;
        }
    }
}
