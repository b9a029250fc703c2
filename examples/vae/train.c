/* train.c — the training loop of the VAE family (see train.h). */
#include "examples/vae/train.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/file.h"
#include "io/json.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "nn/checkpoint.h"
#include "io/plot.h"
#include "optim/optim.h"
#include "tensor/threads.h"

tg_train_opts tg_train_opts_default(void) {
    return (tg_train_opts){
        .model = "vae", .epochs = 10, .batch = 128, .n_hidden = 1, .hidden = {400}, .latent = 20,
        .lr = 1e-3, .beta = 1, .anneal = TG_KL_LINEAR, .anneal_epochs = 10, .anneal_steps = 0, .cycles = 4,
        .ratio = 0.5, .prior = TG_PRIOR_STANDARD, .lik = TG_LIK_BERNOULLI, .k = 5, .codes = 64, .code_dim = 16,
        .commitment = 0.25, .binarize = TG_BINARIZE_NONE, .seed = 1, .threads = 0, .out_dir = NULL,
    };
}

tg_model_config tg_train_model_config(const tg_train_opts *o, int64_t rows, int64_t cols) {
    const tg_model_type *type = tg_model_find(o->model);
    tg_model_config c = {
        .rows = rows, .cols = cols, .classes = type && type->conditional ? 10 : 0, .n_hidden = o->n_hidden,
        .latent = o->latent, .lik = o->lik, .prior = o->prior, .beta = o->beta, .anneal = o->anneal,
        .anneal_epochs = o->anneal_epochs, .anneal_steps = o->anneal_steps, .cycles = o->cycles, .ratio = o->ratio,
        .schedule_epochs = o->schedule_epochs ? o->schedule_epochs : o->epochs, .k = o->k, .codes = o->codes,
        .code_dim = o->code_dim, .commitment = o->commitment};
    for (int i = 0; i < o->n_hidden && i < TG_VAE_MAX_HIDDEN; i++) c.hidden[i] = o->hidden[i];
    return c;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int tg_train_images(tg_binarize mode, tg_rng *r, const tg_dataset *ds, tg_images *train, tg_images *test,
                    tg_err *e) {
    memset(test, 0, sizeof *test);
    if (train) memset(train, 0, sizeof *train);
    if (mode == TG_BINARIZE_NONE) return 0;
    int rc = 0;
    if (mode == TG_BINARIZE_STATIC) {
        if (train) rc = tg_images_binarize(&ds->train_x, train, r);
        else
            for (int64_t i = 0; i < ds->train_x.n * ds->train_x.rows * ds->train_x.cols; i++) (void)tg_rng_uniform(r);
    }
    if (rc != 0 || tg_images_binarize(&ds->test_x, test, r) != 0) {
        if (train) tg_images_free(train);
        tg_err_set(e, "out of memory");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- outputs */

static const char *lik_name(tg_likelihood l) { return l == TG_LIK_GAUSSIAN ? "gaussian" : "bernoulli"; }
static const char *prior_name(tg_prior p) { return p == TG_PRIOR_LEARNED ? "learned" : "standard"; }
static const char *bin_name(tg_binarize b) {
    return b == TG_BINARIZE_STATIC ? "static" : b == TG_BINARIZE_DYNAMIC ? "dynamic" : "none";
}

/* config.json's text (owned by w), or NULL if out of memory. */
/* full: every setting (config.json); else without where it ran (data, out,
 * threads), so model.safetensors is the same bytes for the same run anywhere. */
static const char *config_json(tg_jsonw *w, const tg_run_info *ri, bool full) {
    const tg_train_opts *o = &ri->o;
    tg_jsonw_init(w);
    tg_jsonw_begin_object(w);
    tg_jsonw_key(w, "model"), tg_jsonw_string(w, o->model);
    if (full) tg_jsonw_key(w, "data"), tg_jsonw_string(w, ri->data);
    tg_jsonw_key(w, "train_images"), tg_jsonw_int(w, ri->train_images);
    tg_jsonw_key(w, "test_images"), tg_jsonw_int(w, ri->test_images);
    tg_jsonw_key(w, "image_rows"), tg_jsonw_int(w, ri->rows);
    tg_jsonw_key(w, "image_cols"), tg_jsonw_int(w, ri->cols);
    tg_jsonw_key(w, "classes"), tg_jsonw_int(w, ri->classes);
    tg_jsonw_key(w, "epochs"), tg_jsonw_int(w, o->epochs);
    tg_jsonw_key(w, "batch"), tg_jsonw_int(w, o->batch);
    tg_jsonw_key(w, "hidden"), tg_jsonw_begin_array(w);
    for (int i = 0; i < o->n_hidden; i++) tg_jsonw_int(w, o->hidden[i]);
    tg_jsonw_end_array(w);
    tg_jsonw_key(w, "latent"), tg_jsonw_int(w, o->latent);
    tg_jsonw_key(w, "lr"), tg_jsonw_double(w, o->lr);
    tg_jsonw_key(w, "beta"), tg_jsonw_double(w, o->beta);
    tg_jsonw_key(w, "anneal"), tg_jsonw_string(w, o->anneal == TG_KL_CYCLICAL ? "cyclical" : "linear");
    tg_jsonw_key(w, "anneal_epochs"), tg_jsonw_int(w, o->anneal_epochs);
    tg_jsonw_key(w, "anneal_steps"), tg_jsonw_int(w, o->anneal_steps);
    tg_jsonw_key(w, "cycles"), tg_jsonw_int(w, o->cycles);
    tg_jsonw_key(w, "ratio"), tg_jsonw_double(w, o->ratio);
    if (full) tg_jsonw_key(w, "schedule_epochs"), tg_jsonw_int(w, o->schedule_epochs ? o->schedule_epochs : o->epochs);
    tg_jsonw_key(w, "prior"), tg_jsonw_string(w, prior_name(o->prior));
    tg_jsonw_key(w, "likelihood"), tg_jsonw_string(w, lik_name(o->lik));
    tg_jsonw_key(w, "k"), tg_jsonw_int(w, o->k);
    tg_jsonw_key(w, "codes"), tg_jsonw_int(w, o->codes);
    tg_jsonw_key(w, "code_dim"), tg_jsonw_int(w, o->code_dim);
    tg_jsonw_key(w, "commitment"), tg_jsonw_double(w, o->commitment);
    tg_jsonw_key(w, "binarize"), tg_jsonw_string(w, bin_name(o->binarize));
    tg_jsonw_key(w, "seed"), tg_jsonw_int(w, (int64_t)o->seed);
    if (full) {
        tg_jsonw_key(w, "threads"), tg_jsonw_int(w, o->threads);
        tg_jsonw_key(w, "out"), tg_jsonw_string(w, o->out_dir);
    }
    tg_jsonw_end_object(w);
    return tg_jsonw_finish(w);
}

static void path_in(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

/* "s0 s1 s2 s3" in hex, and when a second normal is cached, its bits as a
 * fifth number, so that a resumed run draws exactly the same values. */
static void rng_hex(char *buf, size_t n, const tg_rng *r) {
    int k = snprintf(buf, n, "%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64, r->s[0], r->s[1],
                     r->s[2], r->s[3]);
    if (r->has_spare && k > 0 && (size_t)k < n) {
        uint64_t bits;
        memcpy(&bits, &r->spare, sizeof bits);
        snprintf(buf + k, n - (size_t)k, " %016" PRIx64, bits);
    }
}

/* rng_hex's text back into *r; 0, or -1 if malformed. */
static int rng_parse(const char *v, tg_rng *r) {
    int used = 0;
    uint64_t bits;
    memset(r, 0, sizeof *r);
    if (!v || sscanf(v, "%16" SCNx64 " %16" SCNx64 " %16" SCNx64 " %16" SCNx64 "%n", &r->s[0], &r->s[1], &r->s[2],
                     &r->s[3], &used) != 4)
        return -1;
    v += used;
    if (!*v) return 0;
    if (*v != ' ' || sscanf(v, " %16" SCNx64 "%n", &bits, &used) != 1 || v[used]) return -1;
    memcpy(&r->spare, &bits, sizeof bits);
    r->has_spare = 1;
    return 0;
}

/* Where a run stands: epochs complete, steps done in the next one, and that
 * partial epoch's training-loss sum and seconds. */
typedef struct {
    int64_t epoch, epoch_step;
    double loss_sum, seconds;
} run_pos;

/* optimizer.safetensors: everything a resume needs, the parameters included,
 * so that it alone is the commit point of a checkpoint (see tg_train_run). */
static int save_optimizer(const char *path, const char *meta_config, const tg_adam *opt, run_pos pos,
                          tg_rng *const rngs[], const char *const rng_keys[], int n_rng, tg_err *e) {
    const tg_params *ps = opt->ps;
    tg_tensor m = tg_tensor_wrap(ps->dtype, TG_SHAPE(ps->n), opt->m);
    tg_tensor v = tg_tensor_wrap(ps->dtype, TG_SHAPE(ps->n), opt->v);
    tg_tensor p = tg_tensor_wrap(ps->dtype, TG_SHAPE(ps->n), ps->data);
    /* The parameters, Adam's moments, and each buffer as "buffer.<name>" (a VQ-VAE's code prior). */
    int nt = 3 + ps->n_bufs;
    const char **names = malloc(sizeof *names * (size_t)nt);
    const tg_tensor **ts = malloc(sizeof *ts * (size_t)nt);
    char **bn = calloc((size_t)nt, sizeof *bn);
    if (!names || !ts || !bn) {
        free(names), free(ts), free(bn);
        tg_err_set(e, "out of memory");
        return -1;
    }
    names[0] = "adam.m", names[1] = "adam.v", names[2] = "params";
    ts[0] = &m, ts[1] = &v, ts[2] = &p;
    for (int i = 0; i < ps->n_bufs; i++) {
        size_t len = strlen(ps->bufs[i]->name) + 8;
        if (!(bn[i] = malloc(len))) {
            for (int j = 0; j < i; j++) free(bn[j]);
            free(names), free(ts), free(bn);
            tg_err_set(e, "out of memory");
            return -1;
        }
        snprintf(bn[i], len, "buffer.%s", ps->bufs[i]->name);
        names[3 + i] = bn[i], ts[3 + i] = &ps->bufs[i]->val;
    }
    char vals[10][96];
    const char *keys[11] = {"adam.step", "epoch", "epoch_step", "train_loss_sum", "epoch_seconds"}, *pv[11];
    snprintf(vals[0], sizeof vals[0], "%" PRId64, opt->step);
    snprintf(vals[1], sizeof vals[1], "%" PRId64, pos.epoch);
    snprintf(vals[2], sizeof vals[2], "%" PRId64, pos.epoch_step);
    snprintf(vals[3], sizeof vals[3], "%.17g", pos.loss_sum);
    snprintf(vals[4], sizeof vals[4], "%.17g", pos.seconds);
    for (int i = 0; i < n_rng; i++) {
        rng_hex(vals[i + 5], sizeof vals[0], rngs[i]);
        keys[i + 5] = rng_keys[i];
    }
    for (int i = 0; i < 5 + n_rng; i++) pv[i] = vals[i];
    keys[5 + n_rng] = "config", pv[5 + n_rng] = meta_config;
    int rc = tg_safetensors_write(path, nt, names, ts, 6 + n_rng, keys, pv, e);
    for (int i = 0; i < ps->n_bufs; i++) free(bn[i]);
    free(names), free(ts), free(bn);
    return rc;
}

/* A checkpoint in dir: config.json (cfg_text), metrics.csv (csv), then
 * model.safetensors (metadata "format" and "config" = meta_config), then
 * optimizer.safetensors, the commit point. */
static int save_checkpoint(const char *dir, const char *cfg_text, const char *csv, const char *meta_config,
                           const tg_adam *opt, run_pos pos, tg_rng *const rngs[], const char *const rng_keys[],
                           int n_rng, tg_err *e) {
    char path[4096];
    const char *keys[] = {"format", "config"}, *vals[] = {"tapegrad-vae", meta_config};
    path_in(path, sizeof path, dir, "config.json");
    if (tg_file_write(path, cfg_text, strlen(cfg_text), e) != 0) return -1;
    path_in(path, sizeof path, dir, "metrics.csv");
    if (tg_file_write(path, csv, strlen(csv), e) != 0) return -1;
    path_in(path, sizeof path, dir, "model.safetensors");
    if (tg_params_save(opt->ps, path, 2, keys, vals, e) != 0) return -1;
    path_in(path, sizeof path, dir, "optimizer.safetensors");
    return save_optimizer(path, meta_config, opt, pos, rngs, rng_keys, n_rng, e);
}

/* ---------------------------------------------------------------- settings */

int tg_train_opts_check(const tg_train_opts *o, int64_t rows, int64_t cols, tg_err *e) {
    const struct {
        const char *key;
        int64_t v, lo, hi;
        bool skip;
    } f[] = {
        {"epochs", o->epochs, 1, TG_RUN_MAX_EPOCHS, false},
        {"batch", o->batch, 1, TG_RUN_MAX_BATCH, false},
        {"latent", o->latent, 1, TG_RUN_MAX_LATENT, false},
        {"anneal_epochs", o->anneal_epochs, 1, TG_RUN_MAX_EPOCHS, false},
        {"anneal_steps", o->anneal_steps, 0, TG_RUN_MAX_STEPS, false},
        {"cycles", o->cycles, 1, TG_RUN_MAX_EPOCHS, false},
        {"schedule_epochs", o->schedule_epochs, 0, TG_RUN_MAX_EPOCHS, false},
        {"k", o->k, 1, TG_RUN_MAX_K, false},
        {"codes", o->codes, 2, TG_RUN_MAX_CODES, false},
        {"code_dim", o->code_dim, 1, TG_RUN_MAX_CODE_DIM, false},
        {"seed", o->seed > (uint64_t)INT64_MAX ? -1 : (int64_t)o->seed, 0, TG_RUN_MAX_SEED, false},
        {"threads", o->threads, 0, TG_MAX_THREADS, false},
        {"image_rows", rows, 1, TG_RUN_MAX_SIDE, rows == 0},
        {"image_cols", cols, 1, TG_RUN_MAX_SIDE, rows == 0},
    };
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        if (!f[i].skip && (f[i].v < f[i].lo || f[i].v > f[i].hi)) {
            tg_err_set(e, "%s %lld is out of range [%lld, %lld]", f[i].key, (long long)f[i].v, (long long)f[i].lo,
                       (long long)f[i].hi);
            return -1;
        }
    if (o->n_hidden < 1 || o->n_hidden > TG_VAE_MAX_HIDDEN) {
        tg_err_set(e, "hidden: %d layers, expected 1 to %d", o->n_hidden, TG_VAE_MAX_HIDDEN);
        return -1;
    }
    for (int i = 0; i < o->n_hidden; i++)
        if (o->hidden[i] < 1 || o->hidden[i] > TG_RUN_MAX_HIDDEN) {
            tg_err_set(e, "hidden %lld is out of range [1, %d]", (long long)o->hidden[i], TG_RUN_MAX_HIDDEN);
            return -1;
        }
    const tg_model_type *type = tg_model_find(o->model);
    const char *bad = !type                                         ? "model"
                      : !(o->lr > 0 && isfinite(o->lr))             ? "lr must be positive and finite"
                      : !(o->beta >= 0 && isfinite(o->beta))        ? "beta must be finite and >= 0"
                      : !(o->ratio > 0 && o->ratio <= 1)            ? "ratio must be in (0, 1]"
                      : !(o->commitment >= 0 && isfinite(o->commitment)) ? "commitment must be finite and >= 0"
                      : o->prior == TG_PRIOR_LEARNED && !type->conditional ? "prior learned needs model cvae"
                                                                    : NULL;
    if (bad && !type) {
        tg_err_set(e, "model \"%s\" is unknown (known: %s)", o->model ? o->model : "", tg_model_names());
        return -1;
    }
    if (bad) {
        tg_err_set(e, "%s", bad);
        return -1;
    }
    if (rows > 0 && type->check) {
        tg_model_config c = tg_train_model_config(o, rows, cols);
        return type->check(&c, e);
    }
    return 0;
}

static int field_int(const tg_json *doc, const char *path, const char *key, int64_t *out, tg_err *e) {
    const tg_json *v = tg_json_get(doc, key);
    if (!v || tg_json_as_int64(v, INT64_MIN, INT64_MAX, out) != 0) {
        tg_err_set(e, "%s: %s \"%s\"", path, v ? "expected an integer for field" : "no field", key);
        return -1;
    }
    return 0;
}

static int field_num(const tg_json *doc, const char *path, const char *key, double *out, tg_err *e) {
    const tg_json *v = tg_json_get(doc, key);
    if (!v || tg_json_as_double(v, out) != 0) {
        tg_err_set(e, "%s: %s \"%s\"", path, v ? "expected a number for field" : "no field", key);
        return -1;
    }
    return 0;
}

static int field_enum(const tg_json *doc, const char *path, const char *key, const char *const names[], int n,
                      int *out, tg_err *e) {
    const char *s = tg_json_as_string(tg_json_get(doc, key));
    if (!s) {
        tg_err_set(e, "%s: %s \"%s\"", path, tg_json_get(doc, key) ? "expected a string for field" : "no field", key);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) {
            *out = i;
            return 0;
        }
    tg_err_set(e, "%s: field \"%s\": unknown value \"%s\"", path, key, s);
    return -1;
}

int tg_run_info_load(const char *dir, tg_run_info *ri, tg_err *e) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    memset(ri, 0, sizeof *ri);
    tg_train_opts *o = &ri->o;
    *o = tg_train_opts_default();
    uint8_t *buf;
    size_t n;
    if (tg_file_read(path, &buf, &n, e) != 0) return -1;
    tg_json *doc = tg_json_parse((const char *)buf, n, path, e);
    free(buf);
    if (!doc) return -1;
    int rc = -1;
    if (doc->type != TG_JSON_OBJECT) {
        tg_err_set(e, "%s: expected a JSON object", path);
        goto done;
    }
    static const char *const anneals[] = {"linear", "cyclical"};
    static const char *const priors[] = {"standard", "learned"};
    static const char *const liks[] = {"bernoulli", "gaussian"};
    static const char *const bins[] = {"none", "static", "dynamic"};
    int anneal, prior, lik, bin;
    int64_t seed, cycles, threads;
    const char *model = tg_json_as_string(tg_json_get(doc, "model"));
    if (!model) {
        tg_err_set(e, "%s: %s \"model\"", path, tg_json_get(doc, "model") ? "expected a string for field" : "no field");
        goto done;
    }
    if (!tg_model_find(model) || strlen(model) >= sizeof ri->model) {
        tg_err_set(e, "%s: field \"model\": unknown value \"%s\" (known: %s)", path, model, tg_model_names());
        goto done;
    }
    snprintf(ri->model, sizeof ri->model, "%s", model);
    if (field_enum(doc, path, "anneal", anneals, 2, &anneal, e) ||
        field_enum(doc, path, "prior", priors, 2, &prior, e) || field_enum(doc, path, "likelihood", liks, 2, &lik, e) ||
        field_enum(doc, path, "binarize", bins, 3, &bin, e) || field_int(doc, path, "classes", &ri->classes, e) ||
        field_int(doc, path, "image_rows", &ri->rows, e) || field_int(doc, path, "image_cols", &ri->cols, e) ||
        field_int(doc, path, "train_images", &ri->train_images, e) ||
        field_int(doc, path, "test_images", &ri->test_images, e) || field_int(doc, path, "epochs", &o->epochs, e) ||
        field_int(doc, path, "batch", &o->batch, e) || field_int(doc, path, "latent", &o->latent, e) ||
        field_int(doc, path, "anneal_epochs", &o->anneal_epochs, e) ||
        field_int(doc, path, "anneal_steps", &o->anneal_steps, e) || field_int(doc, path, "cycles", &cycles, e) ||
        field_int(doc, path, "seed", &seed, e) || field_int(doc, path, "threads", &threads, e) ||
        field_num(doc, path, "lr", &o->lr, e) || field_num(doc, path, "beta", &o->beta, e) ||
        field_num(doc, path, "ratio", &o->ratio, e))
        goto done;
    /* Written since runs could be extended; older runs' cycles span their epochs. */
    if (tg_json_get(doc, "schedule_epochs") && field_int(doc, path, "schedule_epochs", &o->schedule_epochs, e))
        goto done;
    /* Written since the IWAE and VQ-VAE; older runs have the defaults. */
    if ((tg_json_get(doc, "k") && field_int(doc, path, "k", &o->k, e)) ||
        (tg_json_get(doc, "codes") && field_int(doc, path, "codes", &o->codes, e)) ||
        (tg_json_get(doc, "code_dim") && field_int(doc, path, "code_dim", &o->code_dim, e)) ||
        (tg_json_get(doc, "commitment") && field_num(doc, path, "commitment", &o->commitment, e)))
        goto done;
    o->model = ri->model;
    o->anneal = anneal ? TG_KL_CYCLICAL : TG_KL_LINEAR;
    o->prior = prior ? TG_PRIOR_LEARNED : TG_PRIOR_STANDARD;
    o->lik = lik ? TG_LIK_GAUSSIAN : TG_LIK_BERNOULLI;
    o->binarize = (tg_binarize)bin;
    o->seed = seed < 0 ? UINT64_MAX : (uint64_t)seed;
    o->cycles = cycles < 0 || cycles > INT32_MAX ? -1 : (int)cycles;
    o->threads = threads < 0 || threads > INT32_MAX ? -1 : (int)threads;
    const tg_json *h = tg_json_get(doc, "hidden");
    o->n_hidden = h && h->type == TG_JSON_ARRAY && tg_json_len(h) <= TG_VAE_MAX_HIDDEN ? (int)tg_json_len(h) : -1;
    for (int i = 0; i < o->n_hidden; i++)
        if (tg_json_as_int64(tg_json_at(h, (size_t)i), INT64_MIN, INT64_MAX, &o->hidden[i]) != 0) o->n_hidden = -1;
    if (tg_train_opts_check(o, ri->rows, ri->cols, e) != 0) {
        tg_err_prefix(e, path);
        goto done;
    }
    if ((tg_model_find(o->model)->conditional ? ri->classes != 10 : ri->classes != 0) || ri->train_images < 1 ||
        ri->test_images < 1) {
        tg_err_set(e, "%s: %s", path, ri->train_images < 1 || ri->test_images < 1
                                          ? "train_images and test_images must be positive"
                                          : "classes must be 10 for a conditional model (cvae), else 0");
        goto done;
    }
    const char *data = tg_json_as_string(tg_json_get(doc, "data"));
    if (data) {
        snprintf(ri->data, sizeof ri->data, "%s", data);
        o->data_dir = ri->data;
    }
    rc = 0;
done:
    tg_json_free(doc);
    return rc;
}

int tg_run_check_data(const tg_run_info *ri, const char *dir, const tg_dataset *ds, bool counts, tg_err *e) {
    const char *what = NULL;
    int64_t have = 0, want = 0;
    if (ds->train_x.rows != ri->rows || ds->train_x.cols != ri->cols) {
        tg_err_set(e, "%s: images are %lldx%lld, but the run in %s was trained on %lldx%lld", ds->dir,
                   (long long)ds->train_x.rows, (long long)ds->train_x.cols, dir, (long long)ri->rows,
                   (long long)ri->cols);
        return -1;
    }
    if (counts && ds->train_x.n != ri->train_images) what = "training", have = ds->train_x.n, want = ri->train_images;
    else if (counts && ds->test_x.n != ri->test_images) what = "test", have = ds->test_x.n, want = ri->test_images;
    if (what) {
        tg_err_set(e, "%s: %lld %s images, but the run in %s was trained with %lld", ds->dir, (long long)have, what,
                   dir, (long long)want);
        return -1;
    }
    return 0;   /* classes: every dataset has 10 (the loader checks the labels) */
}

/* Two JSON values with the same content. */
static bool json_same(const tg_json *a, const tg_json *b) {
    if (!a || !b || a->type != b->type) return false;
    switch (a->type) {
    case TG_JSON_NULL: return true;
    case TG_JSON_BOOL: return a->b == b->b;
    case TG_JSON_NUMBER: return a->num == b->num;
    case TG_JSON_STRING: return a->len == b->len && !memcmp(a->str, b->str, a->len);
    case TG_JSON_ARRAY:
    case TG_JSON_OBJECT:
        if (a->n != b->n) return false;
        for (size_t i = 0; i < a->n; i++)
            if ((a->type == TG_JSON_OBJECT && strcmp(a->keys[i], b->keys[i])) || !json_same(&a->items[i], &b->items[i]))
                return false;
        return true;
    }
    return false;
}

/* A short text of a scalar JSON value, for messages. */
static const char *json_show(const tg_json *v, char *buf, size_t n) {
    if (!v) return "missing";
    if (v->type == TG_JSON_NUMBER && v->is_int) snprintf(buf, n, "%lld", (long long)v->i);
    else if (v->type == TG_JSON_NUMBER) snprintf(buf, n, "%.17g", v->num);
    else if (v->type == TG_JSON_STRING) snprintf(buf, n, "\"%.40s\"", v->str);
    else snprintf(buf, n, "a%s %s", v->type == TG_JSON_ARRAY ? "n" : "", tg_json_type_name(v->type));
    return buf;
}

/* Whether a checkpoint's "config" metadata (saved) is of the run whose
 * settings are ours (both config_json(..., false) texts), the epochs aside:
 * 0, or -1 with "<path>: written by another run: its "seed" is 2, config.json has 1". */
/* Settings written since the IWAE and VQ-VAE: a checkpoint of an older run
 * lacks them and was trained with these values. */
static const char *older_default(const char *key) {
    static const char *const keys[][2] = {{"k", "5"}, {"codes", "64"}, {"code_dim", "16"}, {"commitment", "0.25"}};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strcmp(key, keys[i][0])) return keys[i][1];
    return NULL;
}

static int same_run(const char *path, const char *saved, const char *ours, tg_err *e) {
    tg_json *a = tg_json_parse(saved, strlen(saved), path, e), *b = a ? tg_json_parse(ours, strlen(ours), NULL, e) : NULL;
    int rc = a && b ? 0 : -1;
    if (a && (a->type != TG_JSON_OBJECT)) {
        tg_err_set(e, "%s: metadata \"config\" is not a JSON object", path);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < tg_json_len(b); i++) {
        const char *k = tg_json_key(b, i);
        const tg_json *x = tg_json_get(a, k);
        if (!strcmp(k, "epochs") || json_same(x, &b->items[i])) continue;
        const char *def = x ? NULL : older_default(k);
        tg_json *d = def ? tg_json_parse(def, strlen(def), NULL, e) : NULL;
        bool same = d && json_same(d, &b->items[i]);
        tg_json_free(d);
        if (same) continue;
        char ta[64], tb[64];
        tg_err_set(e, "%s was written by another run: its \"%s\" is %s, config.json has %s", path, k,
                   json_show(x, ta, sizeof ta), json_show(&b->items[i], tb, sizeof tb));
        rc = -1;
    }
    tg_json_free(a);
    tg_json_free(b);
    return rc;
}

int tg_train_check_checkpoint(const char *path, const tg_safetensors *st, const tg_run_info *ri, tg_err *e) {
    const char *saved = tg_safetensors_meta(st, "config");
    tg_jsonw w;
    const char *ours = config_json(&w, ri, false);
    int rc = !ours ? (tg_err_set(e, "out of memory"), -1) : saved ? same_run(path, saved, ours, e) : 0;
    tg_jsonw_free(&w);
    return rc;
}

/* ---------------------------------------------------------------- resuming */

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    if (!s || !*s) return -1;
    long long v = strtoll(s, &end, 10);
    if (*end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int tg_train_checkpoint_epoch(const char *dir, int64_t *epoch, tg_err *e) {
    char path[4096];
    path_in(path, sizeof path, dir, "optimizer.safetensors");
    tg_safetensors st;
    if (tg_safetensors_read(path, &st, e) != 0) return -1;
    int rc = parse_i64(tg_safetensors_meta(&st, "epoch"), 0, (int64_t)1 << 40, epoch);
    if (rc != 0) tg_err_set(e, "%s: no valid metadata \"epoch\"", path);
    tg_safetensors_free(&st);
    return rc;
}

/* The (n) tensor called name in st, if it has ps's dtype and size. */
static const tg_tensor *flat_tensor(const tg_safetensors *st, const char *name, const tg_params *ps) {
    const tg_st_tensor *t = tg_safetensors_find(st, name);
    if (!t || t->tensor.dtype != ps->dtype || t->tensor.shape.ndim != 1 || t->tensor.shape.d[0] != ps->n)
        return NULL;
    return &t->tensor;
}

/* The state saved in dir's optimizer.safetensors: parameters, Adam's m, v and
 * step, the generators and the position *pos; and metrics.csv's header and
 * first pos->epoch rows, into *csv. The checkpoint must be of the run whose
 * settings are meta_config, at a position of an epoch of `steps` steps.
 * Nothing changes on error. */
static int resume_state(const char *dir, const char *meta_config, int64_t steps, tg_adam *opt, tg_rng *const rngs[],
                        const char *const rng_keys[], int n_rng, run_pos *pos, char **csv, size_t *csv_len,
                        size_t *csv_cap, tg_err *e) {
    char path[4096];
    tg_safetensors st;
    tg_params *ps = opt->ps;
    path_in(path, sizeof path, dir, "optimizer.safetensors");
    if (tg_safetensors_read(path, &st, e) != 0) return -1;
    int rc = -1;
    const tg_tensor *tm = flat_tensor(&st, "adam.m", ps), *tv = flat_tensor(&st, "adam.v", ps),
                    *tp = flat_tensor(&st, "params", ps);
    int64_t step;
    run_pos p;
    tg_rng r[8];
    char *end;
    const char *ls = tg_safetensors_meta(&st, "train_loss_sum"), *ss = tg_safetensors_meta(&st, "epoch_seconds");
    if (!tm || !tv || !tp) {
        tg_err_set(e, "%s: params, adam.m and adam.v must be %lld values each, as the model of config.json has "
                      "(config.json does not match the checkpoint)", path, (long long)ps->n);
        goto out;
    }
    if (parse_i64(tg_safetensors_meta(&st, "adam.step"), 0, INT64_MAX, &step) != 0 ||
        parse_i64(tg_safetensors_meta(&st, "epoch"), 0, (int64_t)1 << 40, &p.epoch) != 0 ||
        parse_i64(tg_safetensors_meta(&st, "epoch_step"), 0, INT64_MAX, &p.epoch_step) != 0 ||
        p.epoch + p.epoch_step == 0 || !ls || !ss || (p.loss_sum = strtod(ls, &end), *end) ||
        (p.seconds = strtod(ss, &end), *end)) {
        tg_err_set(e, "%s: no valid metadata \"adam.step\", \"epoch\", \"epoch_step\", \"train_loss_sum\" and "
                      "\"epoch_seconds\"", path);
        goto out;
    }
    const char *saved = tg_safetensors_meta(&st, "config");   /* absent in runs of older versions */
    if (saved && same_run(path, saved, meta_config, e) != 0) goto out;
    if (p.epoch_step > steps || p.epoch > TG_RUN_MAX_EPOCHS || step != p.epoch * steps + p.epoch_step) {
        tg_err_set(e, "%s: the saved position (epoch %lld, step %lld; %lld Adam steps) is not one of epochs of %lld "
                      "steps, as the data and batch size give (a checkpoint of other data?)",
                   path, (long long)p.epoch, (long long)p.epoch_step, (long long)step, (long long)steps);
        goto out;
    }
    for (int i = 0; i < ps->n_bufs; i++) {
        char name[512];
        snprintf(name, sizeof name, "buffer.%s", ps->bufs[i]->name);
        const tg_st_tensor *b = tg_safetensors_find(&st, name);
        if (!b || b->tensor.dtype != ps->bufs[i]->val.dtype || !tg_shape_eq(b->tensor.shape, ps->bufs[i]->val.shape)) {
            tg_err_set(e, "%s: no tensor \"%s\" of the model's buffer's dtype and shape", path, name);
            goto out;
        }
    }
    for (int i = 0; i < n_rng; i++) {
        const char *v = tg_safetensors_meta(&st, rng_keys[i]);
        if (rng_parse(v, &r[i]) != 0) {
            tg_err_set(e, "%s: no valid metadata \"%s\"", path, rng_keys[i]);
            goto out;
        }
    }
    /* metrics.csv: the header and the first p.epoch rows (it may have one
     * more: it is written before the checkpoint). */
    path_in(path, sizeof path, dir, "metrics.csv");
    uint8_t *buf;
    size_t n;
    if (tg_file_read(path, &buf, &n, e) != 0) goto out;
    size_t len = 0;
    int64_t lines = 0;
    while (len < n && lines < p.epoch + 1)
        if (buf[len++] == '\n') lines++;
    if (lines < p.epoch + 1) {
        free(buf);
        tg_err_set(e, "%s: fewer than %lld rows (optimizer.safetensors has epoch %lld)", path, (long long)p.epoch,
                   (long long)p.epoch);
        goto out;
    }
    if (len + 1 > *csv_cap) {
        char *q = realloc(*csv, len + 1);
        if (!q) {
            free(buf);
            tg_err_set(e, "out of memory");
            goto out;
        }
        *csv = q, *csv_cap = len + 1;
    }
    memcpy(*csv, buf, len);
    (*csv)[len] = 0;
    *csv_len = len;
    free(buf);
    size_t bytes = (size_t)ps->n * (ps->dtype == TG_F64 ? 8 : 4);
    memcpy(ps->data, tp->data, bytes);
    memcpy(opt->m, tm->data, bytes);
    memcpy(opt->v, tv->data, bytes);
    for (int i = 0; i < ps->n_bufs; i++) {
        char name[512];
        snprintf(name, sizeof name, "buffer.%s", ps->bufs[i]->name);
        const tg_tensor *b = &tg_safetensors_find(&st, name)->tensor;
        memcpy(ps->bufs[i]->val.data, b->data, (size_t)b->numel * tg_dtype_size(b->dtype));
    }
    opt->step = step;
    for (int i = 0; i < n_rng; i++) *rngs[i] = r[i];
    *pos = p;
    rc = 0;
out:
    tg_safetensors_free(&st);
    return rc;
}

/* ---------------------------------------------------------------- training */

static void progress_bar(FILE *f, int64_t epoch, int64_t epochs, int64_t s, int64_t steps, double loss, double rate) {
    char bar[31];
    int64_t done = s * 30 / steps;
    for (int i = 0; i < 30; i++) bar[i] = i < done ? '=' : i == done ? '>' : ' ';
    bar[30] = 0;
    fprintf(f, "\repoch %" PRId64 "/%" PRId64 " [%s] %" PRId64 "/%" PRId64 "  loss %.4f  %.0f images/s\033[K", epoch,
            epochs, bar, s, steps, loss, rate);
    fflush(f);
}

/* A run's memory is checked before anything is built, so that a size the
 * machine cannot hold is a message rather than an abort: the parameters with
 * their gradients and Adam moments (tg_train_params_fit), then, once built,
 * the arena of one step of `rows` images, measured on steps of 1 and 2 rows
 * (its size grows linearly with the rows) and reserved whole (step_fits). */
int tg_train_params_fit(const tg_model_type *type, const tg_model_config *cfg, tg_err *e) {
    if (type->check && type->check(cfg, e) != 0) return -1;
    if (!type->count) return 0;
    int64_t n = type->count(cfg);
    /* values and gradients (grown by doubling), Adam's m and v, and the
     * checkpoint's copies: 8 floats per parameter is an upper bound */
    size_t bytes = n >= 0 && (uint64_t)n < SIZE_MAX / 32 ? (size_t)n * 32 : SIZE_MAX;
    void *p = bytes == SIZE_MAX ? NULL : malloc(bytes);
    if (!p) {
        tg_err_set(e, "not enough memory for a model of %lld parameters (%.1f GB with gradients and optimizer "
                      "state); choose smaller --hidden or --latent", (long long)n, (double)n * 32 / 1e9);
        return -1;
    }
    free(p);
    return 0;
}

/* Reserves the tape's arena for a step of `rows` images, measured on steps
 * of 1 and 2 images (a step's memory is linear in its rows). */
static int step_fits(tg_tape *tape, const tg_model *m, const tg_rng *noise, int64_t rows, int64_t batch,
                     tg_err *e) {
    const int64_t D = m->cfg.rows * m->cfg.cols;
    size_t used[2];
    for (int64_t r = 1; r <= 2; r++) {
        tg_rng scratch = *noise;   /* the run's own streams are not touched */
        tg_arena *a = tg_tape_arena(tape);
        tg_tensor *x = tg_tensor_zeros(a, TG_F32, TG_SHAPE(r, D));
        tg_tensor *lab = m->type->conditional ? tg_tensor_zeros(a, TG_I64, TG_SHAPE(r)) : NULL;
        /* eval mode: no training-time side effects (the VQ-VAE's code prior) */
        tg_model_batch b = {.x = tg_leaf(tape, x, false), .labels = lab, .rng = &scratch, .train = false,
                            .epoch = 1, .steps_per_epoch = 1, .epochs = 1};
        tg_model_out out = tg_model_loss(tape, m, &b);
        tg_backward(tape, out.loss);
        used[r - 1] = tg_arena_used(a);
        tg_tape_reset(tape);
    }
    double need = (double)used[0] + ((double)used[1] - (double)used[0]) * (double)(rows - 1);
    if (need >= 0x1p62 || tg_arena_reserve(tg_tape_arena(tape), (size_t)need) != 0) {
        tg_err_set(e, "not enough memory for a step of %lld images (%.1f GB); choose a smaller --batch (now %lld)",
                   (long long)rows, need / 1e9, (long long)batch);
        return -1;
    }
    return 0;
}

/* The first non-finite of the loss and the terms (by name), or NULL. */
static const char *nonfinite(const tg_model *m, double loss, const double *terms, int n) {
    if (!isfinite(loss)) return "loss";
    for (int i = 0; i < n; i++)
        if (!isfinite(terms[i])) return m->type->terms[i];
    return NULL;
}

/* Scalar value of v, or 0 for NULL (a term a model leaves out while training). */
static double value(const tg_var *v) { return v ? tg_tensor_get(&v->val, 0) : 0; }

static int append(char **csv, size_t *len, size_t *cap, const char *line, tg_err *e) {
    size_t n = strlen(line);
    if (*len + n + 1 > *cap) {
        char *p = realloc(*csv, *cap * 2 + n);
        if (!p) {
            tg_err_set(e, "out of memory");
            return -1;
        }
        *csv = p, *cap = *cap * 2 + n;
    }
    memcpy(*csv + *len, line, n + 1);
    *len += n;
    return 0;
}

/* metrics.csv's text (a header line, then rows epoch,train_loss,test_loss,
 * <the terms>...) as loss curves against the epoch, into dir/curves.png:
 * train_loss, test_loss and the first n_terms terms. */
static int write_curves(const char *dir, const char *csv, int n_terms, const char *const names[], tg_err *e) {
    const int cols = 3 + n_terms;   /* epoch, train_loss, test_loss, terms */
    int64_t n = -1;                 /* rows: lines after the header */
    for (const char *c = csv; (c = strchr(c, '\n')); c++) n++;
    double *v = malloc(sizeof(double) * (size_t)cols * (size_t)(n > 0 ? n : 1));   /* (cols, n) */
    if (!v) {
        tg_err_set(e, "out of memory");
        return -1;
    }
    const char *line = strchr(csv, '\n') + 1;
    for (int64_t i = 0; i < n; i++, line = strchr(line, '\n') + 1) {
        char *end = (char *)line;
        for (int k = 0; k < cols; k++) v[k * n + i] = strtod(k ? end + 1 : end, &end);
    }
    tg_plot p = {.title = "loss per epoch", .x_label = "epoch", .y_label = "nats per image", .x_integer = true,
                 .n_series = 2 + n_terms};
    p.series[0] = (tg_plot_series){"train_loss", n, v, v + n};
    p.series[1] = (tg_plot_series){"test_loss", n, v, v + 2 * n};
    for (int k = 0; k < n_terms; k++) p.series[2 + k] = (tg_plot_series){names[k], n, v, v + (3 + k) * n};
    char path[4096];
    path_in(path, sizeof path, dir, "curves.png");
    int rc = tg_plot_lines(path, &p, e);
    free(v);
    return rc;
}

/* --profile: where an epoch's training steps spend their time. Each phase
 * is the time between two marks in the step loop (forward includes reading
 * the loss and its finite check); "other" is the rest of the epoch's steps
 * (the tape's reset, the progress bar). */
enum { PHASE_DATA, PHASE_ZERO, PHASE_FORWARD, PHASE_BACKWARD, PHASE_OPTIMIZER, N_PHASES };

/* Adds the seconds since *mark to *acc and moves the mark to now. */
static void lap(double *acc, double *mark) {
    double t = now();
    *acc += t - *mark;
    *mark = t;
}

static void print_profile(FILE *log, const double phase[N_PHASES], double total) {
    static const char *const names[N_PHASES] = {"data", "zero_grad", "forward", "backward", "optimizer"};
    double rest = total;
    fprintf(log, "  time of the steps:");
    for (int i = 0; i < N_PHASES; i++) {
        fprintf(log, " %s %.3f s (%.0f%%),", names[i], phase[i], total > 0 ? 100 * phase[i] / total : 0);
        rest -= phase[i];
    }
    fprintf(log, " other %.3f s (%.0f%%)\n", rest, total > 0 ? 100 * rest / total : 0);
}

int tg_train_run(const tg_train_opts *o, const tg_dataset *ds, FILE *log, tg_err *e) {
    const int64_t H = ds->train_x.rows, W = ds->train_x.cols, D = H * W;
    if (tg_train_opts_check(o, H, W, e) != 0) return 1;
    const tg_model_type *type = tg_model_find(o->model);
    const bool cond = type->conditional;
    const int n_terms = tg_model_n_terms(type);
    bool has_kl = false;
    for (int i = 0; i < n_terms; i++) has_kl |= !strcmp(type->terms[i], "kl");
    const int64_t n_show = 8, n_samp = cond ? 80 : 64;
    /* No batch holds more images than its set: the batches are the same, the buffers no larger. */
    const int64_t B = o->batch < ds->train_x.n ? o->batch : ds->train_x.n;
    const int64_t B_test = o->batch < ds->test_x.n ? o->batch : ds->test_x.n, B_buf = B > B_test ? B : B_test;
    const int64_t R = B_buf > n_samp ? B_buf : n_samp;   /* rows of the largest step, the images' included */
    int status = 1;
    char path[4096];

    tg_rng init_rng = tg_rng_seed(o->seed), data_rng = tg_rng_seed(o->seed + 1),
           noise_rng = tg_rng_seed(o->seed + 2), bin_rng = tg_rng_seed(o->seed + 3);
    tg_rng data_start = data_rng;   /* data_rng before the current epoch's shuffle */

    const tg_model_config cfg = tg_train_model_config(o, H, W);
    if (tg_train_params_fit(type, &cfg, e) != 0) return 1;

    /* Data as the model sees it: gray, or binarised (see tg_train_images). */
    tg_images train_bin, test_bin;
    if (tg_train_images(o->binarize, &bin_rng, ds, &train_bin, &test_bin, e) != 0) return 1;
    const tg_images *train_x = train_bin.pixels ? &train_bin : &ds->train_x;
    const tg_images *test_x = test_bin.pixels ? &test_bin : &ds->test_x;

    tg_params *ps = tg_params_new(TG_F32);
    tg_model m = tg_model_new(type, ps, &cfg, &init_rng);
    tg_adam *opt = tg_adam_new(ps, o->lr);
    tg_tape *tape = tg_tape_new();
    tg_arena *keep = tg_arena_new();
    tg_tensor *xb = tg_tensor_new(keep, TG_F32, TG_SHAPE(B_buf, D));   /* (B, D) batch */
    tg_tensor *yb = tg_tensor_new(keep, TG_I64, TG_SHAPE(B_buf));      /* (B) labels */
    tg_batcher *train = tg_batcher_new(train_x, cond ? &ds->train_y : NULL, B, true, &data_rng);
    tg_batcher *test = tg_batcher_new(test_x, cond ? &ds->test_y : NULL, B_test, false, NULL);
    float *grid = malloc(sizeof(float) * (size_t)(D * (n_samp > 2 * n_show ? n_samp : 2 * n_show)));
    size_t csv_cap = 1 << 12, csv_len = 0;
    char *csv = malloc(csv_cap);
    tg_run_info ri = {.o = *o, .classes = cfg.classes, .rows = H, .cols = W, .train_images = ds->train_x.n,
                      .test_images = ds->test_x.n};
    snprintf(ri.data, sizeof ri.data, "%s", o->data_dir ? o->data_dir : ds->dir);
    tg_jsonw cj, mj;
    const char *cfg_text = config_json(&cj, &ri, true), *meta_text = config_json(&mj, &ri, false);
    if (!train || !test || !grid || !csv || !cfg_text || !meta_text) {
        tg_err_set(e, "out of memory");
        goto done;
    }
    if (step_fits(tape, &m, &noise_rng, R, o->batch, e) != 0) goto done;
    {
        char head[256];
        int n = snprintf(head, sizeof head, "epoch,train_loss,test_loss");
        for (int i = 0; i < n_terms; i++) n += snprintf(head + n, sizeof head - (size_t)n, ",%s", type->terms[i]);
        snprintf(head + n, sizeof head - (size_t)n, "%s,seconds\n", has_kl ? ",kl_weight" : "");
        csv_len = (size_t)snprintf(csv, csv_cap, "%s", head);
    }
    const int64_t steps = tg_batcher_count(train);
    int64_t step = 0, first = 1;
    tg_rng *const rngs[] = {&init_rng, &data_start, &noise_rng, &bin_rng};
    const char *const rng_keys[] = {"rng.init", "rng.data", "rng.noise", "rng.binarize"};
    run_pos pos = {0};
    if (o->resume) {
        /* Everything is read and checked before any file is written. */
        if (resume_state(o->out_dir, meta_text, steps, opt, rngs, rng_keys, 4, &pos, &csv, &csv_len, &csv_cap, e) !=
            0)
            goto done;
        first = pos.epoch + 1;
        step = pos.epoch * steps + pos.epoch_step;
        if (pos.epoch_step > 0)
            fprintf(log, "continuing epoch %" PRId64 " from step %" PRId64 " of %" PRId64 "\n", first, pos.epoch_step,
                    steps);
        else
            fprintf(log, "continuing after epoch %" PRId64 "\n", pos.epoch);
    }

    bool wrote = o->resume;
    char name[64];
    double terms[TG_MODEL_MAX_TERMS], test_terms[TG_MODEL_MAX_TERMS];

    for (int64_t epoch = first; epoch <= o->epochs; epoch++) {
        /* A resumed run starts inside epoch `first` after pos.epoch_step steps. */
        double t_run = now(), t0 = t_run - pos.seconds, shown = 0, kl_weight = 1;
        double train_sum = pos.loss_sum, test_sum = 0;   /* sums over images */
        int64_t rows, s0 = pos.epoch_step;
        pos = (run_pos){0};
        if (epoch > 1 || o->resume) {
            data_rng = data_start;
            tg_batcher_start_epoch(train);
        }
        tg_model_batch b = {.rng = &noise_rng, .train = true, .epoch = epoch, .steps_per_epoch = steps,
                            .epochs = o->epochs};
        for (int64_t s = 0; s < s0; s++) tg_batcher_next(train, xb, NULL);
        double phase[N_PHASES] = {0}, mark = now();   /* --profile: seconds per phase of this epoch's steps */
        for (int64_t s = s0 + 1; (rows = tg_batcher_next(train, xb, cond ? yb : NULL)) > 0; s++, step++) {
            if (o->binarize == TG_BINARIZE_DYNAMIC) tg_binarize_f32(TG_F32P(xb), rows * D, &noise_rng);
            tg_tensor xv = tg_tensor_wrap(TG_F32, TG_SHAPE(rows, D), xb->data);
            tg_tensor lv = tg_tensor_wrap(TG_I64, TG_SHAPE(rows), yb->data);
            lap(&phase[PHASE_DATA], &mark);
            tg_params_zero_grad(ps);
            lap(&phase[PHASE_ZERO], &mark);
            b.x = tg_name(tg_leaf(tape, &xv, false), "x"), b.labels = cond ? &lv : NULL, b.step = step;
            tg_model_out out = tg_model_loss(tape, &m, &b);
            double loss = value(out.loss);
            for (int i = 0; i < n_terms; i++) terms[i] = value(out.term[i]);
            const char *bad = nonfinite(&m, loss, terms, n_terms);
            if (bad) {
                tg_err_set(e, "non-finite %s at epoch %" PRId64 ", step %" PRId64 "; %s %s", bad, epoch, s,
                           wrote ? "last good checkpoint kept in" : "no checkpoint written yet in", o->out_dir);
                goto done;
            }
            kl_weight = out.kl_weight;
            if (o->graph && epoch == first && s == s0 + 1 && tg_tape_dot_save(tape, o->graph, e) != 0) {
                tg_err_prefix(e, "--graph");
                goto done;
            }
            lap(&phase[PHASE_FORWARD], &mark);
            tg_backward(tape, out.loss);
            lap(&phase[PHASE_BACKWARD], &mark);
            tg_adam_step(opt);
            lap(&phase[PHASE_OPTIMIZER], &mark);
            train_sum += loss;
            tg_tape_reset(tape);
            if (o->progress && (now() - shown >= 0.1 || s == steps)) {
                /* Every batch but an epoch's last is full: images seen after s steps. */
                double seen = (double)(s * B < ds->train_x.n ? s * B : ds->train_x.n), before = (double)(s0 * B);
                shown = now();
                progress_bar(o->progress, epoch, o->epochs, s, steps, train_sum / seen, (seen - before) / (shown - t_run));
            }
            if (o->stop && *o->stop) {
                /* Interrupted: save where we are, to be continued by --resume. */
                if (o->progress) fputs("\r\033[K", o->progress);
                pos = (run_pos){epoch - 1, s, train_sum, now() - t0};
                if (save_checkpoint(o->out_dir, cfg_text, csv, meta_text, opt, pos, rngs, rng_keys, 4, e) != 0) goto done;
                fprintf(log, "interrupted at epoch %" PRId64 ", step %" PRId64 " of %" PRId64 "; saved in %s "
                        "(continue with: vae train --resume %s)\n", epoch, s, steps, o->out_dir, o->out_dir);
                fflush(log);
                status = 0;
                goto done;
            }
        }
        double t_end = now(), secs = t_end - t0, ran = t_end - t_run;   /* ran: this process's share of the epoch */
        if (o->progress) fputs("\r\033[K", o->progress), fflush(o->progress);

        /* Test set: no gradients, the model's test objective, one sample of z per image. */
        bool prev = tg_no_grad(tape);
        for (int i = 0; i < n_terms; i++) test_terms[i] = 0;
        tg_batcher_start_epoch(test);
        b.train = false;
        while ((rows = tg_batcher_next(test, xb, cond ? yb : NULL)) > 0) {
            tg_tensor xv = tg_tensor_wrap(TG_F32, TG_SHAPE(rows, D), xb->data);
            tg_tensor lv = tg_tensor_wrap(TG_I64, TG_SHAPE(rows), yb->data);
            b.x = tg_leaf(tape, &xv, false), b.labels = cond ? &lv : NULL;
            tg_model_out out = tg_model_loss(tape, &m, &b);
            test_sum += value(out.loss);
            for (int i = 0; i < n_terms; i++) test_terms[i] += value(out.term[i]);
            tg_tape_reset(tape);
        }
        const double ntr = (double)ds->train_x.n, nte = (double)ds->test_x.n;
        double train_loss = train_sum / ntr, test_loss = test_sum / nte;
        for (int i = 0; i < n_terms; i++) test_terms[i] /= nte;
        const char *bad = nonfinite(&m, test_loss, test_terms, n_terms);
        if (bad) {
            tg_set_grad(tape, prev);
            tg_err_set(e, "non-finite test %s at epoch %" PRId64 "; %s %s", bad, epoch,
                       wrote ? "last good checkpoint kept in" : "no checkpoint written yet in", o->out_dir);
            goto done;
        }

        /* Reconstructions (decoded encodings: z = the posterior mean) of the first test images, and prior samples. */
        int64_t show = ds->test_x.n < n_show ? ds->test_x.n : n_show;
        tg_batcher_start_epoch(test);
        rows = tg_batcher_next(test, xb, cond ? yb : NULL);
        {
            tg_tensor xv = tg_tensor_wrap(TG_F32, TG_SHAPE(show, D), xb->data);
            tg_tensor lv = tg_tensor_wrap(TG_I64, TG_SHAPE(show), yb->data);
            const tg_tensor *lab = cond ? &lv : NULL;
            tg_var *z = tg_model_encode(tape, &m, tg_leaf(tape, &xv, false), lab);
            tg_var *img = tg_model_pixels(tape, &m, tg_model_decode(tape, &m, z, lab));
            memcpy(grid, xb->data, sizeof(float) * (size_t)(show * D));
            memcpy(grid + show * D, img->val.data, sizeof(float) * (size_t)(show * D));
            tg_tape_reset(tape);
        }
        snprintf(name, sizeof name, "reconstruction_%" PRId64 ".png", epoch);
        path_in(path, sizeof path, o->out_dir, name);
        if (tg_png_write_grid_f32(path, grid, 2 * show, H, W, show, 2, e) != 0) goto done;
        {
            tg_rng sample_rng = tg_rng_seed(o->seed + 4);
            tg_tensor *lab = NULL;
            if (cond) {
                lab = tg_tensor_new(tg_tape_arena(tape), TG_I64, TG_SHAPE(n_samp));
                for (int64_t i = 0; i < n_samp; i++) TG_I64P(lab)[i] = i / 8;
            }
            tg_var *smp = tg_model_pixels(tape, &m, tg_model_sample(tape, &m, n_samp, lab, 1, &sample_rng));
            memcpy(grid, smp->val.data, sizeof(float) * (size_t)(n_samp * D));
            tg_tape_reset(tape);
        }
        tg_set_grad(tape, prev);
        snprintf(name, sizeof name, "sample_%" PRId64 ".png", epoch);
        path_in(path, sizeof path, o->out_dir, name);
        if (tg_png_write_grid_f32(path, grid, n_samp, H, W, 8, 2, e) != 0) goto done;

        /* Metrics, the model, then the optimizer state: optimizer.safetensors
         * is the commit point, since a resume takes everything from it (and
         * metrics.csv's first rows), so a kill between any two writes leaves
         * a consistent run of the last epoch it names. */
        char line[512];
        int len = snprintf(line, sizeof line, "%" PRId64 ",%.6f,%.6f", epoch, train_loss, test_loss);
        for (int i = 0; i < n_terms; i++) len += snprintf(line + len, sizeof line - (size_t)len, ",%.6f", test_terms[i]);
        if (has_kl) len += snprintf(line + len, sizeof line - (size_t)len, ",%.6f", kl_weight);
        snprintf(line + len, sizeof line - (size_t)len, ",%.3f\n", secs);
        if (append(&csv, &csv_len, &csv_cap, line, e) != 0) goto done;
        path_in(path, sizeof path, o->out_dir, "metrics.csv");
        if (tg_file_write(path, csv, csv_len, e) != 0) goto done;
        if (write_curves(o->out_dir, csv, n_terms, type->terms, e) != 0) goto done;
        data_start = data_rng;   /* the next epoch's shuffle starts here */
        if (save_checkpoint(o->out_dir, cfg_text, csv, meta_text, opt, (run_pos){.epoch = epoch}, rngs, rng_keys, 4,
                            e) != 0)
            goto done;
        wrote = true;

        fprintf(log, "epoch %" PRId64 "/%" PRId64 "  train %.4f  test %.4f", epoch, o->epochs, train_loss, test_loss);
        for (int i = 0; i < n_terms; i++) fprintf(log, "  %s %.4f", type->terms[i], test_terms[i]);
        if (has_kl) fprintf(log, "  kl_weight %.4f", kl_weight);
        fprintf(log, "  %.2f s  %.0f images/s\n", secs, ntr / secs);
        if (o->profile) print_profile(log, phase, ran);
        fflush(log);
        if (o->stop && *o->stop && epoch < o->epochs) {
            fprintf(log, "interrupted after epoch %" PRId64 "; saved in %s (continue with: vae train --resume %s)\n",
                    epoch, o->out_dir, o->out_dir);
            break;
        }
    }
    status = 0;

done:
    tg_jsonw_free(&cj);
    tg_jsonw_free(&mj);
    free(csv);
    free(grid);
    tg_batcher_free(train);
    tg_batcher_free(test);
    tg_arena_free(keep);
    tg_tape_free(tape);
    tg_adam_free(opt);
    tg_model_free(&m);
    tg_params_free(ps);
    tg_images_free(&train_bin);
    tg_images_free(&test_bin);
    return status;
}
