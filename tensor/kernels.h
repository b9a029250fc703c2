/*
 * kernels.h — the maths of plain tensors, without a tape: every loop of the
 * library lives here, once. Autograd's derivative rules (autograd/) are
 * written as calls to these, and so is any code that needs no gradients.
 *
 *     tg_arena *a = tg_arena_new();
 *     tg_tensor *x = tg_tensor_full(a, TG_F32, TG_SHAPE(2, 3), 2.0);
 *     tg_tensor *b = tg_tensor_full(a, TG_F32, TG_SHAPE(3), 1.0);
 *     tg_tensor *y = tg_tensor_new(a, TG_F32, TG_SHAPE(2, 3));
 *     tg_tensor_add(y, x, b);              // y = x + b, b broadcast over the rows: all 3
 *     tg_tensor_exp(y, y);                 // in place: e^3
 *     double s = tg_tensor_sum(y);         // 6 e^3
 *
 * Conventions. Outputs come first; every operand is float32 or float64 and
 * all operands of a call share one dtype; shapes follow NumPy broadcasting
 * where said, else they must be equal. A kernel checks its arguments and
 * aborts (TG_CHECK) on a mismatch: the autograd ops check shapes first with
 * the caller's file:line, so these checks only catch misuse of the kernels
 * themselves. "acc" kernels add into their output (+=), the others overwrite
 * it; an elementwise output may be one of its inputs.
 *
 * Speed. Loops are written so the compiler vectorises them; the float32 exp
 * and log are tensor/vmath.h's; large loops and whole-tensor sums run on the
 * thread pool (tensor/pool.h). Each output element is computed by one thread
 * with the same operations, and sums use a grouping fixed by the size alone,
 * so results are bit-identical for any thread count.
 */
#ifndef TG_KERNELS_H
#define TG_KERNELS_H

#include <stdbool.h>

#include "tensor/tensor.h"

/* ---------------------------------------------------------------- broadcasting */

/* NumPy broadcasting: sizes are matched from the last dimension; each pair
 * must be equal or contain a 1. True, with the result in *out, if a and b
 * broadcast. */
bool tg_shape_broadcast(tg_shape a, tg_shape b, tg_shape *out);

/* out = a op b elementwise, a and b broadcast to out's shape. */
void tg_tensor_add(tg_tensor *out, const tg_tensor *a, const tg_tensor *b);
void tg_tensor_sub(tg_tensor *out, const tg_tensor *a, const tg_tensor *b);
void tg_tensor_mul(tg_tensor *out, const tg_tensor *a, const tg_tensor *b);
void tg_tensor_div(tg_tensor *out, const tg_tensor *a, const tg_tensor *b);

/* dst += scale * src summed over the dimensions in which dst was broadcast
 * to src's shape: the gradient of broadcasting, "sum back to the shape". */
void tg_tensor_acc_sum_to(tg_tensor *dst, const tg_tensor *src, double scale);
/* dst += scale * src broadcast to dst's shape. */
void tg_tensor_acc_broadcast(tg_tensor *dst, const tg_tensor *src, double scale);
/* out = src broadcast to out's shape (e.g. a bias copied to every row). */
void tg_tensor_expand(tg_tensor *out, const tg_tensor *src);

/* ---------------------------------------------------------------- elementwise */

/* dst += a * b, all of one shape: the chain rule's dL/dx += dL/dy * dy/dx. */
void tg_tensor_acc_mul(tg_tensor *dst, const tg_tensor *a, const tg_tensor *b);
/* dst += c (threaded). */
void tg_tensor_acc_scalar(tg_tensor *dst, double c);

