/* evaluate.c — reading back, evaluating and sampling a run (see evaluate.h). */
#include "examples/vae/evaluate.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "io/png.h"
#include "nn/checkpoint.h"
#include "tensor/kernels.h"

/* ---------------------------------------------------------------- model */

tg_params *tg_run_model_load(const char *dir, const tg_run_info *ri, tg_model *m, tg_err *e) {
    const tg_model_type *type = tg_model_find(ri->o.model);
    tg_model_config c = tg_train_model_config(&ri->o, ri->rows, ri->cols);
    if (tg_train_params_fit(type, &c, e) != 0) return NULL;
    tg_rng r = tg_rng_seed(ri->o.seed);
    tg_params *ps = tg_params_new(TG_F32);
    *m = tg_model_new(type, ps, &c, &r);
    char path[4096], hint[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(hint, sizeof hint, "the model built from %s/config.json", dir);
    tg_safetensors st;   /* read once: the tensors and the settings in its metadata */
    if (tg_safetensors_read(path, &st, e) != 0) {
        tg_model_free(m);
        tg_params_free(ps);
        return NULL;
    }
    int rc = tg_params_load_from(ps, &st, path, hint, e);
    if (rc == 0) rc = tg_train_check_checkpoint(path, &st, ri, e);
    tg_safetensors_free(&st);
    if (rc != 0) {
        tg_model_free(m);
        tg_params_free(ps);
        return NULL;
    }
    for (int i = 0; i < ps->count; i++)
        for (int64_t j = 0; j < ps->vars[i]->val.numel; j++)
            if (!isfinite(tg_tensor_get(&ps->vars[i]->val, j))) {
                tg_err_set(e, "%s: tensor %s holds a non-finite value (%g at index %lld)", path, ps->vars[i]->name,
                           tg_tensor_get(&ps->vars[i]->val, j), (long long)j);
                tg_model_free(m);
                tg_params_free(ps);
                return NULL;
            }
    return ps;
}

/* ---------------------------------------------------------------- data */

int tg_run_test_images(const tg_run_info *ri, const tg_dataset *ds, tg_images *out, tg_err *e) {
    tg_rng r = tg_rng_seed(ri->o.seed + 3);
    if (tg_train_images(ri->o.binarize, &r, ds, NULL, out, e) != 0) return -1;
    if (out->pixels) return 0;
    *out = ds->test_x;   /* gray: a copy, so the caller frees it either way */
    size_t n = (size_t)(out->n * out->rows * out->cols);
    out->pixels = malloc(n ? n : 1);
    if (!out->pixels) {
        tg_err_set(e, "out of memory");
        return -1;
    }
    memcpy(out->pixels, ds->test_x.pixels, n);
    return 0;
}

/* ---------------------------------------------------------------- evaluation */

int tg_run_evaluate(const tg_model *m, const tg_run_info *ri, const tg_dataset *ds, int64_t iw_samples,
                    uint64_t seed, bool want_scores, FILE *progress, tg_eval_result *r, tg_err *e) {
    memset(r, 0, sizeof *r);
    const bool cond = m->type->conditional, gauss = tg_model_gaussian(m);
    const int64_t D = ri->rows * ri->cols, L = ri->o.latent, B = 256;
    const int n_terms = tg_model_n_terms(m->type);
    TG_CHECK(ds->test_x.rows == ri->rows && ds->test_x.cols == ri->cols,
             "tg_run_evaluate: images of %lldx%lld for a run of %lldx%lld (check with tg_run_check_data)",
             (long long)ds->test_x.rows, (long long)ds->test_x.cols, (long long)ri->rows, (long long)ri->cols);
    tg_images test = {0};
    if (tg_run_test_images(ri, ds, &test, e) != 0) return -1;
    int rc = -1;
    tg_tape *tape = tg_tape_new();
    tg_arena *keep = tg_arena_new();
    tg_tensor *xb = tg_tensor_new(keep, TG_F32, TG_SHAPE(B, D));
    tg_tensor *yb = tg_tensor_new(keep, TG_I64, TG_SHAPE(B));
    double *logpx = tg_arena_alloc(keep, sizeof(double) * (size_t)B);
    tg_batcher *bt = tg_batcher_new(&test, cond ? &ds->test_y : NULL, B, false, NULL);
    tg_active_units *au = gauss ? tg_active_units_new(L) : NULL;
    int64_t *counts = NULL;
    if (want_scores) {
        r->scores = malloc(sizeof(double) * (size_t)test.n);
        r->labels = malloc((size_t)test.n);
    }
    if (!bt || (gauss && !au) || (want_scores && (!r->scores || !r->labels))) {
        tg_err_set(e, "out of memory");
        goto done;
    }
    if (want_scores) memcpy(r->labels, ds->test_y.labels, (size_t)test.n);
    r->type = m->type, r->n_terms = n_terms, r->images = test.n, r->latent = gauss ? L : 0;
    r->iw_samples = gauss ? iw_samples : 0;
    r->nll = NAN;
    tg_rng noise = tg_rng_seed(seed), iw = tg_rng_seed(seed + 1);
    double ll = 0;
    int64_t rows, seen = 0;
    tg_no_grad(tape);
    tg_model_batch b = {.rng = &noise, .train = false, .epoch = ri->o.epochs, .steps_per_epoch = 1,
                        .epochs = ri->o.epochs};
    while ((rows = tg_batcher_next(bt, xb, cond ? yb : NULL)) > 0) {
        tg_tensor xv = tg_tensor_wrap(TG_F32, TG_SHAPE(rows, D), xb->data);
        tg_tensor lv = tg_tensor_wrap(TG_I64, TG_SHAPE(rows), yb->data);
        b.x = tg_leaf(tape, &xv, false), b.labels = cond ? &lv : NULL;
        tg_model_out out = tg_model_loss(tape, m, &b);
        r->loss += tg_tensor_get(&out.loss->val, 0);
        for (int i = 0; i < n_terms; i++) r->terms[i] += out.term[i] ? tg_tensor_get(&out.term[i]->val, 0) : 0;
        if (au && out.mean) tg_active_units_add(au, &out.mean->val);
        if (out.kl_per_dim) {
            if (!r->kl_per_dim && !(r->kl_per_dim = calloc((size_t)L, sizeof(double)))) {
                tg_err_set(e, "out of memory");
                goto done;
            }
            for (int64_t l = 0; l < L; l++) r->kl_per_dim[l] += tg_tensor_get(&out.kl_per_dim->val, l);
        }
        if (out.codes) {
            r->codes = ri->o.codes;
            if (!counts && !(counts = calloc((size_t)r->codes, sizeof *counts))) {
                tg_err_set(e, "out of memory");
                goto done;
            }
            int64_t G = out.codes->val.shape.d[1];
            for (int64_t i = 0; i < out.codes->val.numel; i++) counts[TG_I64P(&out.codes->val)[i]]++;
            r->bits = (double)G * log2((double)r->codes);
        }
        tg_tape_reset(tape);
        if (gauss && iw_samples > 0) {
            tg_model_iw_logpx(m, &xv, cond ? &lv : NULL, iw_samples, 0, &iw, logpx);
            for (int64_t i = 0; i < rows; i++) {
                ll += logpx[i];
                if (r->scores) r->scores[seen + i] = -logpx[i];
            }
        }
        seen += rows;
        if (progress) {
            fprintf(progress, "eval: %lld/%lld images\n", (long long)seen, (long long)test.n);
            fflush(progress);
        }
    }
    const double n = (double)test.n;
    r->loss /= n;
    for (int i = 0; i < n_terms; i++) r->terms[i] /= n;
    if (r->kl_per_dim)
        for (int64_t l = 0; l < L; l++) r->kl_per_dim[l] /= n;
    if (gauss && iw_samples > 0) r->nll = -ll / n;
    if (au) r->active_units = tg_active_units_count(au, 0.01, NULL);
    if (counts) {
        double total = 0, h = 0;
        for (int64_t k = 0; k < r->codes; k++) total += (double)counts[k];
        for (int64_t k = 0; k < r->codes; k++)
            if (counts[k]) {
                double p = (double)counts[k] / total;
                h -= p * log(p);
                r->codes_used++;
            }
        r->perplexity = exp(h);
    }
    /* Scores without importance sampling: the model's objective of each image alone. */
    if (r->scores && !(gauss && iw_samples > 0)) {
        tg_rng sn = tg_rng_seed(seed + 2);
        b.rng = &sn;
        tg_batcher_start_epoch(bt);
        seen = 0;
        while ((rows = tg_batcher_next(bt, xb, cond ? yb : NULL)) > 0)
            for (int64_t i = 0; i < rows; i++, seen++) {
                tg_tensor xv = tg_tensor_wrap(TG_F32, TG_SHAPE(1, D), TG_F32P(xb) + i * D);
                tg_tensor lv = tg_tensor_wrap(TG_I64, TG_SHAPE(1), TG_I64P(yb) + i);
                b.x = tg_leaf(tape, &xv, false), b.labels = cond ? &lv : NULL;
                r->scores[seen] = tg_tensor_get(&tg_model_loss(tape, m, &b).loss->val, 0);
                tg_tape_reset(tape);
            }
    }
    if (!isfinite(r->loss) || (gauss && iw_samples > 0 && !isfinite(r->nll))) {
        tg_err_set(e, "non-finite %s on the test set", !isfinite(r->loss) ? "loss" : "nll");
        goto done;
    }
    rc = 0;
done:
    if (rc != 0) tg_eval_result_free(r);
    free(counts);
    tg_active_units_free(au);
    tg_batcher_free(bt);
    tg_arena_free(keep);
    tg_tape_free(tape);
    tg_images_free(&test);
    return rc;
}

int tg_eval_scores_write(const tg_eval_result *r, const char *path, tg_err *e) {
    size_t cap = 32 + (size_t)r->images * 48, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        tg_err_set(e, "out of memory");
        return -1;
    }
    n += (size_t)snprintf(buf, cap, "index,label,score\n");
    for (int64_t i = 0; i < r->images; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%lld,%d,%.9g\n", (long long)i, r->labels[i], r->scores[i]);
    int rc = tg_file_write(path, buf, n, e);
    free(buf);
    return rc;
}

void tg_eval_result_free(tg_eval_result *r) {
    free(r->kl_per_dim), free(r->scores), free(r->labels);
    r->kl_per_dim = NULL, r->scores = NULL, r->labels = NULL;
}

const char *tg_eval_result_json(const tg_eval_result *r, tg_jsonw *w) {
    double recon = NAN, kl = NAN;
    for (int i = 0; i < r->n_terms; i++) {
        if (!strcmp(r->type->terms[i], "recon")) recon = r->terms[i];
        if (!strcmp(r->type->terms[i], "kl")) kl = r->terms[i];
    }
    tg_jsonw_init(w);
    tg_jsonw_begin_object(w);
    tg_jsonw_key(w, "model"), tg_jsonw_string(w, r->type->name);
    if (!isnan(recon) && !isnan(kl)) tg_jsonw_key(w, "elbo"), tg_jsonw_double(w, recon + kl);
    for (int i = 0; i < r->n_terms; i++) tg_jsonw_key(w, r->type->terms[i]), tg_jsonw_double(w, r->terms[i]);
    tg_jsonw_key(w, "loss"), tg_jsonw_double(w, r->loss);
    if (r->latent > 0) {
        if (r->iw_samples > 0) tg_jsonw_key(w, "nll"), tg_jsonw_double(w, r->nll);
        tg_jsonw_key(w, "active_units"), tg_jsonw_int(w, r->active_units);
    }
    if (r->kl_per_dim) {
        tg_jsonw_key(w, "kl_per_dim"), tg_jsonw_begin_array(w);
        for (int64_t l = 0; l < r->latent; l++) tg_jsonw_double(w, r->kl_per_dim[l]);
        tg_jsonw_end_array(w);
    }
    if (r->codes > 0) {
        tg_jsonw_key(w, "codes"), tg_jsonw_int(w, r->codes);
        tg_jsonw_key(w, "codes_used"), tg_jsonw_int(w, r->codes_used);
        tg_jsonw_key(w, "perplexity"), tg_jsonw_double(w, r->perplexity);
        tg_jsonw_key(w, "bits_per_image"), tg_jsonw_double(w, r->bits);
        tg_jsonw_key(w, "bytes_per_image"), tg_jsonw_double(w, r->bits / 8);
    }
    tg_jsonw_key(w, "iw_samples"), tg_jsonw_int(w, r->iw_samples);
    tg_jsonw_key(w, "images"), tg_jsonw_int(w, r->images);
    tg_jsonw_end_object(w);
    return tg_jsonw_finish(w);
}

/* ---------------------------------------------------------------- samples */

int tg_run_sample(const tg_model *m, int64_t n, int label, double temperature, uint64_t seed, uint8_t *out,
                  tg_err *e) {
    const int64_t D = m->cfg.rows * m->cfg.cols, K = m->cfg.classes, chunk = 256;
    tg_rng r = tg_rng_seed(seed);
    tg_tape *tape = tg_tape_new();
    tg_no_grad(tape);
    for (int64_t i0 = 0; i0 < n; i0 += chunk) {
        int64_t c = n - i0 < chunk ? n - i0 : chunk;
        tg_tensor *lab = NULL;
        if (K > 0) {
            lab = tg_tensor_new(tg_tape_arena(tape), TG_I64, TG_SHAPE(c));
            for (int64_t i = 0; i < c; i++) TG_I64P(lab)[i] = label >= 0 ? label : (i0 + i) % K;
        }
        tg_var *s = tg_model_pixels(tape, m, tg_model_sample(tape, m, c, lab, temperature, &r));
        for (int64_t i = 0; i < c * D; i++) {
            double v = tg_tensor_get(&s->val, i);
            if (!isfinite(v)) {
                tg_err_set(e, "sample %lld decodes to a non-finite pixel (temperature %g)", (long long)(i0 + i / D),
                           temperature);
                tg_tape_free(tape);
                return -1;
            }
            out[i0 * D + i] = tg_png_pixel_from_f32((float)v);
        }
        tg_tape_reset(tape);
    }
    tg_tape_free(tape);
    return 0;
}

/* ---------------------------------------------------------------- pictures of the latent */

/* Decodes n rows of z (n, k) floats, or of codes (n, k) int64 when codes is
 * not NULL, with labels (n) for a conditional model, chunk by chunk, into
 * out (n * D bytes) as tg_run_sample quantises. 0, or -1 on a non-finite pixel. */
static int decode_rows(const tg_model *m, const float *z, const int64_t *codes, int64_t n, int64_t k,
                       const int64_t *labels, uint8_t *out, tg_err *e) {
    const int64_t D = m->cfg.rows * m->cfg.cols, chunk = 256;
    const bool cond = m->type->conditional;
    tg_tape *tape = tg_tape_new();
    tg_no_grad(tape);
    int rc = 0;
    for (int64_t i0 = 0; i0 < n && rc == 0; i0 += chunk) {
        const int64_t c = n - i0 < chunk ? n - i0 : chunk;
        tg_arena *a = tg_tape_arena(tape);
        tg_tensor *in;
        if (codes) {
            in = tg_tensor_new(a, TG_I64, TG_SHAPE(c, k));
            memcpy(in->data, codes + i0 * k, sizeof(int64_t) * (size_t)(c * k));
        } else {
            in = tg_tensor_new(a, m->dtype, TG_SHAPE(c, k));
            for (int64_t i = 0; i < c * k; i++) tg_tensor_set(in, i, z[i0 * k + i]);
        }
        tg_tensor *lab = NULL;
        if (cond) {
            lab = tg_tensor_new(a, TG_I64, TG_SHAPE(c));
            memcpy(lab->data, labels + i0, sizeof(int64_t) * (size_t)c);
        }
        tg_var *px = tg_model_pixels(tape, m, tg_model_decode(tape, m, tg_leaf(tape, in, false), lab));
        for (int64_t i = 0; i < c * D; i++) {
            double v = tg_tensor_get(&px->val, i);
            if (!isfinite(v)) {
                tg_err_set(e, "image %lld decodes to a non-finite pixel", (long long)(i0 + i / D));
                rc = -1;
                break;
            }
            out[i0 * D + i] = tg_png_pixel_from_f32((float)v);
        }
        tg_tape_reset(tape);
    }
    tg_tape_free(tape);
    return rc;
}

/* Image i of x as the trainer feeds it (pixels / 255), a (1, D) leaf on t. */
/* A conditional model's label tensor (1) holding label, in t's arena; NULL for other models. */
static tg_tensor *one_label(tg_tape *t, const tg_model *m, int64_t label) {
    if (!m->type->conditional) return NULL;
    tg_tensor *lab = tg_tensor_new(tg_tape_arena(t), TG_I64, TG_SHAPE(1));
    TG_I64P(lab)[0] = label;
    return lab;
}

static tg_var *image_leaf(tg_tape *t, const tg_model *m, const tg_images *x, int64_t i, int64_t rows) {
    const int64_t D = x->rows * x->cols;
    tg_tensor *v = tg_tensor_new(tg_tape_arena(t), m->dtype, TG_SHAPE(rows, D));
    const uint8_t *p = x->pixels + i * D;
    for (int64_t j = 0; j < rows * D; j++) {
        if (m->dtype == TG_F32) TG_F32P(v)[j] = (float)p[j] / 255.0f;   /* as tg_batcher_next */
        else tg_tensor_set(v, j, p[j] / 255.0);
    }
    return tg_leaf(t, v, false);
}

void tg_run_posterior_mean(const tg_model *m, const tg_images *x, int64_t i, int label, float *mu) {
    TG_CHECK(tg_model_gaussian(m), "tg_run_posterior_mean: %s has no Gaussian latent", m->type->name);
    TG_CHECK(i >= 0 && i < x->n && x->rows == m->cfg.rows && x->cols == m->cfg.cols,
             "tg_run_posterior_mean: image %lld of %lld images of %lldx%lld, for a model of %lldx%lld",
             (long long)i, (long long)x->n, (long long)x->rows, (long long)x->cols, (long long)m->cfg.rows,
             (long long)m->cfg.cols);
    tg_tape *t = tg_tape_new();
    tg_no_grad(t);
    tg_tensor *lab = one_label(t, m, label);
    tg_var *v = tg_model_encode(t, m, image_leaf(t, m, x, i, 1), lab);   /* (1, L) */
    for (int64_t l = 0; l < m->cfg.latent; l++) mu[l] = (float)tg_tensor_get(&v->val, l);
    tg_tape_free(t);
}

/* z (n, L) and labels (n) for decode_rows, malloc'd together; NULL if out of memory. */
static float *latent_rows(int64_t n, int64_t L, int64_t **labels, tg_err *e) {
    float *z = malloc(sizeof(float) * (size_t)(n * L));
    *labels = malloc(sizeof(int64_t) * (size_t)n);
    if (!z || !*labels) {
        free(z), free(*labels);
        tg_err_set(e, "out of memory");
        return NULL;
    }
    return z;
}

int tg_run_traverse(const tg_model *m, const float *mu, int label, int64_t cols, uint8_t *out, tg_err *e) {
    TG_CHECK(tg_model_gaussian(m) && cols >= 2, "tg_run_traverse: %s, cols %lld (want a Gaussian latent, cols >= 2)",
             m->type->name, (long long)cols);
    const int64_t L = m->cfg.latent, n = L * cols;
    int64_t *labels;
    float *z = latent_rows(n, L, &labels, e);
    if (!z) return -1;
    for (int64_t l = 0; l < L; l++)
        for (int64_t j = 0; j < cols; j++) {
            float *r = z + (l * cols + j) * L;
            memcpy(r, mu, sizeof(float) * (size_t)L);
            r[l] = (float)(-3.0 + 6.0 * (double)j / (double)(cols - 1));
            labels[l * cols + j] = label;
        }
    int rc = decode_rows(m, z, NULL, n, L, labels, out, e);
    free(z), free(labels);
    return rc;
}

int tg_run_interpolate(const tg_model *m, const float *mu_a, int label_a, const float *mu_b, int label_b,
                       int64_t steps, uint8_t *out, tg_err *e) {
    TG_CHECK(tg_model_gaussian(m) && steps >= 2, "tg_run_interpolate: %s, steps %lld (want a Gaussian latent, "
             "steps >= 2)", m->type->name, (long long)steps);
    const int64_t L = m->cfg.latent;
    int64_t *labels;
    float *z = latent_rows(steps, L, &labels, e);
    if (!z) return -1;
    for (int64_t k = 0; k < steps; k++) {
        const double t = (double)k / (double)(steps - 1);   /* 0 and 1 exactly at the ends */
        for (int64_t l = 0; l < L; l++) z[k * L + l] = (float)((1 - t) * mu_a[l] + t * mu_b[l]);
        labels[k] = t < 0.5 ? label_a : label_b;
    }
    int rc = decode_rows(m, z, NULL, steps, L, labels, out, e);
    free(z), free(labels);
    return rc;
}

int tg_run_manifold(const tg_model *m, int64_t n, int label, uint8_t *out, tg_err *e) {
    TG_CHECK(tg_model_gaussian(m) && m->cfg.latent == 2 && n >= 1,
             "tg_run_manifold: %s of latent %lld, n %lld (want a Gaussian latent of 2, n >= 1)", m->type->name,
             (long long)m->cfg.latent, (long long)n);
    double mu_p[2] = {0, 0}, sd_p[2] = {1, 1};
    if (m->type->prior) {   /* p(z | y = label) */
        tg_tape *t = tg_tape_new();
        tg_no_grad(t);
        tg_tensor *lab = one_label(t, m, label);
        tg_var *mu, *lv;
        m->type->prior(t, m->self, 1, lab, &mu, &lv);
        for (int l = 0; l < 2; l++)
            mu_p[l] = tg_tensor_get(&mu->val, l), sd_p[l] = exp(tg_tensor_get(&lv->val, l) / 2);
        tg_tape_free(t);
    }
    double *q = malloc(sizeof(double) * (size_t)n);
    int64_t *labels;
    float *z = q ? latent_rows(n * n, 2, &labels, e) : NULL;
    if (!z) {
        if (!q) tg_err_set(e, "out of memory");
        free(q);
        return -1;
    }
    for (int64_t k = 0; k < n; k++) q[k] = tg_normal_quantile(((double)k + 0.5) / (double)n);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            z[(i * n + j) * 2 + 0] = (float)(mu_p[0] + sd_p[0] * q[j]);
            z[(i * n + j) * 2 + 1] = (float)(mu_p[1] + sd_p[1] * q[i]);
            labels[i * n + j] = label;
        }
    int rc = decode_rows(m, z, NULL, n * n, 2, labels, out, e);
    free(q), free(z), free(labels);
    return rc;
}

