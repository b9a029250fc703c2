/*
 * ops.c — every differentiable op: its forward next to its backward, and the
 * table tg_ops that registers them all.
 *
 * Conventions. A forward checks shapes (aborting with the caller's file:line),
 * allocates its output in the tape's arena, computes it, and records an entry
 * if any input requires a gradient. A backward reads e->out->grad (dL/dout)
 * and adds (+=) dL/din into each input that requires a gradient.
 */
#include "autograd/internal.h"

#include <string.h>
#include <tgmath.h>

#include "tensor/pool.h"
#include "tensor/vmath.h"

/* exp, log and log1p of either precision: the vectorisable float32 versions
 * (tensor/vmath.h) or libm's double ones. */
static inline double exp_d(double x) { return (exp)(x); }
static inline double log_d(double x) { return (log)(x); }
static inline double log1p_d(double x) { return (log1p)(x); }
#define EXP(v) _Generic((v), float: tg_expf, default: exp_d)(v)
#define LOG(v) _Generic((v), float: tg_logf, default: log_d)(v)
#define LOG1P(v) _Generic((v), float: tg_log1pf, default: log1p_d)(v)

/* ================================================================ helpers */

static void check_same_dtype(TG_LOC, const char *op, const tg_var *a, const tg_var *b) {
    OP_CHECK(a->val.dtype == b->val.dtype, "%s: dtypes differ (%s and %s)", op,
             tg_dtype_name(a->val.dtype), tg_dtype_name(b->val.dtype));
}

static void check_same_shape(TG_LOC, const char *op, const tg_var *a, const tg_var *b) {
    char b1[96], b2[96];
    check_same_dtype(file, line, op, a, b);
    OP_CHECK(tg_shape_eq(a->val.shape, b->val.shape), "%s: shapes %s and %s differ", op,
             tg_shape_str(a->val.shape, b1), tg_shape_str(b->val.shape, b2));
}

static int norm_axis(TG_LOC, const char *op, int axis, int ndim) {
    int ax = axis < 0 ? axis + ndim : axis;
    OP_CHECK(ax >= 0 && ax < ndim, "%s: axis %d out of range for %d dimensions", op, axis, ndim);
    return ax;
}

/* Splits a shape around axis: outer = product before it, n = its size, inner = product after. */
static void split_axis(tg_shape s, int axis, int64_t *outer, int64_t *n, int64_t *inner) {
    *outer = 1, *inner = 1, *n = s.d[axis];
    for (int i = 0; i < axis; i++) *outer *= s.d[i];
    for (int i = axis + 1; i < s.ndim; i++) *inner *= s.d[i];
}

/* The input's gradient buffer if it wants one, else NULL. */
static void *grad_of(tg_tape *t, tg_var *v) { return v && v->requires_grad ? tg_var_grad(t, v)->data : NULL; }

/* Large elementwise loops run on the thread pool. Each element is computed by
 * exactly one thread with the same operations, so results do not depend on
 * the thread count. kernel_args carries a loop's operands to its range function. */
enum { PAR_GRAIN = 1 << 14 };
typedef struct {
    tg_dtype dt;
    const void *x, *y, *g;   /* inputs */
    void *out;               /* written (forward) or accumulated into (backward) */
    double s;                /* a scalar */
} kernel_args;

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

static tg_shape bcast_init(TG_LOC, const char *op, tg_shape a, tg_shape b, bcast *bc) {
    char b1[96], b2[96];
    tg_shape out = {.ndim = a.ndim > b.ndim ? a.ndim : b.ndim};
    int64_t stra = 1, strb = 1;
    bcast full = {.nd = out.ndim};
    for (int k = out.ndim - 1; k >= 0; k--) {
        int ka = k - (out.ndim - a.ndim), kb = k - (out.ndim - b.ndim);
        int64_t da = ka >= 0 ? a.d[ka] : 1, db = kb >= 0 ? b.d[kb] : 1;
        OP_CHECK(da == db || da == 1 || db == 1, "%s: shapes %s and %s are not broadcastable", op,
                 tg_shape_str(a, b1), tg_shape_str(b, b2));
        out.d[k] = da == 1 ? db : da;
        full.shape[k] = out.d[k];
        full.sa[k] = da == 1 ? 0 : stra;
        full.sb[k] = db == 1 ? 0 : strb;
        stra *= da, strb *= db;
    }
    /* Merge dimension k into k+1 when both operands walk them as one. */
    *bc = (bcast){0};
    for (int k = 0; k < full.nd; k++) {
        if (full.shape[k] == 1) continue;
        int m = bc->nd - 1;
        if (m >= 0 && bc->sa[m] == full.sa[k] * full.shape[k] && bc->sb[m] == full.sb[k] * full.shape[k]) {
            bc->shape[m] *= full.shape[k], bc->sa[m] = full.sa[k], bc->sb[m] = full.sb[k];
        } else {
            bc->shape[bc->nd] = full.shape[k], bc->sa[bc->nd] = full.sa[k], bc->sb[bc->nd] = full.sb[k];
            bc->nd++;
        }
    }
    if (bc->nd == 0) bc->nd = 1, bc->shape[0] = 1, bc->sa[0] = bc->sb[0] = 0;
    return out;
}

/* Runs BODY for every output element with ia, ib, io its offsets in a, b, out.
 * The innermost loop is written out for the common stride pairs, so that
 * same-shape and row-broadcast (bias) loops vectorise. */
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

static tg_var *binary_new(TG_LOC, tg_tape *t, tg_op op, tg_var *a, tg_var *b, bcast *bc) {
    check_same_dtype(file, line, tg_ops[op].name, a, b);
    tg_shape s = bcast_init(file, line, tg_ops[op].name, a->val.shape, b->val.shape, bc);
    return tg_var_new(t, a->val.dtype, s);
}

static void binary_bcast(const tg_entry *e, bcast *bc) {
    bcast_init(__FILE__, __LINE__, "", e->in[0]->val.shape, e->in[1]->val.shape, bc);
}

/* ---------------------------------------------------------------- add */