/* out = f(x), same shape. */
void tg_tensor_neg(tg_tensor *out, const tg_tensor *x);
void tg_tensor_exp(tg_tensor *out, const tg_tensor *x);
void tg_tensor_log(tg_tensor *out, const tg_tensor *x);
void tg_tensor_sqrt(tg_tensor *out, const tg_tensor *x);
void tg_tensor_square(tg_tensor *out, const tg_tensor *x);
void tg_tensor_relu(tg_tensor *out, const tg_tensor *x);        /* max(x, 0) */
void tg_tensor_sigmoid(tg_tensor *out, const tg_tensor *x);     /* 1 / (1 + e^-x), exact at +-300 */
void tg_tensor_tanh(tg_tensor *out, const tg_tensor *x);
void tg_tensor_softplus(tg_tensor *out, const tg_tensor *x);    /* max(x, 0) + ln(1 + e^-|x|) */
void tg_tensor_step(tg_tensor *out, const tg_tensor *x);        /* 1 where x > 0, else 0 */
void tg_tensor_add_scalar(tg_tensor *out, const tg_tensor *x, double s);   /* x + s */
void tg_tensor_mul_scalar(tg_tensor *out, const tg_tensor *x, double s);   /* x s */
void tg_tensor_pow_scalar(tg_tensor *out, const tg_tensor *x, double p);   /* x^p */
void tg_tensor_rsub_scalar(tg_tensor *out, double s, const tg_tensor *x);  /* s - x */
void tg_tensor_rdiv_scalar(tg_tensor *out, double s, const tg_tensor *x);  /* s / x */
/* out = g where m > 0, else 0 (ReLU's gradient mask). */
void tg_tensor_mask_pos(tg_tensor *out, const tg_tensor *g, const tg_tensor *m);

/* ---------------------------------------------------------------- losses */

/* Binary cross-entropy, elementwise, of probabilities p against targets y:
 * out = -(y ln p + (1 - y) ln(1 - p)), each log clamped below at -100 as
 * PyTorch's binary_cross_entropy; and its partial derivatives
 * dp = (p - y) / max(p (1 - p), 1e-12), dy = max(ln(1 - p), -100) - max(ln p, -100). */
void tg_tensor_bce(tg_tensor *out, const tg_tensor *p, const tg_tensor *y);
void tg_tensor_bce_dp(tg_tensor *out, const tg_tensor *p, const tg_tensor *y);
void tg_tensor_bce_dy(tg_tensor *out, const tg_tensor *p);
/* The same from logits x: out = max(x, 0) - x y + ln(1 + e^-|x|), which never
 * overflows (threaded); gx += g (sigmoid(x) - y), its gradient (threaded). */
void tg_tensor_bce_logits(tg_tensor *out, const tg_tensor *x, const tg_tensor *y);
void tg_tensor_acc_bce_logits_dx(tg_tensor *gx, const tg_tensor *g, const tg_tensor *x, const tg_tensor *y);
/* x = 0, every element (threaded). */
void tg_tensor_zero(tg_tensor *x);
/* Rows of 8-bit pixels as values in [0, 1]: out (>= n, D) row i = src row
 * rows[i] (each D bytes) / 255, exactly p / 255.0f in float32 (p / 255.0 in
 * float64), for i < n; threaded over rows. */
void tg_tensor_rows_from_u8(tg_tensor *out, const uint8_t *src, const int64_t *rows, int64_t n, int64_t D);
/* gx = s (sigmoid(x) - y), or gx += s (sigmoid(x) - y) if add: the gradient
 * of s times the summed loss (threaded). */
void tg_tensor_bce_logits_grad(tg_tensor *gx, const tg_tensor *x, const tg_tensor *y, double s, bool add);
/* Row sums of tg_tensor_bce_logits without writing the terms: out (P,
 * float64)[p] = sum_d bce_logits(x[p, d], y[r, d]) for x (P, D), y (N, D),
 * r = rows[p] (rows NULL: r = p). In float32 with eight double lanes (a fixed
 * order), float64 plainly; x and y may differ in dtype (then in double). Rows
 * are split over the thread pool, each summed whole by one thread. */
void tg_tensor_bce_logits_rows(tg_tensor *out, const tg_tensor *x, const tg_tensor *y, const int64_t *rows);

/* ---------------------------------------------------------------- reductions */

/* The sum of all elements, in double: fixed chunks of 4096 elements, each
 * with four accumulators, the chunk sums added in order (threaded). */
