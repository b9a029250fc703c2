/*
 * parts.h — the pieces the model files (models/vae.c, beta_vae.c, ...) are
 * built from: the MLP encoder and decoder of the VAE family (any hidden
 * sizes, an optional class input for the CVAE, a standard or learned prior),
 * the likelihoods, the KL terms, KL schedules and active units. What makes a
 * model a β-VAE or an IWAE is in its own file; the importance-weighted
 * log-likelihood of any Gaussian-latent model is in models/model.h.
 *
 *     int64_t hidden[] = {512, 256};
 *     tg_vae_config c = tg_vae_config_new(784, 2, hidden, 20);
 *     c.classes = 10, c.prior = TG_PRIOR_LEARNED, c.beta = 4;          // a β-CVAE
 *     tg_vae_model m = tg_vae_model_new(ps, &c, &rng);
 *     tg_kl_schedule ks = {.kind = TG_KL_CYCLICAL, .total_steps = 10000, .cycles = 4, .ratio = 0.5};
 *     ...per step:
 *     double w = tg_kl_weight(&ks, step, epoch);
 *     tg_vae_model_out o = tg_vae_model_forward(t, &m, x, labels, NULL, &rng, w);
 *     tg_backward(t, o.loss);                 // loss = recon + beta * w * kl
 *
 * Letters: B batch, D = in (pixels), H_i hidden sizes, L latent, K classes,
 * N rows of an evaluation batch.
 *
 * Architecture. Encoder [x, onehot(y)] (B, D [+K]) -> H_1 -> ... -> H_n (each
 * Linear + ReLU, tg_linear_relu) -> two Linear heads mu, logvar (B, L): the
 * encoder predicts the log-variance directly. z = mu + exp(logvar / 2) eps.
 * Decoder [z, onehot(y)] (B, L [+K]) -> H_n -> ... -> H_1 (Linear + ReLU) ->
 * Linear to D: Bernoulli logits or Gaussian means. The one-hot part exists only
 * for a CVAE (classes > 0).
 *
 * Parameter names (creation order = the order of ps->vars):
 *   one hidden layer (the PyTorch reference module, as models/vae.c):
 *       fc1, fc_mu, fc_logvar, fc2, fc3
 *   n >= 2 hidden layers:
 *       enc1 .. encn, fc_mu, fc_logvar, dec1 .. decn, out
 *     where enc_i maps H_{i-1} -> H_i (H_0 = D [+K]) and dec_i maps the
 *     reversed sizes: dec1 is L [+K] -> H_n, dec_n is H_2 -> H_1, out H_1 -> D;
 *   then, when present:
 *       prior       (2L, K) weight, (2L) bias: learned conditional prior
 *       dec_logvar  (D): learned per-pixel Gaussian log-variance
 * Each Linear contributes "<name>.weight" (out, in) and "<name>.bias" (out).
 *
 * Likelihoods (recon is the negative log-likelihood summed over pixels and batch):
 *   Bernoulli: recon = sum bce_logits(logits, x)                 (the default)
 *   Gaussian:  recon = 1/2 sum (log 2pi + v_d + (x - m)^2 e^{-v_d})
 *     with a per-pixel log-variance v (D): fixed at gauss_logvar (0 = unit
 *     variance, the default), or, if gauss_learn_logvar, a parameter dec_logvar
 *     initialised to gauss_logvar. A learned variance is unbounded below on
 *     pixels that are constant in the data (MNIST's borders): prefer the fixed
 *     one there, or data with noise.
 *
 * Priors: TG_PRIOR_STANDARD p(z) = N(0, I); TG_PRIOR_LEARNED (CVAE only)
 *   p(z | y) = N(mu_p(y), exp(logvar_p(y))), [mu_p, logvar_p] = prior(onehot(y)),
 *   one Linear K -> 2L (mu_p the first L outputs, logvar_p the last L). With a
 *   one-hot input a Linear is already an arbitrary per-class table, so a hidden
 *   layer would add nothing.
 *
 * Labels are tensors of class indices 0..K-1 (any dtype), never differentiated.
 */
#ifndef TG_PARTS_H
#define TG_PARTS_H

#include "nn/nn.h"
#include "tensor/kernels.h"   /* tg_logsumexp */

#define TG_VAE_MAX_HIDDEN 8

typedef enum { TG_LIK_BERNOULLI, TG_LIK_GAUSSIAN } tg_likelihood;
typedef enum { TG_PRIOR_STANDARD, TG_PRIOR_LEARNED } tg_prior;