TG_SIMD tg_var *tg_add_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) {
    bcast bc;
    tg_var *out = binary_new(file, line, t, TG_OP_ADD, a, b, &bc);
    TG_DISPATCH(a->val.dtype, {
        const T *restrict x = a->val.data, *restrict y = b->val.data; T *restrict o = out->val.data;
        BCAST_LOOP(bc, o[io] = x[ia] + y[ib];);
    });
    tg_record(t, TG_OP_ADD, out, a, b);
    return out;
}

TG_SIMD static void add_backward(tg_tape *t, const tg_entry *e) {
    bcast bc;
    binary_bcast(e, &bc);
    TG_DISPATCH(e->out->val.dtype, {
        const T *g = e->out->grad.data; T *ga = grad_of(t, e->in[0]), *gb = grad_of(t, e->in[1]);
        if (ga) BCAST_LOOP(bc, ga[ia] += g[io]; (void)ib;);
        if (gb) BCAST_LOOP(bc, gb[ib] += g[io]; (void)ia;);
    });
}

/* ---------------------------------------------------------------- sub */

TG_SIMD tg_var *tg_sub_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) {
    bcast bc;
    tg_var *out = binary_new(file, line, t, TG_OP_SUB, a, b, &bc);
    TG_DISPATCH(a->val.dtype, {
        const T *restrict x = a->val.data, *restrict y = b->val.data; T *restrict o = out->val.data;
        BCAST_LOOP(bc, o[io] = x[ia] - y[ib];);
    });
    tg_record(t, TG_OP_SUB, out, a, b);
    return out;
}

TG_SIMD static void sub_backward(tg_tape *t, const tg_entry *e) {
    bcast bc;
    binary_bcast(e, &bc);
    TG_DISPATCH(e->out->val.dtype, {
        const T *g = e->out->grad.data; T *ga = grad_of(t, e->in[0]), *gb = grad_of(t, e->in[1]);
        if (ga) BCAST_LOOP(bc, ga[ia] += g[io]; (void)ib;);
        if (gb) BCAST_LOOP(bc, gb[ib] -= g[io]; (void)ia;);
    });
}

/* ---------------------------------------------------------------- mul */

TG_SIMD tg_var *tg_mul_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) {
    bcast bc;
    tg_var *out = binary_new(file, line, t, TG_OP_MUL, a, b, &bc);
    TG_DISPATCH(a->val.dtype, {
        const T *restrict x = a->val.data, *restrict y = b->val.data; T *restrict o = out->val.data;
        BCAST_LOOP(bc, o[io] = x[ia] * y[ib];);
    });
    tg_record(t, TG_OP_MUL, out, a, b);
    return out;
}

/* d(ab)/da = b, d(ab)/db = a. For x*x both terms land in the same buffer. */
TG_SIMD static void mul_backward(tg_tape *t, const tg_entry *e) {
    bcast bc;
    binary_bcast(e, &bc);
    TG_DISPATCH(e->out->val.dtype, {
        const T *g = e->out->grad.data, *x = e->in[0]->val.data, *y = e->in[1]->val.data;
        T *ga = grad_of(t, e->in[0]), *gb = grad_of(t, e->in[1]);
        if (ga) BCAST_LOOP(bc, ga[ia] += g[io] * y[ib];);
        if (gb) BCAST_LOOP(bc, gb[ib] += g[io] * x[ia];);
    });
}

/* ---------------------------------------------------------------- div */

TG_SIMD tg_var *tg_div_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b) {
    bcast bc;
    tg_var *out = binary_new(file, line, t, TG_OP_DIV, a, b, &bc);
    TG_DISPATCH(a->val.dtype, {
        const T *restrict x = a->val.data, *restrict y = b->val.data; T *restrict o = out->val.data;
        BCAST_LOOP(bc, o[io] = x[ia] / y[ib];);
    });
    tg_record(t, TG_OP_DIV, out, a, b);
    return out;
}

/* d(a/b)/da = 1/b, d(a/b)/db = -a/b^2. */
TG_SIMD static void div_backward(tg_tape *t, const tg_entry *e) {
    bcast bc;
    binary_bcast(e, &bc);
    TG_DISPATCH(e->out->val.dtype, {
        const T *g = e->out->grad.data, *x = e->in[0]->val.data, *y = e->in[1]->val.data;
        T *ga = grad_of(t, e->in[0]), *gb = grad_of(t, e->in[1]);
        if (ga) BCAST_LOOP(bc, ga[ia] += g[io] / y[ib];);
        if (gb) BCAST_LOOP(bc, gb[ib] -= g[io] * x[ia] / (y[ib] * y[ib]););
    });
}

/* ================================================================ elementwise
 *
 * Each unary op: y = f(x) forward, dx += dy * f'(x) backward, with f' written
 * from whichever of x and y is cheaper and more accurate. */

static tg_var *unary_new(tg_tape *t, tg_var *a) { return tg_var_new(t, a->val.dtype, a->val.shape); }

#define UNARY_FORWARD(OP, a, out, EXPR)                                    \
    TG_DISPATCH((a)->val.dtype, {                                          \
        const T *restrict x = (a)->val.data; T *restrict y = (out)->val.data; \
        for (int64_t i = 0; i < (a)->val.numel; i++) y[i] = (EXPR);        \
    });                                                                    \
    tg_entry *e = tg_record(t, OP, out, a, NULL);                          \
    (void)e

#define UNARY_BACKWARD(t, e, DYDX)                                         \
    TG_DISPATCH((e)->out->val.dtype, {                                     \
        const T *restrict x = (e)->in[0]->val.data, *restrict y = (e)->out->val.data; \
        const T *restrict g = (e)->out->grad.data;                         \
        T *restrict gx = tg_var_grad(t, (e)->in[0])->data;                 \
        (void)x, (void)y;                                                  \
        for (int64_t i = 0; i < (e)->out->val.numel; i++) gx[i] += g[i] * (DYDX); \
    })

/* ---------------------------------------------------------------- neg */