double tg_tensor_sum(const tg_tensor *x);
/* The sum of the squares of all elements (each squared in double), grouped alike. */
double tg_tensor_sum_squares(const tg_tensor *x);
/* out = scale * x summed over axis (out has x's shape without that axis, or
 * with it as 1: only its element count is checked); double accumulators. */
void tg_tensor_sum_axis(tg_tensor *out, const tg_tensor *x, int axis, double scale);
/* log sum_i e^{v_i} without overflow; -inf for n = 0 or all -inf, +inf if any is. */
double tg_logsumexp(const double *v, int64_t n);

/* ---------------------------------------------------------------- optimizers */

/* One Adam update of p (any shape; g, m, v alike), element by element, as
 * torch.optim.Adam's single-tensor path: with g' = g + weight_decay p,
 * m = beta1 m + (1 - beta1) g', v = beta2 v + (1 - beta2) g'^2, then
 * p -= step_size m / (sqrt(v) / bc2_sqrt + eps), 1 - beta formed in double
 * then rounded. step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t).
 * Subnormal values are flushed to zero during the step (on x86; the
 * caller's floating-point mode is restored after), as with
 * torch.set_flush_denormal(True): see adam_range. Threaded. */
void tg_tensor_adam(tg_tensor *p, const tg_tensor *g, tg_tensor *m, tg_tensor *v, double beta1, double beta2,
                    double step_size, double bc2_sqrt, double eps, double weight_decay);

/* ---------------------------------------------------------------- linear algebra */

/* out = op(a) op(b) + beta out, op(m) = m^T if its flag is set, else m; all
 * 2-D, out (M, N), op(a) (M, K), op(b) (K, N). Through the packed GEMM
 * (tensor/gemm.h); transposed operands are read transposed, never copied. */
void tg_tensor_matmul(tg_tensor *out, const tg_tensor *a, bool ta, const tg_tensor *b, bool tb, double beta);

/* ---------------------------------------------------------------- shapes */

/* out (x's shape with d0 and d1 swapped) = x with those axes swapped, or
 * added into out if acc. */
void tg_tensor_swap_axes(tg_tensor *out, const tg_tensor *x, int d0, int d1, bool acc);
/* out = x[..., start : start + n, ...] along axis, n = out's size there (or
 * added into out if acc). */
void tg_tensor_narrow(tg_tensor *out, const tg_tensor *x, int axis, int64_t start, bool acc);
/* dst[..., start : start + n, ...] = src (or += if acc) along axis, n = src's size there. */
void tg_tensor_place(tg_tensor *dst, const tg_tensor *src, int axis, int64_t start, bool acc);
/* out (n, K) = one-hot rows of labels (n) holding class indices: -1, or the
 * index of the first label that is not an integer in [0, K) (out is then
 * incomplete). */
int64_t tg_tensor_one_hot(tg_tensor *out, const tg_tensor *labels);

/* ---------------------------------------------------------------- elementwise maps, comparisons and where (tensor/kernels_map.c) */

/* Elementwise, every operand of one shape (broadcast an operand first with
 * tg_tensor_expand). out = f(x): */
void tg_tensor_abs(tg_tensor *out, const tg_tensor *x);         /* |x| */
void tg_tensor_sign(tg_tensor *out, const tg_tensor *x);        /* 1, -1, 0 at 0 and NaN (as torch.sign) */
void tg_tensor_clamp(tg_tensor *out, const tg_tensor *x, double lo, double hi);    /* min(max(x, lo), hi), NaN kept */
void tg_tensor_in_range(tg_tensor *out, const tg_tensor *x, double lo, double hi); /* 1 where lo <= x <= hi, else 0 */
void tg_tensor_in_open_range(tg_tensor *out, const tg_tensor *x, double lo, double hi); /* 1 where lo < x < hi, else 0 */
void tg_tensor_log1p(tg_tensor *out, const tg_tensor *x);       /* ln(1 + x), libm: exact near 0 and -1 */
void tg_tensor_expm1(tg_tensor *out, const tg_tensor *x);       /* e^x - 1, libm: exact near 0 */
void tg_tensor_leaky_relu(tg_tensor *out, const tg_tensor *x, double slope);      /* x > 0 ? x : slope x */
void tg_tensor_leaky_relu_grad(tg_tensor *out, const tg_tensor *x, double slope); /* x > 0 ? 1 : slope */
void tg_tensor_elu(tg_tensor *out, const tg_tensor *x, double alpha);             /* x > 0 ? x : alpha (e^x - 1) */
void tg_tensor_elu_grad(tg_tensor *out, const tg_tensor *x, double alpha);        /* x > 0 ? 1 : alpha e^x */
void tg_tensor_gelu(tg_tensor *out, const tg_tensor *x);        /* x Phi(x) = x erfc(-x / sqrt 2) / 2 */
void tg_tensor_gelu_grad(tg_tensor *out, const tg_tensor *x);   /* Phi(x) + x phi(x) */
/* x sigmoid(2u), u = sqrt(2 / pi) (x + 0.044715 x^3): PyTorch's
 * x (1 + tanh u) / 2 without its cancellation for negative x; and d/dx. */
