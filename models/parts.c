/* parts.c — the VAE family's MLP networks, likelihoods, KL schedules and
 * active units (parts.h), composed from nn layers and autograd ops. */
#include "models/parts.h"
#include "models/model.h"

#include "tensor/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LOG_2PI 1.8378770664093454836

/* ---------------------------------------------------------------- config */

tg_vae_config tg_vae_config_new(int64_t in, int n_hidden, const int64_t *hidden, int64_t latent) {
    TG_CHECK(n_hidden >= 1 && n_hidden <= TG_VAE_MAX_HIDDEN, "tg_vae_config_new: %d hidden layers, want 1..%d",
             n_hidden, TG_VAE_MAX_HIDDEN);
    tg_vae_config c = {.in = in, .n_hidden = n_hidden, .latent = latent, .lik = TG_LIK_BERNOULLI,
                       .prior = TG_PRIOR_STANDARD, .beta = 1.0, .gauss_logvar = 0.0};
    for (int i = 0; i < n_hidden; i++) c.hidden[i] = hidden[i];
    return c;
}

int tg_vae_parse_hidden(const char *s, int64_t hidden[TG_VAE_MAX_HIDDEN]) {
    int n = 0;
    if (!s || !*s) return -1;
    for (;;) {
        if (*s < '0' || *s > '9') return -1;
        int64_t v = 0;
        while (*s >= '0' && *s <= '9') {
            v = v * 10 + (*s++ - '0');
            if (v > (int64_t)1 << 30) return -1;
        }
        if (v <= 0 || n == TG_VAE_MAX_HIDDEN) return -1;
        hidden[n++] = v;
        if (*s == '\0') return n;
        if (*s++ != ',') return -1;
    }
}

/* ---------------------------------------------------------------- construction */

static void check_config(const tg_vae_config *c) {
    TG_CHECK(c->in > 0 && c->latent > 0, "tg_vae_model_new: in %lld and latent %lld must be positive",
             (long long)c->in, (long long)c->latent);
    TG_CHECK(c->n_hidden >= 1 && c->n_hidden <= TG_VAE_MAX_HIDDEN, "tg_vae_model_new: %d hidden layers, want 1..%d",
             c->n_hidden, TG_VAE_MAX_HIDDEN);
    for (int i = 0; i < c->n_hidden; i++)
        TG_CHECK(c->hidden[i] > 0, "tg_vae_model_new: hidden layer %d has size %lld", i + 1, (long long)c->hidden[i]);
    TG_CHECK(c->classes >= 0, "tg_vae_model_new: %lld classes", (long long)c->classes);
    TG_CHECK(c->prior == TG_PRIOR_STANDARD || c->classes > 0,
             "tg_vae_model_new: a learned prior p(z|y) needs classes > 0 (a CVAE)");
    TG_CHECK(c->lik == TG_LIK_BERNOULLI || c->lik == TG_LIK_GAUSSIAN, "tg_vae_model_new: unknown likelihood %d", c->lik);
    TG_CHECK(c->beta >= 0 && isfinite(c->beta), "tg_vae_model_new: beta %g must be finite and >= 0 "
             "(did you build the config with tg_vae_config_new?)", c->beta);
}

tg_vae_model tg_vae_model_new(tg_params *ps, const tg_vae_config *c, tg_rng *r) {
    check_config(c);
    tg_vae_model m = {.cfg = *c, .dtype = ps->dtype};
    int n = c->n_hidden;
    bool one = n == 1;
    char name[32];
    int64_t prev = c->in + c->classes;
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, one ? "fc1" : "enc%d", i + 1);
        m.enc[i] = tg_linear_new(ps, name, prev, c->hidden[i], r);
        prev = c->hidden[i];
    }
    m.fc_mu = tg_linear_new(ps, "fc_mu", prev, c->latent, r);
    m.fc_logvar = tg_linear_new(ps, "fc_logvar", prev, c->latent, r);
    prev = c->latent + c->classes;
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, one ? "fc2" : "dec%d", i + 1);
        m.dec[i] = tg_linear_new(ps, name, prev, c->hidden[n - 1 - i], r);
        prev = c->hidden[n - 1 - i];
    }
    m.out = tg_linear_new(ps, one ? "fc3" : "out", prev, c->in, r);
    if (c->prior == TG_PRIOR_LEARNED) m.prior = tg_linear_new(ps, "prior", c->classes, 2 * c->latent, r);
    if (c->lik == TG_LIK_GAUSSIAN && c->gauss_learn_logvar) {
        m.dec_logvar = tg_params_add(ps, "dec_logvar", TG_SHAPE(c->in));
        tg_tensor_fill(&m.dec_logvar->val, c->gauss_logvar);
    }
    return m;
}