double tg_normal_quantile(double p) {
    TG_CHECK(p > 0 && p < 1, "tg_normal_quantile: p = %g, want 0 < p < 1", p);
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                               1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01,  -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    const double lo = 0.02425;
    double x;
    if (p < lo || p > 1 - lo) {   /* the tails, by symmetry */
        double s = sqrt(-2 * log(p < lo ? p : 1 - p));
        x = (((((c[0] * s + c[1]) * s + c[2]) * s + c[3]) * s + c[4]) * s + c[5]) /
            ((((d[0] * s + d[1]) * s + d[2]) * s + d[3]) * s + 1);
        if (p > 1 - lo) x = -x;
    } else {
        double s = p - 0.5, r = s * s;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * s /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    /* One Halley step on Phi(x) - p, Phi(x) = erfc(-x / sqrt 2) / 2. */
    double err = 0.5 * erfc(-x / sqrt(2.0)) - p, u = err * 2.5066282746310002 * exp(x * x / 2);   /* sqrt(2 pi) */
    return x - u / (1 + x * u / 2);
}

/* ---------------------------------------------------------------- codes */

int tg_codes_bits(int64_t K) {
    TG_CHECK(K >= 2, "tg_codes_bits: K = %lld, want >= 2", (long long)K);
    int b = 0;
    while (((int64_t)1 << b) < K) b++;
    return b;
}

int64_t tg_codes_file_size(int64_t K, int64_t G, int64_t n) {
    return TG_CODES_HEADER + (n * G * tg_codes_bits(K) + 7) / 8;
}

int64_t tg_run_codes_per_image(const tg_model *m) {
    TG_CHECK(!tg_model_gaussian(m) && m->type->encode, "tg_run_codes_per_image: %s has no codes", m->type->name);
    tg_tape *t = tg_tape_new();
    tg_no_grad(t);
    tg_tensor *x = tg_tensor_zeros(tg_tape_arena(t), m->dtype, TG_SHAPE(1, m->cfg.rows * m->cfg.cols));
    tg_var *c = tg_model_encode(t, m, tg_leaf(t, x, false), NULL);
    TG_CHECK(c->val.dtype == TG_I64 && c->val.shape.ndim == 2 && c->val.shape.d[0] == 1,
             "tg_run_codes_per_image: %s's encode did not give (n, G) int64 codes", m->type->name);
    int64_t G = c->val.shape.d[1];
    tg_tape_free(t);
    return G;
}

int tg_run_encode(const tg_model *m, const tg_images *x, tg_codes *c, tg_err *e) {
    TG_CHECK(!tg_model_gaussian(m) && m->type->encode, "tg_run_encode: %s has no codes", m->type->name);
    TG_CHECK(x->rows == m->cfg.rows && x->cols == m->cfg.cols && x->n >= 1,
             "tg_run_encode: %lld images of %lldx%lld, for a model of %lldx%lld", (long long)x->n,
             (long long)x->rows, (long long)x->cols, (long long)m->cfg.rows, (long long)m->cfg.cols);
    const int64_t chunk = 256;
    memset(c, 0, sizeof *c);
    c->K = m->cfg.codes, c->n = x->n;
    tg_tape *t = tg_tape_new();
    tg_no_grad(t);
    for (int64_t i0 = 0; i0 < x->n; i0 += chunk) {
        const int64_t rows = x->n - i0 < chunk ? x->n - i0 : chunk;
        tg_var *v = tg_model_encode(t, m, image_leaf(t, m, x, i0, rows), NULL);   /* (rows, G) int64 */
        TG_CHECK(v->val.dtype == TG_I64 && v->val.shape.ndim == 2 && v->val.shape.d[0] == rows,
                 "tg_run_encode: %s's encode did not give (n, G) int64 codes", m->type->name);
        if (!c->codes) {
            c->G = v->val.shape.d[1];
            if (!(c->codes = malloc(sizeof(int64_t) * (size_t)(x->n * c->G)))) {
                tg_err_set(e, "out of memory");
                tg_tape_free(t);
                return -1;
            }
        }
        memcpy(c->codes + i0 * c->G, v->val.data, sizeof(int64_t) * (size_t)(rows * c->G));
        tg_tape_reset(t);
    }
    tg_tape_free(t);
    return 0;
}

int tg_run_decode_codes(const tg_model *m, const tg_codes *c, uint8_t *out, tg_err *e) {
    TG_CHECK(!tg_model_gaussian(m) && c->K == m->cfg.codes, "tg_run_decode_codes: %s, codes of K = %lld",
             m->type->name, (long long)c->K);
    return decode_rows(m, NULL, c->codes, c->n, c->G, NULL, out, e);
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int tg_codes_write(const char *path, const tg_codes *c, tg_err *e) {
    TG_CHECK(c->K >= 2 && c->K <= TG_RUN_MAX_CODES && c->G >= 1 && c->G <= UINT32_MAX && c->n >= 1 &&
                 c->n <= UINT32_MAX, "tg_codes_write: K %lld, G %lld, n %lld out of range", (long long)c->K,
             (long long)c->G, (long long)c->n);
    const int b = tg_codes_bits(c->K);
    const int64_t total = c->n * c->G, size = tg_codes_file_size(c->K, c->G, c->n);
    if ((uint64_t)size > TG_DATA_MAX_BYTES) {
        tg_err_set(e, "%s: %lld codes would take %lld bytes, more than the %zu a reader accepts", path,
                   (long long)total, (long long)size, TG_DATA_MAX_BYTES);
        return -1;
    }
    uint8_t *buf = calloc((size_t)size, 1);
    if (!buf) {
        tg_err_set(e, "out of memory");
        return -1;
    }
    memcpy(buf, TG_CODES_MAGIC, 4);
    put_u32(buf + 4, TG_CODES_VERSION);
    put_u32(buf + 8, (uint32_t)c->K);
    put_u32(buf + 12, (uint32_t)c->G);
    put_u32(buf + 16, (uint32_t)c->n);
    uint8_t *p = buf + TG_CODES_HEADER;
    for (int64_t i = 0; i < total; i++) {
        TG_CHECK(c->codes[i] >= 0 && c->codes[i] < c->K, "tg_codes_write: code %lld at %lld, K = %lld",
                 (long long)c->codes[i], (long long)i, (long long)c->K);
        for (int k = 0; k < b; k++) {
            int64_t bit = i * b + k;
            if (c->codes[i] >> k & 1) p[bit >> 3] |= (uint8_t)(1u << (bit & 7));
        }
    }
    int rc = tg_file_write(path, buf, (size_t)size, e);
    free(buf);
    return rc;
}

int tg_codes_read(const char *path, tg_codes *c, tg_err *e) {
    memset(c, 0, sizeof *c);
    uint8_t *buf;
    size_t size;
    if (tg_file_read(path, &buf, &size, e) != 0) return -1;
    int rc = -1;
    if (size < TG_CODES_HEADER) {
        tg_err_set(e, "%s: truncated: %zu bytes, shorter than the %d-byte header of a codes file", path, size,
                   TG_CODES_HEADER);
        goto done;
    }
    if (memcmp(buf, TG_CODES_MAGIC, 4) != 0) {
        tg_err_set(e, "%s: not a codes file (it does not start with \"%s\"; `vae encode` writes them)", path,
                   TG_CODES_MAGIC);
        goto done;
    }
    const uint32_t version = get_u32(buf + 4), K = get_u32(buf + 8), G = get_u32(buf + 12), n = get_u32(buf + 16);
    if (version != TG_CODES_VERSION) {
        tg_err_set(e, "%s: version %u (this program reads version %d)", path, version, TG_CODES_VERSION);
        goto done;
    }
    if (K < 2 || K > TG_RUN_MAX_CODES || G < 1 || n < 1 || (uint64_t)G * n > (uint64_t)TG_DATA_MAX_BYTES * 8) {
        tg_err_set(e, "%s: a header of K = %u codes, G = %u per image, n = %u images is out of range (K in [2, %d], "
                      "G and n >= 1)", path, K, G, n, TG_RUN_MAX_CODES);
        goto done;
    }
    const int b = tg_codes_bits(K);
    const int64_t total = (int64_t)G * n, want = tg_codes_file_size(K, G, n);
    if ((int64_t)size != want) {
        tg_err_set(e, "%s: %s: %zu bytes, where %u images of %u codes of %d bits take %lld", path,
                   (int64_t)size < want ? "truncated" : "bytes after the codes", size, n, G, b, (long long)want);
        goto done;
    }
    if (!(c->codes = malloc(sizeof(int64_t) * (size_t)total))) {
        tg_err_set(e, "out of memory");
        goto done;
    }
    const uint8_t *p = buf + TG_CODES_HEADER;
    for (int64_t i = 0; i < total; i++) {
        int64_t v = 0;
        for (int k = 0; k < b; k++) {
            int64_t bit = i * b + k;
            v |= (int64_t)(p[bit >> 3] >> (bit & 7) & 1) << k;
        }
        if (v >= K) {
            tg_err_set(e, "%s: code %lld of image %lld is %lld, not below K = %u", path, (long long)(i % G),
                       (long long)(i / G), (long long)v, K);
            goto done;
        }
        c->codes[i] = v;
    }
    if ((total * b) % 8 && p[total * b / 8] >> ((total * b) % 8)) {
        tg_err_set(e, "%s: the last byte's unused bits are not 0: a damaged file", path);
        goto done;
    }
    c->K = K, c->G = G, c->n = n;
    rc = 0;
done:
    if (rc != 0) tg_codes_free(c);
    free(buf);
    return rc;
}

void tg_codes_free(tg_codes *c) {
    free(c->codes);
    c->codes = NULL;
}