void tg_tensor_gelu_tanh(tg_tensor *out, const tg_tensor *x);
void tg_tensor_gelu_tanh_grad(tg_tensor *out, const tg_tensor *x);
void tg_tensor_silu(tg_tensor *out, const tg_tensor *x);        /* x sigmoid(x), no overflow at any x */
void tg_tensor_silu_grad(tg_tensor *out, const tg_tensor *x);   /* s (1 + x (1 - s)), s = sigmoid(x) */

/* out = f(a, b), all of one shape: */
void tg_tensor_maximum(tg_tensor *out, const tg_tensor *a, const tg_tensor *b);   /* NaN if either is */
void tg_tensor_minimum(tg_tensor *out, const tg_tensor *a, const tg_tensor *b);
/* a's share of maximum(a, b)'s gradient, as PyTorch: 1/2 where a == b, 0
 * where a < b, else 1 (also at NaN). b's share is max_share(b, a); for
 * minimum, a's is max_share(b, a) and b's max_share(a, b). */
void tg_tensor_max_share(tg_tensor *out, const tg_tensor *a, const tg_tensor *b);
typedef enum { TG_CMP_EQ, TG_CMP_NE, TG_CMP_LT, TG_CMP_LE, TG_CMP_GT, TG_CMP_GE } tg_cmp;
/* out = 1 where a cmp b holds, else 0 (NaN compares as IEEE: only ne holds). */
void tg_tensor_compare(tg_tensor *out, const tg_tensor *a, const tg_tensor *b, tg_cmp cmp);
/* out (float, x's shape) = 1 where x != 0 (NaN counts), else 0; x of any
 * dtype, int64 included. */
void tg_tensor_nonzero(tg_tensor *out, const tg_tensor *x);
/* out = m != 0 ? a : b (m a 0/1 mask of out's dtype). */
void tg_tensor_where(tg_tensor *out, const tg_tensor *m, const tg_tensor *a, const tg_tensor *b);

/* ---------------------------------------------------------------- reductions and the softmax family (tensor/kernels_reduce.c) */

/* Along one axis of x: a "lane" is x[o, 0..n-1, k] for each index o of the
 * axes before it and k of those after; a per-lane operand holds one value a
 * lane (x's shape without the axis, or with it as 1: only its element count
 * is checked). Lanes are summed in double, single-threaded. */

/* out and idx (int64; either may be NULL) = the maximum (minimum if min) of
 * each lane and the index of its first occurrence; a NaN wins, at the first
 * NaN, as PyTorch's max / argmax. */
void tg_tensor_max_axis(tg_tensor *out, tg_tensor *idx, const tg_tensor *x, int axis, bool min);
/* idx (x's shape without its last axis, int64) = the argmax of each row, the
 * first of ties: predicted classes from (N, C) scores, without a tape. */
void tg_tensor_argmax_last(tg_tensor *idx, const tg_tensor *x);
/* dx += g / k at each of the k elements of x equal to v (the NaNs if v is
 * NaN): the gradient of the maximum of all elements, shared by its ties. */