int64_t tg_vae_config_params(const tg_vae_config *c) {
    check_config(c);
    /* Each Linear in -> out has in * out + out values; sizes are below 2^31, so each term fits. */
    double n = 0;
    int64_t prev = c->in + c->classes;
    for (int i = 0; i < c->n_hidden; i++) n += (double)(prev + 1) * (double)c->hidden[i], prev = c->hidden[i];
    n += 2.0 * (double)(prev + 1) * (double)c->latent;
    prev = c->latent + c->classes;
    for (int i = c->n_hidden - 1; i >= 0; i--) n += (double)(prev + 1) * (double)c->hidden[i], prev = c->hidden[i];
    n += (double)(prev + 1) * (double)c->in;
    if (c->prior == TG_PRIOR_LEARNED) n += (double)(c->classes + 1) * 2.0 * (double)c->latent;
    if (c->lik == TG_LIK_GAUSSIAN && c->gauss_learn_logvar) n += (double)c->in;
    return n < 0x1p62 ? (int64_t)n : -1;
}

int tg_vae_model_slots(tg_vae_model *m, tg_var **slots[], int cap) {
    int k = 0;
#define SLOT(p) do { TG_CHECK(k < cap, "tg_vae_model_slots: more than %d parameters", cap); slots[k++] = &(p); } while (0)
#define SLOT_LINEAR(l) do { SLOT((l).weight); SLOT((l).bias); } while (0)
    for (int i = 0; i < m->cfg.n_hidden; i++) SLOT_LINEAR(m->enc[i]);
    SLOT_LINEAR(m->fc_mu);
    SLOT_LINEAR(m->fc_logvar);
    for (int i = 0; i < m->cfg.n_hidden; i++) SLOT_LINEAR(m->dec[i]);
    SLOT_LINEAR(m->out);
    if (m->cfg.prior == TG_PRIOR_LEARNED) SLOT_LINEAR(m->prior);
    if (m->dec_logvar) SLOT(m->dec_logvar);
#undef SLOT_LINEAR
#undef SLOT
    return k;
}

/* ---------------------------------------------------------------- pieces */

/* labels (n) of any dtype -> (n, K) one-hot in the model's dtype. */
static tg_var *one_hot(tg_tape *t, const tg_vae_model *m, int64_t n, const tg_tensor *labels) {
    char b[96];
    TG_CHECK(labels, "vae model: a CVAE (%lld classes) needs labels", (long long)m->cfg.classes);
    TG_CHECK(labels->shape.ndim == 1 && labels->numel == n, "vae model: labels %s, want (%lld)",
             tg_shape_str(labels->shape, b), (long long)n);
    tg_tensor *lab = labels->dtype == m->dtype ? (tg_tensor *)labels : tg_tensor_cast(tg_tape_arena(t), labels, m->dtype);
    return tg_one_hot(t, tg_leaf(t, lab, false), m->cfg.classes);
}

static void check_labels(const tg_vae_model *m, const tg_tensor *labels) {
    TG_CHECK(m->cfg.classes > 0 || !labels, "vae model: labels given to an unconditional VAE");
}

