/* hand_vae.c — a run recomputed by hand for the tests (see hand_vae.h). */
#include "tests/hand_vae.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "io/png.h"
#include "io/safetensors.h"

#include "tests/png_read.h"
#include "tests/tmpdir.h"

#define MAXW 1024   /* widest layer the hand computation holds */

void tg_hand_config_load(const char *run_dir, tg_hand_config *c) {
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    size_t n;
    uint8_t *text = tg_slurp(path, &n);
    tg_err e;
    tg_json *doc = tg_json_parse((const char *)text, n, path, &e);
    free(text);
    cr_assert_not_null(doc, "%s", e.msg);
    int64_t seed;
    cr_assert_eq(tg_json_as_int64(tg_json_get(doc, "seed"), 0, INT64_MAX, &seed), 0, "%s: seed", path);
    cr_assert_eq(tg_json_as_int64(tg_json_get(doc, "classes"), 0, 256, &c->classes), 0, "%s: classes", path);
    const char *bin = tg_json_as_string(tg_json_get(doc, "binarize")),
               *lik = tg_json_as_string(tg_json_get(doc, "likelihood")),
               *data = tg_json_as_string(tg_json_get(doc, "data"));
    cr_assert(bin && lik && data, "%s: binarize, likelihood, data", path);
    c->seed = (uint64_t)seed;
    c->binarize = !strcmp(bin, "static") ? TG_BINARIZE_STATIC : !strcmp(bin, "dynamic") ? TG_BINARIZE_DYNAMIC
                                                                                          : TG_BINARIZE_NONE;
    c->gaussian = !strcmp(lik, "gaussian");
    snprintf(c->data, sizeof c->data, "%s", data);
    tg_json_free(doc);
}

/* name.weight (out, in) and name.bias (out) of the file, F32; absent: w NULL
 * unless required. */
static tg_hand_linear linear(const tg_safetensors *st, const char *name, bool required) {
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(bn, sizeof bn, "%s.bias", name);
    const tg_st_tensor *w = tg_safetensors_find(st, wn), *b = tg_safetensors_find(st, bn);
    tg_hand_linear l = {0};
    if (!w && !required) return l;
    cr_assert(w && b, "model.safetensors: no %s", name);
    cr_assert(w->tensor.dtype == TG_F32 && w->tensor.shape.ndim == 2 && b->tensor.dtype == TG_F32 &&
              b->tensor.shape.ndim == 1 && b->tensor.shape.d[0] == w->tensor.shape.d[0], "%s: shapes", name);
    l.w = w->tensor.data, l.b = b->tensor.data;
    l.out = w->tensor.shape.d[0], l.in = w->tensor.shape.d[1];
    cr_assert(l.out <= MAXW && l.in <= MAXW + 16, "%s is wider than the hand computation holds", name);
    return l;
}

void tg_hand_vae_load(const char *run_dir, tg_hand_vae *m) {
    memset(m, 0, sizeof *m);
    tg_hand_config c;
    tg_hand_config_load(run_dir, &c);
    m->gaussian = c.gaussian;
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", run_dir);
    tg_safetensors *st = malloc(sizeof *st);
    tg_err e;
    cr_assert_eq(tg_safetensors_read(path, st, &e), 0, "%s", e.msg);
    m->file = st;
    bool one = tg_safetensors_find(st, "fc1.weight") != NULL;
    char name[32];
    for (int i = 0; i < TG_VAE_MAX_HIDDEN; i++) {
        snprintf(name, sizeof name, one ? "fc1" : "enc%d", i + 1);
        m->enc[i] = linear(st, name, i == 0);
        if (!m->enc[i].w) break;
        m->nh = i + 1;
        if (one) break;
    }
    for (int i = 0; i < m->nh; i++) {
        snprintf(name, sizeof name, one ? "fc2" : "dec%d", i + 1);
        m->dec[i] = linear(st, name, true);
    }
    m->mu = linear(st, "fc_mu", true);
    m->logvar = linear(st, "fc_logvar", true);
    m->out = linear(st, one ? "fc3" : "out", true);
    m->prior = linear(st, "prior", false);
    m->D = m->out.out, m->L = m->mu.out, m->K = m->enc[0].in - m->D;
    cr_assert(m->K >= 0 && m->dec[0].in == m->L + m->K && m->logvar.out == m->L, "model.safetensors: sizes");
    cr_assert(!m->prior.w || (m->prior.in == m->K && m->prior.out == 2 * m->L), "prior: sizes");
}

