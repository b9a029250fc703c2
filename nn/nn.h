/*
 * nn.h — parameters, layers and losses built from autograd ops.
 *
 *     tg_params *ps = tg_params_new(TG_F32);
 *     tg_rng rng = tg_rng_seed(1);
 *     tg_linear fc = tg_linear_new(ps, "fc1", 784, 400, &rng);
 *     ...per step:
 *     tg_var *h = tg_relu(t, tg_linear_forward(t, &fc, x));       // (B, 400)
 *
 * All parameters of a model live in one flat block of values and one of
 * gradients (ps->data, ps->grad: ps->n scalars each), so an optimizer is one
 * loop. Each parameter is a tg_var whose value and gradient point into them.
 *
 * Activations are the autograd ops themselves: tg_relu, tg_sigmoid, tg_tanh,
 * tg_softplus.
 */
#ifndef TG_NN_H
#define TG_NN_H

#include "autograd/autograd.h"

/* ------------------------------------------------------------------------ */
/* Parameters. */

typedef struct {
    tg_dtype dtype;
    int64_t n;          /* scalars in all parameters */
    void *data, *grad;  /* (n) values and (n) gradients, parameters in order of creation */
    tg_var **vars;      /* (count) the parameters, views into data and grad */
    int count, cap;
    int64_t n_cap;
    bool training;      /* true (the default): layers train (tg_params_train); false: eval */
    struct tg_buffer **bufs;   /* (n_bufs) buffers (below): saved, never optimised */
    int n_bufs, bufs_cap;
} tg_params;

tg_params *tg_params_new(tg_dtype dt);
void tg_params_free(tg_params *ps);
/* A new zero-valued parameter called name (copied). Pointers returned earlier
 * stay valid as the block grows. */
tg_var *tg_params_add(tg_params *ps, const char *name, tg_shape s);
tg_var *tg_params_find(const tg_params *ps, const char *name);   /* NULL if absent */
void tg_params_zero_grad(tg_params *ps);

/* ------------------------------------------------------------------------ */
/* Linear: y = x W^T + b, as torch.nn.Linear. Initialised as PyTorch's
 * default: W and b uniform in [-1/sqrt(in), 1/sqrt(in)). */

typedef struct {
    tg_var *weight;  /* (out, in) */
    tg_var *bias;    /* (out), or NULL for a layer without bias */
    int64_t in, out;
} tg_linear;

/* Adds "<name>.weight" and "<name>.bias" to ps. */
tg_linear tg_linear_new(tg_params *ps, const char *name, int64_t in, int64_t out, tg_rng *r);
/* y = x W^T, torch.nn.Linear(in, out, bias=False): adds "<name>.weight" only,
 * drawn as tg_linear_new's (the same draws for the same rng state). */
tg_linear tg_linear_new_nobias(tg_params *ps, const char *name, int64_t in, int64_t out, tg_rng *r);
/* x (..., in) -> (..., out), as torch.nn.Linear: a (B, in) batch is one
 * tg_affine entry; other shapes ((in), (A, B, in), ...) are viewed as
 * (rows, in) around it with tg_reshape (no copy). */
tg_var *tg_linear_forward_(TG_LOC, tg_tape *t, const tg_linear *l, tg_var *x);
#define tg_linear_forward(...) tg_linear_forward_(TG_AT, __VA_ARGS__)
/* relu(x W^T + b) in one fused op (tg_affine). */
tg_var *tg_linear_relu_(TG_LOC, tg_tape *t, const tg_linear *l, tg_var *x);
#define tg_linear_relu(...) tg_linear_relu_(TG_AT, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* Conv2d and ConvTranspose2d, as torch.nn's: parameters "<name>.weight" and
 * "<name>.bias" with PyTorch's shapes, so a state_dict loads as it is:
 *   Conv2d:          weight (out, in / groups, kh, kw)
 *   ConvTranspose2d: weight (in, out / groups, kh, kw)
 * Initialised as PyTorch's default: weight kaiming_uniform(a = sqrt(5)),
 * i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = weight.size(1) kh kw,
 * and the bias from the same bound. stride, padding, dilation, groups and
 * output_padding are the tg_conv_args of the ops (autograd.h).
 *
 *     tg_conv c1 = tg_conv2d_new(ps, "enc.0", 1, 32, 4, 4, (tg_conv_args){.stride = {2, 2}, .padding = {1, 1}}, true, &rng);
 *     tg_var *h = tg_relu(t, tg_conv_forward(t, &c1, x));    // (B, 1, 28, 28) -> (B, 32, 14, 14)
 */
typedef struct {
    tg_var *weight;     /* see above */
    tg_var *bias;       /* (out), or NULL */
    int64_t in, out;    /* channels */
    bool transposed;    /* ConvTranspose2d */
    tg_conv_args args;
} tg_conv;