void tg_tensor_acc_ties(tg_tensor *dx, const tg_tensor *x, double v, double g);
/* out (per lane) = scale x[o, idx, k], idx (per lane, int64) in [0, n), or 0
 * where idx < 0; and its gradient dx[o, idx, k] += scale dy (idx < 0 skipped). */
void tg_tensor_gather_axis(tg_tensor *out, const tg_tensor *x, const tg_tensor *idx, int axis, double scale);
void tg_tensor_acc_scatter_axis(tg_tensor *dx, const tg_tensor *dy, const tg_tensor *idx, int axis, double scale);
/* idx (labels' count, int64) = labels (int64), -1 where a label equals
 * ignore. Returns -1, or the flat index of the first label neither ignore
 * nor a class in [0, classes) (idx is then incomplete). */
int64_t tg_tensor_class_index(tg_tensor *idx, const tg_tensor *labels, int64_t classes, int64_t ignore);
/* out (per lane) = log sum_j e^{x_j}, the maximum subtracted first: -inf
 * for a lane of -inf (or none), +inf if one is +inf. Its gradient:
 * dx += dy e^{x - y}, nothing where y = -inf, and where y = +inf dy shared
 * by the +inf elements (the limit; never NaN). */
void tg_tensor_logsumexp_axis(tg_tensor *out, const tg_tensor *x, int axis);
void tg_tensor_acc_logsumexp_grad(tg_tensor *dx, const tg_tensor *x, const tg_tensor *y, const tg_tensor *dy, int axis);
/* out (x's shape) = softmax e^{x - m} / sum e^{x - m} of each lane (m its
 * maximum), or if log_ log_softmax x - m - ln sum e^{x - m}. Gradients from
 * the output y: softmax dx += y (dy - sum dy y), log_softmax
 * dx += dy - e^y sum dy. */
void tg_tensor_softmax(tg_tensor *out, const tg_tensor *x, int axis, bool log_);
void tg_tensor_acc_softmax_grad(tg_tensor *dx, const tg_tensor *y, const tg_tensor *dy, int axis, bool log_);

/* ---------------------------------------------------------------- shape and indexing (tensor/kernels_index.c) */

/* Copies move elements by their size, so they take any dtype (int64 too);
 * the acc forms add (+=) and take float32 or float64. One thread, a fixed
 * order: repeated indices accumulate in index order. */

/* out (x.shape[perm[0]], ..., x.shape[perm[n-1]]): out's axis k is x's axis
 * perm[k] (torch.permute), or added into out if acc. */
void tg_tensor_permute(tg_tensor *out, const tg_tensor *x, const int *perm, bool acc);
/* out = x[..., start : start + n step : step, ...] along axis, n = out's size
 * there, step >= 1 (or added into out if acc). */
void tg_tensor_slice(tg_tensor *out, const tg_tensor *x, int axis, int64_t start, int64_t step, bool acc);
/* dst[..., start : start + n step : step, ...] = src (or += if acc) along axis, n = src's size there. */
void tg_tensor_slice_place(tg_tensor *dst, const tg_tensor *src, int axis, int64_t start, int64_t step, bool acc);
/* out (x's rank) = value, then out[i + lo] = x[i] for every i that lands
 * inside out: lo[k] elements of padding before axis k (negative: x cropped
 * by -lo[k]). F.pad's constant mode with the pads before each axis in lo. */
void tg_tensor_pad(tg_tensor *out, const tg_tensor *x, const int64_t *lo, double value);
/* Its adjoint: dx[i] = dy[i + lo] where that is inside dy, else 0 (or
 * dx[i] += dy[i + lo] there if acc). */
void tg_tensor_unpad(tg_tensor *dx, const tg_tensor *dy, const int64_t *lo, bool acc);

/* Index kernels take int64 indices and return -1, or the flat position in
 * index of the first entry outside [0, size along axis) — nothing is then
 * written. Negative indices are out of range, as in PyTorch.
 *
 * torch.gather: out[p] = x[p with axis replaced by index[p]] for every
 * position p of index (or += if acc). index, x and out share a rank; out is
 * index's shape (or larger: only that corner is written), x at least
 * index's size outside axis. */