/* [x, onehot] -> mu, logvar (n, L) */
static void encode(tg_tape *t, const tg_vae_model *m, tg_var *x, tg_var *oh, tg_var **mu, tg_var **logvar) {
    char b[96];
    TG_CHECK(x->val.shape.ndim == 2 && x->val.shape.d[1] == m->cfg.in, "vae model: x %s, want (B, %lld)",
             tg_shape_str(x->val.shape, b), (long long)m->cfg.in);
    tg_var *h = oh ? tg_concat(t, x, oh, 1) : x;                       /* (B, D [+K]) */
    for (int i = 0; i < m->cfg.n_hidden; i++) h = tg_linear_relu(t, &m->enc[i], h);   /* (B, H_i) */
    *mu = tg_name(tg_linear_forward(t, &m->fc_mu, h), "mu");           /* (B, L) */
    *logvar = tg_name(tg_linear_forward(t, &m->fc_logvar, h), "logvar");   /* (B, L) */
}

static tg_var *decode(tg_tape *t, const tg_vae_model *m, tg_var *z, tg_var *oh) {
    tg_var *h = oh ? tg_concat(t, z, oh, 1) : z;                       /* (B, L [+K]) */
    for (int i = 0; i < m->cfg.n_hidden; i++) h = tg_linear_relu(t, &m->dec[i], h);
    return tg_linear_forward(t, &m->out, h);                           /* (B, D) */
}

/* Learned prior: onehot (n, K) -> mu_p, logvar_p (n, L). */
static void prior_net(tg_tape *t, const tg_vae_model *m, tg_var *oh, tg_var **mu_p, tg_var **logvar_p) {
    int64_t L = m->cfg.latent;
    tg_var *p = tg_linear_forward(t, &m->prior, oh);                   /* (n, 2L) */
    *mu_p = tg_narrow(t, p, 1, 0, L);
    *logvar_p = tg_narrow(t, p, 1, L, L);
}

/* Negative log-likelihood of x (B, D) under the decoder output, summed. */
static tg_var *nll(tg_tape *t, const tg_vae_model *m, tg_var *out, tg_var *x) {
    if (m->cfg.lik == TG_LIK_BERNOULLI) return tg_loss_bce_logits(t, out, x, TG_REDUCE_SUM);
    double n = (double)x->val.numel;
    tg_var *d2 = tg_square(t, tg_sub(t, out, x));                      /* (B, D) */
    if (m->dec_logvar) {
        tg_var *inv = tg_exp(t, tg_neg(t, m->dec_logvar));             /* (D) e^{-v} */
        tg_var *q = tg_add(t, tg_mul(t, d2, inv), m->dec_logvar);      /* (B, D) */
        return tg_add_scalar(t, tg_mul_scalar(t, tg_sum(t, q), 0.5), 0.5 * n * LOG_2PI);
    }
    double v = m->cfg.gauss_logvar;
    tg_var *s = tg_mul_scalar(t, tg_sum(t, d2), 0.5 * exp(-v));
    return tg_add_scalar(t, s, 0.5 * n * (v + LOG_2PI));
}

/* ---------------------------------------------------------------- KL */

/* ---------------------------------------------------------------- forward */

tg_vae_model_out tg_vae_model_terms(tg_tape *t, const tg_vae_model *m, tg_var *x, const tg_tensor *labels,
                                    const tg_tensor *eps, tg_rng *r) {
    check_labels(m, labels);
    TG_CHECK(eps || r, "tg_vae_model_forward: give eps or an rng");
    tg_vae_model_out o = {.kl_weight = 1};
    int64_t B = x->val.shape.d[0];
    tg_var *oh = m->cfg.classes > 0 ? one_hot(t, m, B, labels) : NULL;   /* (B, K) */
    encode(t, m, x, oh, &o.mu, &o.logvar);
    o.z = tg_name(eps ? tg_reparam(t, o.mu, o.logvar, eps) : tg_reparam_sample(t, o.mu, o.logvar, r), "z");
    o.logits = tg_name(decode(t, m, o.z, oh), "logits");
    o.recon = nll(t, m, o.logits, x);
    if (m->cfg.prior == TG_PRIOR_LEARNED) prior_net(t, m, oh, &o.mu_p, &o.logvar_p);
    tg_var *kl = tg_kl_diag_normal(t, o.mu, o.logvar, o.mu_p, o.logvar_p);   /* (B, L) */
    o.kl = tg_sum(t, kl);
    o.kl_per_dim = tg_sum_axis(t, kl, 0, false);
    return o;
}