typedef struct {
    int64_t in;                          /* D */
    int n_hidden;                        /* 1 .. TG_VAE_MAX_HIDDEN */
    int64_t hidden[TG_VAE_MAX_HIDDEN];   /* H_1 .. H_n, encoder order */
    int64_t latent;                      /* L */
    int64_t classes;                     /* K: 0 = unconditional VAE, > 0 = CVAE */
    tg_likelihood lik;
    tg_prior prior;                      /* TG_PRIOR_LEARNED needs classes > 0 */
    double beta;                         /* KL weight of the β-VAE; 1 = the plain ELBO */
    bool gauss_learn_logvar;             /* Gaussian: learn dec_logvar (D) */
    double gauss_logvar;                 /* Gaussian: its fixed or initial value */
} tg_vae_config;

/* Bernoulli, standard prior, unconditional, beta 1, unit Gaussian variance. */
tg_vae_config tg_vae_config_new(int64_t in, int n_hidden, const int64_t *hidden, int64_t latent);

/* Parses "400" or "512,256" (1..TG_VAE_MAX_HIDDEN positive integers) into
 * hidden; returns the count, or -1 if s is malformed (a user error). */
int tg_vae_parse_hidden(const char *s, int64_t hidden[TG_VAE_MAX_HIDDEN]);

typedef struct {
    tg_vae_config cfg;
    tg_dtype dtype;
    tg_linear enc[TG_VAE_MAX_HIDDEN];   /* enc[i]: H_{i} -> H_{i+1} (H_0 = D [+K]) */
    tg_linear fc_mu, fc_logvar;         /* H_n -> L */
    tg_linear dec[TG_VAE_MAX_HIDDEN];   /* dec[0]: L [+K] -> H_n, ..., dec[n-1]: H_2 -> H_1 */
    tg_linear out;                      /* H_1 -> D */
    tg_linear prior;                    /* K -> 2L; learned prior only (else weight NULL) */
    tg_var *dec_logvar;                 /* (D); Gaussian with learned variance only, else NULL */
} tg_vae_model;

/* Adds the parameters to ps (named as above) with PyTorch's Linear init drawn
 * from r in creation order: a one-hidden-layer Bernoulli VAE gets the same
 * values as tg_vae_new from the same rng state. Aborts on a bad config. */
tg_vae_model tg_vae_model_new(tg_params *ps, const tg_vae_config *c, tg_rng *r);

/* The number of parameter values tg_vae_model_new adds for c (to check a
 * model fits in memory before building it); -1 if it would overflow. */
int64_t tg_vae_config_params(const tg_vae_config *c);

/* Addresses of the model's parameter pointers in creation order (as ps->vars);
 * returns their count (at most cap). Replacing *slots[i] in a copy of the model
 * runs it on other variables, e.g. the leaves of a gradient check. */
int tg_vae_model_slots(tg_vae_model *m, tg_var **slots[], int cap);

typedef struct {
    tg_var *mu, *logvar;        /* (B, L) q(z | x, y) */
    tg_var *mu_p, *logvar_p;    /* (B, L) learned prior p(z | y); NULL for N(0, I) */
    tg_var *z;                  /* (B, L) the sample decoded */
    tg_var *logits;             /* (B, D) Bernoulli logits, or Gaussian means */
    tg_var *recon;              /* scalar: negative log-likelihood, summed over pixels and batch */
    tg_var *kl;                 /* scalar: KL(q || p) summed over latents and batch */
    tg_var *kl_per_dim;         /* (L) KL summed over the batch, per latent dimension */
    tg_var *loss;               /* scalar: recon + kl_weight * kl */
    double kl_weight;           /* beta * anneal, as used */
} tg_vae_model_out;

/* x (B, D) in the model's dtype; labels (B) for a CVAE, else NULL; eps (B, L)
 * if given, else drawn from r. anneal: the schedule's weight (1 without one).
 * loss = recon + beta * anneal * kl. */
tg_vae_model_out tg_vae_model_forward(tg_tape *t, const tg_vae_model *m, tg_var *x, const tg_tensor *labels,
                                      const tg_tensor *eps, tg_rng *r, double anneal);

/* The same without the loss (loss NULL, kl_weight 1): the terms a model file
 * composes its own objective from. */
tg_vae_model_out tg_vae_model_terms(tg_tape *t, const tg_vae_model *m, tg_var *x, const tg_tensor *labels,
                                    const tg_tensor *eps, tg_rng *r);

/* q(z | x, y): x (n, D), labels (n) or NULL -> mu, logvar (n, L). */
void tg_vae_model_posterior(tg_tape *t, const tg_vae_model *m, tg_var *x, const tg_tensor *labels, tg_var **mu,
                            tg_var **logvar);

/* log p(x_i | out_p) for rows p of the decoder output out (P, D), x (N, D),
 * i = img[p], into ll (P): the model's likelihood (Bernoulli or Gaussian). */
void tg_vae_model_log_lik_rows(const tg_vae_model *m, const tg_tensor *out, const tg_tensor *x, const int64_t *img,
                               int64_t P, double *ll);

/* The prior's parameters for n rows: labels (n) for a CVAE (else NULL). For the
 * standard prior both are zero tensors (constants) of shape (n, L). */