TG_SIMD tg_var *tg_neg_(TG_LOC, tg_tape *t, tg_var *a) {
    (void)file, (void)line;
    tg_var *out = unary_new(t, a);
    UNARY_FORWARD(TG_OP_NEG, a, out, -x[i]);
    return out;
}
TG_SIMD static void neg_backward(tg_tape *t, const tg_entry *e) { UNARY_BACKWARD(t, e, (T)-1); }

/* ---------------------------------------------------------------- add_scalar */

TG_SIMD tg_var *tg_add_scalar_(TG_LOC, tg_tape *t, tg_var *a, double s) {
    (void)file, (void)line;
    tg_var *out = unary_new(t, a);
    UNARY_FORWARD(TG_OP_ADD_SCALAR, a, out, x[i] + (T)s);
    if (e) e->f = s;
    return out;
}
TG_SIMD static void add_scalar_backward(tg_tape *t, const tg_entry *e) { UNARY_BACKWARD(t, e, (T)1); }

/* ---------------------------------------------------------------- mul_scalar */

TG_SIMD tg_var *tg_mul_scalar_(TG_LOC, tg_tape *t, tg_var *a, double s) {
    (void)file, (void)line;
    tg_var *out = unary_new(t, a);
    UNARY_FORWARD(TG_OP_MUL_SCALAR, a, out, x[i] * (T)s);
    if (e) e->f = s;
    return out;
}
TG_SIMD static void mul_scalar_backward(tg_tape *t, const tg_entry *e) { UNARY_BACKWARD(t, e, (T)e->f); }

/* ---------------------------------------------------------------- exp */

TG_SIMD tg_var *tg_exp_(TG_LOC, tg_tape *t, tg_var *a) {
    (void)file, (void)line;
    tg_var *out = unary_new(t, a);
    UNARY_FORWARD(TG_OP_EXP, a, out, EXP(x[i]));
    return out;
}
TG_SIMD static void exp_backward(tg_tape *t, const tg_entry *e) { UNARY_BACKWARD(t, e, y[i]); }

/* ---------------------------------------------------------------- log */

TG_SIMD tg_var *tg_log_(TG_LOC, tg_tape *t, tg_var *a) {
    (void)file, (void)line;
    tg_var *out = unary_new(t, a);
    UNARY_FORWARD(TG_OP_LOG, a, out, LOG(x[i]));
    return out;
}
TG_SIMD static void log_backward(tg_tape *t, const tg_entry *e) { UNARY_BACKWARD(t, e, (T)1 / x[i]); }

/* ---------------------------------------------------------------- sqrt */

tg_var *tg_sqrt_(TG_LOC, tg_tape *t, tg_var *a) {
    (void)file, (void)line;
    tg_var *out = unary_new(t, a);
    UNARY_FORWARD(TG_OP_SQRT, a, out, sqrt(x[i]));
    return out;
}
static void sqrt_backward(tg_tape *t, const tg_entry *e) { UNARY_BACKWARD(t, e, (T)0.5 / y[i]); }

/* ---------------------------------------------------------------- square */

TG_SIMD tg_var *tg_square_(TG_LOC, tg_tape *t, tg_var *a) {
    (void)file, (void)line;
    tg_var *out = unary_new(t, a);
    UNARY_FORWARD(TG_OP_SQUARE, a, out, x[i] * x[i]);
    return out;
}
TG_SIMD static void square_backward(tg_tape *t, const tg_entry *e) { UNARY_BACKWARD(t, e, (T)2 * x[i]); }

/* ---------------------------------------------------------------- pow */

tg_var *tg_pow_(TG_LOC, tg_tape *t, tg_var *a, double p) {
    (void)file, (void)line;
    tg_var *out = unary_new(t, a);
    UNARY_FORWARD(TG_OP_POW, a, out, pow(x[i], (T)p));
    if (e) e->f = p;
    return out;
}
/* d x^p / dx = p x^(p-1); written without dividing by x so x = 0 works for p >= 1. */
static void pow_backward(tg_tape *t, const tg_entry *e) {
    UNARY_BACKWARD(t, e, e->f == 0 ? (T)0 : (T)e->f * pow(x[i], (T)(e->f - 1)));
}

/* ---------------------------------------------------------------- relu */

TG_SIMD tg_var *tg_relu_(TG_LOC, tg_tape *t, tg_var *a) {
    (void)file, (void)line;
    tg_var *out = unary_new(t, a);
    UNARY_FORWARD(TG_OP_RELU, a, out, x[i] > 0 ? x[i] : (T)0);
    return out;
}
/* Gradient 1 where x > 0, else 0 (including x = 0, as PyTorch). */
TG_SIMD static void relu_backward(tg_tape *t, const tg_entry *e) { UNARY_BACKWARD(t, e, x[i] > 0 ? (T)1 : (T)0); }

/* ---------------------------------------------------------------- sigmoid */

/* 1 / (1 + e^-v) from e = e^-|v|, which never overflows: sigmoid(±300) is exact. */
static inline float sigmoid_f(float v) {
    float e = tg_expf(v < 0 ? v : -v), r = 1.0f / (1.0f + e);
    return v >= 0 ? r : e * r;
}
static inline double sigmoid_d(double v) {
    double e = exp_d(v < 0 ? v : -v), r = 1.0 / (1.0 + e);
    return v >= 0 ? r : e * r;
}
#define SIGMOID(T, v) _Generic((T)0, float: sigmoid_f, default: sigmoid_d)(v)

TG_SIMD tg_var *tg_sigmoid_(TG_LOC, tg_tape *t, tg_var *a) {
    (void)file, (void)line;
    tg_var *out = unary_new(t, a);
    UNARY_FORWARD(TG_OP_SIGMOID, a, out, SIGMOID(T, x[i]));
    return out;
}
TG_SIMD static void sigmoid_backward(tg_tape *t, const tg_entry *e) { UNARY_BACKWARD(t, e, y[i] * ((T)1 - y[i])); }

/* ---------------------------------------------------------------- tanh */

tg_var *tg_tanh_(TG_LOC, tg_tape *t, tg_var *a) {
    (void)file, (void)line;
    tg_var *out = unary_new(t, a);
    UNARY_FORWARD(TG_OP_TANH, a, out, tanh(x[i]));
    return out;
}
static void tanh_backward(tg_tape *t, const tg_entry *e) { UNARY_BACKWARD(t, e, (T)1 - y[i] * y[i]); }

