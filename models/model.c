/* model.c — the model interface (model.h): the registry, and what every
 * Gaussian-latent model gets from its posterior, prior and decoder: encoding,
 * sampling, the IWAE bound and the importance-sampled log-likelihood. */
#include "models/model.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LOG_2PI 1.8378770664093454836

/* ---------------------------------------------------------------- registry */

extern const tg_model_type tg_vae_type, tg_beta_vae_type, tg_annealed_vae_type, tg_cvae_type, tg_iwae_type,
    tg_conv_vae_type, tg_vq_vae_type;

#define MAX_TYPES 32
static const tg_model_type *types[MAX_TYPES] = {&tg_vae_type,     &tg_beta_vae_type,  &tg_annealed_vae_type,
                                                &tg_cvae_type,    &tg_iwae_type,      &tg_conv_vae_type,
                                                &tg_vq_vae_type};
static int n_types = 7;

const tg_model_type *tg_model_find(const char *name) {
    for (int i = 0; name && i < n_types; i++)
        if (!strcmp(types[i]->name, name)) return types[i];
    return NULL;
}

void tg_model_register(const tg_model_type *type) {
    TG_CHECK(type && type->name && type->build && type->loss && type->decode && (type->posterior || type->sample),
             "tg_model_register: a type needs a name, build, loss, decode, and posterior or sample");
    TG_CHECK(!tg_model_find(type->name), "tg_model_register: the name \"%s\" is taken", type->name);
    TG_CHECK(n_types < MAX_TYPES, "tg_model_register: more than %d model types", MAX_TYPES);
    types[n_types++] = type;
}

const char *tg_model_names(void) {
    static char buf[1024];
    size_t n = 0;
    for (int i = 0; i < n_types && n < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i == 0 ? "" : i == n_types - 1 ? " or " : ", ",
                              types[i]->name);
    return buf;
}

int tg_model_n_terms(const tg_model_type *type) {
    int n = 0;
    while (n < TG_MODEL_MAX_TERMS && type->terms[n]) n++;
    return n;
}

tg_model_out tg_model_out_of(tg_var *loss, int n, tg_var *const terms[]) {
    TG_CHECK(n >= 0 && n <= TG_MODEL_MAX_TERMS, "tg_model_out_of: %d terms, at most %d", n, TG_MODEL_MAX_TERMS);
    tg_model_out o = {.loss = loss, .n_terms = n, .kl_weight = 1};
    for (int i = 0; i < n; i++) o.term[i] = terms[i];
    return o;
}

/* ---------------------------------------------------------------- a model */

tg_model tg_model_new(const tg_model_type *type, tg_params *ps, const tg_model_config *cfg, tg_rng *r) {
    tg_err e = {0};
    if (type->check && type->check(cfg, &e) != 0) tg_die(__FILE__, __LINE__, "%s: %s", type->name, e.msg);
    tg_model m = {.type = type, .cfg = *cfg, .dtype = ps->dtype};
    m.self = type->build(ps, cfg, r);
    return m;
}

void tg_model_free(tg_model *m) {
    if (m->self && m->type->free) m->type->free(m->self);
    m->self = NULL;
}

tg_model_out tg_model_loss(tg_tape *t, const tg_model *m, const tg_model_batch *b) {
    TG_CHECK(!m->type->conditional || b->labels, "%s: a conditional model needs labels", m->type->name);
    tg_model_batch bc = *b;
    bc.cfg = &m->cfg;
    tg_model_out o = m->type->loss(t, m->self, &bc);
    TG_CHECK(o.n_terms == tg_model_n_terms(m->type), "%s: loss gave %d terms, the type names %d", m->type->name,
             o.n_terms, tg_model_n_terms(m->type));
    /* names for tg_tape_print / tg_tape_dot, where the model gave none */
    for (int i = 0; i < o.n_terms; i++)
        if (o.term[i] && !o.term[i]->name) tg_name(o.term[i], m->type->terms[i]);   /* a term may be NULL */
    if (!o.loss->name) tg_name(o.loss, "loss");
    return o;
}

bool tg_model_gaussian(const tg_model *m) { return m->type->posterior != NULL; }