int64_t tg_tensor_gather(tg_tensor *out, const tg_tensor *x, int axis, const tg_tensor *index, bool acc);
/* torch.Tensor.scatter_add_: dst[p with axis replaced by index[p]] += src[p]
 * for every position p of index, in row-major order; src at least index's size. */
int64_t tg_tensor_scatter_add(tg_tensor *dst, int axis, const tg_tensor *index, const tg_tensor *src);
/* torch.index_select: out = x with axis replaced by index's entries (index
 * of any shape, read flat: out has outer * numel(index) * inner elements,
 * so (index..., D) for an embedding table x (V, D) and axis 0). */
int64_t tg_tensor_index_select(tg_tensor *out, const tg_tensor *x, int axis, const tg_tensor *index);
/* torch.Tensor.index_add_: dst[..., index[j], ...] += src[..., j, ...] along axis, j in order. */
int64_t tg_tensor_index_add(tg_tensor *dst, int axis, const tg_tensor *index, const tg_tensor *src);

/* ---------------------------------------------------------------- batched products (tensor/kernels.c) */

/* out = op(a) op(b) + beta out for a batch of matrices, as torch.matmul: the
 * last two dims of each operand (all at least 2-D) are its matrices, op and
 * their shapes as tg_tensor_matmul (out (..., M, N), op(a) (..., M, K),
 * op(b) (..., K, N)), and the leading batch dims broadcast NumPy-style
 * against each other and against out's. The products run over the broadcast
 * batch in row-major order; where out's batch dim is 1 (or missing) but the
 * batch's is not, the products landing on one out matrix are added into it
 * in that order (beta applies once): the gradient of a broadcast operand,
 * summed back to its shape. All 2-D: exactly tg_tensor_matmul. Each product
 * is one GEMM reading the operands in place; a batch whose matrices sit back
 * to back is one GEMM: (n, M, K) @ one (K, N) as (n M, K) @ (K, N), and a
 * sum over the batch of (n, K, M)^T @ (n, K, N) as (M, n K) @ (n K, N).
 * Deterministic (a folded sum's order is the GEMM's, fixed by the shapes)
 * and independent of the thread count, as the GEMM. */
void tg_tensor_bmm(tg_tensor *out, const tg_tensor *a, bool ta, const tg_tensor *b, bool tb, double beta);

/* ---------------------------------------------------------------- convolution (tensor/conv.c) */

/* 2-D convolution as torch.nn.functional.conv2d / conv_transpose2d, NCHW,
 * through im2col and the packed GEMM, the whole batch in one product per
 * group (tensor/conv.c explains the layout). Threaded, bit-identical for any
 * thread count. Temporary buffers (col, channel-major copies) come from the
 * scratch arena, which the caller resets (a tape's arena in autograd), so a
 * steady state allocates nothing. float32 or float64, one dtype per call. */
typedef struct tg_conv_args {
    int64_t stride[2];          /* (sh, sw); 0 means 1 */
    int64_t padding[2];         /* (ph, pw): zeros added on both sides */
    int64_t dilation[2];        /* 0 means 1 */
    int64_t output_padding[2];  /* conv_transpose2d only: extra rows/cols at the bottom/right */
    int64_t groups;             /* 0 means 1 */
    bool relu;                  /* the forward's output through max(., 0), each batch chunk while it is
                                   in cache (tg_conv_relu); the backward kernels ignore it */
} tg_conv_args;

/* Output size along one axis: conv2d's (in + 2 pad - dil (k - 1) - 1) / stride + 1
 * (0 if the kernel does not fit), conv_transpose2d's
 * (in - 1) stride - 2 pad + dil (k - 1) + out_pad + 1; stride, dil 0 mean 1. */
int64_t tg_conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil);
int64_t tg_conv_transpose_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t out_pad);

/* conv2d: y (N, O, Ho, Wo) = x (N, C, H, W) * w (O, C / groups, kh, kw) + b (O)
 * (b may be NULL), or y += that if acc. Returns im2col of x, (C kh kw,
 * N Ho Wo) in scratch, for tg_conv2d_backward's col; or NULL where the
 * forward builds it chunk by chunk straight into the GEMM's panels (float32,
 * AVX-512, rows of up to 32: the VAE's), and the backward rebuilds it. */
