/*
 * autograd.h — differentiable operations recorded on a tape.
 *
 * A tg_var is a tensor value plus the gradient of a scalar loss with respect
 * to it. Every op computes its output now and, if any input requires a
 * gradient, appends one entry to the tape. tg_backward walks the tape in
 * reverse and each entry adds (+=) its contribution to its inputs' gradients.
 *
 *     tg_tape *t = tg_tape_new();
 *     tg_var *x = tg_leaf(t, tg_tensor_full(tg_tape_arena(t), TG_F64, TG_SHAPE(3), 2.0), true);
 *     tg_var *y = tg_sum(t, tg_mul(t, x, x));   // y = sum x^2 = 12
 *     tg_backward(t, y);                        // x->grad = 2x = (4, 4, 4)
 *     tg_tape_reset(t);                         // forget the step, keep the memory
 *
 * Memory: outputs, their gradients and tape entries live in the tape's arena
 * and die at tg_tape_reset. Parameters (nn.h) live for the whole run and keep
 * their gradients in their own storage; zeroing them is explicit.
 *
 * Shapes are checked when an op is recorded; a mismatch aborts with the op,
 * the shapes and the caller's file:line. Ops take float32 or float64 inputs
 * (all inputs of one op share a dtype) and return the same dtype.
 */
#ifndef TG_AUTOGRAD_H
#define TG_AUTOGRAD_H

#include <stdio.h>

#include "tensor/tensor.h"

typedef struct tg_tape tg_tape;

typedef struct tg_var {
    tg_tensor val;       /* the value */
    tg_tensor grad;      /* d loss / d val, val's shape; data is NULL until backward reaches it */
    bool requires_grad;  /* leaves: set by the user; op outputs: any input requires it */
    const char *name;    /* a parameter's ("fc1.weight"), or any var's through tg_name; else NULL */
} tg_var;

/* Every op, in one table (tg_ops below) indexed by this enum. */
typedef enum {
    TG_OP_ADD, TG_OP_SUB, TG_OP_MUL, TG_OP_DIV,      /* broadcasting binary */
    TG_OP_NEG, TG_OP_ADD_SCALAR, TG_OP_MUL_SCALAR,
    TG_OP_EXP, TG_OP_LOG, TG_OP_SQRT, TG_OP_SQUARE, TG_OP_POW,
    TG_OP_RELU, TG_OP_SIGMOID, TG_OP_TANH, TG_OP_SOFTPLUS,
    TG_OP_MATMUL, TG_OP_AFFINE,
    TG_OP_SUM, TG_OP_MEAN,                           /* all elements or one axis */
    TG_OP_RESHAPE, TG_OP_TRANSPOSE, TG_OP_CONCAT, TG_OP_NARROW,
    TG_OP_ONE_HOT,
    TG_OP_REPARAM,
    TG_OP_BCE, TG_OP_BCE_LOGITS, TG_OP_BCE_LOGITS_SUM,
    /* elementwise maps, comparisons and where */
    TG_OP_ABS, TG_OP_CLAMP, TG_OP_MAXIMUM, TG_OP_MINIMUM, TG_OP_LOG1P, TG_OP_EXPM1,
    TG_OP_LEAKY_RELU, TG_OP_ELU, TG_OP_GELU, TG_OP_GELU_TANH, TG_OP_SILU, TG_OP_HARDTANH,
    TG_OP_WHERE,                                     /* cond is saved, not an input: 2 inputs */

    /* reductions and the softmax family */
    TG_OP_MAX, TG_OP_MIN,                            /* all elements or one axis */
    TG_OP_LOGSUMEXP, TG_OP_STD, TG_OP_SOFTMAX, TG_OP_LOG_SOFTMAX, TG_OP_NLL,

    /* shape and indexing */
    TG_OP_PERMUTE, TG_OP_EXPAND, TG_OP_PAD, TG_OP_SLICE,
    TG_OP_GATHER, TG_OP_INDEX_SELECT, TG_OP_EMBEDDING, TG_OP_SCATTER_ADD,

    /* a user's op */
    TG_OP_CUSTOM,                                    /* a user's op (tg_custom) */

    /* convolution */
    TG_OP_CONV2D, TG_OP_CONV_TRANSPOSE2D,           /* x, w, b (b may be NULL) */

    /* pooling and upsampling */
    TG_OP_MAX_POOL2D, TG_OP_AVG_POOL2D, TG_OP_UPSAMPLE_NEAREST2D,

    /* normalisation and dropout */
    TG_OP_LAYER_NORM, TG_OP_BATCH_NORM,             /* variadic: x, then weight and bias if given */
    TG_OP_DROPOUT,

    TG_OP_COUNT
} tg_op;

/* One recorded op: what backward needs, saved explicitly. */
typedef struct {
    tg_op op;
    tg_var *out;
    tg_var *in[3];     /* inputs (NULL past the op's count; the first three of a variadic op's) */
    tg_var **ins;      /* variadic ops (concat, layer_norm, batch_norm, custom): all n_ins inputs, in the tape's arena */
    int n_ins;
    tg_tensor *saved;  /* extra state, e.g. the reparameterization's eps, max's chosen indices */
    const void *ctx;   /* more saved state when an op needs its own struct (tape's arena) */
    double f, f2;      /* scalar arguments: add_scalar, mul_scalar, pow, clamp's bounds, ... */
    int64_t i[4];      /* integer arguments: axis, keepdim, start, length, step, transposes */
} tg_entry;

typedef struct {
    const char *name;                /* "add", "matmul", ... */
    int n_in;                        /* number of tg_var inputs; -1: any number (variadic) */
    void (*backward)(tg_tape *t, const tg_entry *e);  /* NULL: not differentiable */
} tg_op_def;

extern const tg_op_def tg_ops[TG_OP_COUNT];

