/*
 * model.h — the one interface every model implements, so that one trainer,
 * evaluator and sampler (the `vae` program, examples/vae/) run any of them,
 * a user's own included.
 *
 * A model is a tg_model_type: a name, the names of the terms its objective
 * reports, and functions. build() adds the parameters to a tg_params and
 * returns the model's own state; loss() records one batch's objective on a
 * tape. A model with a Gaussian latent (every VAE here) gives posterior() and
 * decode(), and gets from this file encoding (the posterior mean), sampling
 * from the prior, and the importance-weighted log-likelihood. A model with
 * another latent (the VQ-VAE's codes) gives encode() and sample() itself.
 *
 *     static tg_model_out my_loss(tg_tape *t, void *self, const tg_model_batch *b) {
 *         my_vae *m = self;
 *         ...                                            // networks of tg_linear, tg_conv, ...
 *         return tg_model_out_of(loss, 2, (tg_var *[]){recon, kl});
 *     }
 *     static const tg_model_type my_vae_type = {
 *         .name = "my-vae", .about = "...", .terms = {"recon", "kl"},
 *         .build = my_build, .free = free, .loss = my_loss, .posterior = my_posterior, .decode = my_decode};
 *     tg_model_register(&my_vae_type);       // tg_train_run with o.model = "my-vae" now trains it
 *                                            // (in this program: see docs/new_model.md)
 *
 * Images reach a model as x (B, D) with D = rows * cols, values in [0, 1];
 * a convolutional model views them as (B, 1, rows, cols). Labels are (B)
 * int64 class indices, given only to a conditional model (.conditional).
 * Decoders return (n, D): Bernoulli logits (tg_sigmoid gives the pixels) or,
 * for cfg.lik == TG_LIK_GAUSSIAN, means.
 */
#ifndef TG_MODEL_H
#define TG_MODEL_H

#include "models/parts.h"

#define TG_MODEL_MAX_TERMS 4

/* Every setting a built-in model reads; a model ignores those it has no use
 * for. The `vae` program fills it from its flags (examples/vae/train.h). */
typedef struct {
    int64_t rows, cols;      /* image size; D = rows * cols */
    int64_t classes;         /* K, for a conditional model; else 0 */
    int n_hidden;            /* MLP models: hidden sizes, encoder order */
    int64_t hidden[TG_VAE_MAX_HIDDEN];
    int64_t latent;          /* L: Gaussian latent dimensions */
    tg_likelihood lik;
    tg_prior prior;          /* cvae: standard or learned p(z | y) */
    double beta;             /* beta-vae: the KL's weight */
    tg_kl_kind anneal;       /* annealed-vae: TG_KL_LINEAR or TG_KL_CYCLICAL */
    int64_t anneal_epochs;   /* linear by epoch (when anneal_steps == 0) */
    int64_t anneal_steps;    /* linear by step, when > 0 */
    int cycles;              /* cyclical: cycles over schedule_epochs */
    double ratio;            /* cyclical: the ramp's share of a cycle */
    int64_t schedule_epochs; /* cyclical: the epochs the cycles span */
    int64_t k;               /* iwae: importance samples per image */
    int64_t codes, code_dim; /* vq-vae: codebook size K and vector size */
    double commitment;       /* vq-vae: the commitment loss's weight */
} tg_model_config;

/* One batch, as loss() sees it. */
typedef struct {
    const tg_model_config *cfg;   /* the model's settings (set by tg_model_loss) */
    tg_var *x;               /* (B, D) images */
    const tg_tensor *labels; /* (B) int64, conditional models only; else NULL */
    tg_rng *rng;             /* the noise stream (z, ...) */
    const tg_tensor *eps;    /* tg_model_elbo: (B, L) noise for z if given, else drawn from rng */
    bool train;              /* false at evaluation: report the model's test objective */
    int64_t step;            /* training steps done before this one (0-based) */
    int64_t epoch;           /* the epoch, from 1 */
    int64_t steps_per_epoch; /* for schedules */
    int64_t epochs;          /* of the run */
} tg_model_batch;

