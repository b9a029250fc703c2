/*
 * mlp_vae.h — the VAE family's MLP networks (parts.h) as the hooks of a
 * tg_model_type (model.h). vae.c, beta_vae.c, annealed_vae.c, cvae.c and
 * iwae.c are these networks with an objective of their own:
 *
 *     const tg_model_type tg_beta_vae_type = {
 *         .name = "beta-vae", .terms = {"recon", "kl"}, TG_MLP_VAE_HOOKS, .check = tg_mlp_vae_check, .loss = loss};
 */
#ifndef TG_MLP_VAE_H
#define TG_MLP_VAE_H

#include "models/model.h"

/* The networks' config from a model config (beta 1: the model file weighs the KL). */
tg_vae_config tg_mlp_vae_config(const tg_model_config *c);
int tg_mlp_vae_check(const tg_model_config *c, tg_err *e);
int64_t tg_mlp_vae_count(const tg_model_config *c);
void *tg_mlp_vae_build(tg_params *ps, const tg_model_config *c, tg_rng *r);   /* a malloc'd tg_vae_model */
void tg_mlp_vae_free(void *self);
void tg_mlp_vae_posterior(tg_tape *t, void *self, tg_var *x, const tg_tensor *labels, tg_var **mu, tg_var **logvar);
void tg_mlp_vae_prior(tg_tape *t, void *self, int64_t n, const tg_tensor *labels, tg_var **mu, tg_var **logvar);
tg_var *tg_mlp_vae_decode(tg_tape *t, void *self, tg_var *z, const tg_tensor *labels);
void tg_mlp_vae_log_lik_rows(void *self, const tg_tensor *out, const tg_tensor *x, const int64_t *img, int64_t P,
                             double *ll);

/* Every hook but check and loss. */
#define TG_MLP_VAE_HOOKS                                                                                        \
    .count = tg_mlp_vae_count, .build = tg_mlp_vae_build, .free = tg_mlp_vae_free,                                                   \
    .posterior = tg_mlp_vae_posterior, .prior = tg_mlp_vae_prior, .decode = tg_mlp_vae_decode,                  \
    .log_lik_rows = tg_mlp_vae_log_lik_rows

/* A batch's ELBO terms (tg_vae_model_terms) as a model's output with the given
 * loss: terms recon and kl, mean and kl_per_dim set, kl_weight w. */
tg_model_out tg_mlp_vae_out(const tg_vae_model_out *e, tg_var *loss, double w);

/* The ELBO's terms of batch b. */
tg_vae_model_out tg_mlp_vae_terms(tg_tape *t, void *self, const tg_model_batch *b);

#endif