/* ------------------------------------------------------------------------ */
/* The tape. */

struct tg_tape {
    tg_arena *arena;      /* this step's values, gradients and saved tensors */
    tg_entry *entries;    /* (n) in record order; the array is kept across resets */
    int64_t n, cap;
    bool grad_enabled;    /* false inside a no-grad scope: nothing is recorded */
};

tg_tape *tg_tape_new(void);
void tg_tape_reset(tg_tape *t);   /* drop entries and every var made since the last reset */
void tg_tape_free(tg_tape *t);
tg_arena *tg_tape_arena(tg_tape *t);

/* No-grad scope: bool prev = tg_no_grad(t); ...; tg_set_grad(t, prev); */
bool tg_no_grad(tg_tape *t);
void tg_set_grad(tg_tape *t, bool enabled);

/* A leaf wrapping val (no copy). Its gradient, if any, lives in the tape's arena. */
tg_var *tg_leaf(tg_tape *t, tg_tensor *val, bool requires_grad);

/* Seeds d loss / d loss = 1 (loss must have one element) and runs every entry's
 * backward in reverse record order, accumulating into the inputs' gradients.
 * The entries are then dropped, so a second backward in the same step
 * differentiates only what was recorded after the first. */
void tg_backward(tg_tape *t, tg_var *loss);
/* Same, seeding out's gradient with seed (out's shape): the gradient of sum(seed * out). */
void tg_backward_seed(tg_tape *t, tg_var *out, const tg_tensor *seed);

/* v's gradient buffer, allocated zeroed in the tape's arena on first use. */
tg_tensor *tg_var_grad(tg_tape *t, tg_var *v);

/* v with its history cut off: a new leaf sharing v's value (no copy) that
 * requires no gradient, so backward stops there (PyTorch's detach). The
 * straight-through estimator: y = x + detach(q - x) has the value q (say a
 * quantised x) while dL/dx = dL/dy, as if y were x. */
tg_var *tg_detach(tg_tape *t, tg_var *v);

/* Seeing the tape (graph.c). Call them after the forward and before
 * tg_backward, which forgets the entries. tg_tape_print writes one line per
 * entry: its index, op, output and inputs with their shapes,
 *        3  relu               h1 (128, 400) <- %2 (128, 400)
 * a value named by its tg_var name, else "%k" if entry k made it, else
 * "in<j>" (a leaf, or a value computed where nothing needed a gradient).
 * tg_tape_dot writes the same graph in Graphviz's DOT language: values as
 * boxes (name and shape; leaves requiring a gradient, the parameters, filled;
 * results no entry uses, the loss, doubled), ops as ellipses. Render it with
 * `dot -Tsvg tape.dot -o tape.svg`. tg_tape_dot_save writes it to path
 * atomically (io/file.h), returning -1 with a message naming path on failure. */
void tg_tape_print(const tg_tape *t, FILE *f);
void tg_tape_dot(const tg_tape *t, FILE *f);
int tg_tape_dot_save(const tg_tape *t, const char *path, tg_err *e);

/* Names v for tg_tape_print and tg_tape_dot, and returns it, so a forward
 * pass can read  tg_var *h = tg_name(tg_relu(t, a), "h");  The string is not
 * copied: it must outlive the tape's use of v (a string literal does). */
tg_var *tg_name(tg_var *v, const char *name);

/* The value of a one-element var (a loss, say) as a double; aborts, naming
 * the caller's file:line, if v has more elements. */
double tg_item_(const char *file, int line, const tg_var *v);
#define tg_item(v) tg_item_(__FILE__, __LINE__, v)

/* ------------------------------------------------------------------------ */
/* Ops. Each public name is a macro that passes the caller's file:line along. */

#define TG_AT __FILE__, __LINE__
#define TG_LOC const char *file, int line

/* Binary ops with NumPy broadcasting: shapes are aligned at the right; each
 * dimension must match or be 1 in one operand. Gradients are summed back to
 * each input's shape. */
tg_var *tg_add_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b);   /* a + b */
tg_var *tg_sub_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b);   /* a - b */
tg_var *tg_mul_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b);   /* a * b */
tg_var *tg_div_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b);   /* a / b */
#define tg_add(...) tg_add_(TG_AT, __VA_ARGS__)
#define tg_sub(...) tg_sub_(TG_AT, __VA_ARGS__)
#define tg_mul(...) tg_mul_(TG_AT, __VA_ARGS__)
#define tg_div(...) tg_div_(TG_AT, __VA_ARGS__)

/* Elementwise, same shape out. */
tg_var *tg_neg_(TG_LOC, tg_tape *t, tg_var *a);                /* -a */
tg_var *tg_add_scalar_(TG_LOC, tg_tape *t, tg_var *a, double s); /* a + s */
tg_var *tg_mul_scalar_(TG_LOC, tg_tape *t, tg_var *a, double s); /* a * s */
tg_var *tg_exp_(TG_LOC, tg_tape *t, tg_var *a);                /* e^a */
tg_var *tg_log_(TG_LOC, tg_tape *t, tg_var *a);                /* ln a */
tg_var *tg_sqrt_(TG_LOC, tg_tape *t, tg_var *a);               /* sqrt a */
tg_var *tg_square_(TG_LOC, tg_tape *t, tg_var *a);             /* a^2 */
tg_var *tg_pow_(TG_LOC, tg_tape *t, tg_var *a, double p);      /* a^p */
tg_var *tg_relu_(TG_LOC, tg_tape *t, tg_var *a);               /* max(a, 0); gradient 0 at 0 */
tg_var *tg_sigmoid_(TG_LOC, tg_tape *t, tg_var *a);            /* 1 / (1 + e^-a), stable */
tg_var *tg_tanh_(TG_LOC, tg_tape *t, tg_var *a);               /* tanh a */
tg_var *tg_softplus_(TG_LOC, tg_tape *t, tg_var *a);           /* ln(1 + e^a), stable */
#define tg_neg(...) tg_neg_(TG_AT, __VA_ARGS__)
#define tg_add_scalar(...) tg_add_scalar_(TG_AT, __VA_ARGS__)
#define tg_mul_scalar(...) tg_mul_scalar_(TG_AT, __VA_ARGS__)
#define tg_exp(...) tg_exp_(TG_AT, __VA_ARGS__)
#define tg_log(...) tg_log_(TG_AT, __VA_ARGS__)
#define tg_sqrt(...) tg_sqrt_(TG_AT, __VA_ARGS__)
#define tg_square(...) tg_square_(TG_AT, __VA_ARGS__)
#define tg_pow(...) tg_pow_(TG_AT, __VA_ARGS__)
#define tg_relu(...) tg_relu_(TG_AT, __VA_ARGS__)
#define tg_sigmoid(...) tg_sigmoid_(TG_AT, __VA_ARGS__)
#define tg_tanh(...) tg_tanh_(TG_AT, __VA_ARGS__)
#define tg_softplus(...) tg_softplus_(TG_AT, __VA_ARGS__)