tg_var *tg_model_encode(tg_tape *t, const tg_model *m, tg_var *x, const tg_tensor *labels) {
    if (m->type->encode) return m->type->encode(t, m->self, x, labels);
    tg_var *mu, *logvar;
    m->type->posterior(t, m->self, x, labels, &mu, &logvar);
    return mu;
}

tg_var *tg_model_decode(tg_tape *t, const tg_model *m, tg_var *z, const tg_tensor *labels) {
    return m->type->decode(t, m->self, z, labels);
}

/* p(z | y)'s parameters for n rows: the model's, or N(0, I) as constants. */
static void prior_of(tg_tape *t, const tg_model *m, int64_t n, const tg_tensor *labels, tg_var **mu, tg_var **lv) {
    if (m->type->prior) {
        m->type->prior(t, m->self, n, labels, mu, lv);
        return;
    }
    tg_arena *a = tg_tape_arena(t);
    *mu = tg_leaf(t, tg_tensor_zeros(a, m->dtype, TG_SHAPE(n, m->cfg.latent)), false);
    *lv = tg_leaf(t, tg_tensor_zeros(a, m->dtype, TG_SHAPE(n, m->cfg.latent)), false);
}

tg_var *tg_model_sample(tg_tape *t, const tg_model *m, int64_t n, const tg_tensor *labels, double temperature,
                        tg_rng *r) {
    TG_CHECK(isfinite(temperature) && temperature >= 0, "tg_model_sample: temperature %g, want finite and >= 0",
             temperature);
    if (m->type->sample) return m->type->sample(t, m->self, n, labels, temperature, r);
    tg_var *mu_p, *lv_p, *z = NULL;
    prior_of(t, m, n, labels, &mu_p, &lv_p);
    if (temperature == 0) {
        z = mu_p;   /* no draws: the same images for every seed */
    } else {
        /* z = mu_p + exp(lv_p / 2) (T eps), eps drawn as tg_reparam_sample does. Saturated for
         * float32 so the conversion is defined; a product beyond FLT_MAX is inf. */
        tg_tensor *eps = tg_tensor_normal(tg_tape_arena(t), m->dtype, TG_SHAPE(n, m->cfg.latent), r);
        if (temperature != 1)
            tg_tensor_mul_scalar(eps, eps, m->dtype == TG_F32 && temperature > FLT_MAX ? FLT_MAX : temperature);
        z = tg_reparam(t, mu_p, lv_p, eps);
    }
    return m->type->decode(t, m->self, z, labels);
}

tg_var *tg_model_pixels(tg_tape *t, const tg_model *m, tg_var *out) {
    return m->cfg.lik == TG_LIK_BERNOULLI ? tg_sigmoid(t, out) : tg_clamp(t, out, 0, 1);
}

tg_model_out tg_model_elbo(tg_tape *t, const tg_model_type *type, void *self, const tg_model_batch *b) {
    tg_var *mu, *logvar, *mu_p = NULL, *lv_p = NULL;
    type->posterior(t, self, b->x, b->labels, &mu, &logvar);                   /* (B, L) */
    tg_var *z = b->eps ? tg_reparam(t, mu, logvar, b->eps) : tg_reparam_sample(t, mu, logvar, b->rng);
    tg_var *recon = tg_loss_bce_logits(t, type->decode(t, self, z, b->labels), b->x, TG_REDUCE_SUM);
    if (type->prior) type->prior(t, self, b->x->val.shape.d[0], b->labels, &mu_p, &lv_p);
    tg_var *kl = tg_kl_diag_normal(t, mu, logvar, mu_p, lv_p);                 /* (B, L) */
    tg_var *kl_sum = tg_sum(t, kl);
    tg_model_out o = tg_model_out_of(tg_add(t, recon, kl_sum), 2, (tg_var *[]){recon, kl_sum});
    o.mean = mu, o.kl_per_dim = tg_sum_axis(t, kl, 0, false);
    return o;
}

/* ---------------------------------------------------------------- importance weighting */

