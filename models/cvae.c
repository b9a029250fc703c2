/* cvae.c — the conditional VAE (Sohn et al., 2015): the encoder sees
 * [x, onehot(y)], the decoder [z, onehot(y)], and the prior is N(0, I) or,
 * with --prior learned, p(z | y) = N(mu_p(y), exp(logvar_p(y))) from one
 * Linear of onehot(y) (parts.h). The objective is the VAE's with labels,
 *     loss = recon + KL(q(z | x, y) || p(z | y)),
 * and `vae sample --label C` draws images of class C. */
#include "models/mlp_vae.h"

static tg_model_out cvae_loss(tg_tape *t, void *self, const tg_model_batch *b) {
    tg_vae_model_out e = tg_mlp_vae_terms(t, self, b);   /* b->labels go to encoder, decoder and prior */
    return tg_mlp_vae_out(&e, tg_add(t, e.recon, e.kl), 1);
}

const tg_model_type tg_cvae_type = {
    .name = "cvae", .about = "the conditional VAE: x and z with the label y (--prior standard|learned)",
    .terms = {"recon", "kl"}, .conditional = true, TG_MLP_VAE_HOOKS, .check = tg_mlp_vae_check, .loss = cvae_loss};