/* op(a) @ op(b) for 2-D operands: op(a) is (M, K) — a is (M, K), or (K, M) read
 * transposed if ta — and op(b) is (K, N) — b is (K, N), or (N, K) if tb.
 * Result (M, N). Transposed operands are never copied.
 * Batched, as torch.matmul: an operand of more than 2 dims is a batch of
 * matrices in its last two dims (ta / tb transpose those), the leading dims
 * broadcast NumPy-style, result (batch..., M, N): (B, M, K) @ (K, N) ->
 * (B, M, N), (2, 1, M, K) @ (3, K, N) -> (2, 3, M, N). A broadcast operand's
 * gradient is summed over the batch dims it was broadcast in. 1-D operands
 * are refused (reshape a vector to (1, K) or (K, 1)). */
tg_var *tg_matmul_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b, bool ta, bool tb);
#define tg_matmul(...) tg_matmul_(TG_AT, __VA_ARGS__)

/* Fused affine layer act(x @ w^T + b): x (B, in), w (out, in), b (out) -> (B, out),
 * act TG_ACT_NONE or TG_ACT_RELU. The same values as tg_matmul, tg_add and
 * tg_relu, in one pass instead of three: the bias seeds the product's output
 * and ReLU is applied in place (its backward reads the mask from the output). */
typedef enum { TG_ACT_NONE, TG_ACT_RELU } tg_act;
tg_var *tg_affine_(TG_LOC, tg_tape *t, tg_var *x, tg_var *w, tg_var *b, tg_act act);
#define tg_affine(...) tg_affine_(TG_AT, __VA_ARGS__)

/* Reductions. tg_sum / tg_mean over all elements give a 0-dim scalar;
 * the _axis forms reduce one axis (negative counts from the end), keeping it
 * as size 1 if keepdim. */
tg_var *tg_sum_(TG_LOC, tg_tape *t, tg_var *a);
tg_var *tg_mean_(TG_LOC, tg_tape *t, tg_var *a);
tg_var *tg_sum_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim);
tg_var *tg_mean_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim);
#define tg_sum(...) tg_sum_(TG_AT, __VA_ARGS__)
#define tg_mean(...) tg_mean_(TG_AT, __VA_ARGS__)
#define tg_sum_axis(...) tg_sum_axis_(TG_AT, __VA_ARGS__)
#define tg_mean_axis(...) tg_mean_axis_(TG_AT, __VA_ARGS__)

/* Shape ops. reshape is a view (no copy); transpose swaps two axes (copies);
 * concat joins a and b along axis; narrow takes [start, start+len) of axis. */
tg_var *tg_reshape_(TG_LOC, tg_tape *t, tg_var *a, tg_shape s);
tg_var *tg_transpose_(TG_LOC, tg_tape *t, tg_var *a, int d0, int d1);
tg_var *tg_concat_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b, int axis);
tg_var *tg_narrow_(TG_LOC, tg_tape *t, tg_var *a, int axis, int64_t start, int64_t len);
#define tg_reshape(...) tg_reshape_(TG_AT, __VA_ARGS__)
#define tg_transpose(...) tg_transpose_(TG_AT, __VA_ARGS__)
#define tg_concat(...) tg_concat_(TG_AT, __VA_ARGS__)
#define tg_narrow(...) tg_narrow_(TG_AT, __VA_ARGS__)

/* labels (N) holding class indices 0..classes-1 -> (N, classes) of 0/1, in
 * the labels' dtype if float, float32 for int64 labels (PyTorch's one_hot
 * gives int64; here the result is meant to be multiplied). Not
 * differentiable: the output never requires a gradient. */
tg_var *tg_one_hot_(TG_LOC, tg_tape *t, tg_var *labels, int64_t classes);
#define tg_one_hot(...) tg_one_hot_(TG_AT, __VA_ARGS__)

/* Reparameterized normal sample z = mu + exp(logvar / 2) * eps, mu and logvar
 * broadcast together. eps (z's shape) is stored on the tape entry for
 * backward. tg_reparam_sample draws eps ~ N(0, I) from r into the tape's arena. */
tg_var *tg_reparam_(TG_LOC, tg_tape *t, tg_var *mu, tg_var *logvar, const tg_tensor *eps);
tg_var *tg_reparam_sample_(TG_LOC, tg_tape *t, tg_var *mu, tg_var *logvar, tg_rng *r);
#define tg_reparam(...) tg_reparam_(TG_AT, __VA_ARGS__)
#define tg_reparam_sample(...) tg_reparam_sample_(TG_AT, __VA_ARGS__)