/* ---------------------------------------------------------------- softplus */

/* ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|): no overflow for large |x|. */
TG_SIMD tg_var *tg_softplus_(TG_LOC, tg_tape *t, tg_var *a) {
    (void)file, (void)line;
    tg_var *out = unary_new(t, a);
    UNARY_FORWARD(TG_OP_SOFTPLUS, a, out, (x[i] > 0 ? x[i] : (T)0) + LOG1P(EXP(-fabs(x[i]))));
    return out;
}
TG_SIMD static void softplus_backward(tg_tape *t, const tg_entry *e) { UNARY_BACKWARD(t, e, SIGMOID(T, x[i])); }

/* ================================================================ matmul */

static void gemm(tg_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda,
                 const void *B, int64_t ldb, double beta, void *C, int64_t ldc) {
    if (dt == TG_F32) tg_gemm_f32(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, (float)beta, C, ldc);
    else tg_gemm_f64(ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

tg_var *tg_matmul_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b, bool ta, bool tb) {
    char b1[96], b2[96];
    check_same_dtype(file, line, "matmul", a, b);
    OP_CHECK(a->val.shape.ndim == 2 && b->val.shape.ndim == 2, "matmul: operands must be 2-D, got %s and %s",
             tg_shape_str(a->val.shape, b1), tg_shape_str(b->val.shape, b2));
    int64_t M = a->val.shape.d[ta], K = a->val.shape.d[!ta], Kb = b->val.shape.d[tb], N = b->val.shape.d[!tb];
    OP_CHECK(K == Kb, "matmul: inner dimensions differ: %s%s @ %s%s", tg_shape_str(a->val.shape, b1),
             ta ? "^T" : "", tg_shape_str(b->val.shape, b2), tb ? "^T" : "");
    tg_var *out = tg_var_new(t, a->val.dtype, TG_SHAPE(M, N));
    gemm(a->val.dtype, ta, tb, M, N, K, a->val.data, a->val.shape.d[1], b->val.data, b->val.shape.d[1], 0.0,
         out->val.data, N);
    tg_entry *e = tg_record(t, TG_OP_MATMUL, out, a, b);
    if (e) e->i[0] = ta, e->i[1] = tb;
    return out;
}

/* C = op(A) op(B). dop(A) = dC op(B)^T and dop(B) = op(A)^T dC; when an operand
 * was read transposed, its gradient is the transpose of that, which the
 * transpose flags of the same product express without any copy. */
static void matmul_backward(tg_tape *t, const tg_entry *e) {
    tg_var *a = e->in[0], *b = e->in[1];
    bool ta = e->i[0], tb = e->i[1];
    int64_t M = e->out->val.shape.d[0], N = e->out->val.shape.d[1], K = a->val.shape.d[!ta];
    int64_t lda = a->val.shape.d[1], ldb = b->val.shape.d[1];
    const void *g = e->out->grad.data;
    tg_dtype dt = a->val.dtype;
    void *ga = grad_of(t, a), *gb = grad_of(t, b);
    if (ga) {
        if (!ta) gemm(dt, false, !tb, M, K, N, g, N, b->val.data, ldb, 1.0, ga, lda);   /* (M,K) = dC op(B)^T */
        else gemm(dt, tb, true, K, M, N, b->val.data, ldb, g, N, 1.0, ga, lda);         /* (K,M) = op(B) dC^T */
    }
    if (gb) {
        if (!tb) gemm(dt, !ta, false, K, N, M, a->val.data, lda, g, N, 1.0, gb, ldb);   /* (K,N) = op(A)^T dC */
        else gemm(dt, true, ta, N, K, M, g, N, a->val.data, lda, 1.0, gb, ldb);         /* (N,K) = dC^T op(A) */
    }
}

/* ---------------------------------------------------------------- affine */

tg_var *tg_affine_(TG_LOC, tg_tape *t, tg_var *x, tg_var *w, tg_var *b, tg_act act) {
    char b1[96], b2[96], b3[96];
    check_same_dtype(file, line, "affine", x, w);
    check_same_dtype(file, line, "affine", x, b);
    tg_shape sx = x->val.shape, sw = w->val.shape, sb = b->val.shape;
    OP_CHECK(sx.ndim == 2 && sw.ndim == 2 && sb.ndim == 1 && sx.d[1] == sw.d[1] && sb.d[0] == sw.d[0],
             "affine: x %s, w %s, b %s do not fit x (B, in), w (out, in), b (out)", tg_shape_str(sx, b1),
             tg_shape_str(sw, b2), tg_shape_str(sb, b3));
    int64_t B = sx.d[0], in = sx.d[1], n = sw.d[0];
    tg_var *out = tg_var_new(t, x->val.dtype, TG_SHAPE(B, n));
    size_t row = (size_t)n * tg_dtype_size(x->val.dtype);
    for (int64_t r = 0; r < B; r++) memcpy((char *)out->val.data + (size_t)r * row, b->val.data, row);
    gemm(x->val.dtype, false, true, B, n, in, x->val.data, in, w->val.data, in, 1.0, out->val.data, n);
    if (act == TG_ACT_RELU) {
        TG_DISPATCH(x->val.dtype, {
            T *y = out->val.data;
            for (int64_t i = 0; i < B * n; i++) y[i] = y[i] > 0 ? y[i] : (T)0;
        });
    }
    tg_entry *e = tg_record3(t, TG_OP_AFFINE, out, x, w, b);
    if (e) e->i[0] = act;
    return out;
}

/* With G = dY (times the ReLU mask, y > 0, if fused): dx += G w, dw += G^T x,
 * db += the column sums of G. */
TG_SIMD static void affine_backward(tg_tape *t, const tg_entry *e) {
    tg_var *x = e->in[0], *w = e->in[1], *b = e->in[2];
    int64_t B = x->val.shape.d[0], in = x->val.shape.d[1], n = w->val.shape.d[0];
    tg_dtype dt = x->val.dtype;
    const void *g = e->out->grad.data;
    if (e->i[0] == TG_ACT_RELU) {
        void *masked = tg_arena_alloc(t->arena, (size_t)(B * n) * tg_dtype_size(dt));
        TG_DISPATCH(dt, {
            const T *restrict gy = g, *restrict y = e->out->val.data; T *restrict gm = masked;
            for (int64_t i = 0; i < B * n; i++) gm[i] = y[i] > 0 ? gy[i] : (T)0;
        });
        g = masked;
    }
    void *gx = grad_of(t, x), *gw = grad_of(t, w), *gb = grad_of(t, b);
    if (gx) gemm(dt, false, false, B, in, n, g, n, w->val.data, in, 1.0, gx, in);
    if (gw) gemm(dt, true, false, n, in, B, g, n, x->val.data, in, 1.0, gw, in);
    if (gb) {
        TG_DISPATCH(dt, {
            const T *restrict gg = g; T *restrict db = gb;
            for (int64_t r = 0; r < B; r++)
                for (int64_t j = 0; j < n; j++) db[j] += gg[r * n + j];
        });
    }
}

/* ================================================================ reductions */

/* Sums of whole tensors are taken in fixed chunks of SUM_CHUNK elements, each
 * with four double accumulators, and the chunk sums are added in order: the
 * grouping depends only on the size, never on the thread count. */
enum { SUM_CHUNK = 4096 };

TG_SIMD static void sum_chunks(void *ctx, int64_t begin, int64_t end) {
    const kernel_args *k = ctx;
    int64_t n = (int64_t)k->s;
    double *part = k->out;
    for (int64_t c = begin; c < end; c++) {
        int64_t lo = c * SUM_CHUNK, hi = lo + SUM_CHUNK < n ? lo + SUM_CHUNK : n, i = lo;
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        TG_DISPATCH(k->dt, {
            const T *x = k->x;
            for (; i + 4 <= hi; i += 4) a0 += x[i], a1 += x[i + 1], a2 += x[i + 2], a3 += x[i + 3];
            for (; i < hi; i++) a0 += x[i];
        });
        part[c] = (a0 + a1) + (a2 + a3);
    }
}

static double sum_whole(tg_tape *t, const tg_tensor *x) {
    int64_t chunks = (x->numel + SUM_CHUNK - 1) / SUM_CHUNK;
    double *part = tg_arena_alloc(t->arena, (size_t)(chunks ? chunks : 1) * sizeof *part);
    kernel_args k = {.dt = x->dtype, .x = x->data, .out = part, .s = (double)x->numel};
    tg_parallel_for(chunks, 4, sum_chunks, &k);
    double acc = 0;
    for (int64_t c = 0; c < chunks; c++) acc += part[c];
    return acc;
}

TG_SIMD static tg_var *reduce(TG_LOC, tg_tape *t, tg_op op, tg_var *a, int axis, bool keepdim, bool whole) {
    int64_t outer = 1, n = a->val.numel, inner = 1;
    tg_shape s = TG_SCALAR_SHAPE;
    if (!whole) {
        axis = norm_axis(file, line, tg_ops[op].name, axis, a->val.shape.ndim);
        split_axis(a->val.shape, axis, &outer, &n, &inner);
        s = a->val.shape;
        if (keepdim) s.d[axis] = 1;
        else {
            for (int i = axis; i < s.ndim - 1; i++) s.d[i] = s.d[i + 1];
            s.ndim--;
        }
    }
    tg_var *out = tg_var_new(t, a->val.dtype, s);
    double scale = op == TG_OP_MEAN ? 1.0 / (double)n : 1.0;
    if (whole) {
        tg_tensor_set(&out->val, 0, sum_whole(t, &a->val) * scale);
    } else {
        TG_DISPATCH(a->val.dtype, {
            const T *x = a->val.data; T *y = out->val.data;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t k = 0; k < inner; k++) {
                    double acc = 0;  /* double accumulator: sums of 10^5 floats stay accurate */
                    for (int64_t j = 0; j < n; j++) acc += x[(o * n + j) * inner + k];
                    y[o * inner + k] = (T)(acc * scale);
                }
        });
    }
    tg_entry *e = tg_record(t, op, out, a, NULL);
    if (e) e->i[0] = whole ? 0 : axis, e->i[1] = keepdim, e->i[2] = whole;
    return out;
}

