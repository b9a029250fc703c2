/* mlp_vae.c — the VAE family's MLP networks as model hooks (mlp_vae.h). */
#include "models/mlp_vae.h"

#include <math.h>
#include <stdlib.h>

tg_vae_config tg_mlp_vae_config(const tg_model_config *c) {
    tg_vae_config v = tg_vae_config_new(c->rows * c->cols, c->n_hidden, c->hidden, c->latent);
    v.classes = c->classes, v.prior = c->prior, v.lik = c->lik;
    return v;
}

int tg_mlp_vae_check(const tg_model_config *c, tg_err *e) {
    if (c->n_hidden < 1 || c->n_hidden > TG_VAE_MAX_HIDDEN) {
        tg_err_set(e, "hidden: %d layers, expected 1 to %d", c->n_hidden, TG_VAE_MAX_HIDDEN);
        return -1;
    }
    if (c->prior == TG_PRIOR_LEARNED && c->classes == 0) {
        tg_err_set(e, "prior learned needs model cvae");
        return -1;
    }
    return 0;
}

int64_t tg_mlp_vae_count(const tg_model_config *c) {
    tg_vae_config v = tg_mlp_vae_config(c);
    return tg_vae_config_params(&v);
}

void *tg_mlp_vae_build(tg_params *ps, const tg_model_config *c, tg_rng *r) {
    tg_vae_model *m = malloc(sizeof *m);
    TG_CHECK(m, "tg_mlp_vae_build: out of memory");
    tg_vae_config v = tg_mlp_vae_config(c);
    *m = tg_vae_model_new(ps, &v, r);
    return m;
}

void tg_mlp_vae_free(void *self) { free(self); }

void tg_mlp_vae_posterior(tg_tape *t, void *self, tg_var *x, const tg_tensor *labels, tg_var **mu, tg_var **logvar) {
    tg_vae_model_posterior(t, self, x, labels, mu, logvar);
}

void tg_mlp_vae_prior(tg_tape *t, void *self, int64_t n, const tg_tensor *labels, tg_var **mu, tg_var **logvar) {
    tg_vae_model_prior(t, self, n, labels, mu, logvar);
}

tg_var *tg_mlp_vae_decode(tg_tape *t, void *self, tg_var *z, const tg_tensor *labels) {
    return tg_vae_model_decode(t, self, z, labels);
}

void tg_mlp_vae_log_lik_rows(void *self, const tg_tensor *out, const tg_tensor *x, const int64_t *img, int64_t P,
                             double *ll) {
    tg_vae_model_log_lik_rows(self, out, x, img, P, ll);
}

tg_vae_model_out tg_mlp_vae_terms(tg_tape *t, void *self, const tg_model_batch *b) {
    return tg_vae_model_terms(t, self, b->x, b->labels, NULL, b->rng);
}

tg_model_out tg_mlp_vae_out(const tg_vae_model_out *e, tg_var *loss, double w) {
    tg_model_out o = tg_model_out_of(loss, 2, (tg_var *[]){e->recon, e->kl});
    o.kl_weight = w, o.mean = e->mu, o.kl_per_dim = e->kl_per_dim;
    return o;
}

/* The family's evaluation entry points (parts.h), through the model interface. */
static tg_model as_model(const tg_vae_model *m) {
    extern const tg_model_type tg_vae_type, tg_cvae_type;
    tg_model_config c = {.latent = m->cfg.latent, .lik = m->cfg.lik, .classes = m->cfg.classes};
    return (tg_model){.type = m->cfg.classes > 0 ? &tg_cvae_type : &tg_vae_type, .cfg = c, .dtype = m->dtype,
                      .self = (void *)m};
}

void tg_vae_model_log_weight(const tg_vae_model *m, const tg_tensor *x, const tg_tensor *labels,
                             const tg_tensor *eps, double *out) {
    tg_model mm = as_model(m);
    tg_model_log_weight(&mm, x, labels, eps, out);
}

void tg_vae_model_iw_logpx(const tg_vae_model *m, const tg_tensor *x, const tg_tensor *labels, int64_t k,
                           int64_t chunk_rows, tg_rng *r, double *out) {
    tg_model mm = as_model(m);
    tg_model_iw_logpx(&mm, x, labels, k, chunk_rows, r, out);
}