void tg_hand_vae_free(tg_hand_vae *m) {
    tg_safetensors_free(m->file);
    free(m->file);
    memset(m, 0, sizeof *m);
}

/* y = x W^T + b, then ReLU if relu. */
static void apply(const tg_hand_linear *l, const double *x, bool relu, double *y) {
    for (int64_t o = 0; o < l->out; o++) {
        double s = l->b[o];
        for (int64_t i = 0; i < l->in; i++) s += (double)l->w[o * l->in + i] * x[i];
        y[o] = relu && s < 0 ? 0 : s;
    }
}

/* x (n) followed by onehot(y) (K). */
static void with_onehot(const tg_hand_vae *m, const double *x, int64_t n, int y, double *out) {
    cr_assert(m->K == 0 || (y >= 0 && y < m->K), "label %d for %lld classes", y, (long long)m->K);
    memcpy(out, x, sizeof(double) * (size_t)n);
    for (int64_t k = 0; k < m->K; k++) out[n + k] = k == y;
}

void tg_hand_vae_encode(const tg_hand_vae *m, const uint8_t *px, int y, double *mu, double *logvar) {
    static double x[MAXW + 16], h[2][MAXW + 16];
    cr_assert(m->D <= MAXW);
    for (int64_t d = 0; d < m->D; d++) x[d] = (float)px[d] / 255.0f;
    with_onehot(m, x, m->D, y, h[0]);
    for (int64_t i = 0; i < m->nh; i++) apply(&m->enc[i], h[i & 1], true, h[(i + 1) & 1]);
    apply(&m->mu, h[m->nh & 1], false, mu);
    apply(&m->logvar, h[m->nh & 1], false, logvar);
}

void tg_hand_vae_image(const tg_hand_vae *m, const double *z, int y, uint8_t *out) {
    static double h[2][MAXW + 16], o[MAXW];
    with_onehot(m, z, m->L, y, h[0]);
    for (int64_t i = 0; i < m->nh; i++) apply(&m->dec[i], h[i & 1], true, h[(i + 1) & 1]);
    apply(&m->out, h[m->nh & 1], false, o);
    for (int64_t d = 0; d < m->D; d++)
        out[d] = tg_png_pixel_from_f32((float)(m->gaussian ? o[d] : 1 / (1 + exp(-o[d]))));
}

void tg_hand_vae_sample(const tg_hand_vae *m, int64_t n, const int *labels, double T, uint64_t seed, uint8_t *out) {
    const int64_t L = m->L;
    tg_rng r = tg_rng_seed(seed);
    double z[MAXW], p[2 * MAXW];
    cr_assert(2 * L <= MAXW);
    for (int64_t i = 0; i < n; i++) {
        int y = labels ? labels[i] : -1;
        if (m->prior.w) {
            double oh[MAXW];
            for (int64_t k = 0; k < m->K; k++) oh[k] = k == y;
            apply(&m->prior, oh, false, p);
        } else {
            memset(p, 0, sizeof(double) * (size_t)(2 * L));
        }
        for (int64_t l = 0; l < L; l++) z[l] = p[l] + T * exp(p[L + l] / 2) * (float)tg_rng_normal(&r);
        tg_hand_vae_image(m, z, y, out + i * m->D);
    }
}

void tg_hand_binarize(tg_binarize mode, uint64_t seed, const tg_images *train, const tg_images *test,
                      uint8_t *train_out, uint8_t *test_out) {
    tg_rng r = tg_rng_seed(seed + 3);
    const tg_images *sets[2] = {train, test};
    uint8_t *outs[2] = {train_out, test_out};
    for (int s = 0; s < 2; s++) {
        if (s == 0 && mode != TG_BINARIZE_STATIC) {
            if (train_out) memcpy(train_out, train->pixels, (size_t)(train->n * train->rows * train->cols));
            continue;
        }
        for (int64_t i = 0; i < sets[s]->n * sets[s]->rows * sets[s]->cols; i++) {
            double u = tg_rng_uniform(&r);
            uint8_t p = sets[s]->pixels[i];
            if (outs[s]) outs[s][i] = mode == TG_BINARIZE_NONE ? p : u < p / 255.0 ? 255 : 0;
        }
    }
}

