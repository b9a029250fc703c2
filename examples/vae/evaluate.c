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