tg_conv tg_conv2d_new(tg_params *ps, const char *name, int64_t in, int64_t out, int64_t kh, int64_t kw,
                      tg_conv_args a, bool bias, tg_rng *r);
tg_conv tg_conv_transpose2d_new(tg_params *ps, const char *name, int64_t in, int64_t out, int64_t kh, int64_t kw,
                                tg_conv_args a, bool bias, tg_rng *r);
/* x (N, in, H, W) -> (N, out, Ho, Wo) by tg_conv2d or tg_conv_transpose2d. */
tg_var *tg_conv_forward_(TG_LOC, tg_tape *t, const tg_conv *l, tg_var *x);
#define tg_conv_forward(...) tg_conv_forward_(TG_AT, __VA_ARGS__)
/* relu(tg_conv_forward(t, l, x)) as one op (args.relu): the same values and
 * gradients, without a separate pass over the output and its gradient. */
tg_var *tg_conv_relu_(TG_LOC, tg_tape *t, const tg_conv *l, tg_var *x);
#define tg_conv_relu(...) tg_conv_relu_(TG_AT, __VA_ARGS__)

/* Initialisers (torch.nn.init), on any parameter's tensor, drawing from r.
 * Fans as PyTorch's: for w of shape (out, in, k...), fan_in = in * prod(k),
 * fan_out = out * prod(k); a 1-D w has fan_in = fan_out = its size.
 * Kaiming uniform (He et al.): U(-b, b), b = gain sqrt(3 / fan_in), gain =
 * sqrt(2 / (1 + a^2)) for leaky-ReLU slope a (0: ReLU); a = sqrt(5) is
 * PyTorch's default for Linear and Conv weights (b = 1 / sqrt(fan_in)).
 * Xavier uniform (Glorot): b = gain sqrt(6 / (fan_in + fan_out)). */
void tg_init_fans(const tg_tensor *w, int64_t *fan_in, int64_t *fan_out);
void tg_init_kaiming_uniform(tg_tensor *w, double a, tg_rng *r);
void tg_init_xavier_uniform(tg_tensor *w, double gain, tg_rng *r);
void tg_init_normal(tg_tensor *w, double mean, double std, tg_rng *r);   /* N(mean, std^2) */
void tg_init_zeros(tg_tensor *w);

/* Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_): with
 * n = the 2-norm of every gradient in ps together, scales every gradient by
 * min(1, max_norm / (n + 1e-6)). Returns n, before clipping. */
double tg_params_clip_grad_norm(tg_params *ps, double max_norm);

/* ------------------------------------------------------------------------ */
/* Losses. Reductions as PyTorch's: sum or mean over all elements, or none. */

typedef enum { TG_REDUCE_SUM, TG_REDUCE_MEAN, TG_REDUCE_NONE } tg_reduction;

/* Like the ops, each loss takes the caller's file:line and aborts naming it
 * when the two inputs' shapes differ (no silent broadcasting: (B, 1) against
 * (B) is an error, not a (B, B) loss). */
/* BCE of probabilities p against targets y (same shape), log clamped at -100. */
tg_var *tg_loss_bce_(TG_LOC, tg_tape *t, tg_var *p, tg_var *y, tg_reduction r);
/* BCE of logits x against targets y, computed stably without forming sigmoid(x). */
tg_var *tg_loss_bce_logits_(TG_LOC, tg_tape *t, tg_var *x, tg_var *y, tg_reduction r);
/* (x - y)^2 */
tg_var *tg_loss_mse_(TG_LOC, tg_tape *t, tg_var *x, tg_var *y, tg_reduction r);
#define tg_loss_bce(...) tg_loss_bce_(TG_AT, __VA_ARGS__)
#define tg_loss_bce_logits(...) tg_loss_bce_logits_(TG_AT, __VA_ARGS__)
#define tg_loss_mse(...) tg_loss_mse_(TG_AT, __VA_ARGS__)
/* KL between diagonal Gaussians, elementwise (q's shape), composed from primitives:
 *   KL(N(mq, e^lq) || N(mp, e^lp)) = 1/2 (lp - lq + e^(lq - lp) + (mq - mp)^2 e^-lp - 1)
 * mp, lp NULL: the prior is N(0, I), -1/2 (1 + lq - mq^2 - e^lq) (the
 * PyTorch VAE example's form). mp, lp may broadcast against mq. */
tg_var *tg_kl_diag_normal(tg_tape *t, tg_var *mq, tg_var *lq, tg_var *mp, tg_var *lp);
/* KL(N(mu, exp(logvar)) || N(0, I)) summed over every element (a batch's
 * total): tg_kl_diag_normal with the standard prior, summed. */