void tg_vae_model_prior(tg_tape *t, const tg_vae_model *m, int64_t n, const tg_tensor *labels,
                        tg_var **mu_p, tg_var **logvar_p);
/* z (n, L) [, labels (n)] -> (n, D) decoder output (logits or means). */
tg_var *tg_vae_model_decode(tg_tape *t, const tg_vae_model *m, tg_var *z, const tg_tensor *labels);
/* Decoder output for z ~ p(z | y) drawn from r, or at z = the prior mean.
 * For images apply tg_sigmoid to Bernoulli logits. Ops are recorded as usual:
 * wrap the call in tg_no_grad when only the values are wanted. */
tg_var *tg_vae_model_sample(tg_tape *t, const tg_vae_model *m, int64_t n, const tg_tensor *labels, tg_rng *r);
tg_var *tg_vae_model_sample_mean(tg_tape *t, const tg_vae_model *m, int64_t n, const tg_tensor *labels);

/* The KL term is nn's tg_kl_diag_normal (nn/nn.h). */

/* ------------------------------------------------------------------------ */
/* KL annealing. step is the 0-based index of the current step; epoch
 * counts from 1, as a training loop `for epoch in 1..epochs` does.
 *   TG_KL_CONSTANT: 1
 *   TG_KL_LINEAR:   min(1, t / warmup), t = epoch if by_epoch else step:
 *                   with warmup 4 epochs, the epochs train at 0.25, 0.5,
 *                   0.75, 1, 1, ...; by steps the ramp starts at 0;
 *                   warmup <= 0 gives 1
 *   TG_KL_CYCLICAL: (Fu et al., 2019) total_steps split into `cycles` equal
 *                   cycles; at fraction tau in [0, 1) of its cycle the weight
 *                   is min(1, tau / ratio): 0 at each cycle start, 1 from
 *                   ratio of the way on. Steps >= total_steps give 1.
 * The KL term's multiplier is beta (config) times this. */
typedef enum { TG_KL_CONSTANT, TG_KL_LINEAR, TG_KL_CYCLICAL } tg_kl_kind;

typedef struct {
    tg_kl_kind kind;
    bool by_epoch;          /* linear: count epochs (else steps) */
    int64_t warmup;         /* linear: T, in epochs or steps */
    int64_t total_steps;    /* cyclical: steps in the whole run */
    int cycles;             /* cyclical: C >= 1 */
    double ratio;           /* cyclical: R in (0, 1], the ramp's share of a cycle */
} tg_kl_schedule;

double tg_kl_weight(const tg_kl_schedule *s, int64_t step, int64_t epoch);

/* ------------------------------------------------------------------------ */
/* Evaluation (no gradients; each call runs on its own tape; float32 or
 * float64 models; results in double): the MLP family's entry points to
 * tg_model_log_weight and tg_model_iw_logpx (models/model.h). */

/* One importance weight per row: log w = log p(x|z) + log p(z|y) - log q(z|x,y)
 * at z = mu + exp(logvar / 2) eps. x (N, D), labels (N) or NULL, eps (N, L)
 * any dtype -> out (N). For the same eps, log w = -recon - (log q - log p). */
void tg_vae_model_log_weight(const tg_vae_model *m, const tg_tensor *x, const tg_tensor *labels,
                             const tg_tensor *eps, double *out);

/* Importance-sampled log-likelihood (Burda et al., 2016), per image:
 *   log p(x) ~= logsumexp_k log w_k - log k,  z_k ~ q(z | x, y)
 * x (N, D), labels (N) or NULL, k >= 1 samples, out (N) nats. Samples are
 * decoded chunk_rows (image, sample) pairs at a time (<= 0: 4096), and the
 * log-sum-exp is accumulated with a running maximum, so memory does not grow
 * with k. eps is drawn from r pair by pair, row-major (image, then sample). */
void tg_vae_model_iw_logpx(const tg_vae_model *m, const tg_tensor *x, const tg_tensor *labels, int64_t k,
                           int64_t chunk_rows, tg_rng *r, double *out);

/* Active units (Burda et al., 2016): dims whose variance over x of
 * E_q[z | x] = mu exceeds a threshold (0.01). Batches are merged with Chan's
 * parallel form of Welford's update (two passes within a batch), so large
 * means do not cancel. The variance is the unbiased one (n - 1), as torch.var. */
typedef struct {
    int64_t latent;     /* L */
    int64_t n;          /* rows seen */
    double *mean, *m2;  /* (L) running mean and sum of squared deviations */
} tg_active_units;

tg_active_units *tg_active_units_new(int64_t latent);
void tg_active_units_add(tg_active_units *a, const tg_tensor *mu);   /* mu (B, L) */
/* Count of dims with variance > threshold; var (L) receives the variances if not NULL. */
int64_t tg_active_units_count(const tg_active_units *a, double threshold, double *var);
void tg_active_units_free(tg_active_units *a);


#endif