tg_tensor *tg_conv2d_forward(tg_arena *scratch, tg_tensor *y, const tg_tensor *x, const tg_tensor *w,
                             const tg_tensor *b, tg_conv_args a, bool acc);
/* conv2d's gradients from dy (N, O, Ho, Wo): dx += (the input piece, which
 * is conv_transpose2d of dy), dw += and db += (the weight piece, the batch
 * summed chunk by chunk in a fixed order); each may be NULL. col: tg_conv2d_forward's
 * im2col of x, or NULL to recompute it. acc_x false: dx = its piece (not
 * read before), acc_w false: dw, db = theirs; the same bits as += onto zeros. */
void tg_conv2d_backward(tg_arena *scratch, tg_tensor *dx, tg_tensor *dw, tg_tensor *db, const tg_tensor *dy,
                        const tg_tensor *x, const tg_tensor *w, const tg_tensor *col, tg_conv_args a, bool acc_x,
                        bool acc_w);
/* conv_transpose2d: y (N, O, Ho, Wo) = x (N, C, H, W) *^T w (C, O / groups, kh, kw)
 * + b (O), b may be NULL: conv2d's input gradient with x as dy. */
void tg_conv_transpose2d_forward(tg_arena *scratch, tg_tensor *y, const tg_tensor *x, const tg_tensor *w,
                                 const tg_tensor *b, tg_conv_args a);
/* Its gradients from dy (y's shape): dx += conv2d(dy, w), dw +=, db += the
 * sum of dy over (N, Ho, Wo); each may be NULL; acc_x / acc_w false: = as above. */
void tg_conv_transpose2d_backward(tg_arena *scratch, tg_tensor *dx, tg_tensor *dw, tg_tensor *db, const tg_tensor *dy,
                                  const tg_tensor *x, const tg_tensor *w, tg_conv_args a, bool acc_x, bool acc_w);
/* The layout pieces on their own (groups ignored): col (C kh kw, N Ho Wo)
 * = im2col of x (N, C, H, W), row (c, ki, kj), column (n, oh, ow), zeros in
 * the padding; and its adjoint dx += col2im(col). */
void tg_tensor_im2col(tg_tensor *col, const tg_tensor *x, int64_t kh, int64_t kw, tg_conv_args a);
void tg_tensor_col2im_acc(tg_tensor *dx, const tg_tensor *col, int64_t kh, int64_t kw, tg_conv_args a);

/* ---------------------------------------------------------------- pooling and upsampling (tensor/kernels_pool.c) */

/* Over the last two axes of x (N, C, H, W), one (H, W) plane at a time: the
 * N C planes are split over the thread pool, each computed whole by one
 * thread in a fixed order, so results do not depend on the thread count. */

/* A pooling window in PyTorch's terms, resolved: every field >= 1 except
 * padding (>= 0, at most half the kernel); pairs are (h, w). */
typedef struct {
    int64_t kernel[2], stride[2], padding[2], dilation[2];
    bool ceil_mode;           /* output sizes rounded up: a last, partial window */
    bool count_include_pad;   /* avg: the divisor counts the padding in the window */
} tg_pool2d;

/* The output size along one axis, PyTorch's pooling_output_shape:
 * floor_or_ceil((in + 2 pad - dilation (kernel - 1) - 1) / stride) + 1, less
 * one if ceil_mode made the last window start past in + pad. May be < 1. */
int64_t tg_pool2d_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation, bool ceil_mode);

/* out (N, C, Ho, Wo) = the maximum of each window (padding counts as -inf,
 * a NaN wins), and idx (int64, out's shape; may be NULL) its flat position
 * h W + w in the plane. Scanning the window row by row, a later element
 * replaces the best only if greater (or NaN): at a tie the first wins, as
 * PyTorch's CPU max_pool2d. A window holding no element of x (possible only
 * with dilation) gives -inf and index -1. dx[idx] += dy, idx < 0 skipped. */