/* Elementwise binary cross-entropy, p (or x) and y broadcast together:
 *   bce(p, y)        = -(y max(ln p, -100) + (1 - y) max(ln(1 - p), -100))  (as PyTorch)
 *   bce_logits(x, y) = max(x, 0) - x y + ln(1 + e^-|x|)  = bce(sigmoid(x), y), stable */
tg_var *tg_bce_(TG_LOC, tg_tape *t, tg_var *p, tg_var *y);
tg_var *tg_bce_logits_(TG_LOC, tg_tape *t, tg_var *x, tg_var *y);
/* The sum of bce_logits(x, y) over every element, x and y of one shape, in
 * one pass without the terms in memory (a () scalar); its backward writes
 * dx = dL (sigmoid(x) - y) in one pass. tg_loss_bce_logits's sum and mean. */
tg_var *tg_bce_logits_sum_(TG_LOC, tg_tape *t, tg_var *x, tg_var *y);
#define tg_bce(...) tg_bce_(TG_AT, __VA_ARGS__)
#define tg_bce_logits(...) tg_bce_logits_(TG_AT, __VA_ARGS__)
#define tg_bce_logits_sum(...) tg_bce_logits_sum_(TG_AT, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* elementwise maps, comparisons and where */

/* Elementwise maps, same shape out; derivatives at kinks as PyTorch's. */
tg_var *tg_abs_(TG_LOC, tg_tape *t, tg_var *a);             /* |a|; gradient sign(a), 0 at 0 */
/* min(max(a, lo), hi); lo = -INFINITY or hi = INFINITY for no bound. The
 * gradient passes where lo <= a <= hi, bounds included (torch.clamp). */
tg_var *tg_clamp_(TG_LOC, tg_tape *t, tg_var *a, double lo, double hi);
tg_var *tg_log1p_(TG_LOC, tg_tape *t, tg_var *a);           /* ln(1 + a), exact near 0 and near -1 */
tg_var *tg_expm1_(TG_LOC, tg_tape *t, tg_var *a);           /* e^a - 1, exact near 0 */
/* a > 0 ? a : slope a (PyTorch's default slope: 0.01); gradient slope at 0 */
tg_var *tg_leaky_relu_(TG_LOC, tg_tape *t, tg_var *a, double slope);
tg_var *tg_elu_(TG_LOC, tg_tape *t, tg_var *a, double alpha);  /* a > 0 ? a : alpha (e^a - 1); gradient alpha at 0 */
tg_var *tg_gelu_(TG_LOC, tg_tape *t, tg_var *a);            /* a Phi(a) = a (1 + erf(a / sqrt 2)) / 2, exact */
tg_var *tg_gelu_tanh_(TG_LOC, tg_tape *t, tg_var *a);       /* a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3))) / 2 */
tg_var *tg_silu_(TG_LOC, tg_tape *t, tg_var *a);            /* a sigmoid(a) */
/* min(max(a, min_val), max_val), as torch.nn.functional.hardtanh (PyTorch's
 * defaults: -1, 1). The gradient passes only where min_val < a < max_val:
 * 0 at both bounds and beyond them (unlike tg_clamp), so 0 everywhere when
 * min_val >= max_val, where every output is max_val. A NaN bound aborts. */
tg_var *tg_hardtanh_(TG_LOC, tg_tape *t, tg_var *a, double min_val, double max_val);
#define tg_abs(...) tg_abs_(TG_AT, __VA_ARGS__)
#define tg_clamp(...) tg_clamp_(TG_AT, __VA_ARGS__)
#define tg_log1p(...) tg_log1p_(TG_AT, __VA_ARGS__)
#define tg_expm1(...) tg_expm1_(TG_AT, __VA_ARGS__)
#define tg_leaky_relu(...) tg_leaky_relu_(TG_AT, __VA_ARGS__)
#define tg_elu(...) tg_elu_(TG_AT, __VA_ARGS__)
#define tg_gelu(...) tg_gelu_(TG_AT, __VA_ARGS__)
#define tg_gelu_tanh(...) tg_gelu_tanh_(TG_AT, __VA_ARGS__)
#define tg_silu(...) tg_silu_(TG_AT, __VA_ARGS__)
#define tg_hardtanh(...) tg_hardtanh_(TG_AT, __VA_ARGS__)

/* Broadcasting like tg_add. maximum / minimum propagate NaN; at a tie
 * (a == b) each input gets half the gradient, as PyTorch 1.13. */
tg_var *tg_maximum_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b);
tg_var *tg_minimum_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b);
#define tg_maximum(...) tg_maximum_(TG_AT, __VA_ARGS__)
#define tg_minimum(...) tg_minimum_(TG_AT, __VA_ARGS__)

/* Comparisons, broadcasting like tg_add: 1 where a op b holds, else 0, in
 * the inputs' float dtype (NaN compares false, except ne). Not
 * differentiable: the output never requires a gradient, nothing is recorded
 * and the ops have no row in tg_ops. */
tg_var *tg_eq_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b);   /* a == b */
tg_var *tg_ne_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b);   /* a != b */
tg_var *tg_lt_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b);   /* a < b */
tg_var *tg_le_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b);   /* a <= b */
tg_var *tg_gt_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b);   /* a > b */
tg_var *tg_ge_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b);   /* a >= b */
#define tg_eq(...) tg_eq_(TG_AT, __VA_ARGS__)
#define tg_ne(...) tg_ne_(TG_AT, __VA_ARGS__)
#define tg_lt(...) tg_lt_(TG_AT, __VA_ARGS__)
#define tg_le(...) tg_le_(TG_AT, __VA_ARGS__)
#define tg_gt(...) tg_gt_(TG_AT, __VA_ARGS__)
#define tg_ge(...) tg_ge_(TG_AT, __VA_ARGS__)