void tg_model_bernoulli_log_lik_rows(const tg_tensor *out, const tg_tensor *x, const int64_t *img, int64_t P,
                                     double *ll) {
    /* sum_d log Bernoulli(x_d | sigmoid(l_d)) = -sum_d bce_logits(l_d, x_d); threaded */
    tg_tensor r = tg_tensor_wrap(TG_F64, TG_SHAPE(P), ll);
    tg_tensor_bce_logits_rows(&r, out, x, img);
    for (int64_t p = 0; p < P; p++) ll[p] = -ll[p];
}

/* log p(x | out) per row: the model's own, or Bernoulli. */
static void log_lik_rows(const tg_model *m, const tg_tensor *out, const tg_tensor *x, const int64_t *img, int64_t P,
                         double *ll) {
    if (m->type->log_lik_rows) m->type->log_lik_rows(m->self, out, x, img, P, ll);
    else tg_model_bernoulli_log_lik_rows(out, x, img, P, ll);
}

/* A running log-sum-exp: value = mx + log(s). */
typedef struct { double mx, s; } lse_acc;

static void lse_push(lse_acc *a, double v) {
    if (v == -INFINITY) return;
    if (a->s == 0) { a->mx = v, a->s = 1; return; }
    if (v > a->mx) a->s = a->s * exp(a->mx - v) + 1, a->mx = v;
    else a->s += exp(v - a->mx);
}

static double lse_value(const lse_acc *a) { return a->s == 0 ? -INFINITY : a->mx + log(a->s); }

/* What an evaluation batch needs, computed once: q's and p's parameters
 * per image as doubles. */
typedef struct {
    int64_t N, L;
    double *mu, *lv;       /* (N, L) q */
    double *mu_p, *lv_p;   /* (N, L) the model's prior, or NULL for N(0, I) */
} enc_cache;

static double *to_f64(const tg_tensor *x) {
    double *out = malloc((size_t)x->numel * sizeof(double));
    TG_CHECK(out, "model evaluation: out of memory");
    for (int64_t i = 0; i < x->numel; i++) out[i] = tg_tensor_get(x, i);
    return out;
}

static enc_cache encode_batch(tg_tape *t, const tg_model *m, const tg_tensor *x, const tg_tensor *labels) {
    TG_CHECK(tg_model_gaussian(m), "%s: importance weights need a Gaussian latent (a posterior)", m->type->name);
    int64_t N = x->shape.d[0];
    enc_cache c = {.N = N, .L = m->cfg.latent};
    tg_tensor *xt = x->dtype == m->dtype ? (tg_tensor *)x : tg_tensor_cast(tg_tape_arena(t), x, m->dtype);
    tg_var *mu, *lv;
    m->type->posterior(t, m->self, tg_leaf(t, xt, false), labels, &mu, &lv);
    c.mu = to_f64(&mu->val), c.lv = to_f64(&lv->val);
    if (m->type->prior) {
        tg_var *mp, *lp;
        m->type->prior(t, m->self, N, labels, &mp, &lp);
        c.mu_p = to_f64(&mp->val), c.lv_p = to_f64(&lp->val);
    }
    return c;
}

static void enc_cache_free(enc_cache *c) { free(c->mu), free(c->lv), free(c->mu_p), free(c->lv_p); }

