/* evaluate.c — reading back, evaluating and sampling a run (see evaluate.h). */
#include "examples/vae/evaluate.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/png.h"
#include "nn/checkpoint.h"
#include "tensor/kernels.h"

/* ---------------------------------------------------------------- model */

tg_vae_config tg_run_vae_config(const tg_run_info *ri) {
    tg_vae_config c = tg_vae_config_new(ri->rows * ri->cols, ri->o.n_hidden, ri->o.hidden, ri->o.latent);
    c.classes = ri->classes, c.prior = ri->o.prior, c.lik = ri->o.lik, c.beta = ri->o.beta;
    return c;
}

tg_params *tg_run_model_load(const char *dir, const tg_run_info *ri, tg_vae_model *m, tg_err *e) {
    tg_vae_config c = tg_run_vae_config(ri);
    if (tg_train_params_fit(&c, e) != 0) return NULL;
    tg_rng r = tg_rng_seed(ri->o.seed);
    tg_params *ps = tg_params_new(TG_F32);
    *m = tg_vae_model_new(ps, &c, &r);
    char path[4096], hint[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(hint, sizeof hint, "the model built from %s/config.json", dir);
    tg_safetensors st;   /* read once: the tensors and the settings in its metadata */
    if (tg_safetensors_read(path, &st, e) != 0) {
        tg_params_free(ps);
        return NULL;
    }
    int rc = tg_params_load_from(ps, &st, path, hint, e);
    if (rc == 0) rc = tg_train_check_checkpoint(path, &st, ri, e);
    tg_safetensors_free(&st);
    if (rc != 0) {
        tg_params_free(ps);
        return NULL;
    }
    for (int i = 0; i < ps->count; i++)
        for (int64_t j = 0; j < ps->vars[i]->val.numel; j++)
            if (!isfinite(tg_tensor_get(&ps->vars[i]->val, j))) {
                tg_err_set(e, "%s: tensor %s holds a non-finite value (%g at index %lld)", path, ps->vars[i]->name,
                           tg_tensor_get(&ps->vars[i]->val, j), (long long)j);
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

int tg_run_evaluate(const tg_vae_model *m, const tg_run_info *ri, const tg_dataset *ds, int64_t iw_samples,
                    uint64_t seed, FILE *progress, tg_eval_result *r, tg_err *e) {
    memset(r, 0, sizeof *r);
    const bool cond = ri->classes > 0;
    const int64_t D = ri->rows * ri->cols, L = ri->o.latent, B = 256;
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
    tg_active_units *au = tg_active_units_new(L);
    r->kl_per_dim = calloc((size_t)L, sizeof(double));
    if (!bt || !au || !r->kl_per_dim) {
        tg_err_set(e, "out of memory");
        goto done;
    }
    r->images = test.n, r->iw_samples = iw_samples, r->latent = L;
    tg_rng noise = tg_rng_seed(seed), iw = tg_rng_seed(seed + 1);
    double recon = 0, kl = 0, ll = 0;
    int64_t rows, seen = 0;
    tg_no_grad(tape);
    while ((rows = tg_batcher_next(bt, xb, cond ? yb : NULL)) > 0) {
        tg_tensor xv = tg_tensor_wrap(TG_F32, TG_SHAPE(rows, D), xb->data);
        tg_tensor lv = tg_tensor_wrap(TG_I64, TG_SHAPE(rows), yb->data);
        tg_vae_model_out out =
            tg_vae_model_forward(tape, m, tg_leaf(tape, &xv, false), cond ? &lv : NULL, NULL, &noise, 1);
        recon += tg_tensor_get(&out.recon->val, 0);
        kl += tg_tensor_get(&out.kl->val, 0);
        tg_active_units_add(au, &out.mu->val);
        for (int64_t l = 0; l < L; l++) r->kl_per_dim[l] += tg_tensor_get(&out.kl_per_dim->val, l);
        tg_tape_reset(tape);
        tg_vae_model_iw_logpx(m, &xv, cond ? &lv : NULL, iw_samples, 0, &iw, logpx);
        for (int64_t i = 0; i < rows; i++) ll += logpx[i];
        seen += rows;
        if (progress) {
            fprintf(progress, "eval: %lld/%lld images\n", (long long)seen, (long long)test.n);
            fflush(progress);
        }
    }
    const double n = (double)test.n;
    r->recon = recon / n, r->kl = kl / n, r->elbo = r->recon + r->kl, r->nll = -ll / n;
    for (int64_t l = 0; l < L; l++) r->kl_per_dim[l] /= n;
    r->active_units = tg_active_units_count(au, 0.01, NULL);
    if (!isfinite(r->elbo) || !isfinite(r->nll)) {
        tg_err_set(e, "non-finite %s on the test set", !isfinite(r->elbo) ? "elbo" : "nll");
        goto done;
    }
    rc = 0;
done:
    if (rc != 0) tg_eval_result_free(r);
    tg_active_units_free(au);
    tg_batcher_free(bt);
    tg_arena_free(keep);
    tg_tape_free(tape);
    tg_images_free(&test);
    return rc;
}

void tg_eval_result_free(tg_eval_result *r) {
    free(r->kl_per_dim);
    r->kl_per_dim = NULL;
}

const char *tg_eval_result_json(const tg_eval_result *r, tg_jsonw *w) {
    tg_jsonw_init(w);
    tg_jsonw_begin_object(w);
    tg_jsonw_key(w, "elbo"), tg_jsonw_double(w, r->elbo);
    tg_jsonw_key(w, "recon"), tg_jsonw_double(w, r->recon);
    tg_jsonw_key(w, "kl"), tg_jsonw_double(w, r->kl);
    tg_jsonw_key(w, "nll"), tg_jsonw_double(w, r->nll);
    tg_jsonw_key(w, "active_units"), tg_jsonw_int(w, r->active_units);
    tg_jsonw_key(w, "kl_per_dim"), tg_jsonw_begin_array(w);
    for (int64_t l = 0; l < r->latent; l++) tg_jsonw_double(w, r->kl_per_dim[l]);
    tg_jsonw_end_array(w);
    tg_jsonw_key(w, "iw_samples"), tg_jsonw_int(w, r->iw_samples);
    tg_jsonw_key(w, "images"), tg_jsonw_int(w, r->images);
    tg_jsonw_end_object(w);
    return tg_jsonw_finish(w);
}

/* ---------------------------------------------------------------- samples */

int tg_run_sample(const tg_vae_model *m, int64_t n, int label, double temperature, uint64_t seed, uint8_t *out,
                  tg_err *e) {
    TG_CHECK(isfinite(temperature) && temperature >= 0, "tg_run_sample: temperature %g, want finite and >= 0",
             temperature);
    const int64_t D = m->cfg.in, K = m->cfg.classes, L = m->cfg.latent, chunk = 256;
    tg_rng r = tg_rng_seed(seed);
    tg_tape *tape = tg_tape_new();
    tg_no_grad(tape);
    for (int64_t i0 = 0; i0 < n; i0 += chunk) {
        int64_t c = n - i0 < chunk ? n - i0 : chunk;
        tg_tensor *lab = NULL;
        if (K > 0) {
            lab = tg_tensor_new(tg_tape_arena(tape), TG_F32, TG_SHAPE(c));
            for (int64_t i = 0; i < c; i++) TG_F32P(lab)[i] = (float)(label >= 0 ? label : (i0 + i) % K);
        }
        tg_var *mu_p, *logvar_p, *z = NULL;
        tg_vae_model_prior(tape, m, c, lab, &mu_p, &logvar_p);
        if (temperature == 0) {
            z = mu_p;   /* no draws: the same images for every seed */
        } else {
            /* z = mu_p + exp(logvar_p / 2) (T eps): eps drawn as tg_reparam_sample
             * does, so T = 1 is tg_vae_model_sample's z bit for bit. */
            tg_tensor *eps = tg_tensor_normal(tg_tape_arena(tape), m->dtype, TG_SHAPE(c, L), &r);
            /* Saturated for float32, so the conversion is defined; a product
             * beyond FLT_MAX is inf, refused below as a non-finite sample. */
            if (temperature != 1)
                tg_tensor_mul_scalar(eps, eps, m->dtype == TG_F32 && temperature > FLT_MAX ? FLT_MAX : temperature);
            z = tg_reparam(tape, mu_p, logvar_p, eps);
        }
        tg_var *s = tg_vae_model_decode(tape, m, z, lab);
        if (m->cfg.lik == TG_LIK_BERNOULLI) s = tg_sigmoid(tape, s);
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