/* ga[i] += s for i in [begin, end): the backward of a whole sum or mean. */
TG_SIMD static void add_const_range(void *ctx, int64_t begin, int64_t end) {
    const kernel_args *k = ctx;
    TG_DISPATCH(k->dt, {
        T *restrict ga = k->out;
        const T c = (T)k->s;
        for (int64_t i = begin; i < end; i++) ga[i] += c;
    });
}

/* Every input element receives the gradient of the output it was summed into. */
TG_SIMD static void reduce_backward(tg_tape *t, const tg_entry *e) {
    tg_var *a = e->in[0];
    int64_t outer = 1, n = a->val.numel, inner = 1;
    if (!e->i[2]) split_axis(a->val.shape, (int)e->i[0], &outer, &n, &inner);
    double scale = e->op == TG_OP_MEAN ? 1.0 / (double)n : 1.0;
    if (e->i[2]) {
        kernel_args k = {.dt = a->val.dtype, .out = tg_var_grad(t, a)->data,
                         .s = tg_tensor_get(&e->out->grad, 0) * scale};
        tg_parallel_for(n, PAR_GRAIN, add_const_range, &k);
        return;
    }
    TG_DISPATCH(a->val.dtype, {
        const T *g = e->out->grad.data; T *ga = tg_var_grad(t, a)->data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < n; j++)
                for (int64_t k = 0; k < inner; k++) ga[(o * n + j) * inner + k] += g[o * inner + k] * (T)scale;
    });
}

tg_var *tg_sum_(TG_LOC, tg_tape *t, tg_var *a) { return reduce(file, line, t, TG_OP_SUM, a, 0, false, true); }
tg_var *tg_mean_(TG_LOC, tg_tape *t, tg_var *a) { return reduce(file, line, t, TG_OP_MEAN, a, 0, false, true); }
tg_var *tg_sum_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim) {
    return reduce(file, line, t, TG_OP_SUM, a, axis, keepdim, false);
}
tg_var *tg_mean_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim) {
    return reduce(file, line, t, TG_OP_MEAN, a, axis, keepdim, false);
}