/* cond ? a : b elementwise (torch.where). cond (any dtype, int64 included;
 * nonzero and NaN are true), a and b broadcast together; a and b share a
 * float dtype, the result's. da += dy where cond, db += dy elsewhere, each
 * summed back to its shape; cond gets no gradient. */
tg_var *tg_where_(TG_LOC, tg_tape *t, tg_var *cond, tg_var *a, tg_var *b);
#define tg_where(...) tg_where_(TG_AT, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* reductions and the softmax family */

/* Maximum and minimum. tg_max / tg_min of all elements give a 0-dim scalar;
 * its gradient is shared equally by the elements equal to it (as
 * torch.max(x): ties (1, 3, 3) get 0, 1/2, 1/2). The _axis forms reduce one
 * axis (negative counts from the end; kept as size 1 if keepdim) and send
 * each gradient to the one element torch.max(x, dim) returns as its index:
 * the first of ties. A NaN wins (the result is NaN, at the first NaN).
 * tg_argmax / tg_argmin give that index as an int64 var, with no gradient
 * (never recorded); tg_tensor_argmax_last does it without a tape. */
tg_var *tg_max_(TG_LOC, tg_tape *t, tg_var *a);
tg_var *tg_min_(TG_LOC, tg_tape *t, tg_var *a);
tg_var *tg_max_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim);
tg_var *tg_min_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim);
tg_var *tg_argmax_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim);
tg_var *tg_argmin_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim);
#define tg_max(...) tg_max_(TG_AT, __VA_ARGS__)
#define tg_min(...) tg_min_(TG_AT, __VA_ARGS__)
#define tg_max_axis(...) tg_max_axis_(TG_AT, __VA_ARGS__)
#define tg_min_axis(...) tg_min_axis_(TG_AT, __VA_ARGS__)
#define tg_argmax(...) tg_argmax_(TG_AT, __VA_ARGS__)
#define tg_argmin(...) tg_argmin_(TG_AT, __VA_ARGS__)

/* y = log sum_i e^{x_i} along axis (torch.logsumexp(x, axis, keepdim)), the
 * maximum subtracted first so nothing overflows. A lane of all -inf gives
 * -inf with gradient 0 (PyTorch: NaN); one holding +inf gives +inf, its
 * gradient shared by the +inf elements (PyTorch: NaN there). Named _axis as
 * tg_sum_axis; tg_logsumexp is the kernel on a double array. */
tg_var *tg_logsumexp_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, bool keepdim);
#define tg_logsumexp_axis(...) tg_logsumexp_axis_(TG_AT, __VA_ARGS__)

/* Variance and standard deviation along axis, as torch.var / torch.std(x,
 * axis, correction=c, keepdim): sum (x - mean)^2 / max(n - c, 0); c = 1 is
 * the unbiased estimate (PyTorch's default), c = 0 the population one; n = 1
 * with c = 1 gives NaN, as PyTorch. Composed from mean, sub, square, sum
 * and mul_scalar; std's square root is an op of its own ("std") only so that
 * a constant lane (std 0) passes gradient 0, as PyTorch, not 0 * inf = NaN. */
tg_var *tg_var_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, double correction, bool keepdim);
tg_var *tg_std_axis_(TG_LOC, tg_tape *t, tg_var *a, int axis, double correction, bool keepdim);
#define tg_var_axis(...) tg_var_axis_(TG_AT, __VA_ARGS__)
#define tg_std_axis(...) tg_std_axis_(TG_AT, __VA_ARGS__)

/* softmax y_i = e^{x_i - m} / sum_j e^{x_j - m} and log_softmax
 * y_i = x_i - m - ln sum_j e^{x_j - m} along axis (m the lane's maximum:
 * softmax of (1e4, -1e4) is exactly (1, 0)); same shape as a. */
tg_var *tg_softmax_(TG_LOC, tg_tape *t, tg_var *a, int axis);
tg_var *tg_log_softmax_(TG_LOC, tg_tape *t, tg_var *a, int axis);
#define tg_softmax(...) tg_softmax_(TG_AT, __VA_ARGS__)
#define tg_log_softmax(...) tg_log_softmax_(TG_AT, __VA_ARGS__)

/* Negative log-likelihood of int64 labels, unreduced (F.nll_loss(...,
 * reduction="none")): logp (N, C, d1, ...) or (C), labels (N, d1, ...) or
 * () holding classes in [0, C) -> y = -logp[n, labels[n, ...], ...], labels'
 * shape; 0 (and no gradient) where a label equals ignore_index. Any other
 * label outside [0, C) aborts naming it. nn.h's tg_loss_nll reduces it. */
#define TG_IGNORE_INDEX (-100)   /* PyTorch's default ignore_index */
tg_var *tg_nll_(TG_LOC, tg_tape *t, tg_var *logp, tg_var *labels, int64_t ignore_index);
#define tg_nll(...) tg_nll_(TG_AT, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* shape and indexing */

/* N-d shape ops, PyTorch's names and rules (negative axes count from the
 * end). They move values without changing them, so permute, cat, stack,
 * pad, slice and the views (flatten, ...) also take int64 tensors (which
 * never get gradients); expand, split and chunk take float32 or float64.
 * Gradients go back the way the values came.
 *
 *     tg_var *y = tg_permute(t, x, TG_SHAPE(2, 0, 1));    // (A, B, C) -> (C, A, B)
 *     tg_var *parts[3] = {a, b, c};
 *     tg_var *abc = tg_cat(t, parts, 3, -1);               // one tape entry
 *     tg_var *p = tg_pad(t, x, (int64_t[]){1, 2}, 2, 0.0); // last axis: 1 before, 2 after
 *     tg_var *odd = tg_slice(t, x, 0, 1, INT64_MAX, 2);    // x[1::2]
 */