/* What loss() returns. Each term is a scalar summed over the batch; the
 * trainer and evaluator report term / images. */
typedef struct {
    tg_var *loss;                        /* the objective minimised, summed over the batch */
    int n_terms;                         /* = the type's terms count */
    tg_var *term[TG_MODEL_MAX_TERMS];    /* in the order of tg_model_type.terms */
    double kl_weight;                    /* the KL's weight as used (1 for models without one) */
    tg_var *recon;                       /* (B, D) decoder output for the batch's reconstruction
                                            (z = the posterior mean at evaluation), or NULL */
    tg_var *mean;                        /* (B, L) the posterior mean E_q[z] (active units), or NULL */
    tg_var *kl_per_dim;                  /* (L) KL summed over the batch per dimension, or NULL */
    tg_var *codes;                       /* (B, G) int64 discrete codes, or NULL */
} tg_model_out;

/* loss with n terms (scalars) and nothing else set; kl_weight 1. */
tg_model_out tg_model_out_of(tg_var *loss, int n, tg_var *const terms[]);

typedef struct tg_model_type tg_model_type;
struct tg_model_type {
    const char *name;                         /* as --model and config.json write it */
    const char *about;                        /* one line for --help */
    const char *terms[TG_MODEL_MAX_TERMS];    /* names of tg_model_out.term, NULL-terminated if fewer */
    bool conditional;                         /* takes labels */

    /* Checks cfg (a user error: 0, or -1 with a message naming the setting). NULL: anything goes. */
    int (*check)(const tg_model_config *cfg, tg_err *e);
    /* The number of parameter values build() adds for cfg, to check they fit
     * in memory first (-1 if it would overflow). NULL: not checked. */
    int64_t (*count)(const tg_model_config *cfg);
    /* Adds the parameters (and buffers) to ps, initial values drawn from r in
     * a fixed order; returns the model's state, released by free(). */
    void *(*build)(tg_params *ps, const tg_model_config *cfg, tg_rng *r);
    void (*free)(void *self);
    tg_model_out (*loss)(tg_tape *t, void *self, const tg_model_batch *b);

    /* Gaussian latent: q(z | x, y) = N(mu, exp(logvar)), (n, L) each. */
    void (*posterior)(tg_tape *t, void *self, tg_var *x, const tg_tensor *labels, tg_var **mu, tg_var **logvar);
    /* p(z | y), (n, L) each; NULL: N(0, I). */
    void (*prior)(tg_tape *t, void *self, int64_t n, const tg_tensor *labels, tg_var **mu, tg_var **logvar);
    /* log p(x_i | z_p) for rows p of out (P, D) (decoder output) against
     * images x[img[p]]: Bernoulli by default (NULL). */
    void (*log_lik_rows)(void *self, const tg_tensor *out, const tg_tensor *x, const int64_t *img, int64_t P,
                         double *ll);
    /* z (n, L), or for encode()'s codes (n, G) int64 -> (n, D). */
    tg_var *(*decode)(tg_tape *t, void *self, tg_var *z, const tg_tensor *labels);

    /* Another latent: x -> its representation (codes); and n draws from the
     * prior, decoded, at temperature T (0: the most likely). NULL for a
     * Gaussian latent: the posterior mean, and prior draws at T. */
    tg_var *(*encode)(tg_tape *t, void *self, tg_var *x, const tg_tensor *labels);
    tg_var *(*sample)(tg_tape *t, void *self, int64_t n, const tg_tensor *labels, double temperature, tg_rng *r);
};

/* A built model. */
typedef struct {
    const tg_model_type *type;
    tg_model_config cfg;
    tg_dtype dtype;
    void *self;
} tg_model;

/* The built-in types (vae, beta-vae, annealed-vae, cvae, iwae, conv-vae,
 * vq-vae) and those registered, by name; NULL if none. */
