/* vae.c — the variational autoencoder (Kingma & Welling, 2014).
 *
 * As a model of the trainer (`--model vae`, models/model.h): the family's
 * MLP encoder and decoder (models/mlp_vae.h), and the negative ELBO
 *     loss = recon + kl,
 * recon = -log p(x | z) summed over pixels, z = mu + sigma eps one sample per
 * image, kl = KL(q(z | x) || N(0, I)) in closed form. beta_vae.c,
 * annealed_vae.c, cvae.c and iwae.c change this one function.
 *
 * Below it, the reference VAE: PyTorch's textbook module as plain C
 * (tg_vae_new, tg_vae_forward), and its importance-weighted bound. */
#include "models/vae.h"
#include "models/mlp_vae.h"

#include <math.h>

static tg_model_out vae_loss(tg_tape *t, void *self, const tg_model_batch *b) {
    tg_vae_model_out e = tg_mlp_vae_terms(t, self, b);
    return tg_mlp_vae_out(&e, tg_add(t, e.recon, e.kl), 1);
}

const tg_model_type tg_vae_type = {
    .name = "vae", .about = "the VAE: recon + kl (the negative ELBO)", .terms = {"recon", "kl"},
    TG_MLP_VAE_HOOKS, .check = tg_mlp_vae_check, .loss = vae_loss};

/* ---------------------------------------------------------------- the reference VAE */

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
    tg_var *h = tg_name(tg_linear_relu(t, &m->fc1, x), "h1");                 /* (B, hidden) */
    o.mu = tg_name(tg_linear_forward(t, &m->fc_mu, h), "mu");                 /* (B, latent) */
    o.logvar = tg_name(tg_linear_forward(t, &m->fc_logvar, h), "logvar");     /* (B, latent) */
    o.z = tg_name(eps ? tg_reparam(t, o.mu, o.logvar, eps) : tg_reparam_sample(t, o.mu, o.logvar, r), "z");
    tg_var *hd = tg_name(tg_linear_relu(t, &m->fc2, o.z), "h3");              /* (B, hidden) */
    o.logits = tg_name(tg_linear_forward(t, &m->fc3, hd), "logits");          /* (B, in) */
    /* = BCE(sigmoid(logits), x), one pass */
    o.bce = tg_name(tg_loss_bce_logits(t, o.logits, x, TG_REDUCE_SUM), "bce");
    o.kl = tg_name(tg_loss_kl_normal(t, o.mu, o.logvar), "kl");
    o.loss = tg_name(tg_add(t, o.bce, o.kl), "loss");
    return o;
}

/* The reference networks as the hooks the IWAE bound (models/iwae.c) needs. */
static void ref_posterior(tg_tape *t, void *self, tg_var *x, const tg_tensor *labels, tg_var **mu, tg_var **logvar) {
    (void)labels;
    const tg_vae *m = self;
    tg_var *h = tg_linear_relu(t, &m->fc1, x);                                /* (B, hidden) */
    *mu = tg_linear_forward(t, &m->fc_mu, h), *logvar = tg_linear_forward(t, &m->fc_logvar, h);
}

static tg_var *ref_decode(tg_tape *t, void *self, tg_var *z, const tg_tensor *labels) {
    (void)labels;
    const tg_vae *m = self;
    return tg_linear_forward(t, &m->fc3, tg_linear_relu(t, &m->fc2, z));
}

tg_var *tg_vae_iwae_loss(tg_tape *t, const tg_vae *m, tg_var *x, int64_t k, const tg_tensor *eps, tg_rng *r) {
    static const tg_model_type ref = {.name = "reference-vae", .posterior = ref_posterior, .decode = ref_decode};
    return tg_model_iwae_bound(t, &ref, (void *)m, x, k, eps, r);
}