int64_t tg_hand_far_pixels(const uint8_t *a, const uint8_t *b, int64_t n, int64_t *same) {
    int64_t far = 0;
    *same = 0;
    for (int64_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        far += d > 1;
        *same += d == 0;
    }
    return far;
}

void tg_hand_expect_close(const char *what, const uint8_t *got, const uint8_t *want, int64_t np) {
    int64_t same, far = tg_hand_far_pixels(got, want, np, &same);
    cr_expect_eq(far, 0, "%s: %lld of %lld pixels differ from the hand computation by more than one level", what,
                 (long long)far, (long long)np);
    cr_expect_geq(same, np * 99 / 100, "%s: only %lld of %lld pixels equal the hand computation", what,
                  (long long)same, (long long)np);
}

/* The grid image run_dir/name read back into its n tiles (n, D). */
static uint8_t *grid(const char *run_dir, const char *name, int64_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", run_dir, name);
    tg_png_img g = tg_png_read(path);
    uint8_t *tiles = malloc((size_t)(n * 28 * 28));
    tg_png_grid_tiles(&g, n, 28, 28, 8, 2, tiles);
    tg_png_free(&g);
    return tiles;
}

void tg_hand_check_images(const char *run_dir, int64_t epoch) {
    tg_hand_config c;
    tg_hand_config_load(run_dir, &c);
    tg_hand_vae m;
    tg_hand_vae_load(run_dir, &m);
    cr_assert_eq(m.D, 28 * 28);
    cr_assert_eq(m.K, c.classes);
    tg_dataset ds;
    tg_err e;
    cr_assert_eq(tg_dataset_load(c.data, &ds, &e), 0, "%s", e.msg);
    const int64_t D = m.D, show = ds.test_x.n < 8 ? ds.test_x.n : 8;
    uint8_t *test = malloc((size_t)(ds.test_x.n * D));
    tg_hand_binarize(c.binarize, c.seed, &ds.train_x, &ds.test_x, NULL, test);

    /* Reconstructions: inputs above sigmoid(decoder(mu)). */
    char name[64], what[1200];
    snprintf(name, sizeof name, "reconstruction_%lld.png", (long long)epoch);
    uint8_t *got = grid(run_dir, name, 2 * show), *want = malloc((size_t)(2 * show * D));
    memcpy(want, test, (size_t)(show * D));
    for (int64_t i = 0; i < show; i++) {
        double mu[MAXW], lv[MAXW];
        int y = m.K ? ds.test_y.labels[i] : -1;
        tg_hand_vae_encode(&m, test + i * D, y, mu, lv);
        tg_hand_vae_image(&m, mu, y, want + (show + i) * D);
    }
    int64_t same;
    cr_expect_eq(memcmp(got, want, (size_t)(show * D)), 0, "%s/%s: the top row is not the first %lld test images "
                 "as the model sees them", run_dir, name, (long long)show);
    snprintf(what, sizeof what, "%s/%s, bottom row (decoder(mu))", run_dir, name);
    tg_hand_expect_close(what, got + show * D, want + show * D, show * D);
    cr_expect_gt(tg_hand_far_pixels(got, got + show * D, show * D, &same), 0,
                 "%s/%s: the reconstructions equal the inputs", run_dir, name);
    free(got), free(want);

    /* Prior samples: 64, or 8 per class for a CVAE. */
    cr_assert(m.K >= 0 && m.K <= 256);
    const int64_t n = m.K ? 8 * m.K : 64;
    int labels[8 * 256];
    for (int64_t i = 0; i < n; i++) labels[i] = (int)(i / 8);
    snprintf(name, sizeof name, "sample_%lld.png", (long long)epoch);
    got = grid(run_dir, name, n), want = malloc((size_t)n * (size_t)D);
    tg_hand_vae_sample(&m, n, m.K ? labels : NULL, 1, c.seed + 4, want);
    snprintf(what, sizeof what, "%s/%s", run_dir, name);
    tg_hand_expect_close(what, got, want, n * D);
    free(got), free(want), free(test);
    tg_dataset_free(&ds);
    tg_hand_vae_free(&m);
}
