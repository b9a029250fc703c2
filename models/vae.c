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

tg_var *tg_vae_iwae_loss(tg_tape *t, const tg_vae *m, tg_var *x, int64_t k, const tg_tensor *eps, tg_rng *r) {
    char b[96];
    int64_t B = x->val.shape.d[0], L = m->latent;
    TG_CHECK(k >= 1, "tg_vae_iwae_loss: k = %lld samples, need at least 1", (long long)k);
    TG_CHECK(!eps || tg_shape_eq(eps->shape, TG_SHAPE(k, B, L)), "tg_vae_iwae_loss: eps is %s, want (%lld, %lld, %lld)",
             tg_shape_str(eps->shape, b), (long long)k, (long long)B, (long long)L);
    tg_var *h = tg_linear_relu(t, &m->fc1, x);                                       /* (B, hidden) */
    tg_var *mu = tg_linear_forward(t, &m->fc_mu, h), *logvar = tg_linear_forward(t, &m->fc_logvar, h);
    tg_var *mu_k = tg_expand(t, mu, TG_SHAPE(k, B, L)), *lv_k = tg_expand(t, logvar, TG_SHAPE(k, B, L));
    if (!eps) eps = tg_tensor_normal(tg_tape_arena(t), x->val.dtype, TG_SHAPE(k, B, L), r);
    tg_var *z = tg_reparam(t, mu_k, lv_k, eps);                                      /* (k, B, L) */
    tg_var *logits = tg_linear_forward(t, &m->fc3, tg_linear_relu(t, &m->fc2, z)); /* (k, B, in) */
    tg_var *log_px = tg_neg(t, tg_sum_axis(t, tg_bce_logits(t, logits, x), 2, false));   /* (k, B); x broadcast */
    const double half_log_2pi = 0.5 * log(2 * 3.14159265358979323846);
    tg_var *log_pz = tg_add_scalar(t, tg_mul_scalar(t, tg_sum_axis(t, tg_square(t, z), 2, false), -0.5),
                                   -half_log_2pi * (double)L);
    tg_var *e = tg_leaf(t, (tg_tensor *)eps, false);
    tg_var *log_qz = tg_add_scalar(t, tg_mul_scalar(t, tg_sum_axis(t, tg_add(t, tg_square(t, e), lv_k), 2, false), -0.5),
                                   -half_log_2pi * (double)L);
    tg_var *log_w = tg_sub(t, tg_add(t, log_px, log_pz), log_qz);                    /* (k, B) */
    tg_var *bound = tg_add_scalar(t, tg_logsumexp_axis(t, log_w, 0, false), -log((double)k));   /* (B) */
    return tg_neg(t, tg_sum(t, bound));
}
