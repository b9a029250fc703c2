/*
 * vae.h — the reference variational autoencoder (Kingma & Welling, 2014), as
 * PyTorch's textbook example: encoder in -> hidden (ReLU) -> mu, logvar
 * (latent each); z = mu + exp(logvar / 2) eps; decoder latent -> hidden
 * (ReLU) -> in (sigmoid). Parameter names and layouts are the PyTorch
 * module's: fc1.weight (hidden, in), fc1.bias, fc_mu.*, fc_logvar.*, fc2.*, fc3.*.
 *
 *     tg_vae vae = tg_vae_new(ps, 784, 400, 20, &rng);
 *     tg_vae_out o = tg_vae_forward(t, &vae, x, NULL, &rng);   // x (B, 784) in [0, 1]
 *     tg_backward(t, o.loss);                                    // loss = bce + kl, summed over the batch
 */
#ifndef TG_VAE_H
#define TG_VAE_H

#include "nn/nn.h"

typedef struct {
    tg_linear fc1, fc_mu, fc_logvar, fc2, fc3;
    int64_t in, hidden, latent;
} tg_vae;

typedef struct {
    tg_var *mu, *logvar;  /* (B, latent) */
    tg_var *z;            /* (B, latent) the sample decoded */
    tg_var *logits;       /* (B, in) decoder output; the Bernoulli means are sigmoid(logits) */
    tg_var *bce, *kl;     /* scalars: BCE summed over pixels and batch (sigmoid and BCE fused,
                           * tg_bce_logits); KL summed over latents and batch */
    tg_var *loss;         /* bce + kl: the negative ELBO of the batch, in nats */
} tg_vae_out;

tg_vae tg_vae_new(tg_params *ps, int64_t in, int64_t hidden, int64_t latent, tg_rng *r);
/* eps (B, latent) if given, else drawn from r. */
tg_vae_out tg_vae_forward(tg_tape *t, const tg_vae *m, tg_var *x, const tg_tensor *eps, tg_rng *r);

/* The importance-weighted bound (Burda, Grosse & Salakhutdinov, 2016) of the
 * same networks, negated and summed over the batch, in nats:
 *     -sum_b [ logsumexp_i log w_bi - log k ],
 *     log w_bi = log p(x_b | z_bi) + log p(z_bi) - log q(z_bi | x_b),
 *     z_bi = mu_b + exp(logvar_b / 2) eps_bi,  i = 1..k,
 * with log q(z | x) = -1/2 sum_l (eps_l^2 + logvar_l + log 2 pi) at the
 * drawn z, log p(z) = -1/2 sum_l (z_l^2 + log 2 pi) and log p(x | z) = -BCE
 * of the decoder's logits. k = 1 is a one-sample ELBO (its KL sampled, not
 * in closed form); the bound tightens as k grows. It is tg_model_iwae_bound
 * (models/iwae.c, composed from the ops) on these networks. eps (k, B,
 * latent) if given, else drawn from r. */
tg_var *tg_vae_iwae_loss(tg_tape *t, const tg_vae *m, tg_var *x, int64_t k, const tg_tensor *eps, tg_rng *r);

#endif
