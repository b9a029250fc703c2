/* vae.c — the reference VAE, composed from nn layers and autograd ops. */
#include "models/vae.h"

tg_vae tg_vae_new(tg_params *ps, int64_t in, int64_t hidden, int64_t latent, tg_rng *r) {
    tg_vae m = {.in = in, .hidden = hidden, .latent = latent};
    m.fc1 = tg_linear_new(ps, "fc1", in, hidden, r);
    m.fc_mu = tg_linear_new(ps, "fc_mu", hidden, latent, r);
    m.fc_logvar = tg_linear_new(ps, "fc_logvar", hidden, latent, r);
    m.fc2 = tg_linear_new(ps, "fc2", latent, hidden, r);
    m.fc3 = tg_linear_new(ps, "fc3", hidden, in, r);
    return m;
}

tg_vae_out tg_vae_forward(tg_tape *t, const tg_vae *m, tg_var *x, const tg_tensor *eps, tg_rng *r) {
    tg_vae_out o;
    tg_var *h = tg_linear_relu(t, &m->fc1, x);                                /* (B, hidden) */
    o.mu = tg_linear_forward(t, &m->fc_mu, h);                                /* (B, latent) */
    o.logvar = tg_linear_forward(t, &m->fc_logvar, h);                        /* (B, latent) */
    o.z = eps ? tg_reparam(t, o.mu, o.logvar, eps) : tg_reparam_sample(t, o.mu, o.logvar, r);
    tg_var *hd = tg_linear_relu(t, &m->fc2, o.z);                            /* (B, hidden) */
    o.logits = tg_linear_forward(t, &m->fc3, hd);                             /* (B, in) */
    o.bce = tg_loss_bce_logits(t, o.logits, x, TG_REDUCE_SUM);   /* = BCE(sigmoid(logits), x), one pass */
    o.kl = tg_loss_kl_normal(t, o.mu, o.logvar);
    o.loss = tg_add(t, o.bce, o.kl);
    return o;
}