tg_vae_model_out tg_vae_model_forward(tg_tape *t, const tg_vae_model *m, tg_var *x, const tg_tensor *labels,
                                      const tg_tensor *eps, tg_rng *r, double anneal) {
    tg_vae_model_out o = tg_vae_model_terms(t, m, x, labels, eps, r);
    o.kl_weight = m->cfg.beta * anneal;
    o.loss = o.kl_weight == 1.0 ? tg_add(t, o.recon, o.kl) : tg_add(t, o.recon, tg_mul_scalar(t, o.kl, o.kl_weight));
    return o;
}

void tg_vae_model_posterior(tg_tape *t, const tg_vae_model *m, tg_var *x, const tg_tensor *labels, tg_var **mu,
                            tg_var **logvar) {
    check_labels(m, labels);
    tg_var *oh = m->cfg.classes > 0 ? one_hot(t, m, x->val.shape.d[0], labels) : NULL;
    encode(t, m, x, oh, mu, logvar);
}

void tg_vae_model_log_lik_rows(const tg_vae_model *m, const tg_tensor *out, const tg_tensor *x, const int64_t *img,
                               int64_t P, double *ll) {
    const int64_t D = m->cfg.in;
    if (m->cfg.lik == TG_LIK_BERNOULLI) {
        tg_model_bernoulli_log_lik_rows(out, x, img, P, ll);
        return;
    }
    for (int64_t p = 0; p < P; p++) {
        double lpx = 0;
        for (int64_t d = 0; d < D; d++) {
            double v = m->dec_logvar ? tg_tensor_get(&m->dec_logvar->val, d) : m->cfg.gauss_logvar;
            double e = tg_tensor_get(x, img[p] * D + d) - tg_tensor_get(out, p * D + d);
            lpx -= 0.5 * (LOG_2PI + v + e * e * exp(-v));
        }
        ll[p] = lpx;
    }
}

void tg_vae_model_prior(tg_tape *t, const tg_vae_model *m, int64_t n, const tg_tensor *labels,
                        tg_var **mu_p, tg_var **logvar_p) {
    check_labels(m, labels);
    if (m->cfg.prior == TG_PRIOR_LEARNED) {
        prior_net(t, m, one_hot(t, m, n, labels), mu_p, logvar_p);
        return;
    }
    if (m->cfg.classes > 0) one_hot(t, m, n, labels);   /* validates the labels */
    tg_arena *a = tg_tape_arena(t);
    *mu_p = tg_leaf(t, tg_tensor_zeros(a, m->dtype, TG_SHAPE(n, m->cfg.latent)), false);
    *logvar_p = tg_leaf(t, tg_tensor_zeros(a, m->dtype, TG_SHAPE(n, m->cfg.latent)), false);
}

tg_var *tg_vae_model_decode(tg_tape *t, const tg_vae_model *m, tg_var *z, const tg_tensor *labels) {
    char b[96];
    check_labels(m, labels);
    TG_CHECK(z->val.shape.ndim == 2 && z->val.shape.d[1] == m->cfg.latent, "tg_vae_model_decode: z %s, want (n, %lld)",
             tg_shape_str(z->val.shape, b), (long long)m->cfg.latent);
    tg_var *oh = m->cfg.classes > 0 ? one_hot(t, m, z->val.shape.d[0], labels) : NULL;
    return decode(t, m, z, oh);
}

tg_var *tg_vae_model_sample(tg_tape *t, const tg_vae_model *m, int64_t n, const tg_tensor *labels, tg_rng *r) {
    tg_var *mu_p, *logvar_p;
    tg_vae_model_prior(t, m, n, labels, &mu_p, &logvar_p);
    tg_var *z = tg_reparam_sample(t, mu_p, logvar_p, r);   /* N(0, I) when mu_p = logvar_p = 0 */
    return tg_vae_model_decode(t, m, z, labels);
}