/* log w for P (image, eps) pairs: img (P) image indices into x, eps (P, L). */
static void log_weights(tg_tape *t, const tg_model *m, const tg_tensor *x, const tg_tensor *labels,
                        const enc_cache *c, const int64_t *img, const double *eps, int64_t P, double *out) {
    int64_t L = c->L;
    tg_arena *a = tg_tape_arena(t);
    tg_tensor *z = tg_tensor_new(a, m->dtype, TG_SHAPE(P, L));
    double *zd = tg_arena_alloc(a, (size_t)(P * L) * sizeof(double));
    TG_DISPATCH(m->dtype, {
        T *zt = z->data;
        for (int64_t p = 0; p < P; p++)
            for (int64_t l = 0; l < L; l++) {   /* as tg_reparam: mu + exp(logvar / 2) eps, in T */
                int64_t q = img[p] * L + l;
                zt[p * L + l] = (T)c->mu[q] + (T)exp((T)0.5 * (T)c->lv[q]) * (T)eps[p * L + l];
                zd[p * L + l] = (double)zt[p * L + l];
            }
    });
    tg_tensor *lab = NULL;
    if (labels) {
        lab = tg_tensor_new(a, TG_I64, TG_SHAPE(P));
        for (int64_t p = 0; p < P; p++) tg_tensor_set(lab, p, tg_tensor_get(labels, img[p]));
    }
    tg_var *o = m->type->decode(t, m->self, tg_leaf(t, z, false), lab);   /* (P, D) */
    log_lik_rows(m, &o->val, x, img, P, out);
    /* + log p(z | y) - log q(z | x, y); (z - mu)^2 / sigma^2 = eps^2 */
    for (int64_t p = 0; p < P; p++) {
        int64_t i = img[p];
        double lpz = 0, lqz = 0;
        for (int64_t l = 0; l < L; l++) {
            double zz = zd[p * L + l], ep = eps[p * L + l];
            if (c->mu_p) {
                double mp = c->mu_p[i * L + l], vp = c->lv_p[i * L + l], d = zz - mp;
                lpz -= 0.5 * (LOG_2PI + vp + d * d * exp(-vp));
            } else {
                lpz -= 0.5 * (LOG_2PI + zz * zz);
            }
            lqz -= 0.5 * (LOG_2PI + c->lv[i * L + l] + ep * ep);
        }
        out[p] += lpz - lqz;
    }
}

void tg_model_log_weight(const tg_model *m, const tg_tensor *x, const tg_tensor *labels, const tg_tensor *eps,
                         double *out) {
    char b[96];
    tg_tape *t = tg_tape_new();
    tg_no_grad(t);
    enc_cache c = encode_batch(t, m, x, labels);
    TG_CHECK(eps->shape.ndim == 2 && eps->shape.d[0] == c.N && eps->shape.d[1] == c.L,
             "tg_model_log_weight: eps %s, want (%lld, %lld)", tg_shape_str(eps->shape, b), (long long)c.N,
             (long long)c.L);
    int64_t *img = malloc((size_t)c.N * sizeof *img);
    TG_CHECK(img, "tg_model_log_weight: out of memory");
    for (int64_t i = 0; i < c.N; i++) img[i] = i;
    double *ep = to_f64(eps);
    log_weights(t, m, x, labels, &c, img, ep, c.N, out);
    free(img), free(ep);
    enc_cache_free(&c);
    tg_tape_free(t);
}

void tg_model_iw_logpx(const tg_model *m, const tg_tensor *x, const tg_tensor *labels, int64_t k,
                       int64_t chunk_rows, tg_rng *r, double *out) {
    TG_CHECK(k >= 1, "tg_model_iw_logpx: k = %lld samples, want >= 1", (long long)k);
    if (chunk_rows <= 0) chunk_rows = 4096;
    tg_tape *t = tg_tape_new();
    tg_no_grad(t);
    enc_cache c = encode_batch(t, m, x, labels);
    tg_tape *tc = tg_tape_new();   /* per-chunk values; reset after each chunk */
    tg_no_grad(tc);
    int64_t total = c.N * k, L = c.L;
    int64_t *img = malloc((size_t)chunk_rows * sizeof *img);
    double *ep = malloc((size_t)(chunk_rows * L) * sizeof *ep), *lw = malloc((size_t)chunk_rows * sizeof *lw);
    lse_acc *acc = calloc((size_t)c.N, sizeof *acc);
    TG_CHECK(img && ep && lw && acc, "tg_model_iw_logpx: out of memory");
    for (int64_t p0 = 0; p0 < total; p0 += chunk_rows) {
        int64_t P = total - p0 < chunk_rows ? total - p0 : chunk_rows;
        for (int64_t p = 0; p < P; p++) {
            img[p] = (p0 + p) / k;
            for (int64_t l = 0; l < L; l++) ep[p * L + l] = tg_rng_normal(r);
        }
        log_weights(tc, m, x, labels, &c, img, ep, P, lw);
        for (int64_t p = 0; p < P; p++) lse_push(&acc[img[p]], lw[p]);
        tg_tape_reset(tc);
    }
    for (int64_t i = 0; i < c.N; i++) out[i] = lse_value(&acc[i]) - log((double)k);
    free(img), free(ep), free(lw), free(acc);
    tg_tape_free(tc);
    enc_cache_free(&c);
    tg_tape_free(t);
}
