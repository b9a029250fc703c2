/* iwae.c — the importance-weighted autoencoder (Burda, Grosse &
 * Salakhutdinov, 2016): the VAE's networks trained on the k-sample bound
 *     loss = -sum_b [ logsumexp_i log w_bi - log k ],
 *     log w_bi = log p(x_b | z_bi) + log p(z_bi) - log q(z_bi | x_b),
 *     z_bi = mu_b + sigma_b eps_bi,  i = 1..k  (--k, default 5),
 * which is the ELBO for k = 1 and tightens towards log p(x) as k grows: the
 * gradient weighs each sample by its normalised importance weight, so the
 * encoder may spread its mass and more latent units stay active. At
 * evaluation the model reports this bound as its loss, and the recon and kl of
 * the one-sample ELBO as its terms. tg_model_iwae_bound works for any model
 * with a Gaussian latent and a standard prior (the conv VAE too). */
#include "models/mlp_vae.h"

#include <math.h>

tg_var *tg_model_iwae_bound(tg_tape *t, const tg_model_type *type, void *self, tg_var *x, int64_t k,
                            const tg_tensor *eps, tg_rng *r) {
    char b[96];
    const double half_log_2pi = 0.5 * log(2 * 3.14159265358979323846);
    int64_t B = x->val.shape.d[0], D = x->val.shape.d[1];
    TG_CHECK(k >= 1, "iwae bound: k = %lld samples, need at least 1", (long long)k);
    tg_var *mu, *logvar;
    type->posterior(t, self, x, NULL, &mu, &logvar);                                  /* (B, L) each */
    int64_t L = mu->val.shape.d[1];
    TG_CHECK(!eps || tg_shape_eq(eps->shape, TG_SHAPE(k, B, L)), "iwae bound: eps is %s, want (%lld, %lld, %lld)",
             tg_shape_str(eps->shape, b), (long long)k, (long long)B, (long long)L);
    tg_var *mu_k = tg_expand(t, mu, TG_SHAPE(k, B, L)), *lv_k = tg_expand(t, logvar, TG_SHAPE(k, B, L));
    if (!eps) eps = tg_tensor_normal(tg_tape_arena(t), x->val.dtype, TG_SHAPE(k, B, L), r);
    tg_var *z = tg_reparam(t, mu_k, lv_k, eps);                                        /* (k, B, L) */
    tg_var *logits = type->decode(t, self, tg_reshape(t, z, TG_SHAPE(k * B, L)), NULL);
    logits = tg_reshape(t, logits, TG_SHAPE(k, B, D));
    tg_var *log_px = tg_neg(t, tg_sum_axis(t, tg_bce_logits(t, logits, x), 2, false));  /* (k, B); x broadcast */
    tg_var *log_pz = tg_add_scalar(t, tg_mul_scalar(t, tg_sum_axis(t, tg_square(t, z), 2, false), -0.5),
                                   -half_log_2pi * (double)L);                        /* N(0, I) */
    tg_var *e = tg_leaf(t, (tg_tensor *)eps, false);                                              /* (z - mu) / sigma */
    tg_var *log_qz = tg_add_scalar(t, tg_mul_scalar(t, tg_sum_axis(t, tg_add(t, tg_square(t, e), lv_k), 2, false), -0.5),
                                   -half_log_2pi * (double)L);
    tg_var *log_w = tg_sub(t, tg_add(t, log_px, log_pz), log_qz);                      /* (k, B) */
    tg_var *bound = tg_add_scalar(t, tg_logsumexp_axis(t, log_w, 0, false), -log((double)k));   /* (B) */
    return tg_neg(t, tg_sum(t, bound));
}

static tg_model_out iwae_loss(tg_tape *t, void *self, const tg_model_batch *b) {
    extern const tg_model_type tg_iwae_type;
    tg_var *loss = tg_model_iwae_bound(t, &tg_iwae_type, self, b->x, b->cfg->k, NULL, b->rng);
    if (b->train) return tg_model_out_of(loss, 2, (tg_var *[]){NULL, NULL});   /* the bound alone */
    tg_vae_model_out e = tg_mlp_vae_terms(t, self, b);
    return tg_mlp_vae_out(&e, loss, 1);
}

static int iwae_check(const tg_model_config *c, tg_err *e) {
    if (c->k < 1) {
        tg_err_set(e, "k %lld is out of range [1, 100000]", (long long)c->k);
        return -1;
    }
    if (c->lik != TG_LIK_BERNOULLI) {
        tg_err_set(e, "iwae: the bound is written for the Bernoulli likelihood");
        return -1;
    }
    return tg_mlp_vae_check(c, e);
}

const tg_model_type tg_iwae_type = {
    .name = "iwae", .about = "the IWAE: the VAE's networks on the k-sample importance-weighted bound (--k)",
    .terms = {"recon", "kl"}, TG_MLP_VAE_HOOKS, .check = iwae_check, .loss = iwae_loss};