/* y's axis k is x's axis dims.d[k]: dims, built with TG_SHAPE, lists a
 * permutation of x's axes (negatives allowed). dx += dy permuted back. */
tg_var *tg_permute_(TG_LOC, tg_tape *t, tg_var *x, tg_shape dims);
/* x broadcast to shape (torch.expand): size-1 axes grow, new axes are added
 * in front, -1 keeps x's size (not for new axes). dx += dy summed back. */
tg_var *tg_expand_(TG_LOC, tg_tape *t, tg_var *x, tg_shape shape);
/* xs[0..n) (n >= 1) joined along axis; all other sizes equal (torch.cat). One
 * variadic tape entry (TG_OP_CONCAT; tg_concat is cat of two). */
tg_var *tg_cat_(TG_LOC, tg_tape *t, tg_var *const *xs, int n, int axis);
/* xs[0..n), all of one shape, stacked along a new axis (in [-ndim-1, ndim]):
 * cat of the xs each unsqueezed there (torch.stack). */
tg_var *tg_stack_(TG_LOC, tg_tape *t, tg_var *const *xs, int n, int axis);
/* out[k] = the next sizes[k] entries of axis (torch.split with a list); the n
 * sizes must add up to the axis's size. Pieces are tg_narrow's. */
void tg_split_(TG_LOC, tg_tape *t, tg_var *x, int axis, const int64_t *sizes, int n, tg_var **out);
/* torch.chunk: pieces of ceil(size / chunks) along axis, the last smaller;
 * returns how many were written to out (at most chunks: chunk(6 -> 4) gives 3). */
int tg_chunk_(TG_LOC, tg_tape *t, tg_var *x, int chunks, int axis, tg_var **out);
/* F.pad, constant mode: pads[0..n_pads) are (before, after) pairs starting
 * from the last axis and going backwards; the new elements hold value, a
 * negative pad crops. dx += the window of dy that x landed in. */
tg_var *tg_pad_(TG_LOC, tg_tape *t, tg_var *x, const int64_t *pads, int n_pads, double value);
/* x[..., start:stop:step, ...] along axis, step >= 1, with Python's rules:
 * negative bounds count from the end, bounds past either end are clamped
 * (stop INT64_MAX: to the end). dx[that slice] += dy. */
tg_var *tg_slice_(TG_LOC, tg_tape *t, tg_var *x, int axis, int64_t start, int64_t stop, int64_t step);
/* Views by tg_reshape (no copy): flatten merges axes start..end inclusive (a
 * 0-d x becomes (1)); unflatten splits axis into sizes (one may be -1);
 * squeeze drops axis if its size is 1 (else x's shape); unsqueeze inserts a
 * size-1 axis at axis (in [-ndim-1, ndim]). */
tg_var *tg_flatten_(TG_LOC, tg_tape *t, tg_var *x, int start, int end);
tg_var *tg_unflatten_(TG_LOC, tg_tape *t, tg_var *x, int axis, tg_shape sizes);
tg_var *tg_squeeze_(TG_LOC, tg_tape *t, tg_var *x, int axis);
tg_var *tg_unsqueeze_(TG_LOC, tg_tape *t, tg_var *x, int axis);
#define tg_permute(...) tg_permute_(TG_AT, __VA_ARGS__)
#define tg_expand(...) tg_expand_(TG_AT, __VA_ARGS__)
#define tg_cat(...) tg_cat_(TG_AT, __VA_ARGS__)
#define tg_stack(...) tg_stack_(TG_AT, __VA_ARGS__)
#define tg_split(...) tg_split_(TG_AT, __VA_ARGS__)
#define tg_chunk(...) tg_chunk_(TG_AT, __VA_ARGS__)
#define tg_pad(...) tg_pad_(TG_AT, __VA_ARGS__)
#define tg_slice(...) tg_slice_(TG_AT, __VA_ARGS__)
#define tg_flatten(...) tg_flatten_(TG_AT, __VA_ARGS__)
#define tg_unflatten(...) tg_unflatten_(TG_AT, __VA_ARGS__)
#define tg_squeeze(...) tg_squeeze_(TG_AT, __VA_ARGS__)
#define tg_unsqueeze(...) tg_unsqueeze_(TG_AT, __VA_ARGS__)

/* Indexing by int64 index vars (no gradient). An index outside [0, size)
 * — negative ones included, as in PyTorch — aborts naming it, its position
 * and the caller. Backward scatters the gradient back with +=: repeated
 * indices accumulate, in index order. The values are moved, so gather,
 * index_select and embedding also take int64 x; scatter_add takes floats.
 *   gather:       y[p] = x[p with axis replaced by index[p]]; index has x's
 *                 rank, is no larger outside axis, and gives y its shape.
 *   index_select: y = x with axis replaced by rows index[0..m), index 1-D.
 *   embedding:    weight (V, D), index of any shape -> (index..., D): rows
 *                 of weight (F.embedding).
 *   scatter_add:  y = x, then y[p with axis replaced by index[p]] += src[p]
 *                 for each position p of index (src at least index's size):
 *                 dx += dy, dsrc[p] += dy[p with axis replaced by index[p]]. */
tg_var *tg_gather_(TG_LOC, tg_tape *t, tg_var *x, int axis, tg_var *index);
tg_var *tg_index_select_(TG_LOC, tg_tape *t, tg_var *x, int axis, tg_var *index);
tg_var *tg_embedding_(TG_LOC, tg_tape *t, tg_var *weight, tg_var *index);
tg_var *tg_scatter_add_(TG_LOC, tg_tape *t, tg_var *x, int axis, tg_var *index, tg_var *src);
#define tg_gather(...) tg_gather_(TG_AT, __VA_ARGS__)
#define tg_index_select(...) tg_index_select_(TG_AT, __VA_ARGS__)
#define tg_embedding(...) tg_embedding_(TG_AT, __VA_ARGS__)
#define tg_scatter_add(...) tg_scatter_add_(TG_AT, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* linear algebra, custom ops */