tg_var *tg_loss_kl_normal_(TG_LOC, tg_tape *t, tg_var *mu, tg_var *logvar);
#define tg_loss_kl_normal(...) tg_loss_kl_normal_(TG_AT, __VA_ARGS__)
/* Negative log-likelihood of int64 labels, as F.nll_loss: logp (N, C, d1,
 * ...) or (C) holds log-probabilities, labels (N, d1, ...) or () classes in
 * [0, C) or TG_IGNORE_INDEX (-100), which adds nothing. NONE gives the
 * per-label losses (0 where ignored), SUM their sum, MEAN their sum over
 * the number of labels not ignored (NaN if all are, as PyTorch). */
tg_var *tg_loss_nll_(TG_LOC, tg_tape *t, tg_var *logp, tg_var *labels, tg_reduction r);
/* Cross-entropy of logits (N, C, d1, ...) or (C), as F.cross_entropy with
 * class labels: tg_loss_nll of log_softmax(logits) over the class axis. */
tg_var *tg_loss_cross_entropy_(TG_LOC, tg_tape *t, tg_var *logits, tg_var *labels, tg_reduction r);
#define tg_loss_nll(...) tg_loss_nll_(TG_AT, __VA_ARGS__)
#define tg_loss_cross_entropy(...) tg_loss_cross_entropy_(TG_AT, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* Train / eval (PyTorch's module.train() / module.eval()): layers that
 * behave differently (batch norm, dropout) read ps->training, true from
 * tg_params_new on. */
void tg_params_train(tg_params *ps, bool training);

/* Buffers: tensors that live with the parameters and are saved in
 * checkpoints but are not trained (PyTorch's register_buffer): batch
 * norm's running statistics (ps->dtype) and step count (int64). They sit
 * outside the parameter block, so optimizers never see them. */
typedef struct tg_buffer {
    const char *name;   /* e.g. "bn1.running_mean" */
    tg_tensor val;      /* owned by ps; its address is stable */
} tg_buffer;
/* A new buffer called name (copied; no parameter or buffer may have it),
 * zero-filled. */
tg_tensor *tg_params_add_buffer(tg_params *ps, const char *name, tg_dtype dt, tg_shape s);
tg_tensor *tg_params_find_buffer(const tg_params *ps, const char *name);   /* NULL if absent */

/* ------------------------------------------------------------------------ */
/* Normalisation and dropout layers, PyTorch's names and defaults. Forwards
 * obey the training flag of the tg_params the layer was made in. */

/* LayerNorm(normalized_shape): "<name>.weight" ones and "<name>.bias" zeros
 * of normalized_shape, eps 1e-5; x (..., normalized_shape) -> x's shape. */
typedef struct {
    tg_var *weight, *bias;   /* (normalized_shape) */
    int ndim;                /* normalized_shape's dims */
    double eps;              /* 1e-5 */
} tg_layernorm;
tg_layernorm tg_layernorm_new(tg_params *ps, const char *name, tg_shape normalized_shape);
tg_var *tg_layernorm_forward_(TG_LOC, tg_tape *t, const tg_layernorm *l, tg_var *x);
#define tg_layernorm_forward(...) tg_layernorm_forward_(TG_AT, __VA_ARGS__)

/* BatchNorm1d / BatchNorm2d(num_features): "<name>.weight" ones,
 * "<name>.bias" zeros (C); buffers "<name>.running_mean" zeros,
 * "<name>.running_var" ones (C) and "<name>.num_batches_tracked" int64 0;
 * momentum 0.1, eps 1e-5. x (N, C), (N, C, L) or (N, C, H, W). Training:
 * batch statistics, the running ones updated and num_batches_tracked
 * incremented; eval: the running statistics. */
typedef struct {
    const tg_params *ps;     /* whose training flag the forward reads */
    tg_var *weight, *bias;   /* (C) */
    tg_tensor *running_mean, *running_var, *num_batches_tracked;   /* (C), (C), () int64: buffers of ps */
    double momentum, eps;    /* 0.1, 1e-5; change them after _new if wanted */
} tg_batchnorm;
tg_batchnorm tg_batchnorm_new(tg_params *ps, const char *name, int64_t num_features);
tg_var *tg_batchnorm_forward_(TG_LOC, tg_tape *t, tg_batchnorm *l, tg_var *x);
#define tg_batchnorm_forward(...) tg_batchnorm_forward_(TG_AT, __VA_ARGS__)

/* Dropout(p): tg_dropout with ps's training flag, drawing from r (the
 * caller's generator, which must outlive the layer). No parameters. */
typedef struct {
    const tg_params *ps;
    double p;
    tg_rng *rng;
} tg_dropout_layer;
tg_dropout_layer tg_dropout_new(const tg_params *ps, double p, tg_rng *r);
tg_var *tg_dropout_forward_(TG_LOC, tg_tape *t, const tg_dropout_layer *l, tg_var *x);
#define tg_dropout_forward(...) tg_dropout_forward_(TG_AT, __VA_ARGS__)

#endif