const tg_model_type *tg_model_find(const char *name);
/* Adds a type (kept by pointer; 25 beside the 7 built-ins); aborts on a name already taken. */
void tg_model_register(const tg_model_type *type);
/* The known types' names, ", "-separated, "or" before the last: for messages. */
const char *tg_model_names(void);
/* Number of terms of a type. */
int tg_model_n_terms(const tg_model_type *type);

/* Builds type into ps from r. Aborts if cfg fails the type's check. */
tg_model tg_model_new(const tg_model_type *type, tg_params *ps, const tg_model_config *cfg, tg_rng *r);
void tg_model_free(tg_model *m);

/* The model's objective of a batch (see tg_model_batch). */
tg_model_out tg_model_loss(tg_tape *t, const tg_model *m, const tg_model_batch *b);
/* x (n, D) -> the posterior mean (n, L), or the model's codes. */
tg_var *tg_model_encode(tg_tape *t, const tg_model *m, tg_var *x, const tg_tensor *labels);
/* z (n, L) or codes -> decoder output (n, D). */
tg_var *tg_model_decode(tg_tape *t, const tg_model *m, tg_var *z, const tg_tensor *labels);
/* n decoder outputs (n, D) of prior draws at temperature T >= 0 (Gaussian:
 * z = mu_p + T sigma_p eps, eps drawn from r as tg_tensor_normal; T = 0: the
 * prior mean, no draws). */
tg_var *tg_model_sample(tg_tape *t, const tg_model *m, int64_t n, const tg_tensor *labels, double temperature,
                        tg_rng *r);
/* Decoder output (n, D) as pixels in [0, 1]: sigmoid of logits, or clamped means. */
tg_var *tg_model_pixels(tg_tape *t, const tg_model *m, tg_var *out);
/* Whether the model has a Gaussian latent (posterior, so an IW log-likelihood). */
bool tg_model_gaussian(const tg_model *m);

/* Importance-sampled log p(x) per image (Burda et al., 2016), for a Gaussian
 * latent: logsumexp_k log w_k - log k, log w = log p(x|z) + log p(z|y) -
 * log q(z|x,y). x (N, D), labels (N) or NULL, k >= 1, out (N). Pairs are
 * decoded chunk_rows at a time (<= 0: 4096); eps drawn from r pair by pair,
 * row-major (image, then sample). */
void tg_model_iw_logpx(const tg_model *m, const tg_tensor *x, const tg_tensor *labels, int64_t k,
                       int64_t chunk_rows, tg_rng *r, double *out);
/* The VAE's objective for a type with a Gaussian posterior and Bernoulli
 * logits: z = mu + sigma eps (eps from b->rng), recon = sum bce_logits(decode(z), x),
 * kl = KL(q || p) in closed form (p the type's prior, or N(0, I)); loss =
 * recon + kl, terms recon and kl, mean and kl_per_dim set. */
tg_model_out tg_model_elbo(tg_tape *t, const tg_model_type *type, void *self, const tg_model_batch *b);

/* The IWAE bound (models/iwae.c), negated and summed over the batch, of a
 * type with a Gaussian posterior, a standard prior and Bernoulli logits:
 * x (B, D), k >= 1 samples per image; eps (k, B, L) if given, else drawn from r. */
tg_var *tg_model_iwae_bound(tg_tape *t, const tg_model_type *type, void *self, tg_var *x, int64_t k,
                            const tg_tensor *eps, tg_rng *r);

/* log p(x_i | logits_p) of Bernoulli pixels for rows p of out (P, D) against
 * images x[img[p]], into ll (P): the default of tg_model_type.log_lik_rows. */
void tg_model_bernoulli_log_lik_rows(const tg_tensor *out, const tg_tensor *x, const int64_t *img, int64_t P,
                                     double *ll);

/* One log-weight per row with the given eps (N, L): out (N). */
void tg_model_log_weight(const tg_model *m, const tg_tensor *x, const tg_tensor *labels, const tg_tensor *eps,
                         double *out);

#endif