/* ------------------------------------------------------------------------ */
/* convolution */

#include "tensor/kernels.h"   /* tg_conv_args: stride, padding, dilation, output_padding, groups */

/* 2-D convolution over NCHW batches, as PyTorch's F.conv2d and
 * F.conv_transpose2d, each one tape entry; forward and backward run as
 * im2col / col2im and one packed GEMM per group over the whole batch
 * (tensor/conv.c). Arguments: tg_conv_args, e.g.
 *     tg_conv2d(t, x, w, b, (tg_conv_args){.stride = {2, 2}, .padding = {1, 1}})
 * conv2d: x (N, C, H, W), w (O, C / groups, kh, kw), b (O) or NULL ->
 *   (N, O, Ho, Wo), Ho = (H + 2 ph - dh (kh - 1) - 1) / sh + 1 (Wo alike);
 *   y[n, o] = b[o] + sum over c of its group, ki, kj of
 *   w[o, c, ki, kj] x[n, c, oh sh - ph + ki dh, ow sw - pw + kj dw] (0 outside).
 * conv_transpose2d: x (N, C, H, W), w (C, O / groups, kh, kw), b (O) or NULL
 *   -> (N, O, Ho, Wo), Ho = (H - 1) sh - 2 ph + dh (kh - 1) + oph + 1: the
 *   adjoint of conv2d with the same w (its input gradient), plus b.
 *   output_padding must be smaller than the stride or the dilation.
 * Shapes and arguments are checked when recorded (channels against the
 * weight, groups dividing both channel counts, a kernel larger than the
 * padded input, negative sizes) and abort naming the op and the caller. */
tg_var *tg_conv2d_(TG_LOC, tg_tape *t, tg_var *x, tg_var *w, tg_var *b, tg_conv_args a);
tg_var *tg_conv_transpose2d_(TG_LOC, tg_tape *t, tg_var *x, tg_var *w, tg_var *b, tg_conv_args a);
#define tg_conv2d(...) tg_conv2d_(TG_AT, __VA_ARGS__)
#define tg_conv_transpose2d(...) tg_conv_transpose2d_(TG_AT, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* pooling and upsampling */

/* 2-D pooling of x (N, C, H, W) -> (N, C, Ho, Wo), float32 or float64, as
 * PyTorch 1.13's F.max_pool2d / F.avg_pool2d. Pairs are (h, w); a
 * zero-initialised field takes PyTorch's default:
 *
 *     tg_var *y = tg_max_pool2d(t, x, (tg_pool_args){.kernel = {2, 2}});   // stride 2, no padding
 *     tg_var *z = tg_avg_pool2d(t, x, (tg_pool_args){.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1},
 *                                                    .count_include_pad_off = true});
 *
 * Ho = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1 (ceil with ceil_mode,
 * dropping a last window that would start in the right padding); Wo alike.
 * Aborts, naming the op, x's shape, the arguments and the caller's file:line,
 * on a non-4-D x, a kernel below 1, a negative stride or dilation, padding
 * above half the kernel, dilation in avg_pool2d, or an output below 1x1
 * (kernel larger than the padded input). */
typedef struct {
    int64_t kernel[2];    /* (kh, kw), >= 1 */
    int64_t stride[2];    /* 0 means the kernel size (PyTorch's default) */
    int64_t padding[2];   /* implicit padding on both sides, at most half the kernel */
    int64_t dilation[2];  /* max_pool2d only; 0 means 1 */
    bool ceil_mode;
    bool count_include_pad_off;   /* avg_pool2d: true = count_include_pad=False (PyTorch's default is True) */
} tg_pool_args;
/* y = the maximum of each window, padding counting as -inf (a NaN wins).
 * dx[argmax] += dy, argmax saved per output (int64, the tape's arena): at a
 * tie the first element in row-major window order, as PyTorch's CPU kernel.
 * A window holding no element of x (only with dilation) gives -inf and no
 * gradient. */
tg_var *tg_max_pool2d_(TG_LOC, tg_tape *t, tg_var *x, tg_pool_args a);
/* y = sum of each window / count, count = the window's size clipped to the
 * padded input (count_include_pad, the default) or to x. dx += dy / count
 * over each window. */
tg_var *tg_avg_pool2d_(TG_LOC, tg_tape *t, tg_var *x, tg_pool_args a);
/* y (N, C, sh H, sw W)[h, w] = x[h / sh, w / sw]: F.interpolate(x,
 * scale_factor=(sh, sw), mode="nearest") with integer scales >= 1.
 * dx += the sum of each sh x sw block of dy. */
tg_var *tg_upsample_nearest2d_(TG_LOC, tg_tape *t, tg_var *x, int64_t scale_h, int64_t scale_w);
#define tg_max_pool2d(...) tg_max_pool2d_(TG_AT, __VA_ARGS__)
#define tg_avg_pool2d(...) tg_avg_pool2d_(TG_AT, __VA_ARGS__)
#define tg_upsample_nearest2d(...) tg_upsample_nearest2d_(TG_AT, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* normalisation and dropout */

/* Normalisation, as F.layer_norm and F.batch_norm (PyTorch 1.13), one fused
 * tape entry each. Statistics are summed in double in a fixed order (results
 * do not depend on the thread count); variances are biased (divided by n).
 * weight and bias are optional (NULL: no affine part) and, when given, are
 * inputs of the entry after x.
 *
 *     tg_var *h = tg_layer_norm(t, x, 1, w, b, 1e-5);     // x (B, T, D), w, b (D)
 *     tg_var *y = tg_batch_norm(t, x, w, b, rm, rv, true, 0.1, 1e-5);   // x (N, C, H, W)
 *
 * layer_norm: over the last normalized_ndim dims of x (their shape is
 * weight's and bias's): y = (x - mean) / sqrt(var + eps) * weight + bias. */