tg_var *tg_vae_model_sample_mean(tg_tape *t, const tg_vae_model *m, int64_t n, const tg_tensor *labels) {
    tg_var *mu_p, *logvar_p;
    tg_vae_model_prior(t, m, n, labels, &mu_p, &logvar_p);
    return tg_vae_model_decode(t, m, mu_p, labels);
}

/* ---------------------------------------------------------------- KL schedules */

double tg_kl_weight(const tg_kl_schedule *s, int64_t step, int64_t epoch) {
    switch (s->kind) {
    case TG_KL_CONSTANT:
        return 1.0;
    case TG_KL_LINEAR: {
        int64_t tt = s->by_epoch ? epoch : step;
        if (s->warmup <= 0 || tt >= s->warmup) return 1.0;
        return tt <= 0 ? 0.0 : (double)tt / (double)s->warmup;
    }
    case TG_KL_CYCLICAL: {
        TG_CHECK(s->cycles >= 1 && s->total_steps >= 1 && s->ratio > 0 && s->ratio <= 1,
                 "tg_kl_weight: cyclical needs cycles >= 1 (%d), total_steps >= 1 (%lld), ratio in (0, 1] (%g)",
                 s->cycles, (long long)s->total_steps, s->ratio);
        if (step < 0) return 0.0;
        if (step >= s->total_steps) return 1.0;
        /* Cycle length total / C; position within the cycle, in units of
         * 1 / total of a cycle, in exact integer arithmetic. */
        int64_t scaled = step * s->cycles;
        int64_t pos = scaled % s->total_steps;
        double tau = (double)pos / (double)s->total_steps;
        return fmin(1.0, tau / s->ratio);
    }
    }
    tg_die(__FILE__, __LINE__, "tg_kl_weight: unknown schedule kind %d", (int)s->kind);
}

/* ---------------------------------------------------------------- active units */

tg_active_units *tg_active_units_new(int64_t latent) {
    TG_CHECK(latent > 0, "tg_active_units_new: latent %lld", (long long)latent);
    tg_active_units *a = calloc(1, sizeof *a);
    TG_CHECK(a, "tg_active_units_new: out of memory");
    a->latent = latent;
    a->mean = calloc((size_t)latent, sizeof(double));
    a->m2 = calloc((size_t)latent, sizeof(double));
    TG_CHECK(a->mean && a->m2, "tg_active_units_new: out of memory");
    return a;
}

void tg_active_units_add(tg_active_units *a, const tg_tensor *mu) {
    char b[96];
    TG_CHECK(mu->shape.ndim == 2 && mu->shape.d[1] == a->latent, "tg_active_units_add: mu %s, want (B, %lld)",
             tg_shape_str(mu->shape, b), (long long)a->latent);
    int64_t B = mu->shape.d[0], L = a->latent;
    if (B == 0) return;
    for (int64_t l = 0; l < L; l++) {
        double mb = 0, m2b = 0;   /* the batch's mean and squared deviations, two passes */
        for (int64_t i = 0; i < B; i++) mb += tg_tensor_get(mu, i * L + l);
        mb /= (double)B;
        for (int64_t i = 0; i < B; i++) {
            double d = tg_tensor_get(mu, i * L + l) - mb;
            m2b += d * d;
        }
        /* Chan et al.: merge (n, mean, m2) with (B, mb, m2b). */
        double n = (double)a->n, nb = (double)B, delta = mb - a->mean[l];
        a->mean[l] += delta * nb / (n + nb);
        a->m2[l] += m2b + delta * delta * n * nb / (n + nb);
    }
    a->n += B;
}

int64_t tg_active_units_count(const tg_active_units *a, double threshold, double *var) {
    int64_t count = 0;
    for (int64_t l = 0; l < a->latent; l++) {
        double v = a->n > 1 ? a->m2[l] / (double)(a->n - 1) : 0.0;
        if (var) var[l] = v;
        if (v > threshold) count++;
    }
    return count;
}

void tg_active_units_free(tg_active_units *a) {
    if (!a) return;
    free(a->mean), free(a->m2), free(a);
}