/* ================================================================ shape ops */

/* ---------------------------------------------------------------- reshape */

tg_var *tg_reshape_(TG_LOC, tg_tape *t, tg_var *a, tg_shape s) {
    char b1[96], b2[96];
    OP_CHECK(tg_shape_numel(s) == a->val.numel, "reshape: cannot view %s as %s",
             tg_shape_str(a->val.shape, b1), tg_shape_str(s, b2));
    tg_var *out = tg_arena_calloc(t->arena, sizeof *out);
    out->val = tg_tensor_wrap(a->val.dtype, s, a->val.data);   /* a view: shares a's values */
    out->grad = tg_tensor_wrap(a->val.dtype, s, NULL);
    tg_record(t, TG_OP_RESHAPE, out, a, NULL);
    return out;
}

TG_SIMD static void reshape_backward(tg_tape *t, const tg_entry *e) {
    TG_DISPATCH(e->out->val.dtype, {
        const T *g = e->out->grad.data; T *ga = tg_var_grad(t, e->in[0])->data;
        for (int64_t i = 0; i < e->out->val.numel; i++) ga[i] += g[i];
    });
}

/* ---------------------------------------------------------------- transpose */

/* dst (x's shape with d0, d1 swapped) = x with axes d0, d1 swapped; added to dst if acc. */
static void swap_axes(const tg_tensor *x, int d0, int d1, void *dst, bool acc) {
    int nd = x->shape.ndim;
    int64_t stride[TG_MAX_DIMS], oshape[TG_MAX_DIMS], ostride[TG_MAX_DIMS], idx[TG_MAX_DIMS] = {0};
    for (int k = nd - 1, s = 1; k >= 0; k--) stride[k] = s, s *= (int)x->shape.d[k];
    for (int k = 0; k < nd; k++) oshape[k] = x->shape.d[k], ostride[k] = stride[k];
    oshape[d0] = x->shape.d[d1], oshape[d1] = x->shape.d[d0];
    ostride[d0] = stride[d1], ostride[d1] = stride[d0];   /* output axis k walks x by ostride[k] */
    TG_DISPATCH(x->dtype, {
        const T *src = x->data; T *o = dst;
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

tg_var *tg_transpose_(TG_LOC, tg_tape *t, tg_var *a, int d0, int d1) {
    d0 = norm_axis(file, line, "transpose", d0, a->val.shape.ndim);
    d1 = norm_axis(file, line, "transpose", d1, a->val.shape.ndim);
    tg_shape s = a->val.shape;
    s.d[d0] = a->val.shape.d[d1], s.d[d1] = a->val.shape.d[d0];
    tg_var *out = tg_var_new(t, a->val.dtype, s);
    swap_axes(&a->val, d0, d1, out->val.data, false);
    tg_entry *e = tg_record(t, TG_OP_TRANSPOSE, out, a, NULL);
    if (e) e->i[0] = d0, e->i[1] = d1;
    return out;
}

static void transpose_backward(tg_tape *t, const tg_entry *e) {
    swap_axes(&e->out->grad, (int)e->i[0], (int)e->i[1], tg_var_grad(t, e->in[0])->data, true);
}

/* ---------------------------------------------------------------- concat */

tg_var *tg_concat_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b, int axis) {
    char b1[96], b2[96];
    check_same_dtype(file, line, "concat", a, b);
    tg_shape sa = a->val.shape, sb = b->val.shape;
    bool ok = sa.ndim == sb.ndim;
    axis = norm_axis(file, line, "concat", axis, sa.ndim);
    for (int k = 0; ok && k < sa.ndim; k++) ok = k == axis || sa.d[k] == sb.d[k];
    OP_CHECK(ok, "concat: shapes %s and %s differ outside axis %d", tg_shape_str(sa, b1), tg_shape_str(sb, b2), axis);
    tg_shape s = sa;
    s.d[axis] += sb.d[axis];
    tg_var *out = tg_var_new(t, a->val.dtype, s);
    int64_t outer, n, inner, es = (int64_t)tg_dtype_size(a->val.dtype);
    split_axis(sa, axis, &outer, &n, &inner);
    int64_t ca = sa.d[axis] * inner * es, cb = sb.d[axis] * inner * es;   /* bytes per outer row */
    char *o = out->val.data;
    const char *x = a->val.data, *y = b->val.data;
    for (int64_t r = 0; r < outer; r++) {
        memcpy(o + r * (ca + cb), x + r * ca, (size_t)ca);
        memcpy(o + r * (ca + cb) + ca, y + r * cb, (size_t)cb);
    }
    tg_entry *e = tg_record(t, TG_OP_CONCAT, out, a, b);
    if (e) e->i[0] = axis;
    return out;
}

static void concat_backward(tg_tape *t, const tg_entry *e) {
    int axis = (int)e->i[0];
    int64_t outer, n, inner;
    split_axis(e->in[0]->val.shape, axis, &outer, &n, &inner);
    int64_t ca = e->in[0]->val.shape.d[axis] * inner, cb = e->in[1]->val.shape.d[axis] * inner;
    TG_DISPATCH(e->out->val.dtype, {
        const T *g = e->out->grad.data; T *ga = grad_of(t, e->in[0]), *gb = grad_of(t, e->in[1]);
        for (int64_t r = 0; r < outer; r++) {
            if (ga) for (int64_t j = 0; j < ca; j++) ga[r * ca + j] += g[r * (ca + cb) + j];
            if (gb) for (int64_t j = 0; j < cb; j++) gb[r * cb + j] += g[r * (ca + cb) + ca + j];
        }
    });
}

/* ---------------------------------------------------------------- narrow */

tg_var *tg_narrow_(TG_LOC, tg_tape *t, tg_var *a, int axis, int64_t start, int64_t len) {
    char b1[96];
    axis = norm_axis(file, line, "narrow", axis, a->val.shape.ndim);
    OP_CHECK(start >= 0 && len >= 0 && start + len <= a->val.shape.d[axis],
             "narrow: [%lld, %lld) is outside axis %d of %s", (long long)start, (long long)(start + len), axis,
             tg_shape_str(a->val.shape, b1));
    tg_shape s = a->val.shape;
    s.d[axis] = len;
    tg_var *out = tg_var_new(t, a->val.dtype, s);
    int64_t outer, n, inner, es = (int64_t)tg_dtype_size(a->val.dtype);
    split_axis(a->val.shape, axis, &outer, &n, &inner);
    const char *x = a->val.data;
    char *o = out->val.data;
    for (int64_t r = 0; r < outer; r++)
        memcpy(o + r * len * inner * es, x + (r * n + start) * inner * es, (size_t)(len * inner * es));
    tg_entry *e = tg_record(t, TG_OP_NARROW, out, a, NULL);
    if (e) e->i[0] = axis, e->i[1] = start, e->i[2] = len;
    return out;
}

static void narrow_backward(tg_tape *t, const tg_entry *e) {
    int64_t outer, n, inner, start = e->i[1], len = e->i[2];
    split_axis(e->in[0]->val.shape, (int)e->i[0], &outer, &n, &inner);
    TG_DISPATCH(e->out->val.dtype, {
        const T *g = e->out->grad.data; T *ga = tg_var_grad(t, e->in[0])->data;
        for (int64_t r = 0; r < outer; r++)
            for (int64_t j = 0; j < len * inner; j++) ga[(r * n + start) * inner + j] += g[r * len * inner + j];
    });
}

/* ---------------------------------------------------------------- one_hot */

tg_var *tg_one_hot_(TG_LOC, tg_tape *t, tg_var *labels, int64_t classes) {
    char b1[96];
    OP_CHECK(labels->val.shape.ndim == 1, "one_hot: labels must be 1-D, got %s", tg_shape_str(labels->val.shape, b1));
    OP_CHECK(classes > 0, "one_hot: %lld classes", (long long)classes);
    int64_t n = labels->val.numel;
    tg_var *out = tg_var_new(t, labels->val.dtype, TG_SHAPE(n, classes));
    tg_tensor_fill(&out->val, 0);
    for (int64_t i = 0; i < n; i++) {
        double c = tg_tensor_get(&labels->val, i);
        OP_CHECK(c >= 0 && c < (double)classes && c == (double)(int64_t)c,
                 "one_hot: label %g at index %lld is not a class in [0, %lld)", c, (long long)i, (long long)classes);
        tg_tensor_set(&out->val, i * classes + (int64_t)c, 1.0);
    }
    return out;   /* never recorded: labels are integers, there is no gradient */
}

/* ================================================================ VAE ops */

/* ---------------------------------------------------------------- reparam */

TG_SIMD tg_var *tg_reparam_(TG_LOC, tg_tape *t, tg_var *mu, tg_var *logvar, const tg_tensor *eps) {
    char b1[96], b2[96];
    check_same_shape(file, line, "reparam", mu, logvar);
    OP_CHECK(tg_shape_eq(eps->shape, mu->val.shape) && eps->dtype == mu->val.dtype,
             "reparam: eps is %s %s, mu is %s %s", tg_shape_str(eps->shape, b1), tg_dtype_name(eps->dtype),
             tg_shape_str(mu->val.shape, b2), tg_dtype_name(mu->val.dtype));
    tg_var *out = tg_var_new(t, mu->val.dtype, mu->val.shape);
    TG_DISPATCH(mu->val.dtype, {
        const T *m = mu->val.data, *lv = logvar->val.data, *ep = eps->data; T *z = out->val.data;
        for (int64_t i = 0; i < out->val.numel; i++) z[i] = m[i] + EXP((T)0.5 * lv[i]) * ep[i];
    });
    tg_entry *e = tg_record(t, TG_OP_REPARAM, out, mu, logvar);
    if (e) e->saved = tg_tensor_copy(t->arena, eps);   /* the eps this sample used, never redrawn */
    return out;
}

tg_var *tg_reparam_sample_(TG_LOC, tg_tape *t, tg_var *mu, tg_var *logvar, tg_rng *r) {
    tg_tensor *eps = tg_tensor_normal(t->arena, mu->val.dtype, mu->val.shape, r);
    return tg_reparam_(file, line, t, mu, logvar, eps);
}

/* dz/dmu = 1, dz/dlogvar = eps exp(logvar / 2) / 2. */
TG_SIMD static void reparam_backward(tg_tape *t, const tg_entry *e) {
    TG_DISPATCH(e->out->val.dtype, {
        const T *g = e->out->grad.data, *lv = e->in[1]->val.data, *ep = e->saved->data;
        T *gm = grad_of(t, e->in[0]), *gl = grad_of(t, e->in[1]);
        int64_t n = e->out->val.numel;
        if (gm)
            for (int64_t i = 0; i < n; i++) gm[i] += g[i];
        if (gl)
            for (int64_t i = 0; i < n; i++) gl[i] += g[i] * (T)0.5 * EXP((T)0.5 * lv[i]) * ep[i];
    });
}

/* ---------------------------------------------------------------- bce */

/* ln v clamped below at -100, as PyTorch's binary_cross_entropy. */
static inline float clamped_logf(float v) { float l = tg_logf(v); return l > -100.0f ? l : -100.0f; }
static inline double clamped_log(double v) { double l = log_d(v); return l > -100.0 ? l : -100.0; }
#define CLAMPED_LOG(v) _Generic((v), float: clamped_logf, default: clamped_log)(v)

TG_SIMD tg_var *tg_bce_(TG_LOC, tg_tape *t, tg_var *p, tg_var *y) {
    check_same_shape(file, line, "bce", p, y);
    tg_var *out = tg_var_new(t, p->val.dtype, p->val.shape);
    TG_DISPATCH(p->val.dtype, {
        const T *pp = p->val.data, *yy = y->val.data; T *o = out->val.data;
        for (int64_t i = 0; i < out->val.numel; i++) {
            T lp = CLAMPED_LOG(pp[i]), lq = CLAMPED_LOG((T)1 - pp[i]);
            o[i] = -(yy[i] * lp + ((T)1 - yy[i]) * lq);
        }
    });
    tg_record(t, TG_OP_BCE, out, p, y);
    return out;
}

/* d/dp = (p - y) / max(p (1 - p), 1e-12)  (PyTorch's formula, finite at p = 0 and 1);
 * d/dy = max(ln(1 - p), -100) - max(ln p, -100). */
TG_SIMD static void bce_backward(tg_tape *t, const tg_entry *e) {
    TG_DISPATCH(e->out->val.dtype, {
        const T *g = e->out->grad.data, *pp = e->in[0]->val.data, *yy = e->in[1]->val.data;
        T *gp = grad_of(t, e->in[0]), *gy = grad_of(t, e->in[1]);
        int64_t n = e->out->val.numel;
        if (gp)
            for (int64_t i = 0; i < n; i++) {
                T pq = pp[i] * ((T)1 - pp[i]);
                gp[i] += g[i] * (pp[i] - yy[i]) / (pq > (T)1e-12 ? pq : (T)1e-12);
            }
        if (gy)
            for (int64_t i = 0; i < n; i++) gy[i] += g[i] * (CLAMPED_LOG((T)1 - pp[i]) - CLAMPED_LOG(pp[i]));
    });
}

/* ---------------------------------------------------------------- bce_logits */

TG_SIMD static void bce_logits_range(void *ctx, int64_t begin, int64_t end) {
    const kernel_args *k = ctx;
    TG_DISPATCH(k->dt, {
        const T *restrict xx = k->x, *restrict yy = k->y; T *restrict o = k->out;
        for (int64_t i = begin; i < end; i++)
            o[i] = (xx[i] > 0 ? xx[i] : (T)0) - xx[i] * yy[i] + LOG1P(EXP(-fabs(xx[i])));
    });
}

tg_var *tg_bce_logits_(TG_LOC, tg_tape *t, tg_var *x, tg_var *y) {
    check_same_shape(file, line, "bce_logits", x, y);
    tg_var *out = tg_var_new(t, x->val.dtype, x->val.shape);
    kernel_args k = {.dt = x->val.dtype, .x = x->val.data, .y = y->val.data, .out = out->val.data};
    tg_parallel_for(out->val.numel, PAR_GRAIN, bce_logits_range, &k);
    tg_record(t, TG_OP_BCE_LOGITS, out, x, y);
    return out;
}

/* d/dx = sigmoid(x) - y, d/dy = -x. */
TG_SIMD static void bce_logits_dx_range(void *ctx, int64_t begin, int64_t end) {
    const kernel_args *k = ctx;
    TG_DISPATCH(k->dt, {
        const T *restrict g = k->g, *restrict xx = k->x, *restrict yy = k->y; T *restrict gx = k->out;
        for (int64_t i = begin; i < end; i++) gx[i] += g[i] * (SIGMOID(T, xx[i]) - yy[i]);
    });
}

TG_SIMD static void bce_logits_backward(tg_tape *t, const tg_entry *e) {
    void *gx = grad_of(t, e->in[0]), *gy = grad_of(t, e->in[1]);
    if (gx) {
        kernel_args k = {.dt = e->out->val.dtype, .x = e->in[0]->val.data, .y = e->in[1]->val.data,
                         .g = e->out->grad.data, .out = gx};
        tg_parallel_for(e->out->val.numel, PAR_GRAIN, bce_logits_dx_range, &k);
    }
    if (gy) {
        TG_DISPATCH(e->out->val.dtype, {
            const T *restrict g = e->out->grad.data, *restrict xx = e->in[0]->val.data; T *restrict gyy = gy;
            for (int64_t i = 0; i < e->out->val.numel; i++) gyy[i] -= g[i] * xx[i];
        });
    }
}

/* ================================================================ the table */

const tg_op_def tg_ops[TG_OP_COUNT] = {
    [TG_OP_ADD] = {"add", 2, add_backward},
    [TG_OP_SUB] = {"sub", 2, sub_backward},
    [TG_OP_MUL] = {"mul", 2, mul_backward},
    [TG_OP_DIV] = {"div", 2, div_backward},
    [TG_OP_NEG] = {"neg", 1, neg_backward},
    [TG_OP_ADD_SCALAR] = {"add_scalar", 1, add_scalar_backward},
    [TG_OP_MUL_SCALAR] = {"mul_scalar", 1, mul_scalar_backward},
    [TG_OP_EXP] = {"exp", 1, exp_backward},
    [TG_OP_LOG] = {"log", 1, log_backward},
    [TG_OP_SQRT] = {"sqrt", 1, sqrt_backward},
    [TG_OP_SQUARE] = {"square", 1, square_backward},
    [TG_OP_POW] = {"pow", 1, pow_backward},
    [TG_OP_RELU] = {"relu", 1, relu_backward},
    [TG_OP_SIGMOID] = {"sigmoid", 1, sigmoid_backward},
    [TG_OP_TANH] = {"tanh", 1, tanh_backward},
    [TG_OP_SOFTPLUS] = {"softplus", 1, softplus_backward},
    [TG_OP_MATMUL] = {"matmul", 2, matmul_backward},
    [TG_OP_AFFINE] = {"affine", 3, affine_backward},
    [TG_OP_SUM] = {"sum", 1, reduce_backward},
    [TG_OP_MEAN] = {"mean", 1, reduce_backward},
    [TG_OP_RESHAPE] = {"reshape", 1, reshape_backward},
    [TG_OP_TRANSPOSE] = {"transpose", 1, transpose_backward},
    [TG_OP_CONCAT] = {"concat", 2, concat_backward},
    [TG_OP_NARROW] = {"narrow", 1, narrow_backward},
    [TG_OP_ONE_HOT] = {"one_hot", 1, NULL},
    [TG_OP_REPARAM] = {"reparam", 2, reparam_backward},
    [TG_OP_BCE] = {"bce", 2, bce_backward},
    [TG_OP_BCE_LOGITS] = {"bce_logits", 2, bce_logits_backward},
};