tg_var *tg_layer_norm_(TG_LOC, tg_tape *t, tg_var *x, int normalized_ndim, tg_var *weight, tg_var *bias,
                       double eps);
/* batch_norm: x (N, C), (N, C, L), (N, C, H, W) or any (N, C, ...); weight,
 * bias, running_mean, running_var (C). training: mean and var per channel
 * over N and the spatial dims (more than one value each, or it aborts),
 * y = (x - mean) / sqrt(var + eps) * weight + bias, and, if the running
 * statistics are given (both or neither), they are updated in place:
 * running_mean = (1 - momentum) running_mean + momentum mean, running_var
 * likewise with the unbiased variance var n / (n - 1); the gradient flows
 * through mean and var. Eval: y = (x - running_mean) / sqrt(running_var +
 * eps) * weight + bias, an affine map of x (running statistics required,
 * not changed). The running statistics are plain tensors (buffers, nn.h). */
tg_var *tg_batch_norm_(TG_LOC, tg_tape *t, tg_var *x, tg_var *weight, tg_var *bias, tg_tensor *running_mean,
                       tg_tensor *running_var, bool training, double momentum, double eps);
/* Inverted dropout as F.dropout: in training, y = x * mask with mask = 1 / (1
 * - p) where u < 1 - p, else 0, u = tg_rng_uniform(r) drawn once per element
 * of x in row-major order (x->val.numel draws, nothing else), the mask saved
 * on the entry: dx += dy mask. Not training, or p = 0: returns x itself (no
 * draw, no entry, gradient 1). p = 1: zeros, no draw (r may be NULL). */
tg_var *tg_dropout_(TG_LOC, tg_tape *t, tg_var *x, double p, bool training, tg_rng *r);
#define tg_layer_norm(...) tg_layer_norm_(TG_AT, __VA_ARGS__)
#define tg_batch_norm(...) tg_batch_norm_(TG_AT, __VA_ARGS__)
#define tg_dropout(...) tg_dropout_(TG_AT, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* Custom ops: an op of the user's, recorded on the tape like the library's
 * own (PyTorch's torch.autograd.Function), without editing the library.
 *
 *     // y = x^3:  dx += dy 3x^2
 *     static void cube_fwd(tg_tape *t, tg_tensor *y, const tg_tensor *const *x, int n, void *ctx) {
 *         for (int64_t i = 0; i < y->numel; i++) tg_tensor_set(y, i, pow(tg_tensor_get(x[0], i), 3));
 *     }
 *     static void cube_bwd(tg_tape *t, tg_tensor *const *dx, const tg_tensor *dy, const tg_tensor *y,
 *                          const tg_tensor *const *x, int n, void *ctx) {
 *         for (int64_t i = 0; i < dy->numel; i++) {
 *             double xi = tg_tensor_get(x[0], i);
 *             tg_tensor_set(dx[0], i, tg_tensor_get(dx[0], i) + tg_tensor_get(dy, i) * 3 * xi * xi);
 *         }
 *     }
 *     static const tg_function cube = {"cube", cube_fwd, cube_bwd};
 *     ...
 *     tg_var *y = tg_custom(t, &cube, &x, 1, x->val.shape, NULL);
 *
 * forward fills out (already allocated with out_shape, in the inputs' dtype)
 * from the n input values; whatever it must keep for backward goes in the
 * user's ctx, allocated from tg_tape_arena(t) so it dies with the step.
 * backward adds (+=) dL/d in[i] into din[i] for every i whose din[i] is not
 * NULL (NULL: that input wants no gradient), given dout = dL/dout and the
 * values of the inputs and the output. Inputs must share a float dtype;
 * gradient-check a custom op with tg_gradcheck like any other. */
typedef struct {
    const char *name;   /* for messages and the printed tape */
    void (*forward)(tg_tape *t, tg_tensor *out, const tg_tensor *const *in, int n, void *ctx);
    void (*backward)(tg_tape *t, tg_tensor *const *din, const tg_tensor *dout, const tg_tensor *out,
                     const tg_tensor *const *in, int n, void *ctx);
} tg_function;

/* out = fn(in[0..n)) with shape out_shape, one tape entry (n >= 1). */
tg_var *tg_custom_(TG_LOC, tg_tape *t, const tg_function *fn, tg_var *const *in, int n, tg_shape out_shape, void *ctx);
#define tg_custom(...) tg_custom_(TG_AT, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* Gradient checking: compares tg_backward's gradients of L = sum(w * f(x))
 * (w fixed pseudo-random weights) with central differences
 * (L(x + h) - L(x - h)) / 2h, in float64, for every element of every input.
 * An element passes if |analytic - numeric| <= atol + rtol * |numeric|. */

typedef tg_var *(*tg_gradcheck_fn)(tg_tape *t, tg_var **in, void *ctx);

typedef struct {
    bool ok;
    double max_abs_err;     /* over all elements of all inputs */
    double max_rel_err;     /* |a - n| / max(|n|, 1e-12) at the worst element */
    int worst_input;        /* input and flat index of the worst element */
    int64_t worst_index;
    double analytic, numeric;  /* the two values there */
    int64_t checked;        /* elements compared */
} tg_gradcheck_result;

/* in: n float64 tensors (perturbed in place and restored). f builds the output
 * from leaves wrapping them; it must be deterministic. */
tg_gradcheck_result tg_gradcheck(tg_gradcheck_fn f, tg_tensor **in, int n, void *ctx,
                                 double h, double atol, double rtol);

#endif
