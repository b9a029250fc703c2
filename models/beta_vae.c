/* beta_vae.c — the β-VAE (Higgins et al., 2017): the VAE (vae.c) with its
 * KL weighted by β (--beta),
 *     loss = recon + beta * kl.
 * β > 1 presses the posterior towards the prior: a more factorised latent,
 * blurrier reconstructions; β < 1 the reverse. At evaluation the model
 * reports the ELBO itself (β = 1), so its figures compare with the VAE's. */
#include "models/mlp_vae.h"

static tg_model_out beta_vae_loss(tg_tape *t, void *self, const tg_model_batch *b) {
    double beta = b->train ? b->cfg->beta : 1;
    tg_vae_model_out e = tg_mlp_vae_terms(t, self, b);
    return tg_mlp_vae_out(&e, tg_add(t, e.recon, tg_mul_scalar(t, e.kl, beta)), beta);
}

const tg_model_type tg_beta_vae_type = {
    .name = "beta-vae", .about = "the beta-VAE: recon + beta * kl (--beta)", .terms = {"recon", "kl"},
    TG_MLP_VAE_HOOKS, .check = tg_mlp_vae_check, .loss = beta_vae_loss};