void tg_tensor_max_pool2d(tg_tensor *out, tg_tensor *idx, const tg_tensor *x, const tg_pool2d *g);
void tg_tensor_acc_max_pool2d_grad(tg_tensor *dx, const tg_tensor *dy, const tg_tensor *idx);
/* out (N, C, Ho, Wo) = the sum of each window (in double) / its count: the
 * window clipped to the padded input if count_include_pad, else to x (as
 * PyTorch's avg_pool2d; dilation is ignored). Its gradient: dx += dy / count
 * over each window. */
void tg_tensor_avg_pool2d(tg_tensor *out, const tg_tensor *x, const tg_pool2d *g);
void tg_tensor_acc_avg_pool2d_grad(tg_tensor *dx, const tg_tensor *dy, const tg_pool2d *g);
/* out (N, C, sh H, sw W)[h, w] = x[h / sh, w / sw] (integer scales, taken
 * from the shapes); its gradient dx += each sh x sw block of dy, summed in
 * double. */
void tg_tensor_upsample_nearest2d(tg_tensor *out, const tg_tensor *x);
void tg_tensor_acc_upsample_nearest2d_grad(tg_tensor *dx, const tg_tensor *dy);

/* ---------------------------------------------------------------- normalisation and dropout (tensor/kernels_norm.c) */

/* A normalisation sees x as (A, G, B): group g holds the A B values
 * x[a, g, b]. Layer norm's groups are rows, (1, rows, D), its affine
 * parameters indexed by b; batch norm's are channels, (N, C, spatial), its
 * parameters indexed by g (per_group). Statistics (mean, var, rstd: (G)
 * float64) are summed in double in the order a, b, one thread. */
typedef struct {
    int64_t A, G, B;
    bool per_group;   /* w, b (G) indexed by group; else (B) indexed by b */
} tg_norm_layout;
/* mean = sum x / (A B), var = sum (x - mean)^2 / (A B) (biased, two passes;
 * var may be NULL), rstd = 1 / sqrt(var + eps), per group. */
void tg_tensor_norm_stats(tg_tensor *mean, tg_tensor *var, tg_tensor *rstd, const tg_tensor *x, tg_norm_layout l,
                          double eps);
/* mean = running_mean, rstd = 1 / sqrt(running_var + eps) (running stats in any float dtype). */
void tg_tensor_norm_running(tg_tensor *mean, tg_tensor *rstd, const tg_tensor *running_mean,
                            const tg_tensor *running_var, double eps);
/* running = momentum (stat factor) + (1 - momentum) running, stat float64:
 * PyTorch's running-statistics update (factor n / (n - 1) for the variance). */
void tg_tensor_running_update(tg_tensor *running, const tg_tensor *stat, double momentum, double factor);
/* y = (x - mean_g) rstd_g w + b, w and b (either may be NULL) per the layout. */
void tg_tensor_norm_apply(tg_tensor *y, const tg_tensor *x, const tg_tensor *mean, const tg_tensor *rstd,
                          const tg_tensor *w, const tg_tensor *b, tg_norm_layout l);
/* Its gradient, xhat = (x - mean) rstd, h = dy w: dw += sum dy xhat,
 * db += sum dy (over the elements each parameter scales), and
 * dx += rstd (h - mean_g h - xhat mean_g(h xhat)) if through_stats (mean and
 * rstd are the group's own statistics), else dx += rstd h (fixed statistics).
 * dx, dw, db may be NULL. */
void tg_tensor_acc_norm_grad(tg_tensor *dx, tg_tensor *dw, tg_tensor *db, const tg_tensor *dy, const tg_tensor *x,
                             const tg_tensor *mean, const tg_tensor *rstd, const tg_tensor *w, tg_norm_layout l,
                             bool through_stats);
/* Inverted dropout's mask: mask[i] = 1 / (1 - p) if u_i < 1 - p, else 0,
 * u_i = tg_rng_uniform(r) drawn once per element in row-major order. */
void tg_tensor_dropout_mask(tg_tensor *mask, double p, tg_rng *r);

#endif
